/* Wire protocol engine (docs/protocol.md): byte ring -> streaming COBS -> packet checks ->
 * duplicate filter -> dispatch table -> response framing. Knows nothing about training. */
#ifndef TR_PROTO_H
#define TR_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "board_config.h"
#include "tr_status.h"

#define PROTO_VERSION 1u
#define PROTO_HDR_LEN 8u
#define PROTO_CRC_LEN 4u
#define PROTO_PKT_MAX (TR_MAX_PAYLOAD + PROTO_HDR_LEN + PROTO_CRC_LEN)
#define PROTO_NAK_TEXT_MAX 64u

#define PROTO_FLAG_DUP 0x01u

enum {
    MSG_HELLO = 0x01,
    MSG_ECHO = 0x02,
    MSG_RESET = 0x03,
    MSG_STATS = 0x04,
    MSG_DEBUG = 0x0F,
    MSG_MODEL_INIT = 0x10,
    MSG_PARAM_WRITE = 0x11,
    MSG_PARAM_READ = 0x12,
    MSG_TRAIN_CONFIG = 0x13,
    MSG_BACKBONE_INIT = 0x14,
    MSG_BACKBONE_WRITE = 0x15,
    MSG_FEATURES = 0x16,
    MSG_BACKBONE_INFO = 0x17,
    MSG_DATA_CONFIG = 0x20,
    MSG_DATA_WRITE = 0x21,
    MSG_DATA_INFO = 0x22,
    MSG_TRAIN_STEP = 0x30,
    MSG_EVAL = 0x31,
    MSG_SELECT = 0x32,
    MSG_MASK_READ = 0x33,
    MSG_UPDATE_READ = 0x34,
    MSG_PARAM_DIGEST = 0x35,
    MSG_FAULT = 0x7E,
    MSG_NAK = 0x7F,
};

/* A request handler. `req`/`len` = payload; write the response payload to `resp`
 * (capacity TR_MAX_PAYLOAD) and its size to *resp_len. Return TR_OK, TR_SILENT (send
 * nothing), or a NAK reason with *err filled. A handler that does not return TR_OK must
 * not have changed any state (validate fully before writing). */
typedef tr_status_t (*proto_handler_fn)(const uint8_t *req, uint16_t len, uint8_t *resp,
                                        uint16_t *resp_len, tr_err_t *err);

typedef struct {
    uint8_t type;
    proto_handler_fn fn;
} proto_cmd_t;

/* Byte sink for outgoing frames (UART TX, stdout, a test buffer). */
typedef void (*proto_write_fn)(const uint8_t *data, size_t n);

void proto_init(const proto_cmd_t *cmds, size_t n_cmds, proto_write_fn write);

/* RX ring: single producer (app_poll, from hal_uart_getc) / single consumer
 * (proto_poll in the main loop). Returns 0, or -1 if full (byte lost; the frame in
 * progress is then marked corrupt so it is NAKed, never executed). */
int proto_rx_push(uint8_t b);
size_t proto_rx_free(void);
/* Bytes were lost between the bytes already pushed and the next one (a UART overrun):
 * the frame that next byte belongs to is NAKed (BAD_COBS "rx overrun"), never executed. */
void proto_rx_lost(void);

/* Consume every byte in the ring; runs handlers for complete frames. Returns the number
 * of bytes consumed. */
size_t proto_poll(void);

/* Forget the last executed request (RESET): the next request is always executed. */
void proto_forget_last(void);

/* Build one complete frame (COBS(packet) 0x00) into out. Used for unsolicited frames
 * (FAULT) from contexts that must not touch the engine's buffers. Returns bytes written,
 * 0 if cap is too small. */
size_t proto_build_frame(uint8_t type, uint16_t seq, uint8_t flags, const uint8_t *payload,
                         uint16_t len, uint8_t *out, size_t cap);

#endif
