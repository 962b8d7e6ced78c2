#include "cyccnt.h"

#include "cortexm.h"
#include "hal.h"

static uint8_t kind = TR_COUNTER_NONE;
static volatile uint32_t systick_wraps;

uint8_t counter_init(void)
{
#if !TR_ARMV6M /* ARMv6-M has no DWT cycle counter (and no DEMCR for software) */
    SCB_DEMCR |= 1u << 24;
    if (!(DWT_CTRL & (1u << 25))) {
        DWT_CYCCNT = 0;
        DWT_CTRL |= 1u;
        uint32_t a = DWT_CYCCNT;
        for (volatile uint32_t i = 0; i < 64; i++) {
        }
        if (DWT_CYCCNT != a) {
            kind = TR_COUNTER_DWT;
            return kind;
        }
    }
#endif
    /* SysTick: 24-bit down-counter on the core clock; wraps extend it in software. It is
     * optional on ARMv6-M (the nRF51 has none): RVR reads back 0 when absent. */
    SYST_CSR = 0;
    SYST_RVR = 0xFFFFFFu;
    if (SYST_RVR != 0xFFFFFFu) {
        kind = TR_COUNTER_NONE;
        return kind;
    }
    SYST_CVR = 0;
    SYST_CSR = 7u; /* CLKSOURCE=core, TICKINT, ENABLE */
    kind = TR_COUNTER_SYSTICK;
    return kind;
}

void SysTick_Handler(void) { systick_wraps++; }

uint32_t counter_read(void)
{
    if (kind == TR_COUNTER_DWT)
        return DWT_CYCCNT;
    if (kind != TR_COUNTER_SYSTICK)
        return 0;
    /* Thread mode with interrupts on: a wrap between the reads is serviced at once and
     * changes systick_wraps, so retry. (Not valid with interrupts masked.) */
    uint32_t w1, v, w2;
    do {
        w1 = systick_wraps;
        v = SYST_CVR;
        w2 = systick_wraps;
    } while (w1 != w2);
    uint32_t now = (w1 << 24) + (0xFFFFFFu - v);
    /* A reload between the reads whose interrupt is still pending (QEMU takes it at the
     * next block boundary) makes time appear to go back by ~2^24: count that wrap now. */
    static uint32_t last;
    if ((int32_t)(now - last) < 0)
        now += 1u << 24;
    last = now;
    return now;
}
