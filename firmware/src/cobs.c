#include "cobs.h"

int cobs_encode(const uint8_t *in, size_t n, uint8_t *out, size_t cap, size_t *out_len)
{
    size_t o = 1, code_pos = 0;
    uint8_t code = 1;
    if (cap < 1)
        return COBS_E_SPACE;
    for (size_t i = 0; i < n; i++) {
        if (in[i] != 0) {
            if (o >= cap)
                return COBS_E_SPACE;
            out[o++] = in[i];
            code++;
        }
        if (in[i] == 0 || code == 0xFF) {
            out[code_pos] = code;
            code = 1;
            code_pos = o;
            /* After a full block that ends the input no new block is opened. */
            if (in[i] == 0 || i + 1 < n) {
                if (o >= cap)
                    return COBS_E_SPACE;
                o++;
            }
        }
    }
    if (code_pos < o)
        out[code_pos] = code;
    *out_len = o;
    return COBS_OK;
}

void cobs_dec_init(cobs_dec_t *d, uint8_t *out, size_t cap)
{
    d->out = out;
    d->cap = cap;
    d->len = 0;
    d->code = 0;
    d->left = 0;
    d->started = 0;
}

static void dec_emit(cobs_dec_t *d, uint8_t b)
{
    if (d->len < d->cap)
        d->out[d->len] = b;
    d->len++;
}

void cobs_dec_push(cobs_dec_t *d, uint8_t b)
{
    if (d->left == 0) {
        /* New block: the zero that ended the previous block is only real if that block
         * was short (< 254 data bytes) and more data follows — hence emitted lazily here. */
        if (d->started && d->code != 0xFF)
            dec_emit(d, 0);
        d->code = b;
        d->left = (uint8_t)(b - 1);
        d->started = 1;
    } else {
        dec_emit(d, b);
        d->left--;
    }
}

int cobs_dec_finish(const cobs_dec_t *d)
{
    if (d->left != 0)
        return COBS_E_FORMAT;
    if (d->len > d->cap)
        return COBS_E_SPACE;
    return COBS_OK;
}

int cobs_decode(const uint8_t *in, size_t n, uint8_t *out, size_t cap, size_t *out_len)
{
    cobs_dec_t d;
    cobs_dec_init(&d, out, cap);
    for (size_t i = 0; i < n; i++) {
        if (in[i] == 0)
            return COBS_E_FORMAT;
        cobs_dec_push(&d, in[i]);
    }
    int st = cobs_dec_finish(&d);
    if (st == COBS_OK)
        *out_len = d.len;
    return st;
}
