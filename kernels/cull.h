/* cull.h - frustum culling of octree nodes with level-of-detail selection by
 * screen-space error, under a budget of nodes.
 *
 * Owns: nothing. The input is caller-owned columns, one row per node: box min and max
 * (x, y, z), level and parent index, flattened from an octree (engine/octree.h) by
 * whoever renders or streams it; results go into caller-owned arrays.
 *
 * A node's error is e(L) = error0 * 2^L for level L >= 1 and 0 at level 0 (leaves hold
 * the finest data); its screen-space error toward the eye is sse = (e * k) / d, with d
 * the distance from the eye to the node's box and k the projection factor (pixels per
 * world unit at distance 1). The selection for a threshold tau (the "cut") holds every
 * node that is visible, fine enough (sse <= tau) and whose parent is not (sse of the
 * parent > tau; a root has none). Since a child's box lies in its parent's box and its
 * error is half, its sse is at most half its parent's, so each root-to-leaf path of
 * visible nodes has exactly one node in the cut. Under a budget, tau is raised to the
 * smallest value at which the cut has at most `budget` nodes.
 *
 * Invariants:
 *  (1) Rule, in f32 with each operation rounded separately (no fused multiply-add):
 *      visible when for every plane (a, b, c, d), with p the box corner farthest along
 *      (a, b, c) (max where the coefficient is >= 0, else min),
 *      ((a*p.x + b*p.y) + c*p.z) + d >= 0;
 *      d2 = (dx*dx + dy*dy) + dz*dz with dx = max(min.x - eye.x, eye.x - max.x, 0);
 *      sse = d2 > 0 ? (e * k) / sqrt(d2) : (e > 0 ? +inf : 0); sqrt and / rounded
 *      correctly. Every implementation gives the same visible, sse and parent sse bits.
 *  (2) sse_parent[i] = sse[parent[i]] (the parent's value whether or not it is
 *      visible), +inf for a root.
 *  (3) The selection lists node indices in ascending order.
 * Threading: tables are immutable; any number of calls may run at once.
 * Called by: render/ and net/ (LOD of what to draw or send), tests, bench_kernels.
 */
#ifndef LM_CULL_H
#define LM_CULL_H

#include <stddef.h>
#include <stdint.h>

#define LM_CULL_MAX_LEVEL 64 /* octree levels go to 32 */

struct lm_cull_input {
    size_t n;
    const float *min_x, *min_y, *min_z, *max_x, *max_y, *max_z;
    const uint8_t *level;       /* 0 = leaf */
    const int32_t *parent;      /* -1 for a root, else an index < n */
    float planes[6][4];         /* a*x + b*y + c*z + d >= 0 inside (lumadb.h frustum) */
    float eye[3];
    float k;                    /* viewport height in pixels / (2 tan(fov_y / 2)) */
    float error0;               /* world error of one unit at level 0 (e.g. voxel size) */
};

/* One implementation. Use lm_cull_select, which checks arguments. */
struct lm_cull_table {
    const char *name; /* "scalar", "avx2", "opencl" */
    /* Fills visible[i] (1 or 0), sse[i] and sse_parent[i] for every node (invariants
     * (1), (2)). Returns 0, or non-zero when it could not run (OpenCL failed); the
     * outputs are then unspecified and the caller runs another table. */
    int (*classify)(const struct lm_cull_input *in, uint8_t *visible, float *sse,
                    float *sse_parent);
};

const struct lm_cull_table *lm_cull_scalar(void);  /* never NULL */
const struct lm_cull_table *lm_cull_avx2(void);    /* NULL without AVX2 + FMA */
const struct lm_cull_table *lm_cull_opencl(void);  /* NULL without a device */
const struct lm_cull_table *lm_cull_best(void);    /* AVX2, else scalar */

struct lm_cull_result {
    size_t n;       /* nodes in out[] */
    size_t wanted;  /* nodes of the cut at tau_used (> n only when even the roots exceed
                       the budget: out then holds the first `budget` of them) */
    float tau_used; /* >= the tau asked for */
};

/* Selects the visible cut for threshold tau (>= 0), coarsened until it has at most
 * `budget` nodes, into out[0..budget) in ascending order. Errors (*res untouched):
 * LM_EBADARG for NULL pointers with n > 0, a parent index out of range, a level above
 * LM_CULL_MAX_LEVEL, a negative or NaN tau, k or error0, or a non-finite plane or eye;
 * LM_ELIMIT for n > INT32_MAX; -ENOMEM. */
int lm_cull_select(const struct lm_cull_table *t, const struct lm_cull_input *in, float tau,
                   size_t budget, uint32_t *out, struct lm_cull_result *res);

/* For implementations: the error of a level, the rule of invariant (1) for node i, and
 * the parents' sse (invariant (2)) from every node's. */
float lm__cull_error(float error0, unsigned level);
void lm__cull_node(const struct lm_cull_input *in, size_t i, uint8_t *visible, float *sse);
void lm__cull_parents(const struct lm_cull_input *in, const float *sse, float *sse_parent);
extern const struct lm_cull_table lm__cull_scalar_table;
extern const struct lm_cull_table lm__cull_avx2_table;
extern const struct lm_cull_table lm__cull_cl_table;

#endif
