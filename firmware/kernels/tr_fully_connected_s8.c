/* Fully connected, int8, per-tensor requantization (CMSIS-NN: arm_fully_connected_s8). */
#include "tr_nn_support.h"

int32_t tr_fully_connected_s8_get_buffer_size(const tr_nn_dims *filter_dims)
{
    return tr_nn_vec_mat_ext_bytes(filter_dims->n);
}

tr_nn_status tr_fully_connected_s8(const tr_nn_context *ctx, const tr_nn_fc_params *fc_params,
                                   const tr_nn_per_tensor_quant_params *quant_params,
                                   const tr_nn_dims *input_dims, const int8_t *input_data,
                                   const tr_nn_dims *filter_dims, const int8_t *filter_data,
                                   const tr_nn_dims *bias_dims, const int32_t *bias_data,
                                   const tr_nn_dims *output_dims, int8_t *output_data)
{
    (void)bias_dims;
    const int32_t cols = filter_dims->n;
    const int32_t rows = output_dims->c;
    const int32_t batches = input_dims->n;
    if (cols <= 0 || rows <= 0 || batches <= 0 || filter_dims->c != rows ||
        fc_params->filter_offset != 0 || tr_nn_bad_offset_in(fc_params->input_offset) ||
        tr_nn_bad_offset_out(fc_params->output_offset) || tr_nn_bad_act(&fc_params->activation) ||
        quant_params->shift < -31 || quant_params->shift > 30)
        return TR_NN_ARG_ERROR;
    if (!tr_nn_ctx_ok(ctx, tr_nn_vec_mat_ext_bytes(cols)))
        return TR_NN_ARG_ERROR;
    uint32_t *ext = ctx ? (uint32_t *)ctx->buf : NULL;
    for (int32_t b = 0; b < batches; b++) {
        tr_nn_vec_mat_mult_t_s8(input_data, filter_data, bias_data, output_data,
                                fc_params->input_offset, fc_params->output_offset,
                                &quant_params->multiplier, &quant_params->shift, 0, cols, rows,
                                fc_params->activation.min, fc_params->activation.max, ext);
        input_data += cols;
        output_data += rows;
    }
    return TR_NN_SUCCESS;
}
