/* The body shared by the pooling kernels (tr_avgpool_s8.c, tr_maxpool_s8.c): argument
 * checks and the window loops; the kernel supplies the reduction of one window.
 * Internal (tr_nn_support.h). */
#include "tr_nn_support.h"

/* 1 if some window along one axis would hold no input element. */
static int empty_window(int32_t in, int32_t out, int32_t k, int32_t stride, int32_t pad)
{
    return pad >= k || (out - 1) * stride - pad > in - 1;
}

tr_nn_status tr_nn_pool_s8(const tr_nn_pool_params *p, const tr_nn_dims *input_dims,
                           const int8_t *input_data, const tr_nn_dims *filter_dims,
                           const tr_nn_dims *output_dims, int8_t *output_data,
                           tr_nn_pool_reduce_fn reduce)
{
    const int32_t N = input_dims->n, H = input_dims->h, W = input_dims->w, C = input_dims->c;
    const int32_t KH = filter_dims->h, KW = filter_dims->w, OH = output_dims->h,
                  OW = output_dims->w;
    const int32_t sh = p->stride.h, sw = p->stride.w, ph = p->padding.h, pw = p->padding.w;
    if (N <= 0 || H <= 0 || W <= 0 || C <= 0 || KH <= 0 || KW <= 0 || OH <= 0 || OW <= 0 ||
        output_dims->c != C || sh <= 0 || sw <= 0 || ph < 0 || pw < 0 ||
        tr_nn_bad_act(&p->activation) || empty_window(H, OH, KH, sh, ph) ||
        empty_window(W, OW, KW, sw, pw))
        return TR_NN_ARG_ERROR;

    for (int32_t n = 0; n < N; n++) {
        const int8_t *in = input_data + (uint32_t)n * (uint32_t)(H * W * C);
        for (int32_t oy = 0; oy < OH; oy++) {
            const int32_t y0 = oy * sh - ph;
            const int32_t ya = y0 < 0 ? 0 : y0, yb = y0 + KH > H ? H : y0 + KH;
            for (int32_t ox = 0; ox < OW; ox++) {
                const int32_t x0 = ox * sw - pw;
                const int32_t xa = x0 < 0 ? 0 : x0, xb = x0 + KW > W ? W : x0 + KW;
                for (int32_t c = 0; c < C; c++)
                    *output_data++ = tr_nn_clamp_s8(reduce(in, W, C, c, ya, yb, xa, xb),
                                                    p->activation.min, p->activation.max);
            }
        }
    }
    return TR_NN_SUCCESS;
}
