/* cull_avx2.c - node classification 8 nodes at a time (compiled with -mavx2 -mfma;
 * reached only through lm_cull_avx2()). Separate multiplies and adds, correctly
 * rounded sqrt and divide: the bits of cull_scalar.c (cull.h invariant (1)). */
#include "cull.h"

#if defined(__x86_64__)

#include <immintrin.h>
#include <math.h>

/* The corner coordinate a plane coefficient looks at: max when it is >= 0. */
static inline __m256 corner(float coef, __m256 lo, __m256 hi) { return coef >= 0.0f ? hi : lo; }

/* max(lo - e, e - hi, 0) along one axis. */
static inline __m256 gap(__m256 lo, __m256 hi, __m256 e)
{
    return _mm256_max_ps(_mm256_max_ps(_mm256_sub_ps(lo, e), _mm256_sub_ps(e, hi)),
                         _mm256_setzero_ps());
}

static int avx2_classify(const struct lm_cull_input *in, uint8_t *visible, float *sse,
                         float *sse_parent)
{
    const __m256 zero = _mm256_setzero_ps(), inf = _mm256_set1_ps(INFINITY);
    const __m256 ex = _mm256_set1_ps(in->eye[0]), ey = _mm256_set1_ps(in->eye[1]),
                 ez = _mm256_set1_ps(in->eye[2]), k = _mm256_set1_ps(in->k),
                 e0 = _mm256_set1_ps(in->error0);
    size_t i = 0;
    for (; i + 8 <= in->n; i += 8) {
        __m256 lx = _mm256_loadu_ps(in->min_x + i), hx = _mm256_loadu_ps(in->max_x + i);
        __m256 ly = _mm256_loadu_ps(in->min_y + i), hy = _mm256_loadu_ps(in->max_y + i);
        __m256 lz = _mm256_loadu_ps(in->min_z + i), hz = _mm256_loadu_ps(in->max_z + i);
        __m256 vis = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
        for (int p = 0; p < 6; p++) {
            const float *pl = in->planes[p];
            __m256 s = _mm256_add_ps(
                _mm256_mul_ps(_mm256_set1_ps(pl[0]), corner(pl[0], lx, hx)),
                _mm256_mul_ps(_mm256_set1_ps(pl[1]), corner(pl[1], ly, hy)));
            s = _mm256_add_ps(s, _mm256_mul_ps(_mm256_set1_ps(pl[2]), corner(pl[2], lz, hz)));
            s = _mm256_add_ps(s, _mm256_set1_ps(pl[3]));
            vis = _mm256_and_ps(vis, _mm256_cmp_ps(s, zero, _CMP_GE_OQ));
        }
        __m256 dx = gap(lx, hx, ex), dy = gap(ly, hy, ey), dz = gap(lz, hz, ez);
        __m256 d2 = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(dx, dx), _mm256_mul_ps(dy, dy)),
                                  _mm256_mul_ps(dz, dz));
        /* e = error0 * 2^level (exact: level <= 64), 0 at level 0 */
        __m256i lvl = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(in->level + i)));
        __m256 pow2 = _mm256_castsi256_ps(
            _mm256_slli_epi32(_mm256_add_epi32(lvl, _mm256_set1_epi32(127)), 23));
        __m256 leaf = _mm256_castsi256_ps(_mm256_cmpeq_epi32(lvl, _mm256_setzero_si256()));
        __m256 e = _mm256_andnot_ps(leaf, _mm256_mul_ps(e0, pow2));
        __m256 s = _mm256_div_ps(_mm256_mul_ps(e, k), _mm256_sqrt_ps(d2));
        __m256 near = _mm256_and_ps(_mm256_cmp_ps(e, zero, _CMP_GT_OQ), inf);
        s = _mm256_blendv_ps(near, s, _mm256_cmp_ps(d2, zero, _CMP_GT_OQ));
        _mm256_storeu_ps(sse + i, s);
        unsigned bits = (unsigned)_mm256_movemask_ps(vis);
        for (int j = 0; j < 8; j++)
            visible[i + (size_t)j] = (uint8_t)((bits >> j) & 1);
    }
    for (; i < in->n; i++)
        lm__cull_node(in, i, &visible[i], &sse[i]);
    lm__cull_parents(in, sse, sse_parent);
    return 0;
}

const struct lm_cull_table lm__cull_avx2_table = {
    .name = "avx2",
    .classify = avx2_classify,
};

#endif /* __x86_64__ */
