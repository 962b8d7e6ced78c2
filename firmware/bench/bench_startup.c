/* Minimal startup for the kernel benchmark image (QEMU mps2-an386, Cortex-M4F): vector
 * table, FPU enable, .data/.bss, main(), exit through semihosting. Independent of the
 * training firmware's board support so the benchmark stays a small, stable program. */
#include <stdint.h>

#include "bench.h"

extern uint32_t __bench_stack_top, __bench_data, __bench_data_end, __bench_data_load,
    __bench_bss, __bench_bss_end;
int main(void);
void bench_reset(void);
void bench_fault(void);
void bench_start_c(void);

typedef void (*vector_t)(void);
__attribute__((section(".isr_vector"), used)) const vector_t bench_vectors[16] = {
    [0] = (vector_t)(uintptr_t)&__bench_stack_top,
    [1] = bench_reset,
    [2 ... 15] = bench_fault,
};

uint32_t bench_semihost(uint32_t op, const void *arg)
{
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void bench_puts(const char *s) { (void)bench_semihost(0x04u /* SYS_WRITE0 */, s); }

void bench_exit(uint32_t code)
{
    const uint32_t block[2] = {0x20026u /* ADP_Stopped_ApplicationExit */, code};
    (void)bench_semihost(0x20u /* SYS_EXIT_EXTENDED */, block);
    for (;;) {
    }
}

void bench_fault(void) { bench_exit(0x80u); }

__attribute__((naked)) void bench_reset(void)
{
    __asm__ volatile("ldr r0, =0xE000ED88\n" /* CPACR: CP10/CP11 full access */
                     "ldr r1, [r0]\n"
                     "orr r1, r1, #(0xF << 20)\n"
                     "str r1, [r0]\n"
                     "dsb\n"
                     "isb\n"
                     "b bench_start_c\n"
                     ".ltorg\n");
}

__attribute__((used, noreturn)) void bench_start_c(void)
{
    const uint32_t *src = &__bench_data_load;
    for (uint32_t *dst = &__bench_data; dst < &__bench_data_end;)
        *dst++ = *src++;
    for (uint32_t *dst = &__bench_bss; dst < &__bench_bss_end;)
        *dst++ = 0;
    bench_exit((uint32_t)main());
}
