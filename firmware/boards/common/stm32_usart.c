#include "stm32_usart.h"

#include "cortexm.h"

void stm32_usart_init(uint32_t base, uint32_t pclk_hz, uint32_t baud)
{
    REG32(base + STM32_USART_CR1) = 0;
    REG32(base + STM32_USART_CR2) = 0;                  /* 1 stop bit */
    REG32(base + STM32_USART_CR3) = 0;                  /* no flow control, no DMA */
    REG32(base + STM32_USART_BRR) = stm32_usart_brr(pclk_hz, baud);
    REG32(base + STM32_USART_CR1) = (1u << 13) | (1u << 3) | (1u << 2); /* UE TE RE, 8N1 */
}

void stm32_usart_set_baud(uint32_t base, uint32_t pclk_hz, uint32_t baud)
{
    for (uint32_t i = 0; i < 1000000u && !(REG32(base + STM32_USART_SR) & STM32_USART_SR_TC); i++) {
    }
    REG32(base + STM32_USART_BRR) = stm32_usart_brr(pclk_hz, baud);
}

void stm32_usart_putc(uint32_t base, uint8_t c)
{
    while (!(REG32(base + STM32_USART_SR) & STM32_USART_SR_TXE)) {
    }
    REG32(base + STM32_USART_DR) = c;
}

void stm32_usart_rx_irq_enable(uint32_t base)
{
    REG32(base + STM32_USART_CR1) |= STM32_USART_CR1_RXNEIE;
}

int stm32_usart_rx_read(uint32_t base, uint8_t *overrun)
{
    uint32_t sr = REG32(base + STM32_USART_SR);
    if (sr & STM32_USART_SR_ORE)
        *overrun = 1;
    if (sr & (STM32_USART_SR_RXNE | STM32_USART_SR_ORE)) /* SR then DR clears both */
        return (int)(REG32(base + STM32_USART_DR) & 0xFFu);
    return -1;
}
