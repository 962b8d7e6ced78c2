/* Natural logarithm in float32 by a fixed sequence of float32 operations (tr_train.h,
 * tr_logf). Why not libm: see tr_expf_f32.c; rig/golden/f32.py repeats these steps.
 *
 * x = 2^e * m with m in [sqrt(2)/2, sqrt(2)); log m = 2 atanh(s) with s = (m-1)/(m+1),
 * |s| <= 0.1716, summed as 2s (1 + s^2/3 + s^4/5 + ... + s^10/11) (truncation < 0.01 ulp);
 * log x = e LN2_HI + (log m + e LN2_LO). Within 2 ulp of log (tested on the host). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "tr_train.h"

#define LN2_HI 0x1.62ep-1f /* as in tr_expf_f32.c: e * LN2_HI is exact */
#define LN2_LO 0x1.0bfbe8p-15f
#define SQRT2_BITS 0x3fb504f3u /* float bits of sqrt(2) */

float tr_logf(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if (x != x || x == INFINITY)
        return x; /* NaN, +inf */
    if (x == 0.0f)
        return -INFINITY;
    if (u >> 31)
        return NAN; /* log of a negative number */
    int32_t e = 0;
    if (u < 0x00800000u) { /* subnormal: scale into the normal range (exact) */
        x = x * 0x1p25f;
        memcpy(&u, &x, sizeof u);
        e = -25;
    }
    e += (int32_t)(u >> 23) - 127;
    u = (u & 0x007fffffu) | 0x3f800000u; /* m in [1, 2) */
    if (u > SQRT2_BITS) {
        u -= 0x00800000u; /* m / 2 */
        e += 1;
    }
    float m;
    memcpy(&m, &u, sizeof m);
    const float f = m - 1.0f; /* exact (Sterbenz) */
    const float s = f / (2.0f + f);
    const float z = s * s;
    float p = 0x1.745d18p-4f;    /* 1/11 */
    p = p * z + 0x1.c71c72p-4f;  /* 1/9 */
    p = p * z + 0x1.24924ap-3f;  /* 1/7 */
    p = p * z + 0x1.99999ap-3f;  /* 1/5 */
    p = p * z + 0x1.555556p-2f;  /* 1/3 */
    const float s2 = s + s;
    const float lm = s2 + s2 * (z * p);
    const float ef = (float)e;
    return ef * LN2_HI + (lm + ef * LN2_LO);
}
