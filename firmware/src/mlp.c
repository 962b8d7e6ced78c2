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
 * configuration by mlp_layout (docs/training.md "Memory plan"). Default size: what the
 * separate fixed arrays took before, so every model that fitted still fits. */
#define ACT_SLOT ((size_t)TR_MAX_BATCH * TR_MAX_WIDTH)
#ifndef TR_ARENA_FLOATS
#define TR_ARENA_FLOATS (3u * (size_t)TR_PARAM_CAPACITY + (TR_MAX_LAYERS + 3u) * ACT_SLOT)
#endif
static float arena[TR_ARENA_FLOATS];
static uint32_t arena_high; /* bytes, high-water mark of the layouts since RESET */

/* Floats the layout of dims needs: params | step | act[0..L] | delta[2] | momentum.
 * Activations and errors are sized by the model's widths at max_batch; the momentum
 * buffer exists only with momentum > 0 (PyTorch keeps none at 0 either). */
static size_t layout_floats(uint8_t L, const uint16_t *dims, uint32_t n_params, int with_mom)
{
    size_t act = 0;
    uint16_t wmax = 0;
    for (uint8_t l = 0; l <= L; l++) {
        act += (size_t)TR_MAX_BATCH * dims[l];
        if (l >= 1 && dims[l] > wmax)
            wmax = dims[l];
    }
    return 2u * (size_t)n_params + act + 2u * (size_t)TR_MAX_BATCH * wmax +
           (with_mom ? n_params : 0u);
}

/* Point params/step/act/delta/mom into the arena for the current model (caller checked the
 * size). Params and step lead, so a new configuration never moves them. */
static void mlp_layout(mlp_t *m, int with_mom)
{
    float *p = arena;
    m->params = p, p += m->n_params;
    m->step = p, p += m->n_params;
    for (uint8_t l = 0; l <= m->n_layers; l++)
        m->act[l] = p, p += (size_t)TR_MAX_BATCH * m->dims[l];
    uint16_t wmax = 0;
    for (uint8_t l = 1; l <= m->n_layers; l++)
        if (m->dims[l] > wmax)
            wmax = m->dims[l];
    m->delta[0] = p, p += (size_t)TR_MAX_BATCH * wmax;
    m->delta[1] = p, p += (size_t)TR_MAX_BATCH * wmax;
    m->mom = with_mom ? p : NULL;
    p += with_mom ? m->n_params : 0u;
    const uint32_t used = (uint32_t)((size_t)(p - arena) * sizeof(float));
    if (used > arena_high)
        arena_high = used;
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
    mlp_layout(m, 0);
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
    const int with_mom = m->configured && m->momentum > 0.0f;
    const size_t need = layout_floats(n_layers, dims, total, with_mom);
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
    mlp_layout(m, with_mom);
    memset(m->params, 0, total * sizeof(float));
    if (m->mom)
        memset(m->mom, 0, total * sizeof(float));
    memset(m->step, 0, total * sizeof(float));
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
    if (m->n_layers) {
        const size_t need = layout_floats(m->n_layers, m->dims, m->n_params, momentum > 0.0f);
        if (need > TR_ARENA_FLOATS)
            return tr_fail(err, TR_E_NO_SPACE, 4, arena_text(need));
    }
    m->configured = 1;
    m->lr = lr;
    m->momentum = momentum;
    m->strat = s;
    memcpy(m->ss.sparams, sp, sizeof sp);
    if (m->n_layers) {
        mlp_layout(m, momentum > 0.0f);
        if (m->mom)
            memset(m->mom, 0, m->n_params * sizeof(float));
    }
    strategy_restart(m);
    return TR_OK;
}

float *mlp_param_tensor(mlp_t *m, uint8_t layer, uint8_t which, uint32_t *size)
{
    *size = which == TR_WHICH_WEIGHT ? (uint32_t)m->dims[layer] * m->dims[layer + 1] : m->dims[layer + 1];
    return m->params + (which == TR_WHICH_WEIGHT ? m->w_off[layer] : m->b_off[layer]);
}

float *mlp_step_tensor(mlp_t *m, uint8_t layer, uint8_t which, uint32_t *size)
{
    *size = which == TR_WHICH_WEIGHT ? (uint32_t)m->dims[layer] * m->dims[layer + 1] : m->dims[layer + 1];
    return m->step + (which == TR_WHICH_WEIGHT ? m->w_off[layer] : m->b_off[layer]);
}

/* ---- forward / loss ---------------------------------------------------------------- */

static void forward(mlp_t *m, uint16_t B)
{
    const uint8_t L = m->n_layers;
    for (uint8_t l = 0; l < L; l++)
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
    for (uint16_t n = 0; n < count; n++)
        backbone_input(ds, start + n, m->act[0] + (size_t)n * m->dims[0]);
    forward(m, count);
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

/* Zero the last-step entries the previous step wrote, so UPDATE_READ shows 0 wherever
 * this step applies nothing; cost follows the previous k, not the model size. */
static void clear_last_step(mlp_t *m)
{
    for (uint8_t l = 0; l < m->n_layers; l++) {
        const uint16_t in = m->dims[l], N = m->dims[l + 1];
        float *sw = m->step + m->w_off[l], *sb = m->step + m->b_off[l];
        for (uint16_t j = 0; j < N; j++) {
            if (m->used_row[l][j])
                memset(sw + (size_t)j * in, 0, in * sizeof(float));
            if (m->used_bias[l][j])
                sb[j] = 0.0f;
        }
    }
    memset(m->used_row, 0, sizeof m->used_row);
    memset(m->used_bias, 0, sizeof m->used_bias);
}

/* Loss and correct count of the batch in act[L], and the output error delta_{L-1} =
 * (softmax(z) - onehot(y)) / B into delta[0] (docs/training.md §2). Same arithmetic as
 * sample_loss, but each expf(z_j - m) is computed once and kept in d[] for the error. */
static void loss_and_output_error(mlp_t *m, const dataset_t *ds, const uint16_t *idx,
                                  uint16_t batch, mlp_step_result_t *res)
{
    const uint16_t NO = m->dims[m->n_layers];
    const float fb = (float)batch;
    float loss_sum = 0.0f;
    uint16_t correct = 0;
    for (uint16_t n = 0; n < batch; n++) {
        const float *z = m->act[m->n_layers] + (size_t)n * NO;
        const uint8_t y = dataset_label(ds, idx[n]);
        float *d = m->delta[0] + (size_t)n * NO;
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
        loss_sum += (mx + logf(s)) - z[y];
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

/* Layer l with its error delta_l in cur ([B][N]): bias gradients (bias_mask rows, full
 * delta) and weight gradients (row_mask rows) into step[]; if propagate, delta_{l-1} into
 * nxt ([B][in]) from W before any update, through the row_mask rows if prop_masked[l]
 * (TinyProp), else through all rows. */
static void backward_layer(mlp_t *m, uint8_t l, const float *cur, float *nxt, uint16_t batch,
                           int propagate)
{
    const uint16_t in = m->dims[l], N = m->dims[l + 1];
    float *gb = m->step + m->b_off[l];
    uint16_t rows[TR_MAX_WIDTH], k = 0;
    for (uint16_t j = 0; j < N; j++) {
        if (m->bias_mask[l][j]) {
            float g = 0.0f;
            for (uint16_t n = 0; n < batch; n++)
                g += cur[(size_t)n * N + j];
            gb[j] = g;
        }
        if (m->row_mask[l][j])
            rows[k++] = j;
    }
    (void)tr_fc_weight_grad_f32(cur, m->act[l], batch, N, in, rows, k, m->step + m->w_off[l]);
    if (!propagate)
        return;
    if (!m->prop_masked[l])
        for (k = 0; k < N; k++)
            rows[k] = k;
    (void)tr_fc_backprop_f32(cur, batch, N, m->params + m->w_off[l], in, rows, k, m->act[l],
                             nxt);
}

/* SGD on a mask's runs of set entries: rows j..j1-1 of a layer are contiguous in p/v/s,
 * so each run is one kernel call. Entries the previous step applied (used) but this one
 * does not are zeroed in step[] (UPDATE_READ shows 0 wherever nothing was applied). */
static void update_runs(mlp_t *m, const uint8_t *mask, const uint8_t *used, uint16_t N,
                        uint32_t off, uint16_t len)
{
    for (uint16_t j = 0; j < N;) {
        if (!mask[j]) {
            if (used[j])
                memset(m->step + off + (size_t)j * len, 0, len * sizeof(float));
            j++;
            continue;
        }
        uint16_t j1 = (uint16_t)(j + 1);
        while (j1 < N && mask[j1])
            j1++;
        const size_t o = off + (size_t)j * len;
        (void)tr_sgd_f32(m->params + o, m->mom ? m->mom + o : NULL, m->step + o,
                         (uint32_t)(j1 - j) * len, m->lr, m->momentum);
        j = j1;
    }
}

/* SGD on the masked entries only (p and v untouched elsewhere; no layer below `lowest` has
 * a mask bit); the masks become the record for MASK_READ and the next step; k per layer. */
static void masked_update(mlp_t *m, uint8_t lowest, mlp_step_result_t *res)
{
    for (uint8_t l = 0; l < m->n_layers; l++) {
        const uint16_t in = m->dims[l], N = m->dims[l + 1];
        update_runs(m, m->row_mask[l], m->used_row[l], N, m->w_off[l], in);
        update_runs(m, m->bias_mask[l], m->used_bias[l], N, m->b_off[l], 1);
        memcpy(m->used_row[l], m->row_mask[l], N);
        memcpy(m->used_bias[l], m->bias_mask[l], N);
        if (l >= lowest)
            res->k[l] = mlp_layer_k(m, l);
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
    for (uint16_t n = 0; n < batch; n++)
        backbone_input(ds, idx[n], m->act[0] + (size_t)n * m->dims[0]);
    forward(m, batch);
    tr_mark_begin(TR_MARK_LOSS);
    loss_and_output_error(m, ds, idx, batch, res);
    tr_mark_end(TR_MARK_LOSS);
    t = tr_phase_end(TR_PHASE_FORWARD);
    res->counters[TR_PHASE_FORWARD] = t - t0;

    const strategy_ops_t *S = m->strat;
    if (S->skip) {
        t0 = t;
        tr_mark_begin(TR_PHASE_SELECTION);
        int skip = S->skip(m, m->delta[0], batch);
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

    /* Backward from the top down to the lowest layer that can have a selection. */
    const uint8_t lowest = lowest_layer(m);
    float *cur = m->delta[0], *nxt = m->delta[1];
    for (int li = (int)L - 1; li >= (int)lowest; li--) {
        const uint8_t l = (uint8_t)li;
        if (S->layer_select) {
            t0 = tr_phase_begin(TR_PHASE_SELECTION);
            S->layer_select(m, l, cur, batch);
            t = tr_phase_end(TR_PHASE_SELECTION);
            res->counters[TR_PHASE_SELECTION] += t - t0;
        }
        t0 = tr_phase_begin(TR_PHASE_BACKWARD);
        backward_layer(m, l, cur, nxt, batch, l > lowest);
        if (l > lowest) {
            float *tmp = cur;
            cur = nxt;
            nxt = tmp;
        }
        t = tr_phase_end(TR_PHASE_BACKWARD);
        res->counters[TR_PHASE_BACKWARD] += t - t0;
    }

    t0 = tr_phase_begin(TR_PHASE_UPDATE);
    masked_update(m, lowest, res);
    t = tr_phase_end(TR_PHASE_UPDATE);
    res->counters[TR_PHASE_UPDATE] += t - t0;
    tr_mark_step_end();
    return TR_OK;
}
