/* The HAL (src/hal.h) of every Cortex-M board, over the few board_* functions of
 * board.h plus the shared fault handlers, cycle counter and stack statistics.
 *
 * Link RX is interrupt-driven: the UART's receive interrupt (TR_UART_IRQN, vector
 * 16 + TR_UART_IRQN in startup.c) moves bytes into a fixed ring here, and the main loop
 * sleeps in WFI while the ring is empty, so an idle device (and an idle emulator's host
 * core) does nothing. When the ring is full the handler stops reading and masks its
 * interrupt in the NVIC; bytes then wait in the UART (QEMU back-pressures the sender;
 * a real UART overruns, which is counted) until hal_uart_getc frees a slot and unmasks. */
#include "board.h"
#include "board_config.h"
#include "cortexm.h"
#include "cyccnt.h"
#include "fault.h"
#include "hal.h"

#if !defined(TR_UART_IRQN) || !defined(TR_UART_RX_RING)
#error "board_config.h must define TR_UART_IRQN and TR_UART_RX_RING (link UART RX interrupt)"
#endif
#if (TR_UART_RX_RING & (TR_UART_RX_RING - 1)) != 0
#error "TR_UART_RX_RING must be a power of two"
#endif
#if TR_UART_IRQN >= TR_N_IRQS
#error "TR_UART_IRQN must be below TR_N_IRQS"
#endif

#define IRQ_WORD (TR_UART_IRQN / 32u)
#define IRQ_BIT (1u << (TR_UART_IRQN % 32u))
#define RX_GAP 0x100u /* slot flag: bytes were lost just before this one */

static uint8_t counter_kind;

/* Single producer (the handler writes head) / single consumer (thread mode writes tail). */
static volatile uint16_t rx_ring[TR_UART_RX_RING];
static volatile uint32_t rx_head, rx_tail;
static volatile uint8_t rx_masked;    /* handler masked itself: ring was full */
static uint8_t rx_gap_pending;        /* handler only: an overrun not yet attached to a byte */
static uint8_t rx_gap_reported;       /* thread only: HAL_RX_LOST given for the slot at tail */
static volatile uint32_t rx_overruns, rx_ring_full;

void hal_init(void)
{
    board_init();
#ifdef TR_MARKER_INIT
    TR_MARKER_INIT(); /* measurement marker GPIO (board_config.h), low until a step */
#endif
    fault_enable_handlers();
    counter_kind = counter_init();
    NVIC_ICPR(IRQ_WORD) = IRQ_BIT; /* nothing stale from before the reset */
    board_rx_irq_enable();
    NVIC_ISER(IRQ_WORD) = IRQ_BIT;
    /* A byte that arrived after board_init turned the receiver on but before its interrupt
     * was enabled raised no interrupt (the CMSDK UART sets its RX status only while RX
     * interrupts are enabled), and the UART holds further input back until it is read:
     * run the handler once, from here, to drain it. */
    NVIC_ISPR(IRQ_WORD) = IRQ_BIT;
}

void UART_RX_IRQHandler(void)
{
    for (;;) {
        uint32_t h = rx_head;
        if (h - rx_tail >= TR_UART_RX_RING) {
            /* Full: leave the byte in the UART. Masking stops the (level) interrupt from
             * re-entering at once; hal_uart_getc unmasks after it frees a slot. */
            NVIC_ICER(IRQ_WORD) = IRQ_BIT;
            rx_masked = 1;
            rx_ring_full++;
            return;
        }
        uint8_t overrun = 0;
        int c = board_rx_read(&overrun);
        if (overrun) {
            rx_overruns++;
            rx_gap_pending = 1;
        }
        if (c < 0)
            return;
        rx_ring[h & (TR_UART_RX_RING - 1u)] = (uint16_t)((unsigned)c | (rx_gap_pending ? RX_GAP : 0u));
        rx_gap_pending = 0;
        rx_head = h + 1u;
    }
}

int hal_uart_getc(void)
{
    uint32_t t = rx_tail;
    if (t == rx_head)
        return -1;
    uint16_t v = rx_ring[t & (TR_UART_RX_RING - 1u)];
    if ((v & RX_GAP) && !rx_gap_reported) {
        rx_gap_reported = 1;
        return HAL_RX_LOST;
    }
    rx_gap_reported = 0;
    rx_tail = t + 1u;
    if (rx_masked) { /* the handler cannot run while masked: no race on the flag */
        rx_masked = 0;
        NVIC_ISER(IRQ_WORD) = IRQ_BIT;
    }
    return (int)(v & 0xFFu);
}

/* Sleep until an interrupt. PRIMASK closes the window between the emptiness check and
 * WFI (a byte arriving there would otherwise be taken before WFI and sleep through):
 * WFI still wakes on an interrupt that is pending but masked by PRIMASK, and the handler
 * runs as soon as `cpsie i` re-enables interrupts. SysTick (the counter) also wakes the
 * core, a few times a second at most. */
void hal_wait_rx(void)
{
    __asm__ volatile("cpsid i" ::: "memory");
    if (rx_tail == rx_head)
        __asm__ volatile("dsb\n\twfi" ::: "memory");
    __asm__ volatile("cpsie i\n\tisb" ::: "memory");
}

void hal_rx_stats(uint32_t *overruns, uint32_t *ring_full)
{
    *overruns = rx_overruns;
    *ring_full = rx_ring_full;
}

void hal_uart_write(const uint8_t *data, size_t n)
{
    while (n--)
        board_putc(*data++);
}

void hal_log(const char *text)
{
    while (*text)
        board_putc((uint8_t)*text++);
    board_putc(0);
}

/* ---- link rate (BAUD_SET) --------------------------------------------------------------
 * The rates offered: the usual PC/USB-bridge rates up to 2 Mbaud, each only if this board's
 * UART makes it within 2 % (the usual budget per side for 8N1 at 16x oversampling; the
 * twins check the same). A board without a counter offers none: it could not undo a
 * switch the host never confirms. */
static const uint32_t link_candidates[] = {115200u, 230400u, 460800u, 921600u, 1000000u,
                                           2000000u};
static uint32_t link_baud = TR_LINK_BOOT_BAUD;

static int link_rate_ok(uint32_t baud)
{
    if (counter_kind == TR_COUNTER_NONE)
        return 0;
    int listed = 0;
    for (size_t i = 0; i < sizeof link_candidates / sizeof link_candidates[0]; i++)
        listed |= link_candidates[i] == baud;
    const uint32_t actual = board_uart_actual_baud(baud);
    const uint32_t off = actual > baud ? actual - baud : baud - actual;
    return listed && actual != 0u && (uint64_t)off * 50u <= baud;
}

size_t hal_link_rates(uint32_t *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < sizeof link_candidates / sizeof link_candidates[0]; i++)
        if (n < cap && link_rate_ok(link_candidates[i]))
            out[n++] = link_candidates[i];
    return n;
}

uint32_t hal_link_baud(void) { return link_baud; }

int hal_link_set_baud(uint32_t baud)
{
    if (!link_rate_ok(baud))
        return -1;
    /* Two character times (20 bits) at the old rate: the last byte written, which a UART
     * may still be shifting out, leaves before the rate changes under it. */
    const uint32_t ticks = (uint32_t)((uint64_t)board_clock_hz() * 20u / link_baud) + 1u;
    const uint32_t t0 = counter_read();
    while (counter_read() - t0 < ticks) {
    }
    board_uart_set_baud(baud);
    link_baud = baud;
    return 0;
}

uint32_t hal_counter_read(void) { return counter_read(); }
uint8_t hal_counter_kind(void) { return counter_kind; }
uint32_t hal_clock_hz(void) { return board_clock_hz(); }

void hal_debug_fault(void) { board_debug_fault(); }

void hal_debug_hang(void)
{
    for (;;) {
    }
}
