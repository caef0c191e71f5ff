/* sh.h - L1 spherical harmonics for directional radiance.
 * Owns: nothing; pure functions.
 * Invariants: (1) coefficient order is (Y00, Y1-1, Y10, Y11) = (c, c1*y, c1*z, c1*x)
 *   with c = 1/(2 sqrt(pi)), c1 = sqrt(3)/(2 sqrt(pi)).
 *   (2) Voxels store sums s_k = sum_i f_i Y_k(w_i) over their samples; the radiance
 *   toward d is L(d) = (4 pi / N) (s_0 Y_0(d) + 1/3 sum_{k>0} s_k Y_k(d))
 *   = mean(f) + mean(f w).d, which is never negative for f >= 0.
 * Threading: pure. Called by: chunk.c, query.c, render/. */
#ifndef LM_SH_H
#define LM_SH_H

#include <stdint.h>

#define LM_SH_C0 0.28209479177387814f /* 1 / (2 sqrt(pi)) */
#define LM_SH_C1 0.4886025119029199f  /* sqrt(3) / (2 sqrt(pi)) */

/* Basis values for unit direction d. */
static inline void lm_sh_basis(const float d[3], float y[4])
{
    y[0] = LM_SH_C0;
    y[1] = LM_SH_C1 * d[1];
    y[2] = LM_SH_C1 * d[2];
    y[3] = LM_SH_C1 * d[0];
}

/* Radiance toward unit d of one channel from coefficient sums of `count` samples
 * (invariant 2). Returns 0 for count 0. */
float lm_sh_eval(const float sums[4], uint32_t count, const float d[3]);

#endif
