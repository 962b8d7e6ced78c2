/* Velocity of a neuron across SELECTs (docs/training.md). NEq takes the cosine per sample
 * of a neuron's feature map; a dense neuron's per-sample output is a scalar, so - our
 * choice, documented in training.md - the cosine is taken across the V-sample subset:
 *   phi^t = <y^t, y^{t-1}> / (sqrtf(sum (y^t)^2) * sqrtf(sum (y^{t-1})^2))
 *           1 if both outputs are all zeros (a neuron that stays silent is at equilibrium),
 *           0 if only the denominator is 0
 *   v^t   = (phi^t - phi^{t-1}) - mu * v^{t-1};   t = 0: phi = 1, v = 0 (no y^{-1}).
 * phi starts at 1 as in NEq's code (its buffer of 1 - cos starts at 0), so a stable neuron's
 * first velocity is ~0, not ~1. */
#include "strategy_velocity.h"

#include <math.h>
#include <string.h>

static uint16_t vel_count; /* V of SELECT t = 0: the subset is fixed for the run */

/* Scratch layout: phi [nn] | v [nn] | dot, syy, spp [nn each]. */
static float *vel_phi(const mlp_t *m) { return m->sel; }
static float *vel_v(const mlp_t *m) { return m->sel + sc_n_neurons(m); }

float *vel_work(mlp_t *m, unsigned k) { return m->sel + (2u + k) * sc_n_neurons(m); }

void vel_reset(mlp_t *m)
{
    const uint16_t nn = sc_n_neurons(m);
    float *phi = vel_phi(m), *v = vel_v(m);
    for (uint16_t c = 0; c < nn; c++) {
        phi[c] = 1.0f; /* the previous similarity starts at 1 */
        v[c] = 0.0f;
    }
    vel_count = 0;
}

const float *vel_velocity(const mlp_t *m) { return vel_v(m); }

tr_status_t vel_update(mlp_t *m, const dataset_t *ds, uint32_t start, uint16_t count, float mu,
                       tr_err_t *err)
{
    const uint16_t nn = sc_n_neurons(m);
    /* t counts from the strategy state, which every reset path zeroes (also RESET, which
     * never calls the strategy's reset hook). */
    const int first = m->ss.n_select == 0;
    if (count > TR_MAX_VAL)
        return tr_fail(err, TR_E_BAD_ARG, 4, "val_count > max validation size (TR_MAX_VAL)");
    if ((uint32_t)count * nn > TR_VEL_CAPACITY)
        return tr_fail(err, TR_E_NO_SPACE, 4, "val_count x neurons > velocity capacity");
    if (!first && count != vel_count)
        return tr_fail(err, TR_E_BAD_ARG, 4, "val_count differs from the first SELECT");
    /* y^{t-1}, neuron-major: prev[c * V + n], behind the layout (same place every SELECT) */
    float *const vel_prev = mlp_arena_extra(m, (uint32_t)count * nn, 4, err);
    if (!vel_prev)
        return TR_E_NO_SPACE;

    /* Three V-long sums per neuron, accumulated across batch chunks in sample order. */
    float *dot = vel_work(m, 0), *syy = vel_work(m, 1), *spp = vel_work(m, 2);
    float *const phi_prev = vel_phi(m), *const vel = vel_v(m);
    if (!first) {
        memset(dot, 0, nn * sizeof(float));
        memset(syy, 0, nn * sizeof(float));
        memset(spp, 0, nn * sizeof(float));
    }
    const uint16_t R = mlp_rows(m);
    for (uint32_t c0 = 0; c0 < count; c0 += R) {
        const uint16_t B = (uint16_t)((count - c0) < R ? (count - c0) : R);
        mlp_forward_range(m, ds, start + c0, B);
        uint16_t base = 0;
        for (uint8_t l = 0; l < m->n_layers; l++) {
            const uint16_t N = m->dims[l + 1];
            const float *y = mlp_output(m, l);
            for (uint16_t n = 0; n < B; n++)
                for (uint16_t j = 0; j < N; j++) {
                    const uint16_t c = (uint16_t)(base + j);
                    const float yt = y[(size_t)n * N + j];
                    float *p = &vel_prev[(size_t)c * count + c0 + n];
                    if (!first) {
                        const float yp = *p;
                        dot[c] += yt * yp;
                        syy[c] += yt * yt;
                        spp[c] += yp * yp;
                    }
                    *p = yt; /* sample n is done with y^{t-1}: keep y^t in its place */
                }
            base = (uint16_t)(base + N);
        }
    }
    if (first) /* t = 0 starts the recursion, whatever an earlier run left here */
        for (uint16_t c = 0; c < nn; c++) {
            phi_prev[c] = 1.0f;
            vel[c] = 0.0f;
        }
    else
        for (uint16_t c = 0; c < nn; c++) {
            const float den = sqrtf(syy[c]) * sqrtf(spp[c]);
            float phi = den > 0.0f ? dot[c] / den : 0.0f;
            if (syy[c] == 0.0f && spp[c] == 0.0f)
                phi = 1.0f; /* cos(0, 0): silent before and now */
            vel[c] = (phi - phi_prev[c]) - mu * vel[c];
            phi_prev[c] = phi;
        }
    vel_count = count;
    return TR_OK;
}
