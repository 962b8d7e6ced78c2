#include "uart.h"

#include "board_config.h"
#include "cortexm.h"

#define UART0_BASE 0x40004000u
#define UART_DATA REG32(UART0_BASE + 0x00u)
#define UART_STATE REG32(UART0_BASE + 0x04u) /* bit0 TX full, bit1 RX full */
#define UART_CTRL REG32(UART0_BASE + 0x08u)  /* bit0 TX enable, bit1 RX enable */
#define UART_BAUDDIV REG32(UART0_BASE + 0x10u)

void uart_init(void)
{
    UART_BAUDDIV = TR_UART_BAUDDIV;
    UART_CTRL = 3u;
}

/* Polled TX. QEMU's UART takes one byte at a time and back-pressures the guest; on
 * hardware the wait is one character time. */
void uart_putc(uint8_t c)
{
    while (UART_STATE & 1u) {
    }
    UART_DATA = c;
}

/* Polled, non-blocking RX. The CMSDK UART has a 1-byte receive buffer: on hardware this
 * must move to the RX interrupt (feeding proto_rx_push) before bytes can arrive while
 * a request executes; QEMU back-pressures instead of overrunning, and the protocol is
 * stop-and-wait, so polling is lossless here. */
int uart_getc(void)
{
    if (UART_STATE & 2u)
        return (int)(UART_DATA & 0xFFu);
    return -1;
}
