/* knn_scalar.c - the reference kNN: each query against every point in index order
 * (knn.h invariants (1), (2)). */
#include "knn.h"

static int scalar_run(const struct lm_knn_input *in, uint32_t *idx, float *d2,
                      uint32_t *found)
{
    for (size_t q = 0; q < in->m; q++) {
        struct lm__knn_best b = {.k = in->k};
        float qx = in->qx[q], qy = in->qy[q], qz = in->qz[q];
        for (size_t i = 0; i < in->n; i++) {
            float dx = in->x[i] - qx, dy = in->y[i] - qy, dz = in->z[i] - qz;
            lm__knn_offer(&b, (dx * dx + dy * dy) + dz * dz, (uint32_t)i, in->max_d2);
        }
        lm__knn_store(&b, idx + q * in->k, d2 + q * in->k, &found[q]);
    }
    return 0;
}

const struct lm_knn_table lm__knn_scalar_table = {
    .name = "scalar",
    .run = scalar_run,
};
