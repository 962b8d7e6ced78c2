/* Building blocks shared by the sparse strategies (docs/training.md), so each rule is
 * written once: ranking (top-k, full sort) under the documented tie rules, the greedy
 * budget fill, xorshift32, sparam checks, and the TinyProp layer rule used by both
 * tinyprop and tinypropv2. Names use the sc_ prefix (strategy_<name> symbols are the
 * strategy vtables, see strategy.c). */
#ifndef TR_STRATEGY_COMMON_H
#define TR_STRATEGY_COMMON_H

#include <stdint.h>

#include "board_config.h"
#include "mlp.h"
#include "strategy.h"
#include "tr_status.h"

/* Neurons (outputs of all layers) a model can have: every layer at most TR_MAX_WIDTH wide,
 * and every neuron owns >= 2 parameters (>= 1 weight + bias), so the parameter capacity
 * bounds it too. Any model MODEL_INIT accepts fits; per-neuron state is sized by this. */
#define SC_MIN_(a, b) ((a) < (b) ? (a) : (b))
#define TR_MAX_NEURONS SC_MIN_((uint32_t)TR_MAX_LAYERS * TR_MAX_WIDTH, TR_PARAM_CAPACITY / 2u)
_Static_assert(TR_MAX_NEURONS <= 0xFFFFu, "neuron ids are u16");

/* Neuron ids kept in the strategy's selection scratch (mlp_t.sel, a float area of the
 * training arena): may_alias, so u16 access to that storage is defined. */
typedef uint16_t __attribute__((may_alias)) sc_id_t;
/* Floats that n neuron ids take in the selection scratch. */
#define SC_IDS_FLOATS(n) (((uint32_t)(n) + 1u) / 2u)
/* Neurons of dims[0..n_layers] (sum of dims[1..L]), for plan hooks. */
uint32_t sc_neurons_of(uint8_t n_layers, const uint16_t *dims);

/* 1 if v is an exact integer in [0, 2^24) (integer-valued sparams travel as f32). */
int sc_is_count(float v);

/* Neurons of the model (sum of dims[1..L]) and the flat id of neuron 0 of layer l
 * (flat ids: layer ascending, index ascending). */
uint16_t sc_n_neurons(const mlp_t *m);
uint16_t sc_layer_base(const mlp_t *m, uint8_t layer);
uint8_t sc_layer_of(const mlp_t *m, uint16_t id);

/* mask[0..n) = 1 for the k entries with the largest score, ties to the lower index; NaN
 * ranks last. heap: k u16 of scratch. O(n log k). */
void sc_topk_mask(const float *score, uint16_t n, uint16_t k, uint8_t *mask, uint16_t *heap);

/* Budget strategies: P = (int)floorf(budget * (float)total_params). Walk order[0..n) of flat
 * ids, select a neuron (row and bias) if used + (in_l + 1) <= P. Overwrites all masks. */
uint32_t sc_budget_params(const mlp_t *m, float budget);
/* Memory plan of a budget strategy: at most P parameters, in any layer where one neuron
 * (in_l + 1 parameters) fits P, masks changing at every SELECT; the neuron order in
 * the selection scratch (SC_IDS_FLOATS) behind `sel_before` floats of other state. */
void sc_budget_plan(uint8_t n_layers, const uint16_t *dims, float budget, uint32_t sel_before,
                    strat_plan_t *p);
void sc_greedy_fill(mlp_t *m, const sc_id_t *order, uint16_t n, uint32_t budget);

/* Sort ids[0..n) by key[id] descending, ties by layer descending, then index ascending;
 * NaN keys last. Heapsort: no recursion, no extra memory. */
void sc_sort_by_key(const mlp_t *m, const float *key, sc_id_t *ids, uint16_t n);

/* xorshift32 (13, 17, 5): the new state, which is also the output. */
static inline uint32_t sc_xorshift32(uint32_t x)
{
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return x;
}

/* ---- TinyProp family ------------------------------------------------------------- */
#define SC_TP_SMIN 0u
#define SC_TP_SMAX 1u
#define SC_TP_ZETA 2u
#define SC_TP_TAU 3u   /* tinypropv2 only */
#define SC_TP_GAMMA 4u /* tinypropv2 only */

/* TRAIN_CONFIG check: 0 <= S_min <= S_max <= 1, 0 < zeta <= 1, and with_gamma 0 < gamma <= 1. */
tr_status_t sc_tp_check(const float *sp, int with_gamma, tr_err_t *err);
/* score[j] = sum_n |delta[n][j]| (n in order); returns Y = sum_j score[j] (j in order). */
float sc_tp_score(const float *delta, uint16_t batch, uint16_t n, float *score);
/* Ymax_l <- max(decay ? gamma*Ymax_l : Ymax_l, Y); returns r = Y/Ymax_l (0 if Ymax_l <= 0). */
float sc_tp_ratio(mlp_t *m, uint8_t layer, float y, int decay);
/* k_l from r, top-k rows of score, all biases, propagation through the kept rows only. */
void sc_tp_apply(mlp_t *m, uint8_t layer, const float *score, float r);
/* Score, ratio and apply in one go (every layer of tinyprop, hidden layers of v2). */
void sc_tp_layer(mlp_t *m, uint8_t layer, const float *delta, uint16_t batch, int decay);

#endif
