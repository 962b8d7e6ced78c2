/* nucleo-f429zi board port: 168 MHz from the HSI through the PLL, USART3 on PD8 (TX) /
 * PD9 (RX), AF7: the ST-LINK/V2-1 virtual COM port. Register addresses: RM0090. Every wait
 * on a hardware flag is bounded, so a clock that does not come up leaves the board on
 * HSI (reported in HELLO) instead of hanging before the first UART byte. */
#include "board.h"
#include "board_config.h"
#include "cortexm.h"
#include "stm32_usart.h"

#define RCC_BASE 0x40023800u
#define RCC_CR REG32(RCC_BASE + 0x00u)      /* b0 HSION b1 HSIRDY b24 PLLON b25 PLLRDY */
#define RCC_PLLCFGR REG32(RCC_BASE + 0x04u)
#define RCC_CFGR REG32(RCC_BASE + 0x08u)    /* SW 1:0, SWS 3:2, HPRE 7:4, PPRE1 12:10, PPRE2 15:13 */
#define RCC_AHB1ENR REG32(RCC_BASE + 0x30u)
#define RCC_APB1ENR REG32(RCC_BASE + 0x40u)
#define PWR_CR REG32(0x40007000u)          /* VOS 15:14 (11 = scale 1) */
#define FLASH_ACR REG32(0x40023C00u)       /* LATENCY 3:0, PRFTEN b8, ICEN b9, DCEN b10 */
#define GPIOD_BASE 0x40020C00u
#define GPIOD_MODER REG32(GPIOD_BASE + 0x00u)
#define GPIOD_OSPEEDR REG32(GPIOD_BASE + 0x08u)
#define GPIOD_PUPDR REG32(GPIOD_BASE + 0x0Cu)
#define GPIOD_AFRH REG32(GPIOD_BASE + 0x24u)
#define USART3_BASE 0x40004800u

#define POLLS 200000u /* >= 10 ms at 16 MHz; PLL lock takes ~0.1 ms */

static uint32_t sysclk = TR_HSI_HZ;
static uint32_t pclk1 = TR_HSI_HZ;

static int wait_bits(volatile uint32_t *reg, uint32_t mask, uint32_t want)
{
    for (uint32_t i = 0; i < POLLS; i++)
        if ((*reg & mask) == want)
            return 1;
    return 0;
}

static void clock_init(void)
{
#if TR_USE_PLL
    RCC_APB1ENR |= 1u << 28;                         /* PWREN */
    (void)RCC_APB1ENR;
    PWR_CR |= 3u << 14;                              /* VOS scale 1 */
    FLASH_ACR = 5u | (1u << 8) | (1u << 9) | (1u << 10); /* 5 WS + prefetch + caches */
    if ((FLASH_ACR & 0xFu) != 5u)
        return;
    /* HSI / M 8 = 2 MHz, x N 168 = 336 MHz VCO, / P 2 = 168 MHz, / Q 7 = 48 MHz; the
     * reserved bits keep their reset values (RM0090 §6.3.2). */
    RCC_PLLCFGR = (RCC_PLLCFGR & 0xF0BC8000u) | 8u | (168u << 6) | (0u << 16) | (0u << 22) |
                  (7u << 24);
    RCC_CR |= 1u << 24;                              /* PLLON */
    if (!wait_bits(&RCC_CR, 1u << 25, 1u << 25)) {   /* PLLRDY */
        RCC_CR &= ~(1u << 24);
        return;
    }
    /* AHB /1, APB1 /4 (42 MHz <= 45), APB2 /2 (84 MHz <= 90), then switch to the PLL. */
    RCC_CFGR = (RCC_CFGR & ~0xFCF3u) | (5u << 10) | (4u << 13);
    RCC_CFGR = (RCC_CFGR & ~3u) | 2u;
    if (!wait_bits(&RCC_CFGR, 3u << 2, 2u << 2)) {   /* SWS = PLL */
        RCC_CFGR &= ~0xFCF3u;                        /* back to HSI, no prescalers */
        RCC_CR &= ~(1u << 24);
        return;
    }
    sysclk = TR_CLOCK_HZ;
    pclk1 = TR_CLOCK_HZ / 4u;
#endif
}

void board_init(void)
{
    clock_init();
    RCC_AHB1ENR |= 1u << 3;  /* GPIOD */
    RCC_APB1ENR |= 1u << 18; /* USART3 */
    (void)RCC_APB1ENR;       /* RM0090: a read after enabling a clock */
    GPIOD_MODER = (GPIOD_MODER & ~(0xFu << 16)) | (0xAu << 16);     /* PD8, PD9: AF */
    GPIOD_OSPEEDR = (GPIOD_OSPEEDR & ~(0xFu << 16)) | (0xAu << 16); /* fast */
    GPIOD_PUPDR = (GPIOD_PUPDR & ~(0xFu << 16)) | (0x4u << 16);     /* pull-up on RX (PD9) */
    GPIOD_AFRH = (GPIOD_AFRH & ~0xFFu) | 0x77u;                      /* AF7 = USART3 */
    stm32_usart_init(USART3_BASE, pclk1, TR_BAUD);
}

void board_putc(uint8_t c) { stm32_usart_putc(USART3_BASE, c); }
int board_rx_read(uint8_t *overrun) { return stm32_usart_rx_read(USART3_BASE, overrun); }
void board_rx_irq_enable(void) { stm32_usart_rx_irq_enable(USART3_BASE); }
uint32_t board_clock_hz(void) { return sysclk; }

/* An undefined instruction: a UsageFault (UNDEFINSTR) on every Cortex-M, independent of
 * what the bus matrix of this part does with unmapped addresses. */
void board_debug_fault(void)
{
    __asm__ volatile("udf #0");
    for (;;) {
    }
}
