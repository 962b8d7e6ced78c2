/* exp(x) in float32 by a fixed sequence of float32 operations (tr_train.h, tr_expf).
 *
 * Why not libm: newlib's expf (fdlibm) and glibc's differ from each other and from a
 * correctly rounded exp by an ulp now and then, and the golden model must reproduce the
 * device's softmax bit for bit for lockstep to be exact. Every step below is one IEEE
 * operation (add, subtract, multiply) on floats, rounded to nearest, so rig/golden/f32.py
 * repeats it exactly in numpy. Accuracy: within 1.2 ulp of exp over the normal range (tested
 * against a double-precision exp on the host). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "tr_train.h"

#define LOG2E 0x1.715476p+0f
/* ln 2 = LN2_HI + LN2_LO; LN2_HI has 12 trailing zero bits, so k * LN2_HI is exact for
 * |k| < 2^12 (here |k| <= 150). */
#define LN2_HI 0x1.62ep-1f
#define LN2_LO 0x1.0bfbe8p-15f
#define ROUND_MAGIC 0x1.8p+23f /* (t + M) - M rounds t to an integer, ties to even */
#define EXP_OVERFLOW 0x1.62e42ep+6f /* above: exp(x) > FLT_MAX */
#define EXP_UNDERFLOW -0x1.9fe368p+6f /* below (-150 ln 2): exp(x) < 2^-150, rounds to 0 */

/* 2^e as a float, e in [-126, 127]. */
static float pow2i(int32_t e)
{
    const uint32_t u = (uint32_t)(e + 127) << 23;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float tr_expf(float x)
{
    if (x != x)
        return x;
    if (x > EXP_OVERFLOW)
        return INFINITY;
    if (x < EXP_UNDERFLOW)
        return 0.0f;
    /* x = k ln 2 + r, |r| <= ln(2)/2 (plus rounding) */
    const float kf = (x * LOG2E + ROUND_MAGIC) - ROUND_MAGIC;
    const int32_t k = (int32_t)kf;
    const float r = (x - kf * LN2_HI) - kf * LN2_LO;
    /* exp(r) = sum_{i<=7} r^i / i!, Horner from the highest term (truncation < 0.05 ulp) */
    float p = 0x1.a01a02p-13f;  /* 1/5040 */
    p = p * r + 0x1.6c16c2p-10f; /* 1/720 */
    p = p * r + 0x1.111112p-7f;  /* 1/120 */
    p = p * r + 0x1.555556p-5f;  /* 1/24 */
    p = p * r + 0x1.555556p-3f;  /* 1/6 */
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    /* p * 2^k; outside the normal exponents in two exact-or-once-rounded steps */
    if (k > 127)
        return (p * pow2i(k - 1)) * 2.0f;
    if (k < -126)
        return (p * pow2i(k + 64)) * 0x1p-64f;
    return p * pow2i(k);
}
