/* Float32 training kernels of the head: forward (matrix x batch), weight gradient, error
 * propagation (W^T x delta over kept rows), SGD update. One kernel per file, CMSIS-style
 * status codes; firmware/src/mlp.c drives them.
 *
 * Arithmetic (docs/training.md, "Kernels"): every output element is ONE float32 sum in the
 * documented index order, starting at +0.0f, each product rounded on its own. The kernels
 * are fast by keeping several *output* sums in registers at once (register blocking), never
 * by splitting one sum, so the golden model's sequential order is the device's order.
 *
 * TR_TRAIN_VFP (Cortex-M4F/M7: single-precision FPU): the inner blocks are inline assembly:
 * VLDM loads 4-8 floats per instruction and VMLA.F32 multiplies-accumulates. VMLA is the
 * *non-fused* multiply-accumulate (product rounded, then the sum rounded), the same two
 * roundings as `acc + a * b` under -ffp-contract=off (VFMA, the fused one, is never used).
 * Shapes the blocks do not cover (odd rows, a column count that is not a multiple of the
 * block) run the plain C loops, which the other cores (M0 soft float, native) use for all. */
#ifndef TR_TRAIN_H
#define TR_TRAIN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__ARM_FP) && (__ARM_FP & 4) && defined(__thumb2__)
#define TR_TRAIN_VFP 1
#else
#define TR_TRAIN_VFP 0
#endif

typedef enum {
    TR_TRAIN_SUCCESS = 0,
    TR_TRAIN_ARG_ERROR = -1 /* a size or pointer outside the documented range */
} tr_train_status;

/**
 * @brief Fully connected forward over a batch: y[n][j] = act(sum_i W[j][i]*x[n][i] + b[j]).
 * @param[in]  x      inputs [batch][in], row-major
 * @param[in]  batch  samples. Range: [1, 65535]
 * @param[in]  in     inputs per sample. Range: [1, 65535]
 * @param[in]  W      weights [out][in], row-major
 * @param[in]  b      biases [out]
 * @param[in]  out    outputs per sample. Range: [1, 65535]
 * @param[in]  relu   1: y = s if its sign bit is clear, else +0.0f (-0 -> +0); 0: y = s
 * @param[out] y      outputs [batch][out]; must not overlap x, W, b
 * @return TR_TRAIN_SUCCESS, or TR_TRAIN_ARG_ERROR for a zero size or a NULL pointer.
 * The sum runs over i = 0, 1, ... from +0.0f; the bias is added after it.
 */
tr_train_status tr_fc_forward_f32(const float *x, uint16_t batch, uint16_t in, const float *W,
                                  const float *b, uint16_t out, int relu, float *y);

/**
 * @brief Weight gradient of the kept rows: gW[r][i] = sum_n d[n][rows[r]]*x[n][i], or
 *        gW[r][i] += that sum, continued sample by sample from the stored value.
 * @param[in]  d       output error [batch][out]
 * @param[in]  x       layer inputs [batch][in]
 * @param[in]  batch   samples. Range: [1, 65535]
 * @param[in]  out     outputs per sample (row stride of d). Range: [1, 65535]
 * @param[in]  in      inputs per sample. Range: [1, 65535]
 * @param[in]  rows    kept output rows, any order, each < out
 * @param[in]  n_rows  number of kept rows. Range: [0, out]
 * @param[in]  accumulate  0: the sum starts from +0.0f; 1: from gW's values (a batch
 *                     streamed in blocks: block after block gives the whole batch's sum,
 *                     bit for bit)
 * @param[in,out] gW   gradient [n_rows][in], packed: row r holds the gradient of rows[r]
 *                     (the training arena keeps gradients of selected rows only);
 *                     must not overlap d, x
 * @return TR_TRAIN_SUCCESS, or TR_TRAIN_ARG_ERROR for a zero size or a NULL pointer.
 * The sum runs over n = 0, 1, ... (one float32 add per sample, in order).
 */
tr_train_status tr_fc_weight_grad_f32(const float *d, const float *x, uint16_t batch,
                                      uint16_t out, uint16_t in, const uint16_t *rows,
                                      uint16_t n_rows, int accumulate, float *gW);

/**
 * @brief Error propagated into the layer below through the kept rows, with the ReLU
 *        derivative of that layer: dx[n][i] = (sum_{j in rows} W[j][i]*d[n][j]) * [x[n][i] > 0].
 * @param[in]  d       output error [batch][out]
 * @param[in]  batch   samples. Range: [1, 65535]
 * @param[in]  out     outputs per sample (row stride of d). Range: [1, 65535]
 * @param[in]  W       weights [out][in] (before the update)
 * @param[in]  in      inputs per sample. Range: [1, 65535]
 * @param[in]  rows    rows that propagate, ascending (the sum runs in this order)
 * @param[in]  n_rows  number of those rows. Range: [0, out]
 * @param[in]  x       the layer's inputs [batch][in] (post-ReLU outputs of the layer below)
 * @param[out] dx      error of the layer below [batch][in]; must not overlap d, W, x
 * @return TR_TRAIN_SUCCESS, or TR_TRAIN_ARG_ERROR for a zero size or a NULL pointer.
 * The sum runs over the listed rows in order from +0.0f; where x <= 0 the result is +0.0f.
 */
tr_train_status tr_fc_backprop_f32(const float *d, uint16_t batch, uint16_t out, const float *W,
                                   uint16_t in, const uint16_t *rows, uint16_t n_rows,
                                   const float *x, float *dx);

/**
 * @brief SGD (PyTorch: dampening 0, no Nesterov) on n contiguous parameters.
 *        mu == 0: u = lr*g;  mu > 0: v = mu*v + g, u = lr*v.  Then p = p - u; s = u.
 * @param[in,out] p   parameters [n]
 * @param[in,out] v   momentum [n] (not touched when mu == 0)
 * @param[in,out] s   gradient g on entry, applied step u on exit [n]
 * @param[in]     n   element count. Range: [0, 2^32-1]
 * @param[in]     lr  learning rate (finite, >= 0)
 * @param[in]     mu  momentum (finite, >= 0)
 * @return TR_TRAIN_SUCCESS, or TR_TRAIN_ARG_ERROR for a NULL pointer with n > 0.
 */
tr_train_status tr_sgd_f32(float *p, float *v, float *s, uint32_t n, float lr, float mu);

/**
 * @brief exp(x) by a fixed sequence of float32 operations (docs/training.md, "exp and
 *        log"), so the golden model reproduces it bit for bit; within 1.2 ulp of exp.
 * @param[in] x  any float; above ln(FLT_MAX): +inf; below -150 ln 2: +0; NaN: NaN
 * @return exp(x) in float32.
 */
float tr_expf(float x);

/**
 * @brief log(x) by a fixed sequence of float32 operations (see tr_expf); within 2 ulp.
 * @param[in] x  any float; +0 or -0: -inf; negative: NaN; +inf: +inf; NaN: NaN
 * @return log(x) in float32.
 */
float tr_logf(float x);

#ifdef __cplusplus
}
#endif

#endif
