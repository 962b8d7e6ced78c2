/* nucleo-f429zi (STM32F429ZI, Cortex-M4F at 168 MHz): capacities stated in HELLO.
 * Budget (bytes): params + momentum + last step 3 x 6144 x 4 = 72 K; activations
 * (4+1) x 32 x 64 x 4 = 40 K, errors 16 K; velocity history 4096 x 4 = 16 K + work 5 K;
 * protocol ~7 K; stack 8 K: ~165 K of the 192 K SRAM. Samples: 60 K in CCM (the whole
 * default job, 832 records of 65 B, stays resident). */
#ifndef TR_BOARD_CONFIG_H
#define TR_BOARD_CONFIG_H

#ifndef TR_BOARD_NAME /* normally -DTR_BOARD_NAME from the Makefile */
#define TR_BOARD_NAME "nucleo-f429zi"
#endif
/* Clock tree (board.c): HSI 16 MHz -> PLL (M 8, N 168, P 2, Q 7) -> SYSCLK 168 MHz,
 * AHB 168, APB1 42 (USART3), APB2 84; flash 5 wait states, VOS scale 1. 168 MHz needs no
 * over-drive (180 MHz would). If the PLL does not lock in time the board stays on HSI
 * 16 MHz and HELLO says so (clock_hz). Set TR_USE_PLL 0 to stay on HSI. */
#ifndef TR_USE_PLL
#define TR_USE_PLL 1
#endif
#define TR_CLOCK_HZ 168000000u
#define TR_HSI_HZ 16000000u
#define TR_BAUD 115200u
#define TR_N_IRQS 91u
#define TR_UART_IRQN 39u /* USART3 global interrupt (RM0090 table 62) */
#define TR_UART_RX_RING 256u /* link RX ring (hal_board.c), 2 B per slot */

#define TR_MAX_PAYLOAD 2048u
#define TR_RX_RING 512u
#define TR_PARAM_CAPACITY 6144u
#define TR_DATA_CAPACITY (60u * 1024u)
#define TR_MAX_SAMPLES 4096u
#define TR_MAX_LAYERS 4u
#define TR_MAX_WIDTH 64u
#define TR_MAX_BATCH 32u
#define TR_MAX_VAL 64u
#define TR_VEL_CAPACITY 4096u

/* Measurement marker (src/tr_marker.c): PF13 = Arduino D7 on the Zio connector CN10,
 * high around each TRAIN_STEP. Wire it to PPK2 logic D0, Joulescope GPI0, or (with the
 * LPM01A stacked as a shield, its D7 is this pin) the LPM01A trigger. Registers (RM0090,
 * STM32F429x SVD): RCC_AHB1ENR 0x40023830 bit 5 GPIOFEN; GPIOF 0x40021400: MODER +0x00
 * (2 bits per pin, 01 = output), BSRR +0x18 (bit n sets pin n, bit n+16 resets it). */
#define TR_MARKER_PIN 13u
#define TR_MARKER_INIT()                                                                    \
    do {                                                                                    \
        *(volatile uint32_t *)0x40023830u |= 1u << 5;                                       \
        (void)*(volatile uint32_t *)0x40023830u; /* RM0090: read after enabling a clock */  \
        *(volatile uint32_t *)0x40021418u = 1u << (TR_MARKER_PIN + 16u);                    \
        *(volatile uint32_t *)0x40021400u = (*(volatile uint32_t *)0x40021400u &            \
                                             ~(3u << (2u * TR_MARKER_PIN))) |               \
                                            (1u << (2u * TR_MARKER_PIN));                   \
    } while (0)
#define TR_MARKER_SET() (*(volatile uint32_t *)0x40021418u = 1u << TR_MARKER_PIN)
#define TR_MARKER_CLR() (*(volatile uint32_t *)0x40021418u = 1u << (TR_MARKER_PIN + 16u))

/* 2: semihosting exit only with a debugger attached (DHCSR.C_DEBUGEN); else halt. */
#define TR_SEMIHOSTING 2

#endif
