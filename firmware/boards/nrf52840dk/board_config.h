/* nrf52840dk (nRF52840, Cortex-M4F at 64 MHz): capacities stated in HELLO.
 * Budget (bytes): params + momentum + last step 3 x 6144 x 4 = 72 K; activations
 * (4+1) x 32 x 64 x 4 = 40 K, errors 16 K; samples 56 K (the default job, 832 records of
 * 65 B, resident); velocity history 16 K + work 5 K; protocol ~7 K; stack 8 K: ~221 K of
 * 256 K. */
#ifndef TR_BOARD_CONFIG_H
#define TR_BOARD_CONFIG_H

#ifndef TR_BOARD_NAME /* normally -DTR_BOARD_NAME from the Makefile */
#define TR_BOARD_NAME "nrf52840dk"
#endif
#define TR_CLOCK_HZ 64000000u /* the CPU always runs at 64 MHz; HFXO started for the UART */
#define TR_N_IRQS 48u
#define TR_UART_IRQN 2u /* UARTE0_UART0 (nRF52840 peripheral ID 2) */
#define TR_UART_RX_RING 256u /* link RX ring (hal_board.c), 2 B per slot */
#define TR_UART_TX_PIN 6u /* nRF52840-DK: P0.06 TX, P0.08 RX to the J-Link OB virtual COM port */
#define TR_UART_RX_PIN 8u

#define TR_MAX_PAYLOAD 2048u
#define TR_RX_RING 512u
#define TR_PARAM_CAPACITY 6144u
#define TR_DATA_CAPACITY (56u * 1024u)
#define TR_MAX_SAMPLES 4096u
#define TR_MAX_LAYERS 4u
#define TR_MAX_WIDTH 64u
#define TR_MAX_BATCH 32u
#define TR_MAX_VAL 64u
#define TR_VEL_CAPACITY 4096u

/* Measurement marker (src/tr_marker.c): P1.08 = Arduino D7 on the DK's header, high
 * around each TRAIN_STEP. Wire it to PPK2 logic D0, Joulescope GPI0 or the LPM01A trigger.
 * Registers (nRF52840 PS, nrf52840.svd): GPIO P1 at 0x50000300: OUTSET +0x508, OUTCLR
 * +0x50C, DIRSET +0x518 (write 1 to bit n: pin n high / low / output). */
#define TR_MARKER_PIN 8u
#define TR_MARKER_INIT()                                                                    \
    do {                                                                                    \
        *(volatile uint32_t *)0x5000080Cu = 1u << TR_MARKER_PIN;                            \
        *(volatile uint32_t *)0x50000818u = 1u << TR_MARKER_PIN;                            \
    } while (0)
#define TR_MARKER_SET() (*(volatile uint32_t *)0x50000808u = 1u << TR_MARKER_PIN)
#define TR_MARKER_CLR() (*(volatile uint32_t *)0x5000080Cu = 1u << TR_MARKER_PIN)

/* 2: semihosting exit only with a debugger attached (DHCSR.C_DEBUGEN); else halt. */
#define TR_SEMIHOSTING 2

#endif
