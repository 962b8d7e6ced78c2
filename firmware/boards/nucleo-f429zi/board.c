/* nucleo-f429zi board port: 168 MHz from the HSI through the PLL, USART3 on PD8 (TX) /
 * PD9 (RX), AF7: the ST-LINK/V2-1 virtual COM port. Register addresses: RM0090. Every wait
 * on a hardware flag is bounded, so a clock that does not come up leaves the board on
 * HSI (reported in HELLO) instead of hanging before the first UART byte. */
#include "board.h"
#include "board_config.h"
#include "cortexm.h"
#include "stm32_usart.h"

#define RCC_BASE 0x40023800u
#define RCC_CR REG32(RCC_BASE + 0x00u)
#define RCC_PLLCFGR REG32(RCC_BASE + 0x04u)
#define RCC_CFGR REG32(RCC_BASE + 0x08u)
#define RCC_AHB1ENR REG32(RCC_BASE + 0x30u)
#define RCC_APB1ENR REG32(RCC_BASE + 0x40u)
#define PWR_CR REG32(0x40007000u)
#define FLASH_ACR REG32(0x40023C00u)
#define GPIOD_BASE 0x40020C00u
#define GPIOD_MODER REG32(GPIOD_BASE + 0x00u)
#define GPIOD_OSPEEDR REG32(GPIOD_BASE + 0x08u)
#define GPIOD_PUPDR REG32(GPIOD_BASE + 0x0Cu)
#define GPIOD_AFRH REG32(GPIOD_BASE + 0x24u)
#define USART3_BASE 0x40004800u

/* Fields, named <peripheral>_<register>_<field> after the SVD (tests/test_svd_boards.py
 * checks every one against ST's STM32F429x.svd): _Pos = lowest bit, else the mask. */
#define RCC_CR_PLLON (1u << 24)
#define RCC_CR_PLLRDY (1u << 25)
#define RCC_PLLCFGR_PLLM_Pos 0u
#define RCC_PLLCFGR_PLLN_Pos 6u
#define RCC_PLLCFGR_PLLP_Pos 16u
#define RCC_PLLCFGR_PLLSRC (1u << 22)
#define RCC_PLLCFGR_PLLQ_Pos 24u
#define PLLCFGR_RESERVED_BITS 0xF0BC8000u /* bits no field covers: keep their reset value */
#define RCC_CFGR_SW_Pos 0u
#define RCC_CFGR_SWS_Pos 2u
#define RCC_CFGR_HPRE_Pos 4u
#define RCC_CFGR_PPRE1_Pos 10u
#define RCC_CFGR_PPRE2_Pos 13u
#define RCC_AHB1ENR_GPIODEN (1u << 3)
#define RCC_APB1ENR_USART3EN (1u << 18)
#define RCC_APB1ENR_PWREN (1u << 28)
#define PWR_CR_VOS_Pos 14u
#define FLASH_ACR_LATENCY_Pos 0u
#define FLASH_ACR_PRFTEN (1u << 8)
#define FLASH_ACR_ICEN (1u << 9)
#define FLASH_ACR_DCEN (1u << 10)

/* The clock tree (RM0090 §6.3.2): HSI 16 MHz / M = 2 MHz VCO input, x N = 336 MHz VCO,
 * / P = 168 MHz SYSCLK, / Q = 48 MHz; AHB /1, APB1 /4 = 42 MHz, APB2 /2 = 84 MHz. The test
 * recomputes these from the reference manual's formulas. */
#define PLL_M 8u
#define PLL_N 168u
#define PLL_P 2u
#define PLL_Q 7u
#define APB1_DIV 4u
#define APB2_DIV 2u
#define WAIT_STATES 5u /* RM0090 Table 10: 150 < HCLK <= 168 MHz at 2.7-3.6 V */
_Static_assert(TR_HSI_HZ / PLL_M * PLL_N / PLL_P == TR_CLOCK_HZ, "PLL settings != TR_CLOCK_HZ");
#define PPRE_DIV(d) ((d) == 1u ? 0u : (d) == 2u ? 4u : (d) == 4u ? 5u : (d) == 8u ? 6u : 7u)

/* The link: USART3 on PD8 (TX) / PD9 (RX), alternate function 7 (UM1974 §6.9, the
 * STM32F429 datasheet's alternate-function table). */
#define LINK_TX_PIN 8u
#define LINK_RX_PIN 9u
#define LINK_AF 7u
#define GPIO_MODE_AF 2u
#define GPIO_SPEED_FAST 2u
#define GPIO_PULL_UP 1u

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
    RCC_APB1ENR |= RCC_APB1ENR_PWREN;
    (void)RCC_APB1ENR;
    PWR_CR |= 3u << PWR_CR_VOS_Pos; /* VOS scale 1 */
    FLASH_ACR = (WAIT_STATES << FLASH_ACR_LATENCY_Pos) | FLASH_ACR_PRFTEN | FLASH_ACR_ICEN |
                FLASH_ACR_DCEN;
    if (((FLASH_ACR >> FLASH_ACR_LATENCY_Pos) & 0xFu) != WAIT_STATES)
        return;
    /* PLLSRC = HSI; the reserved bits keep their reset values (RM0090 §6.3.2). */
    RCC_PLLCFGR = (RCC_PLLCFGR & PLLCFGR_RESERVED_BITS) | (PLL_M << RCC_PLLCFGR_PLLM_Pos) |
                  (PLL_N << RCC_PLLCFGR_PLLN_Pos) | ((PLL_P / 2u - 1u) << RCC_PLLCFGR_PLLP_Pos) |
                  (PLL_Q << RCC_PLLCFGR_PLLQ_Pos);
    RCC_CR |= RCC_CR_PLLON;
    if (!wait_bits(&RCC_CR, RCC_CR_PLLRDY, RCC_CR_PLLRDY)) {
        RCC_CR &= ~RCC_CR_PLLON;
        return;
    }
    /* AHB /1, APB1 /4 (42 MHz <= 45), APB2 /2 (84 MHz <= 90), then switch to the PLL. */
    const uint32_t prescalers = (0xFu << RCC_CFGR_HPRE_Pos) | (7u << RCC_CFGR_PPRE1_Pos) |
                                (7u << RCC_CFGR_PPRE2_Pos) | (3u << RCC_CFGR_SW_Pos);
    RCC_CFGR = (RCC_CFGR & ~prescalers) | (PPRE_DIV(APB1_DIV) << RCC_CFGR_PPRE1_Pos) |
               (PPRE_DIV(APB2_DIV) << RCC_CFGR_PPRE2_Pos);
    RCC_CFGR = (RCC_CFGR & ~(3u << RCC_CFGR_SW_Pos)) | (2u << RCC_CFGR_SW_Pos);
    if (!wait_bits(&RCC_CFGR, 3u << RCC_CFGR_SWS_Pos, 2u << RCC_CFGR_SWS_Pos)) {
        RCC_CFGR &= ~prescalers; /* back to HSI, no prescalers */
        RCC_CR &= ~RCC_CR_PLLON;
        return;
    }
    sysclk = TR_CLOCK_HZ;
    pclk1 = TR_CLOCK_HZ / APB1_DIV;
#endif
}

void board_init(void)
{
    clock_init();
    RCC_AHB1ENR |= RCC_AHB1ENR_GPIODEN;
    RCC_APB1ENR |= RCC_APB1ENR_USART3EN;
    (void)RCC_APB1ENR; /* RM0090: a read after enabling a clock */
    const uint32_t tx2 = 2u * LINK_TX_PIN, rx2 = 2u * LINK_RX_PIN;
    const uint32_t two = (3u << tx2) | (3u << rx2);
    GPIOD_MODER = (GPIOD_MODER & ~two) | (GPIO_MODE_AF << tx2) | (GPIO_MODE_AF << rx2);
    GPIOD_OSPEEDR = (GPIOD_OSPEEDR & ~two) | (GPIO_SPEED_FAST << tx2) | (GPIO_SPEED_FAST << rx2);
    GPIOD_PUPDR = (GPIOD_PUPDR & ~two) | (GPIO_PULL_UP << rx2); /* pull-up on RX */
    const uint32_t tx4 = 4u * (LINK_TX_PIN - 8u), rx4 = 4u * (LINK_RX_PIN - 8u);
    GPIOD_AFRH = (GPIOD_AFRH & ~((0xFu << tx4) | (0xFu << rx4))) | (LINK_AF << tx4) |
                 (LINK_AF << rx4);
    stm32_usart_init(USART3_BASE, pclk1, TR_BAUD);
}
_Static_assert(TR_BAUD == TR_LINK_BOOT_BAUD, "the link boots at TR_LINK_BOOT_BAUD");

void board_putc(uint8_t c) { stm32_usart_putc(USART3_BASE, c); }
int board_rx_read(uint8_t *overrun) { return stm32_usart_rx_read(USART3_BASE, overrun); }
void board_rx_irq_enable(void) { stm32_usart_rx_irq_enable(USART3_BASE); }
/* pclk1: 42 MHz on the PLL, 16 MHz if the clock tree stayed on HSI (fewer rates then). */
uint32_t board_uart_actual_baud(uint32_t baud) { return stm32_usart_actual_baud(pclk1, baud); }
void board_uart_set_baud(uint32_t baud) { stm32_usart_set_baud(USART3_BASE, pclk1, baud); }
uint32_t board_clock_hz(void) { return sysclk; }

/* An undefined instruction: a UsageFault (UNDEFINSTR) on every Cortex-M, independent of
 * what the bus matrix of this part does with unmapped addresses. */
void board_debug_fault(void)
{
    __asm__ volatile("udf #0");
    for (;;) {
    }
}
