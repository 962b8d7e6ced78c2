/* A tiny image for the twins' exception path (tests/test_twin.py): the link UART's RX
 * interrupt fills a ring buffer, the main loop sleeps in WFI while it is empty, SysTick
 * interrupts tick along, and both handlers clobber FP registers that the main loop keeps
 * live, so a wrong exception frame (8 vs 26 words, FP state) shows in the output.
 *
 * Protocol (one byte each): 'r' runs N_SUM float additions (SysTick fires meanwhile), '?'
 * answers "T<ticks hex> A<acc bits hex> R<rx irqs hex>\n", anything else is echoed + 1.
 * Built for BOARD_NUCLEO (USART3 PD8/PD9 AF7 at HSI 16 MHz) or BOARD_NRF52 (legacy UART0
 * P0.06/P0.08). Register facts as in firmware/boards (checked there against the SVDs). */
#include <stdint.h>

#define REG(a) (*(volatile uint32_t *)(uintptr_t)(a))
#define N_SUM 3000u

static volatile uint8_t ring[64];
static volatile uint32_t head, tail, ticks, rx_irqs;
static volatile float sink;
static float acc;

#if defined(BOARD_NUCLEO)
#define USART 0x40004800u
#define RX_IRQ 39u
static void link_init(void)
{
    REG(0x40023830u) |= 1u << 3;  /* RCC AHB1ENR GPIODEN */
    REG(0x40023840u) |= 1u << 18; /* RCC APB1ENR USART3EN */
    REG(0x40020C00u) = (REG(0x40020C00u) & ~(0xFu << 16)) | (0xAu << 16); /* PD8/9 AF */
    REG(0x40020C24u) = (REG(0x40020C24u) & ~0xFFu) | 0x77u;                /* AF7 */
    REG(USART + 0x08u) = (16000000u + 57600u) / 115200u;                   /* BRR at HSI */
    REG(USART + 0x0Cu) = (1u << 13) | (1u << 5) | (1u << 3) | (1u << 2); /* UE RXNEIE TE RE */
}
static void link_putc(uint8_t c)
{
    while (!(REG(USART) & (1u << 7))) {
    }
    REG(USART + 0x04u) = c;
}
void link_irq(void)
{
    while (REG(USART) & (1u << 5)) {
        ring[head++ & 63u] = (uint8_t)REG(USART + 0x04u);
        rx_irqs++;
    }
    sink = (float)rx_irqs * 1.25f + sink * 0.5f; /* FP registers in the handler */
}
#elif defined(BOARD_NRF52)
#define UART 0x40002000u
#define RX_IRQ 2u
static void link_init(void)
{
    REG(0x50000508u) = 1u << 6; /* P0 OUTSET: TX idles high */
    REG(0x50000518u) = 1u << 6; /* P0 DIRSET */
    REG(UART + 0x50Cu) = 6u;    /* PSEL.TXD */
    REG(UART + 0x514u) = 8u;    /* PSEL.RXD */
    REG(UART + 0x508u) = 0xFFFFFFFFu;
    REG(UART + 0x510u) = 0xFFFFFFFFu;
    REG(UART + 0x524u) = 0x01D7E000u; /* 115200 */
    REG(UART + 0x56Cu) = 0u;
    REG(UART + 0x500u) = 4u;          /* legacy UART */
    REG(UART + 0x304u) = 1u << 2;     /* INTENSET RXDRDY */
    REG(UART + 0x008u) = 1u;          /* STARTTX */
    REG(UART + 0x000u) = 1u;          /* STARTRX */
}
static void link_putc(uint8_t c)
{
    REG(UART + 0x51Cu) = c;
    while (!REG(UART + 0x11Cu)) {
    }
    REG(UART + 0x11Cu) = 0;
}
void link_irq(void)
{
    while (REG(UART + 0x108u)) {
        REG(UART + 0x108u) = 0;
        ring[head++ & 63u] = (uint8_t)REG(UART + 0x518u);
        rx_irqs++;
    }
    sink = (float)rx_irqs * 1.25f + sink * 0.5f;
}
#else
#error "define BOARD_NUCLEO or BOARD_NRF52"
#endif

void SysTick_Handler(void)
{
    ticks++;
    sink = (float)ticks * 3.75f - sink; /* FP registers in the handler */
}

static void put_hex(char tag, uint32_t v)
{
    link_putc((uint8_t)tag);
    for (int s = 28; s >= 0; s -= 4)
        link_putc((uint8_t)"0123456789abcdef"[(v >> s) & 0xFu]);
    link_putc(' ');
}

int main(void)
{
    REG(0xE000ED88u) |= 0xFu << 20; /* CPACR: FPU on */
    __asm__ volatile("dsb\n isb");
    link_init();
    REG(0xE000E100u + 4u * (RX_IRQ / 32u)) = 1u << (RX_IRQ % 32u); /* NVIC ISER */
    REG(0xE000E014u) = 4999u;                                      /* SysTick RVR */
    REG(0xE000E018u) = 0u;
    REG(0xE000E010u) = 7u; /* CLKSOURCE core, TICKINT, ENABLE */
    link_putc('>');
    for (;;) {
        __asm__ volatile("cpsid i" ::: "memory");
        if (head == tail)
            __asm__ volatile("wfi");
        __asm__ volatile("cpsie i" ::: "memory");
        while (tail != head) {
            uint8_t c = ring[tail++ & 63u];
            if (c == 'r') {
                for (uint32_t i = 0; i < N_SUM; i++)
                    acc += (float)i * 0.25f;
                link_putc('.');
            } else if (c == '?') {
                union { float f; uint32_t u; } a = {acc};
                put_hex('T', ticks);
                put_hex('A', a.u);
                put_hex('R', rx_irqs);
                link_putc('\n');
            } else {
                link_putc((uint8_t)(c + 1u));
            }
        }
    }
}

/* Reset: stack from the vector table, .bss zeroed, main. */
extern uint32_t __bss_start, __bss_end, __stack_top;
void Reset_Handler(void)
{
    for (uint32_t *p = &__bss_start; p < &__bss_end;)
        *p++ = 0;
    (void)main();
}

void Default_Handler(void)
{
    for (;;) {
    }
}

__attribute__((section(".isr_vector"), used)) void (*const vectors[16 + N_IRQS])(void) = {
    [0] = (void (*)(void))(uintptr_t)&__stack_top,
    [1] = Reset_Handler,
    [2 ... 14] = Default_Handler,
    [15] = SysTick_Handler,
    [16 ... 16 + N_IRQS - 1] = Default_Handler,
    [16 + RX_IRQ] = link_irq,
};
