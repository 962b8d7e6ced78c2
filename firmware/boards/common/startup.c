/* Shared Cortex-M startup for every board: vector table, FPU enable (FPU cores only),
 * stack painting, .data/.bss initialisation, main().
 *
 * The board's board_config.h gives TR_N_IRQS (device interrupt vectors after the 16
 * system ones) and TR_UART_IRQN (the link UART's receive interrupt); its linker script
 * provides the symbols below. Unused vectors report a FAULT with their exception number
 * instead of hanging silently. */
#include <stdint.h>

#include "board_config.h"
#include "cortexm.h"
#include "board.h"
#include "fault.h"
#include "stack.h"

extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end, __stack_top;
int main(void);
void Reset_Handler(void);
void SysTick_Handler(void);
void tr_reset_c(void);

#ifndef TR_N_IRQS
#error "board_config.h must define TR_N_IRQS (device interrupt vectors)"
#endif

typedef void (*vector_t)(void);

/* Every device vector reports a fault, except the link UART's RX interrupt (the only
 * interrupt the firmware enables): the range fills all of them, the next line overrides
 * one entry (designated initializers: the later one wins, which GCC's -Woverride-init,
 * part of -Wextra, would flag). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverride-init"
__attribute__((section(".isr_vector"), used)) const vector_t vector_table[16 + TR_N_IRQS] = {
    [0] = (vector_t)(uintptr_t)&__stack_top,
    [1] = Reset_Handler,
    [2] = NMI_Handler,
    [3] = HardFault_Handler,
#if !TR_ARMV6M /* reserved on ARMv6-M */
    [4] = MemManage_Handler,
    [5] = BusFault_Handler,
    [6] = UsageFault_Handler,
    [12] = Unexpected_Handler, /* DebugMon */
#endif
    [11] = Unexpected_Handler, /* SVC */
    [14] = Unexpected_Handler, /* PendSV */
    [15] = SysTick_Handler,
    [16 ... 16 + TR_N_IRQS - 1] = Unexpected_Handler,
    [16 + TR_UART_IRQN] = UART_RX_IRQHandler,
};
#pragma GCC diagnostic pop

#define TR_STR_(x) #x
#define TR_STR(x) TR_STR_(x)

/* Written in assembly so nothing touches the stack or a VFP register before
 *  1. the FPU is enabled (CPACR bits 20..23; FPU cores only: before the first VFP
 *     instruction, else UsageFault NOCP; CPACR does not exist on ARMv6-M), and
 *  2. the whole stack is painted with TR_STACK_PAINT (nothing lives on it yet), so
 *     stack_high_water() can later find the deepest word ever written.
 * Only Thumb-1 instructions, so the same code runs on ARMv6-M and ARMv7-M. */
__attribute__((naked)) void Reset_Handler(void)
{
    __asm__ volatile(".syntax unified\n" /* GCC passes Thumb-1 inline asm as "divided" */
#if defined(__ARM_FP)
        "ldr r0, =0xE000ED88\n"
        "ldr r1, [r0]\n"
        "ldr r2, =0x00F00000\n"
        "orrs r1, r1, r2\n"
        "str r1, [r0]\n"
        "dsb\n"
        "isb\n"
#endif
        "ldr r0, =__stack_limit\n"
        "ldr r1, =__stack_top\n"
        "ldr r2, =" TR_STR(TR_STACK_PAINT) "\n"
        "1: cmp r0, r1\n"
        "bhs 2f\n"
        "str r2, [r0]\n"
        "adds r0, r0, #4\n"
        "b 1b\n"
        "2: ldr r0, =tr_reset_c\n"
        "bx r0\n"
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
