/* Nordic legacy UART (non-DMA), polled TX, RX by interrupt (UART0 is peripheral ID 2,
 * so device interrupt 2, on both chips): UART0 of the nRF51822 (micro:bit; QEMU's
 * `microbit` models it, with a 6-byte RX FIFO) and the same legacy UART0 that the
 * nRF52840 still has at the same address and register offsets (nRF52840 PS §6.33,
 * "deprecated" but present). One driver for both.
 *
 * Not shared: the nRF52 UARTE (ENABLE = 8) moves bytes by EasyDMA from/to RAM buffers
 * (TXD.PTR/MAXCNT, RXD.PTR/MAXCNT, ENDTX/ENDRX events): a different programming model
 * (no RXD/TXD registers; a polled byte-at-a-time getc needs a 1-byte DMA buffer and a
 * restart per byte, or double buffering with the ENDRX_STARTRX shortcut). The firmware
 * uses the legacy UART on the nRF52840 too; an IRQ/DMA link driver for the nRF52 is
 * future work (firmware/README.md, "Known limits"). */
#ifndef TR_NRF_UART_H
#define TR_NRF_UART_H

#include <stdint.h>

#define NRF_UART0_BASE 0x40002000u
#define NRF_UART_BAUD_115200 0x01D7E000u

/* BAUDRATE register value for `baud`, 0 if the peripheral has no such setting. The values
 * are the table of the nRF52840 PS (UART BAUDRATE) and the nRF51 RM, equal on both chips
 * for these rates; not a formula (the register is not a plain divider). */
static inline uint32_t nrf_uart_baud_reg(uint32_t baud)
{
    switch (baud) {
    case 9600u: return 0x00275000u;
    case 19200u: return 0x004EA000u;
    case 38400u: return 0x009D5000u;
    case 57600u: return 0x00EBF000u;
    case 115200u: return NRF_UART_BAUD_115200;
    case 230400u: return 0x03AFB000u;
    case 460800u: return 0x075F7000u;
    case 921600u: return 0x0EBED000u;
    case 1000000u: return 0x10000000u;
    default: return 0u;
    }
}

/* The rate a BAUDRATE value really gives: the register is the rate in units of
 * 16 MHz / 2^32 (nRF52840 PS §6.33.10), 0 for 0. */
static inline uint32_t nrf_uart_actual_baud(uint32_t baud_reg)
{
    return (uint32_t)(((uint64_t)baud_reg * 16000000u + (1ull << 31)) >> 32);
}

/* Pins: GPIO numbers of port 0 (nRF52: PSEL bit 31 = 0 "connected", port bit 5 = 0). */
void nrf_uart_init(uint32_t tx_pin, uint32_t rx_pin, uint32_t baud_reg);
/* A new BAUDRATE; the caller has waited for the last TXDRDY (nrf_uart_putc does). */
void nrf_uart_set_baud(uint32_t baud_reg);
/* Write TXD, wait for EVENTS_TXDRDY, clear it (TXD written while a byte is pending is
 * ignored by the peripheral, so never write before the previous TXDRDY). */
void nrf_uart_putc(uint8_t c);
/* INTENSET: RXDRDY and ERROR. */
void nrf_uart_rx_irq_enable(void);
/* From the RX interrupt: EVENTS_RXDRDY ? (clear it, then read RXD) : -1. Clearing first
 * matters: reading RXD pops the FIFO and re-raises RXDRDY if more bytes wait. An ERROR
 * event (ERRORSRC: overrun, parity, framing, break) sets *overrun = 1. */
int nrf_uart_rx_read(uint8_t *overrun);

/* Start the external crystal (HFXO) for an accurate baud rate; waits at most about
 * `max_polls` polls of EVENTS_HFCLKSTARTED. Returns 1 if it started. */
int nrf_hfxo_start(uint32_t max_polls);

#endif
