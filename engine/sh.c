/* sh.c - evaluation of stored L1 spherical-harmonic sums. */
#include "sh.h"

#include <math.h>

float lm_sh_eval(const float s[4], uint32_t count, const float d[3])
{
    if (!count)
        return 0.0f;
    float y[4];
    lm_sh_basis(d, y);
    const float four_pi = 12.566370614359172f;
    float v = s[0] * y[0] + (s[1] * y[1] + s[2] * y[2] + s[3] * y[3]) * (1.0f / 3.0f);
    v *= four_pi / (float)count;
    return v > 0.0f ? v : 0.0f; /* rounding can dip below zero by an ulp */
}
