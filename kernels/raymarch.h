/* raymarch.h - many rays marched through a voxel grid at once: a hierarchical DDA over
 * three levels of occupancy (cells of 32^3 voxels, the size of a default chunk; bricks
 * of 8^3; voxels), empty cells and bricks crossed in one step, returning each ray's
 * first occupied voxel and the radiance summed over the occupied voxels it crosses
 * (engine/sh.h), toward the ray's origin.
 *
 * Owns: struct lm_ray_grid memory made by lm_ray_grid_build (freed by
 * lm_ray_grid_free). The grid is the flat format every implementation reads, built by
 * the caller from a field's level-0 voxels (lm_voxels_query) or from chunks:
 *
 *   coarse[(cz * nc[1] + cy) * nc[0] + cx]                 1 when any brick of the
 *                                                          4^3 in cell c is occupied
 *   brick_index[(bz * bricks[1] + by) * bricks[0] + bx]    -1 (empty) or pool brick b
 *   occ[b * 16 + l / 32] bit l % 32                        voxel l of brick b occupied
 *   slot[b * 512 + l]                                      1 + voxel v (where occupied)
 *   count[v], sh[v * 12 + channel * 4 + coef]              the voxel's aggregate
 *
 * with l = (lz * 8 + ly) * 8 + lx, voxel (x, y, z) of the grid in brick (x >> 3, ...)
 * at local (x & 7, ...) and in cell (x >> 5, ...), nc = ceil(bricks / 4); voxel
 * (0, 0, 0) has its min corner at `origin`.
 *
 * The march of one ray, in f32 with each operation rounded separately (no fused
 * multiply-add; / correctly rounded), in grid units (voxels), dim = 8 * bricks:
 *  (1) p = (o - origin) * inv_voxel; tmax' = tmax * inv_voxel; inv = 1 / d where
 *      d != 0. The ray is clipped to the grid box [0, dim]: per axis with d != 0,
 *      t1 = (0 - p) * inv, t2 = (dim - p) * inv, tnear = max(0, min), tfar =
 *      min(tmax', max); with d == 0 the ray misses unless 0 <= p <= dim. No hit when
 *      tnear > tfar. The first cell is floor(p + d * tnear) per axis, clamped to the
 *      grid, entered at t = tnear.
 *  (2) Each step crosses the largest empty thing the current voxel lies in: its
 *      32-cell when that is empty (S = 32), else its brick when empty (S = 8), else
 *      the voxel itself (S = 1). With B = cell / S per axis, the crossing times are
 *      t_next = ((B * S + S * (d > 0)) - p) * inv (+inf where d == 0); the axis with
 *      the smallest steps (ties: x, then y, then z), t becomes that t_next, B moves
 *      one along it, and the new cell is, on that axis, the first of B along d (B * S,
 *      or min(B * S + S - 1, dim - 1) going down), on the others floor(p + d * t)
 *      clamped to [B * S, min(B * S + S - 1, dim - 1)]. The march ends when t > tfar
 *      or the new cell leaves the grid.
 *  (3) In each occupied voxel entered at t (before its step): the first one gives
 *      voxel[] and t_hit = t * voxel_size; every one adds lm_sh_eval(sh[ch], count,
 *      -d) to radiance[ch] in march order, and hits counts them; the march ends after
 *      max_hits of them (0: no limit).
 *  Every implementation gives the same results bit for bit.
 *
 * Threading: grids are read-only while marched; tables are immutable.
 * Called by: render/ and net/ (picking, radiance along view rays), tests, bench_kernels.
 */
#ifndef LM_RAYMARCH_H
#define LM_RAYMARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lumadb.h"

#define LM_RAY_BRICK 8u                    /* voxels per brick edge */
#define LM_RAY_BRICK_VOXELS 512u           /* 8^3 */
#define LM_RAY_MAX_VOXELS_PER_AXIS (1u << 20) /* grid coordinates stay exact in f32 */
#define LM_RAY_MAX_BRICKS ((size_t)1 << 31)    /* brick table entries, and bricks * 512 */

struct lm_ray_grid {
    float origin[3];       /* world position of voxel (0, 0, 0)'s min corner */
    float voxel_size;      /* > 0 */
    float inv_voxel;       /* 1 / voxel_size, rounded once */
    uint32_t bricks[3];    /* grid size in bricks (voxels: 8x) */
    uint32_t coarse_dim[3]; /* ceil(bricks / 4) */
    uint8_t *coarse;       /* coarse_dim product (+3 bytes of padding) */
    int32_t *brick_index;  /* bricks[0] * bricks[1] * bricks[2] */
    uint32_t n_bricks, n_voxels;
    uint32_t *occ;         /* n_bricks * 16 */
    uint32_t *slot;        /* n_bricks * 512 */
    uint32_t *count;       /* n_voxels */
    float *sh;             /* n_voxels * 12 */
    /* Names the content for resident device copies (cl_runtime.h invariant (5)): a
     * builder gives every grid it makes a new id; 0 = never resident. */
    uint64_t id, version;
};

/* One ray: origin, the distance it may travel (world units, >= 0), unit direction. */
struct lm_ray {
    float o[3];
    float tmax;
    float d[3];
    float pad; /* 0; keeps 32 bytes per ray */
};

#define LM_RAY_COARSE 4u /* bricks per coarse cell edge (32 voxels) */

struct lm_ray_out {
    int32_t voxel[3];    /* first occupied voxel (grid coordinates); -1s when none */
    float t_hit;         /* distance at which it was entered; +inf when none */
    float radiance[3];   /* rule (4) */
    uint32_t hits;       /* occupied voxels counted */
};

/* Builds a grid over level-0 voxels vox[0..n) (coords in field voxel units, as
 * lm_voxels_query returns them) of a field with the given voxel size: the grid's
 * origin is the min corner of the bricks holding them. Voxels with count 0 are left
 * out. Errors (*out untouched): LM_EBADARG (bad size, NULL vox with n > 0, a repeated
 * coordinate), LM_ELIMIT (2^32 - 1 voxels or more, a span over
 * LM_RAY_MAX_VOXELS_PER_AXIS, a brick table over LM_RAY_MAX_BRICKS, or occupied bricks
 * over LM_RAY_MAX_BRICKS / 512), -ENOMEM. */
int lm_ray_grid_build(const struct lm_voxel *vox, size_t n, float voxel_size,
                      struct lm_ray_grid *out);
void lm_ray_grid_free(struct lm_ray_grid *g); /* frees the arrays; NULL is a no-op */

/* One implementation. Use lm_ray_march, which checks arguments. */
struct lm_ray_table {
    const char *name; /* "scalar", "avx2", "opencl" */
    /* Marches rays[0..n) (rules (1)-(4)) into out[0..n). Returns 0, or non-zero when
     * it could not run (OpenCL failed): out is then unspecified. */
    int (*march)(const struct lm_ray_grid *g, const struct lm_ray *rays, size_t n,
                 uint32_t max_hits, struct lm_ray_out *out);
};

const struct lm_ray_table *lm_ray_scalar(void);  /* never NULL */
const struct lm_ray_table *lm_ray_avx2(void);    /* NULL without AVX2 + FMA */
const struct lm_ray_table *lm_ray_opencl(void);  /* NULL without a device */
const struct lm_ray_table *lm_ray_best(void);    /* fastest on this CPU */

/* Marches n rays (max_hits 1: first hit; 0: every occupied voxel up to tmax).
 * Errors: LM_EBADARG for a NULL table or grid, NULL rays or out with n > 0, a grid
 * whose sizes are not positive and finite or over LM_RAY_MAX_VOXELS_PER_AXIS, a ray
 * with a non-finite origin or direction, a zero direction, or a negative or NaN tmax. */
int lm_ray_march(const struct lm_ray_table *t, const struct lm_ray_grid *g,
                 const struct lm_ray *rays, size_t n, uint32_t max_hits,
                 struct lm_ray_out *out);

extern const struct lm_ray_table lm__ray_scalar_table;
extern const struct lm_ray_table lm__ray_avx2_table;
extern const struct lm_ray_table lm__ray_cl_table;
/* For implementations (raymarch_scalar.c): one ray by the rules; a ray's state after
 * rule (1), false when it misses the grid; rule (3) for an occupied voxel at the
 * state's cell and t (slot: its slot value), true when max_hits is reached; the
 * result of a ray with no hit. */
struct lm__ray_state {
    float p[3], d[3], inv[3];
    int32_t step[3], dim[3], cell[3];
    float t, tfar;
};
void lm__ray_one(const struct lm_ray_grid *g, const struct lm_ray *r, uint32_t max_hits,
                 struct lm_ray_out *out);
bool lm__ray_setup(const struct lm_ray_grid *g, const struct lm_ray *r,
                   struct lm__ray_state *s);
bool lm__ray_hit(const struct lm_ray_grid *g, const struct lm__ray_state *s, uint32_t slot,
                 uint32_t max_hits, struct lm_ray_out *o);
extern const struct lm_ray_out lm__ray_none;
/* Rule (3)'s radiance of voxel v toward the direction whose SH basis (lm_sh_basis) is
 * y, added to rgb. */
void lm__ray_shade(const struct lm_ray_grid *g, uint32_t v, const float y[4], float rgb[3]);

#endif
