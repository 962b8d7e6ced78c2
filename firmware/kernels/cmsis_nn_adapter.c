/* Our kernel interface (tr_nn.h) on top of Arm's CMSIS-NN: built instead of kernels/tr_*.c
 * when the firmware is made with CMSIS_NN_ROOT=/path/to/CMSIS-NN (kernels/kernels.mk).
 *
 * tr_nn.h mirrors CMSIS-NN's types field for field, so each function only copies the
 * structs and calls its arm_* counterpart:
 *
 *   tr_convolve_s8                     arm_convolve_s8             (+ _get_buffer_size)
 *   tr_depthwise_conv_s8               arm_depthwise_conv_s8       (no scratch)
 *   tr_fully_connected_s8              arm_fully_connected_s8      (+ _get_buffer_size)
 *   tr_fully_connected_per_channel_s8  arm_convolve_1x1_s8 on a 1 x N "image" (per-channel
 *                                      requantization; CMSIS-NN before v7 has no
 *                                      per-channel fully-connected kernel)
 *   tr_avgpool_s8                      arm_avgpool_s8              (+ _get_buffer_size)
 *   tr_maxpool_s8                      arm_max_pool_s8
 *
 * tr_requantize.c and tr_dequantize_s8_f32.c stay ours (no CMSIS-NN counterpart).
 *
 * CMSIS-NN has no version macro; kernels.mk passes the API revision of arm_nnfunctions.h
 * ("$Revision: V.<n>") as TR_CMSIS_NN_API. Supported: V.12 (v5.0.0) to the V.19 of the v7
 * line (built and run against v5.0.0, v6.0.0, v7.0.0 and 99f736a). From V.18 (v7.0.0)
 * arm_convolve_s8 takes `upscale_dims` (transposed convolution); we pass 1x1, no upscaling.
 * The _Static_asserts below check that signature against the header, so a revision that
 * changes it again fails here with a clear message rather than at a call. */
#ifndef TR_CMSIS_NN_API
#error "TR_CMSIS_NN_API (the arm_nnfunctions.h revision) is set by kernels/kernels.mk"
#endif
#include <arm_nnfunctions.h>

#include "tr_nn.h"

_Static_assert(sizeof(tr_nn_dims) == sizeof(cmsis_nn_dims), "dims layout");
_Static_assert(sizeof(tr_nn_conv_params) == sizeof(cmsis_nn_conv_params), "conv layout");
_Static_assert(sizeof(tr_nn_dw_conv_params) == sizeof(cmsis_nn_dw_conv_params), "dw layout");
_Static_assert(sizeof(tr_nn_fc_params) == sizeof(cmsis_nn_fc_params), "fc layout");
_Static_assert(sizeof(tr_nn_pool_params) == sizeof(cmsis_nn_pool_params), "pool layout");

#if TR_CMSIS_NN_API >= 18
#define TR_CONV_UPSCALE_ARG const cmsis_nn_dims *upscale_dims,
#else
#define TR_CONV_UPSCALE_ARG
#endif
typedef arm_cmsis_nn_status tr_arm_convolve_s8_fn(
    const cmsis_nn_context *ctx, const cmsis_nn_conv_params *conv_params,
    const cmsis_nn_per_channel_quant_params *quant_params, const cmsis_nn_dims *input_dims,
    const int8_t *input_data, const cmsis_nn_dims *filter_dims, const int8_t *filter_data,
    const cmsis_nn_dims *bias_dims, const int32_t *bias_data,
    TR_CONV_UPSCALE_ARG const cmsis_nn_dims *output_dims, int8_t *output_data);
_Static_assert(_Generic(&arm_convolve_s8, tr_arm_convolve_s8_fn *: 1, default: 0),
               "arm_convolve_s8 does not have the signature of this API revision "
               "(TR_CMSIS_NN_API): see kernels/README.md for the supported releases");

uint8_t tr_nn_implementation(void) { return TR_NN_IMPL_CMSIS; }

static tr_nn_status st(arm_cmsis_nn_status s)
{
    return s == ARM_CMSIS_NN_SUCCESS ? TR_NN_SUCCESS
           : s == ARM_CMSIS_NN_ARG_ERROR ? TR_NN_ARG_ERROR
                                         : TR_NN_NO_IMPL_ERROR;
}

static cmsis_nn_dims dims(const tr_nn_dims *d)
{
    const cmsis_nn_dims r = {d->n, d->h, d->w, d->c};
    return r;
}

static cmsis_nn_context ctx_of(const tr_nn_context *c)
{
    cmsis_nn_context r = {0, 0};
    if (c) {
        r.buf = c->buf;
        r.size = c->size;
    }
    return r;
}

static cmsis_nn_tile tile(tr_nn_tile t)
{
    const cmsis_nn_tile r = {t.w, t.h};
    return r;
}

static cmsis_nn_activation act(tr_nn_activation a)
{
    const cmsis_nn_activation r = {a.min, a.max};
    return r;
}

static cmsis_nn_per_channel_quant_params pcq(const tr_nn_per_channel_quant_params *q)
{
    /* CMSIS-NN's fields are not const-qualified; it only reads them. */
    const cmsis_nn_per_channel_quant_params r = {(int32_t *)(uintptr_t)q->multiplier,
                                                 (int32_t *)(uintptr_t)q->shift};
    return r;
}

int32_t tr_convolve_s8_get_buffer_size(const tr_nn_dims *input_dims, const tr_nn_dims *filter_dims)
{
    const cmsis_nn_dims i = dims(input_dims), f = dims(filter_dims);
    return arm_convolve_s8_get_buffer_size(&i, &f);
}

tr_nn_status tr_convolve_s8(const tr_nn_context *ctx, const tr_nn_conv_params *conv_params,
                            const tr_nn_per_channel_quant_params *quant_params,
                            const tr_nn_dims *input_dims, const int8_t *input_data,
                            const tr_nn_dims *filter_dims, const int8_t *filter_data,
                            const tr_nn_dims *bias_dims, const int32_t *bias_data,
                            const tr_nn_dims *output_dims, int8_t *output_data)
{
    const cmsis_nn_context c = ctx_of(ctx);
    const cmsis_nn_conv_params p = {conv_params->input_offset, conv_params->output_offset,
                                    tile(conv_params->stride), tile(conv_params->padding),
                                    tile(conv_params->dilation), act(conv_params->activation)};
    const cmsis_nn_per_channel_quant_params q = pcq(quant_params);
    const cmsis_nn_dims i = dims(input_dims), f = dims(filter_dims), b = dims(bias_dims),
                        o = dims(output_dims);
#if TR_CMSIS_NN_API >= 18
    const cmsis_nn_dims no_upscale = {1, 1, 1, 1};
    return st(arm_convolve_s8(&c, &p, &q, &i, input_data, &f, filter_data, &b, bias_data,
                              &no_upscale, &o, output_data));
#else
    return st(arm_convolve_s8(&c, &p, &q, &i, input_data, &f, filter_data, &b, bias_data, &o,
                              output_data));
#endif
}

int32_t tr_depthwise_conv_s8_get_buffer_size(const tr_nn_dims *input_dims,
                                             const tr_nn_dims *filter_dims)
{
    (void)input_dims, (void)filter_dims;
    return 0; /* arm_depthwise_conv_s8 (the generic kernel) needs no scratch */
}

tr_nn_status tr_depthwise_conv_s8(const tr_nn_context *ctx, const tr_nn_dw_conv_params *dw_params,
                                  const tr_nn_per_channel_quant_params *quant_params,
                                  const tr_nn_dims *input_dims, const int8_t *input_data,
                                  const tr_nn_dims *filter_dims, const int8_t *filter_data,
                                  const tr_nn_dims *bias_dims, const int32_t *bias_data,
                                  const tr_nn_dims *output_dims, int8_t *output_data)
{
    const cmsis_nn_context c = ctx_of(ctx);
    const cmsis_nn_dw_conv_params p = {dw_params->input_offset, dw_params->output_offset,
                                       dw_params->ch_mult, tile(dw_params->stride),
                                       tile(dw_params->padding), tile(dw_params->dilation),
                                       act(dw_params->activation)};
    const cmsis_nn_per_channel_quant_params q = pcq(quant_params);
    const cmsis_nn_dims i = dims(input_dims), f = dims(filter_dims), b = dims(bias_dims),
                        o = dims(output_dims);
    return st(arm_depthwise_conv_s8(&c, &p, &q, &i, input_data, &f, filter_data, &b, bias_data,
                                    &o, output_data));
}

int32_t tr_fully_connected_s8_get_buffer_size(const tr_nn_dims *filter_dims)
{
    const cmsis_nn_dims f = dims(filter_dims);
    return arm_fully_connected_s8_get_buffer_size(&f);
}

tr_nn_status tr_fully_connected_s8(const tr_nn_context *ctx, const tr_nn_fc_params *fc_params,
                                   const tr_nn_per_tensor_quant_params *quant_params,
                                   const tr_nn_dims *input_dims, const int8_t *input_data,
                                   const tr_nn_dims *filter_dims, const int8_t *filter_data,
                                   const tr_nn_dims *bias_dims, const int32_t *bias_data,
                                   const tr_nn_dims *output_dims, int8_t *output_data)
{
    const cmsis_nn_context c = ctx_of(ctx);
    const cmsis_nn_fc_params p = {fc_params->input_offset, fc_params->filter_offset,
                                  fc_params->output_offset, act(fc_params->activation)};
    const cmsis_nn_per_tensor_quant_params q = {quant_params->multiplier, quant_params->shift};
    const cmsis_nn_dims i = dims(input_dims), f = dims(filter_dims), b = dims(bias_dims),
                        o = dims(output_dims);
    return st(arm_fully_connected_s8(&c, &p, &q, &i, input_data, &f, filter_data, &b, bias_data,
                                     &o, output_data));
}

int32_t tr_fully_connected_per_channel_s8_get_buffer_size(const tr_nn_dims *filter_dims)
{
    (void)filter_dims;
    return 0; /* arm_convolve_1x1_s8 needs no scratch */
}

tr_nn_status tr_fully_connected_per_channel_s8(
    const tr_nn_context *ctx, const tr_nn_fc_params *fc_params,
    const tr_nn_per_channel_quant_params *quant_params, const tr_nn_dims *input_dims,
    const int8_t *input_data, const tr_nn_dims *filter_dims, const int8_t *filter_data,
    const tr_nn_dims *bias_dims, const int32_t *bias_data, const tr_nn_dims *output_dims,
    int8_t *output_data)
{
    if (fc_params->filter_offset != 0)
        return TR_NN_ARG_ERROR;
    /* N batches of an n_in vector = a 1 x N image with n_in channels; a 1x1 convolution
     * with c_out filters computes every output, requantized per channel. */
    const int32_t n_in = filter_dims->n, n_out = output_dims->c, batches = input_dims->n;
    const cmsis_nn_context c = ctx_of(ctx);
    const cmsis_nn_conv_params p = {fc_params->input_offset, fc_params->output_offset,
                                    {1, 1}, {0, 0}, {1, 1}, act(fc_params->activation)};
    const cmsis_nn_per_channel_quant_params q = pcq(quant_params);
    const cmsis_nn_dims i = {1, 1, batches, n_in}, f = {n_out, 1, 1, n_in},
                        b = dims(bias_dims), o = {1, 1, batches, n_out};
    return st(arm_convolve_1x1_s8(&c, &p, &q, &i, input_data, &f, filter_data, &b, bias_data,
                                  &o, output_data));
}

int32_t tr_avgpool_s8_get_buffer_size(int32_t dim_dst_width, int32_t ch_src)
{
    return arm_avgpool_s8_get_buffer_size(dim_dst_width, ch_src);
}

tr_nn_status tr_avgpool_s8(const tr_nn_context *ctx, const tr_nn_pool_params *pool_params,
                           const tr_nn_dims *input_dims, const int8_t *input_data,
                           const tr_nn_dims *filter_dims, const tr_nn_dims *output_dims,
                           int8_t *output_data)
{
    const cmsis_nn_context c = ctx_of(ctx);
    const cmsis_nn_pool_params p = {tile(pool_params->stride), tile(pool_params->padding),
                                    act(pool_params->activation)};
    const cmsis_nn_dims i = dims(input_dims), f = dims(filter_dims), o = dims(output_dims);
    return st(arm_avgpool_s8(&c, &p, &i, input_data, &f, &o, output_data));
}

int32_t tr_maxpool_s8_get_buffer_size(int32_t dim_dst_width, int32_t ch_src)
{
    (void)dim_dst_width, (void)ch_src;
    return 0;
}

tr_nn_status tr_maxpool_s8(const tr_nn_context *ctx, const tr_nn_pool_params *pool_params,
                           const tr_nn_dims *input_dims, const int8_t *input_data,
                           const tr_nn_dims *filter_dims, const tr_nn_dims *output_dims,
                           int8_t *output_data)
{
    const cmsis_nn_context c = ctx_of(ctx);
    const cmsis_nn_pool_params p = {tile(pool_params->stride), tile(pool_params->padding),
                                    act(pool_params->activation)};
    const cmsis_nn_dims i = dims(input_dims), f = dims(filter_dims), o = dims(output_dims);
    return st(arm_max_pool_s8(&c, &p, &i, input_data, &f, &o, output_data));
}
