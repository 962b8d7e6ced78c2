/* Dequantization int8 -> float32: out = (float)(q - zero_point) · scale. The difference
 * is an exact small integer, so the only rounding is the single float32 multiply (the
 * golden model does exactly this: rig/golden/int8.py). */
#include "tr_nn_support.h"

tr_nn_status tr_dequantize_s8_f32(const int8_t *input, float *output, int32_t n,
                                  int32_t zero_point, float scale)
{
    if (n < 0 || zero_point < -128 || zero_point > 127)
        return TR_NN_ARG_ERROR;
    for (int32_t i = 0; i < n; i++)
        output[i] = (float)(input[i] - zero_point) * scale;
    return TR_NN_SUCCESS;
}
