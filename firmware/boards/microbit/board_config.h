/* microbit (nRF51822, Cortex-M0, soft float, QEMU): the extreme-memory target, 16 KB RAM.
 *
 * Sized for the reference head 64-32-10 (2410 parameters = 9640 B) under a sparse
 * strategy: the training arena's memory plan (docs/training.md "Memory plan") keeps only
 * what the configuration needs. `static` at its defaults (last layer: 5 of 10 weight rows
 * and the biases; layer 0: biases) needs 2888 floats = 11,552 B: parameters 2410,
 * gradients of the 202 trainable entries, act[0] 2 x 64, act[1] 2 x 32, logits/output error
 * 2 x 10, layer 0's error chunk 2 x 32. `full` on 64-32-10 needs 20,384 B and is refused
 * (NO_SPACE "arena: needs N B, has M B"); the board's default job is the 64-8-10 head
 * (lab_config.yaml boards.microbit.training), which every strategy but the velocity ones
 * trains. Budget (bytes; `make sizes` and STATS measure it):
 *   training arena TR_ARENA_FLOATS x 4                                11,560
 *   model masks and scratch (mlp_t)                                    ~1050
 *   samples: a window of 8 records of 65 B (the host streams each batch)  520
 *   protocol: RX ring 64 + RX / response / TX-COBS buffers of 332 B    ~1070
 *   UART RX ring (interrupt-fed, hal_board.c): 32 slots x 2 B              64
 *   tinypropv2 scores 256
 *   stack 1408 (peak of one step of the 64-8-10 job: 640 B; the whole default job on
 *   64-32-10 under static: 840 B (rig sizes --measure); the fault report adds ~350)
 * Batch at most 2; the velocity strategies are left out (board.mk). A payload of 320 B
 * (not less) keeps lockstep reads of W[0] (2048 floats) at 26 requests. */
#ifndef TR_BOARD_CONFIG_H
#define TR_BOARD_CONFIG_H

#ifndef TR_BOARD_NAME /* normally -DTR_BOARD_NAME from the Makefile */
#define TR_BOARD_NAME "microbit"
#endif
#define TR_CLOCK_HZ 16000000u /* nRF51: 16 MHz HFCLK; QEMU's SysTick runs at it */
#define TR_N_IRQS 32u
#define TR_UART_IRQN 2u /* UART0 (nRF51 peripheral ID 2) */
#define TR_UART_RX_RING 32u /* link RX ring (hal_board.c), 2 B per slot */
#define TR_UART_TX_PIN 24u /* micro:bit v1 interface-chip UART: P0.24 TX, P0.25 RX */
#define TR_UART_RX_PIN 25u

#define TR_MAX_PAYLOAD 320u
#define TR_RX_RING 64u
#define TR_PARAM_CAPACITY 2410u /* 64-32-10 */
#define TR_ARENA_FLOATS 2890u  /* static's 2888 on 64-32-10; the linker checks the RAM */
#define TR_DATA_CAPACITY 520u
#define TR_MAX_SAMPLES 8u
#define TR_MAX_LAYERS 2u
#define TR_MAX_WIDTH 64u
#define TR_MAX_BATCH 2u

/* 1: always exit through semihosting on a fault (this image targets QEMU; a real
 * micro:bit without a debugger would need 0: BKPT then escalates to a lockup). */
#define TR_SEMIHOSTING 1

/* DEBUG action 1 loads from here: unmapped on the nRF51 (and in QEMU), a bus error that
 * ARMv6-M takes as HardFault. */
#define TR_FAULT_ADDR 0x70000000u

#endif
