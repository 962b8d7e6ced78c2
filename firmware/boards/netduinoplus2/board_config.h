/* netduinoplus2 (STM32F405, Cortex-M4F, QEMU): capacities stated in HELLO, sized to the
 * 128 KB SRAM of the real chip. Budget (bytes): params + momentum + last step
 * 3 x 3072 x 4 = 36 K; activations (4+1) x 16 x 64 x 4 = 20 K, errors 2 x 16 x 64 x 4 = 8 K;
 * samples 32 K (504 digits records of 65 B; bigger sets are streamed by the host);
 * velocity history 2816 x 4 = 11 K (64 validation samples x 44 neurons) + per-neuron
 * work 5 K; protocol buffers ~3.5 K; stack 4 K. Measured: `make sizes`, STATS. */
#ifndef TR_BOARD_CONFIG_H
#define TR_BOARD_CONFIG_H

#ifndef TR_BOARD_NAME /* normally -DTR_BOARD_NAME from the Makefile */
#define TR_BOARD_NAME "netduinoplus2"
#endif
/* QEMU's netduinoplus2 models SYSCLK = 168 MHz (SysTick counts at it) but no RCC: the
 * firmware configures no clock (a PLL lock would never come). Real silicon would run on
 * the 16 MHz HSI with this image. */
#define TR_CLOCK_HZ 168000000u
#define TR_PCLK2_HZ 84000000u /* USART1 is on APB2 (SYSCLK / 2 as QEMU assumes) */
#define TR_BAUD 115200u
#define TR_N_IRQS 82u
#define TR_UART_IRQN 37u /* USART1 global interrupt (RM0090 table 62) */
#define TR_UART_RX_RING 256u /* link RX ring (hal_board.c), 2 B per slot */

#define TR_MAX_PAYLOAD 1024u
#define TR_RX_RING 256u
#define TR_PARAM_CAPACITY 3072u
#define TR_DATA_CAPACITY (32u * 1024u)
#define TR_MAX_SAMPLES 1024u
#define TR_MAX_LAYERS 4u
#define TR_MAX_WIDTH 64u
#define TR_MAX_BATCH 16u
#define TR_MAX_VAL 64u
#define TR_VEL_CAPACITY 2816u

/* 1: always exit through semihosting on a fault (this image targets QEMU). */
#define TR_SEMIHOSTING 1

/* DEBUG action 1 loads from here: nothing is mapped at 0x70000000 in QEMU's STM32F405,
 * so the load is a precise BusFault. */
#define TR_FAULT_ADDR 0x70000000u

#endif
