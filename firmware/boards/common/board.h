/* What a board port provides to the shared HAL glue (hal_board.c). Everything else a
 * board needs (startup, fault report, counters, stack statistics) is shared. */
#ifndef TR_BOARD_H
#define TR_BOARD_H

#include <stdint.h>

/* Clocks, pins and the link UART; called once from hal_init before anything else. */
void board_init(void);
/* Polled, blocking TX of one byte on the link UART. */
void board_putc(uint8_t c);
/* Polled, non-blocking RX: the next byte or -1. */
int board_getc(void);
/* Core clock the board configured (HELLO clock_hz). */
uint32_t board_clock_hz(void);
/* DEBUG action 1: take a real fault now (never returns). */
void board_debug_fault(void) __attribute__((noreturn));

#endif
