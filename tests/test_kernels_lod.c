/* test_kernels_lod.c - the LOD pyramid: scalar, AVX2 and OpenCL parent builds bit for
 * bit on random levels of every shape (odd edges, flat levels), against sums in double
 * precision, and a pyramid over a field's voxels against lm_voxels_query's levels. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "alloc.h"
#include "device.h"
#include "lod_pyramid.h"
#include "test_kernels.h"
#include "tmpdir.h"

static const struct lm_lod_table *impls[3];
static int n_impls;

static float value(void)
{
    switch (below(6)) {
    case 0: return -0.0f;
    case 1: return 0.0f;
    case 2: return (float)ldexp(uniform(-1, 1), (int)below(40) - 20);
    default: return (float)((int)below(41) - 20) * 0.125f;
    }
}

static void random_level(struct lm_lod_level *l, uint32_t max_edge)
{
    uint32_t dim[3];
    for (int a = 0; a < 3; a++)
        dim[a] = below(5) ? 1 + below(max_edge) : 1 + below(3);
    assert_int_equal(lm_lod_level_new(dim, l), 0);
    size_t cells = lm_lod_cells(l);
    for (size_t i = 0; i < cells; i++)
        l->count[i] = below(3) ? 0 : below(1000);
    for (size_t i = 0; i < cells * LM_LOD_SUMS; i++)
        l->sums[i] = value();
}

static void levels_agree_bit_for_bit_and_with_double_sums(void **state)
{
    (void)state;
    rng_start(1);
    for (int round = 0; round < 60; round++) {
        struct lm_lod_level child, parent[3];
        random_level(&child, round < 40 ? 40 : 130);
        const uint32_t pd[3] = {(child.dim[0] + 1) / 2, (child.dim[1] + 1) / 2,
                                (child.dim[2] + 1) / 2};
        for (int i = 0; i < n_impls; i++) {
            assert_int_equal(lm_lod_level_new(pd, &parent[i]), 0);
            assert_int_equal(lm_lod_parent(impls[i], &child, &parent[i]), 0);
        }
        size_t pc = lm_lod_cells(&parent[0]), cc = lm_lod_cells(&child);
        for (int i = 1; i < n_impls; i++)
            if (memcmp(parent[0].count, parent[i].count, pc * sizeof(uint32_t)) ||
                memcmp(parent[0].sums, parent[i].sums, pc * LM_LOD_SUMS * sizeof(float))) {
                print_error("%s differs from scalar: %u x %u x %u (seed %" PRIu64 ")\n",
                            impls[i]->name, child.dim[0], child.dim[1], child.dim[2], test_seed);
                fail();
            }
        /* each parent against its children added in double */
        for (size_t at = 0; at < pc; at++) {
            uint32_t x = (uint32_t)(at % pd[0]), y = (uint32_t)(at / pd[0] % pd[1]),
                     z = (uint32_t)(at / pd[0] / pd[1]);
            uint64_t n = 0;
            double sum[LM_LOD_SUMS] = {0}, mag[LM_LOD_SUMS] = {0};
            for (uint32_t k = 0; k < 8; k++) {
                uint32_t cx = 2 * x + (k & 1), cy = 2 * y + (k >> 1 & 1), cz = 2 * z + (k >> 2);
                if (cx >= child.dim[0] || cy >= child.dim[1] || cz >= child.dim[2])
                    continue;
                size_t c = ((size_t)cz * child.dim[1] + cy) * child.dim[0] + cx;
                n += child.count[c];
                for (uint32_t ch = 0; ch < LM_LOD_SUMS; ch++) {
                    sum[ch] += child.sums[ch * cc + c];
                    mag[ch] += fabs(child.sums[ch * cc + c]);
                }
            }
            assert_int_equal(parent[0].count[at], n);
            for (uint32_t ch = 0; ch < LM_LOD_SUMS; ch++)
                assert_true(fabs(parent[0].sums[ch * pc + at] - sum[ch]) <= 1e-6 * mag[ch]);
        }
        for (int i = 0; i < n_impls; i++)
            lm_lod_level_free(&parent[i]);
        lm_lod_level_free(&child);
    }
}

static void pyramids_agree_and_end_in_one_cell(void **state)
{
    (void)state;
    rng_start(2);
    for (int round = 0; round < 6; round++) {
        struct lm_lod_level lv[3][34];
        size_t n[3];
        random_level(&lv[0][0], 70);
        for (int i = 1; i < n_impls; i++) { /* the same level 0 for each */
            assert_int_equal(lm_lod_level_new(lv[0][0].dim, &lv[i][0]), 0);
            memcpy(lv[i][0].count, lv[0][0].count, lm_lod_cells(&lv[0][0]) * sizeof(uint32_t));
            memcpy(lv[i][0].sums, lv[0][0].sums,
                   lm_lod_cells(&lv[0][0]) * LM_LOD_SUMS * sizeof(float));
        }
        for (int i = 0; i < n_impls; i++)
            assert_int_equal(lm_lod_pyramid(impls[i], lv[i], &n[i]), 0);
        const struct lm_lod_level *top = &lv[0][n[0] - 1];
        assert_true(top->dim[0] == 1 && top->dim[1] == 1 && top->dim[2] == 1);
        uint64_t total = 0;
        for (size_t c = 0; c < lm_lod_cells(&lv[0][0]); c++)
            total += lv[0][0].count[c];
        assert_int_equal(top->count[0], total);
        for (int i = 1; i < n_impls; i++) {
            assert_int_equal(n[i], n[0]);
            for (size_t L = 1; L < n[0]; L++)
                assert_memory_equal(lv[i][L].sums, lv[0][L].sums,
                                    lm_lod_cells(&lv[0][L]) * LM_LOD_SUMS * sizeof(float));
        }
        for (int i = 0; i < n_impls; i++)
            for (size_t L = 0; L < n[i]; L++)
                lm_lod_level_free(&lv[i][L]);
    }
}

/* A field's voxels, as level 0 of a pyramid, against the engine's own LOD levels. */
static void pyramid_of_a_field_matches_lm_voxels_query(void **state)
{
    (void)state;
    char dir[64];
    assert_int_equal(tmpdir_make("lm-lod", dir, sizeof dir), 0);
    lm_db *db;
    assert_int_equal(lm_db_open(dir, NULL, &db, NULL), 0);
    struct lm_field_opts fo = {.voxel_size = 1, .chunk_edge = 16};
    assert_int_equal(lm_field_create(db, "f", &fo, NULL), 0);
    enum { N = 30000, SIDE = 64 };
    float *xyz = lm_alloc(3 * N * sizeof *xyz), *in = lm_alloc(N * sizeof *in);
    float *rgb = lm_alloc(3 * N * sizeof *rgb);
    rng_start(3);
    for (size_t i = 0; i < 3 * N; i++) {
        xyz[i] = (float)uniform(-SIDE / 2, SIDE / 2) * (float)uniform(0.2, 1);
        rgb[i] = (float)uniform(0, 1);
    }
    for (size_t i = 0; i < N; i++)
        in[i] = (float)uniform(0, 3);
    struct lm_batch b = {.n = N, .x = xyz, .y = xyz + N, .z = xyz + 2 * N, .r = rgb,
                         .g = rgb + N, .b = rgb + 2 * N, .intensity = in};
    assert_int_equal(lm_insert(db, "f", &b, NULL, NULL), 0);
    struct lm_voxels *v0;
    assert_int_equal(lm_voxels_query(db, "f", NULL, 0, &v0, NULL), 0);
    const int32_t base[3] = {-SIDE / 2, -SIDE / 2, -SIDE / 2};
    struct lm_lod_level lv[8];
    assert_int_equal(lm_lod_level_new((const uint32_t[]){SIDE, SIDE, SIDE}, &lv[0]), 0);
    lm_lod_level_from_voxels(&lv[0], base, v0->v, v0->n);
    size_t n;
    const struct lm_lod_table *t = impls[n_impls - 1];
    assert_int_equal(lm_lod_pyramid(t, lv, &n), 0);
    assert_int_equal(n, 7);
    /* levels whose cells line up with the engine's (base a multiple of 2^L) */
    for (uint32_t L = 1; L < n && base[0] % (1 << L) == 0; L++) {
        struct lm_voxels *vq;
        assert_int_equal(lm_voxels_query(db, "f", NULL, L, &vq, NULL), 0);
        size_t pc = lm_lod_cells(&lv[L]), occupied = 0;
        for (size_t c = 0; c < pc; c++)
            occupied += lv[L].count[c] > 0;
        assert_int_equal(occupied, vq->n);
        for (size_t i = 0; i < vq->n; i++) {
            const struct lm_voxel *e = &vq->v[i];
            size_t at = 0;
            for (int a = 2; a >= 0; a--)
                at = at * lv[L].dim[a] + (size_t)(e->coord[a] - (base[a] >> L));
            assert_int_equal(lv[L].count[at], e->count);
            float cnt = (float)e->count;
            const float want[LM_LOD_SUMS] = {e->mean_r * cnt, e->mean_g * cnt, e->mean_b * cnt,
                                             e->sum_intensity, e->sh[0][0], e->sh[0][1],
                                             e->sh[0][2], e->sh[0][3], e->sh[1][0], e->sh[1][1],
                                             e->sh[1][2], e->sh[1][3], e->sh[2][0], e->sh[2][1],
                                             e->sh[2][2], e->sh[2][3]};
            for (uint32_t ch = 0; ch < LM_LOD_SUMS; ch++) {
                float got = lv[L].sums[ch * pc + at];
                /* engine and pyramid add in different orders (and means round) */
                if (fabsf(got - want[ch]) > 1e-4f * (cnt * 4 + fabsf(want[ch]))) {
                    print_error("level %u cell %d %d %d channel %u: %.9g, engine %.9g\n", L,
                                e->coord[0], e->coord[1], e->coord[2], ch, got, want[ch]);
                    fail();
                }
            }
        }
        lm_voxels_free(vq);
    }
    for (size_t L = 0; L < n; L++)
        lm_lod_level_free(&lv[L]);
    lm_voxels_free(v0);
    lm_free(xyz);
    lm_free(in);
    lm_free(rgb);
    lm_db_close(db);
    tmpdir_remove(dir);
}

static void bad_arguments_are_rejected(void **state)
{
    (void)state;
    struct lm_lod_level a, b;
    assert_int_equal(lm_lod_level_new((const uint32_t[]){0, 1, 1}, &a), LM_EBADARG);
    assert_int_equal(lm_lod_level_new((const uint32_t[]){1u << 16, 1u << 16, 4}, &a), LM_ELIMIT);
    assert_int_equal(lm_lod_level_new((const uint32_t[]){5, 4, 1}, &a), 0);
    assert_int_equal(lm_lod_level_new((const uint32_t[]){2, 2, 1}, &b), 0);
    assert_int_equal(lm_lod_parent(lm_lod_best(), &a, &b), LM_EBADARG); /* 5 -> 3, not 2 */
    assert_int_equal(lm_lod_parent(NULL, &a, &b), LM_EBADARG);
    lm_lod_level_free(&b);
    assert_int_equal(lm_lod_level_new((const uint32_t[]){3, 2, 1}, &b), 0);
    assert_int_equal(lm_lod_parent(lm_lod_best(), &a, &b), 0);
    lm_lod_level_free(&a);
    lm_lod_level_free(&b);
    lm_lod_level_free(NULL);
}

int main(void)
{
    rng_init("test_kernels_lod");
    TEST_IMPLS("test_kernels_lod", impls, n_impls, lm_lod_scalar, lm_lod_avx2, lm_lod_opencl);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bad_arguments_are_rejected),
        cmocka_unit_test(levels_agree_bit_for_bit_and_with_double_sums),
        cmocka_unit_test(pyramids_agree_and_end_in_one_cell),
        cmocka_unit_test(pyramid_of_a_field_matches_lm_voxels_query),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
