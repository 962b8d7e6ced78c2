/* Stack painting: Reset_Handler fills the whole stack with TR_STACK_PAINT before any C
 * runs; the high-water mark is the distance from the stack top to the lowest word that
 * no longer holds the pattern. A lower bound: a frame that reserves space it never
 * writes is not seen (rare in this code; no variable-length arrays, no alloca). */
#ifndef TR_STACK_H
#define TR_STACK_H

#include <stdint.h>

#define TR_STACK_PAINT 0xC0DEC0DEu

/* Bytes of stack ever used since reset (painted region only). */
uint32_t stack_high_water(void);
/* Size of the stack region (linker script STACK_SIZE). */
uint32_t stack_size(void);
/* RAM used by static data (.data + .bss + board extras, without the stack). */
uint32_t static_ram_bytes(void);

#endif
