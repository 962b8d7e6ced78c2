/* `tinyprop` (Rueb et al. 2023), batched: per layer, top down, keep the k_l neurons with the
 * largest sum_n |delta|, k_l from the layer's error relative to its running maximum (never
 * decays). Rule and arithmetic: sc_tp_* in strategy_common.c, shared with tinypropv2. Ymax
 * lives in m->ss (cleared by the core on TRAIN_CONFIG / MODEL_INIT) and the masks start at
 * zero, so there is no reset hook and no file state. */
#include "strategy.h"
#include "strategy_common.h"

static const float tinyprop_defaults[3] = {0.1f, 0.9f, 0.5f}; /* S_min, S_max, zeta */

static tr_status_t tinyprop_check(const float *sp, tr_err_t *err)
{
    return sc_tp_check(sp, 0, err);
}

static void tinyprop_layer_select(mlp_t *m, uint8_t layer, const float *delta, uint16_t batch)
{
    sc_tp_layer(m, layer, delta, batch, 0);
}

const strategy_ops_t strategy_tinyprop = {
    .id = TR_STRATEGY_TINYPROP,
    .name = "tinyprop",
    .n_sparams = 3,
    .defaults = tinyprop_defaults,
    .masks_on_delta = 1,
    .check = tinyprop_check,
    .reset = 0,
    .select = 0,
    .skip = 0,
    .layer_select = tinyprop_layer_select,
};
