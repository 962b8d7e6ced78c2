/* mps2-an386 board port: the CMSDK UART0; nothing to clock (QEMU). */
#include "board.h"
#include "board_config.h"
#include "uart.h"

void board_init(void) { uart_init(); }
_Static_assert(TR_UART_BAUD == TR_LINK_BOOT_BAUD, "the link boots at TR_LINK_BOOT_BAUD");
void board_putc(uint8_t c) { uart_putc(c); }
int board_rx_read(uint8_t *overrun) { return uart_rx_read(overrun); }
void board_rx_irq_enable(void) { uart_rx_irq_enable(); }
uint32_t board_uart_actual_baud(uint32_t baud) { return cmsdk_uart_actual_baud(TR_CLOCK_HZ, baud); }
void board_uart_set_baud(uint32_t baud) { uart_set_baud(baud); }
uint32_t board_clock_hz(void) { return TR_CLOCK_HZ; }

void board_debug_fault(void)
{
    (void)*(volatile uint32_t *)(uintptr_t)TR_FAULT_ADDR;
    for (;;) {
    }
}
