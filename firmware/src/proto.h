/* Wire protocol engine (docs/protocol.md): byte ring -> streaming COBS -> packet checks ->
 * duplicate filter -> dispatch table -> response framing. Knows nothing about training. */
#ifndef TR_PROTO_H
#define TR_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "board_config.h"
#include "tr_status.h"
#include "wire_ids.h"

#define PROTO_PKT_MAX (TR_MAX_PAYLOAD + TR_PROTO_HEADER_SIZE + TR_PROTO_CRC_SIZE)
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

/* Frames that arrived intact (COBS, CRC, header) since boot, whatever they asked for: a
 * link-rate switch counts them to know the wire works at the new rate (link_rate.c). */
uint32_t proto_frames_ok(void);

/* Forget the last executed request (RESET): the next request is always executed. */
void proto_forget_last(void);

/* Build one complete frame (COBS(packet) 0x00) into out. Used for unsolicited frames
 * (FAULT) from contexts that must not touch the engine's buffers. Returns bytes written,
 * 0 if cap is too small. */
size_t proto_build_frame(uint8_t type, uint16_t seq, uint8_t flags, const uint8_t *payload,
                         uint16_t len, uint8_t *out, size_t cap);

#endif
