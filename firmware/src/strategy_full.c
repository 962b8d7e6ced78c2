/* `full`: dense backprop, the reference. Every row and bias selected, every layer
 * visited, nothing skipped. */
#include "strategy.h"

/* Everything, always: the gradient store is dense and momentum follows the same layout. */
static void full_plan(uint8_t n_layers, const uint16_t *dims, const float *sp, strat_plan_t *p)
{
    (void)sp;
    p->max_trainable = 0;
    for (uint8_t l = 0; l < n_layers; l++)
        p->max_trainable += ((uint32_t)dims[l] + 1u) * dims[l + 1];
    p->lowest = 0;
    p->weights_from = 0;
    p->fixed = 1;
}

static void full_reset(mlp_t *m) { mlp_set_all_masks(m, 1); }

const strategy_ops_t strategy_full = {
    .id = TR_STRATEGY_FULL,
    .name = "full",
    .n_sparams = 0,
    .defaults = 0,
    .masks_on_delta = 0,
    .check = 0,
    .plan = full_plan,
    .reset = full_reset,
    .select = 0,
    .skip = 0,
    .layer_select = 0,
};
