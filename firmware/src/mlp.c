/* The head model: parameters, the training arena and its memory plan, TRAIN_CONFIG and
 * parameter access (docs/training.md). The training computation is in mlp_train.c. */
#include "mlp.h"

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
static float arena[TR_ARENA_FLOATS];
static uint32_t arena_high; /* bytes, high-water mark of the layouts since RESET */

/* Sizes (floats, rows) of one layout; plan_layout fills it. */
typedef struct {
    uint32_t params, step, mom;
    uint8_t mom_packed, lowest;
    uint16_t rows;     /* act[1..L] and error rows */
    uint16_t in_rows;  /* act[0] rows */
    uint16_t dwidth;   /* width of each error buffer (`rows` rows) */
    uint8_t n_delta;   /* 0..2 error buffers */
    uint16_t chunk_w;  /* width of the chunked lowest-layer error (0: none) */
    uint32_t sel;      /* selection scratch */
} layout_t;

static size_t layout_floats(const layout_t *y, uint8_t L, const uint16_t *dims)
{
    size_t n = (size_t)y->params + y->step + y->mom + (size_t)y->in_rows * dims[0];
    for (uint8_t l = 1; l <= L; l++)
        n += (size_t)y->rows * dims[l];
    return n + (size_t)y->n_delta * y->rows * y->dwidth + (size_t)MLP_CHUNK_ROWS * y->chunk_w +
           y->sel;
}

/* The memory plan of dims under strategy s (NULL: no TRAIN_CONFIG yet, forward only) with
 * sparams sp, momentum mu and steps of at most `batch` samples; returns its floats.
 * Activations act[1..L] and the errors hold `rows` samples (the next layer's input, the
 * ReLU derivative, weight gradients): the whole batch for a strategy that decides masks
 * during the step from the batch's errors, else a streamed block, a chunk for forward
 * passes alone; act[0] holds `rows` only if layer 0's weights can train, else a chunk. The
 * output error replaces the logits in act[L]; error buffers only for the layers the error
 * can reach. */
static size_t plan_layout(uint8_t L, const uint16_t *dims, uint32_t n_params,
                          const strategy_ops_t *s, const float *sp, float mu, uint16_t batch,
                          layout_t *y)
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
    /* Masks decided in the step from the batch's errors need the batch at once; forward
     * passes alone (EVAL before TRAIN_CONFIG) go a chunk at a time. */
    if (!s)
        y->rows = MLP_CHUNK_ROWS;
    else if (s->masks_on_delta || s->skip || s->layer_select || batch < MLP_STREAM_ROWS)
        y->rows = batch;
    else
        y->rows = MLP_STREAM_ROWS;
    y->in_rows = (uint16_t)(p.weights_from == 0 ? y->rows : MLP_CHUNK_ROWS);
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
    m->rows = y->rows;
    m->in_rows = y->in_rows;
    m->act[0] = p, p += (size_t)y->in_rows * m->dims[0];
    for (uint8_t l = 1; l <= m->n_layers; l++)
        m->act[l] = p, p += (size_t)y->rows * m->dims[l];
    for (uint8_t i = 0; i < 2; i++) {
        m->delta[i] = i < y->n_delta ? p : NULL;
        p += i < y->n_delta ? (size_t)y->rows * y->dwidth : 0u;
    }
    m->dchunk = y->chunk_w ? p : NULL;
    m->dchunk_w = y->chunk_w;
    p += (size_t)MLP_CHUNK_ROWS * y->chunk_w;
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
    (void)plan_layout(0, m->dims, 0, NULL, NULL, 0.0f, TR_MAX_BATCH, &y);
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
                                    m->ss.sparams, m->momentum,
                                    m->configured ? m->batch_cap : TR_MAX_BATCH, &y);
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
                          const float *sparams, uint8_t n_sp, uint16_t batch, tr_err_t *err)
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
    if (batch > TR_MAX_BATCH)
        return tr_fail(err, TR_E_BAD_ARG, 10, "batch > max_batch");
    if (batch == 0)
        batch = TR_MAX_BATCH;
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
        const size_t need = plan_layout(m->n_layers, m->dims, m->n_params, s, sp, momentum,
                                        batch, &y);
        if (need > TR_ARENA_FLOATS)
            return tr_fail(err, TR_E_NO_SPACE, 4, arena_text(need));
    }
    m->configured = 1;
    m->batch_cap = batch;
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
