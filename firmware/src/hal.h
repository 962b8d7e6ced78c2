/* What the portable code needs from a board (or from the host process). */
#ifndef TR_HAL_H
#define TR_HAL_H

#include <stddef.h>
#include <stdint.h>

#include "wire_ids.h" /* TR_COUNTER_*: hal_counter_kind() values */

void hal_init(void);

/* Link RX: next received byte, or -1 if none is waiting. Never blocks. */
int hal_uart_getc(void);
/* Called by the main loop when nothing arrived: may sleep until input is likely
 * (native: blocking read; boards: return at once, later WFI with IRQ RX). */
void hal_wait_rx(void);
/* Link TX: blocking write of n bytes. */
void hal_uart_write(const uint8_t *data, size_t n);
/* Human-readable text outside frames (boot line). Boards send it on the UART followed
 * by 0x00, so the host sees exactly one undecodable chunk it can log; natively it goes
 * to stderr and the link stays frames-only. */
void hal_log(const char *text);

/* Free-running up-counter; deltas by unsigned subtraction. Meaning per kind. */
uint32_t hal_counter_read(void);
uint8_t hal_counter_kind(void);
uint32_t hal_clock_hz(void);

/* STATS message: stack high-water mark and size (bytes; 0 where unknown, e.g. native)
 * and static RAM (.data + .bss, without the stack). */
void hal_stats(uint32_t *stack_used, uint32_t *stack_size, uint32_t *static_ram);

/* DEBUG message actions. Neither returns on a board. */
void hal_debug_fault(void);
void hal_debug_hang(void);

#endif
