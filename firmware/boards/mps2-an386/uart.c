#include "uart.h"

#include "board_config.h"
#include "cortexm.h"

/* CMSDK APB UART (Arm CoreLink SDK technical reference, "APB UART"). */
#define UART0_BASE 0x40004000u
#define UART_DATA REG32(UART0_BASE + 0x00u)
#define UART_STATE REG32(UART0_BASE + 0x04u)     /* b0 TX full, b1 RX full, b3 RX overrun (W1C) */
#define UART_CTRL REG32(UART0_BASE + 0x08u)      /* b0 TX en, b1 RX en, b3 RX interrupt en */
#define UART_INTSTATUS REG32(UART0_BASE + 0x0Cu) /* write: INTCLEAR, b1 RX interrupt (W1C) */
#define UART_BAUDDIV REG32(UART0_BASE + 0x10u)

#define STATE_TXFULL 1u
#define STATE_RXFULL 2u
#define STATE_RXOVR 8u
#define CTRL_TXEN 1u
#define CTRL_RXEN 2u
#define CTRL_RXINTEN 8u
#define INT_RX 2u

void uart_init(void)
{
    UART_BAUDDIV = cmsdk_uart_bauddiv(TR_CLOCK_HZ, TR_UART_BAUD);
    UART_CTRL = CTRL_TXEN | CTRL_RXEN;
}

void uart_set_baud(uint32_t baud)
{
    while (UART_STATE & STATE_TXFULL) {
    }
    UART_BAUDDIV = cmsdk_uart_bauddiv(TR_CLOCK_HZ, baud);
}

/* Polled TX. QEMU's UART takes one byte at a time and back-pressures the guest; on
 * hardware the wait is one character time. */
void uart_putc(uint8_t c)
{
    while (UART_STATE & STATE_TXFULL) {
    }
    UART_DATA = c;
}

/* RX interrupt: the UART's RX line (not the combined overrun line, IRQ 12, which stays
 * off: the overrun bit is checked here instead). */
void uart_rx_irq_enable(void) { UART_CTRL |= CTRL_RXINTEN; }

/* The RX interrupt status is sticky (reading DATA does not clear it): clear it first,
 * then read, so a byte that lands after the read raises it again. The receive buffer
 * holds one byte; a second one arriving before it is read sets RX overrun. */
int uart_rx_read(uint8_t *overrun)
{
    UART_INTSTATUS = INT_RX;
    uint32_t st = UART_STATE;
    if (st & STATE_RXOVR) {
        UART_STATE = STATE_RXOVR;
        *overrun = 1;
    }
    if (st & STATE_RXFULL)
        return (int)(UART_DATA & 0xFFu);
    return -1;
}
