/* Depthwise convolution, int8, per-channel requantization (CMSIS-NN:
 * arm_depthwise_conv_s8 / _wrapper_s8). Output channel oc = ic·ch_mult + m uses input
 * channel ic and filter column oc.
 *
 * DSP path for ch_mult == 1: four channels per pass, SXTAB16/SXTB16 split each word into
 * halfword pairs and SMLABB/SMLATT accumulate one channel each (10 instructions per tap
 * and four channels instead of about 6 per tap and channel). */
#include "tr_nn_support.h"

int32_t tr_depthwise_conv_s8_get_buffer_size(const tr_nn_dims *input_dims,
                                             const tr_nn_dims *filter_dims)
{
    (void)input_dims, (void)filter_dims;
    return 0;
}

static inline int8_t out_ch(int32_t acc, const tr_nn_per_channel_quant_params *q, int32_t oc,
                            const tr_nn_dw_conv_params *p)
{
    return tr_nn_clamp_s8(
        tr_nn_addw(tr_nn_requant(acc, q->multiplier[oc], q->shift[oc]), p->output_offset),
        p->activation.min, p->activation.max);
}

tr_nn_status tr_depthwise_conv_s8(const tr_nn_context *ctx, const tr_nn_dw_conv_params *dw_params,
                                  const tr_nn_per_channel_quant_params *quant_params,
                                  const tr_nn_dims *input_dims, const int8_t *input_data,
                                  const tr_nn_dims *filter_dims, const int8_t *filter_data,
                                  const tr_nn_dims *bias_dims, const int32_t *bias_data,
                                  const tr_nn_dims *output_dims, int8_t *output_data)
{
    (void)ctx, (void)bias_dims;
    const tr_nn_dw_conv_params *p = dw_params;
    const int32_t N = input_dims->n, H = input_dims->h, W = input_dims->w, C = input_dims->c;
    const int32_t CM = p->ch_mult, OC = output_dims->c;
    const int32_t KH = filter_dims->h, KW = filter_dims->w;
    const int32_t OH = output_dims->h, OW = output_dims->w;
    const int32_t sh = p->stride.h, sw = p->stride.w, ph = p->padding.h, pw = p->padding.w;
    const int32_t dh = p->dilation.h, dw = p->dilation.w;
    const int32_t off = p->input_offset;

    if (N <= 0 || H <= 0 || W <= 0 || C <= 0 || CM <= 0 || KH <= 0 || KW <= 0 || OH <= 0 ||
        OW <= 0 || OC != C * CM || filter_dims->c != OC || output_dims->n != N || sh <= 0 ||
        sw <= 0 || dh <= 0 || dw <= 0 || ph < 0 || pw < 0 || tr_nn_bad_offset_in(off) ||
        tr_nn_bad_offset_out(p->output_offset) || tr_nn_bad_act(&p->activation))
        return TR_NN_ARG_ERROR;
    for (int32_t oc = 0; oc < OC; oc++)
        if (quant_params->shift[oc] < -31 || quant_params->shift[oc] > 30)
            return TR_NN_ARG_ERROR;

#if TR_NN_DSP
    const uint32_t off2 = tr_nn_dup16(off);
#endif
    for (int32_t n = 0; n < N; n++) {
        const int8_t *in = input_data + (uint32_t)n * (uint32_t)(H * W * C);
        for (int32_t oy = 0; oy < OH; oy++) {
            const int32_t iy0 = oy * sh - ph;
            for (int32_t ox = 0; ox < OW; ox++) {
                const int32_t ix0 = ox * sw - pw;
                int32_t c = 0;
#if TR_NN_DSP
                if (CM == 1) {
                    for (; c + 4 <= C; c += 4) {
                        int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
                        if (bias_data) {
                            a0 = bias_data[c];
                            a1 = bias_data[c + 1];
                            a2 = bias_data[c + 2];
                            a3 = bias_data[c + 3];
                        }
                        for (int32_t ky = 0; ky < KH; ky++) {
                            const int32_t iy = iy0 + ky * dh;
                            if (iy < 0 || iy >= H)
                                continue;
                            for (int32_t kx = 0; kx < KW; kx++) {
                                const int32_t ix = ix0 + kx * dw;
                                if (ix < 0 || ix >= W)
                                    continue;
                                const uint32_t xv = tr_nn_read_s8x4(in + (iy * W + ix) * C + c);
                                const uint32_t wv =
                                    tr_nn_read_s8x4(filter_data + (ky * KW + kx) * OC + c);
                                const uint32_t x02 = tr_nn_sxtab16(off2, xv);
                                const uint32_t x13 = tr_nn_sxtab16_ror8(off2, xv);
                                const uint32_t w02 = tr_nn_sxtb16(wv);
                                const uint32_t w13 = tr_nn_sxtb16_ror8(wv);
                                a0 = tr_nn_smlabb(w02, x02, a0);
                                a2 = tr_nn_smlatt(w02, x02, a2);
                                a1 = tr_nn_smlabb(w13, x13, a1);
                                a3 = tr_nn_smlatt(w13, x13, a3);
                            }
                        }
                        *output_data++ = out_ch(a0, quant_params, c, p);
                        *output_data++ = out_ch(a1, quant_params, c + 1, p);
                        *output_data++ = out_ch(a2, quant_params, c + 2, p);
                        *output_data++ = out_ch(a3, quant_params, c + 3, p);
                    }
                }
#endif
                for (; c < C; c++) {
                    for (int32_t m = 0; m < CM; m++) {
                        const int32_t oc = c * CM + m;
                        uint32_t acc = bias_data ? (uint32_t)bias_data[oc] : 0u;
                        for (int32_t ky = 0; ky < KH; ky++) {
                            const int32_t iy = iy0 + ky * dh;
                            if (iy < 0 || iy >= H)
                                continue;
                            const int8_t *frow = filter_data + ky * KW * OC + oc;
                            const int8_t *irow = in + iy * W * C + c;
                            for (int32_t kx = 0; kx < KW; kx++) {
                                const int32_t ix = ix0 + kx * dw;
                                if (ix < 0 || ix >= W)
                                    continue;
                                acc += (uint32_t)((irow[ix * C] + off) * frow[kx * OC]);
                            }
                        }
                        *output_data++ = out_ch((int32_t)acc, quant_params, oc, p);
                    }
                }
            }
        }
    }
    return TR_NN_SUCCESS;
}
