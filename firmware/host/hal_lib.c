/* HAL for libtinyrig_core.so: the link is a pair of memory buffers driven by ctypes
 * through tr_lib_feed, so Python tests can run the whole firmware in-process. */
#include <string.h>

#include "app.h"
#include "board_config.h"
#include "fault_sim.h"
#include "hal.h"
#include "proto.h"

static const uint8_t *feed_p;
static size_t feed_n;
static uint8_t *out_p;
static size_t out_cap, out_len, out_dropped;
static int faulted;

void hal_init(void) {}

int hal_uart_getc(void)
{
    if (feed_n == 0)
        return -1;
    feed_n--;
    return *feed_p++;
}

void hal_wait_rx(void) {}

void hal_uart_write(const uint8_t *data, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (out_len < out_cap)
            out_p[out_len++] = data[i];
        else
            out_dropped++;
    }
}

void hal_log(const char *text) { (void)text; }
void hal_debug_fault(void)
{
    uint8_t buf[256];
    hal_uart_write(buf, sim_fault_bytes(buf, sizeof buf));
    faulted = 1;
}

void hal_debug_hang(void) {} /* cannot hang the test process; just no response */

/* ---- exported API -------------------------------------------------------------- */

/* Power-on reset of the in-process firmware. */
void tr_lib_init(void)
{
    hal_init();
    app_init();
    faulted = 0;
}

/* Feed n bytes of link input; response bytes go to out (cap). Returns bytes written to
 * out; *dropped (if given) counts bytes that did not fit. After a DEBUG fault the device
 * is "halted": input is ignored until tr_lib_init (see tr_lib_halted). */
long tr_lib_feed(const uint8_t *in, size_t n, uint8_t *out, size_t cap, size_t *dropped)
{
    feed_p = in;
    feed_n = n;
    out_p = out;
    out_cap = cap;
    out_len = 0;
    out_dropped = 0;
    while (!faulted && (feed_n > 0 || proto_rx_free() < TR_RX_RING))
        app_poll();
    if (dropped)
        *dropped = out_dropped;
    return (long)out_len;
}

int tr_lib_halted(void) { return faulted; }
