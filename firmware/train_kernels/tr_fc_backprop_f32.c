/* Error propagated through the kept rows, with the ReLU derivative (tr_train.h). */
#include <stddef.h>

#include "tr_train.h"
#include "tr_train_asm.h"

/* Samples [n0, n1), inputs [i0, i1): the reference loop (pointer walks, 32-bit counters). */
static void backprop_plain(const float *d, uint16_t n0, uint16_t n1, uint16_t out,
                           const float *W, uint16_t in, uint16_t i0, uint16_t i1,
                           const uint16_t *rows, uint16_t n_rows, const float *x, float *dx)
{
    for (uint32_t n = n0; n < n1; n++) {
        float *const acc = dx + (size_t)n * in + i0, *const aend = acc + (i1 - i0);
        const float *dn = d + (size_t)n * out;
        for (float *g = acc; g != aend; g++)
            *g = 0.0f;
        for (uint32_t r = 0; r < n_rows; r++) {
            const float dj = dn[rows[r]];
            const float *w = W + (size_t)rows[r] * in + i0;
            for (float *g = acc; g != aend; g++, w++)
                *g += *w * dj;
        }
        const float *a = x + (size_t)n * in + i0;
        for (float *g = acc; g != aend; g++, a++)
            if (!(*a > 0.0f))
                *g = 0.0f;
    }
}

#if TR_TRAIN_VFP
/* One kept row of the 2x8 block: W[j][i..i+7] in s0-s7, d[n][j] in s8, d[n+1][j] in s9. */
#define BP_ROW(a0, a1, a2, a3, a4, a5, a6, a7, dn)                                         \
    TR_MLA(a0, 0, dn) TR_MLA(a1, 1, dn) TR_MLA(a2, 2, dn) TR_MLA(a3, 3, dn)                \
    TR_MLA(a4, 4, dn) TR_MLA(a5, 5, dn) TR_MLA(a6, 6, dn) TR_MLA(a7, 7, dn)

/* dx[n][i..i+7] (s16-s23) and dx[n+1][i..i+7] (s24-s31) before the ReLU derivative, summed
 * over the listed rows in order (n_rows >= 1). Per row: LDRH + MLA + ADD + ADD (addresses),
 * 1 VLDM + 2 VLDR, 16 VMLA, 2 loop = 1.56 instructions per MAC. */
__attribute__((noinline)) static void backprop_2x8(const float *d, uint32_t o4, const float *w, uint32_t in4,
                         const uint16_t *rows, uint32_t n_rows, float *dx0, float *dx1)
{
    uint32_t j, wp, dp;
    __asm__ volatile(
        "vldmia %[z], {s16-s31}\n\t"
        "1:\n\t"
        "ldrh %[j], [%[rows]], #2\n\t"
        "mla %[wp], %[j], %[in4], %[w]\n\t"
        "vldmia %[wp], {s0-s7}\n\t"
        "add %[dp], %[d], %[j], lsl #2\n\t"
        "vldr s8, [%[dp]]\n\t"
        "add %[dp], %[dp], %[o4]\n\t"
        "vldr s9, [%[dp]]\n\t"
        BP_ROW(16, 17, 18, 19, 20, 21, 22, 23, 8)
        BP_ROW(24, 25, 26, 27, 28, 29, 30, 31, 9)
        "subs %[k], %[k], #1\n\t"
        "bne 1b\n\t"
        "vstmia %[dx0], {s16-s23}\n\t"
        "vstmia %[dx1], {s24-s31}\n\t"
        : [rows] "+r"(rows), [k] "+r"(n_rows), [j] "=&r"(j), [wp] "=&r"(wp), [dp] "=&r"(dp)
        : [z] "r"(tr_train_zeros), [w] "r"(w), [in4] "r"(in4), [d] "r"(d), [o4] "r"(o4),
          [dx0] "r"(dx0), [dx1] "r"(dx1)
        : TR_CLOBBER_S0_15, TR_CLOBBER_S16_31, "cc", "memory");
}
#endif

tr_train_status tr_fc_backprop_f32(const float *d, uint16_t batch, uint16_t out, const float *W,
                                   uint16_t in, const uint16_t *rows, uint16_t n_rows,
                                   const float *x, float *dx)
{
    if (!d || !W || !x || !dx || (n_rows && !rows) || batch == 0 || out == 0 || in == 0 ||
        n_rows > out)
        return TR_TRAIN_ARG_ERROR;
    uint16_t nb = 0, ib = 0; /* samples [0, nb) x inputs [0, ib) go through the blocks */
#if TR_TRAIN_VFP
    if (n_rows > 0) {
        nb = (uint16_t)(batch & ~1u);
        ib = (uint16_t)(in & ~7u);
        for (uint16_t n = 0; n < nb; n += 2)
            for (uint16_t i = 0; i < ib; i += 8)
                backprop_2x8(d + (size_t)n * out, 4u * out, W + i, 4u * in, rows, n_rows,
                             dx + (size_t)n * in + i, dx + (size_t)(n + 1) * in + i);
        for (uint16_t n = 0; n < nb; n++) {
            const float *a = x + (size_t)n * in;
            float *g = dx + (size_t)n * in;
            for (uint16_t i = 0; i < ib; i++)
                if (!(a[i] > 0.0f))
                    g[i] = 0.0f;
        }
    }
#endif
    backprop_plain(d, 0, nb, out, W, in, ib, in, rows, n_rows, x, dx);
    backprop_plain(d, nb, batch, out, W, in, 0, in, rows, n_rows, x, dx);
    return TR_TRAIN_SUCCESS;
}
