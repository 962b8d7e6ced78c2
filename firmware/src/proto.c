#include "proto.h"

#include <string.h>

#include "cobs.h"
#include "crc32.h"
#include "wire.h"

/* ---- RX ring ----------------------------------------------------------------------
 * The main loop moves bytes from the HAL (on boards: the UART's interrupt-fed ring) into
 * this ring and decodes them. head is written by the producer only, tail by the consumer
 * only; size is a power of two so indices wrap by masking. */
#define RING_SIZE TR_RX_RING
#if (RING_SIZE & (RING_SIZE - 1)) != 0
#error "TR_RX_RING must be a power of two"
#endif
static uint8_t ring[RING_SIZE];
static volatile uint32_t ring_head, ring_tail;
static volatile uint8_t ring_overrun;

int proto_rx_push(uint8_t b)
{
    uint32_t h = ring_head;
    if (h - ring_tail >= RING_SIZE) {
        ring_overrun = 1;
        return -1;
    }
    ring[h & (RING_SIZE - 1)] = b;
    ring_head = h + 1;
    return 0;
}

size_t proto_rx_free(void) { return RING_SIZE - (size_t)(ring_head - ring_tail); }

void proto_rx_lost(void) { ring_overrun = 1; }

/* ---- engine state ------------------------------------------------------------------ */
static const proto_cmd_t *cmd_table;
static size_t cmd_count;
static proto_write_fn tx_write;

static uint8_t rx_pkt[PROTO_PKT_MAX];
static cobs_dec_t rx_dec;
static uint8_t rx_corrupt; /* an RX overrun hit the frame in progress */

/* resp_pkt holds the last response to an executed request: it doubles as the duplicate
 * cache. NAKs are built elsewhere so a transport NAK never clobbers the cache. */
static uint8_t resp_pkt[PROTO_PKT_MAX];
static uint16_t resp_len_total;
static uint8_t tx_enc[COBS_MAX_ENCODED(PROTO_PKT_MAX) + 1];

static uint32_t frames_ok;
static uint8_t last_valid;
static uint16_t last_seq;
static uint8_t last_type;
static uint32_t last_crc;

void proto_init(const proto_cmd_t *cmds, size_t n_cmds, proto_write_fn write)
{
    cmd_table = cmds;
    cmd_count = n_cmds;
    tx_write = write;
    cobs_dec_init(&rx_dec, rx_pkt, sizeof rx_pkt);
    rx_corrupt = 0;
    last_valid = 0;
}

void proto_forget_last(void) { last_valid = 0; }

uint32_t proto_frames_ok(void) { return frames_ok; }

/* Finish header+CRC of a packet whose payload is already in place. */
static uint16_t seal_packet(uint8_t *pkt, uint8_t type, uint16_t seq, uint8_t flags, uint16_t len)
{
    pkt[0] = TR_PROTO_VERSION;
    pkt[1] = type;
    wr_u16(pkt + 2, seq);
    wr_u16(pkt + 4, len);
    pkt[6] = flags;
    pkt[7] = 0;
    uint32_t crc = crc32_update(0, pkt, (size_t)TR_PROTO_HEADER_SIZE + len);
    wr_u32(pkt + TR_PROTO_HEADER_SIZE + len, crc);
    return (uint16_t)(TR_PROTO_HEADER_SIZE + len + TR_PROTO_CRC_SIZE);
}

static void send_packet(const uint8_t *pkt, size_t n)
{
    size_t enc_len = 0;
    if (cobs_encode(pkt, n, tx_enc, sizeof tx_enc - 1, &enc_len) != COBS_OK)
        return; /* cannot happen: tx_enc is sized for the largest packet */
    tx_enc[enc_len++] = 0;
    tx_write(tx_enc, enc_len);
}

size_t proto_build_frame(uint8_t type, uint16_t seq, uint8_t flags, const uint8_t *payload,
                         uint16_t len, uint8_t *out, size_t cap)
{
    /* Small frames only (FAULT, NAK): the packet is staged on the stack. */
    uint8_t pkt[TR_PROTO_HEADER_SIZE + 128 + TR_PROTO_CRC_SIZE];
    size_t enc_len = 0;
    if (len > 128 || cap < 1)
        return 0;
    memcpy(pkt + TR_PROTO_HEADER_SIZE, payload, len);
    uint16_t n = seal_packet(pkt, type, seq, flags, len);
    if (cobs_encode(pkt, n, out, cap - 1, &enc_len) != COBS_OK)
        return 0;
    out[enc_len++] = 0;
    return enc_len;
}

static void send_nak(uint8_t reason, uint8_t req_type, uint16_t seq, uint16_t detail,
                     const char *text)
{
    uint8_t pl[4 + TR_PROTO_NAK_TEXT_MAX];
    uint8_t frame[COBS_MAX_ENCODED(sizeof pl + TR_PROTO_HEADER_SIZE + TR_PROTO_CRC_SIZE) + 1];
    size_t tl = 0;
    pl[0] = reason;
    pl[1] = req_type;
    wr_u16(pl + 2, detail);
    if (text) {
        while (text[tl] && tl < TR_PROTO_NAK_TEXT_MAX) {
            pl[4 + tl] = (uint8_t)text[tl];
            tl++;
        }
    }
    size_t n = proto_build_frame(TR_MSG_NAK, seq, 0, pl, (uint16_t)(4 + tl), frame, sizeof frame);
    if (n)
        tx_write(frame, n);
}

static const proto_cmd_t *find_cmd(uint8_t type)
{
    for (size_t i = 0; i < cmd_count; i++)
        if (cmd_table[i].type == type)
            return &cmd_table[i];
    return NULL;
}

/* C11 forbids `return f();` in a void function; keep the one-line error paths anyway. */
#define NAK_RETURN(...)      \
    do {                     \
        send_nak(__VA_ARGS__); \
        return;              \
    } while (0)

/* A complete frame body has been decoded (or failed to). */
static void handle_frame(void)
{
    int cst = cobs_dec_finish(&rx_dec);
    size_t n = rx_dec.len;
    /* Best effort addressing for NAKs: header fields if they arrived, else 0. */
    uint8_t type = (n >= 2) ? rx_pkt[1] : 0;
    uint16_t seq = (n >= 4) ? rd_u16(rx_pkt + 2) : 0;

    if (n == 0 && cst == COBS_OK && !rx_corrupt)
        return; /* empty frame (0x00 0x00): resync filler, not an error */
    if (rx_corrupt)
        NAK_RETURN(TR_E_BAD_COBS, type, seq, 0, "rx overrun");
    if (cst == COBS_E_SPACE)
        NAK_RETURN(TR_E_TOO_LONG, type, seq, (uint16_t)(n > 0xFFFF ? 0xFFFF : n),
                        "packet exceeds max_payload+12");
    if (cst != COBS_OK)
        NAK_RETURN(TR_E_BAD_COBS, type, seq, 0, "cobs block cut short");
    if (n < TR_PROTO_HEADER_SIZE + TR_PROTO_CRC_SIZE)
        NAK_RETURN(TR_E_BAD_HEADER, type, seq, (uint16_t)n, "packet shorter than 12 B");
    uint32_t crc = crc32_update(0, rx_pkt, n - TR_PROTO_CRC_SIZE);
    if (crc != rd_u32(rx_pkt + n - TR_PROTO_CRC_SIZE))
        NAK_RETURN(TR_E_BAD_CRC, type, seq, 0, "crc32 mismatch");
    uint16_t len = rd_u16(rx_pkt + 4);
    if (rx_pkt[0] != TR_PROTO_VERSION)
        NAK_RETURN(TR_E_BAD_HEADER, type, seq, 0, "protocol version");
    if ((size_t)len + TR_PROTO_HEADER_SIZE + TR_PROTO_CRC_SIZE != n)
        NAK_RETURN(TR_E_BAD_HEADER, type, seq, 4, "len field != packet size");
    frames_ok++;

    /* Duplicate: same seq, type and CRC as the last executed request = a retransmit.
     * Matching type+CRC too means a restarted host reusing a seq number for a
     * different request is executed, not answered from a stale cache. */
    if (last_valid && seq == last_seq && type == last_type && crc == last_crc) {
        resp_pkt[6] |= TR_PROTO_FLAG_DUP;
        uint16_t plen = rd_u16(resp_pkt + 4);
        wr_u32(resp_pkt + TR_PROTO_HEADER_SIZE + plen,
               crc32_update(0, resp_pkt, (size_t)TR_PROTO_HEADER_SIZE + plen));
        send_packet(resp_pkt, resp_len_total);
        return;
    }

    const proto_cmd_t *cmd = find_cmd(type);
    if (!cmd)
        NAK_RETURN(TR_E_UNKNOWN_TYPE, type, seq, 0, "unknown message type");

    uint16_t out_len = 0;
    tr_err_t err = {0, NULL};
    tr_status_t st = cmd->fn(rx_pkt + TR_PROTO_HEADER_SIZE, len, resp_pkt + TR_PROTO_HEADER_SIZE, &out_len, &err);
    if (st == TR_SILENT)
        return;
    if (st != TR_OK) {
        /* Nothing changed, so there is nothing to protect from re-execution; dropping the
         * cache keeps "last executed" meaning "last one that succeeded". */
        last_valid = 0;
        NAK_RETURN((uint8_t)st, type, seq, err.detail, err.text);
    }
    if (out_len > TR_MAX_PAYLOAD)
        out_len = TR_MAX_PAYLOAD; /* handlers size-check; this is only a last guard */
    resp_len_total = seal_packet(resp_pkt, (uint8_t)(type | TR_PROTO_RESPONSE_BIT), seq, 0, out_len);
    /* A handler may call proto_forget_last (RESET); honour it. */
    if (type != TR_MSG_RESET) {
        last_valid = 1;
        last_seq = seq;
        last_type = type;
        last_crc = crc;
    }
    send_packet(resp_pkt, resp_len_total);
}

size_t proto_poll(void)
{
    size_t consumed = 0;
    while (ring_tail != ring_head) {
        uint32_t t = ring_tail;
        uint8_t b = ring[t & (RING_SIZE - 1)];
        ring_tail = t + 1;
        consumed++;
        if (ring_overrun) {
            /* Bytes were lost before this one: the current frame is damaged. */
            ring_overrun = 0;
            rx_corrupt = 1;
        }
        if (b == 0) {
            handle_frame();
            cobs_dec_init(&rx_dec, rx_pkt, sizeof rx_pkt);
            rx_corrupt = 0;
        } else {
            cobs_dec_push(&rx_dec, b);
        }
    }
    return consumed;
}
