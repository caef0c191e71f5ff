/* test_kernels_knn.c - batched brute-force k nearest: scalar, AVX2 and OpenCL tables bit
 * for bit, and against a sort of every point by (distance, index), on random chunks
 * with many equal distances (points and queries on a coarse grid), radius limits, and
 * fewer points than k; resident device copies of the points. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "alloc.h"
#include "device.h"
#include "knn.h"
#include "test_kernels.h"

static const struct lm_knn_table *impls[3];
static int n_impls;

static float coord(void)
{
    return below(2) ? (float)((int)below(17) - 8) * 0.5f : (float)uniform(-4, 4);
}

struct pair {
    float d2;
    uint32_t i;
};

static int cmp_pair(const void *a, const void *b)
{
    const struct pair *x = a, *y = b;
    if (x->d2 != y->d2)
        return x->d2 < y->d2 ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

static void all_agree_with_a_sort(void **state)
{
    (void)state;
    enum { MAXN = 3000, MAXM = 300 };
    float *p = lm_alloc(3 * MAXN * sizeof *p), *q = lm_alloc(3 * MAXM * sizeof *q);
    uint32_t *idx[3], *found[3];
    float *d2[3];
    struct pair *all = lm_alloc(MAXN * sizeof *all);
    for (int i = 0; i < 3; i++) {
        idx[i] = lm_alloc(MAXM * LM_KNN_MAX_K * sizeof *idx[i]);
        d2[i] = lm_alloc(MAXM * LM_KNN_MAX_K * sizeof *d2[i]);
        found[i] = lm_alloc(MAXM * sizeof *found[i]);
    }
    const size_t ns[] = {0, 1, 7, 15, 16, 17, 100, MAXN};
    const uint32_t ks[] = {1, 2, 8, LM_KNN_MAX_K};
    rng_start(1);
    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
        for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
            size_t n = ns[ni], m = 1 + below(MAXM);
            for (size_t i = 0; i < 3 * n; i++)
                p[i] = coord();
            for (size_t i = 0; i < 3 * m; i++)
                q[i] = coord();
            struct lm_knn_input in = {.n = n, .x = p, .y = p + n, .z = p + 2 * n, .m = m,
                                      .qx = q, .qy = q + m, .qz = q + 2 * m, .k = ks[ki],
                                      .max_d2 = below(3) ? INFINITY : (float)uniform(0, 10)};
            for (int t = 0; t < n_impls; t++)
                assert_int_equal(lm_knn_run(impls[t], &in, idx[t], d2[t], found[t]), 0);
            for (int t = 1; t < n_impls; t++)
                if (memcmp(idx[0], idx[t], m * in.k * sizeof *idx[0]) ||
                    memcmp(d2[0], d2[t], m * in.k * sizeof *d2[0]) ||
                    memcmp(found[0], found[t], m * sizeof *found[0])) {
                    print_error("%s differs from scalar: n %zu m %zu k %u (seed %" PRIu64 ")\n",
                                impls[t]->name, n, m, in.k, test_seed);
                    fail();
                }
            for (size_t j = 0; j < m; j++) {
                size_t na = 0;
                for (size_t i = 0; i < n; i++) {
                    float dx = in.x[i] - in.qx[j], dy = in.y[i] - in.qy[j],
                          dz = in.z[i] - in.qz[j];
                    float dd = (dx * dx + dy * dy) + dz * dz;
                    if (dd <= in.max_d2)
                        all[na++] = (struct pair){dd, (uint32_t)i};
                }
                qsort(all, na, sizeof *all, cmp_pair);
                size_t want = na < in.k ? na : in.k;
                assert_int_equal(found[0][j], want);
                for (size_t r = 0; r < in.k; r++) {
                    uint32_t gi = idx[0][j * in.k + r];
                    float gd = d2[0][j * in.k + r];
                    if (r < want)
                        assert_true(gi == all[r].i && gd == all[r].d2);
                    else
                        assert_true(gi == UINT32_MAX && isinf(gd));
                }
            }
        }
    for (int i = 0; i < 3; i++) {
        lm_free(idx[i]);
        lm_free(d2[i]);
        lm_free(found[i]);
    }
    lm_free(all);
    lm_free(p);
    lm_free(q);
}

static void device_keeps_named_points(void **state)
{
    (void)state;
    lm_cl *cl = lm_device_cl();
    if (!lm_knn_opencl() || !cl)
        skip();
    float x[20], y[20], z[20], q[3] = {0, 0, 0};
    for (int i = 0; i < 20; i++) {
        x[i] = (float)i;
        y[i] = z[i] = 0;
    }
    struct lm_knn_input in = {.n = 20, .x = x, .y = y, .z = z, .m = 1, .qx = q,
                              .qy = q + 1, .qz = q + 2, .k = 3, .max_d2 = INFINITY,
                              .id = 77, .version = 1};
    uint32_t idx[3], found;
    float d2[3];
    struct lm_cl_stats a, b;
    lm_cl_lock(cl);
    lm_cl_stats(cl, &a);
    lm_cl_unlock(cl);
    for (int r = 0; r < 3; r++) {
        assert_int_equal(lm_knn_run(lm_knn_opencl(), &in, idx, d2, &found), 0);
        assert_true(found == 3 && idx[0] == 0 && idx[1] == 1 && idx[2] == 2 && d2[2] == 4);
    }
    lm_cl_lock(cl);
    lm_cl_stats(cl, &b);
    lm_cl_unlock(cl);
    assert_int_equal(b.resident_misses - a.resident_misses, 3); /* x, y, z once */
    assert_int_equal(b.resident_hits - a.resident_hits, 6);
}

static void bad_arguments_are_rejected(void **state)
{
    (void)state;
    float v[1] = {0};
    uint32_t idx[LM_KNN_MAX_K], found;
    float d2[LM_KNN_MAX_K];
    struct lm_knn_input in = {.n = 1, .x = v, .y = v, .z = v, .m = 1, .qx = v, .qy = v,
                              .qz = v, .k = 1, .max_d2 = INFINITY};
    const struct lm_knn_table *t = lm_knn_best();
    assert_int_equal(lm_knn_run(t, &in, idx, d2, &found), 0);
    assert_true(found == 1 && idx[0] == 0 && d2[0] == 0);
    in.k = 0;
    assert_int_equal(lm_knn_run(t, &in, idx, d2, &found), LM_EBADARG);
    in.k = LM_KNN_MAX_K + 1;
    assert_int_equal(lm_knn_run(t, &in, idx, d2, &found), LM_EBADARG);
    in.k = 1;
    in.max_d2 = NAN;
    assert_int_equal(lm_knn_run(t, &in, idx, d2, &found), LM_EBADARG);
    in.max_d2 = 1;
    in.y = NULL;
    assert_int_equal(lm_knn_run(t, &in, idx, d2, &found), LM_EBADARG);
    in.y = v;
    assert_int_equal(lm_knn_run(NULL, &in, idx, d2, &found), LM_EBADARG);
    assert_int_equal(lm_knn_run(t, &in, NULL, d2, &found), LM_EBADARG);
}

int main(void)
{
    rng_init("test_kernels_knn");
    TEST_IMPLS("test_kernels_knn", impls, n_impls, lm_knn_scalar, lm_knn_avx2, lm_knn_opencl);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bad_arguments_are_rejected),
        cmocka_unit_test(all_agree_with_a_sort),
        cmocka_unit_test(device_keeps_named_points),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
