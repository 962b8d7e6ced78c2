/* Max pooling, int8 (CMSIS-NN: arm_max_pool_s8). Maximum of the window's valid inputs,
 * clamped to the activation range. Input and output share one quantization.
 * Checks and window loops: tr_nn_pool_s8 (tr_pool_common_s8.c). */
#include "tr_nn_support.h"

int32_t tr_maxpool_s8_get_buffer_size(int32_t dim_dst_width, int32_t ch_src)
{
    (void)dim_dst_width, (void)ch_src;
    return 0;
}

static int32_t window_max(const int8_t *in, int32_t w, int32_t n_ch, int32_t c, int32_t ya,
                          int32_t yb, int32_t xa, int32_t xb)
{
    int32_t mx = -128;
    for (int32_t y = ya; y < yb; y++)
        for (int32_t x = xa; x < xb; x++) {
            const int32_t v = in[(y * w + x) * n_ch + c];
            mx = v > mx ? v : mx;
        }
    return mx;
}

tr_nn_status tr_maxpool_s8(const tr_nn_context *ctx, const tr_nn_pool_params *pool_params,
                           const tr_nn_dims *input_dims, const int8_t *input_data,
                           const tr_nn_dims *filter_dims, const tr_nn_dims *output_dims,
                           int8_t *output_data)
{
    (void)ctx;
    return tr_nn_pool_s8(pool_params, input_dims, input_data, filter_dims, output_dims,
                         output_data, window_max);
}
