/* Requantization int32 -> int8 (TFLite MultiplyByQuantizedMultiplier; CMSIS-NN
 * arm_nn_requantize): doubling high multiply with rounding (saturating for
 * INT32_MIN·INT32_MIN), then a rounding right shift; a positive shift is a left shift
 * applied before the multiply. The kernels use the inline forms of tr_nn_support.h; these
 * are the same functions with external linkage (tests, other callers). */
#include "tr_nn_support.h"

int32_t tr_nn_doubling_high_mult(int32_t a, int32_t b) { return tr_nn_dhm(a, b); }

int32_t tr_nn_requant_general(int32_t x, int32_t mult, int32_t shift)
{
    return tr_nn_requant_c(x, mult, shift);
}

int32_t tr_nn_divide_by_power_of_two(int32_t x, int32_t exponent)
{
    return tr_nn_rshift_round(x, exponent < 0 ? 0 : exponent > 31 ? 31 : exponent);
}

int32_t tr_nn_requantize(int32_t x, int32_t multiplier, int32_t shift)
{
    shift = shift < -31 ? -31 : shift > 30 ? 30 : shift;
    return tr_nn_requant(x, multiplier, shift);
}

tr_nn_status tr_requantize_s32_s8(const int32_t *input, int8_t *output, int32_t n,
                                  int32_t channels,
                                  const tr_nn_per_channel_quant_params *quant_params,
                                  int32_t output_offset, const tr_nn_activation *activation)
{
    if (n < 0 || channels <= 0 || (n % channels) != 0 || tr_nn_bad_offset_out(output_offset) ||
        tr_nn_bad_act(activation))
        return TR_NN_ARG_ERROR;
    for (int32_t c = 0; c < channels; c++)
        if (quant_params->shift[c] < -31 || quant_params->shift[c] > 30)
            return TR_NN_ARG_ERROR;
    for (int32_t i = 0; i < n;) {
        for (int32_t c = 0; c < channels; c++, i++)
            output[i] = tr_nn_clamp_s8(
                tr_nn_addw(tr_nn_requant(input[i], quant_params->multiplier[c],
                                         quant_params->shift[c]),
                           output_offset),
                activation->min, activation->max);
    }
    return TR_NN_SUCCESS;
}
