/* The int8 matrix-vector core shared by the fully-connected and convolution kernels:
 * dst = requant(bias + W·(x + offset)) for W stored row-major [rows][cols] ("_t": one
 * output per row).
 *
 * DSP path: first the input is extended once into scratch as halfword pairs with the
 * offset added ([x0+o, x2+o], [x1+o, x3+o]: LDR, 2 SXTAB16, STRD per four inputs, shared
 * by all rows). Then four rows at a time: per four columns one LDRD (post-increment) of
 * the pair, and per row one load, SXTB16 and SXTB16 ROR 8 (the matching [w0, w2],
 * [w1, w3]) and two SMLAD: 1 + 4·5 = 21 instructions for 16 multiply-accumulates plus the
 * loop test, with the 14 live values in registers (no spills at -O2). Leftover rows two at
 * a time, then one. The accumulators of up to ROW_BLOCK rows then go through one tight
 * requantization loop (SMMULR fast path, SSAT when the activation is all of int8).
 * Accumulators are int32 and wrap on overflow exactly like SMLAD (the plain-C path sums
 * in uint32 for the same defined wrap-around). */
#include "tr_nn_support.h"

uint8_t tr_nn_implementation(void) { return TR_NN_DSP_NATIVE ? TR_NN_IMPL_DSP : TR_NN_IMPL_C; }

static inline void finish(int8_t *dst, int32_t acc, const int32_t *mult, const int32_t *shift,
                          int32_t dst_offset, int32_t act_min, int32_t act_max)
{
    *dst = tr_nn_clamp_s8(tr_nn_addw(tr_nn_requant(acc, *mult, *shift), dst_offset), act_min,
                          act_max);
}

#if TR_NN_DSP

/* acc + the dot product of four weights (one word, w0..w3) with the extended input pair
 * x02 = [x0+o, x2+o], x13 = [x1+o, x3+o]: SXTB16, SXTB16 ROR 8, two SMLAD. */
static inline int32_t mac4(uint32_t w, uint32_t x02, uint32_t x13, int32_t acc)
{
    acc = tr_nn_smlad(tr_nn_sxtb16(w), x02, acc);
    return tr_nn_smlad(tr_nn_sxtb16_ror8(w), x13, acc);
}

/* One output of the block loop below: the fast path of tr_nn_requant with the output
 * offset folded into the last rounding step (((t >> (e-1)) + 1) >> 1) + off ==
 * ((t >> (e-1)) + 2·off + 1) >> 1, exact as 2·off is even). shift == 0 and everything
 * unusual take the general form. */
static inline int32_t requant_off(int32_t x, int32_t m, int32_t s, int32_t off,
                                  int32_t off2p1)
{
    int32_t x2;
    if (__builtin_expect(s < 0 && !__builtin_add_overflow(x, x, &x2), 1)) {
        const int32_t h = tr_nn_smmulr(x2, m);
        const int32_t t = h + (h >> 31);
        return ((t >> (~s)) + off2p1) >> 1;
    }
    return tr_nn_addw(tr_nn_requant_general(x, m, s), off);
}

/* `full`: the activation range is all of int8, so one SSAT clamps; `qs`: 0 (one
 * multiplier/shift, loaded once) or 1. Both are constants in each inlined copy. */
static inline void requant_loop(const int32_t *acc, int8_t *dst, int32_t n, const int32_t *mult,
                                const int32_t *shift, int32_t qs, int32_t off, int32_t lo,
                                int32_t hi, int full)
{
    const int32_t off2p1 = 2 * off + 1;
    const int32_t m0 = *mult, s0 = *shift;
    for (const int32_t *const end = acc + n; acc < end;) {
        const int32_t m = qs ? *mult++ : m0, s = qs ? *shift++ : s0;
        const int32_t v = requant_off(*acc++, m, s, off, off2p1);
        *dst++ = (int8_t)(full ? tr_nn_ssat8(v) : tr_nn_clamp_s8(v, lo, hi));
    }
}

/* dst[i] = clamp(requant(acc[i], mult[i·qs], shift[i·qs]) + dst_offset, act_min, act_max)
 * for i < n (qs = quant_stride, 0 or 1): a block of accumulators requantized in one tight
 * loop. */
static inline __attribute__((always_inline)) void
requant_block(const int32_t *acc, int8_t *dst, int32_t n, const int32_t *mult,
              const int32_t *shift, int32_t quant_stride, int32_t dst_offset, int32_t act_min,
              int32_t act_max)
{
    const int full = act_min == -128 && act_max == 127;
    if (quant_stride) {
        if (full)
            requant_loop(acc, dst, n, mult, shift, 1, dst_offset, 0, 0, 1);
        else
            requant_loop(acc, dst, n, mult, shift, 1, dst_offset, act_min, act_max, 0);
    } else {
        if (full)
            requant_loop(acc, dst, n, mult, shift, 0, dst_offset, 0, 0, 1);
        else
            requant_loop(acc, dst, n, mult, shift, 0, dst_offset, act_min, act_max, 0);
    }
}

/* Accumulators per block: they go to a small array and requant_block requantizes
 * them in one loop; requantizing right after the 4-row loop instead spills the quant
 * parameters (~30 instead of ~18 instructions per output, measured). */
#define ROW_BLOCK 32

/* GCC's pre-register-allocation scheduler hoists the four weight loads and then spills
 * two row pointers and the loop bound inside the 4-row loop (29 instead of 24
 * instructions per 16 MACs, measured); without it the loop keeps all 14 values in
 * registers. */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("no-schedule-insns")))
#endif
void tr_nn_vec_mat_mult_t_s8(const int8_t *lhs, const int8_t *rhs, const int32_t *bias,
                             int8_t *dst, int32_t lhs_offset, int32_t dst_offset,
                             const int32_t *mult, const int32_t *shift, int32_t quant_stride,
                             int32_t cols, int32_t rows, int32_t act_min, int32_t act_max,
                             uint32_t *ext)
{
    const int32_t cols4 = cols & ~3;
    /* Pass 1: every group of four inputs once as two words of offset-added halfwords,
     * [x0+o, x2+o] and [x1+o, x3+o] (the order SXTB16 / SXTB16 ROR 8 give the weights). */
    {
        const uint32_t off2 = tr_nn_dup16(lhs_offset);
        const int8_t *x = lhs;
        uint32_t *e = ext;
        for (const int8_t *const x_end = lhs + cols4; x < x_end; x += 4) {
            const uint32_t xv = tr_nn_read_s8x4(x);
            tr_nn_st2(&e, tr_nn_sxtab16(off2, xv), tr_nn_sxtab16_ror8(off2, xv));
        }
    }
    const uint32_t *const ext_end = ext + (cols4 >> 1);
    int32_t acc[ROW_BLOCK];
    const int8_t *w = rhs; /* the next row's weights */
    const int32_t *b = bias;

    for (int32_t blk = 0; blk < rows; blk += ROW_BLOCK) {
        const int32_t n = rows - blk < ROW_BLOCK ? rows - blk : ROW_BLOCK;
        int32_t *a = acc;
        for (int32_t *const a4_end = acc + (n & ~3); a < a4_end; a += 4) {
            const int8_t *w0 = w;
            const int8_t *w1 = w0 + cols;
            const int8_t *w2 = w1 + cols;
            const int8_t *w3 = w2 + cols;
            w = w3 + cols;
            int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
            if (b) {
                a0 = b[0];
                a1 = b[1];
                a2 = b[2];
                a3 = b[3];
                b += 4;
            }
            for (const uint32_t *e = ext; e < ext_end;) {
                uint32_t x02, x13;
                tr_nn_ld2(&e, &x02, &x13);
                a0 = mac4(tr_nn_read_s8x4(w0), x02, x13, a0);
                w0 += 4;
                a1 = mac4(tr_nn_read_s8x4(w1), x02, x13, a1);
                w1 += 4;
                a2 = mac4(tr_nn_read_s8x4(w2), x02, x13, a2);
                w2 += 4;
                a3 = mac4(tr_nn_read_s8x4(w3), x02, x13, a3);
                w3 += 4;
            }
            for (int32_t c = cols4; c < cols; c++) {
                const int32_t xc = lhs[c] + lhs_offset;
                a0 = tr_nn_addw(a0, xc * *w0++);
                a1 = tr_nn_addw(a1, xc * *w1++);
                a2 = tr_nn_addw(a2, xc * *w2++);
                a3 = tr_nn_addw(a3, xc * *w3++);
            }
            a[0] = a0;
            a[1] = a1;
            a[2] = a2;
            a[3] = a3;
        }
        if (n & 2) {
            const int8_t *w0 = w;
            const int8_t *w1 = w0 + cols;
            w = w1 + cols;
            int32_t a0 = 0, a1 = 0;
            if (b) {
                a0 = b[0];
                a1 = b[1];
                b += 2;
            }
            for (const uint32_t *e = ext; e < ext_end;) {
                uint32_t x02, x13;
                tr_nn_ld2(&e, &x02, &x13);
                a0 = mac4(tr_nn_read_s8x4(w0), x02, x13, a0);
                w0 += 4;
                a1 = mac4(tr_nn_read_s8x4(w1), x02, x13, a1);
                w1 += 4;
            }
            for (int32_t c = cols4; c < cols; c++) {
                const int32_t xc = lhs[c] + lhs_offset;
                a0 = tr_nn_addw(a0, xc * *w0++);
                a1 = tr_nn_addw(a1, xc * *w1++);
            }
            a[0] = a0;
            a[1] = a1;
            a += 2;
        }
        if (n & 1) {
            const int8_t *w0 = w;
            w += cols;
            int32_t a0 = b ? *b++ : 0;
            for (const uint32_t *e = ext; e < ext_end; e += 2) {
                a0 = mac4(tr_nn_read_s8x4(w0), e[0], e[1], a0);
                w0 += 4;
            }
            for (int32_t c = cols4; c < cols; c++)
                a0 = tr_nn_addw(a0, (lhs[c] + lhs_offset) * *w0++);
            a[0] = a0;
        }
        requant_block(acc, dst + blk, n, mult + blk * quant_stride, shift + blk * quant_stride,
                      quant_stride, dst_offset, act_min, act_max);
    }
}

/* Two input vectors (two output pixels of a pointwise convolution) against the same
 * per-channel matrix: the same result as two tr_nn_vec_mat_mult_t_s8 calls. The inputs
 * are extended interleaved ([a02, a13, b02, b13] per four columns), then two rows at a
 * time: per four columns two LDRD, and per row one load, SXTB16, SXTB16 ROR 8 and four
 * SMLAD (two pixels): 16 instructions per 16 multiply-accumulates plus the loop test,
 * against 21 for one pixel and four rows. cols must be a multiple of 4. */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("no-schedule-insns")))
#endif
void tr_nn_vec2_mat_mult_t_s8(const int8_t *lhs_a, const int8_t *lhs_b, const int8_t *rhs,
                              const int32_t *bias, int8_t *dst_a, int8_t *dst_b,
                              int32_t lhs_offset, int32_t dst_offset, const int32_t *mult,
                              const int32_t *shift, int32_t cols, int32_t rows, int32_t act_min,
                              int32_t act_max, uint32_t *ext)
{
    {
        const uint32_t off2 = tr_nn_dup16(lhs_offset);
        uint32_t *e = ext;
        for (int32_t c = 0; c < cols; c += 4) {
            const uint32_t xa = tr_nn_read_s8x4(lhs_a + c), xb = tr_nn_read_s8x4(lhs_b + c);
            tr_nn_st2(&e, tr_nn_sxtab16(off2, xa), tr_nn_sxtab16_ror8(off2, xa));
            tr_nn_st2(&e, tr_nn_sxtab16(off2, xb), tr_nn_sxtab16_ror8(off2, xb));
        }
    }
    const uint32_t *const ext_end = ext + cols;
    int32_t acc_a[ROW_BLOCK], acc_b[ROW_BLOCK];
    const int8_t *w = rhs;
    const int32_t *bp = bias;

    for (int32_t blk = 0; blk < rows; blk += ROW_BLOCK) {
        const int32_t n = rows - blk < ROW_BLOCK ? rows - blk : ROW_BLOCK;
        int32_t r = 0;
        for (; r + 2 <= n; r += 2) {
            const int8_t *w0 = w;
            const int8_t *w1 = w0 + cols;
            w = w1 + cols;
            int32_t a0 = 0, a1 = 0;
            if (bp) {
                a0 = bp[0];
                a1 = bp[1];
                bp += 2;
            }
            int32_t b0 = a0, b1 = a1;
            for (const uint32_t *e = ext; e < ext_end;) {
                uint32_t xa02, xa13, xb02, xb13;
                tr_nn_ld2(&e, &xa02, &xa13);
                tr_nn_ld2(&e, &xb02, &xb13);
                uint32_t v = tr_nn_read_s8x4(w0);
                w0 += 4;
                uint32_t lo = tr_nn_sxtb16(v), hi = tr_nn_sxtb16_ror8(v);
                a0 = tr_nn_smlad(hi, xa13, tr_nn_smlad(lo, xa02, a0));
                b0 = tr_nn_smlad(hi, xb13, tr_nn_smlad(lo, xb02, b0));
                v = tr_nn_read_s8x4(w1);
                w1 += 4;
                lo = tr_nn_sxtb16(v);
                hi = tr_nn_sxtb16_ror8(v);
                a1 = tr_nn_smlad(hi, xa13, tr_nn_smlad(lo, xa02, a1));
                b1 = tr_nn_smlad(hi, xb13, tr_nn_smlad(lo, xb02, b1));
            }
            acc_a[r] = a0;
            acc_a[r + 1] = a1;
            acc_b[r] = b0;
            acc_b[r + 1] = b1;
        }
        if (r < n) {
            const int8_t *w0 = w;
            w += cols;
            int32_t a0 = bp ? *bp++ : 0;
            int32_t b0 = a0;
            for (const uint32_t *e = ext; e < ext_end; e += 4) {
                const uint32_t v = tr_nn_read_s8x4(w0);
                w0 += 4;
                const uint32_t lo = tr_nn_sxtb16(v), hi = tr_nn_sxtb16_ror8(v);
                a0 = tr_nn_smlad(hi, e[1], tr_nn_smlad(lo, e[0], a0));
                b0 = tr_nn_smlad(hi, e[3], tr_nn_smlad(lo, e[2], b0));
            }
            acc_a[r] = a0;
            acc_b[r] = b0;
        }
        requant_block(acc_a, dst_a + blk, n, mult + blk, shift + blk, 1, dst_offset, act_min,
                      act_max);
        requant_block(acc_b, dst_b + blk, n, mult + blk, shift + blk, 1, dst_offset, act_min,
                      act_max);
    }
}

#else /* plain C */

void tr_nn_vec_mat_mult_t_s8(const int8_t *lhs, const int8_t *rhs, const int32_t *bias,
                             int8_t *dst, int32_t lhs_offset, int32_t dst_offset,
                             const int32_t *mult, const int32_t *shift, int32_t quant_stride,
                             int32_t cols, int32_t rows, int32_t act_min, int32_t act_max,
                             uint32_t *ext)
{
    (void)ext;
    int32_t r = 0;
    /* Two rows per pass: each input byte is loaded and offset once for both. */
    for (; r + 2 <= rows; r += 2) {
        const int8_t *w0 = rhs + (uint32_t)r * (uint32_t)cols;
        const int8_t *w1 = w0 + cols;
        uint32_t a0 = bias ? (uint32_t)bias[r] : 0u;
        uint32_t a1 = bias ? (uint32_t)bias[r + 1] : 0u;
        for (int32_t c = 0; c < cols; c++) {
            const int32_t xc = lhs[c] + lhs_offset;
            a0 += (uint32_t)(xc * w0[c]);
            a1 += (uint32_t)(xc * w1[c]);
        }
        const int32_t q = r * quant_stride;
        finish(dst + r, (int32_t)a0, mult + q, shift + q, dst_offset, act_min, act_max);
        finish(dst + r + 1, (int32_t)a1, mult + q + quant_stride, shift + q + quant_stride,
               dst_offset, act_min, act_max);
    }
    if (r < rows) {
        const int8_t *w0 = rhs + (uint32_t)r * (uint32_t)cols;
        uint32_t a0 = bias ? (uint32_t)bias[r] : 0u;
        for (int32_t c = 0; c < cols; c++)
            a0 += (uint32_t)((lhs[c] + lhs_offset) * w0[c]);
        const int32_t q = r * quant_stride;
        finish(dst + r, (int32_t)a0, mult + q, shift + q, dst_offset, act_min, act_max);
    }
}

#endif
