/* `random-budget`: the control of Quelennec et al. - the greedy budget fill of
 * velocity-budget over a random permutation of the neurons, redrawn at every SELECT t.
 * xorshift32 from seed ^ (0x9E3779B9 * (t + 1)) (1 if 0), Fisher-Yates from the order
 * (layer ascending, index ascending). Needs no data: SELECT only advances t. */
#include "strategy.h"
#include "strategy_common.h"

#define RB_BUDGET 0u
#define RB_SEED 1u

static const float random_budget_defaults[2] = {0.25f, 1.0f}; /* budget, seed */

static tr_status_t random_budget_check(const float *sp, tr_err_t *err)
{
    if (!(sp[RB_BUDGET] >= 0.0f && sp[RB_BUDGET] <= 1.0f))
        return tr_fail(err, TR_E_BAD_ARG, RB_BUDGET, "need 0 <= budget <= 1");
    if (!sc_is_count(sp[RB_SEED]))
        return tr_fail(err, TR_E_BAD_ARG, RB_SEED, "seed must be an integer in [0, 2^24)");
    return TR_OK;
}

/* Any selection holds at most the budget's parameters (the greedy fill). */
static void random_budget_plan(uint8_t n_layers, const uint16_t *dims, const float *sp, strat_plan_t *p)
{
    sc_budget_plan(n_layers, dims, sp[RB_BUDGET], 0, p);
}

static void random_budget_draw(mlp_t *m, uint32_t t)
{
    const uint16_t n = sc_n_neurons(m);
    sc_id_t *ids = (sc_id_t *)m->sel; /* the plan's neuron order */
    for (uint16_t c = 0; c < n; c++)
        ids[c] = c;
    uint32_t x = (uint32_t)m->ss.sparams[RB_SEED] ^ (0x9E3779B9u * (t + 1u));
    if (x == 0)
        x = 1; /* xorshift's fixed point */
    for (uint16_t i = n; i-- > 1;) { /* i = n-1 .. 1 */
        x = sc_xorshift32(x);
        const uint16_t j = (uint16_t)(x % ((uint32_t)i + 1u));
        const uint16_t tmp = ids[i];
        ids[i] = ids[j];
        ids[j] = tmp;
    }
    sc_greedy_fill(m, ids, n, sc_budget_params(m, m->ss.sparams[RB_BUDGET]));
}

static void random_budget_reset(mlp_t *m) { random_budget_draw(m, 0); }

static tr_status_t random_budget_select(mlp_t *m, const dataset_t *ds, uint32_t start,
                                        uint16_t count, tr_err_t *err)
{
    (void)ds, (void)start, (void)count, (void)err; /* range already checked by the core */
    random_budget_draw(m, m->ss.n_select);
    m->ss.n_select++;
    return TR_OK;
}

const strategy_ops_t strategy_random_budget = {
    .id = TR_STRATEGY_RANDOM_BUDGET,
    .name = "random-budget",
    .n_sparams = 2,
    .defaults = random_budget_defaults,
    .masks_on_delta = 0,
    .check = random_budget_check,
    .plan = random_budget_plan,
    .reset = random_budget_reset,
    .select = random_budget_select,
    .skip = 0,
    .layer_select = 0,
};
