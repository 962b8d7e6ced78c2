#include "semihost.h"

#include "board_config.h"
#include "cortexm.h"

uint32_t semihost_call(uint32_t op, const void *arg)
{
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

int semihost_usable(void)
{
#if TR_SEMIHOSTING == 1
    return 1; /* emulator-only board: QEMU always services BKPT 0xAB when enabled */
#elif TR_SEMIHOSTING == 2
    return (SCB_DHCSR & 1u) != 0; /* only with a debugger attached */
#else
    return 0;
#endif
}

void semihost_exit(uint32_t code)
{
    const uint32_t block[2] = {SEMIHOST_ADP_STOPPED_APPLICATION_EXIT, code};
    if (semihost_usable())
        (void)semihost_call(SEMIHOST_SYS_EXIT_EXTENDED, block);
}
