/* Sparse-update strategies (docs/training.md). One strategy = one file
 * strategy_<name>.c defining `const strategy_ops_t strategy_<name>`; strategy.c finds it
 * through a weak reference, so adding the file (the Makefile globs every src/ C file) is all it
 * takes for HELLO to advertise it and TRAIN_CONFIG to accept it.
 *
 * Step order in mlp_train_step, and where the hooks run:
 *   forward + loss + output error delta_{L-1}                 [forward]
 *   skip(m, delta_{L-1}, B)       -> 1 skips backward+update  [selection]
 *   lowest = 0 if masks_on_delta, else lowest layer with any row/bias mask bit
 *   for l = L-1 .. lowest:
 *     layer_select(m, l, delta_l, B)  -> row_mask/bias_mask/prop_masked of layer l
 *                                                              [selection]
 *     bias grads (bias_mask rows, full delta), weight grads (row_mask rows),
 *     delta_{l-1} (all rows, or row_mask rows if prop_masked[l]) [backward]
 *   SGD on masked entries only (p and v untouched elsewhere)   [update]
 * Hooks are optional (NULL). Masks persist between steps, so mask strategies set them
 * in reset/select and leave layer_select NULL. */
#ifndef TR_STRATEGY_H
#define TR_STRATEGY_H

#include <stdint.h>

#include "dataset.h"
#include "mlp.h"
#include "tr_status.h"
#include "wire_ids.h"

/* Strategy ids are TR_STRATEGY_* (wire_ids.h); HELLO advertises ids below this. */
#define TR_STRATEGY_SLOTS 7u

/* What any selection of a strategy can need, for the memory plan (mlp.c, docs/training.md
 * "Memory plan"): computed from the model and the full sparams vector before TRAIN_CONFIG
 * applies them. A step whose masks fall outside it is refused (it would be a plan bug). */
typedef struct {
    uint32_t max_trainable; /* trainable parameters of any selection: the gradient store */
    uint8_t lowest;         /* lowest layer any selection touches (n_layers: none) */
    uint8_t weights_from;   /* lowest layer whose weight rows any selection touches */
    uint8_t fixed;          /* masks never change after reset: momentum packed too */
    uint32_t sel_floats;    /* selection scratch and per-neuron state (mlp_t.sel) */
} strat_plan_t;

struct strategy_ops {
    uint8_t id;            /* protocol strategy id */
    const char *name;      /* training.md name */
    uint8_t n_sparams;     /* length of the sparams vector (<= TR_MAX_SPARAMS) */
    const float *defaults; /* n_sparams defaults; the host may send a prefix */
    /* 1: layer_select decides masks from delta during backward, so every layer is
     * visited; 0: masks are known before backward (early stop at the lowest layer). */
    uint8_t masks_on_delta;

    /* TRAIN_CONFIG: range-check the full vector (sp[0..n_sparams)). On error set
     * err->detail = index of the bad sparam. NULL: any finite value is accepted. */
    tr_status_t (*check)(const float *sp, tr_err_t *err);
    /* Memory plan of dims[0..n_layers] with the checked sparams sp. NULL: every parameter
     * may be trained, in any layer, with masks that change (momentum kept for all). */
    void (*plan)(uint8_t n_layers, const uint16_t *dims, const float *sp, strat_plan_t *p);
    /* Model or configuration changed: masks were zeroed and m->ss cleared (sparams
     * kept); set the initial masks and clear file-static state. Model exists. */
    void (*reset)(mlp_t *m);
    /* SELECT with validated validation samples [start, start+count): recompute masks.
     * Use mlp_forward_range/mlp_output in blocks of mlp_rows(m). Must leave state
     * unchanged when returning an error. NULL: SELECT changes nothing. */
    tr_status_t (*select)(mlp_t *m, const dataset_t *ds, uint32_t start, uint16_t count,
                          tr_err_t *err);
    /* After the forward pass, with the output error delta_{L-1} ([B][N] row-major, the
     * mean-reduced softmax-CE gradient). Return 1 to skip backward and update. */
    int (*skip)(mlp_t *m, const float *delta_out, uint16_t batch);
    /* Per layer, top down, with delta_l ([B][N_l], after the ReLU derivative): set
     * m->row_mask[l], m->bias_mask[l], m->prop_masked[l]. delta is read-only: the bias
     * gradient always uses the full delta, the weight gradient only row_mask rows. */
    void (*layer_select)(mlp_t *m, uint8_t layer, const float *delta, uint16_t batch);
};

/* Implemented strategy with this id, or NULL. */
const strategy_ops_t *strategy_find(uint8_t id);
/* HELLO bitmask: bit i set if strategy id i is linked in. */
uint16_t strategy_bitmask(void);

#endif
