/* CMSDK APB UART0 of the MPS2 (QEMU serial0): polled TX, RX by interrupt (UART0 RX is
 * device interrupt 0 on the AN385/AN386). */
#ifndef TR_MPS2_UART_H
#define TR_MPS2_UART_H

#include <stdint.h>

void uart_init(void);
void uart_putc(uint8_t c);
void uart_rx_irq_enable(void);
int uart_rx_read(uint8_t *overrun); /* -1 if no byte waiting; acknowledges the interrupt */

#endif
