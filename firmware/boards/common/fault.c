#include "fault.h"

#include <stddef.h>

#include "cortexm.h"
#include "hal.h"
#include "proto.h"
#include "semihost.h"
#include "wire.h"

void fault_enable_handlers(void)
{
#if !TR_ARMV6M /* ARMv6-M has only HardFault: SHCSR has no enable bits */
    SCB_SHCSR |= (1u << 16) | (1u << 17) | (1u << 18);
#endif
}

void tr_fault_report(const uint32_t *frame, uint32_t exc_return);

/* Pick the stack the exception frame was pushed to (EXC_RETURN bit 2), then report. */
__attribute__((naked)) static void fault_entry(void)
{
#if TR_ARMV6M /* no IT blocks, no TST with an immediate, short branch range */
    __asm__ volatile(".syntax unified\n"
                     "movs r0, #4\n"
                     "mov r1, lr\n"
                     "tst r0, r1\n"
                     "beq 1f\n"
                     "mrs r0, psp\n"
                     "b 2f\n"
                     "1: mrs r0, msp\n"
                     "2: ldr r2, =tr_fault_report\n"
                     "bx r2\n"
                     ".ltorg\n");
#else
    __asm__ volatile("tst lr, #4\n"
                     "ite eq\n"
                     "mrseq r0, msp\n"
                     "mrsne r0, psp\n"
                     "mov r1, lr\n"
                     "b tr_fault_report\n");
#endif
}

void HardFault_Handler(void) __attribute__((alias("fault_entry")));
void MemManage_Handler(void) __attribute__((alias("fault_entry")));
void BusFault_Handler(void) __attribute__((alias("fault_entry")));
void UsageFault_Handler(void) __attribute__((alias("fault_entry")));
void NMI_Handler(void) __attribute__((alias("fault_entry")));
void Unexpected_Handler(void) __attribute__((alias("fault_entry")));

static char *put_hex(char *p, uint32_t v)
{
    static const char hex[] = "0123456789abcdef";
    *p++ = '0';
    *p++ = 'x';
    for (int s = 28; s >= 0; s -= 4)
        *p++ = hex[(v >> s) & 0xFu];
    return p;
}

static char *put_str(char *p, const char *s)
{
    while (*s)
        *p++ = *s++;
    return p;
}

__attribute__((used, noreturn)) void tr_fault_report(const uint32_t *frame, uint32_t exc_return)
{
    (void)exc_return;
    uint32_t ipsr;
    __asm__ volatile("mrs %0, ipsr" : "=r"(ipsr));
    const uint32_t exc = ipsr & 0x1FFu;
#if TR_ARMV6M
    /* ARMv6-M has no CFSR/HFSR/MMFAR/BFAR (reading them would fault again: lockup);
     * they are reported as 0. A stacking fault there locks up before we get here, so
     * the frame is readable if it lies inside the stack region. */
    extern uint32_t __stack_limit, __stack_top;
    const uint32_t cfsr = 0, hfsr = 0, mmfar = 0, bfar = 0;
    const int frame_ok = frame >= &__stack_limit && frame + 8 <= &__stack_top;
#else
    const uint32_t cfsr = SCB_CFSR, hfsr = SCB_HFSR, mmfar = SCB_MMFAR, bfar = SCB_BFAR;
    /* A stacking fault leaves no valid frame: reading it could fault again (lockup). */
    const int frame_ok = !(cfsr & (CFSR_MSTKERR | CFSR_STKERR));
#endif

    uint32_t regs[8] = {0};
    if (frame_ok)
        for (int i = 0; i < 8; i++)
            regs[i] = frame[i];

    uint8_t pl[13 * 4];
    wr_u32(pl, exc);
    for (int i = 0; i < 8; i++)
        wr_u32(pl + 4 + 4 * i, regs[i]);
    wr_u32(pl + 36, cfsr);
    wr_u32(pl + 40, hfsr);
    wr_u32(pl + 44, mmfar);
    wr_u32(pl + 48, bfar);

    /* Text first, ended by 0x00: it also terminates any frame that was being sent when
     * the fault hit, so the FAULT frame after it decodes cleanly. */
    char line[96], *p = line;
    p = put_str(p, "\r\nFAULT exc=");
    *p++ = (char)('0' + exc / 10 % 10);
    *p++ = (char)('0' + exc % 10);
    p = put_str(p, " pc=");
    p = put_hex(p, regs[6]);
    p = put_str(p, " cfsr=");
    p = put_hex(p, cfsr);
    p = put_str(p, " bfar=");
    p = put_hex(p, bfar);
    p = put_str(p, "\r\n");
    *p++ = 0;
    hal_uart_write((const uint8_t *)line, (size_t)(p - line));

    uint8_t fr[96];
    size_t n = proto_build_frame(TR_MSG_FAULT, 0, 0, pl, sizeof pl, fr, sizeof fr);
    hal_uart_write(fr, n);

    semihost_exit(0x80u + exc);
    for (;;) {
        /* halted: a board waits here for the debugger / watchdog */
    }
}
