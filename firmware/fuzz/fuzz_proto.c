/* libFuzzer harness over the firmware's receive path and every message handler.
 *
 * The whole portable core runs in-process through the host HAL of libtinyrig_core
 * (host/hal_lib.c: tr_lib_init / tr_lib_feed), reset before every input. An input is a
 * list of records; each record is one of
 *
 *   op%4 == 0  PACKET  u8 type, u16 len, payload[len]: sealed with a valid header and
 *                      CRC-32, COBS-encoded and framed, so mutations reach the handlers
 *                      instead of dying at the CRC check;
 *   op%4 == 1  RAW     u16 len, bytes[len] fed as they are (COBS, delimiters, ring);
 *   op%4 == 2  HEADER  u8 header[8], payload to the end of the record's u16 len: the
 *                      header as given (version, len field, flags) with a valid CRC;
 *   op%4 == 3  DAMAGED like PACKET, then one byte of the frame XORed with a mask.
 *
 * PACKET/DAMAGED records take the next seq, or repeat the last one when op bit 2 is set
 * (the duplicate cache).
 *
 * Oracle besides ASan/UBSan: everything the firmware sends must be well-formed frames
 * (COBS, CRC, len field, at most max_payload) or the fault-simulation text line.
 *
 * This file has its own CRC-32 and COBS (not the firmware's): the oracle must not trust
 * the code under test, and the Makefile compiles it without coverage instrumentation so
 * the fuzzer's time goes to the firmware's per-byte loops, not to ours. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "board_config.h"
#include "proto.h"
#include "wire.h"

void tr_lib_init(void);
long tr_lib_feed(const uint8_t *in, size_t n, uint8_t *out, size_t cap, size_t *dropped);
int tr_lib_halted(void);

#define OUT_CAP (256u * 1024u)
static uint8_t out_buf[OUT_CAP];
static uint8_t pkt[PROTO_PKT_MAX + 64];
static uint8_t frame[sizeof pkt + sizeof pkt / 254u + 3u];
static uint8_t dec[PROTO_PKT_MAX + 64];

static uint32_t crc_table[256];

static uint32_t crc32(const uint8_t *p, size_t n)
{
    if (!crc_table[1])
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = (c & 1u) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
            crc_table[i] = c;
        }
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++)
        c = crc_table[(c ^ p[i]) & 0xFFu] ^ (c >> 8);
    return ~c;
}

/* COBS encode (minimal form: no code after a final full block); returns the length. */
static size_t cobs_enc(const uint8_t *in, size_t n, uint8_t *out)
{
    size_t o = 1, code_pos = 0;
    uint8_t code = 1;
    for (size_t i = 0; i < n; i++) {
        if (in[i] != 0) {
            out[o++] = in[i];
            code++;
        }
        if (in[i] == 0 || code == 0xFF) {
            out[code_pos] = code;
            code = 1;
            code_pos = o;
            if (in[i] == 0 || i + 1 < n)
                o++;
        }
    }
    if (code_pos < o)
        out[code_pos] = code;
    return o;
}

/* COBS decode of one block without its 0x00; -1 if malformed or longer than cap. */
static long cobs_dec(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    size_t i = 0, o = 0;
    while (i < n) {
        size_t code = in[i];
        if (code == 0 || i + code > n || o + code > cap + 1)
            return -1;
        for (size_t k = 1; k < code; k++)
            out[o++] = in[i + k];
        i += code;
        if (code != 0xFF && i < n) {
            if (o >= cap)
                return -1;
            out[o++] = 0;
        }
    }
    return (long)o;
}

typedef struct {
    const uint8_t *p;
    size_t n;
} cursor_t;

static int take(cursor_t *c, size_t k, const uint8_t **out)
{
    if (c->n < k)
        return 0;
    *out = c->p;
    c->p += k;
    c->n -= k;
    return 1;
}

static uint16_t take_len(cursor_t *c)
{
    const uint8_t *b;
    uint16_t len = take(c, 2, &b) ? rd_u16(b) : 0;
    return len > c->n ? (uint16_t)c->n : len;
}

static int is_text(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= 32 && p[i] < 127) || p[i] == '\r' || p[i] == '\n'))
            return 0;
    return 1;
}

/* Every 0x00-delimited segment of the output is a valid frame or a text line. */
static void check_output(const uint8_t *o, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        if (o[i] != 0)
            continue;
        size_t seg = i - start;
        if (seg > 0 && !is_text(o + start, seg)) {
            long got = cobs_dec(o + start, seg, dec, sizeof dec);
            if (got < 0)
                abort(); /* the firmware sent a malformed COBS block */
            size_t len = (size_t)got;
            if (len < TR_PROTO_HEADER_SIZE + TR_PROTO_CRC_SIZE || len > PROTO_PKT_MAX)
                abort(); /* a packet shorter than its header or over max_payload */
            if (crc32(dec, len - TR_PROTO_CRC_SIZE) != rd_u32(dec + len - TR_PROTO_CRC_SIZE))
                abort(); /* a frame with a wrong CRC */
            if ((size_t)rd_u16(dec + 4) + TR_PROTO_HEADER_SIZE + TR_PROTO_CRC_SIZE != len)
                abort(); /* len field disagrees with the packet */
        }
        start = i + 1;
    }
    /* Output that does not end in a delimiter would be a frame cut short. */
    if (start != n && !is_text(o + start, n - start))
        abort();
}

static void feed(const uint8_t *data, size_t n)
{
    size_t dropped = 0;
    long got = tr_lib_feed(data, n, out_buf, sizeof out_buf, &dropped);
    if (got < 0 || dropped)
        abort(); /* more output than any request can cause */
    check_output(out_buf, (size_t)got);
}

/* Seal pkt[0..8+len) (header already in place) with its CRC, frame it and feed it. */
static void send_sealed(size_t len, int damage, uint16_t where, uint8_t mask)
{
    size_t n = TR_PROTO_HEADER_SIZE + len;
    wr_u32(pkt + n, crc32(pkt, n));
    n += TR_PROTO_CRC_SIZE;
    frame[0] = 0;
    size_t enc = cobs_enc(pkt, n, frame + 1);
    frame[1 + enc] = 0;
    if (damage && mask)
        frame[1 + where % (enc + 1)] ^= mask;
    feed(frame, enc + 2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cursor_t c = {data, size};
    uint16_t seq = 1;
    const uint8_t *b;
    tr_lib_init();
    while (c.n > 0 && !tr_lib_halted()) {
        take(&c, 1, &b);
        uint8_t b0 = b[0], op = b0 & 3u;
        if (op == 1) {
            uint16_t len = take_len(&c);
            take(&c, len, &b);
            feed(b, len);
        } else if (op == 2) {
            uint16_t len = take_len(&c);
            if (len < TR_PROTO_HEADER_SIZE || len - TR_PROTO_HEADER_SIZE > TR_MAX_PAYLOAD + 32u) {
                take(&c, len, &b);
                continue;
            }
            take(&c, len, &b);
            memcpy(pkt, b, len);
            send_sealed(len - TR_PROTO_HEADER_SIZE, 0, 0, 0);
        } else {
            uint8_t type = 0, mask = 0;
            uint16_t where = 0;
            if (take(&c, 1, &b))
                type = b[0];
            if (op == 3 && take(&c, 3, &b)) {
                where = rd_u16(b);
                mask = b[2];
            }
            uint16_t len = take_len(&c);
            if (len > TR_MAX_PAYLOAD)
                len = TR_MAX_PAYLOAD;
            take(&c, len, &b);
            pkt[0] = TR_PROTO_VERSION;
            pkt[1] = type;
            if (!(b0 & 4u))
                seq++;
            wr_u16(pkt + 2, seq);
            wr_u16(pkt + 4, len);
            pkt[6] = 0;
            pkt[7] = 0;
            memcpy(pkt + TR_PROTO_HEADER_SIZE, b, len);
            send_sealed(len, op == 3, where, mask);
        }
    }
    return 0;
}
