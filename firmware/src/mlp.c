#include "mlp.h"

#include <math.h>
#include <string.h>

#include "backbone.h"
#include "hal.h"
#include "strategy.h"
#include "tr_marker.h"
#include "tr_train.h"
#include "wire.h"

/* One static arena (no heap) for everything training needs, laid out per model and
 * configuration by the memory plan below (docs/training.md "Memory plan"). Default size:
 * what separate fixed arrays took before, so every model that fitted still fits. */
#define ACT_SLOT ((size_t)TR_MAX_BATCH * TR_MAX_WIDTH)
#ifndef TR_ARENA_FLOATS
#define TR_ARENA_FLOATS (3u * (size_t)TR_PARAM_CAPACITY + (TR_MAX_LAYERS + 3u) * ACT_SLOT)
#endif
/* Samples per chunk where the plan keeps only a chunk (inputs of a layer whose weights never
 * train; the error of a bias-only lowest layer): the forward kernel's sample block. */
#define CHUNK_ROWS (TR_MAX_BATCH < 4u ? TR_MAX_BATCH : 4u)
static float arena[TR_ARENA_FLOATS];
static uint32_t arena_high; /* bytes, high-water mark of the layouts since RESET */

/* Sizes (floats, rows) of one layout; plan_layout fills it. */
typedef struct {
    uint32_t params, step, mom;
    uint8_t mom_packed, lowest;
    uint16_t in_rows;  /* act[0] rows */
    uint16_t dwidth;   /* width of each batch-wide error buffer */
    uint8_t n_delta;   /* 0..2 batch-wide error buffers */
    uint16_t chunk_w;  /* width of the chunked lowest-layer error (0: none) */
    uint32_t sel;      /* selection scratch */
} layout_t;

static size_t layout_floats(const layout_t *y, uint8_t L, const uint16_t *dims)
{
    size_t n = (size_t)y->params + y->step + y->mom + (size_t)y->in_rows * dims[0];
    for (uint8_t l = 1; l <= L; l++)
        n += (size_t)TR_MAX_BATCH * dims[l];
    return n + (size_t)y->n_delta * TR_MAX_BATCH * y->dwidth + (size_t)CHUNK_ROWS * y->chunk_w +
           y->sel;
}

/* The memory plan of dims under strategy s (NULL: no TRAIN_CONFIG yet, forward only) with
 * sparams sp and momentum mu; returns its floats. Activations: act[1..L] for the whole
 * batch (the next layer's input, the ReLU derivative, weight gradients); act[0] for the
 * whole batch only if layer 0's weights can train. The output error replaces the logits in
 * act[L]; error buffers only for the layers the error can reach. */
static size_t plan_layout(uint8_t L, const uint16_t *dims, uint32_t n_params,
                          const strategy_ops_t *s, const float *sp, float mu, layout_t *y)
{
    strat_plan_t p = {n_params, 0, 0, 0, 0};
    if (!s)
        p = (strat_plan_t){0, L, L, 0, 0};
    else if (s->plan)
        s->plan(L, dims, sp, &p);
    if (p.max_trainable > n_params)
        p.max_trainable = n_params;
    memset(y, 0, sizeof *y);
    y->params = n_params;
    y->step = p.max_trainable;
    y->lowest = p.lowest;
    y->sel = p.sel_floats;
    if (s && mu > 0.0f) {
        y->mom_packed = p.fixed;
        y->mom = p.fixed ? p.max_trainable : n_params; /* changing masks keep every v */
    }
    y->in_rows = (uint16_t)(p.weights_from == 0 ? TR_MAX_BATCH : CHUNK_ROWS);
    /* delta_{l-1} (width dims[l]) for l = L-1 .. lowest+1 */
    uint8_t targets = 0;
    for (int l = (int)L - 1; l > (int)p.lowest; l--) {
        if (l == (int)p.lowest + 1 && p.weights_from > p.lowest) {
            y->chunk_w = dims[l]; /* only the biases of layer `lowest` use it */
            continue;
        }
        targets++;
        if (dims[l] > y->dwidth)
            y->dwidth = dims[l];
    }
    y->n_delta = targets < 2 ? targets : 2;
    return layout_floats(y, L, dims);
}

/* Point params/step/mom/act/delta into the arena for the current model (caller checked the
 * size). Params and step lead, so a new configuration never moves them. */
static void mlp_layout(mlp_t *m, const layout_t *y)
{
    float *p = arena;
    m->params = p, p += y->params;
    m->step = p, p += y->step;
    m->step_cap = y->step;
    m->mom = y->mom ? p : NULL, p += y->mom;
    m->mom_packed = y->mom_packed;
    m->plan_lowest = y->lowest;
    m->in_rows = y->in_rows;
    m->act[0] = p, p += (size_t)y->in_rows * m->dims[0];
    for (uint8_t l = 1; l <= m->n_layers; l++)
        m->act[l] = p, p += (size_t)TR_MAX_BATCH * m->dims[l];
    for (uint8_t i = 0; i < 2; i++) {
        m->delta[i] = i < y->n_delta ? p : NULL;
        p += i < y->n_delta ? (size_t)TR_MAX_BATCH * y->dwidth : 0u;
    }
    m->dchunk = y->chunk_w ? p : NULL;
    m->dchunk_w = y->chunk_w;
    p += (size_t)CHUNK_ROWS * y->chunk_w;
    m->sel = y->sel ? p : NULL;
    p += y->sel;
    m->arena_end = p;
    const uint32_t used = (uint32_t)((size_t)(p - arena) * sizeof(float));
    if (used > arena_high)
        arena_high = used;
}

/* Entries of the packed step store that masks (row, bias) of layers [from, n_layers) take
 * (the store runs from the top layer down). */
static uint32_t packed_from(const mlp_t *m, const uint8_t (*row)[TR_MAX_WIDTH],
                            const uint8_t (*bias)[TR_MAX_WIDTH], uint8_t from)
{
    uint32_t n = 0;
    for (uint8_t l = from; l < m->n_layers; l++)
        for (uint16_t j = 0; j < m->dims[l + 1]; j++)
            n += (row[l][j] ? m->dims[l] : 0u) + (bias[l][j] ? 1u : 0u);
    return n;
}

/* "arena: needs N B, has M B" in a static buffer (the NAK text outlives the handler). */
static const char *arena_text(size_t floats)
{
    static char buf[48];
    static const char head[] = "arena: needs ", mid[] = " B, has ", tail[] = " B";
    const uint32_t v[2] = {(uint32_t)(floats * sizeof(float)),
                           (uint32_t)(TR_ARENA_FLOATS * sizeof(float))};
    const char *parts[3] = {head, mid, tail};
    size_t n = 0;
    for (unsigned k = 0; k < 3; k++) {
        for (const char *c = parts[k]; *c; c++)
            buf[n++] = *c;
        if (k < 2) {
            char d[10];
            unsigned nd = 0;
            uint32_t x = v[k];
            do
                d[nd++] = (char)('0' + x % 10u);
            while ((x /= 10u) != 0);
            while (nd)
                buf[n++] = d[--nd];
        }
    }
    buf[n] = 0;
    return buf;
}

void mlp_reset(mlp_t *m)
{
    memset(m, 0, sizeof *m);
    arena_high = 0;
    layout_t y;
    (void)plan_layout(0, m->dims, 0, NULL, NULL, 0.0f, &y);
    mlp_layout(m, &y);
}

float *mlp_arena_extra(mlp_t *m, uint32_t floats, uint16_t detail, tr_err_t *err)
{
    const size_t end = (size_t)(m->arena_end - arena) + floats;
    if (end > TR_ARENA_FLOATS) {
        (void)tr_fail(err, TR_E_NO_SPACE, detail, arena_text(end));
        return NULL;
    }
    const uint32_t used = (uint32_t)(end * sizeof(float));
    if (used > arena_high)
        arena_high = used;
    return m->arena_end;
}

void mlp_arena_stats(uint32_t *high_water, uint32_t *size)
{
    *high_water = arena_high;
    *size = (uint32_t)(TR_ARENA_FLOATS * sizeof(float));
}

void mlp_set_all_masks(mlp_t *m, uint8_t v)
{
    memset(m->row_mask, 0, sizeof m->row_mask);
    memset(m->bias_mask, 0, sizeof m->bias_mask);
    memset(m->prop_masked, 0, sizeof m->prop_masked);
    if (v)
        for (uint8_t l = 0; l < m->n_layers; l++) {
            memset(m->row_mask[l], 1, m->dims[l + 1]);
            memset(m->bias_mask[l], 1, m->dims[l + 1]);
        }
}

/* Model or configuration changed: fresh strategy state and initial masks. */
static void strategy_restart(mlp_t *m)
{
    float sp[TR_MAX_SPARAMS];
    memcpy(sp, m->ss.sparams, sizeof sp);
    memset(&m->ss, 0, sizeof m->ss);
    memcpy(m->ss.sparams, sp, sizeof sp);
    mlp_set_all_masks(m, 0);
    m->stepped = 0;
    if (m->configured && m->n_layers && m->strat->reset)
        m->strat->reset(m);
}

tr_status_t mlp_model_init(mlp_t *m, uint8_t n_layers, const uint16_t *dims, tr_err_t *err)
{
    if (n_layers == 0 || n_layers > TR_MAX_LAYERS)
        return tr_fail(err, TR_E_BAD_ARG, 0, "n_layers not in 1..max_layers");
    uint32_t total = 0;
    for (uint8_t l = 0; l <= n_layers; l++)
        if (dims[l] == 0 || dims[l] > TR_MAX_WIDTH)
            return tr_fail(err, TR_E_BAD_ARG, (uint16_t)(2 + 2 * l), "dim not in 1..max_width");
    for (uint8_t l = 0; l < n_layers; l++)
        total += (uint32_t)dims[l] * dims[l + 1] + dims[l + 1];
    if (total > TR_PARAM_CAPACITY)
        return tr_fail(err, TR_E_NO_SPACE, 0, "n_params exceeds param_capacity");
    layout_t y;
    const size_t need = plan_layout(n_layers, dims, total, m->configured ? m->strat : NULL,
                                    m->ss.sparams, m->momentum, &y);
    if (need > TR_ARENA_FLOATS)
        return tr_fail(err, TR_E_NO_SPACE, 0, arena_text(need));

    m->n_layers = n_layers;
    memset(m->dims, 0, sizeof m->dims);
    uint32_t off = 0;
    for (uint8_t l = 0; l <= n_layers; l++)
        m->dims[l] = dims[l];
    for (uint8_t l = 0; l < n_layers; l++) {
        m->w_off[l] = off;
        off += (uint32_t)dims[l] * dims[l + 1];
        m->b_off[l] = off;
        off += dims[l + 1];
    }
    m->n_params = total;
    mlp_layout(m, &y);
    memset(m->params, 0, total * sizeof(float));
    if (m->mom)
        memset(m->mom, 0, y.mom * sizeof(float));
    memset(m->used_row, 0, sizeof m->used_row);
    memset(m->used_bias, 0, sizeof m->used_bias);
    strategy_restart(m);
    return TR_OK;
}

tr_status_t mlp_configure(mlp_t *m, float lr, float momentum, uint8_t strategy,
                          const float *sparams, uint8_t n_sp, tr_err_t *err)
{
    if (!f32_finite(lr) || lr < 0.0f)
        return tr_fail(err, TR_E_BAD_ARG, 0, "lr must be finite and >= 0");
    if (!f32_finite(momentum) || momentum < 0.0f)
        return tr_fail(err, TR_E_BAD_ARG, 4, "momentum must be finite and >= 0");
    const strategy_ops_t *s = strategy_find(strategy);
    if (!s)
        return tr_fail(err, TR_E_BAD_ARG, 8, "strategy not implemented (see HELLO)");
    if (n_sp > s->n_sparams)
        return tr_fail(err, TR_E_BAD_ARG, 9, "too many sparams for strategy");
    float sp[TR_MAX_SPARAMS] = {0};
    for (uint8_t i = 0; i < s->n_sparams && i < TR_MAX_SPARAMS; i++)
        sp[i] = (i < n_sp) ? sparams[i] : s->defaults[i];
    for (uint8_t i = 0; i < n_sp; i++)
        if (!f32_finite(sp[i]))
            return tr_fail(err, TR_E_BAD_ARG, (uint16_t)(12 + 4 * i), "sparam not finite");
    if (s->check) {
        tr_err_t e = {0, NULL};
        if (s->check(sp, &e) != TR_OK)
            return tr_fail(err, TR_E_BAD_ARG, (uint16_t)(12 + 4 * e.detail),
                           e.text ? e.text : "sparam out of range");
    }
    layout_t y;
    if (m->n_layers) {
        const size_t need = plan_layout(m->n_layers, m->dims, m->n_params, s, sp, momentum, &y);
        if (need > TR_ARENA_FLOATS)
            return tr_fail(err, TR_E_NO_SPACE, 4, arena_text(need));
    }
    m->configured = 1;
    m->lr = lr;
    m->momentum = momentum;
    m->strat = s;
    memcpy(m->ss.sparams, sp, sizeof sp);
    if (m->n_layers) {
        /* The step store stays where it is: the last step's record survives unless the new
         * store is too small for it. */
        if (packed_from(m, m->used_row, m->used_bias, 0) > y.step) {
            memset(m->used_row, 0, sizeof m->used_row);
            memset(m->used_bias, 0, sizeof m->used_bias);
        }
        mlp_layout(m, &y);
        if (m->mom)
            memset(m->mom, 0, y.mom * sizeof(float));
    }
    strategy_restart(m);
    return TR_OK;
}

float *mlp_param_tensor(mlp_t *m, uint8_t layer, uint8_t which, uint32_t *size)
{
    *size = which == TR_WHICH_WEIGHT ? (uint32_t)m->dims[layer] * m->dims[layer + 1] : m->dims[layer + 1];
    return m->params + (which == TR_WHICH_WEIGHT ? m->w_off[layer] : m->b_off[layer]);
}

void mlp_step_read(const mlp_t *m, uint8_t layer, uint8_t which, uint32_t off, uint32_t count,
                   float *out)
{
    const uint16_t in = m->dims[layer], N = m->dims[layer + 1];
    const uint8_t *row = m->used_row[layer], *bias = m->used_bias[layer];
    uint32_t slot = packed_from(m, m->used_row, m->used_bias, (uint8_t)(layer + 1u));
    if (which == TR_WHICH_BIAS) {
        for (uint16_t j = 0; j < N; j++)
            slot += row[j] ? in : 0u;
        for (uint16_t j = 0; j < off; j++)
            slot += bias[j] != 0;
        for (uint32_t i = 0; i < count; i++) {
            const uint32_t j = off + i;
            out[i] = bias[j] ? m->step[slot++] : 0.0f;
        }
        return;
    }
    const uint32_t j0 = off / in;
    for (uint32_t j = 0; j < j0; j++)
        slot += row[j] ? in : 0u;
    for (uint32_t i = 0; i < count; i++) {
        const uint32_t e = off + i, j = e / in, c = e % in;
        if (c == 0 && i > 0 && row[j - 1])
            slot += in; /* the previous row's entries are behind us */
        out[i] = row[j] ? m->step[slot + c] : 0.0f;
    }
}

/* ---- forward / loss ---------------------------------------------------------------- */

/* Forward samples idx[0..B) (idx NULL: start, start+1, ...). Layer 0 runs over chunks of
 * in_rows inputs (one chunk when act[0] holds the batch): each output is still one sum, so
 * chunking changes no value. */
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
    m->batch = B;
}

static uint16_t argmax_first(const float *z, uint16_t N)
{
    uint16_t best = 0;
    for (uint16_t j = 1; j < N; j++)
        if (z[j] > z[best])
            best = j;
    return best;
}

/* loss_n = (m + logf(s)) - z_y with m = max z, s = sum expf(z - m). */
static float sample_loss(const float *z, uint16_t N, uint8_t y, float *mx_out, float *s_out)
{
    float mx = z[0];
    for (uint16_t j = 1; j < N; j++)
        if (z[j] > mx)
            mx = z[j];
    float s = 0.0f;
    for (uint16_t j = 0; j < N; j++)
        s += expf(z[j] - mx);
    *mx_out = mx;
    *s_out = s;
    return (mx + logf(s)) - z[y];
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

tr_status_t mlp_eval(mlp_t *m, const dataset_t *ds, uint32_t start, uint16_t count,
                     float *loss_sum, uint16_t *correct, uint8_t *pred, tr_err_t *err)
{
    tr_status_t st = mlp_check_range(m, ds, start, count, 0, err);
    if (st != TR_OK)
        return st;
    const uint16_t N = m->dims[m->n_layers];
    float sum = 0.0f;
    uint16_t ok = 0;
    for (uint32_t c0 = 0; c0 < count; c0 += TR_MAX_BATCH) {
        uint16_t B = (uint16_t)((count - c0) < TR_MAX_BATCH ? (count - c0) : TR_MAX_BATCH);
        mlp_forward_range(m, ds, start + c0, B);
        for (uint16_t n = 0; n < B; n++) {
            const float *z = m->act[m->n_layers] + (size_t)n * N;
            uint8_t y = dataset_label(ds, start + c0 + n);
            float mx, s;
            sum += sample_loss(z, N, y, &mx, &s);
            uint16_t p = argmax_first(z, N);
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

/* Loss and correct count of the batch in act[L], and the output error delta_{L-1} =
 * (softmax(z) - onehot(y)) / B in its place (docs/training.md §2). Same arithmetic as
 * sample_loss, but each expf(z_j - m) is computed once and kept in d[] for the error. */
static void loss_and_output_error(mlp_t *m, const dataset_t *ds, const uint16_t *idx,
                                  uint16_t batch, mlp_step_result_t *res)
{
    const uint16_t NO = m->dims[m->n_layers];
    const float fb = (float)batch;
    float loss_sum = 0.0f;
    uint16_t correct = 0;
    for (uint16_t n = 0; n < batch; n++) {
        float *const z = m->act[m->n_layers] + (size_t)n * NO, *const d = z; /* in place */
        const uint8_t y = dataset_label(ds, idx[n]);
        const float zy = z[y];
        uint16_t best = 0; /* argmax_first: the first maximum is the max */
        float mx = z[0];
        for (uint16_t j = 1; j < NO; j++)
            if (z[j] > mx) {
                mx = z[j];
                best = j;
            }
        float s = 0.0f;
        for (uint16_t j = 0; j < NO; j++) {
            d[j] = expf(z[j] - mx);
            s += d[j];
        }
        loss_sum += (mx + logf(s)) - zy;
        correct = (uint16_t)(correct + (best == y));
        for (uint16_t j = 0; j < NO; j++) {
            float q = d[j] / s;
            if (j == y)
                q = q - 1.0f;
            d[j] = q / fb;
        }
    }
    res->loss = loss_sum / fb;
    res->correct = correct;
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

/* Layer l with its error delta_l in cur ([B][N]): bias gradients (bias_mask rows, full
 * delta) and weight gradients (row_mask rows) into the step store at the layer's slots;
 * if propagate, delta_{l-1} into nxt ([B][in]) from W before any update, through the
 * row_mask rows if prop_masked[l] (TinyProp), else through all rows. */
static void backward_layer(mlp_t *m, uint8_t l, const float *cur, float *nxt, uint16_t batch,
                           int propagate, const slots_t *sl)
{
    const uint16_t in = m->dims[l], N = m->dims[l + 1];
    float *gb = m->step + sl->b[l], *gw = m->step + sl->w[l];
    uint16_t *const rows = m->scratch_u16, k = 0; /* free between hooks: no stack for it */
    for (uint16_t j = 0; j < N; j++) {
        if (m->bias_mask[l][j]) {
            float g = 0.0f;
            for (uint16_t n = 0; n < batch; n++)
                g += cur[(size_t)n * N + j];
            *gb++ = g;
        }
    }
    /* The selected rows, ascending: their gradients go packed into the step store. */
    for (uint16_t j = 0; j < N; j++)
        if (m->row_mask[l][j])
            rows[k++] = j;
    (void)tr_fc_weight_grad_f32(cur, m->act[l], batch, N, in, rows, k, gw);
    if (!propagate)
        return;
    if (!m->prop_masked[l])
        for (k = 0; k < N; k++)
            rows[k] = k;
    (void)tr_fc_backprop_f32(cur, batch, N, m->params + m->w_off[l], in, rows, k, m->act[l],
                             nxt);
}

/* The error of layer lo = l-1 when only its biases train: delta_lo is needed only for their
 * gradients, so it is made CHUNK_ROWS samples at a time in dchunk and each gradient
 * accumulates over the samples in order from +0.0f - the same sums as the whole batch. */
static void backward_biases_chunked(mlp_t *m, uint8_t l, const float *cur, uint16_t batch,
                                    const slots_t *sl)
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
    for (uint16_t i = 0; i < in; i++)
        if (m->bias_mask[lo][i])
            gb[kb++] = 0.0f;
    for (uint16_t n0 = 0; n0 < batch; n0 = (uint16_t)(n0 + CHUNK_ROWS)) {
        const uint16_t c = (uint16_t)((uint32_t)(batch - n0) < CHUNK_ROWS ? (uint32_t)(batch - n0) : CHUNK_ROWS);
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

/* The step in the order of strategy.h; every phase mark and counter read is here. */
tr_status_t mlp_train_step(mlp_t *m, const dataset_t *ds, const uint16_t *idx, uint16_t batch,
                           mlp_step_result_t *res, tr_err_t *err)
{
    tr_status_t st = check_step(m, ds, idx, batch, err);
    if (st != TR_OK)
        return st;

    const uint8_t L = m->n_layers;
    tr_mark_step_begin();
    uint32_t t0 = tr_phase_begin(TR_PHASE_FORWARD), t;
    memset(res, 0, sizeof *res);
    forward(m, ds, idx, 0, batch);
    tr_mark_begin(TR_MARK_LOSS);
    loss_and_output_error(m, ds, idx, batch, res);
    tr_mark_end(TR_MARK_LOSS);
    t = tr_phase_end(TR_PHASE_FORWARD);
    res->counters[TR_PHASE_FORWARD] = t - t0;

    const strategy_ops_t *S = m->strat;
    if (S->skip) {
        t0 = t;
        tr_mark_begin(TR_PHASE_SELECTION);
        int skip = S->skip(m, m->act[L], batch);
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

    /* Backward from the top down to the lowest layer that can have a selection. The output
     * error is in act[L]; the errors below alternate between delta[0] and delta[1], except
     * a bias-only lowest layer's, which is made in chunks (memory plan). */
    const uint8_t lowest = lowest_layer(m);
    int chunked = 0;
    if (m->dchunk && lowest == m->plan_lowest && lowest + 1u < L)
        chunked = mlp_layer_k(m, lowest) == 0;
    slots_t sl;
    uint32_t next_slot = 0;
    const float *cur = m->act[L];
    uint8_t bi = 0;
    for (int li = (int)L - 1; li >= (int)lowest; li--) {
        const uint8_t l = (uint8_t)li;
        if (S->layer_select) {
            t0 = tr_phase_begin(TR_PHASE_SELECTION);
            S->layer_select(m, l, cur, batch);
            t = tr_phase_end(TR_PHASE_SELECTION);
            res->counters[TR_PHASE_SELECTION] += t - t0;
        }
        t0 = tr_phase_begin(TR_PHASE_BACKWARD);
        place_layer(m, l, &sl, &next_slot);
        if (chunked && l == lowest + 1u) {
            place_layer(m, lowest, &sl, &next_slot);
            backward_layer(m, l, cur, NULL, batch, 0, &sl);
            backward_biases_chunked(m, l, cur, batch, &sl);
            t = tr_phase_end(TR_PHASE_BACKWARD);
            res->counters[TR_PHASE_BACKWARD] += t - t0;
            break;
        }
        backward_layer(m, l, cur, m->delta[bi], batch, l > lowest, &sl);
        if (l > lowest) {
            cur = m->delta[bi];
            bi ^= 1u;
        }
        t = tr_phase_end(TR_PHASE_BACKWARD);
        res->counters[TR_PHASE_BACKWARD] += t - t0;
    }

    t0 = tr_phase_begin(TR_PHASE_UPDATE);
    masked_update(m, lowest, &sl, res);
    t = tr_phase_end(TR_PHASE_UPDATE);
    res->counters[TR_PHASE_UPDATE] += t - t0;
    tr_mark_step_end();
    return TR_OK;
}
