/* Fully connected, int8, per-tensor requantization (CMSIS-NN: arm_fully_connected_s8).
 * Checks and batch loop: tr_nn_fc_s8 (tr_fully_connected_common_s8.c). */
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
    return tr_nn_fc_s8(ctx, fc_params, &quant_params->multiplier, &quant_params->shift, 0,
                       input_dims, input_data, filter_dims, filter_data, bias_data, output_dims,
                       output_data);
}
