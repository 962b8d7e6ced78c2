/* tinyrig int8 neural-network kernels.
 *
 * Interface shaped like CMSIS-NN (context / params / quant params / dims, status codes,
 * `_get_buffer_size` for scratch memory) and the TFLite int8 quantization spec's arithmetic.
 * It equals CMSIS-NN's everywhere but one corner: x' == m == INT32_MIN saturates here (as in
 * TFLite's reference) and not in CMSIS-NN (only negative multipliers reach it; TFLite emits
 * none).
 *
 *   acc  = bias[oc] + Σ (x + input_offset) · w          int32, exact (weights symmetric:
 *                                                         filter zero point 0)
 *   y    = requantize(acc, multiplier[oc], shift[oc])    tr_nn_requantize (below)
 *   out  = clamp(y + output_offset, act.min, act.max)    int8; ReLU/ReLU6 are folded into
 *                                                         act.min/act.max by the host
 *
 * All int32 sums (the accumulator, y + output_offset) wrap around on overflow (two's
 * complement), as SMLAD and CMSIS-NN's C code do; only absurd parameters get there.
 *
 * Offsets are the negated zero points, as in TFLite/CMSIS-NN: input_offset in [-127, 128],
 * output_offset in [-128, 127]. Tensors are NHWC; conv filters [C_OUT][KH][KW][C_IN];
 * depthwise filters [1][KH][KW][C_IN·ch_mult] (output channel = ic·ch_mult + m); FC
 * filters [C_OUT][N_IN]. Padding positions contribute nothing (the input zero point).
 * Output dims are given by the caller; padding.{h,w} is the top/left padding, so TFLite's
 * asymmetric SAME padding is expressed by the output size.
 *
 * Requantization (docs/training.md "int8 backbone", rig/golden/int8.py):
 *   left  = shift > 0 ? shift : 0,  right = shift > 0 ? 0 : -shift        shift in [-31, 30]
 *   x'    = x · 2^left              (int32, two's-complement wrap-around)
 *   h     = (x' · m + 2^30) >> 31   doubling high multiply with rounding (64-bit product,
 *                                   round half up == TFLite's nudge-and-truncate); saturates
 *                                   to INT32_MAX for x' == m == INT32_MIN
 *   y     = rounding right shift of h by `right` (round half away from zero)
 *
 * Cortex-M4 (and any core with __ARM_FEATURE_DSP) uses SMLAD/SXTB16/SXTAB16; others (M0,
 * the host) use plain C. Both give bit-identical results. Building with
 * CMSIS_NN_ROOT=... links Arm's CMSIS-NN behind these same functions instead
 * (kernels/cmsis_nn_adapter.c). No function allocates memory. */
#ifndef TR_NN_H
#define TR_NN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    TR_NN_SUCCESS = 0,
    TR_NN_ARG_ERROR = -1,   /* an argument violates the documented constraints */
    TR_NN_NO_IMPL_ERROR = -2 /* valid, but this build has no implementation for it */
} tr_nn_status;

typedef struct {
    int32_t w;
    int32_t h;
} tr_nn_tile;

/* Scratch memory for a kernel: at least `tr_<op>_get_buffer_size(...)` bytes, 4-aligned. */
typedef struct {
    void *buf;
    int32_t size;
} tr_nn_context;

typedef struct {
    int32_t n; /* batch, or output channels for filters */
    int32_t h;
    int32_t w;
    int32_t c;
} tr_nn_dims;

typedef struct {
    int32_t min;
    int32_t max;
} tr_nn_activation;

typedef struct {
    const int32_t *multiplier; /* one per output channel */
    const int32_t *shift;
} tr_nn_per_channel_quant_params;

typedef struct {
    int32_t multiplier;
    int32_t shift;
} tr_nn_per_tensor_quant_params;

typedef struct {
    int32_t input_offset;
    int32_t output_offset;
    tr_nn_tile stride;
    tr_nn_tile padding;
    tr_nn_tile dilation;
    tr_nn_activation activation;
} tr_nn_conv_params;

typedef struct {
    int32_t input_offset;
    int32_t output_offset;
    int32_t ch_mult; /* output channels = input channels · ch_mult */
    tr_nn_tile stride;
    tr_nn_tile padding;
    tr_nn_tile dilation;
    tr_nn_activation activation;
} tr_nn_dw_conv_params;

typedef struct {
    tr_nn_tile stride;
    tr_nn_tile padding;
    tr_nn_activation activation;
} tr_nn_pool_params;

typedef struct {
    int32_t input_offset;
    int32_t filter_offset; /* must be 0 (symmetric int8 weights) */
    int32_t output_offset;
    tr_nn_activation activation;
} tr_nn_fc_params;

/* ---- convolution (tr_convolve_s8.c) ------------------------------------------------ */
/* input [N][H][W][C_IN], filter_dims {C_OUT, KH, KW, C_IN}, bias [C_OUT] (may be NULL),
 * output [N][OH][OW][C_OUT]. Scratch: tr_convolve_s8_get_buffer_size. */
tr_nn_status tr_convolve_s8(const tr_nn_context *ctx, const tr_nn_conv_params *conv_params,
                            const tr_nn_per_channel_quant_params *quant_params,
                            const tr_nn_dims *input_dims, const int8_t *input_data,
                            const tr_nn_dims *filter_dims, const int8_t *filter_data,
                            const tr_nn_dims *bias_dims, const int32_t *bias_data,
                            const tr_nn_dims *output_dims, int8_t *output_data);
int32_t tr_convolve_s8_get_buffer_size(const tr_nn_dims *input_dims, const tr_nn_dims *filter_dims);

/* ---- depthwise convolution (tr_depthwise_conv_s8.c) --------------------------------- */
/* filter_dims {1, KH, KW, C_OUT}, C_OUT = C_IN · ch_mult. No scratch. */
tr_nn_status tr_depthwise_conv_s8(const tr_nn_context *ctx, const tr_nn_dw_conv_params *dw_params,
                                  const tr_nn_per_channel_quant_params *quant_params,
                                  const tr_nn_dims *input_dims, const int8_t *input_data,
                                  const tr_nn_dims *filter_dims, const int8_t *filter_data,
                                  const tr_nn_dims *bias_dims, const int32_t *bias_data,
                                  const tr_nn_dims *output_dims, int8_t *output_data);
int32_t tr_depthwise_conv_s8_get_buffer_size(const tr_nn_dims *input_dims,
                                             const tr_nn_dims *filter_dims);

/* ---- fully connected (tr_fully_connected_s8.c, tr_fully_connected_per_channel_s8.c) -- */
/* input [N][H·W·C] (input_dims->n batches), filter_dims {N_IN, -, -, C_OUT} as in
 * CMSIS-NN (n = accumulation depth, c = output depth), filter [C_OUT][N_IN], bias [C_OUT]
 * (may be NULL), output [N][C_OUT]. No scratch. */
tr_nn_status tr_fully_connected_s8(const tr_nn_context *ctx, const tr_nn_fc_params *fc_params,
                                   const tr_nn_per_tensor_quant_params *quant_params,
                                   const tr_nn_dims *input_dims, const int8_t *input_data,
                                   const tr_nn_dims *filter_dims, const int8_t *filter_data,
                                   const tr_nn_dims *bias_dims, const int32_t *bias_data,
                                   const tr_nn_dims *output_dims, int8_t *output_data);
int32_t tr_fully_connected_s8_get_buffer_size(const tr_nn_dims *filter_dims);

tr_nn_status tr_fully_connected_per_channel_s8(
    const tr_nn_context *ctx, const tr_nn_fc_params *fc_params,
    const tr_nn_per_channel_quant_params *quant_params, const tr_nn_dims *input_dims,
    const int8_t *input_data, const tr_nn_dims *filter_dims, const int8_t *filter_data,
    const tr_nn_dims *bias_dims, const int32_t *bias_data, const tr_nn_dims *output_dims,
    int8_t *output_data);
int32_t tr_fully_connected_per_channel_s8_get_buffer_size(const tr_nn_dims *filter_dims);

/* ---- pooling (tr_avgpool_s8.c, tr_maxpool_s8.c) ------------------------------------- */
/* filter_dims {-, KH, KW, -}. Input and output share one quantization (TFLite). Every
 * window must overlap the input (else TR_NN_ARG_ERROR). Average: sum of the valid
 * elements / their count, rounded half away from zero (TFLite). No scratch. */
tr_nn_status tr_avgpool_s8(const tr_nn_context *ctx, const tr_nn_pool_params *pool_params,
                           const tr_nn_dims *input_dims, const int8_t *input_data,
                           const tr_nn_dims *filter_dims, const tr_nn_dims *output_dims,
                           int8_t *output_data);
int32_t tr_avgpool_s8_get_buffer_size(int32_t dim_dst_width, int32_t ch_src);

tr_nn_status tr_maxpool_s8(const tr_nn_context *ctx, const tr_nn_pool_params *pool_params,
                           const tr_nn_dims *input_dims, const int8_t *input_data,
                           const tr_nn_dims *filter_dims, const tr_nn_dims *output_dims,
                           int8_t *output_data);
int32_t tr_maxpool_s8_get_buffer_size(int32_t dim_dst_width, int32_t ch_src);

/* ---- requantization (tr_requantize.c) ------------------------------------------------ */
int32_t tr_nn_doubling_high_mult(int32_t a, int32_t b);
int32_t tr_nn_divide_by_power_of_two(int32_t x, int32_t exponent); /* exponent 0..31 */
int32_t tr_nn_requantize(int32_t x, int32_t multiplier, int32_t shift);
/* out[i] = clamp(requantize(in[i], m[ch], s[ch]) + output_offset, min, max) with
 * ch = i % channels (NHWC order); shifts must be in [-31, 30]. */
tr_nn_status tr_requantize_s32_s8(const int32_t *input, int8_t *output, int32_t n,
                                  int32_t channels,
                                  const tr_nn_per_channel_quant_params *quant_params,
                                  int32_t output_offset, const tr_nn_activation *activation);

/* ---- dequantization (tr_dequantize_s8_f32.c) ----------------------------------------- */
/* out[i] = (float)(in[i] - zero_point) · scale (one float32 rounding: the integer
 * difference is exact in float). */
tr_nn_status tr_dequantize_s8_f32(const int8_t *input, float *output, int32_t n,
                                  int32_t zero_point, float scale);

/* Which implementation this build links (reported to the host). */
#define TR_NN_IMPL_C 0u      /* tinyrig kernels, plain C */
#define TR_NN_IMPL_DSP 1u    /* tinyrig kernels, Cortex-M DSP extension */
#define TR_NN_IMPL_CMSIS 2u  /* Arm CMSIS-NN through kernels/cmsis_nn_adapter.c */
uint8_t tr_nn_implementation(void);

#ifdef __cplusplus
}
#endif

#endif
