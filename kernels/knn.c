/* knn.c - argument checks, the shared result list, and the choice between the kNN
 * implementations. */
#include "knn.h"

#include <math.h>

#include "cpu_features.h"
#include "device.h"
#include "lumadb.h"

const struct lm_knn_table *lm_knn_scalar(void) { return &lm__knn_scalar_table; }

const struct lm_knn_table *lm_knn_avx2(void)
{
#if defined(__x86_64__)
    if (lm_cpu_has_avx2())
        return &lm__knn_avx2_table;
#endif
    return NULL;
}

const struct lm_knn_table *lm_knn_best(void)
{
    const struct lm_knn_table *t = lm_knn_avx2();
    return t ? t : lm_knn_scalar();
}

void lm__knn_offer(struct lm__knn_best *b, float d2, uint32_t i, float max_d2)
{
    bool full = b->n == b->k;
    if (!(d2 <= max_d2) || (full && !(d2 < b->d2[b->k - 1])))
        return;
    uint32_t j = full ? b->k - 1 : b->n++;
    for (; j > 0 && b->d2[j - 1] > d2; j--) { /* equal d2: the earlier (lower) index stays first */
        b->d2[j] = b->d2[j - 1];
        b->idx[j] = b->idx[j - 1];
    }
    b->d2[j] = d2;
    b->idx[j] = i;
}

void lm__knn_store(const struct lm__knn_best *b, uint32_t *idx, float *d2, uint32_t *found)
{
    for (uint32_t j = 0; j < b->k; j++) {
        idx[j] = j < b->n ? b->idx[j] : UINT32_MAX;
        d2[j] = j < b->n ? b->d2[j] : INFINITY;
    }
    *found = b->n;
}

int lm_knn_run(const struct lm_knn_table *t, const struct lm_knn_input *in, uint32_t *idx,
               float *d2, uint32_t *found)
{
    if (!t || !in || ((!idx || !d2 || !found) && in->m) || !in->k || in->k > LM_KNN_MAX_K ||
        !(in->max_d2 >= 0) || (in->n && (!in->x || !in->y || !in->z)) ||
        (in->m && (!in->qx || !in->qy || !in->qz)))
        return LM_EBADARG;
    if (in->n >= UINT32_MAX)
        return LM_ELIMIT;
    if (in->m && t->run(in, idx, d2, found)) { /* the device could not run it */
        lm_knn_best()->run(in, idx, d2, found);
        lm_device_trace(lm_knn_best()->name);
    }
    return 0;
}
