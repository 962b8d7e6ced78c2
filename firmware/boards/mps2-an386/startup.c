/* mps2-an386 startup: vector table and reset. */
#include <stdint.h>

#include "cortexm.h"
#include "fault.h"

extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end, __stack_top;
int main(void);
void Reset_Handler(void);
void SysTick_Handler(void);
void tr_reset_c(void);

typedef void (*vector_t)(void);

/* 16 system exceptions + 32 CMSDK IRQs. Unused ones report as a FAULT with their
 * exception number instead of hanging silently. */
__attribute__((section(".isr_vector"), used)) const vector_t vector_table[16 + 32] = {
    [0] = (vector_t)(uintptr_t)&__stack_top,
    [1] = Reset_Handler,
    [2] = NMI_Handler,
    [3] = HardFault_Handler,
    [4] = MemManage_Handler,
    [5] = BusFault_Handler,
    [6] = UsageFault_Handler,
    [11] = Unexpected_Handler, /* SVC */
    [12] = Unexpected_Handler, /* DebugMon */
    [14] = Unexpected_Handler, /* PendSV */
    [15] = SysTick_Handler,
    [16 ... 47] = Unexpected_Handler,
};

/* Enable the FPU before anything compiled with -mfloat-abi=hard can run: written in
 * assembly so not even the prologue of a C function may touch a VFP register first
 * (that would be a UsageFault NOCP). */
__attribute__((naked)) void Reset_Handler(void)
{
    __asm__ volatile("ldr r0, =0xE000ED88\n"
                     "ldr r1, [r0]\n"
                     "orr r1, r1, #(0xF << 20)\n"
                     "str r1, [r0]\n"
                     "dsb\n"
                     "isb\n"
                     "b tr_reset_c\n"
                     ".ltorg\n");
}

__attribute__((used, noreturn)) void tr_reset_c(void)
{
    const uint32_t *src = &__data_load;
    for (uint32_t *dst = &__data_start; dst < &__data_end;)
        *dst++ = *src++;
    for (uint32_t *dst = &__bss_start; dst < &__bss_end;)
        *dst++ = 0;
    (void)main();
    for (;;) {
    }
}
