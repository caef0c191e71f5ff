/* test_geometry.c - Morton codes, octahedral directions, spherical harmonics, regions
 * and camera frusta. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "morton.h"
#include "region.h"
#include "sh.h"

static uint64_t state = 12345;

static float rndf(float lo, float hi)
{
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (hi - lo) * (float)(state >> 40) * (1.0f / 16777216.0f);
}

static void morton_round_trips_and_orders_by_axis_bits(void **s)
{
    (void)s;
    for (int i = 0; i < 10000; i++) {
        uint32_t x = (uint32_t)rndf(0, 2097151), y = (uint32_t)rndf(0, 2097151),
                 z = (uint32_t)rndf(0, 2097151), a, b, c;
        lm_morton_decode(lm_morton_encode(x, y, z), &a, &b, &c);
        assert_int_equal(a, x);
        assert_int_equal(b, y);
        assert_int_equal(c, z);
    }
    assert_int_equal(lm_morton_encode(1, 0, 0), 1);
    assert_int_equal(lm_morton_encode(0, 1, 0), 2);
    assert_int_equal(lm_morton_encode(0, 0, 1), 4);
    assert_true(lm_morton_encode(1, 1, 1) < lm_morton_encode(2, 0, 0));
    /* voxel/chunk rules for negative coordinates: floor, not truncation */
    assert_int_equal(lm_voxel_of(-0.1f, 1.0 / 0.25), -1);
    assert_int_equal(lm_voxel_of(0.0f, 4.0), 0);
    assert_int_equal(lm_chunk_of(-1, 5), -1);
    assert_int_equal(lm_chunk_of(-32, 5), -1);
    assert_int_equal(lm_chunk_of(-33, 5), -2);
    assert_int_equal(lm_chunk_of(31, 5), 0);
}

static void octahedral_directions_are_accurate_everywhere(void **s)
{
    (void)s;
    double worst = 0;
    for (int i = 0; i < 200000; i++) {
        float d[3] = {rndf(-1, 1), rndf(-1, 1), rndf(-1, 1)};
        if (i < 6) { /* the axes, where folding is at its edges */
            memset(d, 0, sizeof d);
            d[i / 2] = i % 2 ? -1.0f : 1.0f;
        }
        float l = sqrtf(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
        if (l < 1e-3f)
            continue;
        for (int a = 0; a < 3; a++)
            d[a] /= l;
        uint16_t e[2];
        float o[3];
        lm_dir_encode(d, e);
        lm_dir_decode(e, o);
        /* atan2(|d x o|, d . o): acos near 1 would measure float noise, not the code */
        double cx = (double)d[1] * o[2] - (double)d[2] * o[1];
        double cy = (double)d[2] * o[0] - (double)d[0] * o[2];
        double cz = (double)d[0] * o[1] - (double)d[1] * o[0];
        double dot = (double)d[0] * o[0] + (double)d[1] * o[1] + (double)d[2] * o[2];
        double ang = atan2(sqrt(cx * cx + cy * cy + cz * cz), dot) * 180.0 / M_PI;
        if (ang > worst)
            worst = ang;
        double len = sqrt((double)o[0] * o[0] + (double)o[1] * o[1] + (double)o[2] * o[2]);
        assert_true(fabs(len - 1.0) < 1e-5);
    }
    assert_true(worst < 0.01); /* 2 x 16 bits: ~0.003 degrees */
}

static void sh_radiance_is_brightest_along_the_light(void **s)
{
    (void)s;
    /* 10 samples travelling along +x with f = 2: radiance is 4 along +x, 0 against. */
    float sums[4] = {0, 0, 0, 0}, d[3] = {1, 0, 0}, y[4];
    lm_sh_basis(d, y);
    for (int i = 0; i < 10; i++)
        for (int k = 0; k < 4; k++)
            sums[k] += 2.0f * y[k];
    float along = lm_sh_eval(sums, 10, d);
    float against = lm_sh_eval(sums, 10, (float[3]){-1, 0, 0});
    float side = lm_sh_eval(sums, 10, (float[3]){0, 1, 0});
    assert_true(fabsf(along - 4.0f) < 1e-4f);
    assert_true(fabsf(against) < 1e-4f);
    assert_true(fabsf(side - 2.0f) < 1e-4f);
    /* opposite directions in equal measure: uniform mean */
    lm_sh_basis((float[3]){-1, 0, 0}, y);
    for (int i = 0; i < 10; i++)
        for (int k = 0; k < 4; k++)
            sums[k] += 2.0f * y[k];
    assert_true(fabsf(lm_sh_eval(sums, 20, d) - 2.0f) < 1e-4f);
    assert_true(lm_sh_eval(sums, 0, d) == 0.0f);
}

static void classify_agrees_with_point_tests(void **s)
{
    (void)s;
    for (int iter = 0; iter < 3000; iter++) {
        struct lm_region r = {0};
        int kind = iter % 3;
        if (kind == 0) {
            r.kind = LM_REGION_BOX;
            for (int a = 0; a < 3; a++) {
                r.min[a] = rndf(-5, 5);
                r.max[a] = r.min[a] + rndf(0, 5);
            }
        } else if (kind == 1) {
            r.kind = LM_REGION_SPHERE;
            for (int a = 0; a < 3; a++)
                r.center[a] = rndf(-5, 5);
            r.radius = rndf(0, 4);
        } else {
            float eye[3] = {rndf(-10, 10), rndf(-10, 10), 8}, tgt[3] = {0, 0, 0}, up[3] = {0, 1, 0};
            assert_int_equal(lm_frustum_from_camera(eye, tgt, up, 60, 1.3f, 0.5f, 30, &r), 0);
        }
        float bmin[3], bmax[3];
        for (int a = 0; a < 3; a++) {
            bmin[a] = rndf(-8, 8);
            bmax[a] = bmin[a] + rndf(0, 4);
        }
        enum lm__overlap ov = lm__region_classify(&r, bmin, bmax);
        /* sample points of the box: INSIDE => all in, OUTSIDE => none in */
        for (int k = 0; k < 64; k++) {
            float p[3];
            for (int a = 0; a < 3; a++)
                p[a] = k < 8 ? ((k >> a) & 1 ? bmax[a] : bmin[a]) : rndf(bmin[a], bmax[a]);
            bool in = lm__region_contains(&r, p[0], p[1], p[2]);
            if (ov == LM__INSIDE)
                assert_true(in);
            if (ov == LM__OUTSIDE)
                assert_false(in);
        }
    }
}

static void frustum_contains_what_the_camera_sees(void **s)
{
    (void)s;
    struct lm_region r;
    float eye[3] = {0, 0, 10}, tgt[3] = {0, 0, 0}, up[3] = {0, 1, 0};
    assert_int_equal(lm_frustum_from_camera(eye, tgt, up, 90, 1, 1, 100, &r), 0);
    assert_true(lm__region_contains(&r, 0, 0, 0));     /* centre of view */
    assert_true(lm__region_contains(&r, 9, 0, 0));     /* 45 degrees at distance 10 */
    assert_false(lm__region_contains(&r, 11, 0, 0));   /* outside the side plane */
    assert_false(lm__region_contains(&r, 0, 0, 9.5f)); /* nearer than near */
    assert_false(lm__region_contains(&r, 0, 0, -95));  /* beyond far */
    assert_false(lm__region_contains(&r, 0, 0, 20));   /* behind the eye */
    /* bad cameras */
    assert_int_equal(lm_frustum_from_camera(eye, tgt, (float[3]){0, 0, 1}, 90, 1, 1, 100, &r),
                     LM_EBADARG);
    assert_int_equal(lm_frustum_from_camera(eye, tgt, up, 0, 1, 1, 100, &r), LM_EBADARG);
    assert_int_equal(lm_frustum_from_camera(eye, tgt, up, 60, 1, 5, 2, &r), LM_EBADARG);
}

static void regions_are_validated(void **s)
{
    (void)s;
    struct lm_error e;
    struct lm_region r = {.kind = LM_REGION_BOX, .min = {1, 0, 0}, .max = {0, 1, 1}};
    assert_int_equal(lm__region_validate(&r, &e), LM_EBADARG);
    assert_non_null(strstr(e.message, "min x"));
    r = (struct lm_region){.kind = LM_REGION_SPHERE, .radius = -1};
    assert_int_equal(lm__region_validate(&r, &e), LM_EBADARG);
    r = (struct lm_region){.kind = LM_REGION_SPHERE, .center = {NAN, 0, 0}, .radius = 1};
    assert_int_equal(lm__region_validate(&r, &e), LM_EBADARG);
    r = (struct lm_region){.kind = 99};
    assert_int_equal(lm__region_validate(&r, &e), LM_EBADARG);
    r = (struct lm_region){.kind = LM_REGION_BOX, .min = {0, 0, 0}, .max = {0, 0, 0}};
    assert_int_equal(lm__region_validate(&r, &e), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(morton_round_trips_and_orders_by_axis_bits),
        cmocka_unit_test(octahedral_directions_are_accurate_everywhere),
        cmocka_unit_test(sh_radiance_is_brightest_along_the_light),
        cmocka_unit_test(classify_agrees_with_point_tests),
        cmocka_unit_test(frustum_contains_what_the_camera_sees),
        cmocka_unit_test(regions_are_validated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
