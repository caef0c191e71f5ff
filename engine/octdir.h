/* octdir.h - octahedral direction encoding (2 x 16 bits), inline for batch loops.
 * Owns: nothing; pure inline functions behind lm_dir_encode / lm_dir_decode.
 * Invariants: (1) lm__oct_encode/lm__oct_decode compute exactly what lm_dir_encode/
 *   lm_dir_decode return (they are the same code), so a row encoded in a batch loop
 *   decodes bit-identically everywhere. (2) Branch-free selects only, so loops over
 *   many rows vectorise.
 * Threading: pure. Called by: octdir.c, chunk.c, field.c. */
#ifndef LM_OCTDIR_H
#define LM_OCTDIR_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

static inline float lm__oct_sign(float v) { return v >= 0.0f ? 1.0f : -1.0f; }

static inline uint16_t lm__oct_to_u16(float v) /* [-1,1] -> [0,65535] */
{
    float q = (v * 0.5f + 0.5f) * 65535.0f + 0.5f;
    q = q < 0.0f ? 0.0f : q;
    q = q > 65535.0f ? 65535.0f : q;
    return (uint16_t)q;
}

/* The unit sphere is projected onto the octahedron |x|+|y|+|z| = 1 and the lower half
 * folded over the diagonals into the square [-1,1]^2. */
static inline void lm__oct_encode(const float d[3], uint16_t out[2])
{
    float l1 = fabsf(d[0]) + fabsf(d[1]) + fabsf(d[2]);
    float x = l1 > 0.0f ? d[0] / l1 : 0.0f, y = l1 > 0.0f ? d[1] / l1 : 0.0f;
    float fx = (1.0f - fabsf(y)) * lm__oct_sign(x);
    float fy = (1.0f - fabsf(x)) * lm__oct_sign(y);
    bool fold = l1 > 0.0f && d[2] < 0.0f;
    out[0] = lm__oct_to_u16(fold ? fx : x);
    out[1] = lm__oct_to_u16(fold ? fy : y);
}

static inline void lm__oct_decode(const uint16_t in[2], float d[3])
{
    float x = (float)in[0] * (2.0f / 65535.0f) - 1.0f;
    float y = (float)in[1] * (2.0f / 65535.0f) - 1.0f;
    float z = 1.0f - fabsf(x) - fabsf(y);
    float fx = (1.0f - fabsf(y)) * lm__oct_sign(x);
    float fy = (1.0f - fabsf(x)) * lm__oct_sign(y);
    x = z < 0.0f ? fx : x;
    y = z < 0.0f ? fy : y;
    float l = sqrtf(x * x + y * y + z * z);
    d[0] = x / l;
    d[1] = y / l;
    d[2] = z / l;
}

#endif
