/* Shared Cortex-M fault handling (ARMv7-M and ARMv6-M): report a FAULT frame (protocol
 * §6) plus a text line on the link, then exit QEMU via semihosting with 0x80 + exception
 * number (or halt on a board). On ARMv6-M every fault is a HardFault (3) and the fault
 * status registers, which do not exist there, are reported as 0. */
#ifndef TR_FAULT_H
#define TR_FAULT_H

#include <stdint.h>

/* Route MemManage/BusFault/UsageFault to their own vectors (else all are HardFault). */
void fault_enable_handlers(void);

/* Exception vectors (aliases of one naked entry). */
void HardFault_Handler(void);
void MemManage_Handler(void);
void BusFault_Handler(void);
void UsageFault_Handler(void);
void NMI_Handler(void);
void Unexpected_Handler(void);

#endif
