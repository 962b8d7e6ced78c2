/* Native HAL: the link is this process's stdin/stdout, so the portable firmware runs as
 * a host process speaking the protocol on its stdio (rig PipeTransport). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault_sim.h"
#include "hal.h"

static uint8_t inbuf[4096];
static size_t in_pos, in_len;

void hal_init(void)
{
    /* A vanished host must end us quietly via EPIPE handling, not SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
}

int hal_uart_getc(void)
{
    if (in_pos < in_len)
        return inbuf[in_pos++];
    return -1;
}

void hal_wait_rx(void)
{
    if (in_pos < in_len)
        return;
    for (;;) {
        ssize_t r = read(STDIN_FILENO, inbuf, sizeof inbuf);
        if (r > 0) {
            in_pos = 0;
            in_len = (size_t)r;
            return;
        }
        if (r == 0)
            exit(0); /* host closed the link: the process's "power off" */
        if (errno != EINTR)
            exit(1);
    }
}

void hal_uart_write(const uint8_t *data, size_t n)
{
    while (n) {
        ssize_t w = write(STDOUT_FILENO, data, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            exit(0); /* EPIPE: host is gone */
        }
        data += w;
        n -= (size_t)w;
    }
}

void hal_log(const char *text)
{
    ssize_t r = write(STDERR_FILENO, text, strlen(text));
    (void)r;
}

void hal_debug_fault(void)
{
    uint8_t buf[256];
    size_t n = sim_fault_bytes(buf, sizeof buf);
    hal_uart_write(buf, n);
    _exit(0x80 + SIM_FAULT_EXCEPTION); /* same exit code QEMU gives for a HardFault */
}

void hal_debug_hang(void)
{
    for (;;)
        pause();
}
