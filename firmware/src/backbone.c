#include "backbone.h"

#include <string.h>

#include "crc32.h"
#include "tr_nn.h"
#include "wire.h"

/* BACKBONE_INFO reports the kernel library's id as the wire id: keep them one number. */
_Static_assert(TR_NN_IMPL_C == TR_KERNELS_TINYRIG_C, "kernel impl id");
_Static_assert(TR_NN_IMPL_DSP == TR_KERNELS_TINYRIG_DSP, "kernel impl id");
_Static_assert(TR_NN_IMPL_CMSIS == TR_KERNELS_CMSIS_NN, "kernel impl id");

_Static_assert(TR_BACKBONE_CAPACITY == 0u ||
                   TR_MAX_PAYLOAD >= BB_INIT_HEADER + BB_LAYER_RECORD * TR_BACKBONE_MAX_LAYERS,
               "BACKBONE_INIT with max_layers must fit one packet");
_Static_assert(TR_BACKBONE_MAX_LAYERS <= 255u, "n_layers is u8");

/* ---- storage (fixed by board_config.h; no heap) --------------------------------------- */
#define WORDS(bytes) (((bytes) + 3u) / 4u > 0u ? ((bytes) + 3u) / 4u : 1u)
static uint32_t blob_mem[WORDS(TR_BACKBONE_CAPACITY)];
static uint32_t act_mem[2][WORDS(TR_BACKBONE_ACT_CAPACITY)];
static uint32_t scratch_mem[WORDS(TR_BACKBONE_SCRATCH)];

typedef struct {
    uint8_t op, kh, kw, sh, sw, ph, pw, dh, dw;
    uint8_t per_tensor; /* FC: every multiplier and shift equal (set at verification) */
    uint16_t in_h, in_w, in_c, out_h, out_w, out_c;
    int32_t in_off, out_off;
    int8_t act_min, act_max;
    uint32_t w_off, b_off, m_off, s_off; /* byte offsets into the blob */
} bb_layer_t;

enum { BB_NONE = 0, BB_LOADED = 1, BB_VERIFIED = 2 };

/* A board without backbone memory keeps one slot (RAM-frugal: the microbit has 16 KB). */
#define BB_SLOTS (TR_BACKBONE_CAPACITY > 0u ? TR_BACKBONE_MAX_LAYERS : 1u)

static struct {
    uint8_t n_layers;
    uint8_t state;
    uint16_t in_h, in_w, in_c;
    float out_scale;
    int32_t out_zp;
    uint32_t blob_size, blob_crc;
    uint32_t act_need, scratch_need, macs;
    bb_layer_t layers[BB_SLOTS];
} bb;

void backbone_reset(void) { memset(&bb, 0, sizeof bb); }

int backbone_active(void) { return bb.n_layers > 0; }

static uint32_t layer_out_size(const bb_layer_t *L)
{
    return (uint32_t)L->out_h * L->out_w * L->out_c;
}

uint16_t backbone_n_features(void)
{
    return bb.n_layers ? (uint16_t)layer_out_size(&bb.layers[bb.n_layers - 1]) : 0;
}

/* ---- kernel calls ----------------------------------------------------------------------- */
static const int8_t *blob_i8(uint32_t off) { return (const int8_t *)blob_mem + off; }
static const int32_t *blob_i32(uint32_t off) { return (const int32_t *)(const void *)((const uint8_t *)blob_mem + off); }

/* 64-bit: a request's dims multiply to more than 32 bits before the capacity check. */
static uint64_t weight_count(const bb_layer_t *L)
{
    switch (L->op) {
    case TR_BB_OP_CONV:
        return (uint64_t)L->out_c * L->kh * L->kw * L->in_c;
    case TR_BB_OP_DWCONV:
        return (uint64_t)L->kh * L->kw * L->out_c;
    case TR_BB_OP_FC:
        return (uint64_t)L->out_c * L->in_h * L->in_w * L->in_c;
    default:
        return 0;
    }
}

static int32_t scratch_size(const bb_layer_t *L)
{
    const tr_nn_dims in = {1, L->in_h, L->in_w, L->in_c};
    switch (L->op) {
    case TR_BB_OP_CONV: {
        const tr_nn_dims f = {L->out_c, L->kh, L->kw, L->in_c};
        return tr_convolve_s8_get_buffer_size(&in, &f);
    }
    case TR_BB_OP_DWCONV: {
        const tr_nn_dims f = {1, L->kh, L->kw, L->out_c};
        return tr_depthwise_conv_s8_get_buffer_size(&in, &f);
    }
    case TR_BB_OP_FC: {
        const tr_nn_dims f = {(int32_t)L->in_h * L->in_w * L->in_c, 1, 1, L->out_c};
        const int32_t a = tr_fully_connected_s8_get_buffer_size(&f);
        const int32_t b = tr_fully_connected_per_channel_s8_get_buffer_size(&f);
        return a > b ? a : b;
    }
    case TR_BB_OP_AVGPOOL:
        return tr_avgpool_s8_get_buffer_size(L->out_w, L->in_c);
    default:
        return tr_maxpool_s8_get_buffer_size(L->out_w, L->in_c);
    }
}

static tr_nn_status run_layer(const bb_layer_t *L, const int8_t *x, int8_t *y)
{
    const tr_nn_context ctx = {scratch_mem, (int32_t)sizeof scratch_mem};
    const tr_nn_dims in = {1, L->in_h, L->in_w, L->in_c};
    const tr_nn_dims out = {1, L->out_h, L->out_w, L->out_c};
    const tr_nn_dims bias_d = {1, 1, 1, L->out_c};
    const tr_nn_activation act = {L->act_min, L->act_max};
    const tr_nn_tile stride = {L->sw, L->sh}, pad = {L->pw, L->ph}, dil = {L->dw, L->dh};
    const tr_nn_per_channel_quant_params q = {blob_i32(L->m_off), blob_i32(L->s_off)};
    switch (L->op) {
    case TR_BB_OP_CONV: {
        const tr_nn_conv_params p = {L->in_off, L->out_off, stride, pad, dil, act};
        const tr_nn_dims f = {L->out_c, L->kh, L->kw, L->in_c};
        return tr_convolve_s8(&ctx, &p, &q, &in, x, &f, blob_i8(L->w_off), &bias_d,
                              blob_i32(L->b_off), &out, y);
    }
    case TR_BB_OP_DWCONV: {
        const tr_nn_dw_conv_params p = {L->in_off, L->out_off, L->out_c / L->in_c, stride, pad,
                                        dil, act};
        const tr_nn_dims f = {1, L->kh, L->kw, L->out_c};
        return tr_depthwise_conv_s8(&ctx, &p, &q, &in, x, &f, blob_i8(L->w_off), &bias_d,
                                    blob_i32(L->b_off), &out, y);
    }
    case TR_BB_OP_FC: {
        const int32_t n_in = (int32_t)L->in_h * L->in_w * L->in_c;
        const tr_nn_fc_params p = {L->in_off, 0, L->out_off, act};
        const tr_nn_dims in_fc = {1, 1, 1, n_in}, f = {n_in, 1, 1, L->out_c},
                         out_fc = {1, 1, 1, L->out_c};
        if (L->per_tensor) {
            const tr_nn_per_tensor_quant_params qt = {q.multiplier[0], q.shift[0]};
            return tr_fully_connected_s8(&ctx, &p, &qt, &in_fc, x, &f, blob_i8(L->w_off), &bias_d,
                                         blob_i32(L->b_off), &out_fc, y);
        }
        return tr_fully_connected_per_channel_s8(&ctx, &p, &q, &in_fc, x, &f, blob_i8(L->w_off),
                                                 &bias_d, blob_i32(L->b_off), &out_fc, y);
    }
    default: {
        const tr_nn_pool_params p = {stride, pad, act};
        const tr_nn_dims f = {1, L->kh, L->kw, 1};
        return L->op == TR_BB_OP_AVGPOOL ? tr_avgpool_s8(&ctx, &p, &in, x, &f, &out, y)
                                      : tr_maxpool_s8(&ctx, &p, &in, x, &f, &out, y);
    }
    }
}

/* Run all layers on the int8 input in act_mem[0]; returns the buffer with the output. */
static const int8_t *run_all(tr_nn_status *status)
{
    int8_t *a = (int8_t *)act_mem[0], *b = (int8_t *)act_mem[1];
    *status = TR_NN_SUCCESS;
    for (uint8_t l = 0; l < bb.n_layers; l++) {
        tr_nn_status st = run_layer(&bb.layers[l], a, b);
        if (st != TR_NN_SUCCESS && *status == TR_NN_SUCCESS)
            *status = st;
        int8_t *t = a;
        a = b;
        b = t;
    }
    return a;
}

static void load_input(const dataset_t *ds, uint32_t i)
{
    const uint8_t *r = dataset_raw(ds, i);
    int8_t *x = (int8_t *)act_mem[0];
    const uint16_t n = ds->n_features;
    if (ds->dtype == TR_DTYPE_U8)
        for (uint16_t k = 0; k < n; k++)
            x[k] = (int8_t)(r[k] ^ 0x80u); /* q - 128 */
    else
        memcpy(x, r, n);
}

void backbone_features(const dataset_t *ds, uint32_t i, int8_t *out)
{
    tr_nn_status st;
    load_input(ds, i);
    memcpy(out, run_all(&st), backbone_n_features());
}

void backbone_input(const dataset_t *ds, uint32_t i, float *out)
{
    if (!bb.n_layers) {
        dataset_decode(ds, i, out);
        return;
    }
    tr_nn_status st;
    load_input(ds, i);
    (void)tr_dequantize_s8_f32(run_all(&st), out, backbone_n_features(), bb.out_zp, bb.out_scale);
}

uint16_t backbone_input_width(const dataset_t *ds)
{
    return bb.n_layers ? backbone_n_features() : ds->n_features;
}

/* ---- verification at first use ----------------------------------------------------------- */
static tr_status_t verify(tr_err_t *err)
{
    if (crc32_update(0, (const uint8_t *)blob_mem, bb.blob_size) != bb.blob_crc)
        return tr_fail(err, TR_E_BAD_STATE, 0, "backbone blob CRC mismatch (BACKBONE_WRITE missing?)");
    for (uint8_t l = 0; l < bb.n_layers; l++) {
        bb_layer_t *L = &bb.layers[l];
        if (L->op > TR_BB_OP_FC)
            continue;
        const int32_t *m = blob_i32(L->m_off), *s = blob_i32(L->s_off);
        L->per_tensor = 1;
        for (uint16_t c = 0; c < L->out_c; c++) {
            if (s[c] < -31 || s[c] > 30)
                return tr_fail(err, TR_E_BAD_STATE, l, "backbone shift not in [-31, 30]");
            if (m[c] != m[0] || s[c] != s[0])
                L->per_tensor = 0;
        }
    }
    /* Trial run on a zero input: every kernel accepts its layer, or we say which did not. */
    const bb_layer_t *first = &bb.layers[0];
    memset(act_mem[0], 0, (size_t)first->in_h * first->in_w * first->in_c);
    int8_t *a = (int8_t *)act_mem[0], *b = (int8_t *)act_mem[1];
    for (uint8_t l = 0; l < bb.n_layers; l++) {
        if (run_layer(&bb.layers[l], a, b) != TR_NN_SUCCESS)
            return tr_fail(err, TR_E_BAD_STATE, l, "backbone kernel rejected a layer");
        int8_t *t = a;
        a = b;
        b = t;
    }
    bb.state = BB_VERIFIED;
    return TR_OK;
}

tr_status_t backbone_check(const dataset_t *ds, tr_err_t *err)
{
    if (!bb.n_layers)
        return TR_OK;
    if (ds->configured && ds->dtype == TR_DTYPE_F32)
        return tr_fail(err, TR_E_BAD_STATE, 0, "backbone needs u8/s8 samples");
    if (ds->configured && ds->n_features != (uint32_t)bb.in_h * bb.in_w * bb.in_c)
        return tr_fail(err, TR_E_BAD_STATE, 0, "n_features != backbone input h*w*c");
    return bb.state == BB_VERIFIED ? TR_OK : verify(err);
}

/* ---- BACKBONE_INIT -------------------------------------------------------------------------- */
static int bad_window(uint32_t in, uint32_t out, uint32_t k, uint32_t stride, uint32_t pad,
                      uint32_t dil)
{
    const uint32_t eff = dil * (k - 1u) + 1u;
    return pad >= eff || (uint64_t)(out - 1u) * stride > (uint64_t)in - 1u + pad;
}

static uint32_t align4(uint32_t n) { return (n + 3u) & ~3u; }

tr_status_t backbone_init(const uint8_t *req, uint16_t len, uint8_t *resp, uint16_t *resp_len,
                          tr_err_t *err)
{
    if (len < BB_INIT_HEADER)
        return tr_fail(err, TR_E_BAD_LENGTH, BB_INIT_HEADER, "BACKBONE_INIT header is 28 B");
    const uint8_t n = req[0];
    if (len != BB_INIT_HEADER + (uint32_t)n * BB_LAYER_RECORD)
        return tr_fail(err, TR_E_BAD_LENGTH, 0, "len != 28 + 28*n_layers");
    if (n == 0) { /* remove the backbone */
        backbone_reset();
        memset(resp, 0, 20);
        *resp_len = 20;
        return TR_OK;
    }
    if (TR_BACKBONE_CAPACITY == 0u || TR_BACKBONE_ACT_CAPACITY == 0u)
        return tr_fail(err, TR_E_NO_SPACE, 0, "this board has no backbone memory");
    if (n > TR_BACKBONE_MAX_LAYERS || n > BB_SLOTS)
        return tr_fail(err, TR_E_NO_SPACE, 0, "n_layers > backbone max_layers");

    bb_layer_t layers[BB_SLOTS];
    uint16_t h = rd_u16(req + 2), w = rd_u16(req + 4), c = rd_u16(req + 6);
    const float out_scale = rd_f32(req + 8);
    const int32_t out_zp = (int32_t)rd_u32(req + 12);
    const uint32_t blob_size = rd_u32(req + 16), blob_crc = rd_u32(req + 20);
    if (h == 0 || w == 0 || c == 0)
        return tr_fail(err, TR_E_BAD_ARG, 2, "input h, w, c must be >= 1");
    if (!f32_finite(out_scale) || !(out_scale > 0.0f))
        return tr_fail(err, TR_E_BAD_ARG, 8, "out_scale must be finite and > 0");
    if (out_zp < -128 || out_zp > 127)
        return tr_fail(err, TR_E_BAD_ARG, 12, "out_zero_point not in [-128, 127]");

    uint64_t act_need = (uint64_t)h * w * c;
    uint32_t off = 0, scratch = 0, macs = 0;
    for (uint8_t l = 0; l < n; l++) {
        const uint8_t *p = req + BB_INIT_HEADER + (uint32_t)l * BB_LAYER_RECORD;
        const uint16_t at = (uint16_t)(BB_INIT_HEADER + l * BB_LAYER_RECORD);
        bb_layer_t *L = &layers[l];
        memset(L, 0, sizeof *L);
        L->op = p[0];
        L->kh = p[1], L->kw = p[2], L->sh = p[3], L->sw = p[4], L->ph = p[5], L->pw = p[6];
        L->dh = p[7], L->dw = p[8];
        L->in_h = h, L->in_w = w, L->in_c = c;
        L->out_h = rd_u16(p + 10), L->out_w = rd_u16(p + 12), L->out_c = rd_u16(p + 14);
        L->in_off = (int32_t)rd_u32(p + 16), L->out_off = (int32_t)rd_u32(p + 20);
        L->act_min = (int8_t)p[24], L->act_max = (int8_t)p[25];
        const int pool = L->op == TR_BB_OP_AVGPOOL || L->op == TR_BB_OP_MAXPOOL;
        if (L->op > TR_BB_OP_MAXPOOL)
            return tr_fail(err, TR_E_BAD_ARG, at, "layer op not 0..4");
        if (L->out_h == 0 || L->out_w == 0 || L->out_c == 0)
            return tr_fail(err, TR_E_BAD_ARG, (uint16_t)(at + 10), "output dims must be >= 1");
        if (L->act_min > L->act_max)
            return tr_fail(err, TR_E_BAD_ARG, (uint16_t)(at + 24), "act_min > act_max");
        if (L->op == TR_BB_OP_FC) {
            L->kh = L->kw = L->sh = L->sw = L->dh = L->dw = 1;
            L->ph = L->pw = 0;
            if (L->out_h != 1 || L->out_w != 1)
                return tr_fail(err, TR_E_BAD_ARG, (uint16_t)(at + 10), "FC output is 1x1xC");
        } else {
            if (L->kh == 0 || L->kw == 0 || L->sh == 0 || L->sw == 0 || L->dh == 0 || L->dw == 0)
                return tr_fail(err, TR_E_BAD_ARG, (uint16_t)(at + 1),
                               "kernel, stride, dilation must be >= 1");
            if (pool && (L->dh != 1 || L->dw != 1))
                return tr_fail(err, TR_E_BAD_ARG, (uint16_t)(at + 7), "pooling has no dilation");
            if (bad_window(h, L->out_h, L->kh, L->sh, L->ph, L->dh) ||
                bad_window(w, L->out_w, L->kw, L->sw, L->pw, L->dw))
                return tr_fail(err, TR_E_BAD_ARG, (uint16_t)(at + 10),
                               "window outside the input (pad >= kernel or output too big)");
        }
        if (pool) {
            if (L->out_c != c)
                return tr_fail(err, TR_E_BAD_ARG, (uint16_t)(at + 14), "pool keeps channels");
            if (L->in_off != 0 || L->out_off != 0)
                return tr_fail(err, TR_E_BAD_ARG, (uint16_t)(at + 16), "pool offsets must be 0");
        } else {
            if (L->in_off < -127 || L->in_off > 128)
                return tr_fail(err, TR_E_BAD_ARG, (uint16_t)(at + 16),
                               "input_offset not in [-127, 128]");
            if (L->out_off < -128 || L->out_off > 127)
                return tr_fail(err, TR_E_BAD_ARG, (uint16_t)(at + 20),
                               "output_offset not in [-128, 127]");
            if (L->op == TR_BB_OP_DWCONV && L->out_c % c != 0)
                return tr_fail(err, TR_E_BAD_ARG, (uint16_t)(at + 14),
                               "depthwise out_c must be a multiple of in_c");
        }
        /* Capacities before any size arithmetic that could overflow (found by fuzzing:
         * huge dims overflowed weight_count and the kernels' buffer-size helpers). */
        const uint64_t out_size = (uint64_t)L->out_h * L->out_w * L->out_c;
        act_need = out_size > act_need ? out_size : act_need;
        if (act_need > TR_BACKBONE_ACT_CAPACITY)
            return tr_fail(err, TR_E_NO_SPACE, (uint16_t)(at + 10),
                           "activations exceed backbone act capacity");
        if (!pool && (uint64_t)off + weight_count(L) + 3u + 12u * L->out_c > TR_BACKBONE_CAPACITY)
            return tr_fail(err, TR_E_NO_SPACE, 16, "parameters exceed backbone capacity");
        if (!pool) {
            L->w_off = off;
            off += align4((uint32_t)weight_count(L));
            L->b_off = off;
            L->m_off = L->b_off + 4u * L->out_c;
            L->s_off = L->m_off + 4u * L->out_c;
            off = L->s_off + 4u * L->out_c;
            macs += (uint32_t)weight_count(L) *
                    (L->op == TR_BB_OP_FC ? 1u : (uint32_t)L->out_h * L->out_w);
        }
        const int32_t s = scratch_size(L);
        scratch = (uint32_t)s > scratch ? (uint32_t)s : scratch;
        h = L->out_h, w = L->out_w, c = L->out_c;
    }
    if ((uint32_t)h * w * c > 0xFFFFu)
        return tr_fail(err, TR_E_BAD_ARG, 0, "more than 65535 features");
    if (off > TR_BACKBONE_CAPACITY)
        return tr_fail(err, TR_E_NO_SPACE, 16, "parameters exceed backbone capacity");
    if (scratch > TR_BACKBONE_SCRATCH)
        return tr_fail(err, TR_E_NO_SPACE, 0, "kernel scratch exceeds backbone scratch");
    if (blob_size != off)
        return tr_fail(err, TR_E_BAD_ARG, 16, "blob_size != size of the layers' parameters");

    /* All checked: replace the backbone. */
    backbone_reset();
    memcpy(bb.layers, layers, (size_t)n * sizeof layers[0]);
    bb.n_layers = n;
    bb.state = BB_LOADED;
    bb.in_h = rd_u16(req + 2), bb.in_w = rd_u16(req + 4), bb.in_c = rd_u16(req + 6);
    bb.out_scale = out_scale;
    bb.out_zp = out_zp;
    bb.blob_size = blob_size;
    bb.blob_crc = blob_crc;
    bb.act_need = (uint32_t)act_need;
    bb.scratch_need = scratch;
    bb.macs = macs;
    memset(blob_mem, 0, sizeof blob_mem);

    wr_u32(resp, blob_size);
    wr_u16(resp + 4, backbone_n_features());
    wr_u16(resp + 6, 0);
    wr_u32(resp + 8, (uint32_t)act_need);
    wr_u32(resp + 12, scratch);
    wr_u32(resp + 16, macs);
    *resp_len = 20;
    return TR_OK;
}

tr_status_t backbone_write(const uint8_t *req, uint16_t len, tr_err_t *err)
{
    if (len < 4)
        return tr_fail(err, TR_E_BAD_LENGTH, 4, "BACKBONE_WRITE header is 4 B");
    if (!bb.n_layers)
        return tr_fail(err, TR_E_BAD_STATE, 0, "no BACKBONE_INIT");
    const uint32_t off = rd_u32(req), n = (uint32_t)len - 4u;
    if ((uint64_t)off + n > bb.blob_size)
        return tr_fail(err, TR_E_BAD_ARG, 0, "offset+count > blob_size");
    memcpy((uint8_t *)blob_mem + off, req + 4, n);
    bb.state = BB_LOADED;
    return TR_OK;
}

uint16_t backbone_info(uint8_t *resp)
{
    _Static_assert(BB_INFO_SIZE == 28u, "BACKBONE_INFO layout");
    wr_u32(resp, TR_BACKBONE_CAPACITY);
    wr_u32(resp + 4, TR_BACKBONE_ACT_CAPACITY);
    wr_u32(resp + 8, TR_BACKBONE_SCRATCH);
    wr_u16(resp + 12, TR_BACKBONE_MAX_LAYERS);
    resp[14] = tr_nn_implementation();
    resp[15] = bb.state;
    wr_u16(resp + 16, bb.n_layers);
    wr_u16(resp + 18, backbone_n_features());
    wr_u32(resp + 20, bb.blob_size);
    wr_u16(resp + 24, TR_MAX_SAMPLE_FEATURES);
    wr_u16(resp + 26, 0);
    return BB_INFO_SIZE;
}
