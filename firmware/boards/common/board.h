/* What a board port provides to the shared HAL glue (hal_board.c). Everything else a
 * board needs (startup, fault report, counters, stack statistics) is shared. */
#ifndef TR_BOARD_H
#define TR_BOARD_H

#include <stdint.h>

/* Clocks, pins and the link UART; called once from hal_init before anything else. */
void board_init(void);
/* Polled, blocking TX of one byte on the link UART. */
void board_putc(uint8_t c);
/* Link RX, called only from the RX interrupt handler (boards/common/hal_board.c, which
 * owns the ring buffer and the NVIC): the next byte the UART holds, or -1 when it holds
 * none, acknowledging the interrupt cause as it goes. Sets *overrun to 1 when the UART
 * reports that it lost received data (its own buffer overflowed before it was read). */
int board_rx_read(uint8_t *overrun);
/* Enable the link UART's receive interrupt in the peripheral (data ready; error/overrun
 * where it shares the line). The NVIC side is TR_UART_IRQN of board_config.h. */
void board_rx_irq_enable(void);
/* The link UART's receive interrupt handler (hal_board.c); startup.c puts it at vector
 * 16 + TR_UART_IRQN. */
void UART_RX_IRQHandler(void);
/* The link's rate after board_init on every board (the host's DEFAULT_BAUDRATE). */
#define TR_LINK_BOOT_BAUD 115200u
/* The rate the link UART really runs at when asked for `baud` (its rate register's
 * granularity), 0 when the UART cannot be set near it. Pure arithmetic. */
uint32_t board_uart_actual_baud(uint32_t baud);
/* Program the link UART's rate register for `baud` (one board_uart_actual_baud accepted);
 * the caller has let the last TX byte leave. */
void board_uart_set_baud(uint32_t baud);
/* Core clock the board configured (HELLO clock_hz). */
uint32_t board_clock_hz(void);
/* DEBUG action 1: take a real fault now (never returns). */
void board_debug_fault(void) __attribute__((noreturn));

#endif
