/* The few Cortex-M system registers the firmware touches (ARMv7-M ARM, B3.2), written
 * out here because CMSIS-Core is not available. */
#ifndef TR_CORTEXM_H
#define TR_CORTEXM_H

#include <stdint.h>

#define REG32(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

/* ARMv6-M (Cortex-M0/M0+) lacks CFSR/HFSR/MMFAR/BFAR, the configurable fault handlers
 * (SHCSR bits 16..18), IT blocks and the DWT cycle counter; code that touches them is
 * compiled only when TR_ARMV6M is 0 (reading a missing SCB register would fault inside
 * the fault handler: a lockup). */
#if defined(__ARM_ARCH_6M__)
#define TR_ARMV6M 1
#else
#define TR_ARMV6M 0
#endif

#define SCB_CPACR REG32(0xE000ED88u)  /* CP10/CP11 full access = bits 20..23 (FPU cores) */
#define SCB_VTOR REG32(0xE000ED08u)
#define SCB_SHCSR REG32(0xE000ED24u)  /* fault handler enables, bits 16..18 */
#define SCB_CFSR REG32(0xE000ED28u)
#define SCB_HFSR REG32(0xE000ED2Cu)
#define SCB_MMFAR REG32(0xE000ED34u)
#define SCB_BFAR REG32(0xE000ED38u)
#define SCB_DHCSR REG32(0xE000EDF0u)  /* bit 0 C_DEBUGEN: a debugger is attached */
#define SCB_DEMCR REG32(0xE000EDFCu)  /* bit 24 TRCENA enables DWT/ITM */

#define DWT_CTRL REG32(0xE0001000u)   /* bit 0 CYCCNTENA, bit 25 NOCYCCNT */
#define DWT_CYCCNT REG32(0xE0001004u)

#define SYST_CSR REG32(0xE000E010u)   /* bit 0 ENABLE, 1 TICKINT, 2 CLKSOURCE=core */
#define SYST_RVR REG32(0xE000E014u)
#define SYST_CVR REG32(0xE000E018u)

/* NVIC (ARMv7-M B3.4, ARMv6-M B3.4): one bit per device interrupt, 32 per word; the
 * ARMv6-M NVIC has only word 0 (interrupts 0..31). Writing 1 sets/clears, 0 is ignored. */
#define NVIC_ISER(n) REG32(0xE000E100u + 4u * (n)) /* set-enable */
#define NVIC_ICER(n) REG32(0xE000E180u + 4u * (n)) /* clear-enable */
#define NVIC_ISPR(n) REG32(0xE000E200u + 4u * (n)) /* set-pending */
#define NVIC_ICPR(n) REG32(0xE000E280u + 4u * (n)) /* clear-pending */

#define CFSR_MMARVALID (1u << 7)
#define CFSR_MSTKERR (1u << 4)
#define CFSR_BFARVALID (1u << 15)
#define CFSR_STKERR (1u << 12)

#endif
