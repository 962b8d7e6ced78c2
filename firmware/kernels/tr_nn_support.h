/* Internal helpers of the tinyrig kernels: the requantization arithmetic (inline, used in
 * every inner loop) and the DSP-extension primitives.
 *
 * TR_NN_DSP is 1 when the target has the Cortex-M DSP extension (__ARM_FEATURE_DSP) and
 * TR_NN_DISABLE_DSP is not defined; then the primitives are the ACLE intrinsics of
 * arm_acle.h. Host test builds may define TR_NN_EMULATE_DSP to compile the DSP code paths
 * with exact C models of the instructions, so both paths are tested natively. */
#ifndef TR_NN_SUPPORT_H
#define TR_NN_SUPPORT_H

#include <stdint.h>
#include <string.h>

#include "tr_nn.h"

#if defined(__ARM_FEATURE_DSP) && (__ARM_FEATURE_DSP == 1) && !defined(TR_NN_DISABLE_DSP)
#define TR_NN_DSP 1
#define TR_NN_DSP_NATIVE 1
#include <arm_acle.h>
#elif defined(TR_NN_EMULATE_DSP) && !defined(TR_NN_DISABLE_DSP)
#define TR_NN_DSP 1
#define TR_NN_DSP_NATIVE 0
#else
#define TR_NN_DSP 0
#define TR_NN_DSP_NATIVE 0
#endif

/* ---- requantization (contract in tr_nn.h) ------------------------------------------- */

static inline int32_t tr_nn_dhm(int32_t a, int32_t b)
{
    /* (a·b + 2^30) >> 31 equals TFLite's SaturatingRoundingDoublingHighMul (nudge 2^30 or
     * 1-2^30 by sign, then truncating division by 2^31) for every product. Its range is
     * [-2^31 + 1, 2^31 - 2] except for INT32_MIN·INT32_MIN = 2^62, whose 2^31 wraps to
     * INT32_MIN in 32 bits: so INT32_MIN after the wrap means "saturate". */
    const int64_t p = (int64_t)a * b + (1ll << 30);
    const int32_t h = (int32_t)(uint32_t)((uint64_t)p >> 31);
    return h == INT32_MIN ? INT32_MAX : h;
}

/* TFLite RoundingDivideByPOT: x / 2^e rounded half away from zero, any x, e in 0..31. */
static inline int32_t tr_nn_rshift_round(int32_t x, int32_t e)
{
    const int32_t mask = (int32_t)((1u << e) - 1u);
    const int32_t rem = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0);
    return (x >> e) + (rem > threshold);
}

/* The same for e in 1..31 and x != INT32_MIN (always true after tr_nn_dhm), in five
 * instructions: round half up of t = x - [x < 0], which for negative x is round half
 * down of x, i.e. away from zero. */
static inline int32_t tr_nn_rshift_round_nz(int32_t x, int32_t e)
{
    const int32_t t = x + (x >> 31);
    return (t >> e) + ((t >> (e - 1)) & 1);
}

/* The general requantization (any x, mult, shift in [-31, 30]); tr_requantize.c. */
int32_t tr_nn_requant_general(int32_t x, int32_t mult, int32_t shift);

static inline int32_t tr_nn_requant_c(int32_t x, int32_t mult, int32_t shift)
{
    if (shift > 0)
        return tr_nn_dhm((int32_t)((uint32_t)x << shift), mult);
    const int32_t h = tr_nn_dhm(x, mult);
    return shift < 0 ? tr_nn_rshift_round_nz(h, -shift) : h;
}

#if TR_NN_DSP
static inline int32_t tr_nn_smmulr(int32_t a, int32_t b);
/* The same result on the DSP path in about half the instructions, for the case every real
 * layer is in (shift <= 0, 2x fits in int32): (2x·m + 2^31) >> 32 == (x·m + 2^30) >> 31 is
 * one SMMULR and never the saturating case (|h| <= 2^30), and the rounding right shift of
 * t = h - [h < 0] by e >= 1 is ((t >> (e - 1)) + 1) >> 1 (no overflow: |t| <= 2^30).
 * Anything else goes to the general (out-of-line) form. */
static inline int32_t tr_nn_requant(int32_t x, int32_t mult, int32_t shift)
{
    int32_t x2;
    if (__builtin_expect(shift <= 0 && !__builtin_add_overflow(x, x, &x2), 1)) {
        const int32_t h = tr_nn_smmulr(x2, mult);
        if (shift == 0)
            return h;
        const int32_t t = h + (h >> 31);
        return ((t >> (~shift)) + 1) >> 1; /* ~shift == e - 1 */
    }
    return tr_nn_requant_general(x, mult, shift);
}
#else
static inline int32_t tr_nn_requant(int32_t x, int32_t mult, int32_t shift)
{
    return tr_nn_requant_c(x, mult, shift);
}
#endif

static inline int8_t tr_nn_clamp_s8(int32_t v, int32_t lo, int32_t hi)
{
    v = v < lo ? lo : v;
    v = v > hi ? hi : v;
    return (int8_t)v;
}

/* int32 addition with two's-complement wrap-around (like SMLAD), without signed-overflow
 * undefined behaviour. */
static inline int32_t tr_nn_addw(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }

/* Argument checks shared by the kernels. */
static inline int tr_nn_bad_offset_in(int32_t off) { return off < -127 || off > 128; }
static inline int tr_nn_bad_offset_out(int32_t off) { return off < -128 || off > 127; }
static inline int tr_nn_bad_act(const tr_nn_activation *a)
{
    return a->min < -128 || a->max > 127 || a->min > a->max;
}

/* ---- DSP primitives ------------------------------------------------------------------- */
#if TR_NN_DSP

/* Four int8 from a possibly unaligned address (Cortex-M4 LDR handles it). */
static inline uint32_t tr_nn_read_s8x4(const int8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

#if TR_NN_DSP_NATIVE
static inline uint32_t tr_nn_sxtb16(uint32_t x) { return (uint32_t)__sxtb16((int32_t)x); }
static inline uint32_t tr_nn_sxtab16(uint32_t a, uint32_t x)
{
    return (uint32_t)__sxtab16((int32_t)a, (int32_t)x);
}
static inline int32_t tr_nn_smlad(uint32_t a, uint32_t b, int32_t acc)
{
    return __smlad((int32_t)a, (int32_t)b, acc);
}
static inline int32_t tr_nn_smlabb(uint32_t a, uint32_t b, int32_t acc)
{
    return __smlabb((int32_t)a, (int32_t)b, acc);
}
/* SMMULR (no ACLE intrinsic): (a·b + 2^31) >> 32. */
static inline int32_t tr_nn_smmulr(int32_t a, int32_t b)
{
    int32_t r;
    __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
static inline int32_t tr_nn_smlatt(uint32_t a, uint32_t b, int32_t acc)
{
    return __smlatt((int32_t)a, (int32_t)b, acc);
}
/* The rotated forms (SXTB16 Rd, Rm, ROR #8): ACLE has no intrinsic for them and GCC 12
 * neither provides __ror in arm_acle.h nor folds a rotate into __sxtb16, which would
 * cost one extra instruction per four weights. One instruction of inline asm each. */
static inline uint32_t tr_nn_sxtb16_ror8(uint32_t x)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}
static inline uint32_t tr_nn_sxtab16_ror8(uint32_t a, uint32_t x)
{
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(x));
    return r;
}
#else
/* Exact C models of the instructions (ARMv7-M ARM A7.7): host builds of the DSP path. */
static inline uint32_t tr_nn_halves(int32_t lo, int32_t hi)
{
    return ((uint32_t)lo & 0xFFFFu) | ((uint32_t)hi << 16);
}
static inline int32_t tr_nn_lo16(uint32_t x) { return (int16_t)(uint16_t)(x & 0xFFFFu); }
static inline int32_t tr_nn_hi16(uint32_t x) { return (int16_t)(uint16_t)(x >> 16); }
static inline uint32_t tr_nn_sxtb16(uint32_t x)
{
    return tr_nn_halves((int8_t)(uint8_t)x, (int8_t)(uint8_t)(x >> 16));
}
static inline uint32_t tr_nn_sxtab16(uint32_t a, uint32_t x)
{
    return tr_nn_halves(tr_nn_lo16(a) + (int8_t)(uint8_t)x,
                        tr_nn_hi16(a) + (int8_t)(uint8_t)(x >> 16));
}
static inline int32_t tr_nn_smlad(uint32_t a, uint32_t b, int32_t acc)
{
    const uint32_t s = (uint32_t)(tr_nn_lo16(a) * tr_nn_lo16(b)) +
                       (uint32_t)(tr_nn_hi16(a) * tr_nn_hi16(b));
    return (int32_t)((uint32_t)acc + s);
}
static inline int32_t tr_nn_smlabb(uint32_t a, uint32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(tr_nn_lo16(a) * tr_nn_lo16(b)));
}
static inline int32_t tr_nn_smlatt(uint32_t a, uint32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(tr_nn_hi16(a) * tr_nn_hi16(b)));
}
static inline int32_t tr_nn_smmulr(int32_t a, int32_t b)
{
    return (int32_t)(((int64_t)a * b + (1ll << 31)) >> 32);
}
static inline uint32_t tr_nn_ror8(uint32_t x) { return (x >> 8) | (x << 24); }
static inline uint32_t tr_nn_sxtb16_ror8(uint32_t x) { return tr_nn_sxtb16(tr_nn_ror8(x)); }
static inline uint32_t tr_nn_sxtab16_ror8(uint32_t a, uint32_t x)
{
    return tr_nn_sxtab16(a, tr_nn_ror8(x));
}
#endif

/* *a = p[0], *b = p[1], p += 2: one LDRD with post-increment (GCC emits LDRD with an
 * offset plus a separate pointer increment: one more instruction per loop pass). */
static inline void tr_nn_ld2(const uint32_t **p, uint32_t *a, uint32_t *b)
{
#if TR_NN_DSP_NATIVE
    __asm__("ldrd %0, %1, [%2], #8" : "=r"(*a), "=r"(*b), "+r"(*p) : : "memory");
#else
    *a = (*p)[0];
    *b = (*p)[1];
    *p += 2;
#endif
}

/* p[0] = a, p[1] = b, p += 2: one STRD with post-increment. */
static inline void tr_nn_st2(uint32_t **p, uint32_t a, uint32_t b)
{
#if TR_NN_DSP_NATIVE
    __asm__ volatile("strd %1, %2, [%0], #8" : "+r"(*p) : "r"(a), "r"(b) : "memory");
#else
    (*p)[0] = a;
    (*p)[1] = b;
    *p += 2;
#endif
}

/* Both halves = v (v in [-32768, 32767]). */
static inline uint32_t tr_nn_dup16(int32_t v) { return ((uint32_t)v & 0xFFFFu) * 0x00010001u; }

/* Saturate to int8 (SSAT #8). */
#if TR_NN_DSP_NATIVE
#define tr_nn_ssat8(v) ((int32_t)__ssat((v), 8))
#else
static inline int32_t tr_nn_ssat8(int32_t v) { return v < -128 ? -128 : v > 127 ? 127 : v; }
#endif

#endif /* TR_NN_DSP */

/* ---- shared matrix-vector core (tr_nn_vec_mat_mult_t_s8.c) ---------------------------- */
/* dst[r] = clamp(requant(bias[r] + Σ_c (lhs[c] + lhs_offset)·rhs[r][c], mult[r·qs],
 * shift[r·qs]) + dst_offset, act_min, act_max) for r < rows; qs = quant_stride (0:
 * per-tensor, 1: per-channel); bias may be NULL. `ext`: 4-aligned scratch of
 * tr_nn_vec_mat_ext_bytes(cols) bytes (the DSP path keeps the offset-added input there
 * as halfword pairs; unused, may be NULL, in plain C). Arguments are not checked. */
void tr_nn_vec_mat_mult_t_s8(const int8_t *lhs, const int8_t *rhs, const int32_t *bias,
                             int8_t *dst, int32_t lhs_offset, int32_t dst_offset,
                             const int32_t *mult, const int32_t *shift, int32_t quant_stride,
                             int32_t cols, int32_t rows, int32_t act_min, int32_t act_max,
                             uint32_t *ext);

#if TR_NN_DSP
/* DSP builds: two input vectors against the same per-channel matrix (quant_stride 1),
 * cols a multiple of 4; ext: 2 · tr_nn_vec_mat_ext_bytes(cols) bytes, 4-aligned. The
 * pointwise-convolution fast path (tr_convolve_s8.c). */
void tr_nn_vec2_mat_mult_t_s8(const int8_t *lhs_a, const int8_t *lhs_b, const int8_t *rhs,
                              const int32_t *bias, int8_t *dst_a, int8_t *dst_b,
                              int32_t lhs_offset, int32_t dst_offset, const int32_t *mult,
                              const int32_t *shift, int32_t cols, int32_t rows, int32_t act_min,
                              int32_t act_max, uint32_t *ext);
#endif

static inline int32_t tr_nn_vec_mat_ext_bytes(int32_t cols)
{
    return TR_NN_DSP ? (cols / 4) * 8 : 0;
}

/* ctx provides at least `need` bytes, 4-aligned (LDRD of the extended input faults on an
 * unaligned address); need 0: anything goes. */
static inline int tr_nn_ctx_ok(const tr_nn_context *ctx, int32_t need)
{
    return need <= 0 ||
           (ctx && ctx->buf && ((uintptr_t)ctx->buf & 3u) == 0 && ctx->size >= need);
}

/* Argument checks and batch loop of the fully-connected kernels
 * (tr_fully_connected_common_s8.c; tr_fully_connected_s8.c passes quant_stride 0,
 * tr_fully_connected_per_channel_s8.c 1): output r of every batch is requantized with
 * mult/shift[r * quant_stride]. */
tr_nn_status tr_nn_fc_s8(const tr_nn_context *ctx, const tr_nn_fc_params *fc_params,
                         const int32_t *mult, const int32_t *shift, int32_t quant_stride,
                         const tr_nn_dims *input_dims, const int8_t *input_data,
                         const tr_nn_dims *filter_dims, const int8_t *filter_data,
                         const int32_t *bias_data, const tr_nn_dims *output_dims,
                         int8_t *output_data);

/* ---- shared pooling driver (tr_pool_common_s8.c) --------------------------------------- */
/* A pooling reduction: the unclamped output for channel c of the window rows [ya, yb),
 * columns [xa, xb) (never empty) of the HWC image `in` (width w, n_ch channels). */
typedef int32_t (*tr_nn_pool_reduce_fn)(const int8_t *in, int32_t w, int32_t n_ch, int32_t c,
                                        int32_t ya, int32_t yb, int32_t xa, int32_t xb);

/* Argument checks and window loops of the pooling kernels (tr_avgpool_s8.c,
 * tr_maxpool_s8.c): every output is clamp(reduce(window), activation). */
tr_nn_status tr_nn_pool_s8(const tr_nn_pool_params *p, const tr_nn_dims *input_dims,
                           const int8_t *input_data, const tr_nn_dims *filter_dims,
                           const tr_nn_dims *output_dims, int8_t *output_data,
                           tr_nn_pool_reduce_fn reduce);

#endif
