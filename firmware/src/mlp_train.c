/* The head's training computation: forward, loss, EVAL, SELECT and the training step
 * (docs/training.md). The model, its arena and memory plan live in mlp.c. */
#include <string.h>

#include "backbone.h"
#include "hal.h"
#include "mlp.h"
#include "strategy.h"
#include "tr_marker.h"
#include "tr_train.h"
#include "wire.h"

/* ---- forward / loss ---------------------------------------------------------------- */

/* Forward samples idx[0..B) (idx NULL: start, start+1, ...), B <= m->rows. Layer 0 runs
 * over chunks of in_rows inputs (one chunk when act[0] holds all rows): each output is
 * still one sum, so chunking changes no value. */
static void forward(mlp_t *m, const dataset_t *ds, const uint16_t *idx, uint32_t start,
                    uint16_t B)
{
    const uint8_t L = m->n_layers;
    const uint16_t d0 = m->dims[0], R = m->in_rows;
    for (uint16_t n0 = 0; n0 < B; n0 = (uint16_t)(n0 + R)) {
        const uint16_t c = (uint16_t)(B - n0 < R ? B - n0 : R);
        for (uint16_t n = 0; n < c; n++)
            backbone_input(ds, idx ? idx[n0 + n] : start + n0 + n, m->act[0] + (size_t)n * d0);
        (void)tr_fc_forward_f32(m->act[0], c, d0, m->params + m->w_off[0],
                                m->params + m->b_off[0], m->dims[1], L > 1,
                                m->act[1] + (size_t)n0 * m->dims[1]);
    }
    for (uint8_t l = 1; l < L; l++)
        (void)tr_fc_forward_f32(m->act[l], B, m->dims[l], m->params + m->w_off[l],
                                m->params + m->b_off[l], m->dims[l + 1], l + 1 < L,
                                m->act[l + 1]);
}

/* The softmax denominator s = sum exp(z_j - m), m = max z (the first maximum, at *best);
 * each term tr_expf(z_j - m) also goes to e[j] if e is not NULL (e may be z: each z_j is
 * read before its e_j is written). The loss is (m + log s) - z_y (docs/training.md §2). */
static float softmax_sum(const float *z, uint16_t N, float *e, float *mx_out, uint16_t *best)
{
    uint16_t at = 0;
    float mx = z[0];
    for (uint16_t j = 1; j < N; j++)
        if (z[j] > mx) {
            mx = z[j];
            at = j;
        }
    float s = 0.0f;
    for (uint16_t j = 0; j < N; j++) {
        const float t = tr_expf(z[j] - mx);
        if (e)
            e[j] = t;
        s += t;
    }
    *mx_out = mx;
    *best = at;
    return s;
}

tr_status_t mlp_check_range(const mlp_t *m, const dataset_t *ds, uint32_t start, uint32_t count,
                            uint16_t start_off, tr_err_t *err)
{
    if (!m->n_layers)
        return tr_fail(err, TR_E_BAD_STATE, 0, "no MODEL_INIT");
    if (!ds->configured)
        return tr_fail(err, TR_E_BAD_STATE, 0, "no DATA_CONFIG");
    tr_status_t bst = backbone_check(ds, err); /* TR_OK when there is no backbone */
    if (bst != TR_OK)
        return bst;
    if (backbone_input_width(ds) != m->dims[0])
        return tr_fail(err, TR_E_BAD_STATE, 0, "dims[0] != n_features (or backbone features)");
    if ((uint64_t)start + count > ds->n_samples)
        return tr_fail(err, TR_E_BAD_ARG, start_off, "sample index >= n_samples");
    for (uint32_t i = start; i < start + count; i++) {
        if (!dataset_has(ds, i))
            return tr_fail(err, TR_E_BAD_STATE, start_off, "sample not written");
        if (dataset_label(ds, i) >= m->dims[m->n_layers])
            return tr_fail(err, TR_E_BAD_ARG, start_off, "label >= n_classes");
    }
    return TR_OK;
}

void mlp_forward_range(mlp_t *m, const dataset_t *ds, uint32_t start, uint16_t count)
{
    forward(m, ds, NULL, start, count);
}

const float *mlp_output(const mlp_t *m, uint8_t layer) { return m->act[layer + 1]; }

uint16_t mlp_rows(const mlp_t *m) { return m->rows; }

tr_status_t mlp_eval(mlp_t *m, const dataset_t *ds, uint32_t start, uint16_t count,
                     float *loss_sum, uint16_t *correct, uint8_t *pred, tr_err_t *err)
{
    tr_status_t st = mlp_check_range(m, ds, start, count, 0, err);
    if (st != TR_OK)
        return st;
    const uint16_t N = m->dims[m->n_layers];
    float sum = 0.0f;
    uint16_t ok = 0;
    const uint16_t R = m->rows;
    for (uint32_t c0 = 0; c0 < count; c0 += R) {
        uint16_t B = (uint16_t)((count - c0) < R ? (count - c0) : R);
        mlp_forward_range(m, ds, start + c0, B);
        for (uint16_t n = 0; n < B; n++) {
            const float *z = m->act[m->n_layers] + (size_t)n * N;
            uint8_t y = dataset_label(ds, start + c0 + n);
            float mx;
            uint16_t p;
            const float s = softmax_sum(z, N, NULL, &mx, &p);
            sum += (mx + tr_logf(s)) - z[y];
            pred[c0 + n] = (uint8_t)p;
            ok = (uint16_t)(ok + (p == y));
        }
    }
    *loss_sum = sum;
    *correct = ok;
    return TR_OK;
}

/* ---- selection bookkeeping ------------------------------------------------------- */

uint16_t mlp_layer_k(const mlp_t *m, uint8_t layer)
{
    uint16_t k = 0;
    for (uint16_t j = 0; j < m->dims[layer + 1]; j++)
        k = (uint16_t)(k + (m->row_mask[layer][j] != 0));
    return k;
}

uint32_t mlp_trainable_params(const mlp_t *m)
{
    uint32_t p = 0;
    for (uint8_t l = 0; l < m->n_layers; l++)
        for (uint16_t j = 0; j < m->dims[l + 1]; j++)
            p += (m->row_mask[l][j] ? m->dims[l] : 0u) + (m->bias_mask[l][j] ? 1u : 0u);
    return p;
}

void mlp_masks(const mlp_t *m, uint8_t layer, const uint8_t **row, const uint8_t **bias)
{
    *row = m->stepped ? m->used_row[layer] : m->row_mask[layer];
    *bias = m->stepped ? m->used_bias[layer] : m->bias_mask[layer];
}

tr_status_t mlp_select(mlp_t *m, const dataset_t *ds, uint32_t start, uint16_t count,
                       tr_err_t *err)
{
    if (!m->n_layers)
        return tr_fail(err, TR_E_BAD_STATE, 0, "no MODEL_INIT");
    if (!m->configured)
        return tr_fail(err, TR_E_BAD_STATE, 0, "no TRAIN_CONFIG");
    if (!m->strat->select)
        return TR_OK; /* not a mask strategy: accepted, nothing changes */
    if (count == 0)
        return tr_fail(err, TR_E_BAD_ARG, 4, "val_count must be >= 1");
    tr_status_t st = mlp_check_range(m, ds, start, count, 0, err);
    if (st != TR_OK)
        return st;
    tr_mark_select_msg_begin();
    st = m->strat->select(m, ds, start, count, err);
    tr_mark_select_msg_end();
    if (st == TR_OK)
        m->stepped = 0;
    return st;
}

/* ---- training step ----------------------------------------------------------------- */

/* Nothing applied: the record (UPDATE_READ, MASK_READ) shows zeros. */
static void clear_last_step(mlp_t *m)
{
    for (uint8_t l = 0; l < m->n_layers; l++) {
        memset(m->used_row[l], 0, m->dims[l + 1]);
        memset(m->used_bias[l], 0, m->dims[l + 1]);
    }
}

/* Running loss sum and correct count of a step's blocks (samples in batch order). */
typedef struct {
    float loss_sum;
    uint16_t correct;
} loss_acc_t;

/* Loss and correct count of the c samples idx[0..c) in act[L], added to acc, and their output
 * error delta_{L-1} = (softmax(z) - onehot(y)) / batch in its place (docs/training.md §2;
 * batch: the whole step's, of which these samples are a block). Each exp(z_j - m) is
 * computed once and kept in d[] for the error. */
static void loss_and_output_error(mlp_t *m, const dataset_t *ds, const uint16_t *idx,
                                  uint16_t c, uint16_t batch, loss_acc_t *acc)
{
    const uint16_t NO = m->dims[m->n_layers];
    const float fb = (float)batch;
    for (uint16_t n = 0; n < c; n++) {
        float *const z = m->act[m->n_layers] + (size_t)n * NO, *const d = z; /* in place */
        const uint8_t y = dataset_label(ds, idx[n]);
        const float zy = z[y];
        float mx;
        uint16_t best;
        const float s = softmax_sum(z, NO, d, &mx, &best);
        acc->loss_sum += (mx + tr_logf(s)) - zy;
        acc->correct = (uint16_t)(acc->correct + (best == y));
        for (uint16_t j = 0; j < NO; j++) {
            float q = d[j] / s;
            if (j == y)
                q = q - 1.0f;
            d[j] = q / fb;
        }
    }
}

/* Lowest layer backward must reach: 0 if masks are decided on delta (every layer is
 * visited), else the lowest layer with any row/bias mask bit (n_layers: none). */
static uint8_t lowest_layer(const mlp_t *m)
{
    if (m->strat->masks_on_delta)
        return 0;
    for (uint8_t l = 0; l < m->n_layers; l++)
        for (uint16_t j = 0; j < m->dims[l + 1]; j++)
            if (m->row_mask[l][j] || m->bias_mask[l][j])
                return l;
    return m->n_layers;
}

/* Where layer l's entries sit in the packed step store: weight rows from w, biases
 * from b (docs/training.md "Memory plan": layers top down, so TinyProp, which decides
 * each layer on the way down, knows its place when it gets there). */
typedef struct {
    uint32_t w[TR_MAX_LAYERS], b[TR_MAX_LAYERS];
} slots_t;

/* Place layer l behind what the layers above took (*next); returns nothing, advances it. */
static void place_layer(const mlp_t *m, uint8_t l, slots_t *sl, uint32_t *next)
{
    uint32_t k = 0, kb = 0;
    for (uint16_t j = 0; j < m->dims[l + 1]; j++) {
        k += m->row_mask[l][j] != 0;
        kb += m->bias_mask[l][j] != 0;
    }
    sl->w[l] = *next;
    sl->b[l] = *next + k * m->dims[l];
    *next = sl->b[l] + kb;
}

/* Layer l with the error delta_l of a block of `batch` samples in cur ([B][N]): bias
 * gradients (bias_mask rows, full delta) and weight gradients (row_mask rows) into the step
 * store at the layer's slots, from +0.0f for the first block, else continuing the sums of
 * the blocks before (`accumulate`); if propagate, delta_{l-1} into nxt ([B][in]) from W
 * before any update, through the row_mask rows if prop_masked[l] (TinyProp), else all. */
static void backward_layer(mlp_t *m, uint8_t l, const float *cur, float *nxt, uint16_t batch,
                           int propagate, int accumulate, const slots_t *sl)
{
    const uint16_t in = m->dims[l], N = m->dims[l + 1];
    float *gb = m->step + sl->b[l], *gw = m->step + sl->w[l];
    uint16_t *const rows = m->scratch_u16, k = 0; /* free between hooks: no stack for it */
    for (uint16_t j = 0; j < N; j++) {
        if (m->bias_mask[l][j]) {
            float g = accumulate ? *gb : 0.0f;
            for (uint16_t n = 0; n < batch; n++)
                g += cur[(size_t)n * N + j];
            *gb++ = g;
        }
    }
    /* The selected rows, ascending: their gradients go packed into the step store. */
    for (uint16_t j = 0; j < N; j++)
        if (m->row_mask[l][j])
            rows[k++] = j;
    (void)tr_fc_weight_grad_f32(cur, m->act[l], batch, N, in, rows, k, accumulate, gw);
    if (!propagate)
        return;
    if (!m->prop_masked[l])
        for (k = 0; k < N; k++)
            rows[k] = k;
    (void)tr_fc_backprop_f32(cur, batch, N, m->params + m->w_off[l], in, rows, k, m->act[l],
                             nxt);
}

/* The error of layer lo = l-1 when only its biases train: delta_lo is needed only for their
 * gradients, so it is made MLP_CHUNK_ROWS samples at a time in dchunk and each gradient
 * accumulates over the samples in order from +0.0f (first block; later blocks of a
 * streamed step continue the sums) - the same sums as the whole batch. */
static void backward_biases_chunked(mlp_t *m, uint8_t l, const float *cur, uint16_t batch,
                                    int accumulate, const slots_t *sl)
{
    const uint8_t lo = (uint8_t)(l - 1u);
    const uint16_t in = m->dims[l], N = m->dims[l + 1];
    uint16_t *const rows = m->scratch_u16, k = N;
    for (uint16_t j = 0; j < N; j++)
        rows[j] = j;
    if (m->prop_masked[l])
        for (uint16_t j = k = 0; j < N; j++)
            if (m->row_mask[l][j])
                rows[k++] = j;
    float *const gb = m->step + sl->b[lo];
    uint32_t kb = 0;
    if (!accumulate)
        for (uint16_t i = 0; i < in; i++)
            if (m->bias_mask[lo][i])
                gb[kb++] = 0.0f;
    for (uint16_t n0 = 0; n0 < batch; n0 = (uint16_t)(n0 + MLP_CHUNK_ROWS)) {
        const uint16_t c = (uint16_t)((uint32_t)(batch - n0) < MLP_CHUNK_ROWS ? (uint32_t)(batch - n0) : MLP_CHUNK_ROWS);
        (void)tr_fc_backprop_f32(cur + (size_t)n0 * N, c, N, m->params + m->w_off[l], in, rows,
                                 k, m->act[l] + (size_t)n0 * in, m->dchunk);
        float *g = gb;
        for (uint16_t i = 0; i < in; i++)
            if (m->bias_mask[lo][i]) {
                for (uint16_t n = 0; n < c; n++)
                    *g += m->dchunk[(size_t)n * in + i];
                g++;
            }
    }
}

/* SGD on a mask's runs of set entries: rows j..j1-1 of a layer are contiguous in p and in
 * the packed step store from *slot on, so each run is one kernel call. Momentum is at the
 * parameter's place, or at its slot when packed. */
static void update_runs(mlp_t *m, const uint8_t *mask, uint16_t N, uint32_t off, uint16_t len,
                        uint32_t slot)
{
    for (uint16_t j = 0; j < N;) {
        if (!mask[j]) {
            j++;
            continue;
        }
        uint16_t j1 = (uint16_t)(j + 1);
        while (j1 < N && mask[j1])
            j1++;
        const size_t o = off + (size_t)j * len;
        const uint32_t n = (uint32_t)(j1 - j) * len;
        float *v = m->mom ? m->mom + (m->mom_packed ? slot : o) : NULL;
        (void)tr_sgd_f32(m->params + o, v, m->step + slot, n, m->lr, m->momentum);
        slot += n;
        j = j1;
    }
}

/* SGD on the masked entries only (p and v untouched elsewhere; no layer below `lowest` has
 * a mask bit); the masks become the record for MASK_READ and the next step; k per layer. */
static void masked_update(mlp_t *m, uint8_t lowest, const slots_t *sl, mlp_step_result_t *res)
{
    for (uint8_t l = 0; l < m->n_layers; l++) {
        const uint16_t in = m->dims[l], N = m->dims[l + 1];
        if (l >= lowest) {
            update_runs(m, m->row_mask[l], N, m->w_off[l], in, sl->w[l]);
            update_runs(m, m->bias_mask[l], N, m->b_off[l], 1, sl->b[l]);
            res->k[l] = mlp_layer_k(m, l);
        }
        memcpy(m->used_row[l], m->row_mask[l], N); /* N, not the struct: 2 x 1.5 KB here */
        memcpy(m->used_bias[l], m->bias_mask[l], N);
    }
    m->stepped = 1;
}

/* Validate a TRAIN_STEP request fully before anything changes. */
static tr_status_t check_step(const mlp_t *m, const dataset_t *ds, const uint16_t *idx,
                              uint16_t batch, tr_err_t *err)
{
    if (batch == 0 || batch > TR_MAX_BATCH)
        return tr_fail(err, TR_E_BAD_ARG, 0, "batch not in 1..max_batch");
    if (!m->n_layers)
        return tr_fail(err, TR_E_BAD_STATE, 0, "no MODEL_INIT");
    if (!m->configured)
        return tr_fail(err, TR_E_BAD_STATE, 0, "no TRAIN_CONFIG");
    if (batch > m->batch_cap)
        return tr_fail(err, TR_E_BAD_ARG, 0, "batch > TRAIN_CONFIG batch");
    for (uint16_t n = 0; n < batch; n++) {
        tr_status_t st = mlp_check_range(m, ds, idx[n], 1, (uint16_t)(4 + 2 * n), err);
        if (st != TR_OK)
            return st;
    }
    /* Masks known before the step must lie inside the memory plan (a plan bug otherwise;
     * masks decided on delta have a plan that allows every selection). */
    if (!m->strat->masks_on_delta &&
        (lowest_layer(m) < m->plan_lowest || mlp_trainable_params(m) > m->step_cap))
        return tr_fail(err, TR_E_NO_SPACE, 0, "selection outside the memory plan");
    return TR_OK;
}

/* Backward of one block of c samples (output error in act[L]) from the top down to
 * `lowest`; the first block decides per-step masks (layer_select) and places each layer in
 * the packed store (sl, *next_slot), later blocks add to the sums. The errors below the
 * output alternate between delta[0] and delta[1], except a bias-only lowest layer's, which
 * is made in chunks (memory plan). */
static void backward_block(mlp_t *m, uint8_t lowest, int chunked, uint16_t c, int first,
                           slots_t *sl, uint32_t *next_slot, mlp_step_result_t *res)
{
    const strategy_ops_t *S = m->strat;
    const float *cur = m->act[m->n_layers];
    uint8_t bi = 0;
    uint32_t t0, t;
    for (int li = (int)m->n_layers - 1; li >= (int)lowest; li--) {
        const uint8_t l = (uint8_t)li;
        if (S->layer_select) { /* per-step masks: the whole batch is one block */
            t0 = tr_phase_begin(TR_PHASE_SELECTION);
            S->layer_select(m, l, cur, c);
            t = tr_phase_end(TR_PHASE_SELECTION);
            res->counters[TR_PHASE_SELECTION] += t - t0;
        }
        t0 = tr_phase_begin(TR_PHASE_BACKWARD);
        if (first)
            place_layer(m, l, sl, next_slot);
        if (chunked && l == lowest + 1u) {
            if (first)
                place_layer(m, lowest, sl, next_slot);
            backward_layer(m, l, cur, NULL, c, 0, !first, sl);
            backward_biases_chunked(m, l, cur, c, !first, sl);
            t = tr_phase_end(TR_PHASE_BACKWARD);
            res->counters[TR_PHASE_BACKWARD] += t - t0;
            return;
        }
        backward_layer(m, l, cur, m->delta[bi], c, l > lowest, !first, sl);
        if (l > lowest) {
            cur = m->delta[bi];
            bi ^= 1u;
        }
        t = tr_phase_end(TR_PHASE_BACKWARD);
        res->counters[TR_PHASE_BACKWARD] += t - t0;
    }
}

/* The step in the order of strategy.h; every phase mark and counter read is here. A batch
 * larger than m->rows (a strategy whose masks are known before the step) streams through
 * forward, loss and backward in blocks of m->rows samples; gradients, the loss sum and the
 * bias sums continue from block to block in sample order, so the arithmetic is that of the
 * whole batch at once (docs/training.md "Memory plan"). */
tr_status_t mlp_train_step(mlp_t *m, const dataset_t *ds, const uint16_t *idx, uint16_t batch,
                           mlp_step_result_t *res, tr_err_t *err)
{
    tr_status_t st = check_step(m, ds, idx, batch, err);
    if (st != TR_OK)
        return st;

    const uint8_t L = m->n_layers;
    const strategy_ops_t *S = m->strat;
    tr_mark_step_begin();
    memset(res, 0, sizeof *res);
    /* Backward reaches down to the lowest layer that can have a selection. */
    const uint8_t lowest = lowest_layer(m);
    int chunked = 0;
    if (m->dchunk && lowest == m->plan_lowest && lowest + 1u < L)
        chunked = mlp_layer_k(m, lowest) == 0;
    slots_t sl;
    uint32_t next_slot = 0, t0, t;
    loss_acc_t acc = {0.0f, 0};
    for (uint16_t n0 = 0; n0 < batch; n0 = (uint16_t)(n0 + m->rows)) {
        const uint16_t c = (uint16_t)(batch - n0 < m->rows ? batch - n0 : m->rows);
        t0 = tr_phase_begin(TR_PHASE_FORWARD);
        forward(m, ds, idx + n0, 0, c);
        tr_mark_begin(TR_MARK_LOSS);
        loss_and_output_error(m, ds, idx + n0, c, batch, &acc);
        tr_mark_end(TR_MARK_LOSS);
        t = tr_phase_end(TR_PHASE_FORWARD);
        res->counters[TR_PHASE_FORWARD] += t - t0;
        res->loss = acc.loss_sum / (float)batch; /* final after the last block */
        res->correct = acc.correct;

        if (S->skip) { /* decided on the batch's output error: the batch is one block */
            t0 = t;
            tr_mark_begin(TR_PHASE_SELECTION);
            int skip = S->skip(m, m->act[L], c);
            t = tr_phase_end(TR_PHASE_SELECTION);
            res->counters[TR_PHASE_SELECTION] += t - t0;
            if (skip) {
                t0 = t;
                tr_mark_begin(TR_PHASE_UPDATE);
                clear_last_step(m); /* nothing applied: the record shows zeros */
                m->stepped = 1;
                t = tr_phase_end(TR_PHASE_UPDATE);
                res->counters[TR_PHASE_UPDATE] += t - t0;
                res->skipped = 1;
                tr_mark_step_end();
                return TR_OK;
            }
        }
        backward_block(m, lowest, chunked, c, n0 == 0, &sl, &next_slot, res);
    }

    t0 = tr_phase_begin(TR_PHASE_UPDATE);
    masked_update(m, lowest, &sl, res);
    t = tr_phase_end(TR_PHASE_UPDATE);
    res->counters[TR_PHASE_UPDATE] += t - t0;
    tr_mark_step_end();
    return TR_OK;
}
