/* SGD on contiguous parameters (tr_train.h). */
#include <stddef.h>

#include "tr_train.h"
#include "tr_train_asm.h"

/* Elements [i0, n): the reference loop. */
static void sgd_plain(float *p, float *v, float *s, uint32_t i0, uint32_t n, float lr, float mu)
{
    if (mu == 0.0f) {
        for (uint32_t i = i0; i < n; i++) {
            float u = lr * s[i];
            p[i] = p[i] - u;
            s[i] = u;
        }
    } else {
        for (uint32_t i = i0; i < n; i++) {
            float vi = mu * v[i] + s[i];
            float u = lr * vi;
            v[i] = vi;
            p[i] = p[i] - u;
            s[i] = u;
        }
    }
}

#if TR_TRAIN_VFP
#define SGD_8(op, d0, d1, d2, d3, d4, d5, d6, d7, n0, n1, n2, n3, n4, n5, n6, n7, m)        \
    op " s" #d0 ", s" #n0 ", %[" m "]\n\t" op " s" #d1 ", s" #n1 ", %[" m "]\n\t"           \
    op " s" #d2 ", s" #n2 ", %[" m "]\n\t" op " s" #d3 ", s" #n3 ", %[" m "]\n\t"           \
    op " s" #d4 ", s" #n4 ", %[" m "]\n\t" op " s" #d5 ", s" #n5 ", %[" m "]\n\t"           \
    op " s" #d6 ", s" #n6 ", %[" m "]\n\t" op " s" #d7 ", s" #n7 ", %[" m "]\n\t"
#define SUB_8(d0, n0)                                                                      \
    "vsub.f32 s" #d0 ", s" #d0 ", s" #n0 "\n\t"

/* mu == 0, k blocks of 8: g s0-s7, p s8-s15. 2 VLDM, 8 VMUL, 8 VSUB, 2 VSTM, 2 loop. */
static void sgd_plain_8(float *p, float *s, uint32_t k, float lr)
{
    __asm__ volatile(
        "1:\n\t"
        "vldmia %[s], {s0-s7}\n\t"
        "vldmia %[p], {s8-s15}\n\t"
        SGD_8("vmul.f32", 0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7, "lr")
        SUB_8(8, 0) SUB_8(9, 1) SUB_8(10, 2) SUB_8(11, 3)
        SUB_8(12, 4) SUB_8(13, 5) SUB_8(14, 6) SUB_8(15, 7)
        "vstmia %[p]!, {s8-s15}\n\t"
        "vstmia %[s]!, {s0-s7}\n\t"
        "subs %[k], %[k], #1\n\t"
        "bne 1b\n\t"
        : [p] "+r"(p), [s] "+r"(s), [k] "+r"(k)
        : [lr] "t"(lr)
        : TR_CLOBBER_S0_15, "cc", "memory");
}

/* mu > 0, k blocks of 8: g s0-s7 (becomes v), v s8-s15 (becomes u), p s16-s23.
 * v = g + mu*v by VMLA (the same two roundings as mu*v + g). 3 VLDM, 8 VMLA, 8 VMUL,
 * 8 VSUB, 3 VSTM, 2 loop. */
static void sgd_momentum_8(float *p, float *v, float *s, uint32_t k, float lr, float mu)
{
    __asm__ volatile(
        "1:\n\t"
        "vldmia %[s], {s0-s7}\n\t"
        "vldmia %[v], {s8-s15}\n\t"
        "vldmia %[p], {s16-s23}\n\t"
        SGD_8("vmla.f32", 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, "mu")
        "vstmia %[v]!, {s0-s7}\n\t"
        SGD_8("vmul.f32", 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7, "lr")
        SUB_8(16, 8) SUB_8(17, 9) SUB_8(18, 10) SUB_8(19, 11)
        SUB_8(20, 12) SUB_8(21, 13) SUB_8(22, 14) SUB_8(23, 15)
        "vstmia %[p]!, {s16-s23}\n\t"
        "vstmia %[s]!, {s8-s15}\n\t"
        "subs %[k], %[k], #1\n\t"
        "bne 1b\n\t"
        : [p] "+r"(p), [v] "+r"(v), [s] "+r"(s), [k] "+r"(k)
        : [lr] "t"(lr), [mu] "t"(mu)
        : TR_CLOBBER_S0_15, "s16", "s17", "s18", "s19", "s20", "s21", "s22", "s23", "cc",
          "memory");
}
#endif

tr_train_status tr_sgd_f32(float *p, float *v, float *s, uint32_t n, float lr, float mu)
{
    if (n && (!p || !s || (mu != 0.0f && !v)))
        return TR_TRAIN_ARG_ERROR;
    uint32_t nb = 0;
#if TR_TRAIN_VFP
    nb = n & ~7u;
    if (nb && mu == 0.0f)
        sgd_plain_8(p, s, nb / 8u, lr);
    else if (nb)
        sgd_momentum_8(p, v, s, nb / 8u, lr, mu);
#endif
    sgd_plain(p, v, s, nb, n, lr, mu);
    return TR_TRAIN_SUCCESS;
}
