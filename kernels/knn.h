/* knn.h - batched brute-force k nearest neighbours: many query points against the
 * points of a small chunk (where a tree does not pay), k small.
 *
 * Owns: nothing; inputs and outputs are the caller's arrays.
 * Invariants:
 *  (1) Distance, in f32 with each operation rounded separately: d2 = (dx*dx + dy*dy) +
 *      dz*dz with d = point - query (as lm_kdtree does).
 *  (2) The result of a query is its min(k, m) nearest points with d2 <= max_d2 (m of
 *      them qualify), ordered by (d2, point index) ascending: equal distances go to the
 *      lower index. Unused slots hold index UINT32_MAX and d2 +inf. Every
 *      implementation gives the same indices and distances.
 *  (3) Points and queries are finite (a NaN distance never qualifies).
 * Threading: tables are immutable; any number of calls may run at once.
 * Called by: query paths over small chunks, tests, bench_kernels.
 */
#ifndef LM_KNN_H
#define LM_KNN_H

#include <stddef.h>
#include <stdint.h>

#define LM_KNN_MAX_K 32u

struct lm_knn_input {
    size_t n;                   /* points */
    const float *x, *y, *z;
    size_t m;                   /* queries */
    const float *qx, *qy, *qz;
    uint32_t k;                 /* 1..LM_KNN_MAX_K */
    float max_d2;               /* +inf: no limit */
    /* Names the points' content for a resident device copy (cl_runtime.h invariant
     * (5)); id 0: copied per call. */
    uint64_t id, version;
};

/* One implementation. Use lm_knn_run, which checks arguments. */
struct lm_knn_table {
    const char *name; /* "scalar", "avx2", "opencl" */
    /* For query q: idx[q*k + j], d2[q*k + j] for j < k, found[q] (invariant (2)).
     * Returns 0, or non-zero when it could not run (OpenCL failed). */
    int (*run)(const struct lm_knn_input *in, uint32_t *idx, float *d2, uint32_t *found);
};

const struct lm_knn_table *lm_knn_scalar(void);  /* never NULL */
const struct lm_knn_table *lm_knn_avx2(void);    /* NULL without AVX2 + FMA */
const struct lm_knn_table *lm_knn_opencl(void);  /* NULL without a device */
const struct lm_knn_table *lm_knn_best(void);    /* AVX2, else scalar */

/* Errors: LM_EBADARG for a NULL table, input or output, NULL columns with n or m > 0,
 * k of 0 or over LM_KNN_MAX_K, a NaN or negative max_d2; LM_ELIMIT for n over
 * UINT32_MAX - 1 points. */
int lm_knn_run(const struct lm_knn_table *t, const struct lm_knn_input *in, uint32_t *idx,
               float *d2, uint32_t *found);

extern const struct lm_knn_table lm__knn_scalar_table;
extern const struct lm_knn_table lm__knn_avx2_table;
extern const struct lm_knn_table lm__knn_cl_table;

/* For implementations: a query's running result, nearest first. */
struct lm__knn_best {
    uint32_t n, k;
    float d2[LM_KNN_MAX_K];
    uint32_t idx[LM_KNN_MAX_K];
};
/* The d2 a point must stay below to enter (max_d2 until the list is full, then also
 * the k-th: a point at the k-th's distance comes later, so its index is larger). */
static inline float lm__knn_bound(const struct lm__knn_best *b, float max_d2)
{
    return b->n < b->k ? max_d2 : b->d2[b->k - 1];
}
/* Offers point i at d2 (points come in ascending index). */
void lm__knn_offer(struct lm__knn_best *b, float d2, uint32_t i, float max_d2);
/* Writes b into the outputs of one query. */
void lm__knn_store(const struct lm__knn_best *b, uint32_t *idx, float *d2, uint32_t *found);

#endif
