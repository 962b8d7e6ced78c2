/* `velocity-budget` (Quelennec et al., WACVW 2024): under a fixed budget of trainable
 * parameters, rank neurons by |v| / params(c) (params = in_l + 1) largest first, ties by
 * layer descending then index ascending, and fill greedily (row and bias). Before the first
 * velocity (t = 0) every key is 0, so the tie order alone decides: top layers first. */
#include <math.h>

#include "strategy.h"
#include "strategy_velocity.h"

#define VB_BUDGET 0u
#define VB_MU 1u

static const float velocity_budget_defaults[2] = {0.25f, 0.5f}; /* budget, mu */

static tr_status_t velocity_budget_check(const float *sp, tr_err_t *err)
{
    if (!(sp[VB_BUDGET] >= 0.0f && sp[VB_BUDGET] <= 1.0f))
        return tr_fail(err, TR_E_BAD_ARG, VB_BUDGET, "need 0 <= budget <= 1");
    return TR_OK;
}

/* Any selection holds at most the budget's parameters (the greedy fill). */
static void velocity_budget_plan(uint8_t n_layers, const uint16_t *dims, const float *sp, strat_plan_t *p)
{
    sc_budget_plan(n_layers, dims, sp[VB_BUDGET], VEL_SEL_FLOATS(sc_neurons_of(n_layers, dims)), p);
}

static void velocity_budget_choose(mlp_t *m)
{
    const uint16_t nn = sc_n_neurons(m);
    const float *v = vel_velocity(m);
    float *key = vel_work(m, 0);                               /* free between SELECTs */
    sc_id_t *ids = (sc_id_t *)(m->sel + VEL_SEL_FLOATS(nn)); /* behind the velocity state */
    uint16_t c = 0;
    for (uint8_t l = 0; l < m->n_layers; l++) {
        const float cost = (float)((uint32_t)m->dims[l] + 1u);
        for (uint16_t j = 0; j < m->dims[l + 1]; j++, c++) {
            key[c] = fabsf(v[c]) / cost;
            ids[c] = c;
        }
    }
    sc_sort_by_key(m, key, ids, c);
    sc_greedy_fill(m, ids, c, sc_budget_params(m, m->ss.sparams[VB_BUDGET]));
}

static void velocity_budget_reset(mlp_t *m)
{
    vel_reset(m);
    velocity_budget_choose(m); /* the masks of SELECT t = 0 */
}

static tr_status_t velocity_budget_select(mlp_t *m, const dataset_t *ds, uint32_t start,
                                          uint16_t count, tr_err_t *err)
{
    tr_status_t st = vel_update(m, ds, start, count, m->ss.sparams[VB_MU], err);
    if (st != TR_OK)
        return st;
    velocity_budget_choose(m);
    m->ss.n_select++;
    return TR_OK;
}

const strategy_ops_t strategy_velocity_budget = {
    .id = TR_STRATEGY_VELOCITY_BUDGET,
    .name = "velocity-budget",
    .n_sparams = 2,
    .defaults = velocity_budget_defaults,
    .masks_on_delta = 0,
    .check = velocity_budget_check,
    .plan = velocity_budget_plan,
    .reset = velocity_budget_reset,
    .select = velocity_budget_select,
    .skip = 0,
    .layer_select = 0,
};
