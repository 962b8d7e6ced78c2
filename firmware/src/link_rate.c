#include "link_rate.h"

#include "hal.h"
#include "proto.h"
#include "wire.h"

static uint32_t want_baud;    /* requested, applied after the response went out */
static uint16_t want_ms;
static uint32_t prev_baud;    /* a switch awaiting confirmation: the rate to go back to */
static uint32_t since, ticks; /* hal_counter_read() at the switch; the deadline in ticks */
static uint32_t frames_then;  /* proto_frames_ok() at the switch */
static uint8_t pending;

tr_status_t link_rate_request(const uint8_t *req, uint16_t len, uint8_t *resp,
                              uint16_t *resp_len, tr_err_t *err)
{
    if (len != 6)
        return tr_fail(err, TR_E_BAD_LENGTH, 6, "BAUD_SET: u32 baud, u16 revert_ms");
    const uint32_t baud = rd_u32(req);
    const uint16_t ms = rd_u16(req + 4);
    uint32_t rates[LINK_RATE_MAX_RATES];
    const size_t n = hal_link_rates(rates, LINK_RATE_MAX_RATES);
    int listed = 0;
    for (size_t i = 0; i < n; i++)
        listed |= rates[i] == baud;
    if (!listed)
        return tr_fail(err, TR_E_BAD_ARG, 0, "baud not in HELLO's rate list");
    if (ms == 0u || ms > LINK_RATE_MAX_REVERT_MS)
        return tr_fail(err, TR_E_BAD_ARG, 4, "revert_ms: 1..10000");
    want_baud = baud;
    want_ms = ms;
    wr_u32(resp, hal_link_baud());
    *resp_len = 4;
    return TR_OK;
}

void link_rate_poll(void)
{
    if (want_baud) {
        /* A second BAUD_SET while one is pending goes back from the unconfirmed rate to
         * the confirmed one, not to the unconfirmed one. */
        const uint32_t from = pending ? prev_baud : hal_link_baud();
        if (hal_link_set_baud(want_baud) == 0) {
            prev_baud = from;
            since = hal_counter_read();
            ticks = hal_clock_hz() / 1000u * want_ms;
            frames_then = proto_frames_ok();
            pending = 1;
        }
        want_baud = 0;
        return;
    }
    if (!pending)
        return;
    if (proto_frames_ok() != frames_then)
        pending = 0; /* a frame arrived intact at the new rate: keep it */
    else if (hal_counter_read() - since >= ticks) {
        (void)hal_link_set_baud(prev_baud);
        pending = 0;
    }
}

int link_rate_pending(void) { return pending || want_baud; }

uint16_t link_rate_hello(uint8_t *out)
{
    uint32_t rates[LINK_RATE_MAX_RATES];
    const size_t n = hal_link_rates(rates, LINK_RATE_MAX_RATES);
    wr_u32(out, hal_link_baud());
    out[4] = (uint8_t)n;
    for (size_t i = 0; i < n; i++)
        wr_u32(out + 5 + 4 * i, rates[i]);
    return (uint16_t)(5u + 4u * n);
}
