/* `static` (Tiny Training Engine, Lin et al. 2022): a sparse update fixed at TRAIN_CONFIG -
 * biases of the last bias_layers layers, and weight rows j < (int)floorf(ratio * N_l + 0.5f)
 * (at most N_l) of the last weight_layers layers. Rounded, not ceil: 0.3f * 100 is
 * 30.000002f. SELECT changes nothing. */
#include <math.h>

#include "strategy.h"
#include "strategy_common.h"

#define ST_BIAS_LAYERS 0u
#define ST_WEIGHT_LAYERS 1u
#define ST_RATIO 2u

/* bias_layers, weight_layers, channel_ratio */
static const float static_defaults[3] = {2.0f, 1.0f, 0.5f};

static tr_status_t static_check(const float *sp, tr_err_t *err)
{
    if (!sc_is_count(sp[ST_BIAS_LAYERS]))
        return tr_fail(err, TR_E_BAD_ARG, ST_BIAS_LAYERS,
                       "bias_layers must be an integer in [0, 2^24)");
    if (!sc_is_count(sp[ST_WEIGHT_LAYERS]))
        return tr_fail(err, TR_E_BAD_ARG, ST_WEIGHT_LAYERS,
                       "weight_layers must be an integer in [0, 2^24)");
    if (!(sp[ST_RATIO] >= 0.0f && sp[ST_RATIO] <= 1.0f))
        return tr_fail(err, TR_E_BAD_ARG, ST_RATIO, "need 0 <= channel_ratio <= 1");
    return TR_OK;
}

/* Weight rows of layer l (0 if it trains none) and whether it trains its biases. */
static uint16_t static_rows(uint8_t n_layers, uint8_t l, uint16_t n, const float *sp,
                            int *biases)
{
    const uint32_t depth = (uint32_t)(n_layers - 1u - l); /* 0: last layer */
    *biases = depth < (uint32_t)sp[ST_BIAS_LAYERS];
    if (depth >= (uint32_t)sp[ST_WEIGHT_LAYERS])
        return 0;
    /* ratio in [0, 1]: the rounded value is in [0, n + 1) */
    const uint32_t rows = (uint32_t)floorf(sp[ST_RATIO] * (float)n + 0.5f);
    return (uint16_t)(rows > n ? n : rows);
}

static void static_reset(mlp_t *m)
{
    mlp_set_all_masks(m, 0);
    for (uint8_t l = 0; l < m->n_layers; l++) {
        const uint16_t n = m->dims[l + 1];
        int biases;
        const uint16_t rows = static_rows(m->n_layers, l, n, m->ss.sparams, &biases);
        for (uint16_t j = 0; j < n; j++) {
            m->bias_mask[l][j] = (uint8_t)biases;
            m->row_mask[l][j] = j < rows;
        }
    }
}

/* Exactly the masks of reset: the gradient store holds just them, momentum too. */
static void static_plan(uint8_t n_layers, const uint16_t *dims, const float *sp, strat_plan_t *p)
{
    p->max_trainable = 0;
    p->lowest = p->weights_from = n_layers;
    p->fixed = 1;
    for (uint8_t l = n_layers; l-- > 0;) {
        int biases;
        const uint16_t rows = static_rows(n_layers, l, dims[l + 1], sp, &biases);
        p->max_trainable += (uint32_t)rows * dims[l] + (biases ? dims[l + 1] : 0u);
        if (rows)
            p->lowest = p->weights_from = l;
        else if (biases)
            p->lowest = l;
    }
}

const strategy_ops_t strategy_static = {
    .id = TR_STRATEGY_STATIC,
    .name = "static",
    .n_sparams = 3,
    .defaults = static_defaults,
    .masks_on_delta = 0,
    .check = static_check,
    .plan = static_plan,
    .reset = static_reset,
    .select = 0,
    .skip = 0,
    .layer_select = 0,
};
