/* mps2-an386 (Cortex-M4F, QEMU): capacities stated in HELLO. RAM: 4 MB at 0x20000000
 * for data (code lives in the 4 MB at 0x0). Budget: params+momentum+last step 3 x 512 KB,
 * samples 512 KB, activations (max_layers+1) x max_batch x max_width x 4 = 448 KB,
 * errors 128 KB: ~2.6 MB. */
#ifndef TR_BOARD_CONFIG_H
#define TR_BOARD_CONFIG_H

#ifndef TR_BOARD_NAME /* normally -DTR_BOARD_NAME from the Makefile */
#define TR_BOARD_NAME "mps2-an386"
#endif
#define TR_CLOCK_HZ 25000000u /* MPS2 FPGA SYSCLK; QEMU's SysTick runs at this rate */

#define TR_MAX_PAYLOAD 2048u
#define TR_RX_RING 256u
#define TR_PARAM_CAPACITY 131072u
#define TR_DATA_CAPACITY (512u * 1024u)
#define TR_MAX_SAMPLES 65536u /* TRAIN_STEP indices are u16 */
#define TR_MAX_LAYERS 6u
#define TR_MAX_WIDTH 256u
#define TR_MAX_BATCH 64u
/* int8 backbone (src/backbone.h): parameter blob, each of two activation buffers, kernel
 * scratch. The default digits CNN (rig/golden/quant.py) uses 1,568 + 2 x 1,024 + 48 B. */
#define TR_BACKBONE_CAPACITY (64u * 1024u)
#define TR_BACKBONE_ACT_CAPACITY (16u * 1024u)
#define TR_BACKBONE_SCRATCH (4u * 1024u)
#define TR_BACKBONE_MAX_LAYERS 8u
#define TR_MAX_SAMPLE_FEATURES 2032u /* backbone inputs up to 2032 B (one DATA_WRITE) */

#define TR_N_IRQS 32u /* CMSDK interrupts wired on the AN386 */
#define TR_UART_IRQN 0u /* CMSDK UART0 RX interrupt (QEMU mps2.c; AN386: UART0 RX = 0, TX = 1) */
#define TR_UART_RX_RING 256u /* link RX ring (hal_board.c), 2 B per slot */
#define TR_UART_BAUD 115200u /* BAUDDIV = 25 MHz / 115200 = 217 (uart.h) */

/* 1: always exit through semihosting on a fault (this board only exists in QEMU). */
#define TR_SEMIHOSTING 1

/* DEBUG action 1 loads from here: no device decodes this address on the AN386 map, so
 * the load is a precise BusFault. */
#define TR_FAULT_ADDR 0x70000000u

#endif
