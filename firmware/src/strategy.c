#include "strategy.h"

#include <stddef.h>

/* Weak references: a strategy that is not linked in resolves to NULL. The id list is
 * fixed by the protocol, so this table never needs editing when a strategy file lands. */
extern const strategy_ops_t strategy_full __attribute__((weak));
extern const strategy_ops_t strategy_tinyprop __attribute__((weak));
extern const strategy_ops_t strategy_tinypropv2 __attribute__((weak));
extern const strategy_ops_t strategy_neq __attribute__((weak));
extern const strategy_ops_t strategy_velocity_budget __attribute__((weak));
extern const strategy_ops_t strategy_random_budget __attribute__((weak));
extern const strategy_ops_t strategy_static __attribute__((weak));

static const strategy_ops_t *strategy_slot(uint8_t id)
{
    switch (id) {
    case TR_STRATEGY_FULL: return &strategy_full;
    case TR_STRATEGY_TINYPROP: return &strategy_tinyprop;
    case TR_STRATEGY_TINYPROPV2: return &strategy_tinypropv2;
    case TR_STRATEGY_NEQ: return &strategy_neq;
    case TR_STRATEGY_VELOCITY_BUDGET: return &strategy_velocity_budget;
    case TR_STRATEGY_RANDOM_BUDGET: return &strategy_random_budget;
    case TR_STRATEGY_STATIC: return &strategy_static;
    default: return NULL;
    }
}

const strategy_ops_t *strategy_find(uint8_t id)
{
    const strategy_ops_t *s = strategy_slot(id);
    /* Guard against a file whose id field disagrees with its symbol name. */
    return (s != NULL && s->id == id) ? s : NULL;
}

uint16_t strategy_bitmask(void)
{
    uint16_t bits = 0;
    for (uint8_t i = 0; i < TR_STRATEGY_SLOTS; i++)
        if (strategy_find(i))
            bits |= (uint16_t)(1u << i);
    return bits;
}
