/* test_kernels_scan.c - the scan implementations against each other and against a
 * naive loop in this file, on random chunks (fresh seed each run, printed; set
 * LUMADB_TEST_SEED to repeat one), plus directed cases at exact boundaries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "device.h"
#include "scan.h"

/* ---------------------------------------------------------------- random numbers */

static uint64_t seed, rng;

static uint64_t rnd(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint32_t below(uint32_t k) { return (uint32_t)(rnd() % k); }
static double uniform(double lo, double hi) { return lo + (hi - lo) * (double)(rnd() >> 11) * 0x1p-53; }

/* Each test draws from its own stream of the run's seed, so one can be repeated alone. */
static void rng_start(uint64_t stream) { rng = seed ^ (stream * 0xd1342543de82ef95ull); }

/* ---------------------------------------------------------------- implementations */

static const struct lm_scan_table *impls[4];
static int n_impls;
static const struct lm_scan_table *avx2; /* NULL: skip the AVX2 parts */
/* The OpenCL table when its sums may differ from the CPU's (GPU-shaped kernels,
 * scan.h invariant (1)): checked against the naive loop only, not bit for bit. */
static const struct lm_scan_table *loose_sum;

/* LUMADB_TEST_NO_AVX2=1 runs the tests as on a CPU without AVX2. The OpenCL table
 * joins when there is a device (LUMADB_CL_SHAPE=gpu forces its GPU-shaped kernels). */
static void impls_init(void)
{
    const char *off = getenv("LUMADB_TEST_NO_AVX2");
    avx2 = off && *off && strcmp(off, "0") ? NULL : lm_scan_avx2();
    n_impls = 0;
    impls[n_impls++] = lm_scan_scalar();
    if (avx2)
        impls[n_impls++] = avx2;
    const struct lm_scan_table *cl = lm_scan_opencl();
    if (cl) {
        impls[n_impls++] = cl;
        if (lm_cl_shape(lm_device_cl()) == LM_CL_SHAPE_GPU)
            loose_sum = cl;
    }
}

/* ---------------------------------------------------------------- chunks */

#define MAX_ROWS 100003
static const size_t sizes[] = {0, 1, 7, 8, 63, 64, 65, 1000, MAX_ROWS};
#define N_SIZES (sizeof sizes / sizeof sizes[0])

/* Columns of one chunk. Each is allocated one row longer and may start one element in,
 * so the kernels also see unaligned columns. */
struct chunk {
    size_t n;
    float *x, *y, *z, *f;
    int32_t *i;
    uint8_t *u;
    int64_t *l;
    void *mem[7];
};

/* Half of the coordinates lie on a 0.5 grid, so boxes, spheres and planes built from
 * grid values have rows exactly on their boundary. */
static float coord(void)
{
    return below(2) ? (float)((int)below(33) - 16) * 0.5f : (float)uniform(-9, 9);
}

/* Grid values give ties with the constants; values of many magnitudes make sums
 * round, so that a change in summation order shows. */
static float fvalue(void)
{
    switch (below(8)) {
    case 0: return -0.0f;
    case 1: return 0.0f;
    case 2: return (float)ldexp(uniform(-1, 1), (int)below(60) - 30);
    default: return (float)((int)below(57) - 8) * 0.25f;
    }
}

/* Near +-1e12 (ties with the constants), or anywhere in +-2^52, where sums round but
 * every value is still exact as a double. */
static int64_t lvalue(void)
{
    if (!below(8))
        return (int64_t)(rnd() >> 11) - (1ll << 52);
    int64_t base = below(2) ? 1000000000000ll : -1000000000000ll;
    return base + (int64_t)below(201) - 100;
}

static void chunk_fill(struct chunk *c, size_t n)
{
    size_t cap = n + 1;
    int shift = (int)below(2);
    memset(c, 0, sizeof *c);
    c->n = n;
    c->mem[0] = lm_alloc(cap * sizeof(float));
    c->mem[1] = lm_alloc(cap * sizeof(float));
    c->mem[2] = lm_alloc(cap * sizeof(float));
    c->mem[3] = lm_alloc(cap * sizeof(float));
    c->mem[4] = lm_alloc(cap * sizeof(int32_t));
    c->mem[5] = lm_alloc(cap);
    c->mem[6] = lm_alloc(cap * sizeof(int64_t));
    for (int k = 0; k < 7; k++)
        assert_non_null(c->mem[k]);
    c->x = (float *)c->mem[0] + shift;
    c->y = (float *)c->mem[1] + shift;
    c->z = (float *)c->mem[2] + shift;
    c->f = (float *)c->mem[3] + shift;
    c->i = (int32_t *)c->mem[4] + shift;
    c->u = (uint8_t *)c->mem[5] + shift;
    c->l = (int64_t *)c->mem[6] + shift;
    for (size_t r = 0; r < n; r++) {
        c->x[r] = coord();
        c->y[r] = coord();
        c->z[r] = coord();
        c->f[r] = fvalue();
        c->i[r] = below(50) ? (int32_t)below(101) - 50 : below(2) ? INT32_MIN : INT32_MAX;
        c->u[r] = (uint8_t)below(256);
        c->l[r] = lvalue();
    }
}

static void chunk_free(struct chunk *c)
{
    for (int k = 0; k < 7; k++)
        lm_free(c->mem[k]);
}

static const void *chunk_col(const struct chunk *c, enum lm_scan_type t)
{
    switch (t) {
    case LM_SCAN_F32: return c->f;
    case LM_SCAN_I32: return c->i;
    case LM_SCAN_U8: return c->u;
    case LM_SCAN_I64: return c->l;
    }
    return NULL;
}

static const enum lm_scan_type types[] = {LM_SCAN_F32, LM_SCAN_I32, LM_SCAN_U8, LM_SCAN_I64};
static const char *const type_names[] = {"?", "f32", "i32", "u8", "i64"};
static const char *const op_names[] = {"?", "LT", "LE", "GT", "GE", "EQ", "NE", "BETWEEN"};
static const char *const region_names[] = {"all", "box", "sphere", "frustum"};

/* ---------------------------------------------------------------- random scans */

static float grid(int lo, int hi) { return (float)(lo + (int)below((uint32_t)(hi - lo + 1))) * 0.5f; }

static struct lm_region random_region(enum lm_region_kind kind)
{
    struct lm_region r = {.kind = kind};
    switch (kind) {
    case LM_REGION_BOX:
        for (int k = 0; k < 3; k++) {
            r.min[k] = grid(-16, 8);
            r.max[k] = r.min[k] + grid(0, 16);
        }
        break;
    case LM_REGION_SPHERE:
        for (int k = 0; k < 3; k++)
            r.center[k] = grid(-8, 8);
        r.radius = below(4) ? (float)below(12) : (float)uniform(0, 10);
        break;
    case LM_REGION_FRUSTUM:
        /* Planes with coefficients on a 0.5 grid: rows on the grid can sit on them. */
        for (int k = 0; k < 6; k++) {
            for (int j = 0; j < 3; j++)
                r.planes[k][j] = below(3) ? grid(-2, 2) : (float)uniform(-1, 1);
            r.planes[k][3] = grid(0, 16);
        }
        break;
    case LM_REGION_ALL:
        break;
    }
    return r;
}

/* A constant for a column of type t: often a value the column holds, sometimes one
 * between, beyond the type's range, or infinite. */
static double constant(enum lm_scan_type t)
{
    uint32_t k = below(10);
    if (k == 0)
        return below(2) ? INFINITY : -INFINITY;
    switch (t) {
    case LM_SCAN_F32:
        if (k == 1)
            return below(2) ? 1e39 : -1e39;
        if (k == 2)
            return (double)((int)below(57) - 8) * 0.25 + 0.1;
        return (double)((int)below(57) - 8) * 0.25;
    case LM_SCAN_I32:
        if (k == 1)
            return below(2) ? 1e10 : -1e10;
        if (k == 2)
            return (double)((int)below(111) - 55) + 0.5;
        if (k == 3)
            return below(2) ? INT32_MIN : INT32_MAX;
        return (double)((int)below(111) - 55);
    case LM_SCAN_U8:
        if (k == 1)
            return below(2) ? 256 : -1;
        if (k == 2)
            return (double)below(256) + 0.5;
        return (double)below(256);
    case LM_SCAN_I64:
        if (k == 1)
            return below(2) ? 1e19 : -1e19;
        if (k == 2)
            return (double)lvalue() + 0.5;
        return (double)lvalue();
    }
    return 0;
}

static struct lm_scan_pred random_pred(const struct chunk *c, enum lm_scan_type t,
                                       enum lm_cmp op)
{
    struct lm_scan_pred p = {.col = chunk_col(c, t), .type = t, .op = op};
    p.a = constant(t);
    p.b = below(4) ? p.a + fabs(constant(t) - p.a) : constant(t); /* sometimes b < a */
    if (isnan(p.b))
        p.b = p.a;
    return p;
}

/* ---------------------------------------------------------------- the naive loop */

static bool naive_region(const struct lm_region *r, float x, float y, float z)
{
    switch (r->kind) {
    case LM_REGION_BOX:
        return x >= r->min[0] && x <= r->max[0] && y >= r->min[1] && y <= r->max[1] &&
               z >= r->min[2] && z <= r->max[2];
    case LM_REGION_SPHERE: {
        float dx = x - r->center[0], dy = y - r->center[1], dz = z - r->center[2];
        float d2 = dx * dx + dy * dy;
        d2 = d2 + dz * dz;
        return d2 <= r->radius * r->radius;
    }
    case LM_REGION_FRUSTUM:
        for (int k = 0; k < 6; k++) {
            float s = r->planes[k][0] * x;
            s = s + r->planes[k][1] * y;
            s = s + r->planes[k][2] * z;
            s = s + r->planes[k][3];
            if (s < 0)
                return false;
        }
        return true;
    case LM_REGION_ALL:
        break;
    }
    return true;
}

/* A column value as a double: exact for every value the tests store. */
static double value(const void *col, enum lm_scan_type t, size_t r)
{
    switch (t) {
    case LM_SCAN_F32: return ((const float *)col)[r];
    case LM_SCAN_I32: return ((const int32_t *)col)[r];
    case LM_SCAN_U8: return ((const uint8_t *)col)[r];
    case LM_SCAN_I64: return (double)((const int64_t *)col)[r];
    }
    return 0;
}

/* The public meaning of a filter: compare as real numbers (here as doubles, exact
 * for the values and constants these tests use). */
static bool naive_pred(const struct lm_scan_pred *p, size_t r)
{
    double v = value(p->col, p->type, r);
    switch (p->op) {
    case LM_CMP_LT: return v < p->a;
    case LM_CMP_LE: return v <= p->a;
    case LM_CMP_GT: return v > p->a;
    case LM_CMP_GE: return v >= p->a;
    case LM_CMP_EQ: return v == p->a;
    case LM_CMP_NE: return v != p->a;
    case LM_CMP_BETWEEN: return p->a <= v && v <= p->b;
    }
    return false;
}

struct scan {
    const struct chunk *c;
    struct lm_region region;
    uint32_t n_preds;
    struct lm_scan_pred preds[LM_SCAN_MAX_PREDS];
};

static size_t naive_select(const struct scan *s, uint32_t *sel)
{
    size_t k = 0;
    for (size_t r = 0; r < s->c->n; r++) {
        bool in = naive_region(&s->region, s->c->x[r], s->c->y[r], s->c->z[r]);
        for (uint32_t j = 0; j < s->n_preds && in; j++)
            in = naive_pred(&s->preds[j], r);
        if (in)
            sel[k++] = (uint32_t)r;
    }
    return k;
}

/* Sequential sum; *scale receives the sum of |values|, the yardstick for rounding. */
static struct lm_scan_agg naive_aggregate(const uint32_t *sel, size_t k, const void *col,
                                          enum lm_scan_type t, double *scale)
{
    struct lm_scan_agg a = {0, 0, INFINITY, -INFINITY};
    *scale = 0;
    for (size_t j = 0; j < k; j++) {
        double v = value(col, t, sel[j]);
        a.count++;
        a.sum += v;
        *scale += fabs(v);
        a.min = v < a.min ? v : a.min;
        a.max = v > a.max ? v : a.max;
    }
    return a;
}

/* ---------------------------------------------------------------- checking one scan */

static void describe(const struct scan *s, char *buf, size_t cap)
{
    int at = snprintf(buf, cap, "seed %" PRIu64 ", n %zu, region %s", seed, s->c->n,
                      region_names[s->region.kind]);
    for (uint32_t j = 0; j < s->n_preds && at > 0 && (size_t)at < cap; j++)
        at += snprintf(buf + at, cap - (size_t)at, ", %s %s %.17g %.17g",
                       type_names[s->preds[j].type], op_names[s->preds[j].op],
                       s->preds[j].a, s->preds[j].b);
}

static bool zero_is_positive(double v) { return v != 0 || !signbit(v); }

/* Every implementation against the naive loop (selection, count, min, max exact; sum
 * within 1e-5 of the sum of |values|) and against the scalar one (bit for bit). */
static void check_scan(const struct scan *s)
{
    const struct chunk *c = s->c;
    size_t n = c->n;
    struct lm_scan_plan plan;
    uint32_t *want = lm_alloc(n * sizeof *want), *got = lm_alloc(n * sizeof *got);
    char what[1024];

    assert_non_null(want);
    assert_non_null(got);
    describe(s, what, sizeof what);
    assert_int_equal(lm_scan_plan_init(&plan, n, c->x, c->y, c->z, &s->region, s->preds,
                                       s->n_preds), 0);
    size_t k = naive_select(s, want);
    for (int i = 0; i < n_impls; i++) {
        size_t kk = 99;
        assert_int_equal(lm_scan_select(impls[i], &plan, got, &kk), 0);
        if (kk != k || (k && memcmp(want, got, k * sizeof *got))) {
            print_error("%s: selection differs (%zu rows, want %zu): %s\n", impls[i]->name,
                        kk, k, what);
            fail();
        }
    }
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        const void *col = chunk_col(c, types[t]);
        double scale;
        struct lm_scan_agg ref = naive_aggregate(want, k, col, types[t], &scale), first;
        for (int i = 0; i < n_impls; i++) {
            struct lm_scan_agg a;
            assert_int_equal(lm_scan_aggregate(impls[i], &plan, col, types[t], &a), 0);
            bool ok = a.count == ref.count && a.min == ref.min && a.max == ref.max &&
                      fabs(a.sum - ref.sum) <= 1e-5 * scale && zero_is_positive(a.min) &&
                      zero_is_positive(a.max);
            if (i == 0)
                first = a;
            else if (impls[i] != loose_sum)
                ok = ok && !memcmp(&a, &first, sizeof a);
            if (!ok) {
                print_error("%s: aggregate of %s: count %" PRIu64 " sum %.17g min %.17g "
                            "max %.17g; want %" PRIu64 " %.17g %.17g %.17g: %s\n",
                            impls[i]->name, type_names[types[t]], a.count, a.sum, a.min,
                            a.max, ref.count, ref.sum, ref.min, ref.max, what);
                fail();
            }
        }
    }
    lm_free(want);
    lm_free(got);
}

/* ---------------------------------------------------------------- tests */

static void avx2_runs_or_is_skipped(void **state)
{
    (void)state;
    if (!lm_scan_avx2())
        assert_ptr_equal(lm_scan_best(), lm_scan_scalar());
    if (!avx2) {
        print_message("no AVX2+FMA (or LUMADB_TEST_NO_AVX2): the AVX2 comparisons are "
                      "skipped\n");
        skip();
    }
    assert_ptr_equal(lm_scan_best(), avx2);
    assert_string_equal(avx2->name, "avx2");
}

static void every_region_with_each_predicate_matches_naive_loop(void **state)
{
    (void)state;
    rng_start(1);
    for (size_t si = 0; si < N_SIZES; si++) {
        struct chunk c;
        chunk_fill(&c, sizes[si]);
        for (int kind = LM_REGION_ALL; kind <= LM_REGION_FRUSTUM; kind++) {
            for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
                for (int op = LM_CMP_LT; op <= LM_CMP_BETWEEN + 1; op++) {
                    struct scan s = {.c = &c, .region = random_region(kind)};
                    if (op <= LM_CMP_BETWEEN) /* the last round has no predicate */
                        s.preds[s.n_preds++] = random_pred(&c, types[t], op);
                    check_scan(&s);
                }
            }
        }
        chunk_free(&c);
    }
}

static void many_predicates_together_match_naive_loop(void **state)
{
    (void)state;
    rng_start(2);
    for (size_t si = 0; si < N_SIZES; si++) {
        struct chunk c;
        chunk_fill(&c, sizes[si]);
        for (int round = 0; round < 24; round++) {
            struct scan s = {.c = &c, .region = random_region(below(4))};
            s.n_preds = 2 + below(LM_SCAN_MAX_PREDS - 1);
            for (uint32_t j = 0; j < s.n_preds; j++) {
                /* Mostly wide ranges, so that some rows survive all of them. */
                enum lm_cmp op = below(3) ? LM_CMP_NE : 1 + below(7);
                s.preds[j] = random_pred(&c, types[below(4)], op);
            }
            check_scan(&s);
        }
        chunk_free(&c);
    }
}

/* Rows exactly on a boundary are inside: x == min, x == max, distance == radius,
 * a plane through the row, a value equal to the constant. */
static void rows_on_the_boundary_are_inside(void **state)
{
    (void)state;
    float x[9] = {1, 2, 3, 0, 3, 4, 5, 2.5f, 1},
          y[9] = {0, 0, 0, 4, 4, 0, 0, 0, 0},
          z[9] = {-1, 0, 1, 0, 0, 0, 0, 0, 0};
    float f[9] = {0.5f, 0.75f, 1, 1.25f, 0.1f, 0.2f, 0.3f, 2, 3};
    struct lm_region box = {.kind = LM_REGION_BOX, .min = {1, 0, -1}, .max = {3, 0, 1}};
    struct lm_region ball = {.kind = LM_REGION_SPHERE, .center = {0, 0, 0}, .radius = 5};
    struct lm_region fr = {.kind = LM_REGION_FRUSTUM};
    for (int k = 0; k < 6; k++)
        fr.planes[k][3] = 1; /* 0x + 0y + 0z + 1 >= 0: everything ... */
    fr.planes[0][0] = -1;    /* ... except -x + 2.5 < 0 */
    fr.planes[0][3] = 2.5f;
    struct lm_scan_pred eq = {.col = f, .type = LM_SCAN_F32, .op = LM_CMP_BETWEEN,
                              .a = 0.75, .b = 1.25};
    struct {
        const struct lm_region *r;
        const struct lm_scan_pred *p;
        size_t k;
        uint32_t rows[9];
    } cases[] = {
        {&box, NULL, 5, {0, 1, 2, 7, 8}},
        {&ball, NULL, 9, {0, 1, 2, 3, 4, 5, 6, 7, 8}}, /* (0,4,0), (3,4,0), (5,0,0) at r */
        {&fr, NULL, 5, {0, 1, 3, 7, 8}},            /* x == 2.5 sits on the plane */
        {&box, &eq, 2, {1, 2}},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        struct lm_scan_plan plan;
        assert_int_equal(lm_scan_plan_init(&plan, 9, x, y, z, cases[ci].r, cases[ci].p,
                                           cases[ci].p ? 1 : 0), 0);
        for (int i = 0; i < n_impls; i++) {
            uint32_t sel[9];
            size_t k;
            assert_int_equal(lm_scan_select(impls[i], &plan, sel, &k), 0);
            assert_int_equal(k, cases[ci].k);
            assert_memory_equal(sel, cases[ci].rows, k * sizeof *sel);
        }
    }
}

/* Rows a rounding away from a sphere's surface or a frustum's planes: there a fused
 * multiply-add, or any other order of operations, decides differently. */
static void rows_near_curved_and_tilted_boundaries_match(void **state)
{
    (void)state;
    rng_start(3);
    struct chunk c;
    chunk_fill(&c, 20011);
    for (int round = 0; round < 8; round++) {
        struct scan s = {.c = &c, .region = random_region(LM_REGION_SPHERE)};
        s.region.radius = (float)uniform(0.5, 8);
        for (size_t r = 0; r < c.n; r++) {
            double d[3], len = 0;
            for (int k = 0; k < 3; k++) {
                d[k] = uniform(-1, 1);
                len += d[k] * d[k];
            }
            len = sqrt(len);
            c.x[r] = (float)(s.region.center[0] + s.region.radius * d[0] / len);
            c.y[r] = (float)(s.region.center[1] + s.region.radius * d[1] / len);
            c.z[r] = (float)(s.region.center[2] + s.region.radius * d[2] / len);
        }
        check_scan(&s);

        s.region = random_region(LM_REGION_FRUSTUM);
        for (int k = 0; k < 6; k++)
            for (int j = 0; j < 4; j++)
                s.region.planes[k][j] = (float)uniform(-1, 1);
        for (size_t r = 0; r < c.n; r++) {
            /* On plane r % 6: solve for z (the other planes decide the rest). */
            const float *pl = s.region.planes[r % 6];
            c.x[r] = (float)uniform(-4, 4);
            c.y[r] = (float)uniform(-4, 4);
            c.z[r] = (float)(-((double)pl[0] * c.x[r] + (double)pl[1] * c.y[r] + pl[3]) /
                             (fabs(pl[2]) > 1e-3 ? pl[2] : 1e-3));
        }
        check_scan(&s);
    }
    chunk_free(&c);
}

/* Runs one predicate over a small column with every implementation and returns the
 * selected rows as bits. */
static uint32_t rows_matching(const void *col, enum lm_scan_type t, size_t n,
                              enum lm_cmp op, double a, double b)
{
    struct lm_scan_pred p = {.col = col, .type = t, .op = op, .a = a, .b = b};
    struct lm_scan_plan plan;
    uint32_t bits = 0;
    assert_int_equal(lm_scan_plan_init(&plan, n, NULL, NULL, NULL, NULL, &p, 1), 0);
    for (int i = 0; i < n_impls; i++) {
        uint32_t sel[32], got = 0;
        size_t k;
        assert_int_equal(lm_scan_select(impls[i], &plan, sel, &k), 0);
        for (size_t j = 0; j < k; j++)
            got |= 1u << sel[j];
        if (i == 0)
            bits = got;
        assert_int_equal(got, bits);
    }
    return bits;
}

static void float_constants_compare_as_real_numbers(void **state)
{
    (void)state;
    /* 0.1f is above the double 0.1; 0.1 lies strictly between two floats. */
    const float v[7] = {0.1f, nextafterf(0.1f, 0), -INFINITY, INFINITY, FLT_MAX, -0.0f,
                        FLT_TRUE_MIN};
    assert_int_equal(rows_matching(v, LM_SCAN_F32, 7, LM_CMP_LT, 0.1, 0), 0x66);
    assert_int_equal(rows_matching(v, LM_SCAN_F32, 7, LM_CMP_LE, 0.1, 0), 0x66);
    assert_int_equal(rows_matching(v, LM_SCAN_F32, 7, LM_CMP_GT, 0.1, 0), 0x19);
    assert_int_equal(rows_matching(v, LM_SCAN_F32, 7, LM_CMP_EQ, 0.1, 0), 0);
    assert_int_equal(rows_matching(v, LM_SCAN_F32, 7, LM_CMP_NE, 0.1, 0), 0x7f);
    assert_int_equal(rows_matching(v, LM_SCAN_F32, 7, LM_CMP_EQ, (double)0.1f, 0), 0x1);
    assert_int_equal(rows_matching(v, LM_SCAN_F32, 7, LM_CMP_EQ, 0.0, 0), 0x20);
    assert_int_equal(rows_matching(v, LM_SCAN_F32, 7, LM_CMP_GT, 0.0, 0), 0x5b);
    /* Beyond the f32 range and at infinity. */
    assert_int_equal(rows_matching(v, LM_SCAN_F32, 7, LM_CMP_LT, 1e39, 0), 0x77);
    assert_int_equal(rows_matching(v, LM_SCAN_F32, 7, LM_CMP_GT, 1e39, 0), 0x08);
    assert_int_equal(rows_matching(v, LM_SCAN_F32, 7, LM_CMP_LT, -1e39, 0), 0x04);
    assert_int_equal(rows_matching(v, LM_SCAN_F32, 7, LM_CMP_GE, INFINITY, 0), 0x08);
    assert_int_equal(rows_matching(v, LM_SCAN_F32, 7, LM_CMP_GT, INFINITY, 0), 0);
    assert_int_equal(rows_matching(v, LM_SCAN_F32, 7, LM_CMP_LT, -INFINITY, 0), 0);
    assert_int_equal(rows_matching(v, LM_SCAN_F32, 7, LM_CMP_LE, INFINITY, 0), 0x7f);
    assert_int_equal(rows_matching(v, LM_SCAN_F32, 7, LM_CMP_GT, 0x1p-160, 0), 0x5b);
    assert_int_equal(rows_matching(v, LM_SCAN_F32, 7, LM_CMP_LE, 0x1p-160, 0), 0x24);
    assert_int_equal(rows_matching(v, LM_SCAN_F32, 7, LM_CMP_BETWEEN, 0.1, 1e300), 0x11);
    assert_int_equal(rows_matching(v, LM_SCAN_F32, 7, LM_CMP_BETWEEN, 1, -1), 0);
}

static void integer_constants_compare_as_real_numbers(void **state)
{
    (void)state;
    const int64_t l[5] = {INT64_MIN, -1, 0, 1, INT64_MAX};
    assert_int_equal(rows_matching(l, LM_SCAN_I64, 5, LM_CMP_LT, 0x1p63, 0), 0x1f);
    assert_int_equal(rows_matching(l, LM_SCAN_I64, 5, LM_CMP_GE, 0x1p63, 0), 0);
    assert_int_equal(rows_matching(l, LM_SCAN_I64, 5, LM_CMP_NE, 0x1p63, 0), 0x1f);
    assert_int_equal(rows_matching(l, LM_SCAN_I64, 5, LM_CMP_EQ, -0x1p63, 0), 0x01);
    assert_int_equal(rows_matching(l, LM_SCAN_I64, 5, LM_CMP_LT, -0x1p63, 0), 0);
    assert_int_equal(rows_matching(l, LM_SCAN_I64, 5, LM_CMP_GT, -0x1p63, 0), 0x1e);
    assert_int_equal(rows_matching(l, LM_SCAN_I64, 5, LM_CMP_GT, 0x1p63 - 1024, 0), 0x10);
    assert_int_equal(rows_matching(l, LM_SCAN_I64, 5, LM_CMP_LT, 0.5, 0), 0x07);
    assert_int_equal(rows_matching(l, LM_SCAN_I64, 5, LM_CMP_GT, -0.5, 0), 0x1c);
    assert_int_equal(rows_matching(l, LM_SCAN_I64, 5, LM_CMP_EQ, 0.5, 0), 0);
    assert_int_equal(rows_matching(l, LM_SCAN_I64, 5, LM_CMP_BETWEEN, -INFINITY, -0.5), 0x03);

    const int32_t i[4] = {INT32_MIN, -7, 7, INT32_MAX};
    assert_int_equal(rows_matching(i, LM_SCAN_I32, 4, LM_CMP_LE, -2147483648.5, 0), 0);
    assert_int_equal(rows_matching(i, LM_SCAN_I32, 4, LM_CMP_LE, -2147483648.0, 0), 0x1);
    assert_int_equal(rows_matching(i, LM_SCAN_I32, 4, LM_CMP_GE, 2147483647.5, 0), 0);
    assert_int_equal(rows_matching(i, LM_SCAN_I32, 4, LM_CMP_GT, 1e300, 0), 0);
    assert_int_equal(rows_matching(i, LM_SCAN_I32, 4, LM_CMP_LT, 1e300, 0), 0xf);
    assert_int_equal(rows_matching(i, LM_SCAN_I32, 4, LM_CMP_NE, 7, 0), 0xb);
    assert_int_equal(rows_matching(i, LM_SCAN_I32, 4, LM_CMP_BETWEEN, -7.5, 7), 0x6);

    const uint8_t u[4] = {0, 1, 254, 255};
    assert_int_equal(rows_matching(u, LM_SCAN_U8, 4, LM_CMP_GT, -1, 0), 0xf);
    assert_int_equal(rows_matching(u, LM_SCAN_U8, 4, LM_CMP_LT, 0, 0), 0);
    assert_int_equal(rows_matching(u, LM_SCAN_U8, 4, LM_CMP_GE, 254.5, 0), 0x8);
    assert_int_equal(rows_matching(u, LM_SCAN_U8, 4, LM_CMP_EQ, 256, 0), 0);
    assert_int_equal(rows_matching(u, LM_SCAN_U8, 4, LM_CMP_NE, 256, 0), 0xf);
    assert_int_equal(rows_matching(u, LM_SCAN_U8, 4, LM_CMP_LE, 0.99, 0), 0x1);
}

static void plan_init_rejects_bad_arguments(void **state)
{
    (void)state;
    float x[1] = {0};
    struct lm_scan_plan plan, untouched;
    struct lm_scan_pred ok = {.col = x, .type = LM_SCAN_F32, .op = LM_CMP_LT, .a = 1};
    struct lm_scan_pred p[LM_SCAN_MAX_PREDS + 1];
    struct lm_region r = {.kind = LM_REGION_SPHERE, .radius = -1};

    for (int k = 0; k <= LM_SCAN_MAX_PREDS; k++)
        p[k] = ok;
    memset(&plan, 0xab, sizeof plan);
    untouched = plan;
    assert_int_equal(lm_scan_plan_init(&plan, 1, x, x, x, NULL, p, LM_SCAN_MAX_PREDS + 1),
                     LM_EBADARG);
    assert_int_equal(lm_scan_plan_init(&plan, 1, x, x, x, &r, NULL, 0), LM_EBADARG);
    r.radius = NAN;
    assert_int_equal(lm_scan_plan_init(&plan, 1, x, x, x, &r, NULL, 0), LM_EBADARG);
    r = (struct lm_region){.kind = LM_REGION_BOX, .max = {NAN, 0, 0}};
    assert_int_equal(lm_scan_plan_init(&plan, 1, x, x, x, &r, NULL, 0), LM_EBADARG);
    r = (struct lm_region){.kind = LM_REGION_FRUSTUM};
    r.planes[5][3] = NAN;
    assert_int_equal(lm_scan_plan_init(&plan, 1, x, x, x, &r, NULL, 0), LM_EBADARG);
    r = (struct lm_region){.kind = 9};
    assert_int_equal(lm_scan_plan_init(&plan, 1, x, x, x, &r, NULL, 0), LM_EBADARG);
    r = (struct lm_region){.kind = LM_REGION_BOX};
    assert_int_equal(lm_scan_plan_init(&plan, 1, x, NULL, x, &r, NULL, 0), LM_EBADARG);
    p[0].a = NAN;
    assert_int_equal(lm_scan_plan_init(&plan, 1, x, x, x, NULL, p, 1), LM_EBADARG);
    p[0] = ok;
    p[0].op = LM_CMP_BETWEEN;
    p[0].b = NAN;
    assert_int_equal(lm_scan_plan_init(&plan, 1, x, x, x, NULL, p, 1), LM_EBADARG);
    p[0] = ok;
    p[0].type = 0;
    assert_int_equal(lm_scan_plan_init(&plan, 1, x, x, x, NULL, p, 1), LM_EBADARG);
    p[0] = ok;
    p[0].op = 0;
    assert_int_equal(lm_scan_plan_init(&plan, 1, x, x, x, NULL, p, 1), LM_EBADARG);
    p[0] = ok;
    p[0].col = NULL;
    assert_int_equal(lm_scan_plan_init(&plan, 1, x, x, x, NULL, p, 1), LM_EBADARG);
    assert_int_equal(lm_scan_plan_init(&plan, LM_SCAN_MAX_ROWS + 1, x, x, x, NULL, NULL, 0),
                     LM_ELIMIT);
    assert_memory_equal(&plan, &untouched, sizeof plan);

    /* No rows: columns may be NULL. */
    assert_int_equal(lm_scan_plan_init(&plan, 0, NULL, NULL, NULL, &r, p, 1), 0);
    size_t k = 1;
    struct lm_scan_agg a;
    assert_int_equal(lm_scan_select(lm_scan_best(), &plan, NULL, &k), 0);
    assert_int_equal(k, 0);
    assert_int_equal(lm_scan_aggregate(lm_scan_best(), &plan, NULL, LM_SCAN_F32, &a), 0);
    assert_int_equal(lm_scan_aggregate(lm_scan_best(), &plan, x, 7, &a), LM_EBADARG);
    assert_int_equal(lm_scan_select(NULL, &plan, NULL, &k), LM_EBADARG);
}

static void aggregates_of_no_rows_merge_as_identity(void **state)
{
    (void)state;
    float v[3] = {2, -0.0f, 5};
    struct lm_scan_pred none = {.col = v, .type = LM_SCAN_F32, .op = LM_CMP_GT, .a = 9};
    struct lm_scan_plan all, empty;
    assert_int_equal(lm_scan_plan_init(&all, 3, NULL, NULL, NULL, NULL, NULL, 0), 0);
    assert_int_equal(lm_scan_plan_init(&empty, 3, NULL, NULL, NULL, NULL, &none, 1), 0);
    for (int i = 0; i < n_impls; i++) {
        struct lm_scan_agg a, e, m = {0, 0, INFINITY, -INFINITY};
        assert_int_equal(lm_scan_aggregate(impls[i], &all, v, LM_SCAN_F32, &a), 0);
        assert_int_equal(lm_scan_aggregate(impls[i], &empty, v, LM_SCAN_F32, &e), 0);
        assert_int_equal(e.count, 0);
        assert_true(e.sum == 0 && e.min == INFINITY && e.max == -INFINITY);
        assert_int_equal(a.count, 3);
        assert_true(a.sum == 7 && a.min == 0 && !signbit(a.min) && a.max == 5);
        lm_scan_agg_merge(&m, &e);
        lm_scan_agg_merge(&m, &a);
        lm_scan_agg_merge(&m, &e);
        assert_memory_equal(&m, &a, sizeof a);
    }
}

int main(void)
{
    const char *env = getenv("LUMADB_TEST_SEED");
    seed = env ? strtoull(env, NULL, 0)
               : (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
    printf("test_kernels_scan: seed %" PRIu64 " (set LUMADB_TEST_SEED to repeat)\n", seed);
    impls_init();
    if (!avx2)
        printf("test_kernels_scan: AVX2 skipped\n");
    if (lm_scan_opencl())
        printf("test_kernels_scan: OpenCL on %s, %s-shaped kernels\n",
               lm_cl_info(lm_device_cl())->device, loose_sum ? "GPU" : "CPU");
    else
        printf("test_kernels_scan: no OpenCL device, CPU tables only\n");
    fflush(stdout);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(avx2_runs_or_is_skipped),
        cmocka_unit_test(plan_init_rejects_bad_arguments),
        cmocka_unit_test(float_constants_compare_as_real_numbers),
        cmocka_unit_test(integer_constants_compare_as_real_numbers),
        cmocka_unit_test(rows_on_the_boundary_are_inside),
        cmocka_unit_test(aggregates_of_no_rows_merge_as_identity),
        cmocka_unit_test(every_region_with_each_predicate_matches_naive_loop),
        cmocka_unit_test(many_predicates_together_match_naive_loop),
        cmocka_unit_test(rows_near_curved_and_tilted_boundaries_match),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
