/* knn_avx2.c - kNN 8 points at a time per query (compiled with -mavx2 -mfma; reached
 * only through lm_knn_avx2()): distances with separate multiplies and adds (knn.h
 * invariant (1)), a compare against the list's bound, and only the lanes that pass go
 * through the scalar list, in index order. */
#include "knn.h"

#if defined(__x86_64__)

#include <immintrin.h>

static int avx2_run(const struct lm_knn_input *in, uint32_t *idx, float *d2, uint32_t *found)
{
    size_t full = in->n & ~(size_t)7;
    for (size_t q = 0; q < in->m; q++) {
        struct lm__knn_best b = {.k = in->k};
        const __m256 qx = _mm256_set1_ps(in->qx[q]), qy = _mm256_set1_ps(in->qy[q]),
                     qz = _mm256_set1_ps(in->qz[q]);
        float bound = lm__knn_bound(&b, in->max_d2);
        for (size_t i = 0; i < full; i += 8) {
            __m256 dx = _mm256_sub_ps(_mm256_loadu_ps(in->x + i), qx);
            __m256 dy = _mm256_sub_ps(_mm256_loadu_ps(in->y + i), qy);
            __m256 dz = _mm256_sub_ps(_mm256_loadu_ps(in->z + i), qz);
            __m256 d = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(dx, dx), _mm256_mul_ps(dy, dy)),
                                     _mm256_mul_ps(dz, dz));
            /* d <= bound keeps every point the list would take (it is exact later) */
            unsigned m = (unsigned)_mm256_movemask_ps(
                _mm256_cmp_ps(d, _mm256_set1_ps(bound), _CMP_LE_OQ));
            if (!m)
                continue;
            float dv[8];
            _mm256_storeu_ps(dv, d);
            for (; m; m &= m - 1) {
                int l = __builtin_ctz(m);
                lm__knn_offer(&b, dv[l], (uint32_t)(i + (size_t)l), in->max_d2);
            }
            bound = lm__knn_bound(&b, in->max_d2);
        }
        for (size_t i = full; i < in->n; i++) {
            float dx = in->x[i] - in->qx[q], dy = in->y[i] - in->qy[q], dz = in->z[i] - in->qz[q];
            lm__knn_offer(&b, (dx * dx + dy * dy) + dz * dz, (uint32_t)i, in->max_d2);
        }
        lm__knn_store(&b, idx + q * in->k, d2 + q * in->k, &found[q]);
    }
    return 0;
}

const struct lm_knn_table lm__knn_avx2_table = {
    .name = "avx2",
    .run = avx2_run,
};

#endif /* __x86_64__ */
