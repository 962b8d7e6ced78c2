#include "app.h"

#include <string.h>

#include "backbone.h"
#include "board_config.h"
#include "crc32.h"
#include "dataset.h"
#include "hal.h"
#include "link_rate.h"
#include "mlp.h"
#include "proto.h"
#include "strategy.h"
#include "version.h"
#include "wire.h"

#define RESET_DROP_DATA 0x01u

static mlp_t model;
static dataset_t data;

/* Everything but the stored data set, which RESET keeps unless asked (it is the one big
 * upload; the host checks it by DATA_INFO's hash before re-sending). */
static void reset_state(void)
{
    mlp_reset(&model);
    backbone_reset();
}

static void reset_all(void)
{
    reset_state();
    dataset_reset(&data);
}

/* ---- handlers (one per message type; validate everything, then act) ---------------- */

static tr_status_t need_len(uint16_t len, uint16_t want, tr_err_t *err)
{
    return len == want ? TR_OK : tr_fail(err, TR_E_BAD_LENGTH, want, "wrong payload length");
}

static uint16_t put_str(uint8_t *p, const char *s)
{
    size_t n = strlen(s);
    if (n > 255)
        n = 255;
    p[0] = (uint8_t)n;
    memcpy(p + 1, s, n);
    return (uint16_t)(1 + n);
}

static tr_status_t h_hello(const uint8_t *req, uint16_t len, uint8_t *resp, uint16_t *rl,
                           tr_err_t *err)
{
    (void)req;
    if (need_len(len, 0, err))
        return TR_E_BAD_LENGTH;
    uint8_t *p = resp;
    *p++ = TR_PROTO_VERSION;
    *p++ = hal_counter_kind();
    wr_u16(p, TR_MAX_PAYLOAD), p += 2;
    wr_u32(p, hal_clock_hz()), p += 4;
    wr_u32(p, TR_PARAM_CAPACITY), p += 4;
    wr_u32(p, TR_DATA_CAPACITY), p += 4;
    wr_u16(p, TR_MAX_LAYERS), p += 2;
    wr_u16(p, TR_MAX_WIDTH), p += 2;
    wr_u16(p, TR_MAX_BATCH), p += 2;
    wr_u16(p, strategy_bitmask()), p += 2;
    p += put_str(p, TR_BOARD_NAME);
    p += put_str(p, TR_BUILD_HASH);
    p += put_str(p, TR_FW_VERSION);
    p += link_rate_hello(p);
    *rl = (uint16_t)(p - resp);
    return TR_OK;
}

static tr_status_t h_echo(const uint8_t *req, uint16_t len, uint8_t *resp, uint16_t *rl,
                          tr_err_t *err)
{
    (void)err;
    memcpy(resp, req, len);
    *rl = len;
    return TR_OK;
}

static tr_status_t h_reset(const uint8_t *req, uint16_t len, uint8_t *resp, uint16_t *rl,
                           tr_err_t *err)
{
    (void)resp;
    /* Optional u8 flags: bit 0 = drop the stored data set too; other bits reserved. */
    if (len > 1)
        return tr_fail(err, TR_E_BAD_LENGTH, 1, "RESET payload: none or u8 flags");
    const uint8_t flags = len ? req[0] : 0u;
    if (flags & ~RESET_DROP_DATA)
        return tr_fail(err, TR_E_BAD_ARG, 0, "RESET flags: only bit 0 (drop data)");
    if (flags & RESET_DROP_DATA)
        reset_all();
    else
        reset_state();
    hal_stack_repaint(); /* STATS: the peak stack of the run that starts now */
    proto_forget_last();
    *rl = 0;
    return TR_OK;
}

static tr_status_t h_stats(const uint8_t *req, uint16_t len, uint8_t *resp, uint16_t *rl,
                           tr_err_t *err)
{
    (void)req;
    if (need_len(len, 0, err))
        return TR_E_BAD_LENGTH;
    uint32_t used, size, ram, overruns, ring_full, arena_used, arena_size;
    hal_stats(&used, &size, &ram);
    hal_rx_stats(&overruns, &ring_full);
    mlp_arena_stats(&arena_used, &arena_size);
    wr_u32(resp, used);
    wr_u32(resp + 4, size);
    wr_u32(resp + 8, ram);
    wr_u32(resp + 12, overruns);
    wr_u32(resp + 16, ring_full);
    wr_u32(resp + 20, arena_used);
    wr_u32(resp + 24, arena_size);
    *rl = 28;
    return TR_OK;
}

static tr_status_t h_debug(const uint8_t *req, uint16_t len, uint8_t *resp, uint16_t *rl,
                           tr_err_t *err)
{
    (void)resp, (void)rl;
    if (need_len(len, 1, err))
        return TR_E_BAD_LENGTH;
    if (req[0] == TR_DEBUG_FAULT)
        hal_debug_fault();
    else if (req[0] == TR_DEBUG_HANG)
        hal_debug_hang();
    else
        return tr_fail(err, TR_E_BAD_ARG, 0, "action: 1 fault, 2 hang");
    return TR_SILENT; /* reached only on hosts that cannot fault/hang for real */
}

static tr_status_t h_model_init(const uint8_t *req, uint16_t len, uint8_t *resp, uint16_t *rl,
                                tr_err_t *err)
{
    uint16_t dims[TR_MAX_LAYERS + 1];
    if (len < 2)
        return tr_fail(err, TR_E_BAD_LENGTH, 2, "MODEL_INIT header is 2 B");
    uint8_t n = req[0];
    if (n == 0 || n > TR_MAX_LAYERS)
        return tr_fail(err, TR_E_BAD_ARG, 0, "n_layers not in 1..max_layers");
    if (need_len(len, (uint16_t)(2 + 2 * (n + 1)), err))
        return TR_E_BAD_LENGTH;
    for (uint8_t l = 0; l <= n; l++)
        dims[l] = rd_u16(req + 2 + 2 * l);
    tr_status_t st = mlp_model_init(&model, n, dims, err);
    if (st != TR_OK)
        return st;
    wr_u32(resp, model.n_params);
    *rl = 4;
    return TR_OK;
}

/* Shared checks of PARAM_WRITE/PARAM_READ/UPDATE_READ addressing. */
static tr_status_t check_tensor(const uint8_t *req, uint32_t count, uint32_t *size, tr_err_t *err)
{
    if (!model.n_layers)
        return tr_fail(err, TR_E_BAD_STATE, 0, "no MODEL_INIT");
    if (req[0] >= model.n_layers)
        return tr_fail(err, TR_E_BAD_ARG, 0, "layer >= n_layers");
    if (req[1] > TR_WHICH_BIAS)
        return tr_fail(err, TR_E_BAD_ARG, 1, "which: 0 weight, 1 bias");
    (void)mlp_param_tensor(&model, req[0], req[1], size);
    if ((uint64_t)rd_u32(req + 4) + count > *size)
        return tr_fail(err, TR_E_BAD_ARG, 4, "offset+count > tensor size");
    return TR_OK;
}

static tr_status_t h_param_write(const uint8_t *req, uint16_t len, uint8_t *resp, uint16_t *rl,
                                 tr_err_t *err)
{
    (void)resp;
    uint32_t size;
    if (len < 8 || (len - 8) % 4)
        return tr_fail(err, TR_E_BAD_LENGTH, 8, "len != 8 + 4*count");
    uint32_t count = (uint32_t)(len - 8) / 4;
    tr_status_t st = check_tensor(req, count, &size, err);
    if (st != TR_OK)
        return st;
    float *t = mlp_param_tensor(&model, req[0], req[1], &size) + rd_u32(req + 4);
    for (uint32_t i = 0; i < count; i++)
        t[i] = rd_f32(req + 8 + 4 * i);
    *rl = 0;
    return TR_OK;
}

static tr_status_t read_tensor(const uint8_t *req, uint16_t len, uint8_t *resp, uint16_t *rl,
                               tr_err_t *err, int step)
{
    uint32_t size;
    if (need_len(len, 8, err))
        return TR_E_BAD_LENGTH;
    uint16_t count = rd_u16(req + 2);
    if ((uint32_t)count * 4u > TR_MAX_PAYLOAD)
        return tr_fail(err, TR_E_BAD_ARG, 2, "count*4 > max_payload");
    tr_status_t st = check_tensor(req, count, &size, err);
    if (st != TR_OK)
        return st;
    if (step) { /* expanded from the packed step store, 16 values at a time */
        float u[16];
        for (uint16_t i0 = 0; i0 < count; i0 = (uint16_t)(i0 + 16u)) {
            const uint16_t c = (uint16_t)(count - i0 < 16 ? count - i0 : 16);
            mlp_step_read(&model, req[0], req[1], rd_u32(req + 4) + i0, c, u);
            for (uint16_t i = 0; i < c; i++)
                wr_f32(resp + 4 * (i0 + i), u[i]);
        }
    } else {
        const float *t = mlp_param_tensor(&model, req[0], req[1], &size) + rd_u32(req + 4);
        for (uint16_t i = 0; i < count; i++)
            wr_f32(resp + 4 * i, t[i]);
    }
    *rl = (uint16_t)(4 * count);
    return TR_OK;
}

static tr_status_t h_param_read(const uint8_t *req, uint16_t len, uint8_t *resp, uint16_t *rl,
                                tr_err_t *err)
{
    return read_tensor(req, len, resp, rl, err, 0);
}

static tr_status_t h_update_read(const uint8_t *req, uint16_t len, uint8_t *resp, uint16_t *rl,
                                 tr_err_t *err)
{
    return read_tensor(req, len, resp, rl, err, 1);
}

/* PARAM_DIGEST: for parameters [offset, offset+count) of the flat vector (W0 b0 W1 b1 ...,
 * each tensor as PARAM_READ lays it out) one CRC-32 per block of DIGEST_BLOCK values, then
 * the low 4, 8 or 16 bits of each value (4: two values a byte, the even one in the low
 * nibble; 0: none, CRCs only). The host rebuilds the values from its golden model's
 * nearly equal ones and checks each block's CRC (re-reading only a block that fails): a
 * lockstep read-back for a quarter of PARAM_READ's bytes, or 1/256 of them where the
 * golden model is bit-exact (CRCs only). */
#define DIGEST_BLOCK 256u

static tr_status_t h_param_digest(const uint8_t *req, uint16_t len, uint8_t *resp,
                                  uint16_t *rl, tr_err_t *err)
{
    if (need_len(len, 8, err))
        return TR_E_BAD_LENGTH;
    const uint32_t offset = rd_u32(req);
    const uint16_t count = rd_u16(req + 4);
    const uint8_t bits = req[6];
    if (!model.n_layers)
        return tr_fail(err, TR_E_BAD_STATE, 0, "no MODEL_INIT");
    if (bits != 0 && bits != 4 && bits != 8 && bits != 16)
        return tr_fail(err, TR_E_BAD_ARG, 6, "bits: 0, 4, 8 or 16");
    const uint32_t width = bits / 8u; /* bytes per value; 0: nibbles (bits 4) or none */
    const uint32_t low_bytes = width  ? (uint32_t)count * width
                               : bits ? ((uint32_t)count + 1u) / 2u
                                      : 0u;
    const uint32_t n_blocks = (count + DIGEST_BLOCK - 1u) / DIGEST_BLOCK;
    if (4u * n_blocks + low_bytes > TR_MAX_PAYLOAD)
        return tr_fail(err, TR_E_BAD_ARG, 4, "4*blocks + count*bits/8 > max_payload");
    if ((uint64_t)offset + count > model.n_params)
        return tr_fail(err, TR_E_BAD_ARG, 0, "offset+count > n_params");
    uint32_t crc = 0, base = 0, done = 0;
    uint8_t *low = resp + 4u * n_blocks;
    for (uint8_t l = 0; l < model.n_layers && done < count; l++) {
        for (uint8_t w = TR_WHICH_WEIGHT; w <= TR_WHICH_BIAS && done < count; w++) {
            uint32_t size;
            const float *t = mlp_param_tensor(&model, l, w, &size);
            for (uint32_t i = offset + done - base; offset + done >= base && i < size &&
                                                    done < count;
                 i++) {
                uint8_t le[4];
                wr_f32(le, t[i]);
                crc = crc32_update(crc, le, 4);
                if (width) {
                    for (uint32_t b = 0; b < width; b++)
                        *low++ = le[b];
                } else if (!bits) {
                    /* CRCs only */
                } else if (done % 2u == 0u) {
                    *low = le[0] & 0x0Fu;
                } else {
                    *low++ |= (uint8_t)(le[0] << 4);
                }
                done++;
                if (done % DIGEST_BLOCK == 0 || done == count) {
                    wr_u32(resp + 4u * ((done - 1u) / DIGEST_BLOCK), crc);
                    crc = 0;
                }
            }
            base += size;
        }
    }
    *rl = (uint16_t)(4u * n_blocks + low_bytes);
    return TR_OK;
}

static tr_status_t h_train_config(const uint8_t *req, uint16_t len, uint8_t *resp, uint16_t *rl,
                                  tr_err_t *err)
{
    (void)resp;
    float sp[TR_MAX_SPARAMS];
    if (len < 12)
        return tr_fail(err, TR_E_BAD_LENGTH, 12, "TRAIN_CONFIG header is 12 B");
    uint8_t n = req[9];
    if (need_len(len, (uint16_t)(12 + 4 * n), err))
        return TR_E_BAD_LENGTH;
    if (n > TR_MAX_SPARAMS)
        return tr_fail(err, TR_E_BAD_ARG, 9, "too many sparams for strategy");
    for (uint8_t i = 0; i < n; i++)
        sp[i] = rd_f32(req + 12 + 4 * i);
    tr_status_t st = mlp_configure(&model, rd_f32(req), rd_f32(req + 4), req[8], sp, n,
                                   rd_u16(req + 10), err);
    *rl = 0;
    return st;
}

static tr_status_t h_data_config(const uint8_t *req, uint16_t len, uint8_t *resp, uint16_t *rl,
                                 tr_err_t *err)
{
    (void)resp;
    *rl = 0;
    return dataset_config(&data, req, len, err);
}

static tr_status_t h_data_write(const uint8_t *req, uint16_t len, uint8_t *resp, uint16_t *rl,
                                tr_err_t *err)
{
    (void)resp;
    *rl = 0;
    return dataset_write(&data, req, len, err);
}

static tr_status_t h_data_info(const uint8_t *req, uint16_t len, uint8_t *resp, uint16_t *rl,
                               tr_err_t *err)
{
    (void)req;
    if (need_len(len, 0, err))
        return TR_E_BAD_LENGTH;
    dataset_info(&data, resp);
    *rl = DATASET_INFO_SIZE;
    return TR_OK;
}

static tr_status_t h_train_step(const uint8_t *req, uint16_t len, uint8_t *resp, uint16_t *rl,
                                tr_err_t *err)
{
    uint16_t idx[TR_MAX_BATCH];
    mlp_step_result_t r;
    if (len < 4)
        return tr_fail(err, TR_E_BAD_LENGTH, 4, "TRAIN_STEP header is 4 B");
    uint16_t B = rd_u16(req);
    if (need_len(len, (uint16_t)(4 + 2 * B), err))
        return TR_E_BAD_LENGTH;
    if (B == 0 || B > TR_MAX_BATCH)
        return tr_fail(err, TR_E_BAD_ARG, 0, "batch not in 1..max_batch");
    for (uint16_t n = 0; n < B; n++)
        idx[n] = rd_u16(req + 4 + 2 * n);
    tr_status_t st = mlp_train_step(&model, &data, idx, B, &r, err);
    if (st != TR_OK)
        return st;
    uint8_t *p = resp;
    wr_f32(p, r.loss), p += 4;
    wr_u16(p, r.correct), p += 2;
    *p++ = r.skipped;
    *p++ = model.n_layers;
    for (uint8_t l = 0; l < model.n_layers; l++)
        wr_u16(p, r.k[l]), p += 2;
    for (unsigned i = 0; i < MLP_N_PHASES; i++)
        wr_u32(p, r.counters[i]), p += 4;
    *rl = (uint16_t)(p - resp);
    return TR_OK;
}

static tr_status_t h_eval(const uint8_t *req, uint16_t len, uint8_t *resp, uint16_t *rl,
                          tr_err_t *err)
{
    if (need_len(len, 8, err))
        return TR_E_BAD_LENGTH;
    uint32_t start = rd_u32(req);
    uint16_t count = rd_u16(req + 4);
    if (count > TR_MAX_PAYLOAD - 8)
        return tr_fail(err, TR_E_BAD_ARG, 4, "count > max_payload-8");
    float loss_sum = 0.0f;
    uint16_t correct = 0;
    tr_status_t st = mlp_eval(&model, &data, start, count, &loss_sum, &correct, resp + 8, err);
    if (st != TR_OK)
        return st;
    wr_f32(resp, loss_sum);
    wr_u16(resp + 4, correct);
    wr_u16(resp + 6, count);
    *rl = (uint16_t)(8 + count);
    return TR_OK;
}

static tr_status_t h_select(const uint8_t *req, uint16_t len, uint8_t *resp, uint16_t *rl,
                            tr_err_t *err)
{
    if (need_len(len, 8, err))
        return TR_E_BAD_LENGTH;
    tr_status_t st = mlp_select(&model, &data, rd_u32(req), rd_u16(req + 4), err);
    if (st != TR_OK)
        return st;
    uint8_t *p = resp;
    *p++ = model.n_layers;
    *p++ = 0;
    for (uint8_t l = 0; l < model.n_layers; l++)
        wr_u16(p, mlp_layer_k(&model, l)), p += 2;
    wr_u32(p, mlp_trainable_params(&model)), p += 4;
    *rl = (uint16_t)(p - resp);
    return TR_OK;
}

static tr_status_t h_mask_read(const uint8_t *req, uint16_t len, uint8_t *resp, uint16_t *rl,
                               tr_err_t *err)
{
    const uint8_t *row, *bias;
    if (need_len(len, 4, err))
        return TR_E_BAD_LENGTH;
    if (!model.n_layers)
        return tr_fail(err, TR_E_BAD_STATE, 0, "no MODEL_INIT");
    if (req[0] >= model.n_layers)
        return tr_fail(err, TR_E_BAD_ARG, 0, "layer >= n_layers");
    uint16_t n = model.dims[req[0] + 1];
    mlp_masks(&model, req[0], &row, &bias);
    wr_u16(resp, n);
    memcpy(resp + 2, row, n);
    memcpy(resp + 2 + n, bias, n);
    *rl = (uint16_t)(2 + 2 * n);
    return TR_OK;
}

/* ---- int8 backbone (src/backbone.c) ---------------------------------------------------- */

static tr_status_t h_backbone_init(const uint8_t *req, uint16_t len, uint8_t *resp,
                                   uint16_t *rl, tr_err_t *err)
{
    return backbone_init(req, len, resp, rl, err);
}

static tr_status_t h_backbone_write(const uint8_t *req, uint16_t len, uint8_t *resp,
                                    uint16_t *rl, tr_err_t *err)
{
    (void)resp;
    *rl = 0;
    return backbone_write(req, len, err);
}

static tr_status_t h_backbone_info(const uint8_t *req, uint16_t len, uint8_t *resp,
                                   uint16_t *rl, tr_err_t *err)
{
    (void)req;
    if (need_len(len, 0, err))
        return TR_E_BAD_LENGTH;
    *rl = backbone_info(resp);
    return TR_OK;
}

/* FEATURES: int8 backbone output of stored samples [start, start+count). */
static tr_status_t h_features(const uint8_t *req, uint16_t len, uint8_t *resp, uint16_t *rl,
                              tr_err_t *err)
{
    if (need_len(len, 8, err))
        return TR_E_BAD_LENGTH;
    const uint32_t start = rd_u32(req);
    const uint16_t count = rd_u16(req + 4);
    if (!backbone_active())
        return tr_fail(err, TR_E_BAD_STATE, 0, "no BACKBONE_INIT");
    if (!data.configured)
        return tr_fail(err, TR_E_BAD_STATE, 0, "no DATA_CONFIG");
    const uint16_t nf = backbone_n_features();
    if (4u + (uint32_t)count * nf > TR_MAX_PAYLOAD)
        return tr_fail(err, TR_E_BAD_ARG, 4, "count*n_features > max_payload-4");
    if ((uint64_t)start + count > data.n_samples)
        return tr_fail(err, TR_E_BAD_ARG, 0, "sample index >= n_samples");
    for (uint32_t i = start; i < start + count; i++)
        if (!dataset_has(&data, i))
            return tr_fail(err, TR_E_BAD_STATE, 0, "sample not written");
    tr_status_t st = backbone_check(&data, err);
    if (st != TR_OK)
        return st;
    wr_u16(resp, count);
    wr_u16(resp + 2, nf);
    for (uint16_t n = 0; n < count; n++)
        backbone_features(&data, start + n, (int8_t *)(resp + 4 + (uint32_t)n * nf));
    *rl = (uint16_t)(4u + (uint32_t)count * nf);
    return TR_OK;
}

/* Dispatch table, keyed by message type. */
static const proto_cmd_t cmds[] = {
    {TR_MSG_HELLO, h_hello},
    {TR_MSG_ECHO, h_echo},
    {TR_MSG_RESET, h_reset},
    {TR_MSG_STATS, h_stats},
    {TR_MSG_BAUD_SET, link_rate_request},
    {TR_MSG_DEBUG, h_debug},
    {TR_MSG_MODEL_INIT, h_model_init},
    {TR_MSG_PARAM_WRITE, h_param_write},
    {TR_MSG_PARAM_READ, h_param_read},
    {TR_MSG_TRAIN_CONFIG, h_train_config},
    {TR_MSG_BACKBONE_INIT, h_backbone_init},
    {TR_MSG_BACKBONE_WRITE, h_backbone_write},
    {TR_MSG_FEATURES, h_features},
    {TR_MSG_BACKBONE_INFO, h_backbone_info},
    {TR_MSG_DATA_CONFIG, h_data_config},
    {TR_MSG_DATA_WRITE, h_data_write},
    {TR_MSG_DATA_INFO, h_data_info},
    {TR_MSG_TRAIN_STEP, h_train_step},
    {TR_MSG_EVAL, h_eval},
    {TR_MSG_SELECT, h_select},
    {TR_MSG_MASK_READ, h_mask_read},
    {TR_MSG_UPDATE_READ, h_update_read},
    {TR_MSG_PARAM_DIGEST, h_param_digest},
};

/* Sizes the response buffers rely on. */
_Static_assert(TR_MAX_PAYLOAD >= BB_INFO_SIZE + 4, "BACKBONE_INFO / INIT responses must fit");
_Static_assert(TR_MAX_PAYLOAD >= 2 + 2 * TR_MAX_WIDTH, "MASK_READ must fit");
_Static_assert(TR_MAX_PAYLOAD >= 22 + sizeof TR_BOARD_NAME + sizeof TR_BUILD_HASH + sizeof TR_FW_VERSION +
                                     5 + 4 * LINK_RATE_MAX_RATES,
               "HELLO must fit");
_Static_assert(TR_MAX_PAYLOAD >= 24 + 2 * TR_MAX_LAYERS, "TRAIN_STEP response must fit");
_Static_assert(TR_MAX_PAYLOAD >= 4 + 2 * TR_MAX_BATCH, "TRAIN_STEP request must fit");
_Static_assert(TR_MAX_WIDTH <= 256, "labels and EVAL predictions are u8");
_Static_assert(TR_MAX_PAYLOAD <= 0xFFFF - 12, "len is u16");

void app_init(void)
{
    reset_all();
    proto_init(cmds, sizeof cmds / sizeof cmds[0], hal_uart_write);
}

void app_boot_banner(void)
{
    hal_log("tinyrig " TR_FW_VERSION " " TR_BOARD_NAME " proto 1\r\n");
}

void app_poll(void)
{
    int got = 0;
    while (proto_rx_free() > 0) {
        int c = hal_uart_getc();
        if (c == HAL_RX_LOST) {
            proto_poll(); /* the bytes before the gap first: the gap hits the next frame byte */
            proto_rx_lost();
            got = 1;
            continue;
        }
        if (c < 0)
            break;
        (void)proto_rx_push((uint8_t)c);
        got = 1;
    }
    proto_poll();
    link_rate_poll();
    if (!got && !link_rate_pending())
        hal_wait_rx();
}
