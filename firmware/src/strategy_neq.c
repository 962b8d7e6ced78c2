/* `neq` (Bragagnolo et al., NeurIPS 2022): at every SELECT a neuron is frozen (row and bias)
 * until the next SELECT iff |v| <= eps; at t = 0 (and before the first SELECT) every neuron
 * is trainable. Velocity: strategy_velocity.c. Frozen neurons still pass the error down. */
#include <math.h>

#include "strategy.h"
#include "strategy_velocity.h"

#define NEQ_EPS 0u
#define NEQ_MU 1u

static const float neq_defaults[2] = {0.001f, 0.5f}; /* eps, mu */

/* Any neuron may train, masks change at SELECT; the velocity state is the scratch. */
static void neq_plan(uint8_t n_layers, const uint16_t *dims, const float *sp, strat_plan_t *p)
{
    (void)sp;
    p->max_trainable = 0;
    for (uint8_t l = 0; l < n_layers; l++)
        p->max_trainable += ((uint32_t)dims[l] + 1u) * dims[l + 1];
    p->lowest = p->weights_from = 0;
    p->fixed = 0;
    p->sel_floats = VEL_SEL_FLOATS(sc_neurons_of(n_layers, dims));
}

static void neq_reset(mlp_t *m)
{
    vel_reset(m);
    mlp_set_all_masks(m, 1); /* the masks of SELECT t = 0 */
}

static tr_status_t neq_select(mlp_t *m, const dataset_t *ds, uint32_t start, uint16_t count,
                              tr_err_t *err)
{
    tr_status_t st = vel_update(m, ds, start, count, m->ss.sparams[NEQ_MU], err);
    if (st != TR_OK)
        return st;
    if (m->ss.n_select == 0) {
        mlp_set_all_masks(m, 1);
    } else {
        const float eps = m->ss.sparams[NEQ_EPS];
        const float *v = vel_velocity(m);
        mlp_set_all_masks(m, 0);
        uint16_t c = 0;
        for (uint8_t l = 0; l < m->n_layers; l++)
            for (uint16_t j = 0; j < m->dims[l + 1]; j++, c++) {
                const uint8_t on = fabsf(v[c]) > eps; /* NaN: frozen */
                m->row_mask[l][j] = on;
                m->bias_mask[l][j] = on;
            }
    }
    m->ss.n_select++;
    return TR_OK;
}

const strategy_ops_t strategy_neq = {
    .id = TR_STRATEGY_NEQ,
    .name = "neq",
    .n_sparams = 2,
    .defaults = neq_defaults,
    .masks_on_delta = 0,
    .check = 0, /* any finite eps, mu (the golden model checks nothing either) */
    .plan = neq_plan,
    .reset = neq_reset,
    .select = neq_select,
    .skip = 0,
    .layer_select = 0,
};
