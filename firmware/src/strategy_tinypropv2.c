/* `tinypropv2`: OUR rule in the spirit of TinyPropv2 (Rueb et al. 2024; the published rule
 * is not available): tinyprop with a decaying reference Ymax <- max(gamma*Ymax, Y), and the
 * whole backward pass + update skipped when the output layer's ratio r_out < tau. The output
 * layer is scored once per step (in skip); the same score and r then drive its top-k. */
#include <string.h>

#include "strategy.h"
#include "strategy_common.h"

/* S_min, S_max, zeta, tau, gamma */
static const float tinypropv2_defaults[5] = {0.1f, 0.9f, 0.5f, 0.5f, 0.995f};

/* Output-layer scores from skip() to layer_select() of the same step (m->scratch_f only
 * lives for one hook call). r_out is kept in m->ss.r_out. */
static float out_score[TR_MAX_WIDTH];

static tr_status_t tinypropv2_check(const float *sp, tr_err_t *err)
{
    return sc_tp_check(sp, 1, err);
}

static int tinypropv2_skip(mlp_t *m, const float *delta_out, uint16_t batch)
{
    const uint8_t last = (uint8_t)(m->n_layers - 1u);
    const float y = sc_tp_score(delta_out, batch, m->dims[m->n_layers], out_score);
    const float r = sc_tp_ratio(m, last, y, 1); /* Ymax_out updates even on a skipped step */
    m->ss.r_out = r;
    if (r < m->ss.sparams[SC_TP_TAU]) {
        /* Nothing is selected for this step: SELECT's k must say 0, like MASK_READ. */
        mlp_set_all_masks(m, 0);
        return 1;
    }
    return 0;
}

static void tinypropv2_layer_select(mlp_t *m, uint8_t layer, const float *delta, uint16_t batch)
{
    if (layer + 1u == m->n_layers)
        sc_tp_apply(m, layer, out_score, m->ss.r_out);
    else
        sc_tp_layer(m, layer, delta, batch, 1);
}

const strategy_ops_t strategy_tinypropv2 = {
    .id = TR_STRATEGY_TINYPROPV2,
    .name = "tinypropv2",
    .n_sparams = 5,
    .defaults = tinypropv2_defaults,
    .masks_on_delta = 1,
    .check = tinypropv2_check,
    .reset = 0,
    .select = 0,
    .skip = tinypropv2_skip,
    .layer_select = tinypropv2_layer_select,
};
