/* lod_avx2.c - the parent-level build 8 parent cells at a time along x (compiled with
 * -mavx2 -mfma; reached only through lm_lod_avx2()): 16 child cells of each of the four
 * child rows are added in pairs with horizontal adds, then the rows in the order of
 * lod_pyramid.h invariant (2); one channel at a time over the whole level, as the scalar code.
 * Cells whose children reach past the child row's end go through the scalar rule. */
#include "lod_pyramid.h"

#if defined(__x86_64__)

#include <immintrin.h>

/* c[2i] + c[2i+1] for i < 8, in order. */
static inline __m256 pairs_ps(const float *c)
{
    __m256 h = _mm256_hadd_ps(_mm256_loadu_ps(c), _mm256_loadu_ps(c + 8));
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(h), 0xd8));
}

static inline __m256i pairs_epi32(const uint32_t *c)
{
    __m256i h = _mm256_hadd_epi32(_mm256_loadu_si256((const __m256i *)c),
                                  _mm256_loadu_si256((const __m256i *)(c + 8)));
    return _mm256_permute4x64_epi64(h, 0xd8);
}

static int avx2_build(const struct lm_lod_level *child, struct lm_lod_level *parent)
{
    const uint32_t *cd = child->dim, *pd = parent->dim;
    size_t cc = lm_lod_cells(child), pc = lm_lod_cells(parent);
    size_t rows = (size_t)pd[1] * pd[2];
    uint32_t full = cd[0] / 16; /* groups of 8 parents with all 16 children in the row */
    for (int ch = -1; ch < (int)LM_LOD_SUMS; ch++)
        for (size_t row = 0; row < rows; row++) {
            uint32_t y = (uint32_t)(row % pd[1]), z = (uint32_t)(row / pd[1]);
            int64_t base[4]; /* first cell of child row (j, k), -1 past the edge */
            for (int r = 0; r < 4; r++) {
                uint32_t cy = 2 * y + (uint32_t)(r & 1), cz = 2 * z + (uint32_t)(r >> 1);
                base[r] = cy < cd[1] && cz < cd[2]
                    ? (int64_t)(((size_t)cz * cd[1] + cy) * cd[0])
                    : -1;
            }
            for (uint32_t g = 0; g < full; g++) {
                size_t at = row * pd[0] + 8 * (size_t)g, off = 16 * (size_t)g;
                if (ch < 0) {
                    __m256i n[4];
                    for (int r = 0; r < 4; r++)
                        n[r] = base[r] < 0 ? _mm256_setzero_si256()
                                           : pairs_epi32(child->count + base[r] + off);
                    _mm256_storeu_si256(
                        (__m256i *)(parent->count + at),
                        _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(n[0], n[1]), n[2]),
                                         n[3]));
                    continue;
                }
                const float *s = child->sums + (size_t)ch * cc;
                __m256 v[4];
                for (int r = 0; r < 4; r++)
                    v[r] = base[r] < 0 ? _mm256_setzero_ps() : pairs_ps(s + base[r] + off);
                _mm256_storeu_ps(
                    parent->sums + (size_t)ch * pc + at,
                    _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(v[0], v[1]), v[2]), v[3]));
            }
            if (8 * full < pd[0])
                lm__lod_row(child, parent, ch, row, 8 * full);
        }
    return 0;
}

const struct lm_lod_table lm__lod_avx2_table = {
    .name = "avx2",
    .build = avx2_build,
};

#endif /* __x86_64__ */
