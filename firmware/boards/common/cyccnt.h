/* Cycle/tick counter for the phase counters of TRAIN_STEP. Prefers DWT CYCCNT (true
 * core cycles); falls back to SysTick when CYCCNT is absent or does not advance (QEMU
 * implements no DWT: CYCCNT reads 0, so never busy-wait on it). Cortex-M0: SysTick only. */
#ifndef TR_CYCCNT_H
#define TR_CYCCNT_H

#include <stdint.h>

/* Returns the TR_COUNTER_* kind that counter_read will deliver. */
uint8_t counter_init(void);
uint32_t counter_read(void);

#endif
