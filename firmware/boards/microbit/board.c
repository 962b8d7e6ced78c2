/* microbit board port: nRF51 UART0 (QEMU serial0) through the shared Nordic UART driver.
 * Real nRF51822 silicon has no SysTick (optional on ARMv6-M): counter_init detects that
 * and reports counter kind 0; QEMU models one at 16 MHz. */
#include "board.h"
#include "board_config.h"
#include "nrf_uart.h"

void board_init(void)
{
    (void)nrf_hfxo_start(100000u); /* crystal for the baud rate; QEMU's CLOCK is a stub */
    nrf_uart_init(TR_UART_TX_PIN, TR_UART_RX_PIN, nrf_uart_baud_reg(TR_LINK_BOOT_BAUD));
}

void board_putc(uint8_t c) { nrf_uart_putc(c); }
int board_rx_read(uint8_t *overrun) { return nrf_uart_rx_read(overrun); }
void board_rx_irq_enable(void) { nrf_uart_rx_irq_enable(); }
uint32_t board_uart_actual_baud(uint32_t baud) { return nrf_uart_actual_baud(nrf_uart_baud_reg(baud)); }
void board_uart_set_baud(uint32_t baud) { nrf_uart_set_baud(nrf_uart_baud_reg(baud)); }
uint32_t board_clock_hz(void) { return TR_CLOCK_HZ; }

void board_debug_fault(void)
{
    (void)*(volatile uint32_t *)(uintptr_t)TR_FAULT_ADDR;
    for (;;) {
    }
}
