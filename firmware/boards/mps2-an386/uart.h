/* CMSDK APB UART0 of the MPS2 (QEMU serial0), polled. */
#ifndef TR_MPS2_UART_H
#define TR_MPS2_UART_H

#include <stdint.h>

void uart_init(void);
void uart_putc(uint8_t c);
int uart_getc(void); /* -1 if no byte waiting */

#endif
