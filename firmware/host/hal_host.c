/* The HAL parts both host builds share (hal_stdio.c: tinyrig_fw, hal_lib.c:
 * libtinyrig_core.so): a host process has no cycle counter and no measured stack/RAM. */
#include "board_config.h"
#include "hal.h"

uint32_t hal_counter_read(void) { return 0; }
uint8_t hal_counter_kind(void) { return TR_COUNTER_NONE; }
uint32_t hal_clock_hz(void) { return TR_CLOCK_HZ; }
void hal_stats(uint32_t *stack_used, uint32_t *stack_size, uint32_t *static_ram)
{
    *stack_used = *stack_size = *static_ram = 0; /* a host process: not measured */
}

void hal_stack_repaint(void) {}

void hal_rx_stats(uint32_t *overruns, uint32_t *ring_full)
{
    *overruns = *ring_full = 0; /* bytes come from a pipe or a buffer: nothing is lost */
}

/* A pipe or a buffer has no baud rate: nothing to negotiate. */
size_t hal_link_rates(uint32_t *out, size_t cap)
{
    (void)out;
    (void)cap;
    return 0;
}
uint32_t hal_link_baud(void) { return 0; }
int hal_link_set_baud(uint32_t baud)
{
    (void)baud;
    return -1;
}
