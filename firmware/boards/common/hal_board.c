/* The HAL (src/hal.h) of every Cortex-M board, over the few board_* functions of
 * board.h plus the shared fault handlers, cycle counter and stack statistics. */
#include "board.h"
#include "board_config.h"
#include "cyccnt.h"
#include "fault.h"
#include "hal.h"

static uint8_t counter_kind;

void hal_init(void)
{
    board_init();
#ifdef TR_MARKER_INIT
    TR_MARKER_INIT(); /* measurement marker GPIO (board_config.h), low until a step */
#endif
    fault_enable_handlers();
    counter_kind = counter_init();
}

int hal_uart_getc(void) { return board_getc(); }

void hal_wait_rx(void) {} /* polled RX: keep polling (WFI needs the RX interrupt) */

void hal_uart_write(const uint8_t *data, size_t n)
{
    while (n--)
        board_putc(*data++);
}

void hal_log(const char *text)
{
    while (*text)
        board_putc((uint8_t)*text++);
    board_putc(0);
}

uint32_t hal_counter_read(void) { return counter_read(); }
uint8_t hal_counter_kind(void) { return counter_kind; }
uint32_t hal_clock_hz(void) { return board_clock_hz(); }

void hal_debug_fault(void) { board_debug_fault(); }

void hal_debug_hang(void)
{
    for (;;) {
    }
}
