#include "nrf_uart.h"

#include "cortexm.h"

#define UART(off) REG32(NRF_UART0_BASE + (off))
#define TASKS_STARTRX 0x000u
#define TASKS_STOPRX 0x004u
#define TASKS_STARTTX 0x008u
#define TASKS_STOPTX 0x00Cu
#define EVENTS_RXDRDY 0x108u
#define EVENTS_TXDRDY 0x11Cu
#define EVENTS_ERROR 0x124u
#define INTENSET 0x304u /* b2 RXDRDY, b9 ERROR */
#define ERRORSRC 0x480u
#define ENABLE 0x500u
#define PSELRTS 0x508u
#define PSELTXD 0x50Cu
#define PSELCTS 0x510u
#define PSELRXD 0x514u
#define RXD 0x518u
#define TXD 0x51Cu
#define BAUDRATE 0x524u
#define CONFIG 0x56Cu

#define GPIO_BASE 0x50000000u /* nRF51 GPIO, nRF52 P0: same OUTSET/DIRSET offsets */
#define GPIO_OUTSET REG32(GPIO_BASE + 0x508u)
#define GPIO_DIRSET REG32(GPIO_BASE + 0x518u)

#define CLOCK_BASE 0x40000000u
#define CLOCK_TASKS_HFCLKSTART REG32(CLOCK_BASE + 0x000u)
#define CLOCK_EVENTS_HFCLKSTARTED REG32(CLOCK_BASE + 0x100u)

void nrf_uart_init(uint32_t tx_pin, uint32_t rx_pin, uint32_t baud_reg)
{
    /* TX idles high: drive the pin before the UART takes it, so no false start bit. */
    GPIO_OUTSET = 1u << tx_pin;
    GPIO_DIRSET = 1u << tx_pin;
    UART(ENABLE) = 0;
    UART(PSELTXD) = tx_pin;
    UART(PSELRXD) = rx_pin;
    UART(PSELRTS) = 0xFFFFFFFFu; /* disconnected: no hardware flow control */
    UART(PSELCTS) = 0xFFFFFFFFu;
    UART(BAUDRATE) = baud_reg;
    UART(CONFIG) = 0; /* no parity, no flow control */
    UART(ENABLE) = 4u;
    UART(EVENTS_TXDRDY) = 0;
    UART(EVENTS_RXDRDY) = 0;
    UART(EVENTS_ERROR) = 0;
    UART(TASKS_STARTTX) = 1u;
    UART(TASKS_STARTRX) = 1u;
}

void nrf_uart_set_baud(uint32_t baud_reg) { UART(BAUDRATE) = baud_reg; }

void nrf_uart_putc(uint8_t c)
{
    UART(TXD) = c;
    while (!UART(EVENTS_TXDRDY)) {
    }
    UART(EVENTS_TXDRDY) = 0;
}

void nrf_uart_rx_irq_enable(void) { UART(INTENSET) = (1u << 2) | (1u << 9); }

int nrf_uart_rx_read(uint8_t *overrun)
{
    if (UART(EVENTS_ERROR)) { /* overrun, parity, framing, break: a byte lost or damaged */
        UART(ERRORSRC) = UART(ERRORSRC); /* write 1s to clear */
        UART(EVENTS_ERROR) = 0;
        *overrun = 1;
    }
    /* The handler calls this until it returns -1, so its last call reads EVENTS_RXDRDY
     * back as 0: that read also flushes the clearing write before the handler returns
     * (nRF52: else the event can re-pend the interrupt). */
    if (!UART(EVENTS_RXDRDY))
        return -1;
    UART(EVENTS_RXDRDY) = 0;
    return (int)(UART(RXD) & 0xFFu);
}

int nrf_hfxo_start(uint32_t max_polls)
{
    CLOCK_EVENTS_HFCLKSTARTED = 0;
    CLOCK_TASKS_HFCLKSTART = 1u;
    for (uint32_t i = 0; i < max_polls; i++)
        if (CLOCK_EVENTS_HFCLKSTARTED)
            return 1;
    return 0;
}
