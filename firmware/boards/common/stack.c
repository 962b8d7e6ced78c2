#include "stack.h"

#include <stddef.h>

#include "hal.h"

/* From the board's linker script. __static_ram_bytes is an absolute symbol: its address
 * is the value. */
extern uint32_t __stack_limit, __stack_top;
extern const char __static_ram_bytes[];

uint32_t stack_high_water(void)
{
    const volatile uint32_t *p = &__stack_limit;
    while (p < &__stack_top && *p == TR_STACK_PAINT)
        p++;
    return (uint32_t)((uintptr_t)&__stack_top - (uintptr_t)p);
}

uint32_t stack_size(void) { return (uint32_t)((uintptr_t)&__stack_top - (uintptr_t)&__stack_limit); }

uint32_t static_ram_bytes(void) { return (uint32_t)(uintptr_t)__static_ram_bytes; }

/* Paint from the stack's limit up to below this frame, with interrupts off: an interrupt
 * frame pushed below SP while we paint there would be overwritten. 32 words of margin
 * under the local's address cover this function's own spills. */
void hal_stack_repaint(void)
{
    volatile uint32_t here = 0;
    uint32_t *const end = (uint32_t *)((uintptr_t)&here & ~(uintptr_t)3u) - 32;
    __asm__ volatile("cpsid i" ::: "memory");
    for (uint32_t *p = &__stack_limit; p < end; p++)
        *p = TR_STACK_PAINT;
    __asm__ volatile("cpsie i" ::: "memory");
    (void)here;
}

void hal_stats(uint32_t *stack_used, uint32_t *stack_total, uint32_t *static_ram)
{
    *stack_used = stack_high_water();
    *stack_total = stack_size();
    *static_ram = static_ram_bytes();
}
