/* `full`: dense backprop, the reference. Every row and bias selected, every layer
 * visited, nothing skipped. */
#include "strategy.h"

static void full_reset(mlp_t *m) { mlp_set_all_masks(m, 1); }

const strategy_ops_t strategy_full = {
    .id = TR_STRATEGY_FULL,
    .name = "full",
    .n_sparams = 0,
    .defaults = 0,
    .masks_on_delta = 0,
    .check = 0,
    .reset = full_reset,
    .select = 0,
    .skip = 0,
    .layer_select = 0,
};
