#include "strategy_common.h"

#include <math.h>
#include <string.h>

uint32_t sc_neurons_of(uint8_t n_layers, const uint16_t *dims)
{
    uint32_t n = 0;
    for (uint8_t l = 0; l < n_layers; l++)
        n += dims[l + 1];
    return n;
}

int sc_is_count(float v) { return v >= 0.0f && v < 16777216.0f && floorf(v) == v; }

uint16_t sc_n_neurons(const mlp_t *m)
{
    uint32_t n = 0;
    for (uint8_t l = 0; l < m->n_layers; l++)
        n += m->dims[l + 1];
    return (uint16_t)n; /* <= TR_MAX_NEURONS <= 0xFFFF (static assert in the header) */
}

uint16_t sc_layer_base(const mlp_t *m, uint8_t layer)
{
    uint32_t base = 0;
    for (uint8_t l = 0; l < layer; l++)
        base += m->dims[l + 1];
    return (uint16_t)base;
}

uint8_t sc_layer_of(const mlp_t *m, uint16_t id)
{
    uint8_t l = 0;
    while (l + 1 < m->n_layers && id >= m->dims[l + 1]) {
        id = (uint16_t)(id - m->dims[l + 1]);
        l++;
    }
    return l;
}

/* ---- ranking ------------------------------------------------------------------------ */

/* 1 if entry a ranks strictly before entry b. Every order used here is total over distinct
 * ids (the index decides ties), so any correct sort/selection gives the documented result. */
typedef int (*before_fn)(const void *ctx, uint16_t a, uint16_t b);

/* Heap whose root is the entry ranked last: no parent ranks before one of its children. */
static void sift_down(sc_id_t *h, uint16_t n, uint16_t i, before_fn before, const void *ctx)
{
    for (;;) {
        uint32_t c = 2u * i + 1u;
        if (c >= n)
            return;
        if (c + 1u < n && before(ctx, h[c], h[c + 1u]))
            c++; /* the child ranked later */
        if (!before(ctx, h[i], h[c]))
            return;
        uint16_t t = h[i];
        h[i] = h[c];
        h[c] = t;
        i = (uint16_t)c;
    }
}

static void heapify(sc_id_t *h, uint16_t n, before_fn before, const void *ctx)
{
    for (uint16_t i = (uint16_t)(n / 2u); i-- > 0;)
        sift_down(h, n, i, before, ctx);
}

/* Larger score first, ties lower index; NaN last (numpy argsort of -score puts NaN last). */
static int score_before(const void *ctx, uint16_t a, uint16_t b)
{
    const float *s = ctx;
    const float x = s[a], y = s[b];
    if (x != x)
        return y != y && a < b;
    if (y != y)
        return 1;
    return x > y || (x == y && a < b);
}

void sc_topk_mask(const float *score, uint16_t n, uint16_t k, uint8_t *mask, uint16_t *heap)
{
    if (k >= n) {
        memset(mask, 1, n);
        return;
    }
    memset(mask, 0, n);
    if (k == 0)
        return;
    /* Keep the best k seen so far; the root is the weakest of them. */
    for (uint16_t i = 0; i < k; i++)
        heap[i] = i;
    heapify(heap, k, score_before, score);
    for (uint16_t j = k; j < n; j++)
        if (score_before(score, j, heap[0])) {
            heap[0] = j;
            sift_down(heap, k, 0, score_before, score);
        }
    for (uint16_t i = 0; i < k; i++)
        mask[heap[i]] = 1;
}

typedef struct {
    const mlp_t *m;
    const float *key;
} key_ctx_t;

/* velocity-budget order: key descending, then layer descending, then index ascending
 * (within a layer flat ids follow the index). NaN keys last. */
static int key_before(const void *ctx, uint16_t a, uint16_t b)
{
    const key_ctx_t *c = ctx;
    const float x = c->key[a], y = c->key[b];
    const int xn = x != x, yn = y != y;
    if (xn != yn)
        return yn;
    if (!xn && x != y)
        return x > y;
    const uint8_t la = sc_layer_of(c->m, a), lb = sc_layer_of(c->m, b);
    return la != lb ? la > lb : a < b;
}

void sc_sort_by_key(const mlp_t *m, const float *key, sc_id_t *ids, uint16_t n)
{
    const key_ctx_t ctx = {m, key};
    if (n < 2)
        return;
    heapify(ids, n, key_before, &ctx);
    /* The root ranks last: move it to the end, shrink, repeat -> best first. */
    for (uint16_t end = (uint16_t)(n - 1u); end > 0; end--) {
        uint16_t t = ids[0];
        ids[0] = ids[end];
        ids[end] = t;
        sift_down(ids, end, 0, key_before, &ctx);
    }
}

/* ---- budget fill -------------------------------------------------------------------- */

static uint32_t budget_of(uint8_t n_layers, const uint16_t *dims, float budget)
{
    uint32_t total = 0;
    for (uint8_t l = 0; l < n_layers; l++)
        total += ((uint32_t)dims[l] + 1u) * dims[l + 1];
    /* budget in [0, 1] (checked at TRAIN_CONFIG), so the result is in [0, total]. */
    return (uint32_t)floorf(budget * (float)total);
}

uint32_t sc_budget_params(const mlp_t *m, float budget)
{
    return budget_of(m->n_layers, m->dims, budget);
}

void sc_budget_plan(uint8_t n_layers, const uint16_t *dims, float budget, uint32_t sel_before,
                    strat_plan_t *p)
{
    p->sel_floats = sel_before + SC_IDS_FLOATS(sc_neurons_of(n_layers, dims));
    p->max_trainable = budget_of(n_layers, dims, budget);
    p->lowest = n_layers;
    for (uint8_t l = n_layers; l-- > 0;)
        if ((uint32_t)dims[l] + 1u <= p->max_trainable)
            p->lowest = l;
    p->weights_from = p->lowest;
    p->fixed = 0;
}

void sc_greedy_fill(mlp_t *m, const sc_id_t *order, uint16_t n, uint32_t budget)
{
    mlp_set_all_masks(m, 0);
    uint32_t used = 0;
    for (uint16_t i = 0; i < n; i++) {
        const uint16_t c = order[i];
        const uint8_t l = sc_layer_of(m, c);
        const uint32_t cost = (uint32_t)m->dims[l] + 1u;
        if (used + cost <= budget) {
            const uint16_t j = (uint16_t)(c - sc_layer_base(m, l));
            used += cost;
            m->row_mask[l][j] = 1;
            m->bias_mask[l][j] = 1;
        }
        if (budget - used < 2u)
            break; /* every neuron costs >= 2: nothing else can fit */
    }
}

/* ---- TinyProp family -------------------------------------------------------------- */

tr_status_t sc_tp_check(const float *sp, int with_gamma, tr_err_t *err)
{
    if (!(sp[SC_TP_SMIN] >= 0.0f))
        return tr_fail(err, TR_E_BAD_ARG, SC_TP_SMIN, "need 0 <= S_min <= S_max <= 1");
    if (!(sp[SC_TP_SMAX] >= sp[SC_TP_SMIN] && sp[SC_TP_SMAX] <= 1.0f))
        return tr_fail(err, TR_E_BAD_ARG, SC_TP_SMAX, "need 0 <= S_min <= S_max <= 1");
    if (!(sp[SC_TP_ZETA] > 0.0f && sp[SC_TP_ZETA] <= 1.0f))
        return tr_fail(err, TR_E_BAD_ARG, SC_TP_ZETA, "need 0 < zeta <= 1");
    if (with_gamma && !(sp[SC_TP_GAMMA] > 0.0f && sp[SC_TP_GAMMA] <= 1.0f))
        return tr_fail(err, TR_E_BAD_ARG, SC_TP_GAMMA, "need 0 < gamma <= 1");
    return TR_OK;
}

float sc_tp_score(const float *delta, uint16_t batch, uint16_t n, float *score)
{
    float y = 0.0f;
    for (uint16_t j = 0; j < n; j++) {
        float s = 0.0f;
        for (uint16_t b = 0; b < batch; b++)
            s += fabsf(delta[(size_t)b * n + j]);
        score[j] = s;
        y += s; /* Y sums the scores in j order, as if after the loop */
    }
    return y;
}

float sc_tp_ratio(mlp_t *m, uint8_t layer, float y, int decay)
{
    float ref = m->ss.ymax[layer];
    if (decay)
        ref = m->ss.sparams[SC_TP_GAMMA] * ref;
    const float ymax = (y > ref) ? y : ref; /* NaN y keeps the reference, like max(ref, y) */
    m->ss.ymax[layer] = ymax;
    return ymax > 0.0f ? y / ymax : 0.0f;
}

void sc_tp_apply(mlp_t *m, uint8_t layer, const float *score, float r)
{
    const float *sp = m->ss.sparams;
    const uint16_t n = m->dims[layer + 1];
    float zeta_d = 1.0f;
    for (uint8_t d = (uint8_t)(m->n_layers - 1u - layer); d > 0; d--)
        zeta_d = zeta_d * sp[SC_TP_ZETA];
    const float bpr = (sp[SC_TP_SMIN] + ((sp[SC_TP_SMAX] - sp[SC_TP_SMIN]) * r)) * zeta_d;
    const float k_raw = (float)n * bpr;
    /* clamp(floor(k_raw), 1, N), compared in float first so a NaN or huge k_raw never
     * reaches the integer conversion (NaN -> 1). */
    uint16_t k = 1;
    if (k_raw >= (float)n)
        k = n;
    else if (k_raw >= 1.0f)
        k = (uint16_t)floorf(k_raw);
    sc_topk_mask(score, n, k, m->row_mask[layer], m->scratch_u16);
    memset(m->bias_mask[layer], 1, n); /* all biases: the bias gradient uses the full delta */
    m->prop_masked[layer] = 1;
}

void sc_tp_layer(mlp_t *m, uint8_t layer, const float *delta, uint16_t batch, int decay)
{
    const uint16_t n = m->dims[layer + 1];
    const float y = sc_tp_score(delta, batch, n, m->scratch_f);
    sc_tp_apply(m, layer, m->scratch_f, sc_tp_ratio(m, layer, y, decay));
}
