/* octdir.c - octahedral encoding of unit directions in 2 x 16 bits (about 0.003 degree
 * worst-case error). The unit sphere is projected onto the octahedron |x|+|y|+|z| = 1
 * and the lower half folded over the diagonals into the square [-1,1]^2. */
#include <math.h>

#include "lumadb.h"

static float sign_nonneg(float v) { return v >= 0.0f ? 1.0f : -1.0f; }

static uint16_t to_u16(float v) /* [-1,1] -> [0,65535] */
{
    float q = (v * 0.5f + 0.5f) * 65535.0f + 0.5f;
    if (q < 0.0f)
        q = 0.0f;
    if (q > 65535.0f)
        q = 65535.0f;
    return (uint16_t)q;
}

void lm_dir_encode(const float d[3], uint16_t out[2])
{
    float l1 = fabsf(d[0]) + fabsf(d[1]) + fabsf(d[2]);
    float x = l1 > 0.0f ? d[0] / l1 : 0.0f, y = l1 > 0.0f ? d[1] / l1 : 0.0f;
    if (l1 > 0.0f && d[2] < 0.0f) {
        float fx = (1.0f - fabsf(y)) * sign_nonneg(x);
        float fy = (1.0f - fabsf(x)) * sign_nonneg(y);
        x = fx;
        y = fy;
    }
    out[0] = to_u16(x);
    out[1] = to_u16(y);
}

void lm_dir_decode(const uint16_t in[2], float d[3])
{
    float x = (float)in[0] * (2.0f / 65535.0f) - 1.0f;
    float y = (float)in[1] * (2.0f / 65535.0f) - 1.0f;
    float z = 1.0f - fabsf(x) - fabsf(y);
    if (z < 0.0f) {
        float fx = (1.0f - fabsf(y)) * sign_nonneg(x);
        float fy = (1.0f - fabsf(x)) * sign_nonneg(y);
        x = fx;
        y = fy;
    }
    float l = sqrtf(x * x + y * y + z * z);
    d[0] = x / l;
    d[1] = y / l;
    d[2] = z / l;
}
