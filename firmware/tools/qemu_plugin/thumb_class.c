/* Thumb / Thumb-2 / FPv4-SP instruction classifier. Encodings: Arm ARMv7-M Architecture
 * Reference Manual (DDI 0403E), chapter A5 "The Thumb Instruction Set Encoding" (16-bit:
 * A5.2, 32-bit: A5.3) and A6.3 / A7.x for the floating-point extension. Only what the
 * timing classes need is decoded; operands are not. */
#include "thumb_class.h"

#define TC_NAME(id, name) name,
static const char *const class_names[] = {TC_CLASSES(TC_NAME)};
static const char *const extra_names[] = {TC_EXTRAS(TC_NAME)};
#undef TC_NAME

const char *tc_class_name(unsigned cls) { return cls < TC_N_CLASSES ? class_names[cls] : "?"; }
const char *tc_extra_name(unsigned x) { return x < TX_N_EXTRAS ? extra_names[x] : "?"; }

static unsigned popcount16(uint32_t v)
{
    unsigned n = 0;
    for (v &= 0xFFFFu; v; v &= v - 1u)
        n++;
    return n;
}

size_t tc_insn_size(uint16_t hw1)
{
    const unsigned top5 = hw1 >> 11;
    return (top5 == 0x1Du || top5 == 0x1Eu || top5 == 0x1Fu) ? 4u : 2u;
}

static void set(tc_insn_t *o, uint8_t cls, uint8_t flags)
{
    o->cls = cls;
    o->flags = flags;
}

/* ---- 16-bit (A5.2) ------------------------------------------------------------------ */

static void decode16(uint16_t hw, tc_insn_t *o)
{
    if ((hw >> 14) == 0u) { /* 00xxxx: shift (imm), add, subtract, move, compare */
        set(o, TC_ALU, TCF_DP);
    } else if ((hw >> 10) == 0x10u) { /* 010000: data processing */
        set(o, ((hw >> 6) & 0xFu) == 0xDu ? TC_MUL : TC_ALU, TCF_DP);
    } else if ((hw >> 10) == 0x11u) { /* 010001: special data, branch and exchange */
        const unsigned op = (hw >> 8) & 3u;
        const unsigned rd = ((hw >> 4) & 8u) | (hw & 7u);
        if (op == 3u)
            set(o, TC_BX, TCF_BRANCH);                      /* BX, BLX */
        else if (op != 1u && rd == 15u)
            set(o, TC_ALU_PC, TCF_BRANCH);                  /* ADD PC / MOV PC */
        else
            set(o, TC_ALU, TCF_DP);
    } else if ((hw >> 11) == 0x09u) { /* 01001x: LDR (literal) */
        set(o, TC_LOAD, TCF_LOAD1);
    } else if ((hw >> 12) == 0x5u) { /* 0101xx: load/store register offset */
        const unsigned opb = (hw >> 9) & 7u;
        if (opb <= 2u)
            set(o, TC_STORE, TCF_STORE1);
        else
            set(o, TC_LOAD, TCF_LOAD1);
    } else if ((hw >> 13) == 0x3u || (hw >> 12) == 0x8u || (hw >> 12) == 0x9u) {
        /* 011xxx word/byte imm, 1000xx halfword imm, 1001xx SP-relative; bit 11 = load */
        if (hw & 0x0800u)
            set(o, TC_LOAD, TCF_LOAD1);
        else
            set(o, TC_STORE, TCF_STORE1);
    } else if ((hw >> 12) == 0xAu) { /* 1010xx: ADR, ADD (SP plus immediate) */
        set(o, TC_ALU, TCF_DP);
    } else if ((hw >> 12) == 0xBu) { /* 1011xx: miscellaneous 16-bit (A5.2.5) */
        if ((hw & 0xF500u) == 0xB100u) {
            set(o, TC_B_COND, TCF_BRANCH | TCF_COND); /* CBZ, CBNZ */
        } else if ((hw & 0xFE00u) == 0xB400u) {
            set(o, TC_STM, 0);                          /* PUSH */
            o->regs = (uint8_t)(popcount16(hw & 0xFFu) + ((hw >> 8) & 1u));
        } else if ((hw & 0xFE00u) == 0xBC00u) {
            o->regs = (uint8_t)(popcount16(hw & 0xFFu) + ((hw >> 8) & 1u));
            if (hw & 0x0100u)
                set(o, TC_LDM_PC, TCF_BRANCH);          /* POP {..., PC} */
            else
                set(o, TC_LDM, 0);                      /* POP */
        } else if ((hw & 0xFFE8u) == 0xB660u) {
            set(o, TC_SYS, 0);                          /* CPS */
        } else if ((hw & 0xFF00u) == 0xBE00u) {
            set(o, TC_SYS, 0);                          /* BKPT */
        } else if ((hw & 0xFF00u) == 0xBF00u) {
            if (hw & 0xFu) {                            /* IT */
                const unsigned mask = hw & 0xFu;
                set(o, TC_IT, 0);
                o->it_len = (uint8_t)((mask & 1u) ? 4u : (mask & 2u) ? 3u : (mask & 4u) ? 2u : 1u);
            } else {
                const unsigned hint = (hw >> 4) & 0xFu; /* 0 NOP 1 YIELD 2 WFE 3 WFI 4 SEV */
                set(o, (hint == 2u || hint == 3u) ? TC_SYS : TC_NOP, 0);
            }
        } else {
            /* ADD/SUB SP imm, SXTH/SXTB/UXTH/UXTB, REV/REV16/REVSH */
            set(o, TC_ALU, TCF_DP);
        }
    } else if ((hw >> 11) == 0x18u) { /* 11000x: STM */
        set(o, TC_STM, 0);
        o->regs = (uint8_t)popcount16(hw & 0xFFu);
    } else if ((hw >> 11) == 0x19u) { /* 11001x: LDM */
        set(o, TC_LDM, 0);
        o->regs = (uint8_t)popcount16(hw & 0xFFu);
    } else if ((hw >> 12) == 0xDu) { /* 1101xx: B<c>, UDF, SVC */
        const unsigned cond = (hw >> 8) & 0xFu;
        if (cond >= 0xEu)
            set(o, TC_SYS, 0);
        else
            set(o, TC_B_COND, TCF_BRANCH | TCF_COND);
    } else if ((hw >> 11) == 0x1Cu) { /* 11100x: B (unconditional) */
        set(o, TC_B, TCF_BRANCH);
    } else {
        set(o, TC_UNKNOWN, 0);
    }
}

/* ---- floating point (coprocessor 10/11) -------------------------------------------- */

static void decode_vfp(uint16_t hw1, uint16_t hw2, tc_insn_t *o)
{
    const unsigned cp = (hw2 >> 8) & 0xFu;
    if ((cp & 0xEu) != 0xAu) {
        set(o, TC_UNKNOWN, 0); /* other coprocessors: none on a Cortex-M4 */
        return;
    }
    if ((hw1 & 0x0E00u) == 0x0C00u) { /* 110x xxxx: extension register load/store (A7.6) */
        if ((hw1 & 0x01E0u) == 0x0040u) {
            set(o, TC_VFP_XFER2, 0); /* 64-bit transfer: VMOV 2 core <-> 2 S / D */
        } else if ((hw1 & 0x0120u) == 0x0100u) { /* P=1, W=0: VLDR / VSTR */
            if (hw1 & 0x0010u)
                set(o, TC_VLDR, TCF_LOAD1);
            else
                set(o, TC_VSTR, TCF_STORE1);
        } else if ((hw1 & 0x0180u) == 0x0000u) {
            set(o, TC_UNKNOWN, 0); /* P=0, U=0: not a VFP load/store */
        } else { /* VLDM / VSTM / VPUSH / VPOP */
            unsigned words = hw2 & 0xFFu;
            if (cp == 0xBu && (words & 1u))
                words--; /* FLDMX/FSTMX form */
            o->regs = (uint8_t)words;
            set(o, (hw1 & 0x0010u) ? TC_VLDM : TC_VSTM, 0);
        }
        return;
    }
    if ((hw1 & 0x0F00u) != 0x0E00u) {
        set(o, TC_UNKNOWN, 0);
        return;
    }
    if (hw2 & 0x0010u) { /* 8/16/32-bit transfer: VMOV core<->S, VMRS, VMSR (A7.8) */
        set(o, TC_VFP_XFER, 0);
        return;
    }
    /* Data processing (A7.5): opc1 = hw1 bits 7,5,4; opc2 = hw1[3:0]; opc3 = hw2[7:6]. */
    const unsigned opc1 = ((hw1 >> 4) & 0x3u) | ((hw1 >> 5) & 0x4u);
    const unsigned opc2 = hw1 & 0xFu;
    const unsigned opc3 = (hw2 >> 6) & 0x3u;
    switch (opc1) {
    case 0x0: /* VMLA, VMLS */
    case 0x1: /* VNMLA, VNMLS */
    case 0x5: /* VFNMA, VFNMS */
    case 0x6: /* VFMA, VFMS */
        set(o, TC_VFP_MAC, 0);
        return;
    case 0x2: /* VMUL, VNMUL */
    case 0x3: /* VADD, VSUB */
        set(o, TC_VFP_ALU, 0);
        return;
    case 0x4: /* VDIV */
        set(o, TC_VFP_DIV, 0);
        return;
    default: /* 0x7: other data processing */
        if ((opc3 & 1u) == 0u) {
            set(o, TC_VFP_ALU, 0); /* VMOV immediate */
        } else if (opc2 == 0x1u && opc3 == 0x3u) {
            set(o, TC_VFP_DIV, 0); /* VSQRT */
        } else {
            set(o, TC_VFP_ALU, 0); /* VMOV reg, VABS, VNEG, VCMP(E), VCVT* */
        }
        return;
    }
}

/* ---- 32-bit (A5.3) ------------------------------------------------------------------ */

static void decode32(uint16_t hw1, uint16_t hw2, tc_insn_t *o)
{
    const unsigned op1 = (hw1 >> 11) & 3u;
    if ((hw1 & 0xEC00u) == 0xEC00u) { /* coprocessor space: 111x 11xx */
        decode_vfp(hw1, hw2, o);
        return;
    }
    if (op1 == 1u) {
        if ((hw1 & 0xFE40u) == 0xE800u) { /* load/store multiple (A5.3.5) */
            const unsigned op = (hw1 >> 7) & 3u;
            if (op == 1u || op == 2u) {
                o->regs = (uint8_t)popcount16(hw2);
                if (hw1 & 0x0010u)
                    set(o, (hw2 & 0x8000u) ? TC_LDM_PC : TC_LDM,
                        (hw2 & 0x8000u) ? TCF_BRANCH : 0);
                else
                    set(o, TC_STM, 0);
            } else {
                set(o, TC_SYS, 0); /* SRS/RFE: not in M profile */
            }
        } else if ((hw1 & 0xFE40u) == 0xE840u) { /* dual, exclusive, table branch (A5.3.6) */
            const unsigned o1 = (hw1 >> 7) & 3u, o2 = (hw1 >> 4) & 3u, o3 = (hw2 >> 4) & 0xFu;
            if ((o1 & 2u) || (o2 & 2u))
                set(o, (hw1 & 0x0010u) ? TC_LOAD_DUAL : TC_STORE_DUAL, 0);
            else if (o1 == 0u)
                set(o, o2 == 1u ? TC_LOAD : TC_STORE, o2 == 1u ? TCF_LOAD1 : TCF_STORE1);
            else if (o2 == 1u && (o3 == 0u || o3 == 1u))
                set(o, TC_TBB, TCF_BRANCH);
            else if (o2 == 1u)
                set(o, TC_LOAD, TCF_LOAD1);   /* LDREXB/H */
            else
                set(o, TC_STORE, TCF_STORE1); /* STREXB/H */
        } else if ((hw1 & 0xFE00u) == 0xEA00u) { /* data processing (shifted register) */
            set(o, TC_ALU, TCF_DP);
        } else {
            set(o, TC_UNKNOWN, 0);
        }
        return;
    }
    if (op1 == 2u) {
        if ((hw2 & 0x8000u) == 0u) { /* data processing, modified / plain immediate */
            set(o, TC_ALU, TCF_DP);
            return;
        }
        /* branches and miscellaneous control (A5.3.4) */
        if ((hw2 & 0x5000u) == 0x5000u) {
            set(o, TC_BL, TCF_BRANCH);
        } else if ((hw2 & 0x5000u) == 0x1000u) {
            set(o, TC_B, TCF_BRANCH); /* B.W (T4) */
        } else if ((hw2 & 0x5000u) == 0x0000u) {
            if ((hw1 & 0x0380u) != 0x0380u) {
                set(o, TC_B_COND, TCF_BRANCH | TCF_COND); /* B<c>.W (T3) */
            } else {
                const unsigned op = (hw1 >> 4) & 0x7Fu;
                if (op == 0x3Au && (hw2 & 0x07FFu) <= 4u) {
                    const unsigned hint = hw2 & 0xFFu; /* NOP.W YIELD.W WFE.W WFI.W SEV.W */
                    set(o, (hint == 2u || hint == 3u) ? TC_SYS : TC_NOP, 0);
                } else {
                    set(o, TC_SYS, 0); /* MSR, MRS, DMB/DSB/ISB, CLREX, UDF.W */
                }
            }
        } else {
            set(o, TC_UNKNOWN, 0); /* BLX (immediate): not in M profile */
        }
        return;
    }
    /* op1 == 3 */
    if ((hw1 & 0xFE00u) == 0xF800u) { /* single data item load/store (A5.3.7-10) */
        const unsigned size = (hw1 >> 5) & 3u;
        const unsigned rt = hw2 >> 12;
        if (size == 3u) {
            set(o, TC_UNKNOWN, 0);
        } else if (hw1 & 0x0010u) {
            if (rt == 15u && size == 2u)
                set(o, TC_LOAD_PC, TCF_BRANCH);
            else if (rt == 15u)
                set(o, TC_NOP, 0); /* PLD, PLI (and unallocated hints) */
            else
                set(o, TC_LOAD, TCF_LOAD1);
        } else {
            set(o, TC_STORE, TCF_STORE1);
        }
        return;
    }
    if ((hw1 & 0xFF00u) == 0xFA00u) { /* data processing (register) (A5.3.12) */
        const unsigned a = (hw1 >> 4) & 0xFu, b = (hw2 >> 4) & 0xFu;
        if ((hw2 & 0xF000u) != 0xF000u) {
            set(o, TC_UNKNOWN, 0);
        } else if (!(a & 0x8u)) {
            set(o, TC_ALU, TCF_DP); /* LSL/LSR/ASR/ROR (register), SXTAH/UXTB... (extend) */
        } else if (!(b & 0x8u)) {
            set(o, TC_DSP_SIMD, TCF_DP); /* parallel add/subtract, signed and unsigned */
        } else if ((b & 0xCu) == 0x8u && (a & 0xCu) == 0x8u) {
            /* miscellaneous (A5.3.15): QADD/QDADD/QSUB/QDSUB, REV*, RBIT, SEL, CLZ */
            const unsigned m = a & 3u;
            set(o, (m == 0u || m == 2u) ? TC_DSP_SIMD : TC_ALU, TCF_DP);
        } else {
            set(o, TC_UNKNOWN, 0);
        }
        return;
    }
    if ((hw1 & 0xFF80u) == 0xFB00u) { /* multiply, MAC, absolute difference (A5.3.16) */
        const unsigned a = (hw1 >> 4) & 7u, b = (hw2 >> 4) & 3u, ra = hw2 >> 12;
        if (a == 0u)
            set(o, (b == 0u && ra == 15u) ? TC_MUL : TC_MLA, TCF_DP);
        else if (a == 7u)
            set(o, TC_DSP_SIMD, TCF_DP); /* USAD8, USADA8 */
        else
            set(o, TC_DSP_MAC, TCF_DP);
        return;
    }
    if ((hw1 & 0xFF80u) == 0xFB80u) { /* long multiply, long MAC, divide (A5.3.17) */
        const unsigned a = (hw1 >> 4) & 7u, b = (hw2 >> 4) & 0xFu;
        if (a == 1u || a == 3u)
            set(o, TC_DIV, TCF_DP);
        else if (a == 0u || a == 2u || ((a == 4u || a == 6u) && b == 0u))
            set(o, TC_MULL, TCF_DP);
        else
            set(o, TC_DSP_MAC, TCF_DP); /* SMLAL<x><y>, SMLALD, SMLSLD, UMAAL */
        return;
    }
    set(o, TC_UNKNOWN, 0);
}

size_t tc_decode(const uint8_t *bytes, size_t len, tc_insn_t *out)
{
    if (len < 2u)
        return 0;
    const uint16_t hw1 = (uint16_t)(bytes[0] | (bytes[1] << 8));
    const size_t size = tc_insn_size(hw1);
    if (len < size)
        return 0;
    tc_insn_t o = {TC_UNKNOWN, (uint8_t)size, 0, 0, 0};
    if (size == 2u)
        decode16(hw1, &o);
    else
        decode32(hw1, (uint16_t)(bytes[2] | (bytes[3] << 8)), &o);
    *out = o;
    return size;
}

size_t tc_block(const uint8_t *const *insn_bytes, const size_t *insn_len, size_t n,
                uint64_t counters[TC_N_COUNTERS], uint8_t *last_flags, int *last_in_it)
{
    unsigned in_it = 0;
    uint8_t prev_flags = 0;
    size_t done = 0;
    *last_flags = 0;
    *last_in_it = 0;
    for (size_t i = 0; i < n; i++) {
        tc_insn_t d;
        if (!tc_decode(insn_bytes[i], insn_len[i], &d)) {
            d.cls = TC_UNKNOWN;
            d.flags = 0;
            d.regs = 0;
            d.it_len = 0;
        }
        uint64_t *x = counters + TC_N_CLASSES;
        counters[d.cls]++;
        const int cur_in_it = in_it > 0u;
        if (cur_in_it) {
            in_it--;
            x[TX_IT_INSNS]++;
            if (d.flags & TCF_BRANCH)
                x[TX_IT_BRANCH]++;
        }
        if (d.cls == TC_IT)
            in_it = d.it_len;
        switch (d.cls) {
        case TC_LDM:
        case TC_LDM_PC: x[TX_LDM_REGS] += d.regs; break;
        case TC_STM: x[TX_STM_REGS] += d.regs; break;
        case TC_VLDM: x[TX_VLDM_REGS] += d.regs; break;
        case TC_VSTM: x[TX_VSTM_REGS] += d.regs; break;
        default: break;
        }
        if (prev_flags & TCF_LOAD1) {
            if (d.flags & TCF_LOAD1)
                x[TX_LOAD_AFTER_LOAD]++;
            else if (d.flags & TCF_STORE1)
                x[TX_STORE_AFTER_LOAD]++;
        }
        if ((prev_flags & TCF_DP) && (d.flags & (TCF_LOAD1 | TCF_STORE1)))
            x[TX_LDST_AFTER_DP]++;
        prev_flags = d.flags;
        *last_flags = d.flags;
        *last_in_it = cur_in_it;
        done++;
    }
    return done;
}
