/* Simulated fault report for hosts: the same FAULT frame a board sends, so host-side
 * fault handling can be tested without QEMU. */
#ifndef TR_FAULT_SIM_H
#define TR_FAULT_SIM_H

#include <stddef.h>
#include <stdint.h>

#define SIM_FAULT_EXCEPTION 3u /* reported as a HardFault */

/* Writes text line + FAULT frame into out; returns bytes written. */
size_t sim_fault_bytes(uint8_t *out, size_t cap);

#endif
