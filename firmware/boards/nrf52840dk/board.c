/* nrf52840dk board port: HFXO for an accurate baud rate, then the legacy UART0 on P0.06
 * (TX) / P0.08 (RX), the J-Link OB virtual COM port, through the shared Nordic UART
 * driver (see nrf_uart.h for why not the UARTE). No errata workarounds are applied: none
 * of the nRF52840 errata touch the CPU, CLOCK or UART paths this firmware uses. */
#include "board.h"
#include "board_config.h"
#include "nrf_uart.h"

void board_init(void)
{
    (void)nrf_hfxo_start(1000000u); /* HFXO start-up is ~0.3 ms; bounded anyway */
    nrf_uart_init(TR_UART_TX_PIN, TR_UART_RX_PIN, nrf_uart_baud_reg(TR_LINK_BOOT_BAUD));
}

void board_putc(uint8_t c) { nrf_uart_putc(c); }
int board_rx_read(uint8_t *overrun) { return nrf_uart_rx_read(overrun); }
void board_rx_irq_enable(void) { nrf_uart_rx_irq_enable(); }
uint32_t board_uart_actual_baud(uint32_t baud) { return nrf_uart_actual_baud(nrf_uart_baud_reg(baud)); }
void board_uart_set_baud(uint32_t baud) { nrf_uart_set_baud(nrf_uart_baud_reg(baud)); }
uint32_t board_clock_hz(void) { return TR_CLOCK_HZ; }

/* An undefined instruction: a UsageFault (UNDEFINSTR) on every Cortex-M. */
void board_debug_fault(void)
{
    __asm__ volatile("udf #0");
    for (;;) {
    }
}
