/* kdtree.h - nearest-neighbour and range search over one chunk's sample positions.
 *
 * Owns: one flat array of node bounding boxes. It does NOT own, copy or reorder the
 * points: the caller keeps x[], y[], z[] (n floats each, already in 3D Morton order)
 * and passes arrays with the same contents to every query.
 *
 * Design: a tree of 8-wide nodes over index ranges. The root covers [0, n); the
 * children of a node cover consecutive pieces of its range, split where the two
 * sides' bounding boxes are smallest (so, in Morton order, on coarse cell
 * boundaries); leaves hold up to 24 points. Nodes store their children's boxes,
 * first indices and node numbers (256 bytes a node, about 2.5-3.5 bytes a point on
 * Morton-ordered data; see kdtree.c). Any point order gives correct answers; Morton
 * order gives small boxes and fast queries.
 *
 * Invariants:
 *   (1) A child's box is the tight bounding box of the points of its range; an
 *       empty tree has no nodes and reports the empty box (+inf mins, -inf maxes).
 *   (2) The children of a node partition its range into consecutive pieces, in index
 *       order; every point is in exactly one leaf.
 *   (3) Every distance and plane test is evaluated in float, in the order written in
 *       this header, without contraction; box tests use the same operations, so a box
 *       bound never disagrees with the point test it stands for (float rounding is
 *       monotonic). A brute-force scan written with the same expressions gets
 *       bit-identical answers.
 *   (4) kNN order is total: (d2, id) ascending, d2 = dx*dx + dy*dy + dz*dz with
 *       dx = x[i] - q[0] (and so on), id = tag | i. Equal distances go to the smaller
 *       id, so results are deterministic across trees, chunk orders and tree shapes.
 *   (5) Range queries report maximal runs [begin, end) in ascending index order: runs
 *       never overlap and never touch, so no index is reported twice.
 *
 * Threading: a built tree is immutable; any number of threads may query it at once,
 * each with its own lm_knn_heap. Build/free are not concurrent with queries.
 *
 * Called by: the chunk store (build when a chunk is sealed or loaded, free with the
 * chunk) and the query layer (lm_nearest: one heap across the chunks near the query
 * point; lm_select and friends: box/sphere/frustum runs); bench/bench_kdtree.c.
 */
#ifndef LM_KDTREE_H
#define LM_KDTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct lm_kdtree lm_kdtree; /* opaque */

/* ---------------------------------------------------------------- build */

/* Builds a tree over the n points (x[i], y[i], z[i]). n may be 0. Reads the arrays,
 * keeps no pointer to them. Time O(n), no sorting. *out is set only on success and is
 * owned by the caller (lm_kdtree_free).
 * Errors: LM_EBADARG (out NULL, or n > 0 with a NULL array), LM_EBADVALUE (a
 * coordinate is NaN or infinite), -ENOMEM. */
int lm_kdtree_build(const float *x, const float *y, const float *z, uint32_t n,
                    lm_kdtree **out);
/* Frees the tree. NULL is a no-op. */
void lm_kdtree_free(lm_kdtree *t);

/* Number of points the tree was built over. */
uint32_t lm_kdtree_size(const lm_kdtree *t);
/* Bytes held by the tree (handle + nodes); the points are not counted. */
size_t lm_kdtree_memory_bytes(const lm_kdtree *t);
/* Tight bounds of all points; the empty box (+inf, -inf) when n == 0. */
void lm_kdtree_bounds(const lm_kdtree *t, float min[3], float max[3]);

/* ---------------------------------------------------------------- k nearest */

/* The k best (d2, id) pairs seen so far, ordered by (d2, id): a sorted list for
 * k <= 32, a binary max-heap above. Plain data owned by the caller: fill it with
 * lm_knn_heap_init, or point d2/id at caller arrays of k entries and set n = 0. One
 * heap may be passed to the kNN searches of several trees in turn (one per chunk):
 * it then holds the k nearest of their union. d2[0..n) and id[0..n) are in that
 * internal order; read them after lm_knn_heap_sort. */
struct lm_knn_heap {
    uint32_t k, n;
    float *d2;
    uint64_t *id;
};

/* Allocates room for k >= 1 entries; n = 0. Errors: LM_EBADARG (k == 0 or h NULL),
 * -ENOMEM. On error *h is left unchanged. */
int lm_knn_heap_init(struct lm_knn_heap *h, uint32_t k);
/* Frees what lm_knn_heap_init allocated and zeroes *h. NULL is a no-op. */
void lm_knn_heap_free(struct lm_knn_heap *h);
/* Empties the heap (n = 0) for the next query; keeps its storage. */
void lm_knn_heap_reset(struct lm_knn_heap *h);
/* The k-th smallest d2 held so far, or +inf while fewer than k are held (-inf when
 * k == 0). Points farther than this cannot enter; an equal one enters only with a
 * smaller id. */
float lm_knn_heap_bound(const struct lm_knn_heap *h);
/* Offers one entry; returns true when it was kept. For callers merging candidates
 * that do not come from a tree. */
bool lm_knn_heap_push(struct lm_knn_heap *h, float d2, uint64_t id);
/* Sorts the held entries nearest first, equal d2 by ascending id. Afterwards d2[]
 * and id[] are a sorted list (for k > 32 no longer a heap): call lm_knn_heap_reset
 * before the next query. */
void lm_knn_heap_sort(struct lm_knn_heap *h);

/* Filter for candidates: return true to keep point i. Called only for points that
 * would enter the heap (within max_d2 and ahead of the current k-th), at most once per
 * point and query, in no particular order. */
typedef bool (*lm_kdtree_accept_fn)(void *ctx, uint32_t i);

/* Offers to `heap` every point i with d2 <= max_d2 and (accept == NULL or
 * accept(ctx, i)), as id = tag | i; the heap keeps the k smallest (d2, id). tag
 * should have its low 32 bits clear (for instance chunk number << 32). Pass
 * max_d2 = INFINITY for no bound. x, y, z: the arrays the tree was built over.
 * Scans leaves nearest box first and skips any box farther than min(max_d2, heap
 * bound). accept == NULL takes a path with no per-point call. q must be finite.
 * t may be NULL or empty (nothing happens). Uses up to 13 KB of stack. */
void lm_kdtree_knn(const lm_kdtree *t, const float *x, const float *y, const float *z,
                   const float q[3], uint64_t tag, float max_d2,
                   lm_kdtree_accept_fn accept, void *ctx, struct lm_knn_heap *heap);

/* ---------------------------------------------------------------- ranges */

/* Receives one run [begin, end) of matching indices (invariant 5). Return 0 to go
 * on; any other value stops the query, which returns it. */
typedef int (*lm_kdtree_run_fn)(void *ctx, uint32_t begin, uint32_t end);

/* Points with min[a] <= p[a] <= max[a] on every axis. A child whose box lies
 * inside is reported whole without testing its points. Returns 0, or the first
 * non-zero value returned by fn (no run is reported after it). t may be NULL or
 * empty. Uses up to 7 KB of stack. */
int lm_kdtree_box(const lm_kdtree *t, const float *x, const float *y, const float *z,
                  const float min[3], const float max[3], lm_kdtree_run_fn fn, void *ctx);

/* Points with d2 <= r*r, d2 measured from c as in invariant (4); nothing when r is
 * negative or NaN. Returns as lm_kdtree_box. */
int lm_kdtree_sphere(const lm_kdtree *t, const float *x, const float *y, const float *z,
                     const float c[3], float r, lm_kdtree_run_fn fn, void *ctx);

/* Points inside all six planes: ((a*x + b*y) + c*z) + d >= 0 for each plane
 * {a, b, c, d} (normals point inward, as struct lm_region). Coefficients must be
 * finite. Returns as lm_kdtree_box. */
int lm_kdtree_frustum(const lm_kdtree *t, const float *x, const float *y, const float *z,
                      const float planes[6][4], lm_kdtree_run_fn fn, void *ctx);

#endif
