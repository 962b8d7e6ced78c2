/* STM32 USART (the F1/F2/F4 "SR/DR" register layout, RM0090 §30.6): polled TX, RX by
 * the RXNE interrupt (USART1 = IRQ 37, USART3 = IRQ 39 on the STM32F405/F429, RM0090
 * table 62). The same IP
 * is USART1 of the STM32F405 that QEMU's netduinoplus2 models and USART3 of the
 * STM32F429 on the NUCLEO-F429ZI (ST-LINK virtual COM port), so this one driver runs
 * both: for real under QEMU, and on the Nucleo. */
#ifndef TR_STM32_USART_H
#define TR_STM32_USART_H

#include <stdint.h>

#define STM32_USART_SR 0x00u  /* b7 TXE, b6 TC, b5 RXNE, b3 ORE, b2 NF, b1 FE */
#define STM32_USART_DR 0x04u
#define STM32_USART_BRR 0x08u /* OVER8=0: USARTDIV * 16 = f_pclk / baud */
#define STM32_USART_CR1 0x0Cu /* b13 UE, b5 RXNEIE, b3 TE, b2 RE */
#define STM32_USART_CR2 0x10u
#define STM32_USART_CR3 0x14u

#define STM32_USART_SR_TXE (1u << 7)
#define STM32_USART_SR_TC (1u << 6)
#define STM32_USART_SR_RXNE (1u << 5)
#define STM32_USART_SR_ORE (1u << 3)
#define STM32_USART_CR1_RXNEIE (1u << 5)

/* BRR for `baud` with OVER8 = 0 (RM0090 §30.3.4): USARTDIV = f_pclk / (16 · baud);
 * DIV_Mantissa (BRR[15:4]) = its integer part, DIV_Fraction (BRR[3:0]) = 16 × its fraction
 * rounded, a fraction that rounds to 16 carrying into the mantissa. Together that is
 * 16 · USARTDIV rounded to an integer, i.e. f_pclk / baud rounded. 0 when the rate cannot
 * be made (USARTDIV < 1, or a mantissa wider than 12 bits). */
static inline uint32_t stm32_usart_brr(uint32_t pclk_hz, uint32_t baud)
{
    if (baud == 0u)
        return 0u;
    const uint32_t brr = (uint32_t)(((uint64_t)pclk_hz + baud / 2u) / baud);
    return (brr < 16u || brr > 0xFFFFu) ? 0u : brr;
}

/* The rate BRR = stm32_usart_brr(pclk_hz, baud) really gives, 0 if none. */
static inline uint32_t stm32_usart_actual_baud(uint32_t pclk_hz, uint32_t baud)
{
    const uint32_t brr = stm32_usart_brr(pclk_hz, baud);
    return brr ? (pclk_hz + brr / 2u) / brr : 0u;
}

/* 8N1 at `baud` from a peripheral clock of `pclk_hz`; TX and RX enabled. The clock of
 * the USART and its pins must already be on (board_init). */
void stm32_usart_init(uint32_t base, uint32_t pclk_hz, uint32_t baud);
/* A new rate: waits (bounded) for TC, the last byte out of the shift register, then
 * writes BRR; the USART stays enabled (RM0090 §30.3.4: BRR may change while UE = 1). */
void stm32_usart_set_baud(uint32_t base, uint32_t pclk_hz, uint32_t baud);
/* Wait for TXE, write DR. */
void stm32_usart_putc(uint32_t base, uint8_t c);
/* RXNEIE: interrupt on RXNE, and on ORE (RM0090 §30.6.4). Only RXNEIE: TXE and TC are
 * always set in QEMU's model and would interrupt forever. */
void stm32_usart_rx_irq_enable(uint32_t base);
/* From the RX interrupt: RXNE ? DR : -1. An overrun (ORE) lost bytes the sender already
 * sent: *overrun = 1 (the frame they belonged to is NAKed and the host retransmits it).
 * Reading SR then DR clears RXNE, ORE and the interrupt request. */
int stm32_usart_rx_read(uint32_t base, uint8_t *overrun);

#endif
