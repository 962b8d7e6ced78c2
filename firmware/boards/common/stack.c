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

void hal_stats(uint32_t *stack_used, uint32_t *stack_total, uint32_t *static_ram)
{
    *stack_used = stack_high_water();
    *stack_total = stack_size();
    *static_ram = static_ram_bytes();
}
