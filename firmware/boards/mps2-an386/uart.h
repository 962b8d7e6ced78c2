/* CMSDK APB UART0 of the MPS2 (QEMU serial0): polled TX, RX by interrupt (UART0 RX is
 * device interrupt 0 on the AN385/AN386). */
#ifndef TR_MPS2_UART_H
#define TR_MPS2_UART_H

#include <stdint.h>

/* BAUDDIV for `baud` from the UART's PCLK (CMSDK APB UART TRM: baud = PCLK / BAUDDIV,
 * BAUDDIV >= 16), 0 when the rate cannot be made. QEMU ignores it but checks >= 16. */
static inline uint32_t cmsdk_uart_bauddiv(uint32_t pclk_hz, uint32_t baud)
{
    const uint32_t div = baud ? pclk_hz / baud : 0u;
    return div < 16u ? 0u : div;
}

/* The rate BAUDDIV = cmsdk_uart_bauddiv(pclk_hz, baud) really gives, 0 if none. */
static inline uint32_t cmsdk_uart_actual_baud(uint32_t pclk_hz, uint32_t baud)
{
    const uint32_t div = cmsdk_uart_bauddiv(pclk_hz, baud);
    return div ? (pclk_hz + div / 2u) / div : 0u;
}

void uart_init(void);
/* A new BAUDDIV once the TX buffer is empty (the caller waits out the shift register). */
void uart_set_baud(uint32_t baud);
void uart_putc(uint8_t c);
void uart_rx_irq_enable(void);
int uart_rx_read(uint8_t *overrun); /* -1 if no byte waiting; acknowledges the interrupt */

#endif
