/* The body shared by the two fully-connected kernels (tr_fully_connected_s8.c: one
 * multiplier/shift, tr_fully_connected_per_channel_s8.c: one per output): argument
 * checks, then the matrix-vector core once per batch. Internal (tr_nn_support.h). */
#include "tr_nn_support.h"

tr_nn_status tr_nn_fc_s8(const tr_nn_context *ctx, const tr_nn_fc_params *fc_params,
                         const int32_t *mult, const int32_t *shift, int32_t quant_stride,
                         const tr_nn_dims *input_dims, const int8_t *input_data,
                         const tr_nn_dims *filter_dims, const int8_t *filter_data,
                         const int32_t *bias_data, const tr_nn_dims *output_dims,
                         int8_t *output_data)
{
    const int32_t cols = filter_dims->n;
    const int32_t rows = output_dims->c;
    const int32_t batches = input_dims->n;
    if (cols <= 0 || rows <= 0 || batches <= 0 || filter_dims->c != rows ||
        fc_params->filter_offset != 0 || tr_nn_bad_offset_in(fc_params->input_offset) ||
        tr_nn_bad_offset_out(fc_params->output_offset) || tr_nn_bad_act(&fc_params->activation))
        return TR_NN_ARG_ERROR;
    if (!tr_nn_ctx_ok(ctx, tr_nn_vec_mat_ext_bytes(cols)))
        return TR_NN_ARG_ERROR;
    const int32_t n_shift = quant_stride ? rows : 1;
    for (int32_t r = 0; r < n_shift; r++)
        if (shift[r] < -31 || shift[r] > 30)
            return TR_NN_ARG_ERROR;
    uint32_t *ext = ctx ? (uint32_t *)ctx->buf : NULL;
    for (int32_t b = 0; b < batches; b++) {
        tr_nn_vec_mat_mult_t_s8(input_data, filter_data, bias_data, output_data,
                                fc_params->input_offset, fc_params->output_offset, mult, shift,
                                quant_stride, cols, rows, fc_params->activation.min,
                                fc_params->activation.max, ext);
        input_data += cols;
        output_data += rows;
    }
    return TR_NN_SUCCESS;
}
