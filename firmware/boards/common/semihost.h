/* ARM semihosting (BKPT 0xAB on M-profile). Under QEMU with
 * -semihosting-config enable=on,target=native it lets the firmware end the emulator
 * with an exit code. On a board without a debugger BKPT escalates to HardFault, so
 * callers check semihost_usable() first. */
#ifndef TR_SEMIHOST_H
#define TR_SEMIHOST_H

#include <stdint.h>

#define SEMIHOST_SYS_EXIT_EXTENDED 0x20u
#define SEMIHOST_ADP_STOPPED_APPLICATION_EXIT 0x20026u

uint32_t semihost_call(uint32_t op, const void *arg);
/* 1 if a semihosting host is assumed to be listening (board config + DHCSR). */
int semihost_usable(void);
/* Ask the debugger/emulator to exit with `code`; returns only if nobody listened. */
void semihost_exit(uint32_t code);

#endif
