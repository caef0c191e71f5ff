/* kdtree.c - bounding-box tree over index ranges of Morton-ordered points (kdtree.h).
 *
 * Layout: 8-wide nodes. A node holds, for each of up to eight children, the child's
 * box (stored lane-wise, lo[axis][lane], so SSE measures four children at a time),
 * the first index of its range and `ref`: the child's node number, or 0 for a leaf.
 * Child j's range ends where child j+1's begins; the last child's where its
 * parent's ends, so walks carry `end` along. Unused lanes have NaN boxes (their
 * distance never passes a limit), ref 0 and begin == the parent's end (an empty
 * leaf). Node 0 is the root; it is never a child, which frees 0 to mean "leaf". A
 * node is 256 bytes, 64-byte aligned; nodes are numbered depth first, so a subtree's
 * nodes sit together.
 *
 * Splits: halving a Morton range by count cuts the curve anywhere, and a range that
 * crosses a coarse Morton cell boundary jumps between far corners: its box grows to
 * the size of that cell and queries land inside dozens of such boxes (the first
 * version of this file did that and was 7x slower than nanoflann). So the build
 * picks, for each range, the split in the middle half (by count) that minimises the
 * count-weighted surface area of the two sides. In Morton order that is the coarsest
 * cell boundary near the middle, found without knowing the caller's grid; for any
 * other order it is still a good geometric split. A node's children come from
 * splitting its range, then its children, in two (see build_node). Build time
 * O(n log n), the sweeps of choose_split.
 *
 * kNN (lazy best first): a visit measures the node's lanes, goes on into the nearest
 * lane within the limit, and queues the node once more keyed by its next nearest
 * lane; the queue is a min-heap on box distance, and the search ends when its
 * smallest key is beyond the k-th distance. So leaves are scanned nearly in order of
 * box distance (the fewest a query needs), and a visit costs one queue entry however
 * many lanes are open. What is queued is prefetched: a query is bound by memory
 * latency, and this overlaps the misses of the next leaves with the current one. The
 * queue has a fixed size; a node that does not fit is searched at once, depth first.
 */
#include "kdtree.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "alloc.h"
#include "lumadb.h"

/* Most points in a leaf; a split never leaves fewer than LEAF_MAX/2 on a side, so
 * leaves of a tree with more than LEAF_MAX points hold LEAF_MAX/2..LEAF_MAX.
 * Children per node. Both chosen with bench/bench_kdtree.c (kNN, k = 10, 1M points):
 * against 4 lanes and leaves of 16 or 32, 8 x 24 visits fewer nodes on the way
 * down (each a likely cache miss) for the same points scanned. */
#define LEAF_MAX 24u
#define LANES 8
_Static_assert(LEAF_MAX + 3 < 32, "knn_leaf keeps a leaf's candidates in a 32-bit mask");
/* A binary split leaves at most 3/4 of a range (+1) on a side, so for n < 2^32 a
 * path holds at most 66 splits before ranges fit a leaf; every node level takes at
 * least one. Checked at build. */
#define MAX_DEPTH 72
/* Depth-first stacks: a visit pops one entry and pushes at most LANES. */
#define DFS_MAX ((LANES - 1) * MAX_DEPTH + LANES + 1)
/* Best-first queue entries; k = 10 uses a few dozen. */
#define QUEUE_MAX 256

struct box {
    float lo[3], hi[3];
};

struct node {
    float lo[3][LANES], hi[3][LANES];
    uint32_t begin[LANES];
    uint32_t ref[LANES];   /* child node number; 0 = leaf */
};

struct lm_kdtree {
    uint32_t n;
    uint32_t n_nodes;
    struct box bounds;     /* of all points; the empty box when n == 0 */
    struct node *node;     /* n_nodes, 64-byte aligned inside `mem`; NULL when n == 0 */
    void *mem;
    size_t mem_bytes;
};

/* ---------------------------------------------------------------- small helpers */

/* Written as comparisons (not fmaxf) so they compile to one min/max instruction. */
static inline float max_f(float a, float b) { return a > b ? a : b; }
static inline float min_f(float a, float b) { return a < b ? a : b; }

static const struct box empty_box = {{INFINITY, INFINITY, INFINITY},
                                     {-INFINITY, -INFINITY, -INFINITY}};
/* Box of a lane without a child: its distance is NaN, which no limit admits. */
static const struct box unused_lane = {{NAN, NAN, NAN}, {NAN, NAN, NAN}};

/* Squared distance from q to the nearest point of b; 0 inside. A lower bound of the
 * d2 of every point in b, computed with the point formula's operations (invariant 3). */
static inline float box_d2(const struct box *b, float qx, float qy, float qz)
{
    float dx = max_f(max_f(b->lo[0] - qx, qx - b->hi[0]), 0.0f);
    float dy = max_f(max_f(b->lo[1] - qy, qy - b->hi[1]), 0.0f);
    float dz = max_f(max_f(b->lo[2] - qz, qz - b->hi[2]), 0.0f);
    return dx * dx + dy * dy + dz * dz;
}

/* box_d2 for all children at once; NaN for unused lanes: 0 is the first operand of
 * the outer max, so a NaN passes through it (for numbers max(0, v) and max(v, 0)
 * differ at most in the sign of a zero, which squaring drops). SSE where the target
 * has it (all x86-64): maxps, subps, mulps and addps are lane-wise the scalar max_f,
 * -, * and + below, so both paths give the same bits. */
#if defined(__SSE2__)
static inline void lanes_d2(const struct node *nd, float qx, float qy, float qz,
                            float d[LANES])
{
    const __m128 zero = _mm_setzero_ps();
    const __m128 q[3] = {_mm_set1_ps(qx), _mm_set1_ps(qy), _mm_set1_ps(qz)};
    for (int g = 0; g < LANES; g += 4) {
        __m128 sum = zero;
        for (int k = 0; k < 3; k++) {
            __m128 below = _mm_sub_ps(_mm_load_ps(nd->lo[k] + g), q[k]);
            __m128 above = _mm_sub_ps(q[k], _mm_load_ps(nd->hi[k] + g));
            __m128 dk = _mm_max_ps(zero, _mm_max_ps(below, above));
            sum = k == 0 ? _mm_mul_ps(dk, dk) : _mm_add_ps(sum, _mm_mul_ps(dk, dk));
        }
        _mm_storeu_ps(d + g, sum);
    }
}
#else
static inline void lanes_d2(const struct node *nd, float qx, float qy, float qz,
                            float d[LANES])
{
    for (int j = 0; j < LANES; j++) {
        float dx = max_f(0.0f, max_f(nd->lo[0][j] - qx, qx - nd->hi[0][j]));
        float dy = max_f(0.0f, max_f(nd->lo[1][j] - qy, qy - nd->hi[1][j]));
        float dz = max_f(0.0f, max_f(nd->lo[2][j] - qz, qz - nd->hi[2][j]));
        d[j] = dx * dx + dy * dy + dz * dz;
    }
}
#endif

static inline struct box lane_box(const struct node *nd, int j)
{
    return (struct box){{nd->lo[0][j], nd->lo[1][j], nd->lo[2][j]},
                        {nd->hi[0][j], nd->hi[1][j], nd->hi[2][j]}};
}

/* End of child j's range; `end` is the end of the node's own range. */
static inline uint32_t lane_end(const struct node *nd, int j, uint32_t end)
{
    return j + 1 < LANES ? nd->begin[j + 1] : end;
}

#if defined(__GNUC__)
#define PREFETCH(p) __builtin_prefetch(p)
#else
#define PREFETCH(p) ((void)(p))
#endif

/* ---------------------------------------------------------------- build */

static inline void box_point(struct box *b, float x, float y, float z)
{
    b->lo[0] = min_f(x, b->lo[0]), b->hi[0] = max_f(x, b->hi[0]);
    b->lo[1] = min_f(y, b->lo[1]), b->hi[1] = max_f(y, b->hi[1]);
    b->lo[2] = min_f(z, b->lo[2]), b->hi[2] = max_f(z, b->hi[2]);
}

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

struct builder {
    const float *x, *y, *z;
    struct node *node;
    uint32_t used, cap;
    float *right;          /* scratch: n / 2 + 4 split costs */
};

/* The split s of [a, b) (b - a > LEAF_MAX) with both sides at least max(len/4,
 * LEAF_MAX/2) long that minimises (s-a)*area([a,s)) + (b-s)*area([s,b)); ties go to
 * the split nearest the middle. */
static uint32_t choose_split(const struct builder *bd, uint32_t a, uint32_t b)
{
    const float *x = bd->x, *y = bd->y, *z = bd->z;
    float *right = bd->right;
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
    uint32_t best = s_min, mid = a + len / 2, best_off = UINT32_MAX;
    float best_cost = INFINITY;
    for (uint32_t s = s_min; s <= s_max; s++) {
        float cost = (float)(s - a) * half_area(&l) + right[s - s_min];
        uint32_t off = s > mid ? s - mid : mid - s;
        if (cost < best_cost || (cost == best_cost && off < best_off))
            best = s, best_cost = cost, best_off = off;
        box_point(&l, x[s], y[s], z[s]);
    }
    return best;
}

/* Lanes a node over len > LEAF_MAX points uses when its children are full subtrees
 * of the least height: ceil(len / cap), cap = LEAF_MAX * LANES^h the largest below
 * len. */
static uint64_t node_lanes(uint64_t len)
{
    uint64_t cap = LEAF_MAX;
    while (cap * LANES < len)
        cap *= LANES;
    return (len + cap - 1) / cap;
}

/* Fills node i with up to LANES children covering [a, b) (b - a > LEAF_MAX);
 * children with more than LEAF_MAX points become nodes, numbered and built depth
 * first. */
static int build_node(struct builder *bd, uint32_t i, uint32_t a, uint32_t b, int depth)
{
    if (depth >= MAX_DEPTH)
        return LM_EINTERNAL; /* cannot happen for n < 2^32, see MAX_DEPTH */
    /* Start with one child, [a, b), and split children in two until there are
     * LANES or all fit in leaves. Which child: the one whose own node would use the
     * fewest lanes (a child of 30 points would become a node with two leaves; split
     * here, it is two leaves and a level less), the larger on ties. Index order is
     * kept. */
    uint32_t cut[LANES + 1] = {a, b};
    int m = 1;
    while (m < LANES) {
        int big = -1;
        uint64_t big_lanes = 0;
        for (int r = 0; r < m; r++) {
            uint32_t len = cut[r + 1] - cut[r];
            if (len <= LEAF_MAX)
                continue;
            uint64_t lanes = node_lanes(len);
            if (big < 0 || lanes < big_lanes ||
                (lanes == big_lanes && len > cut[big + 1] - cut[big]))
                big = r, big_lanes = lanes;
        }
        if (big < 0)
            break;
        uint32_t s = choose_split(bd, cut[big], cut[big + 1]);
        memmove(&cut[big + 2], &cut[big + 1], (size_t)(m - big) * sizeof *cut);
        cut[big + 1] = s;
        m++;
    }
    struct node *nd = &bd->node[i];
    for (int j = 0; j < LANES; j++) {
        struct box bx = j < m ? range_box(bd->x, bd->y, bd->z, cut[j], cut[j + 1]) : unused_lane;
        for (int k = 0; k < 3; k++)
            nd->lo[k][j] = bx.lo[k], nd->hi[k][j] = bx.hi[k];
        nd->begin[j] = j < m ? cut[j] : b;
        nd->ref[j] = 0;
        if (j < m && cut[j + 1] - cut[j] > LEAF_MAX) {
            if (bd->used == bd->cap)
                return LM_EINTERNAL; /* cannot happen, see build_nodes */
            nd->ref[j] = bd->used++;
        }
    }
    for (int j = 0; j < m; j++) {
        if (!nd->ref[j])
            continue;
        int rc = build_node(bd, nd->ref[j], cut[j], cut[j + 1], depth + 1);
        if (rc)
            return rc;
    }
    return 0;
}

static bool all_finite(const float *x, const float *y, const float *z, uint32_t n)
{
    /* One flag over a loop the compiler vectorises; NaN and inf both fail x - x == 0. */
    bool ok = true;
    for (uint32_t i = 0; i < n; i++)
        ok &= (x[i] - x[i] == 0) & (y[i] - y[i] == 0) & (z[i] - z[i] == 0);
    return ok;
}

static struct node *align64(void *p)
{
    return (struct node *)(((uintptr_t)p + 63) & ~(uintptr_t)63);
}

/* Gives back the unused tail of the node array, keeping the 64-byte alignment. */
static void shrink_nodes(lm_kdtree *t)
{
    size_t off = (size_t)((char *)t->node - (char *)t->mem);
    size_t bytes = (size_t)t->n_nodes * sizeof *t->node;
    char *mem = lm_realloc(t->mem, bytes + 64);
    if (!mem)
        return; /* keep the larger block */
    struct node *aligned = align64(mem);
    if ((char *)aligned != mem + off)
        memmove(aligned, mem + off, bytes);
    t->mem = mem;
    t->node = aligned;
    t->mem_bytes = bytes + 64;
}

static int build_nodes(lm_kdtree *t, const float *x, const float *y, const float *z)
{
    uint32_t n = t->n;
    /* Every node has at least two children and every leaf at least LEAF_MAX/2 points
     * (the root aside), so nodes < leaves <= n / (LEAF_MAX/2). */
    size_t cap = (size_t)n / (LEAF_MAX / 2) + 2;
    t->mem_bytes = cap * sizeof(struct node) + 64;
    t->mem = lm_alloc(t->mem_bytes);
    float *right = lm_alloc(((size_t)n / 2 + 4) * sizeof *right);
    if (!t->mem || !right) {
        lm_free(right);
        return -ENOMEM;
    }
    t->node = align64(t->mem);
    struct builder bd = {x, y, z, t->node, 1, (uint32_t)cap, right};
    int rc = 0;
    if (n > LEAF_MAX) {
        rc = build_node(&bd, 0, 0, n, 0);
    } else {
        struct node *root = &t->node[0];
        for (int j = 0; j < LANES; j++) {
            struct box bx = j == 0 ? t->bounds : unused_lane;
            for (int k = 0; k < 3; k++)
                root->lo[k][j] = bx.lo[k], root->hi[k][j] = bx.hi[k];
            root->begin[j] = j == 0 ? 0 : n;
            root->ref[j] = 0;
        }
    }
    lm_free(right);
    t->n_nodes = bd.used;
    if (rc == 0)
        shrink_nodes(t);
    return rc;
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
    t->bounds = range_box(x, y, z, 0, n);
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
    return t ? sizeof *t + (t->mem ? t->mem_bytes : 0) : 0;
}

void lm_kdtree_bounds(const lm_kdtree *t, float min[3], float max[3])
{
    const struct box *b = t ? &t->bounds : &empty_box;
    for (int k = 0; k < 3; k++)
        min[k] = b->lo[k], max[k] = b->hi[k];
}

/* ---------------------------------------------------------------- kNN heap */

/* Up to this k the entries are kept as a sorted list (insertion moves a few entries,
 * the k-th is the last, sorting is free); above it as a binary max-heap, whose
 * insertions stay O(log k). */
#define SORTED_MAX 32u

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

/* Slot of the k-th entry once the heap is full. */
static inline uint32_t worst_slot(const struct lm_knn_heap *h)
{
    return h->k <= SORTED_MAX ? h->k - 1 : 0;
}

float lm_knn_heap_bound(const struct lm_knn_heap *h)
{
    if (h->k == 0)
        return -INFINITY; /* a caller-filled heap with no room takes nothing */
    return h->n < h->k ? INFINITY : h->d2[worst_slot(h)];
}

/* Moves the entry (d, id) down from slot i of a max-heap of m entries to its place. */
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
    if (h->n < h->k)
        return true;
    if (h->k == 0)
        return false;
    uint32_t w = worst_slot(h);
    return entry_less(d, id, h->d2[w], h->id[w]);
}

/* Adds an entry heap_wants accepted. */
static inline void heap_insert(struct lm_knn_heap *h, float d, uint64_t id)
{
    float *d2 = h->d2;
    uint64_t *ids = h->id;
    if (h->k <= SORTED_MAX) {
        /* Drop the last when full, then shift the larger entries up by one: those
         * farther, then those as far with a larger id (entry_less, two loops so the
         * common case reads no ids). */
        uint32_t i = h->n < h->k ? h->n++ : h->k - 1;
        while (i > 0 && d < d2[i - 1]) {
            d2[i] = d2[i - 1];
            ids[i] = ids[i - 1];
            i--;
        }
        while (i > 0 && d == d2[i - 1] && id < ids[i - 1]) {
            d2[i] = d2[i - 1];
            ids[i] = ids[i - 1];
            i--;
        }
        d2[i] = d;
        ids[i] = id;
        return;
    }
    if (h->n == h->k) {
        sift_down(d2, ids, h->n, 0, d, id);
        return;
    }
    uint32_t i = h->n++;
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (!entry_less(d2[p], ids[p], d, id))
            break;
        d2[i] = d2[p];
        ids[i] = ids[p];
        i = p;
    }
    d2[i] = d;
    ids[i] = id;
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
    if (h->k <= SORTED_MAX)
        return; /* already sorted */
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

/* A child waiting to be searched depth first: its box distance, node (0 = leaf)
 * and range. */
struct pending {
    float d2;
    uint32_t ref, begin, end;
};

/* A node partly searched, in the best-first queue: `done` marks the lanes already
 * taken; d2 is the box distance of the nearest other lane when it was queued, a
 * lower bound of everything the node still holds. */
struct partial {
    float d2;
    uint32_t node, end, done;
};

struct knn_query {
    const float *x, *y, *z;
    const struct node *node;
    float qx, qy, qz;
    uint64_t tag;
    float max_d2;
    float limit;  /* min(max_d2, heap bound): boxes beyond it are skipped */
    lm_kdtree_accept_fn accept;
    void *ctx;
    struct lm_knn_heap *heap;
    int n_queue;
    struct partial queue[QUEUE_MAX]; /* binary min-heap on d2 */
};

/* Bit j set when d[j] <= limit (never for NaN), for j < m; m is a multiple of 4. */
static inline uint32_t within(const float *d, uint32_t m, float limit)
{
    uint32_t mask = 0;
#if defined(__SSE2__)
    const __m128 lim = _mm_set1_ps(limit);
    for (uint32_t j = 0; j < m; j += 4)
        mask |= (uint32_t)_mm_movemask_ps(_mm_cmple_ps(_mm_loadu_ps(d + j), lim)) << j;
#else
    for (uint32_t j = 0; j < m; j++)
        mask |= (uint32_t)(d[j] <= limit) << j;
#endif
    return mask;
}

static inline int lowest_bit(uint32_t mask)
{
#if defined(__GNUC__)
    return __builtin_ctz(mask);
#else
    int j = 0;
    while (!(mask & 1u))
        mask >>= 1, j++;
    return j;
#endif
}

/* Distances in a loop the compiler vectorises, then only the points within the
 * limit, rechecked as the limit shrinks. */
static inline void knn_leaf(struct knn_query *q, uint32_t lo, uint32_t hi)
{
    float d2[LEAF_MAX + 3];
    uint32_t m = hi - lo;
    const float *x = q->x + lo, *y = q->y + lo, *z = q->z + lo;
    for (uint32_t j = 0; j < m; j++) {
        float dx = x[j] - q->qx, dy = y[j] - q->qy, dz = z[j] - q->qz;
        d2[j] = dx * dx + dy * dy + dz * dz;
    }
    uint32_t m4 = (m + 3) & ~3u;
    for (uint32_t j = m; j < m4; j++)
        d2[j] = NAN; /* fails every comparison */
    for (uint32_t mask = within(d2, m4, q->limit); mask; mask &= mask - 1) {
        int j = lowest_bit(mask);
        if (!(d2[j] <= q->limit))
            continue;
        uint64_t id = q->tag | (lo + (uint32_t)j);
        if (!heap_wants(q->heap, d2[j], id))
            continue;
        if (q->accept && !q->accept(q->ctx, lo + (uint32_t)j))
            continue;
        heap_insert(q->heap, d2[j], id);
        q->limit = min_f(q->max_d2, lm_knn_heap_bound(q->heap));
    }
}

/* Starts loading what searching lane j of nd will read: the child node, or the
 * leaf's points. */
static inline void knn_prefetch(const struct knn_query *q, const struct node *nd, int j,
                                uint32_t end)
{
    if (nd->ref[j]) {
        const char *c = (const char *)&q->node[nd->ref[j]];
        for (size_t off = 0; off < sizeof(struct node); off += 64)
            PREFETCH(c + off);
    } else {
        uint32_t b = nd->begin[j], e = lane_end(nd, j, end);
        if (e > b) {
            PREFETCH(q->x + b), PREFETCH(q->x + e - 1);
            PREFETCH(q->y + b), PREFETCH(q->y + e - 1);
            PREFETCH(q->z + b), PREFETCH(q->z + e - 1);
        }
    }
}

/* Pushes the lanes of nd not in `done` that are within the limit, farthest first so
 * the nearest is searched first. */
static int push_lanes(const struct knn_query *q, const struct node *nd, uint32_t end,
                      uint32_t done, struct pending *stack, int sp)
{
    float d[LANES];
    lanes_d2(nd, q->qx, q->qy, q->qz, d);
    int order[LANES], m = 0;
    for (int j = 0; j < LANES; j++)
        if (!(done >> j & 1) && d[j] <= q->limit)
            order[m++] = j;
    for (int a = 1; a < m; a++)
        for (int b = a; b > 0 && d[order[b]] > d[order[b - 1]]; b--) {
            int tmp = order[b];
            order[b] = order[b - 1], order[b - 1] = tmp;
        }
    for (int a = 0; a < m; a++) {
        int j = order[a];
        stack[sp++] = (struct pending){d[j], nd->ref[j], nd->begin[j], lane_end(nd, j, end)};
    }
    return sp;
}

/* Searches the lanes of node `n` not in `done` depth first, nearer children first;
 * for nodes the queue has no room for. Prunes with the current limit as it
 * shrinks. */
static void knn_depth_first(struct knn_query *q, uint32_t n, uint32_t end, uint32_t done)
{
    struct pending stack[DFS_MAX];
    int sp = push_lanes(q, &q->node[n], end, done, stack, 0);
    while (sp > 0) {
        struct pending p = stack[--sp];
        if (p.d2 > q->limit)
            continue;
        if (!p.ref)
            knn_leaf(q, p.begin, p.end);
        else
            sp = push_lanes(q, &q->node[p.ref], p.end, 0, stack, sp);
    }
}

static void queue_push(struct knn_query *q, struct partial p)
{
    if (q->n_queue == QUEUE_MAX) {
        knn_depth_first(q, p.node, p.end, p.done);
        return;
    }
    int i = q->n_queue++;
    while (i > 0) {
        int parent = (i - 1) / 2;
        if (q->queue[parent].d2 <= p.d2)
            break;
        q->queue[i] = q->queue[parent];
        i = parent;
    }
    q->queue[i] = p;
}

static struct partial queue_pop(struct knn_query *q)
{
    struct partial top = q->queue[0], last = q->queue[--q->n_queue];
    int m = q->n_queue, i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= m)
            break;
        if (c + 1 < m && q->queue[c + 1].d2 < q->queue[c].d2)
            c++;
        if (q->queue[c].d2 >= last.d2)
            break;
        q->queue[i] = q->queue[c];
        i = c;
    }
    q->queue[i] = last;
    return top;
}

/* Takes the nearest open lanes of *cur (lazy best first: the node goes back in the
 * queue keyed by its next nearest lane). Returns true with *cur set to a child node
 * to visit next; false when it ended on a leaf or nothing was within the limit. */
static bool knn_visit(struct knn_query *s, struct partial *cur)
{
    const struct node *nd = &s->node[cur->node];
    float d[LANES];
    lanes_d2(nd, s->qx, s->qy, s->qz, d);
    for (;;) {
        int near = -1, next = -1;
        for (uint32_t open = within(d, LANES, s->limit) & ~cur->done; open;
             open &= open - 1) {
            int j = lowest_bit(open);
            if (near < 0 || d[j] < d[near])
                next = near, near = j;
            else if (next < 0 || d[j] < d[next])
                next = j;
        }
        if (near < 0)
            return false;
        uint32_t end = lane_end(nd, near, cur->end);
        if (next >= 0) {
            knn_prefetch(s, nd, next, cur->end);
            /* A leaf followed by a lane nearer than anything queued: scan it and stay
             * on this node, without the round trip through the queue. */
            if (!nd->ref[near] && (s->n_queue == 0 || d[next] <= s->queue[0].d2)) {
                knn_leaf(s, nd->begin[near], end);
                cur->done |= 1u << near;
                continue;
            }
            queue_push(s, (struct partial){d[next], cur->node, cur->end,
                                           cur->done | 1u << near});
        }
        if (nd->ref[near]) {
            *cur = (struct partial){d[near], nd->ref[near], end, 0};
            return true;
        }
        knn_leaf(s, nd->begin[near], end);
        return false;
    }
}

void lm_kdtree_knn(const lm_kdtree *t, const float *x, const float *y, const float *z,
                   const float q[3], uint64_t tag, float max_d2,
                   lm_kdtree_accept_fn accept, void *ctx, struct lm_knn_heap *heap)
{
    if (!t || t->n == 0 || heap->k == 0)
        return;
    struct knn_query s;
    s.x = x, s.y = y, s.z = z, s.node = t->node;
    s.qx = q[0], s.qy = q[1], s.qz = q[2];
    s.tag = tag, s.max_d2 = max_d2, s.accept = accept, s.ctx = ctx, s.heap = heap;
    s.limit = min_f(max_d2, lm_knn_heap_bound(heap));
    s.n_queue = 0;
    /* Strict comparisons prune: a box at exactly the limit may still hold a point of
     * equal distance and smaller id. */
    if (box_d2(&t->bounds, s.qx, s.qy, s.qz) > s.limit)
        return;
    /* Lazy best first: a visit takes the node's nearest remaining lane and queues
     * the node once more, keyed by its next nearest lane; its other lanes are looked
     * at only if the search gets back to it. */
    struct partial cur = {0, 0, t->n, 0}; /* the root */
    for (;;) {
        if (knn_visit(&s, &cur))
            continue;
        /* The nearest queued box; once it is beyond the limit, so is every other. */
        if (s.n_queue == 0)
            return;
        cur = queue_pop(&s);
        if (cur.d2 > s.limit)
            return;
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

/* Depth-first, children in index order, so runs come out ascending. A stack entry is
 * a child to classify: lane `lane` of node `node`, whose range ends at `end`. */
static int region_walk(const lm_kdtree *t, const float *x, const float *y, const float *z,
                       const struct region *g, lm_kdtree_run_fn fn, void *ctx)
{
    if (!t || t->n == 0)
        return 0;
    enum overlap o = classify(g, &t->bounds);
    if (o != PARTIAL)
        return o == INSIDE ? fn(ctx, 0, t->n) : 0;
    struct runs r = {fn, ctx, 0, 0};
    struct {
        uint32_t node, lane, end;
    } stack[DFS_MAX];
    int sp = 0;
    uint32_t push_node = 0, push_end = t->n;
    for (;;) {
        /* Children of push_node, last first, so the first is on top. */
        for (int j = LANES - 1; j >= 0; j--)
            stack[sp].node = push_node, stack[sp].lane = (uint32_t)j, stack[sp].end = push_end,
            sp++;
        int rc = 0;
        for (;;) {
            if (sp == 0)
                return r.end != r.begin ? fn(ctx, r.begin, r.end) : 0;
            sp--;
            const struct node *nd = &t->node[stack[sp].node];
            int j = (int)stack[sp].lane;
            uint32_t begin = nd->begin[j], end = lane_end(nd, j, stack[sp].end);
            if (begin == end)
                continue; /* unused lane */
            struct box b = lane_box(nd, j);
            o = classify(g, &b);
            if (o == INSIDE)
                rc = runs_add(&r, begin, end);
            else if (o == PARTIAL && !nd->ref[j])
                rc = leaf_runs(g, x, y, z, begin, end, &r);
            else if (o == PARTIAL) {
                push_node = nd->ref[j], push_end = end;
                break;
            }
            if (rc)
                return rc;
        }
    }
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
