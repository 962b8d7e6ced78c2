/* Per-neuron output velocity over a fixed validation subset (docs/training.md, "Velocity"),
 * shared by neq and velocity-budget. State between SELECTs: the previous outputs y^{t-1}
 * (V floats per neuron), phi^{t-1} and v^{t-1} (one float each per neuron). */
#ifndef TR_STRATEGY_VELOCITY_H
#define TR_STRATEGY_VELOCITY_H

#include <stdint.h>

#include "strategy_common.h"

/* Largest validation subset SELECT accepts for the velocity strategies (BAD_ARG beyond). */
#ifndef TR_MAX_VAL
#define TR_MAX_VAL 128u
#endif
/* Largest V * (neurons of the model) a SELECT accepts (NO_SPACE beyond). The history itself
 * lives in the training arena behind the layout (mlp_arena_extra: NO_SPACE "arena: needs
 * N B" when the arena is the tighter limit). Default: a quarter of the parameter capacity
 * (mps2-an386: 32768 floats, e.g. V = 64 for up to 512 neurons). Override in
 * board_config.h. */
#ifndef TR_VEL_CAPACITY
#define TR_VEL_CAPACITY (TR_PARAM_CAPACITY / 4u)
#endif

/* Per-neuron state in the strategy's selection scratch (mlp_t.sel, laid out by the memory
 * plan): phi, v and three work sums (nn floats each). y^{t-1} (V floats per neuron) is
 * reserved behind the layout at SELECT t = 0, when V is known (mlp_arena_extra). */
#define VEL_SEL_FLOATS(nn) (5u * (uint32_t)(nn))

/* Forget everything (TRAIN_CONFIG / MODEL_INIT): phi = 1, v = 0, no y^{-1}. */
void vel_reset(mlp_t *m);

/* Work sum k (0..2) of the scratch: free for the caller outside vel_update. */
float *vel_work(mlp_t *m, unsigned k);

/* SELECT t = m->ss.n_select: forward the subset [start, start+count), update phi and v of
 * every neuron (t >= 1) and keep the outputs as y^{t-1}. mu = sparams[mu_index]. All checks
 * come first: on error nothing changed. Does not touch masks or n_select. */
tr_status_t vel_update(mlp_t *m, const dataset_t *ds, uint32_t start, uint16_t count, float mu,
                       tr_err_t *err);

/* v of every neuron, flat ids (layer ascending, index ascending). */
const float *vel_velocity(const mlp_t *m);

#endif
