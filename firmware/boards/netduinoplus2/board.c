/* netduinoplus2 board port: USART1 (QEMU serial0) through the shared STM32 USART driver.
 * The RCC/GPIO writes are what the real STM32F405 needs (USART1 on PA9/PA10, AF7); QEMU
 * 7.2 does not model RCC or GPIO and ignores them. */
#include "board.h"
#include "board_config.h"
#include "cortexm.h"
#include "stm32_usart.h"

#define USART1_BASE 0x40011000u
#define RCC_AHB1ENR REG32(0x40023830u)
#define RCC_APB2ENR REG32(0x40023844u)
#define GPIOA_MODER REG32(0x40020000u)
#define GPIOA_AFRH REG32(0x40020024u)

void board_init(void)
{
    RCC_AHB1ENR |= 1u << 0;  /* GPIOA */
    RCC_APB2ENR |= 1u << 4;  /* USART1 */
    GPIOA_MODER = (GPIOA_MODER & ~(0xFu << 18)) | (0xAu << 18); /* PA9, PA10: AF */
    GPIOA_AFRH = (GPIOA_AFRH & ~(0xFFu << 4)) | (0x77u << 4);   /* AF7 = USART1 */
    stm32_usart_init(USART1_BASE, TR_PCLK2_HZ, TR_BAUD);
}
_Static_assert(TR_BAUD == TR_LINK_BOOT_BAUD, "the link boots at TR_LINK_BOOT_BAUD");

void board_putc(uint8_t c) { stm32_usart_putc(USART1_BASE, c); }
int board_rx_read(uint8_t *overrun) { return stm32_usart_rx_read(USART1_BASE, overrun); }
void board_rx_irq_enable(void) { stm32_usart_rx_irq_enable(USART1_BASE); }
uint32_t board_uart_actual_baud(uint32_t baud) { return stm32_usart_actual_baud(TR_PCLK2_HZ, baud); }
void board_uart_set_baud(uint32_t baud) { stm32_usart_set_baud(USART1_BASE, TR_PCLK2_HZ, baud); }
uint32_t board_clock_hz(void) { return TR_CLOCK_HZ; }

void board_debug_fault(void)
{
    (void)*(volatile uint32_t *)(uintptr_t)TR_FAULT_ADDR;
    for (;;) {
    }
}
