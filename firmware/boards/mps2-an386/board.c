/* HAL of the mps2-an386 board. */
#include "board_config.h"
#include "cyccnt.h"
#include "fault.h"
#include "hal.h"
#include "uart.h"

static uint8_t counter_kind;

void hal_init(void)
{
    uart_init();
    fault_enable_handlers();
    counter_kind = counter_init();
}

int hal_uart_getc(void) { return uart_getc(); }

void hal_wait_rx(void) {} /* polled RX: keep polling (WFI needs the RX interrupt) */

void hal_uart_write(const uint8_t *data, size_t n)
{
    while (n--)
        uart_putc(*data++);
}

void hal_log(const char *text)
{
    while (*text)
        uart_putc((uint8_t)*text++);
    uart_putc(0);
}

uint32_t hal_counter_read(void) { return counter_read(); }
uint8_t hal_counter_kind(void) { return counter_kind; }
uint32_t hal_clock_hz(void) { return TR_CLOCK_HZ; }

void hal_debug_fault(void)
{
    (void)*(volatile uint32_t *)(uintptr_t)TR_FAULT_ADDR;
    for (;;) {
    }
}

void hal_debug_hang(void)
{
    for (;;) {
    }
}
