/* The trainable float32 MLP head: storage, forward, softmax cross-entropy, backward,
 * masked SGD, and the per-step report. Arithmetic contract: docs/training.md. */
#ifndef TR_MLP_H
#define TR_MLP_H

#include <stdint.h>

#include "board_config.h"
#include "dataset.h"
#include "tr_status.h"
#include "wire_ids.h"

/* `which` of a tensor: TR_WHICH_WEIGHT / TR_WHICH_BIAS; step phases: TR_PHASE_* (wire_ids.h). */
#define MLP_N_PHASES 4u
/* Samples per chunk where the memory plan keeps only a chunk (inputs of a layer whose
 * weights never train; the error of a bias-only lowest layer): the forward kernel's sample
 * block. */
#define MLP_CHUNK_ROWS (TR_MAX_BATCH < 4u ? TR_MAX_BATCH : 4u)
/* Samples per pass of a streamed step (docs/training.md "Memory plan"): strategies whose
 * masks are known before the step run forward, loss and backward over the batch in blocks
 * of this many samples, accumulating gradients in sample order, so activations and errors
 * need these rows, not max_batch. 16: the reference batch runs as one block, and the
 * weight-gradient kernel's per-call cost stays small against 16 samples of MACs. */
#define MLP_STREAM_ROWS (TR_MAX_BATCH < 16u ? TR_MAX_BATCH : 16u)

#define TR_MAX_SPARAMS 8u

typedef struct strategy_ops strategy_ops_t;

/* State every strategy may use. Reset (zeroed, sparams kept) by TRAIN_CONFIG and by
 * MODEL_INIT. Strategies needing more keep file-static state in strategy_<name>.c and
 * clear it in their reset hook. */
typedef struct {
    float sparams[TR_MAX_SPARAMS]; /* full vector: host values, defaults for the rest */
    uint32_t n_select;             /* SELECT calls since reset (t of training.md) */
    float ymax[TR_MAX_LAYERS];     /* running reference error (tinyprop family) */
    float r_out;                   /* output-layer ratio of the last step (skip rules) */
} strat_state_t;

typedef struct mlp {
    /* Model (n_layers == 0: none). Layer l: W at params[w_off[l]], b at params[b_off[l]]. */
    uint8_t n_layers;
    uint16_t dims[TR_MAX_LAYERS + 1];
    uint32_t w_off[TR_MAX_LAYERS];
    uint32_t b_off[TR_MAX_LAYERS];
    uint32_t n_params;
    /* In the one training arena (mlp.c), laid out by MODEL_INIT and TRAIN_CONFIG from the
     * memory plan of the model and configuration (docs/training.md "Memory plan"): */
    float *params;   /* p                                  [n_params] */
    float *step;     /* gradient g, then the u applied, of the selected entries only, packed
                        (layer ascending: selected weight rows, then selected biases)
                        [step_cap]; UPDATE_READ expands it through used_row/used_bias */
    float *mom;      /* momentum v: packed like step if the masks are fixed (mom_packed),
                        else the layout of p; NULL at momentum 0 */
    uint32_t step_cap;
    uint8_t mom_packed;
    uint8_t plan_lowest;  /* lowest layer the plan allows a selection in */
    uint16_t rows;        /* rows of act[1..L] and delta[]: max_batch when the strategy
                             decides masks during the step (the batch at once), else
                             MLP_STREAM_ROWS (the step streams the batch in blocks) */
    uint16_t in_rows;     /* rows of act[0]: `rows`, or a chunk when no selection can
                             train layer 0's weights (inputs then pass through in chunks) */
    uint16_t dchunk_w;    /* 0, or width of the lowest layer's chunked error (bias only) */

    /* Optimiser / strategy (configured == 0: no TRAIN_CONFIG yet). */
    uint8_t configured;
    float lr, momentum;
    uint16_t batch_cap; /* TRAIN_CONFIG's batch (largest TRAIN_STEP batch), 1..max_batch */
    const strategy_ops_t *strat;
    strat_state_t ss;

    /* Selection for the step being run: strategies write these. row_mask[l][j]: weights of
     * neuron j are updated; bias_mask[l][j]: its bias is. prop_masked[l] = 1: the error
     * propagated into layer l-1 uses only the rows in row_mask (TinyProp); 0: all rows. */
    uint8_t row_mask[TR_MAX_LAYERS][TR_MAX_WIDTH];
    uint8_t bias_mask[TR_MAX_LAYERS][TR_MAX_WIDTH];
    uint8_t prop_masked[TR_MAX_LAYERS];
    /* Masks the last TRAIN_STEP applied (all 0 if skipped): MASK_READ, and which step[]
     * entries to clear before the next step. */
    uint8_t used_row[TR_MAX_LAYERS][TR_MAX_WIDTH];
    uint8_t used_bias[TR_MAX_LAYERS][TR_MAX_WIDTH];
    uint8_t stepped; /* a TRAIN_STEP ran since the masks were last (re)set */

    /* Workspace of the last forward pass (arena, `rows` rows): act[l] = input of layer
     * l, [batch][dims[l]] (ReLU outputs for l >= 1; act[0] only in_rows rows);
     * act[n_layers] = logits, overwritten by the output error in a TRAIN_STEP. delta[]:
     * the propagated errors (`rows` rows), dchunk: a chunk of the lowest
     * layer's error when only its biases train (NULL when the plan needs none). */
    float *act[TR_MAX_LAYERS + 1];
    float *delta[2];
    float *dchunk;
    /* Selection scratch of the strategy (the plan's sel_floats; NULL if none), and the end of
     * the layout: what a strategy reserves later (mlp_arena_extra) starts there. */
    float *sel;
    float *arena_end;
    /* Scratch for strategy hooks (valid during one hook call); between hooks the backward
     * pass keeps its row lists in scratch_u16. */
    float scratch_f[TR_MAX_WIDTH];
    uint16_t scratch_u16[TR_MAX_WIDTH];
} mlp_t;

typedef struct {
    float loss;
    uint16_t correct;
    uint8_t skipped;
    uint16_t k[TR_MAX_LAYERS];
    uint32_t counters[MLP_N_PHASES];
} mlp_step_result_t;

/* Boot / RESET: forget model, training configuration and the arena high-water mark. */
void mlp_reset(mlp_t *m);

/* STATS: bytes of the training arena used at most since RESET, and its size. The
 * high-water mark includes what strategies reserve later (mlp_arena_extra). */
void mlp_arena_stats(uint32_t *high_water, uint32_t *size);

/* `floats` more behind the current layout (valid until the next MODEL_INIT / TRAIN_CONFIG /
 * RESET, which also reset the strategy), or NULL with NO_SPACE (detail `detail`, text
 * "arena: needs N B, has M B"). The same call returns the same place while the layout
 * stands. */
float *mlp_arena_extra(mlp_t *m, uint32_t floats, uint16_t detail, tr_err_t *err);

/* MODEL_INIT: dims[0..n_layers]. Zeroes parameters, momentum, last step; resets the
 * strategy (if configured). NO_SPACE if the parameters exceed param_capacity or the
 * layout does not fit the arena (text: the bytes it needs). */
tr_status_t mlp_model_init(mlp_t *m, uint8_t n_layers, const uint16_t *dims, tr_err_t *err);

/* TRAIN_CONFIG. sparams[0..n_sp) from the host; missing ones take the strategy defaults;
 * batch: the largest TRAIN_STEP batch of this configuration (0: max_batch), which sizes
 * the memory plan. err->detail on BAD_ARG: 0 lr, 4 momentum, 8 strategy, 9 n_sparams,
 * 10 batch, 12+4i sparam i; NO_SPACE (detail 4) if the layout with this configuration
 * does not fit the arena. */
tr_status_t mlp_configure(mlp_t *m, float lr, float momentum, uint8_t strategy,
                          const float *sparams, uint8_t n_sp, uint16_t batch, tr_err_t *err);

/* Parameter tensor of a layer; *size = element count.
 * Caller checked layer < n_layers and which <= 1. */
float *mlp_param_tensor(mlp_t *m, uint8_t layer, uint8_t which, uint32_t *size);
/* UPDATE_READ: u of the last TRAIN_STEP for tensor entries [off, off+count) in the
 * tensor's own layout (0 where it applied nothing). Caller checked the range. */
void mlp_step_read(const mlp_t *m, uint8_t layer, uint8_t which, uint32_t off, uint32_t count,
                   float *out);

/* TRAIN_STEP on stored samples idx[0..batch). Validates everything first.
 * err->detail on BAD_ARG: 0 batch, 4+2i index i. */
tr_status_t mlp_train_step(mlp_t *m, const dataset_t *ds, const uint16_t *idx, uint16_t batch,
                           mlp_step_result_t *res, tr_err_t *err);

/* EVAL samples [start, start+count): loss sum (in sample order), correct, argmax. */
tr_status_t mlp_eval(mlp_t *m, const dataset_t *ds, uint32_t start, uint16_t count,
                     float *loss_sum, uint16_t *correct, uint8_t *pred, tr_err_t *err);

/* SELECT: run the strategy's select hook on validation samples [start, start+count). */
tr_status_t mlp_select(mlp_t *m, const dataset_t *ds, uint32_t start, uint16_t count,
                       tr_err_t *err);

/* Current selection: k of a layer (rows in row_mask) and trainable parameter count. */
uint16_t mlp_layer_k(const mlp_t *m, uint8_t layer);
uint32_t mlp_trainable_params(const mlp_t *m);

/* MASK_READ: masks of the last TRAIN_STEP, or the current selection if none ran since
 * it was set. */
void mlp_masks(const mlp_t *m, uint8_t layer, const uint8_t **row, const uint8_t **bias);

/* ---- helpers for strategies ------------------------------------------------------- */
/* Set row and bias masks of every layer to v (0/1) and prop_masked to 0. */
void mlp_set_all_masks(mlp_t *m, uint8_t v);
/* Samples one forward pass holds (m->rows): callers of mlp_forward_range go in blocks. */
uint16_t mlp_rows(const mlp_t *m);
/* Forward samples [start, start+count) (count <= mlp_rows(m), caller validated);
 * then mlp_output(m, l) = [count][dims[l+1]] outputs of layer l (post-ReLU, logits). */
void mlp_forward_range(mlp_t *m, const dataset_t *ds, uint32_t start, uint16_t count);
const float *mlp_output(const mlp_t *m, uint8_t layer);
/* Check that samples [start, start+count) exist and fit the model (detail = start_off). */
tr_status_t mlp_check_range(const mlp_t *m, const dataset_t *ds, uint32_t start, uint32_t count,
                            uint16_t start_off, tr_err_t *err);

#endif
