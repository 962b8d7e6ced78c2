/* Kernel benchmark harness (see bench_main.c). */
#ifndef TR_BENCH_H
#define TR_BENCH_H

#include <stdint.h>

uint32_t bench_semihost(uint32_t op, const void *arg);
void bench_puts(const char *s);
void bench_exit(uint32_t code) __attribute__((noreturn));

/* Window markers: the insn_window plugin counts the instructions executed from the
 * first instruction of bench_begin to the first instruction of bench_end. */
void bench_begin(void);
void bench_end(void);

#endif
