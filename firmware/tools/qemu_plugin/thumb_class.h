/* Instruction classes of ARMv7E-M Thumb-2 + FPv4-SP (and the ARMv6-M subset), decoded from
 * the opcode bytes alone. Shared by the QEMU plugin (trcount.c) and the host test library;
 * the Python side (rig/profile/isa.py) mirrors the class and extra-counter names, and the
 * tests check this decoder against capstone on every instruction of the firmware image.
 *
 * A class groups instructions with the same Cortex-M4 timing rule (Arm Cortex-M4 TRM,
 * 100166_0001_00, Table 3-1 "Processor instruction set summary" and the FPU instruction
 * table); the cycle model lives on the host (rig/profile/cycles.py). */
#ifndef TR_THUMB_CLASS_H
#define TR_THUMB_CLASS_H

#include <stddef.h>
#include <stdint.h>

/* X-macro: id, JSON name. Order is the JSON order; append, never renumber. */
#define TC_CLASSES(X)                                                                      \
    X(TC_ALU, "alu")             /* data processing, shifts, compare, extend, bitfield */  \
    X(TC_ALU_PC, "alu_pc")       /* ADD/MOV with PC as destination: a branch */            \
    X(TC_MUL, "mul")             /* MUL(S): 32x32 -> 32 */                                 \
    X(TC_MLA, "mla")             /* MLA, MLS */                                            \
    X(TC_MULL, "mull")           /* SMULL, UMULL, SMLAL, UMLAL */                          \
    X(TC_DSP_MAC, "dsp_mac")     /* SMLAD-class: SMLA<x><y>, SMLAD, SMUAD, SMMUL, ... */   \
    X(TC_DSP_SIMD, "dsp_simd")   /* SADD16-class, QADD, SEL, USAD8 */                      \
    X(TC_DIV, "div")             /* SDIV, UDIV */                                          \
    X(TC_LOAD, "load")           /* LDR/LDRB/LDRH/LDRSB/LDRSH/LDREX, single */             \
    X(TC_LOAD_PC, "load_pc")     /* LDR PC, [...] */                                       \
    X(TC_STORE, "store")         /* STR/STRB/STRH/STREX, single */                         \
    X(TC_LOAD_DUAL, "load_dual") /* LDRD */                                                \
    X(TC_STORE_DUAL, "store_dual") /* STRD */                                              \
    X(TC_LDM, "ldm")             /* LDM, POP without PC (regs: extra ldm_regs) */          \
    X(TC_LDM_PC, "ldm_pc")       /* LDM, POP with PC (return) */                           \
    X(TC_STM, "stm")             /* STM, PUSH (regs: extra stm_regs) */                    \
    X(TC_B, "b")                 /* B, unconditional, direct */                            \
    X(TC_B_COND, "b_cond")       /* B<c>, CBZ, CBNZ (taken: extra b_cond_taken) */         \
    X(TC_BL, "bl")               /* BL */                                                  \
    X(TC_BX, "bx")               /* BX, BLX (register) */                                  \
    X(TC_TBB, "tbb")             /* TBB, TBH */                                            \
    X(TC_IT, "it")               /* IT */                                                  \
    X(TC_NOP, "nop")             /* NOP, YIELD, SEV, PLD, PLI */                           \
    X(TC_SYS, "sys")             /* MRS, MSR, CPS, barriers, SVC, BKPT, WFI, WFE, UDF */   \
    X(TC_VFP_ALU, "vfp_alu")     /* VADD VSUB VMUL VNMUL VABS VNEG VCMP VCVT VMOV(imm/reg) */ \
    X(TC_VFP_MAC, "vfp_mac")     /* VMLA VMLS VNMLA VNMLS VFMA VFMS VFNMA VFNMS */          \
    X(TC_VFP_DIV, "vfp_div")     /* VDIV, VSQRT */                                         \
    X(TC_VFP_XFER, "vfp_xfer")   /* VMOV core<->S, VMRS, VMSR */                           \
    X(TC_VFP_XFER2, "vfp_xfer2") /* VMOV two core registers <-> two S / one D */           \
    X(TC_VLDR, "vldr")           /* VLDR */                                                \
    X(TC_VSTR, "vstr")           /* VSTR */                                                \
    X(TC_VLDM, "vldm")           /* VLDM, VPOP (words: extra vldm_regs) */                 \
    X(TC_VSTM, "vstm")           /* VSTM, VPUSH (words: extra vstm_regs) */                \
    X(TC_UNKNOWN, "unknown")     /* anything else: should stay 0 */

/* Extra counters, also per window. Static ones come from the decoder; the *_taken ones
 * are measured by the plugin (next executed block vs fall-through). */
#define TC_EXTRAS(X)                                                                       \
    X(TX_LDM_REGS, "ldm_regs")                 /* registers moved by ldm + ldm_pc */       \
    X(TX_STM_REGS, "stm_regs")                 /* registers moved by stm */                \
    X(TX_VLDM_REGS, "vldm_regs")               /* 32-bit words moved by vldm */            \
    X(TX_VSTM_REGS, "vstm_regs")               /* 32-bit words moved by vstm */            \
    X(TX_IT_INSNS, "it_insns")                 /* instructions inside IT blocks */         \
    X(TX_IT_BRANCH, "it_branch")               /* of which branches (conditional) */       \
    X(TX_LOAD_AFTER_LOAD, "load_after_load")   /* load/vldr right after a load/vldr */     \
    X(TX_STORE_AFTER_LOAD, "store_after_load") /* store/vstr right after a load/vldr */    \
    X(TX_LDST_AFTER_DP, "ldst_after_dp")       /* single load/store right after an ALU op */ \
    X(TX_B_COND_TAKEN, "b_cond_taken")         /* b_cond that branched (measured) */       \
    X(TX_IT_BRANCH_TAKEN, "it_branch_taken")   /* IT-conditional branches that branched */

#define TC_ENUM(id, name) id,
enum { TC_CLASSES(TC_ENUM) TC_N_CLASSES };
enum { TC_EXTRAS(TC_ENUM) TX_N_EXTRAS };
#undef TC_ENUM

/* Counter vector layout: classes, then extras. */
#define TC_N_COUNTERS (TC_N_CLASSES + TX_N_EXTRAS)

/* Decoder flags. */
#define TCF_BRANCH 0x01u      /* may write the PC (ends a QEMU translation block) */
#define TCF_COND 0x02u        /* conditional by encoding: B<c>, CBZ, CBNZ */
#define TCF_LOAD1 0x04u       /* single load (load, vldr): can pipeline the next ld/st */
#define TCF_STORE1 0x08u      /* single store (store, vstr) */
#define TCF_DP 0x10u          /* ALU-class result: a following ld/st may stall on it */

typedef struct {
    uint8_t cls;    /* TC_* */
    uint8_t size;   /* 2 or 4 bytes */
    uint8_t regs;   /* ldm/stm/vldm/vstm: registers (32-bit words) transferred */
    uint8_t flags;  /* TCF_* */
    uint8_t it_len; /* IT only: instructions in the block (1..4) */
} tc_insn_t;

/* Decode one instruction from `len` bytes (2 or 4; little-endian halfwords as in memory).
 * Returns the instruction size in bytes, or 0 if `len` is too short. */
size_t tc_decode(const uint8_t *bytes, size_t len, tc_insn_t *out);

/* Instruction size from the first halfword: 4 for a 32-bit Thumb-2 encoding, else 2. */
size_t tc_insn_size(uint16_t hw1);

/* Names (NUL-terminated, static) for the JSON output and the tests. */
const char *tc_class_name(unsigned cls);
const char *tc_extra_name(unsigned extra);

/* A straight-line block as QEMU translates it: the static part of its counter vector
 * (class counts and the static extras). `in_it` = IT instructions still pending at the
 * block start (0 at every block start QEMU makes after a branch). Returns the number of
 * instructions decoded; *last_flags gets the flags of the last one, *last_in_it whether
 * it sat in an IT block. */
size_t tc_block(const uint8_t *const *insn_bytes, const size_t *insn_len, size_t n,
                uint64_t counters[TC_N_COUNTERS], uint8_t *last_flags, int *last_in_it);

#endif
