/* BAUD_SET (docs/protocol.md §9): the host asks for a faster link rate. The device answers
 * at the old rate, then switches; the first valid frame at the new rate confirms it, and
 * without one within the time the host gave the device goes back to the old rate, so a
 * rate the wire cannot carry never strands the link. */
#ifndef TR_LINK_RATE_H
#define TR_LINK_RATE_H

#include <stdint.h>

#include "tr_status.h"

#define LINK_RATE_MAX_RATES 6u     /* HELLO lists at most this many rates */
#define LINK_RATE_MAX_REVERT_MS 10000u /* keeps the revert deadline in 32-bit ticks */

/* Request: u32 baud, u16 revert_ms. Response: u32 the rate it switches from. */
tr_status_t link_rate_request(const uint8_t *req, uint16_t len, uint8_t *resp,
                              uint16_t *resp_len, tr_err_t *err);
/* After proto_poll (the response is out): apply a requested switch; confirm it on a valid
 * frame, undo it at the deadline. */
void link_rate_poll(void);
/* A switch waits for its confirming frame: the main loop must not sleep (no interrupt
 * marks the deadline). */
int link_rate_pending(void);
/* HELLO's rate block: u32 current baud, u8 n, u32 rates[n]; returns bytes written. */
uint16_t link_rate_hello(uint8_t *out);

#endif
