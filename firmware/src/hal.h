/* What the portable code needs from a board (or from the host process). */
#ifndef TR_HAL_H
#define TR_HAL_H

#include <stddef.h>
#include <stdint.h>

#include "wire_ids.h" /* TR_COUNTER_*: hal_counter_kind() values */

void hal_init(void);

/* hal_uart_getc: received bytes were lost just before the next byte it returns (a
 * UART overrun); the caller marks the frame in progress as damaged. */
#define HAL_RX_LOST (-2)

/* Link RX: next received byte, -1 if none is waiting, or HAL_RX_LOST once before the
 * first byte after a gap. Never blocks. */
int hal_uart_getc(void);
/* Called by the main loop when nothing arrived: sleeps until input may have arrived
 * (native: blocking read; boards: WFI until the RX interrupt, or any other, fires). */
void hal_wait_rx(void);
/* Receive-path trouble since reset (STATS): `overruns` = times the UART itself lost data
 * (its buffer overflowed before the RX interrupt read it); `ring_full` = times the RX
 * ring was full, so reception paused until the main loop caught up (bytes then wait in
 * the UART: lossless where it back-pressures, as QEMU does, else they show as overruns).
 * Both 0 on the host builds. */
void hal_rx_stats(uint32_t *overruns, uint32_t *ring_full);
/* Link TX: blocking write of n bytes. */
void hal_uart_write(const uint8_t *data, size_t n);
/* Link rate (BAUD_SET, docs/protocol.md §9). hal_link_rates: the rates in baud this build
 * can switch its link UART to, ascending, at most `cap` into `out`; returns their count. 0
 * where the link has no rate (host builds) or where no counter could time out a switch
 * the host never confirms. hal_link_baud: the current rate, 0 where none.
 * hal_link_set_baud: switch to one of those rates once the bytes already written have
 * left the UART; 0 on success, -1 for a rate not in the list. */
size_t hal_link_rates(uint32_t *out, size_t cap);
uint32_t hal_link_baud(void);
int hal_link_set_baud(uint32_t baud);
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
/* RESET: repaint the unused stack so the next STATS reports this run's peak, not the
 * deepest since boot (nothing where the stack is not measured). */
void hal_stack_repaint(void);

/* DEBUG message actions. Neither returns on a board. */
void hal_debug_fault(void);
void hal_debug_hang(void);

#endif
