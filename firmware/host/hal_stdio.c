/* Native HAL: the link is this process's stdin/stdout, so the portable firmware runs as
 * a host process speaking the protocol on its stdio (rig PipeTransport). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "board_config.h"
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

uint32_t hal_counter_read(void) { return 0; }
uint8_t hal_counter_kind(void) { return HAL_COUNTER_NONE; }
uint32_t hal_clock_hz(void) { return TR_CLOCK_HZ; }
void hal_stats(uint32_t *stack_used, uint32_t *stack_size, uint32_t *static_ram)
{
    *stack_used = *stack_size = *static_ram = 0; /* a host process: not measured */
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
