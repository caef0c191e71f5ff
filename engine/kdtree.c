/* kdtree.c - bounding-box tree over index ranges of Morton-ordered points (kdtree.h).
 *
 * Layout: node 1 is the root (slot 0 is unused). An internal node's two children sit
 * in slots c and c+1 (c even), so with the array aligned to 64 bytes a visit that
 * tests both children reads one cache line. Pairs are allocated in depth-first
 * order, keeping each subtree's nodes close together. A node stores its box, the
 * first index of its range and `child` (0 for a leaf); its range ends where the next
 * sibling's begins, or where its parent's ends, so walks carry `end` along.
 *
 * Splits: halving a Morton range by count cuts the curve anywhere, and a range that
 * crosses a coarse Morton cell boundary jumps between far corners: its box grows to
 * the size of that cell. Queries then land inside dozens of such boxes. So the build
 * picks, for each range, the split in the middle half (by count) that minimises
 * count-weighted surface area of the two child boxes. In Morton order this lands on
 * the coarsest cell boundary near the middle, without knowing the caller's grid; for
 * any other order it is still a good geometric split. Build time O(n log n).
 */
#include "kdtree.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "alloc.h"
#include "lumadb.h"

/* Most points in a leaf; a split never leaves fewer than LEAF_MAX/2 on a side, so
 * leaves of a tree with more than LEAF_MAX points hold LEAF_MAX/2..LEAF_MAX.
 * Chosen with bench/bench_kdtree.c (kNN, k = 10). */
#define LEAF_MAX 16u
/* Each split leaves at most about 3/4 of a range on a side: depth <= log_4/3(2^32)
 * + a few levels near the leaves, below 96. */
#define STACK_MAX 96

struct box {
    float lo[3], hi[3];
};

struct node {
    struct box b;
    uint32_t begin;   /* first index of the node's range */
    uint32_t child;   /* slot of the first child (even, >= 2); 0 for a leaf */
};

struct lm_kdtree {
    uint32_t n;
    uint32_t n_slots;   /* slots in use, including unused slot 0 */
    struct node *node;  /* 64-byte aligned inside `mem`; NULL when n == 0 */
    void *mem;
};

/* ---------------------------------------------------------------- small helpers */

/* Written as comparisons (not fmaxf) so they compile to one min/max instruction. */
static inline float max_f(float a, float b) { return a > b ? a : b; }
static inline float min_f(float a, float b) { return a < b ? a : b; }

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

static inline void box_point(struct box *b, float x, float y, float z)
{
    b->lo[0] = min_f(x, b->lo[0]), b->hi[0] = max_f(x, b->hi[0]);
    b->lo[1] = min_f(y, b->lo[1]), b->hi[1] = max_f(y, b->hi[1]);
    b->lo[2] = min_f(z, b->lo[2]), b->hi[2] = max_f(z, b->hi[2]);
}

static const struct box empty_box = {{INFINITY, INFINITY, INFINITY},
                                     {-INFINITY, -INFINITY, -INFINITY}};

/* Box of points [a, b). */
static struct box range_box(const float *x, const float *y, const float *z, uint32_t a,
                            uint32_t b)
{
    struct box r = empty_box;
    for (uint32_t i = a; i < b; i++)
        box_point(&r, x[i], y[i], z[i]);
    return r;
}

/* Half the surface area: the chance a small query ball meets the box grows with it. */
static inline float half_area(const struct box *b)
{
    float dx = b->hi[0] - b->lo[0], dy = b->hi[1] - b->lo[1], dz = b->hi[2] - b->lo[2];
    return dx * dy + dy * dz + dz * dx;
}

/* The split s of [a, b) (b - a > LEAF_MAX) with both sides at least max(len/4,
 * LEAF_MAX/2) long that minimises (s-a)*area([a,s)) + (b-s)*area([s,b)); ties go to
 * the split nearest the middle. right[] has room for (b - a) / 2 + 4 costs. */
static uint32_t choose_split(const float *x, const float *y, const float *z, uint32_t a,
                             uint32_t b, float *right)
{
    uint32_t len = b - a, side = len / 4;
    if (side < LEAF_MAX / 2)
        side = LEAF_MAX / 2;
    uint32_t s_min = a + side, s_max = b - side;
    struct box r = range_box(x, y, z, s_max, b);
    for (uint32_t s = s_max;; s--) {
        right[s - s_min] = (float)(b - s) * half_area(&r);
        if (s == s_min)
            break;
        box_point(&r, x[s - 1], y[s - 1], z[s - 1]);
    }
    struct box l = range_box(x, y, z, a, s_min);
    uint32_t best = s_min, mid = a + len / 2;
    float best_cost = INFINITY;
    for (uint32_t s = s_min; s <= s_max; s++) {
        float cost = (float)(s - a) * half_area(&l) + right[s - s_min];
        uint32_t off = s > mid ? s - mid : mid - s, best_off = best > mid ? best - mid : mid - best;
        if (cost < best_cost || (cost == best_cost && off < best_off))
            best = s, best_cost = cost;
        box_point(&l, x[s], y[s], z[s]);
    }
    return best;
}

static bool all_finite(const float *x, const float *y, const float *z, uint32_t n)
{
    /* One flag over a loop the compiler vectorises; NaN and inf both fail x - x == 0. */
    bool ok = true;
    for (uint32_t i = 0; i < n; i++)
        ok &= (x[i] - x[i] == 0) & (y[i] - y[i] == 0) & (z[i] - z[i] == 0);
    return ok;
}

/* Gives back the unused tail of the node array, keeping the 64-byte alignment. */
static void shrink_nodes(lm_kdtree *t)
{
    size_t off = (size_t)((char *)t->node - (char *)t->mem);
    size_t bytes = (size_t)t->n_slots * sizeof *t->node;
    char *mem = lm_realloc(t->mem, bytes + 64);
    if (!mem)
        return; /* keep the larger block */
    char *aligned = (char *)(((uintptr_t)mem + 63) & ~(uintptr_t)63);
    if (aligned != mem + off)
        memmove(aligned, mem + off, bytes);
    t->mem = mem;
    t->node = (struct node *)aligned;
}

static int build_nodes(lm_kdtree *t, const float *x, const float *y, const float *z)
{
    uint32_t n = t->n;
    /* Leaves hold >= LEAF_MAX/2 points (or the root holds all): at most 2n/(LEAF_MAX/2)
     * + 1 nodes, plus slot 0 and one for 64-byte alignment of the pairs. */
    size_t cap = 2 * ((size_t)n / (LEAF_MAX / 2)) + 3;
    t->mem = lm_alloc(cap * sizeof(struct node) + 64);
    float *right = lm_alloc(((size_t)n / 2 + 4) * sizeof *right);
    if (!t->mem || !right) {
        lm_free(right);
        return -ENOMEM;
    }
    uintptr_t p = ((uintptr_t)t->mem + 63) & ~(uintptr_t)63;
    t->node = (struct node *)p;
    memset(&t->node[0], 0, sizeof t->node[0]);
    t->node[1] = (struct node){range_box(x, y, z, 0, n), 0, 0};
    uint32_t used = 2;
    struct {
        uint32_t i, a, b;
    } stack[2 * STACK_MAX];
    int sp = 0;
    stack[sp].i = 1, stack[sp].a = 0, stack[sp].b = n, sp++;
    while (sp > 0) {
        sp--;
        uint32_t i = stack[sp].i, a = stack[sp].a, b = stack[sp].b;
        if (b - a <= LEAF_MAX)
            continue;
        if (sp + 2 > (int)(sizeof stack / sizeof *stack)) { /* cannot happen: see STACK_MAX */
            lm_free(right);
            return LM_EINTERNAL;
        }
        uint32_t s = choose_split(x, y, z, a, b, right);
        uint32_t c = used;
        used += 2;
        t->node[i].child = c;
        t->node[c] = (struct node){range_box(x, y, z, a, s), a, 0};
        t->node[c + 1] = (struct node){range_box(x, y, z, s, b), s, 0};
        /* Right pushed first so the left subtree is laid out next to its parent. */
        stack[sp].i = c + 1, stack[sp].a = s, stack[sp].b = b, sp++;
        stack[sp].i = c, stack[sp].a = a, stack[sp].b = s, sp++;
    }
    lm_free(right);
    t->n_slots = used;
    shrink_nodes(t);
    return 0;
}

int lm_kdtree_build(const float *x, const float *y, const float *z, uint32_t n,
                    lm_kdtree **out)
{
    if (!out || (n > 0 && (!x || !y || !z)))
        return LM_EBADARG;
    if (n > 0 && !all_finite(x, y, z, n))
        return LM_EBADVALUE;
    lm_kdtree *t = lm_calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->n = n;
    if (n > 0) {
        int rc = build_nodes(t, x, y, z);
        if (rc) {
            lm_kdtree_free(t);
            return rc;
        }
    }
    *out = t;
    return 0;
}

void lm_kdtree_free(lm_kdtree *t)
{
    if (!t)
        return;
    lm_free(t->mem);
    lm_free(t);
}

uint32_t lm_kdtree_size(const lm_kdtree *t) { return t ? t->n : 0; }

size_t lm_kdtree_memory_bytes(const lm_kdtree *t)
{
    return t ? sizeof *t + (t->mem ? (size_t)t->n_slots * sizeof *t->node + 64 : 0) : 0;
}

void lm_kdtree_bounds(const lm_kdtree *t, float min[3], float max[3])
{
    const struct box *b = t && t->n ? &t->node[1].b : &empty_box;
    for (int k = 0; k < 3; k++)
        min[k] = b->lo[k], max[k] = b->hi[k];
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
    const struct node *node = t->node;
    struct {
        uint32_t i, end;
        float d2;
    } stack[STACK_MAX];
    int sp = 0;
    uint32_t i = 1, end = t->n;
    /* Strict comparisons prune: a box at exactly the limit may still hold a point of
     * equal distance and smaller id. */
    if (box_d2(&node[1].b, s.qx, s.qy, s.qz) > s.limit)
        return;
    for (;;) {
        while (node[i].child) {
            uint32_t a = node[i].child, b = a + 1, a_end = node[b].begin, b_end = end;
            float da = box_d2(&node[a].b, s.qx, s.qy, s.qz);
            float db = box_d2(&node[b].b, s.qx, s.qy, s.qz);
            if (db < da) {
                uint32_t ti = a, te = a_end;
                float td = da;
                a = b, a_end = b_end, da = db;
                b = ti, b_end = te, db = td;
            }
            if (db <= s.limit)
                stack[sp].i = b, stack[sp].end = b_end, stack[sp].d2 = db, sp++;
            if (da > s.limit)
                goto pop;
            i = a, end = a_end;
        }
        knn_leaf(&s, node[i].begin, end);
    pop:
        for (;;) {
            if (sp == 0)
                return;
            sp--;
            if (stack[sp].d2 <= s.limit)
                break;
        }
        i = stack[sp].i, end = stack[sp].end;
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
    const struct node *node = t->node;
    struct runs r = {fn, ctx, 0, 0};
    struct {
        uint32_t i, end;
    } stack[STACK_MAX];
    int sp = 0;
    uint32_t i = 1, end = t->n;
    for (;;) {
        enum overlap o = classify(g, &node[i].b);
        int rc = 0;
        if (o == INSIDE) {
            rc = runs_add(&r, node[i].begin, end);
        } else if (o == PARTIAL && node[i].child) {
            uint32_t c = node[i].child;
            stack[sp].i = c + 1, stack[sp].end = end, sp++;
            i = c, end = node[c + 1].begin;
            continue;
        } else if (o == PARTIAL) {
            rc = leaf_runs(g, x, y, z, node[i].begin, end, &r);
        }
        if (rc)
            return rc;
        if (sp == 0)
            break;
        sp--;
        i = stack[sp].i, end = stack[sp].end;
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
