/* Fully connected forward over a batch (tr_train.h). */
#include <stddef.h>
#include <string.h>

#include "tr_train.h"
#include "tr_train_asm.h"

const float tr_train_zeros[16];

/* ReLU by the sign bit: s if it is clear, else +0.0f (-0 -> +0; what the VFP block does
 * with BIC on the bit pattern; a NaN keeps its sign's fate, as np.maximum keeps NaN). */
static inline float relu_f32(float s)
{
    uint32_t u;
    memcpy(&u, &s, sizeof u);
    return (u >> 31) ? 0.0f : s;
}

/* Samples [n0, n1) x outputs [j0, j1): the reference loop, activation included. */
static void forward_plain(const float *x, uint16_t n0, uint16_t n1, uint16_t in, const float *W,
                          const float *b, uint16_t j0, uint16_t j1, uint16_t out, int relu,
                          float *y)
{
    for (uint16_t n = n0; n < n1; n++) {
        const float *a = x + (size_t)n * in;
        float *z = y + (size_t)n * out;
        for (uint16_t j = j0; j < j1; j++) {
            const float *w = W + (size_t)j * in;
            float s = 0.0f;
            for (uint16_t i = 0; i < in; i++)
                s += w[i] * a[i];
            s = s + b[j];
            z[j] = relu ? relu_f32(s) : s;
        }
    }
}

#if TR_TRAIN_VFP
/* One input step t of the 2x4 block: W[j][i+t] in w0/w1, x[n][i+t] in a0..a3. */
#define FWD_T(w0, w1, a0, a1, a2, a3)                                                          \
    TR_MLA(24, w0, a0) TR_MLA(25, w1, a0) TR_MLA(26, w0, a1) TR_MLA(27, w1, a1)                \
    TR_MLA(28, w0, a2) TR_MLA(29, w1, a2) TR_MLA(30, w0, a3) TR_MLA(31, w1, a3)

#define FWD_BODY                                                                           \
    "vldmia %[x0]!, {s0-s3}\n\t"                                                             \
    "vldmia %[x1]!, {s4-s7}\n\t"                                                             \
    "vldmia %[x2]!, {s8-s11}\n\t"                                                            \
    "vldmia %[x3]!, {s12-s15}\n\t"                                                           \
    "vldmia %[w0]!, {s16-s19}\n\t"                                                           \
    "vldmia %[w1]!, {s20-s23}\n\t"                                                           \
    FWD_T(16, 20, 0, 4, 8, 12) FWD_T(17, 21, 1, 5, 9, 13)                                     \
    FWD_T(18, 22, 2, 6, 10, 14) FWD_T(19, 23, 3, 7, 11, 15)

/* ReLU of two sums by the sign bit (relu_f32): bits & ~(bits >> 31, arithmetic), in the
 * x0/x1 registers, which are dead after the loop. */
#define FWD_RELU2(a, b)                                                                    \
    "vmov %[x0], %[x1], s" #a ", s" #b "\n\t"                                                 \
    "bic %[x0], %[x0], %[x0], asr #31\n\t"                                                   \
    "bic %[x1], %[x1], %[x1], asr #31\n\t"                                                   \
    "vmov s" #a ", s" #b ", %[x0], %[x1]\n\t"

/* y[n..n+3][j..j+1] = act(sum over i of W[j..j+1][i] * x[n..n+3][i] + b[j..j+1]), in % 4 == 0.
 * Registers: x s0-s15 (4 inputs of 4 samples), W s16-s23 (4 inputs of 2 rows), the 8 sums
 * s24-s31. The loop body runs twice per iteration (an odd count of 4-input steps enters at
 * the second): per 8 inputs 12 VLDM + 64 VMLA + 2 loop = 1.22 instructions per MAC. */
__attribute__((noinline)) static void forward_2x4(const float *x, uint32_t in, const float *w,
                                                  const float *b, float *y, uint32_t out,
                                                  uint32_t relu)
{
    const float *x0 = x, *x1 = x + in, *x2 = x1 + in, *x3 = x2 + in;
    const float *w0 = w, *w1 = w + in;
    uint32_t k = in / 4u;
    const uint32_t o4 = out * 4u;
    __asm__ volatile(
        "vldmia %[z], {s24-s31}\n\t"
        "lsrs %[k], %[k], #1\n\t"
        "bcc 1f\n\t"
        "adds %[k], %[k], #1\n\t"
        "b 3f\n\t"
        "1:\n\t"
        FWD_BODY
        "3:\n\t"
        FWD_BODY
        "subs %[k], %[k], #1\n\t"
        "bne 1b\n\t"
        "vldmia %[b], {s16-s17}\n\t"
        "vadd.f32 s24, s24, s16\n\t"
        "vadd.f32 s25, s25, s17\n\t"
        "vadd.f32 s26, s26, s16\n\t"
        "vadd.f32 s27, s27, s17\n\t"
        "vadd.f32 s28, s28, s16\n\t"
        "vadd.f32 s29, s29, s17\n\t"
        "vadd.f32 s30, s30, s16\n\t"
        "vadd.f32 s31, s31, s17\n\t"
        "cmp %[relu], #0\n\t"
        "beq 2f\n\t"
        FWD_RELU2(24, 25) FWD_RELU2(26, 27) FWD_RELU2(28, 29) FWD_RELU2(30, 31)
        "2:\n\t"
        "vstmia %[y], {s24-s25}\n\t"
        "add %[y], %[y], %[o4]\n\t"
        "vstmia %[y], {s26-s27}\n\t"
        "add %[y], %[y], %[o4]\n\t"
        "vstmia %[y], {s28-s29}\n\t"
        "add %[y], %[y], %[o4]\n\t"
        "vstmia %[y], {s30-s31}\n\t"
        : [x0] "+r"(x0), [x1] "+r"(x1), [x2] "+r"(x2), [x3] "+r"(x3), [w0] "+r"(w0),
          [w1] "+r"(w1), [k] "+r"(k), [y] "+r"(y)
        : [z] "r"(tr_train_zeros), [b] "r"(b), [o4] "r"(o4), [relu] "r"(relu)
        : TR_CLOBBER_S0_15, TR_CLOBBER_S16_31, "cc", "memory");
}
#endif

tr_train_status tr_fc_forward_f32(const float *x, uint16_t batch, uint16_t in, const float *W,
                                  const float *b, uint16_t out, int relu, float *y)
{
    if (!x || !W || !b || !y || batch == 0 || in == 0 || out == 0)
        return TR_TRAIN_ARG_ERROR;
    uint16_t nb = 0, jb = 0; /* samples [0, nb) x outputs [0, jb) go through the blocks */
#if TR_TRAIN_VFP
    if (in % 4u == 0) {
        nb = (uint16_t)(batch & ~3u);
        jb = (uint16_t)(out & ~1u);
        for (uint16_t n = 0; n < nb; n += 4)
            for (uint16_t j = 0; j < jb; j += 2)
                forward_2x4(x + (size_t)n * in, in, W + (size_t)j * in, b + j,
                            y + (size_t)n * out + j, out, relu != 0);
    }
#endif
    forward_plain(x, 0, nb, in, W, b, jb, out, out, relu, y);
    forward_plain(x, nb, batch, in, W, b, 0, out, out, relu, y);
    return TR_TRAIN_SUCCESS;
}
