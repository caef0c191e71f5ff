/* kdtree.c - implicit bounding-box tree over Morton-ordered points (see kdtree.h).
 *
 * Layout: nodes are numbered from 1 (slot 0 is unused): node i has children 2i and
 * 2i+1, which sit next to each other, so a visit that tests both children reads 48
 * adjacent bytes. Level l holds nodes [2^l, 2^(l+1)); node i at level l, position
 * p = i - 2^l, covers [p*n >> l, (p+1)*n >> l). Leaves are level `depth`.
 */
#include "kdtree.h"

#include <errno.h>
#include <math.h>

#include "alloc.h"
#include "lumadb.h"

/* Most points in a leaf. A leaf holds more than LEAF_MAX/2 of them (see depth_for).
 * 16 won the kNN benchmark (bench/bench_kdtree.c) against 8, 12, 24 and 32. */
#define LEAF_MAX 16u
/* Deepest possible tree: n < 2^32 points, leaves of at least 1 point. */
#define STACK_MAX 40

struct box {
    float lo[3], hi[3];
};

struct lm_kdtree {
    uint32_t n;
    uint32_t depth;     /* level of the leaves; the root is level 0 */
    uint32_t n_slots;   /* 2^(depth+1): node slots including unused slot 0 */
    struct box *node;   /* n_slots boxes; NULL when n == 0 */
};

/* ---------------------------------------------------------------- small helpers */

/* Written as comparisons (not fmaxf) so they compile to one min/max instruction. */
static inline float max_f(float a, float b) { return a > b ? a : b; }
static inline float min_f(float a, float b) { return a < b ? a : b; }

/* Index range of node i (any level). */
static inline void node_range(const lm_kdtree *t, uint32_t i, uint32_t *lo, uint32_t *hi)
{
    unsigned level = 31u - (unsigned)__builtin_clz(i);
    uint64_t p = i - (1u << level);
    *lo = (uint32_t)((p * t->n) >> level);
    *hi = (uint32_t)(((p + 1) * t->n) >> level);
}

static inline bool is_leaf(const lm_kdtree *t, uint32_t i) { return i >= (t->n_slots >> 1); }

/* Squared distance from q to the nearest point of b; 0 inside. A lower bound of the
 * d2 of every point in b, computed with the point formula's operations (invariant 3). */
static inline float box_d2(const struct box *b, float qx, float qy, float qz)
{
    float dx = max_f(max_f(b->lo[0] - qx, qx - b->hi[0]), 0.0f);
    float dy = max_f(max_f(b->lo[1] - qy, qy - b->hi[1]), 0.0f);
    float dz = max_f(max_f(b->lo[2] - qz, qz - b->hi[2]), 0.0f);
    return dx * dx + dy * dy + dz * dz;
}

/* ---------------------------------------------------------------- build */

/* Least depth whose leaves hold at most LEAF_MAX points. With depth >= 1,
 * n > 2^(depth-1) * LEAF_MAX, so every leaf gets more than LEAF_MAX/2 >= 1 points. */
static uint32_t depth_for(uint32_t n)
{
    uint32_t d = 0;
    while ((((uint64_t)n + (1ull << d) - 1) >> d) > LEAF_MAX)
        d++;
    return d;
}

/* Tight box of points [lo, hi) (hi > lo); returns false if a coordinate is NaN or
 * infinite. */
static bool leaf_box(const float *x, const float *y, const float *z, uint32_t lo,
                     uint32_t hi, struct box *b)
{
    float l0 = x[lo], l1 = y[lo], l2 = z[lo];
    float h0 = l0, h1 = l1, h2 = l2;
    for (uint32_t i = lo + 1; i < hi; i++) {
        l0 = min_f(x[i], l0), h0 = max_f(x[i], h0);
        l1 = min_f(y[i], l1), h1 = max_f(y[i], h1);
        l2 = min_f(z[i], l2), h2 = max_f(z[i], h2);
    }
    /* NaN never wins a comparison, so it cannot hide here: look for it directly. */
    bool finite = isfinite(l0) && isfinite(l1) && isfinite(l2) && isfinite(h0) &&
                  isfinite(h1) && isfinite(h2);
    for (uint32_t i = lo; i < hi && finite; i++)
        finite = !isnan(x[i]) && !isnan(y[i]) && !isnan(z[i]);
    *b = (struct box){{l0, l1, l2}, {h0, h1, h2}};
    return finite;
}

int lm_kdtree_build(const float *x, const float *y, const float *z, uint32_t n,
                    lm_kdtree **out)
{
    if (!out || (n > 0 && (!x || !y || !z)))
        return LM_EBADARG;
    lm_kdtree *t = lm_calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->n = n;
    if (n == 0) {
        *out = t;
        return 0;
    }
    t->depth = depth_for(n);
    t->n_slots = 2u << t->depth;
    t->node = lm_alloc((size_t)t->n_slots * sizeof *t->node);
    if (!t->node) {
        lm_free(t);
        return -ENOMEM;
    }
    uint32_t first_leaf = t->n_slots >> 1;
    for (uint32_t i = first_leaf; i < t->n_slots; i++) {
        uint32_t lo, hi;
        node_range(t, i, &lo, &hi);
        if (!leaf_box(x, y, z, lo, hi, &t->node[i])) {
            lm_kdtree_free(t);
            return LM_EBADVALUE;
        }
    }
    for (uint32_t i = first_leaf - 1; i >= 1; i--) {
        const struct box *a = &t->node[2 * i], *b = &t->node[2 * i + 1];
        struct box *p = &t->node[i];
        for (int k = 0; k < 3; k++) {
            p->lo[k] = min_f(a->lo[k], b->lo[k]);
            p->hi[k] = max_f(a->hi[k], b->hi[k]);
        }
    }
    t->node[0] = t->node[1];
    *out = t;
    return 0;
}

void lm_kdtree_free(lm_kdtree *t)
{
    if (!t)
        return;
    lm_free(t->node);
    lm_free(t);
}

uint32_t lm_kdtree_size(const lm_kdtree *t) { return t ? t->n : 0; }

size_t lm_kdtree_memory_bytes(const lm_kdtree *t)
{
    return t ? sizeof *t + (size_t)t->n_slots * sizeof *t->node : 0;
}

void lm_kdtree_bounds(const lm_kdtree *t, float min[3], float max[3])
{
    for (int k = 0; k < 3; k++) {
        min[k] = t && t->n ? t->node[1].lo[k] : INFINITY;
        max[k] = t && t->n ? t->node[1].hi[k] : -INFINITY;
    }
}

/* ---------------------------------------------------------------- kNN heap */

/* The total order of entries (invariant 4). */
static inline bool entry_less(float da, uint64_t ia, float db, uint64_t ib)
{
    return da < db || (da == db && ia < ib);
}

int lm_knn_heap_init(struct lm_knn_heap *h, uint32_t k)
{
    if (!h || k == 0)
        return LM_EBADARG;
    float *d2 = lm_alloc((size_t)k * sizeof *d2);
    uint64_t *id = lm_alloc((size_t)k * sizeof *id);
    if (!d2 || !id) {
        lm_free(d2);
        lm_free(id);
        return -ENOMEM;
    }
    *h = (struct lm_knn_heap){.k = k, .n = 0, .d2 = d2, .id = id};
    return 0;
}

void lm_knn_heap_free(struct lm_knn_heap *h)
{
    if (!h)
        return;
    lm_free(h->d2);
    lm_free(h->id);
    *h = (struct lm_knn_heap){0};
}

void lm_knn_heap_reset(struct lm_knn_heap *h) { h->n = 0; }

float lm_knn_heap_bound(const struct lm_knn_heap *h)
{
    return h->n < h->k ? INFINITY : h->d2[0];
}

/* Moves the entry (d, id) down from slot i of a heap of m entries to its place. */
static inline void sift_down(float *d2, uint64_t *ids, uint32_t m, uint32_t i, float d,
                             uint64_t id)
{
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= m)
            break;
        if (c + 1 < m && entry_less(d2[c], ids[c], d2[c + 1], ids[c + 1]))
            c++;
        if (!entry_less(d, id, d2[c], ids[c]))
            break;
        d2[i] = d2[c];
        ids[i] = ids[c];
        i = c;
    }
    d2[i] = d;
    ids[i] = id;
}

/* True when (d, id) would be kept. */
static inline bool heap_wants(const struct lm_knn_heap *h, float d, uint64_t id)
{
    return h->n < h->k || entry_less(d, id, h->d2[0], h->id[0]);
}

/* Adds an entry heap_wants accepted. */
static inline void heap_insert(struct lm_knn_heap *h, float d, uint64_t id)
{
    if (h->n == h->k) {
        sift_down(h->d2, h->id, h->n, 0, d, id);
        return;
    }
    uint32_t i = h->n++;
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (!entry_less(h->d2[p], h->id[p], d, id))
            break;
        h->d2[i] = h->d2[p];
        h->id[i] = h->id[p];
        i = p;
    }
    h->d2[i] = d;
    h->id[i] = id;
}

bool lm_knn_heap_push(struct lm_knn_heap *h, float d2, uint64_t id)
{
    if (!heap_wants(h, d2, id))
        return false;
    heap_insert(h, d2, id);
    return true;
}

void lm_knn_heap_sort(struct lm_knn_heap *h)
{
    /* Heapsort in place: the largest goes to the end, the heap shrinks by one. */
    for (uint32_t m = h->n; m > 1; m--) {
        float d = h->d2[m - 1];
        uint64_t id = h->id[m - 1];
        h->d2[m - 1] = h->d2[0];
        h->id[m - 1] = h->id[0];
        sift_down(h->d2, h->id, m - 1, 0, d, id);
    }
}

/* ---------------------------------------------------------------- kNN search */

struct knn_query {
    const float *x, *y, *z;
    float qx, qy, qz;
    uint64_t tag;
    float max_d2;
    float limit;  /* min(max_d2, heap bound): boxes beyond it are skipped */
    lm_kdtree_accept_fn accept;
    void *ctx;
    struct lm_knn_heap *heap;
};

/* Distances first in a loop the compiler vectorises, then the rare candidates. */
static inline void knn_leaf(struct knn_query *q, uint32_t lo, uint32_t hi)
{
    float d2[LEAF_MAX];
    uint32_t m = hi - lo;
    const float *x = q->x + lo, *y = q->y + lo, *z = q->z + lo;
    for (uint32_t j = 0; j < m; j++) {
        float dx = x[j] - q->qx, dy = y[j] - q->qy, dz = z[j] - q->qz;
        d2[j] = dx * dx + dy * dy + dz * dz;
    }
    for (uint32_t j = 0; j < m; j++) {
        if (!(d2[j] <= q->limit))
            continue;
        uint64_t id = q->tag | (lo + j);
        if (!heap_wants(q->heap, d2[j], id))
            continue;
        if (q->accept && !q->accept(q->ctx, lo + j))
            continue;
        heap_insert(q->heap, d2[j], id);
        q->limit = min_f(q->max_d2, lm_knn_heap_bound(q->heap));
    }
}

void lm_kdtree_knn(const lm_kdtree *t, const float *x, const float *y, const float *z,
                   const float q[3], uint64_t tag, float max_d2,
                   lm_kdtree_accept_fn accept, void *ctx, struct lm_knn_heap *heap)
{
    if (!t || t->n == 0 || heap->k == 0)
        return;
    struct knn_query s = {x, y, z, q[0], q[1], q[2], tag, max_d2, 0, accept, ctx, heap};
    s.limit = min_f(max_d2, lm_knn_heap_bound(heap));
    const struct box *node = t->node;
    struct {
        uint32_t i;
        float d2;
    } stack[STACK_MAX];
    int sp = 0;
    uint32_t i = 1;
    /* Strict comparisons prune: a box at exactly the limit may still hold a point of
     * equal distance and smaller id. */
    if (box_d2(&node[1], s.qx, s.qy, s.qz) > s.limit)
        return;
    for (;;) {
        while (!is_leaf(t, i)) {
            uint32_t a = 2 * i, b = a + 1;
            float da = box_d2(&node[a], s.qx, s.qy, s.qz);
            float db = box_d2(&node[b], s.qx, s.qy, s.qz);
            if (db < da) {
                uint32_t ti = a;
                float td = da;
                a = b, da = db, b = ti, db = td;
            }
            if (db <= s.limit)
                stack[sp].i = b, stack[sp].d2 = db, sp++;
            if (da > s.limit)
                goto pop;
            i = a;
        }
        {
            uint32_t lo, hi;
            node_range(t, i, &lo, &hi);
            knn_leaf(&s, lo, hi);
        }
    pop:
        for (;;) {
            if (sp == 0)
                return;
            sp--;
            if (stack[sp].d2 <= s.limit)
                break;
        }
        i = stack[sp].i;
    }
}

/* ---------------------------------------------------------------- range queries */

enum shape { SHAPE_BOX, SHAPE_SPHERE, SHAPE_FRUSTUM };
enum overlap { OUTSIDE, PARTIAL, INSIDE };

struct region {
    enum shape kind;
    float lo[3], hi[3];   /* BOX */
    float c[3], r2;       /* SPHERE */
    float pl[6][4];       /* FRUSTUM */
};

/* Pending run, merged with the next one when they touch (invariant 5). */
struct runs {
    lm_kdtree_run_fn fn;
    void *ctx;
    uint32_t begin, end;
};

static inline int runs_add(struct runs *r, uint32_t b, uint32_t e)
{
    if (r->end != r->begin && b == r->end) {
        r->end = e;
        return 0;
    }
    if (r->end != r->begin) {
        int rc = r->fn(r->ctx, r->begin, r->end);
        if (rc)
            return rc;
    }
    r->begin = b;
    r->end = e;
    return 0;
}

static inline float plane_at(const float p[4], float x, float y, float z)
{
    return ((p[0] * x + p[1] * y) + p[2] * z) + p[3];
}

/* Box against region with the point test's operations (invariant 3): INSIDE only
 * when every point of b passes, OUTSIDE only when none can. */
static enum overlap classify(const struct region *g, const struct box *b)
{
    switch (g->kind) {
    case SHAPE_BOX: {
        bool in = true;
        for (int k = 0; k < 3; k++) {
            if (b->hi[k] < g->lo[k] || b->lo[k] > g->hi[k])
                return OUTSIDE;
            in = in && b->lo[k] >= g->lo[k] && b->hi[k] <= g->hi[k];
        }
        return in ? INSIDE : PARTIAL;
    }
    case SHAPE_SPHERE: {
        if (box_d2(b, g->c[0], g->c[1], g->c[2]) > g->r2)
            return OUTSIDE;
        float fx = max_f(g->c[0] - b->lo[0], b->hi[0] - g->c[0]);
        float fy = max_f(g->c[1] - b->lo[1], b->hi[1] - g->c[1]);
        float fz = max_f(g->c[2] - b->lo[2], b->hi[2] - g->c[2]);
        return fx * fx + fy * fy + fz * fz <= g->r2 ? INSIDE : PARTIAL;
    }
    case SHAPE_FRUSTUM: {
        bool in = true;
        for (int k = 0; k < 6; k++) {
            const float *p = g->pl[k];
            /* The corner where the plane function is largest, then smallest. */
            float far = plane_at(p, p[0] >= 0 ? b->hi[0] : b->lo[0],
                                 p[1] >= 0 ? b->hi[1] : b->lo[1],
                                 p[2] >= 0 ? b->hi[2] : b->lo[2]);
            if (!(far >= 0))
                return OUTSIDE;
            float near = plane_at(p, p[0] >= 0 ? b->lo[0] : b->hi[0],
                                  p[1] >= 0 ? b->lo[1] : b->hi[1],
                                  p[2] >= 0 ? b->lo[2] : b->hi[2]);
            in = in && near >= 0;
        }
        return in ? INSIDE : PARTIAL;
    }
    }
    return PARTIAL;
}

/* Marks which of points [lo, hi) pass the region's test: one vectorisable loop per
 * shape. */
static void leaf_mask(const struct region *g, const float *x, const float *y,
                      const float *z, uint32_t lo, uint32_t hi, unsigned char *in)
{
    uint32_t m = hi - lo;
    x += lo, y += lo, z += lo;
    switch (g->kind) {
    case SHAPE_BOX:
        for (uint32_t j = 0; j < m; j++)
            in[j] = (x[j] >= g->lo[0]) & (x[j] <= g->hi[0]) & (y[j] >= g->lo[1]) &
                    (y[j] <= g->hi[1]) & (z[j] >= g->lo[2]) & (z[j] <= g->hi[2]);
        break;
    case SHAPE_SPHERE:
        for (uint32_t j = 0; j < m; j++) {
            float dx = x[j] - g->c[0], dy = y[j] - g->c[1], dz = z[j] - g->c[2];
            in[j] = dx * dx + dy * dy + dz * dz <= g->r2;
        }
        break;
    case SHAPE_FRUSTUM:
        for (uint32_t j = 0; j < m; j++)
            in[j] = 1;
        for (int k = 0; k < 6; k++)
            for (uint32_t j = 0; j < m; j++)
                in[j] &= plane_at(g->pl[k], x[j], y[j], z[j]) >= 0;
        break;
    }
}

static int leaf_runs(const struct region *g, const float *x, const float *y,
                     const float *z, uint32_t lo, uint32_t hi, struct runs *r)
{
    unsigned char in[LEAF_MAX];
    leaf_mask(g, x, y, z, lo, hi, in);
    uint32_t m = hi - lo;
    for (uint32_t j = 0; j < m;) {
        if (!in[j]) {
            j++;
            continue;
        }
        uint32_t b = j;
        while (j < m && in[j])
            j++;
        int rc = runs_add(r, lo + b, lo + j);
        if (rc)
            return rc;
    }
    return 0;
}

/* Depth-first, left child first, so runs come out in ascending index order. */
static int region_walk(const lm_kdtree *t, const float *x, const float *y, const float *z,
                       const struct region *g, lm_kdtree_run_fn fn, void *ctx)
{
    if (!t || t->n == 0)
        return 0;
    struct runs r = {fn, ctx, 0, 0};
    uint32_t stack[STACK_MAX];
    int sp = 0;
    uint32_t i = 1;
    for (;;) {
        enum overlap o = classify(g, &t->node[i]);
        int rc = 0;
        if (o == INSIDE) {
            uint32_t lo, hi;
            node_range(t, i, &lo, &hi);
            rc = runs_add(&r, lo, hi);
        } else if (o == PARTIAL && !is_leaf(t, i)) {
            stack[sp++] = 2 * i + 1;
            i = 2 * i;
            continue;
        } else if (o == PARTIAL) {
            uint32_t lo, hi;
            node_range(t, i, &lo, &hi);
            rc = leaf_runs(g, x, y, z, lo, hi, &r);
        }
        if (rc)
            return rc;
        if (sp == 0)
            break;
        i = stack[--sp];
    }
    return r.end != r.begin ? fn(ctx, r.begin, r.end) : 0;
}

int lm_kdtree_box(const lm_kdtree *t, const float *x, const float *y, const float *z,
                  const float min[3], const float max[3], lm_kdtree_run_fn fn, void *ctx)
{
    struct region g = {.kind = SHAPE_BOX};
    for (int k = 0; k < 3; k++)
        g.lo[k] = min[k], g.hi[k] = max[k];
    return region_walk(t, x, y, z, &g, fn, ctx);
}

int lm_kdtree_sphere(const lm_kdtree *t, const float *x, const float *y, const float *z,
                     const float c[3], float r, lm_kdtree_run_fn fn, void *ctx)
{
    if (!(r >= 0))
        return 0;
    struct region g = {.kind = SHAPE_SPHERE, .c = {c[0], c[1], c[2]}, .r2 = r * r};
    return region_walk(t, x, y, z, &g, fn, ctx);
}

int lm_kdtree_frustum(const lm_kdtree *t, const float *x, const float *y, const float *z,
                      const float planes[6][4], lm_kdtree_run_fn fn, void *ctx)
{
    struct region g = {.kind = SHAPE_FRUSTUM};
    for (int k = 0; k < 6; k++)
        for (int j = 0; j < 4; j++)
            g.pl[k][j] = planes[k][j];
    return region_walk(t, x, y, z, &g, fn, ctx);
}
