/* test_kdtree.c - the kd-tree against brute force on random data.
 *
 * Every test draws from a seed printed at start (shown by ctest on failure) and read
 * from LUMADB_TEST_SEED when set, so a failing run can be repeated exactly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "kdtree.h"
#include "lumadb.h"

/* ---------------------------------------------------------------- random data */

static uint64_t base_seed;

static uint64_t rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float rngf(uint64_t *s) { return (float)(rng(s) >> 40) * (1.0f / 16777216.0f); }

/* Each test gets its own stream so it can be rerun alone with the same seed. */
static uint64_t test_stream(uint64_t salt) { return base_seed ^ (salt * 0x2545f4914f6cdd1dull); }

enum dist {
    UNIFORM,
    CLUSTERED,
    GRID, /* few distinct values: coincident points, ties */
    LINE, /* on a segment: flat boxes, every split costs the same */
    SAME  /* all at one point */
};

struct pts {
    uint32_t n;
    float *x, *y, *z;
};

static void pts_free(struct pts *p)
{
    free(p->x);
    free(p->y);
    free(p->z);
}

static uint64_t spread3(uint64_t v)
{
    v &= 0x3ff;
    v = (v | v << 16) & 0x030000ff;
    v = (v | v << 8) & 0x0300f00f;
    v = (v | v << 4) & 0x030c30c3;
    v = (v | v << 2) & 0x09249249;
    return v;
}

struct keyed {
    uint64_t key;
    float x, y, z;
};

static int keyed_cmp(const void *a, const void *b)
{
    uint64_t ka = ((const struct keyed *)a)->key, kb = ((const struct keyed *)b)->key;
    return ka < kb ? -1 : ka > kb;
}

/* n points of the given distribution in about [0,1)^3, in Morton order unless
 * `shuffled`. */
static struct pts make_pts(uint64_t *s, uint32_t n, enum dist d, bool shuffled)
{
    struct keyed *k = calloc(n ? n : 1, sizeof *k);
    float cx[8], cy[8], cz[8];
    for (int c = 0; c < 8; c++)
        cx[c] = rngf(s), cy[c] = rngf(s), cz[c] = rngf(s);
    for (uint32_t i = 0; i < n; i++) {
        float v[3];
        for (int a = 0; a < 3; a++) {
            if (d == UNIFORM)
                v[a] = rngf(s);
            else if (d == LINE)
                v[a] = a == 0 ? rngf(s) : 0.5f;
            else if (d == SAME)
                v[a] = 0.25f;
            else if (d == GRID)
                v[a] = (float)(rng(s) % 5) * 0.25f;
            else
                v[a] = (rngf(s) + rngf(s) + rngf(s) - 1.5f) * 0.02f;
        }
        if (d == CLUSTERED) {
            int c = (int)(rng(s) % 8);
            v[0] += cx[c], v[1] += cy[c], v[2] += cz[c];
        }
        k[i].x = v[0], k[i].y = v[1], k[i].z = v[2];
        uint64_t q[3];
        for (int a = 0; a < 3; a++)
            q[a] = (uint64_t)(fminf(fmaxf(v[a], 0.0f), 0.999f) * 1024.0f);
        k[i].key = shuffled ? rng(s) : spread3(q[0]) | spread3(q[1]) << 1 | spread3(q[2]) << 2;
    }
    qsort(k, n, sizeof *k, keyed_cmp);
    struct pts p = {n, malloc((n ? n : 1) * sizeof(float)), malloc((n ? n : 1) * sizeof(float)),
                    malloc((n ? n : 1) * sizeof(float))};
    for (uint32_t i = 0; i < n; i++)
        p.x[i] = k[i].x, p.y[i] = k[i].y, p.z[i] = k[i].z;
    free(k);
    return p;
}

static lm_kdtree *build(const struct pts *p)
{
    lm_kdtree *t = NULL;
    assert_int_equal(lm_kdtree_build(p->x, p->y, p->z, p->n, &t), 0);
    assert_non_null(t);
    return t;
}

static void random_query(uint64_t *s, const struct pts *p, float q[3])
{
    if (p->n > 0 && rng(s) % 4 == 0) { /* exactly on a point: distance 0, ties */
        uint32_t i = (uint32_t)(rng(s) % p->n);
        q[0] = p->x[i], q[1] = p->y[i], q[2] = p->z[i];
        return;
    }
    for (int a = 0; a < 3; a++)
        q[a] = rngf(s) * 1.4f - 0.2f;
}

/* ---------------------------------------------------------------- kNN reference */

static float d2_of(const struct pts *p, uint32_t i, const float q[3])
{
    float dx = p->x[i] - q[0], dy = p->y[i] - q[1], dz = p->z[i] - q[2];
    return dx * dx + dy * dy + dz * dz;
}

struct entry {
    float d2;
    uint64_t id;
};

static int entry_cmp(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    if (x->d2 != y->d2)
        return x->d2 < y->d2 ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Filter used by both the tree and the reference: keep i unless i % 3 == 1. */
struct filter {
    const struct pts *p;
    const float *q;
    float max_d2;
    unsigned char *seen;
    int calls, repeats, beyond;
};

static bool filter_accept(void *ctx, uint32_t i)
{
    struct filter *f = ctx;
    f->calls++;
    f->repeats += f->seen[i]++ > 0;
    f->beyond += !(d2_of(f->p, i, f->q) <= f->max_d2);
    return i % 3 != 1;
}

struct tagged {
    const struct pts *p;
    uint64_t tag;
};

/* The k smallest (d2, id) of the union of the sets, sorted; returns how many. */
static uint32_t brute_knn(const struct tagged *sets, int n_sets, const float q[3],
                          uint32_t k, float max_d2, bool filtered, struct entry *out)
{
    size_t total = 0;
    for (int s = 0; s < n_sets; s++)
        total += sets[s].p->n;
    struct entry *all = malloc((total ? total : 1) * sizeof *all);
    size_t m = 0;
    for (int s = 0; s < n_sets; s++)
        for (uint32_t i = 0; i < sets[s].p->n; i++) {
            float d2 = d2_of(sets[s].p, i, q);
            if (d2 <= max_d2 && (!filtered || i % 3 != 1))
                all[m++] = (struct entry){d2, sets[s].tag | i};
        }
    qsort(all, m, sizeof *all, entry_cmp);
    uint32_t r = m < k ? (uint32_t)m : k;
    memcpy(out, all, r * sizeof *out);
    free(all);
    return r;
}

/* One query through one or more trees into one heap, checked against brute force. */
static void check_knn(const struct tagged *sets, lm_kdtree *const *trees, int n_sets,
                      const float q[3], uint32_t k, float max_d2, bool filtered)
{
    struct lm_knn_heap h;
    assert_int_equal(lm_knn_heap_init(&h, k), 0);
    int repeats = 0, beyond = 0;
    for (int s = 0; s < n_sets; s++) {
        const struct pts *p = sets[s].p;
        struct filter f = {p, q, max_d2, calloc(p->n + 1, 1), 0, 0, 0};
        lm_kdtree_knn(trees[s], p->x, p->y, p->z, q, sets[s].tag, max_d2,
                      filtered ? filter_accept : NULL, &f, &h);
        repeats += f.repeats, beyond += f.beyond;
        free(f.seen);
    }
    assert_int_equal(repeats, 0);
    assert_int_equal(beyond, 0);
    struct entry *want = malloc((k + 1) * sizeof *want);
    uint32_t nw = brute_knn(sets, n_sets, q, k, max_d2, filtered, want);
    float bound = lm_knn_heap_bound(&h);
    if (nw < k)
        assert_true(isinf(bound));
    else
        assert_true(bound == want[k - 1].d2);
    lm_knn_heap_sort(&h);
    assert_int_equal(h.n, nw);
    for (uint32_t j = 0; j < nw; j++) {
        assert_true(h.d2[j] == want[j].d2);
        assert_int_equal(h.id[j], want[j].id);
    }
    free(want);
    lm_knn_heap_free(&h);
}

static const uint32_t ks[] = {1, 5, 10, 50};

/* Queries over one tree built from n points of distribution d. */
static void knn_case(uint64_t *s, uint32_t n, enum dist d, bool shuffled, int queries)
{
    struct pts p = make_pts(s, n, d, shuffled);
    lm_kdtree *t = build(&p);
    struct tagged set = {&p, 0};
    for (int qi = 0; qi < queries; qi++) {
        float q[3];
        random_query(s, &p, q);
        uint32_t k = ks[qi % 4];
        float max_d2 = (qi / 4) % 3 == 0 ? INFINITY : rngf(s) * 0.05f;
        if ((qi / 4) % 3 == 2 && n > 0) /* exactly a point's distance: inclusive */
            max_d2 = d2_of(&p, (uint32_t)(rng(s) % n), q);
        check_knn(&set, &t, 1, q, k, max_d2, qi % 5 == 3);
    }
    lm_kdtree_free(t);
    pts_free(&p);
}

/* ---------------------------------------------------------------- kNN tests */

static void knn_equals_brute_force_on_uniform_points(void **state)
{
    (void)state;
    uint64_t s = test_stream(1);
    knn_case(&s, 1000, UNIFORM, false, 200);
    knn_case(&s, 20000, UNIFORM, false, 100);
}

static void knn_equals_brute_force_on_clustered_points(void **state)
{
    (void)state;
    uint64_t s = test_stream(2);
    knn_case(&s, 3000, CLUSTERED, false, 200);
}

static void knn_breaks_ties_by_id_on_coincident_points(void **state)
{
    (void)state;
    uint64_t s = test_stream(3);
    knn_case(&s, 2000, GRID, false, 200);
    knn_case(&s, 40, GRID, false, 50);
    knn_case(&s, 1500, LINE, false, 60);
    knn_case(&s, 700, SAME, false, 30);
}

static void knn_does_not_depend_on_point_order(void **state)
{
    (void)state;
    uint64_t s = test_stream(4);
    knn_case(&s, 2000, UNIFORM, true, 100);
    knn_case(&s, 2000, GRID, true, 100);
}

static void knn_handles_empty_single_and_leaf_boundary_sizes(void **state)
{
    (void)state;
    uint64_t s = test_stream(5);
    /* 0 and 1 point, then every size up to three leaves of 24 points (a root that is
     * one leaf, then one split), k > n included; then sizes around full subtrees
     * (nodes have 8 children: 192 and 1536 points), where the depth changes. */
    for (uint32_t n = 0; n <= 75; n++)
        knn_case(&s, n, n % 2 ? UNIFORM : GRID, false, 12);
    const uint32_t edges[] = {95, 96, 97, 191, 192, 193, 383, 384, 385, 1535, 1536, 1537};
    for (size_t e = 0; e < sizeof edges / sizeof *edges; e++)
        knn_case(&s, edges[e], UNIFORM, false, 12);
}

static void knn_with_large_k_equals_brute_force(void **state)
{
    (void)state;
    /* Large k visits more boxes than the best-first queue holds: the overflow path. */
    uint64_t s = test_stream(15);
    struct pts p = make_pts(&s, 6000, CLUSTERED, false);
    lm_kdtree *t = build(&p);
    struct tagged set = {&p, 0};
    const uint32_t big[] = {500, 3000, 7000};
    for (int qi = 0; qi < 9; qi++) {
        float q[3];
        random_query(&s, &p, q);
        check_knn(&set, &t, 1, q, big[qi % 3], qi < 6 ? INFINITY : 0.05f, qi % 2 == 1);
    }
    lm_kdtree_free(t);
    pts_free(&p);
}

static void knn_applies_accept_filter_once_per_candidate(void **state)
{
    (void)state;
    uint64_t s = test_stream(6);
    struct pts p = make_pts(&s, 5000, CLUSTERED, false);
    lm_kdtree *t = build(&p);
    struct tagged set = {&p, 0};
    for (int qi = 0; qi < 100; qi++) {
        float q[3];
        random_query(&s, &p, q);
        check_knn(&set, &t, 1, q, ks[qi % 4], qi % 2 ? INFINITY : 0.01f, true);
    }
    /* The filter is consulted only near the query, not for every point. */
    struct lm_knn_heap h;
    assert_int_equal(lm_knn_heap_init(&h, 10), 0);
    float q[3] = {p.x[0], p.y[0], p.z[0]};
    struct filter f = {&p, q, INFINITY, calloc(p.n, 1), 0, 0, 0};
    lm_kdtree_knn(t, p.x, p.y, p.z, q, 0, INFINITY, filter_accept, &f, &h);
    assert_int_equal(h.n, 10);
    assert_true(f.calls >= 10 && f.calls < 200);
    free(f.seen);
    lm_knn_heap_free(&h);
    lm_kdtree_free(t);
    pts_free(&p);
}

static void knn_heap_shared_by_two_trees_equals_union(void **state)
{
    (void)state;
    uint64_t s = test_stream(7);
    for (int round = 0; round < 6; round++) {
        struct pts a = make_pts(&s, 500 + (uint32_t)(rng(&s) % 2000), round % 2 ? GRID : UNIFORM, false);
        struct pts b = make_pts(&s, (uint32_t)(rng(&s) % 3000), round % 3 ? CLUSTERED : GRID, false);
        lm_kdtree *t[2] = {build(&a), build(&b)};
        struct tagged sets[2] = {{&a, 7ull << 32}, {&b, 3ull << 32}};
        lm_kdtree *rev[2] = {t[1], t[0]};
        struct tagged rsets[2] = {sets[1], sets[0]};
        for (int qi = 0; qi < 60; qi++) {
            float q[3];
            random_query(&s, qi % 2 ? &a : &b, q);
            float max_d2 = qi % 3 ? INFINITY : 0.02f;
            check_knn(sets, t, 2, q, ks[qi % 4], max_d2, qi % 7 == 0);
            check_knn(rsets, rev, 2, q, ks[qi % 4], max_d2, false);
        }
        lm_kdtree_free(t[0]);
        lm_kdtree_free(t[1]);
        pts_free(&a);
        pts_free(&b);
    }
}

static void heap_push_and_sort_order_by_distance_then_id(void **state)
{
    (void)state;
    uint64_t s = test_stream(8);
    for (int round = 0; round < 50; round++) {
        uint32_t k = 1 + (uint32_t)(rng(&s) % 20), m = (uint32_t)(rng(&s) % 60);
        struct lm_knn_heap h;
        assert_int_equal(lm_knn_heap_init(&h, k), 0);
        struct entry *all = malloc((m + 1) * sizeof *all);
        for (uint32_t i = 0; i < m; i++) {
            all[i] = (struct entry){(float)(rng(&s) % 8), rng(&s) % 16};
            lm_knn_heap_push(&h, all[i].d2, all[i].id);
        }
        qsort(all, m, sizeof *all, entry_cmp);
        uint32_t want = m < k ? m : k;
        assert_int_equal(h.n, want);
        lm_knn_heap_sort(&h);
        for (uint32_t j = 0; j < want; j++) {
            assert_true(h.d2[j] == all[j].d2);
            assert_int_equal(h.id[j], all[j].id);
        }
        lm_knn_heap_reset(&h);
        assert_int_equal(h.n, 0);
        assert_true(isinf(lm_knn_heap_bound(&h)));
        free(all);
        lm_knn_heap_free(&h);
    }
    struct lm_knn_heap h;
    assert_int_equal(lm_knn_heap_init(&h, 0), LM_EBADARG);
    /* A caller-filled heap without room takes nothing. */
    float d2;
    uint64_t id;
    struct lm_knn_heap none = {0, 0, &d2, &id};
    assert_false(lm_knn_heap_push(&none, 1.0f, 7));
    assert_true(lm_knn_heap_bound(&none) < 0);
    assert_int_equal(none.n, 0);
}

/* ---------------------------------------------------------------- range queries */

struct collected {
    uint32_t n;
    unsigned char *hit;
    uint32_t last_end;
    int runs, bad_order, twice, stop_after;
};

static int collect_run(void *ctx, uint32_t b, uint32_t e)
{
    struct collected *c = ctx;
    c->runs++;
    /* Runs ascend and never touch (kdtree.h invariant 5). */
    c->bad_order += (c->runs > 1 && b <= c->last_end) || e <= b || e > c->n;
    c->last_end = e;
    for (uint32_t i = b; i < e && i < c->n; i++)
        c->twice += c->hit[i]++ > 0;
    return c->stop_after && c->runs == c->stop_after ? 42 : 0;
}

enum rkind { RK_BOX, RK_SPHERE, RK_FRUSTUM };

struct rquery {
    enum rkind kind;
    float lo[3], hi[3], c[3], r, pl[6][4];
};

static bool rquery_has(const struct rquery *g, const struct pts *p, uint32_t i)
{
    float v[3] = {p->x[i], p->y[i], p->z[i]};
    switch (g->kind) {
    case RK_BOX:
        return v[0] >= g->lo[0] && v[0] <= g->hi[0] && v[1] >= g->lo[1] &&
               v[1] <= g->hi[1] && v[2] >= g->lo[2] && v[2] <= g->hi[2];
    case RK_SPHERE:
        return g->r >= 0 && d2_of(p, i, g->c) <= g->r * g->r;
    case RK_FRUSTUM:
        for (int k = 0; k < 6; k++)
            if (!(((g->pl[k][0] * v[0] + g->pl[k][1] * v[1]) + g->pl[k][2] * v[2]) +
                      g->pl[k][3] >= 0))
                return false;
        return true;
    }
    return false;
}

static int rquery_run(const struct rquery *g, lm_kdtree *t, const struct pts *p,
                      struct collected *c)
{
    switch (g->kind) {
    case RK_BOX:
        return lm_kdtree_box(t, p->x, p->y, p->z, g->lo, g->hi, collect_run, c);
    case RK_SPHERE:
        return lm_kdtree_sphere(t, p->x, p->y, p->z, g->c, g->r, collect_run, c);
    case RK_FRUSTUM:
        return lm_kdtree_frustum(t, p->x, p->y, p->z, (const float(*)[4])g->pl, collect_run, c);
    }
    return -1;
}

/* A parallelepiped around a point as six planes: pairs with opposite normals. */
static void random_frustum(uint64_t *s, const float c[3], float w, float pl[6][4])
{
    for (int a = 0; a < 3; a++) {
        float nv[3];
        for (int j = 0; j < 3; j++)
            nv[j] = rngf(s) * 2 - 1;
        nv[a] += 2; /* keep the three normals independent */
        float nc = nv[0] * c[0] + nv[1] * c[1] + nv[2] * c[2];
        float wa = w * (0.3f + rngf(s));
        for (int j = 0; j < 3; j++)
            pl[2 * a][j] = nv[j], pl[2 * a + 1][j] = -nv[j];
        pl[2 * a][3] = -(nc - wa);
        pl[2 * a + 1][3] = nc + wa;
    }
}

static void random_rquery(uint64_t *s, const struct pts *p, enum rkind kind, struct rquery *g)
{
    float c[3];
    random_query(s, p, c);
    float w = rngf(s) * (rng(s) % 4 == 0 ? 1.5f : 0.15f);
    *g = (struct rquery){.kind = kind, .c = {c[0], c[1], c[2]}, .r = w};
    for (int a = 0; a < 3; a++)
        g->lo[a] = c[a] - w * rngf(s), g->hi[a] = c[a] + w * rngf(s);
    if (kind == RK_BOX && p->n > 0 && rng(s) % 3 == 0) { /* faces through points */
        uint32_t i = (uint32_t)(rng(s) % p->n), j = (uint32_t)(rng(s) % p->n);
        g->lo[0] = fminf(p->x[i], p->x[j]), g->hi[0] = fmaxf(p->x[i], p->x[j]);
        g->lo[1] = fminf(p->y[i], p->y[j]), g->hi[1] = fmaxf(p->y[i], p->y[j]);
    }
    if (kind == RK_SPHERE && p->n > 0 && rng(s) % 3 == 0) /* radius through a point */
        g->r = sqrtf(d2_of(p, (uint32_t)(rng(s) % p->n), g->c));
    if (kind == RK_SPHERE && rng(s) % 20 == 0)
        g->r = -1.0f;
    if (kind == RK_FRUSTUM)
        random_frustum(s, c, w, g->pl);
}

static void check_region(const struct rquery *g, lm_kdtree *t, const struct pts *p)
{
    struct collected c = {p->n, calloc(p->n + 1, 1), 0, 0, 0, 0, 0};
    assert_int_equal(rquery_run(g, t, p, &c), 0);
    assert_int_equal(c.bad_order, 0);
    assert_int_equal(c.twice, 0);
    for (uint32_t i = 0; i < p->n; i++)
        if (c.hit[i] != rquery_has(g, p, i))
            fail_msg("kind %d point %u: tree says %d, brute force %d", g->kind, i, c.hit[i],
                     rquery_has(g, p, i));
    free(c.hit);
}

static void regions_case(uint64_t *s, uint32_t n, enum dist d, int queries)
{
    struct pts p = make_pts(s, n, d, false);
    lm_kdtree *t = build(&p);
    for (int qi = 0; qi < queries; qi++) {
        struct rquery g;
        random_rquery(s, &p, (enum rkind)(qi % 3), &g);
        check_region(&g, t, &p);
    }
    lm_kdtree_free(t);
    pts_free(&p);
}

static void box_sphere_frustum_equal_brute_force(void **state)
{
    (void)state;
    uint64_t s = test_stream(9);
    regions_case(&s, 5000, UNIFORM, 150);
    regions_case(&s, 5000, CLUSTERED, 150);
    regions_case(&s, 3000, GRID, 150);
    regions_case(&s, 1000, LINE, 60);
    regions_case(&s, 500, SAME, 30);
    for (uint32_t n = 0; n <= 40; n++)
        regions_case(&s, n, UNIFORM, 6);
    regions_case(&s, 1025, UNIFORM, 30);
}

static void whole_range_inside_comes_as_one_run(void **state)
{
    (void)state;
    uint64_t s = test_stream(10);
    struct pts p = make_pts(&s, 4000, UNIFORM, false);
    lm_kdtree *t = build(&p);
    struct collected c = {p.n, calloc(p.n, 1), 0, 0, 0, 0, 0};
    float lo[3] = {-1, -1, -1}, hi[3] = {2, 2, 2};
    assert_int_equal(lm_kdtree_box(t, p.x, p.y, p.z, lo, hi, collect_run, &c), 0);
    assert_int_equal(c.runs, 1);
    assert_int_equal(c.last_end, p.n);
    /* An empty box (min > max) matches nothing. */
    memset(c.hit, 0, p.n);
    c.runs = 0;
    float elo[3] = {0.6f, 0, 0}, ehi[3] = {0.4f, 1, 1};
    assert_int_equal(lm_kdtree_box(t, p.x, p.y, p.z, elo, ehi, collect_run, &c), 0);
    assert_int_equal(c.runs, 0);
    free(c.hit);
    lm_kdtree_free(t);
    pts_free(&p);
}

static void range_callback_can_stop_the_walk(void **state)
{
    (void)state;
    uint64_t s = test_stream(11);
    struct pts p = make_pts(&s, 3000, UNIFORM, false);
    lm_kdtree *t = build(&p);
    float c0[3] = {0.5f, 0.5f, 0.5f};
    struct collected c = {p.n, calloc(p.n, 1), 0, 0, 0, 0, 1};
    assert_int_equal(lm_kdtree_sphere(t, p.x, p.y, p.z, c0, 0.3f, collect_run, &c), 42);
    assert_int_equal(c.runs, 1);
    free(c.hit);
    lm_kdtree_free(t);
    pts_free(&p);
}

/* ---------------------------------------------------------------- build */

static void build_reports_tight_bounds_and_size(void **state)
{
    (void)state;
    uint64_t s = test_stream(12);
    const uint32_t sizes[] = {0, 1, 2, 16, 17, 1000};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        struct pts p = make_pts(&s, sizes[k], CLUSTERED, false);
        lm_kdtree *t = build(&p);
        float lo[3], hi[3], wlo[3] = {INFINITY, INFINITY, INFINITY},
                            whi[3] = {-INFINITY, -INFINITY, -INFINITY};
        for (uint32_t i = 0; i < p.n; i++) {
            float v[3] = {p.x[i], p.y[i], p.z[i]};
            for (int a = 0; a < 3; a++)
                wlo[a] = fminf(wlo[a], v[a]), whi[a] = fmaxf(whi[a], v[a]);
        }
        lm_kdtree_bounds(t, lo, hi);
        for (int a = 0; a < 3; a++) {
            assert_true(lo[a] == wlo[a]);
            assert_true(hi[a] == whi[a]);
        }
        assert_int_equal(lm_kdtree_size(t), p.n);
        size_t bytes = lm_kdtree_memory_bytes(t);
        /* Worst case one 256-byte node per 12 points; Morton-ordered data far less. */
        assert_true(bytes > 0 && bytes <= 1024 + (size_t)p.n * 22);
        if (p.n >= 1000)
            assert_true(bytes <= (size_t)p.n * 8);
        lm_kdtree_free(t);
        pts_free(&p);
    }
    lm_kdtree_free(NULL);
}

static void build_rejects_nan_and_infinite_coordinates(void **state)
{
    (void)state;
    uint64_t s = test_stream(13);
    struct pts p = make_pts(&s, 500, UNIFORM, false);
    const float bad[] = {NAN, INFINITY, -INFINITY};
    for (int b = 0; b < 3; b++)
        for (int axis = 0; axis < 3; axis++) {
            float *col = axis == 0 ? p.x : axis == 1 ? p.y : p.z;
            uint32_t i = (uint32_t)(rng(&s) % p.n);
            float keep = col[i];
            col[i] = bad[b];
            lm_kdtree *t = (lm_kdtree *)&s; /* must stay untouched */
            assert_int_equal(lm_kdtree_build(p.x, p.y, p.z, p.n, &t), LM_EBADVALUE);
            assert_ptr_equal(t, (lm_kdtree *)&s);
            col[i] = keep;
        }
    lm_kdtree *t = NULL;
    assert_int_equal(lm_kdtree_build(NULL, p.y, p.z, p.n, &t), LM_EBADARG);
    assert_int_equal(lm_kdtree_build(p.x, p.y, p.z, p.n, NULL), LM_EBADARG);
    assert_null(t);
    pts_free(&p);
}

static int allocs_left;
static bool limited_alloc(size_t n)
{
    (void)n;
    return allocs_left-- > 0;
}

static void build_and_heap_init_fail_cleanly_out_of_memory(void **state)
{
    (void)state;
    uint64_t s = test_stream(14);
    struct pts p = make_pts(&s, 300, UNIFORM, false);
    for (int budget = 0; budget < 2; budget++) {
        allocs_left = budget;
        lm_alloc_set_hook(limited_alloc);
        lm_kdtree *t = NULL;
        int rc = lm_kdtree_build(p.x, p.y, p.z, p.n, &t);
        lm_alloc_set_hook(NULL);
        assert_int_equal(rc, -ENOMEM);
        assert_null(t);
    }
    for (int budget = 0; budget < 2; budget++) {
        allocs_left = budget;
        lm_alloc_set_hook(limited_alloc);
        struct lm_knn_heap h = {0};
        int rc = lm_knn_heap_init(&h, 10);
        lm_alloc_set_hook(NULL);
        assert_int_equal(rc, -ENOMEM);
        assert_null(h.d2);
    }
    pts_free(&p);
}

int main(void)
{
    const char *env = getenv("LUMADB_TEST_SEED");
    base_seed = env ? strtoull(env, NULL, 0)
                    : (uint64_t)time(NULL) * 1000003u ^ (uint64_t)getpid() << 20;
    fprintf(stderr, "test_kdtree: seed %llu (repeat with LUMADB_TEST_SEED=%llu)\n",
            (unsigned long long)base_seed, (unsigned long long)base_seed);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(knn_equals_brute_force_on_uniform_points),
        cmocka_unit_test(knn_equals_brute_force_on_clustered_points),
        cmocka_unit_test(knn_breaks_ties_by_id_on_coincident_points),
        cmocka_unit_test(knn_does_not_depend_on_point_order),
        cmocka_unit_test(knn_handles_empty_single_and_leaf_boundary_sizes),
        cmocka_unit_test(knn_with_large_k_equals_brute_force),
        cmocka_unit_test(knn_applies_accept_filter_once_per_candidate),
        cmocka_unit_test(knn_heap_shared_by_two_trees_equals_union),
        cmocka_unit_test(heap_push_and_sort_order_by_distance_then_id),
        cmocka_unit_test(box_sphere_frustum_equal_brute_force),
        cmocka_unit_test(whole_range_inside_comes_as_one_run),
        cmocka_unit_test(range_callback_can_stop_the_walk),
        cmocka_unit_test(build_reports_tight_bounds_and_size),
        cmocka_unit_test(build_rejects_nan_and_infinite_coordinates),
        cmocka_unit_test(build_and_heap_init_fail_cleanly_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
