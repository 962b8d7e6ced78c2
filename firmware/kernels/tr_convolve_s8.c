/* Convolution, int8, per-channel requantization (CMSIS-NN: arm_convolve_s8).
 *
 * im2col one output pixel at a time into the scratch buffer (K = KH·KW·C_IN bytes;
 * padding taps are filled with the input zero point, so (x + input_offset) is 0 there),
 * then the shared matrix-vector core computes all output channels of that pixel. A 1x1
 * kernel without padding reads the input pixel in place (no copy); on DSP cores with
 * C_IN a multiple of 4 it takes two output pixels per call (tr_nn_vec2_mat_mult_t_s8:
 * each weight word loaded once for both). The scratch buffer is always required
 * (tr_convolve_s8_get_buffer_size > 0). */
#include "tr_nn_support.h"

/* Scratch: the int8 im2col column (rounded up to 4 bytes), then the matrix-vector
 * core's extended input (DSP builds: room for two pixels, the pointwise fast path). */
static int32_t col_bytes(int32_t k) { return (k + 3) & ~3; }

int32_t tr_convolve_s8_get_buffer_size(const tr_nn_dims *input_dims, const tr_nn_dims *filter_dims)
{
    const int32_t k = filter_dims->h * filter_dims->w * input_dims->c;
    return col_bytes(k) + 2 * tr_nn_vec_mat_ext_bytes(k);
}

static void copy_taps(int8_t *dst, const int8_t *src, int32_t n)
{
    if (n >= 8) {
        memcpy(dst, src, (size_t)n);
        return;
    }
    while (n-- > 0)
        *dst++ = *src++;
}

static void fill_taps(int8_t *dst, int8_t v, int32_t n)
{
    if (n >= 8) {
        memset(dst, v, (size_t)n);
        return;
    }
    while (n-- > 0)
        *dst++ = v;
}

tr_nn_status tr_convolve_s8(const tr_nn_context *ctx, const tr_nn_conv_params *conv_params,
                            const tr_nn_per_channel_quant_params *quant_params,
                            const tr_nn_dims *input_dims, const int8_t *input_data,
                            const tr_nn_dims *filter_dims, const int8_t *filter_data,
                            const tr_nn_dims *bias_dims, const int32_t *bias_data,
                            const tr_nn_dims *output_dims, int8_t *output_data)
{
    (void)bias_dims;
    const tr_nn_conv_params *p = conv_params;
    const int32_t N = input_dims->n, H = input_dims->h, W = input_dims->w, C = input_dims->c;
    const int32_t OC = filter_dims->n, KH = filter_dims->h, KW = filter_dims->w;
    const int32_t OH = output_dims->h, OW = output_dims->w;
    const int32_t sh = p->stride.h, sw = p->stride.w, ph = p->padding.h, pw = p->padding.w;
    const int32_t dh = p->dilation.h, dw = p->dilation.w;

    if (N <= 0 || H <= 0 || W <= 0 || C <= 0 || OC <= 0 || KH <= 0 || KW <= 0 || OH <= 0 ||
        OW <= 0 || filter_dims->c != C || output_dims->c != OC || output_dims->n != N ||
        sh <= 0 || sw <= 0 || dh <= 0 || dw <= 0 || ph < 0 || pw < 0 ||
        tr_nn_bad_offset_in(p->input_offset) || tr_nn_bad_offset_out(p->output_offset) ||
        tr_nn_bad_act(&p->activation))
        return TR_NN_ARG_ERROR;
    for (int32_t oc = 0; oc < OC; oc++)
        if (quant_params->shift[oc] < -31 || quant_params->shift[oc] > 30)
            return TR_NN_ARG_ERROR;

    const int32_t K = KH * KW * C;
    const int direct = KH == 1 && KW == 1 && ph == 0 && pw == 0;
    if (!tr_nn_ctx_ok(ctx, tr_convolve_s8_get_buffer_size(input_dims, filter_dims)))
        return TR_NN_ARG_ERROR;
    int8_t *col = (int8_t *)ctx->buf;
    uint32_t *ext = (uint32_t *)(void *)(col + col_bytes(K));
    const int8_t pad = (int8_t)(-p->input_offset);
    const int32_t amin = p->activation.min, amax = p->activation.max;

    for (int32_t n = 0; n < N; n++) {
        const int8_t *in = input_data + (uint32_t)n * (uint32_t)(H * W * C);
#if TR_NN_DSP
        if (direct && (C & 3) == 0) {
            /* pointwise: output pixels two at a time (row-major, a pair may span rows) */
            const int8_t *pending = NULL;
            int8_t *pending_out = NULL;
            for (int32_t oy = 0; oy < OH; oy++) {
                const int8_t *row = in + (uint32_t)(oy * sh * W * C);
                for (int32_t ox = 0; ox < OW; ox++, output_data += OC) {
                    const int8_t *px = row + (uint32_t)(ox * sw * C);
                    if (!pending) {
                        pending = px;
                        pending_out = output_data;
                        continue;
                    }
                    tr_nn_vec2_mat_mult_t_s8(pending, px, filter_data, bias_data, pending_out,
                                             output_data, p->input_offset, p->output_offset,
                                             quant_params->multiplier, quant_params->shift,
                                             K, OC, amin, amax, ext);
                    pending = NULL;
                }
            }
            if (pending)
                tr_nn_vec_mat_mult_t_s8(pending, filter_data, bias_data, pending_out,
                                        p->input_offset, p->output_offset,
                                        quant_params->multiplier, quant_params->shift, 1, K,
                                        OC, amin, amax, ext);
            continue;
        }
#endif
        for (int32_t oy = 0; oy < OH; oy++) {
            for (int32_t ox = 0; ox < OW; ox++) {
                const int8_t *lhs;
                if (direct) {
                    const int32_t iy = oy * sh, ix = ox * sw;
                    lhs = in + (uint32_t)((iy * W + ix) * C);
                } else {
                    int8_t *q = col;
                    for (int32_t ky = 0; ky < KH; ky++) {
                        const int32_t iy = oy * sh - ph + ky * dh;
                        if (iy < 0 || iy >= H) {
                            fill_taps(q, pad, KW * C);
                            q += KW * C;
                            continue;
                        }
                        const int8_t *row = in + (uint32_t)(iy * W * C);
                        const int32_t ix0 = ox * sw - pw;
                        if (dw == 1 && ix0 >= 0 && ix0 + KW <= W) {
                            copy_taps(q, row + ix0 * C, KW * C); /* whole kernel row inside */
                            q += KW * C;
                            continue;
                        }
                        for (int32_t kx = 0; kx < KW; kx++) {
                            const int32_t ix = ix0 + kx * dw;
                            if (ix < 0 || ix >= W)
                                fill_taps(q, pad, C);
                            else
                                copy_taps(q, row + ix * C, C);
                            q += C;
                        }
                    }
                    lhs = col;
                }
                tr_nn_vec_mat_mult_t_s8(lhs, filter_data, bias_data, output_data, p->input_offset,
                                        p->output_offset, quant_params->multiplier,
                                        quant_params->shift, 1, K, OC, amin, amax, ext);
                output_data += OC;
            }
        }
    }
    return TR_NN_SUCCESS;
}
