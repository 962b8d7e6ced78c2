/* Weight gradient of the kept rows (tr_train.h). */
#include <stddef.h>

#include "tr_train.h"
#include "tr_train_asm.h"

/* Row j into gr[in]: the reference loop (pointer walks and 32-bit counters: cheapest on
 * Cortex-M0). */
static void weight_grad_plain(const float *d, const float *x, uint16_t batch, uint16_t out,
                              uint16_t in, uint16_t j, int accumulate, float *gr)
{
    float *const gend = gr + in;
    if (!accumulate)
        for (float *g = gr; g != gend; g++)
            *g = 0.0f;
    const float *dp = d + j, *a = x;
    for (uint32_t n = batch; n != 0; n--, dp += out) {
        const float dn = *dp;
        for (float *g = gr; g != gend; g++, a++)
            *g += dn * *a;
    }
}

#if TR_TRAIN_VFP
/* One sample of the 2x8 block: d[n][j0] in s8, d[n][j1] in s9, x[n][i..i+7] in s0-s7. */
#define WG_ROW(a0, a1, a2, a3, a4, a5, a6, a7, dn)                                         \
    TR_MLA(a0, dn, 0) TR_MLA(a1, dn, 1) TR_MLA(a2, dn, 2) TR_MLA(a3, dn, 3)                \
    TR_MLA(a4, dn, 4) TR_MLA(a5, dn, 5) TR_MLA(a6, dn, 6) TR_MLA(a7, dn, 7)

/* gW[j0][i..i+7] (s16-s23) and gW[j1][i..i+7] (s24-s31), summed over all samples from
 * the eight values at z0 and at z1 (zeros, or g0 and g1 themselves to accumulate).
 * Per sample: 1 VLDM + 2 VLDR + 3 ADD + 16 VMLA + 2 loop = 1.5 instructions per MAC. */
__attribute__((noinline)) static void weight_grad_2x8(const float *d0, const float *d1,
                                                      uint32_t o4, const float *x, uint32_t in4,
                                                      uint32_t batch, const float *z0,
                                                      const float *z1, float *g0, float *g1)
{
    __asm__ volatile(
        "vldmia %[z0], {s16-s23}\n\t"
        "vldmia %[z1], {s24-s31}\n\t"
        "1:\n\t"
        "vldmia %[x], {s0-s7}\n\t"
        "vldr s8, [%[d0]]\n\t"
        "vldr s9, [%[d1]]\n\t"
        "add %[x], %[x], %[in4]\n\t"
        "add %[d0], %[d0], %[o4]\n\t"
        "add %[d1], %[d1], %[o4]\n\t"
        WG_ROW(16, 17, 18, 19, 20, 21, 22, 23, 8)
        WG_ROW(24, 25, 26, 27, 28, 29, 30, 31, 9)
        "subs %[k], %[k], #1\n\t"
        "bne 1b\n\t"
        "vstmia %[g0], {s16-s23}\n\t"
        "vstmia %[g1], {s24-s31}\n\t"
        : [x] "+r"(x), [d0] "+r"(d0), [d1] "+r"(d1), [k] "+r"(batch)
        : [z0] "r"(z0), [z1] "r"(z1), [in4] "r"(in4), [o4] "r"(o4), [g0] "r"(g0), [g1] "r"(g1)
        : TR_CLOBBER_S0_15, TR_CLOBBER_S16_31, "cc", "memory");
}
#endif

tr_train_status tr_fc_weight_grad_f32(const float *d, const float *x, uint16_t batch,
                                      uint16_t out, uint16_t in, const uint16_t *rows,
                                      uint16_t n_rows, int accumulate, float *gW)
{
    if (!d || !x || !gW || (n_rows && !rows) || batch == 0 || out == 0 || in == 0 ||
        n_rows > out)
        return TR_TRAIN_ARG_ERROR;
    uint16_t r = 0;
#if TR_TRAIN_VFP
    if (in % 8u == 0)
        for (; r + 2u <= n_rows; r += 2) {
            const uint16_t j0 = rows[r], j1 = rows[r + 1];
            for (uint16_t i = 0; i < in; i += 8) {
                float *const g0 = gW + (size_t)r * in + i, *const g1 = g0 + in;
                weight_grad_2x8(d + j0, d + j1, 4u * out, x + i, 4u * in, batch,
                                accumulate ? g0 : tr_train_zeros,
                                accumulate ? g1 : tr_train_zeros, g0, g1);
            }
        }
#endif
    for (; r < n_rows; r++)
        weight_grad_plain(d, x, batch, out, in, rows[r], accumulate, gW + (size_t)r * in);
    return TR_TRAIN_SUCCESS;
}
