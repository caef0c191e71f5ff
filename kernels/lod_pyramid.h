/* lod_pyramid.h - the level-of-detail pyramid: each level aggregates 2x2x2 cells of
 * the level below (counts, colour and intensity sums, SH sums), from level 0 (a chunk's
 * voxels) up to one cell. (render/lod.h chooses what to draw from it.)
 *
 * Owns: the arrays of levels made by lm_lod_level_new / lm_lod_pyramid (freed by
 * lm_lod_level_free). A level is dense: dim[0] * dim[1] * dim[2] cells, x fastest,
 *
 *   count[cell]                          samples in the cell
 *   sums[channel * cells + cell]         channel 0-3: sum of r, g, b, intensity;
 *                                        4 + 4 * c + k: SH sum of colour channel c,
 *                                        coefficient k (engine/sh.h order)
 *
 * Invariants:
 *  (1) A parent level has dim = ceil(child dim / 2) per axis; parent cell (X, Y, Z)
 *      takes child cells (2X + i, 2Y + j, 2Z + k), a child past the child level's
 *      edge counting as count 0 and sums +0.
 *  (2) Sum order, in f32, each addition rounded: for each (j, k) in the order (0, 0),
 *      (1, 0), (0, 1), (1, 1), r_jk = child(2X, .) + child(2X + 1, .); the parent is
 *      ((r_00 + r_10) + r_01) + r_11. Counts add the same way modulo 2^32 (a chunk holds
 *      fewer than 2^32 samples, so a pyramid of one chunk never wraps). Every
 *      implementation gives the same bits.
 * Threading: levels are plain data; tables are immutable.
 * Called by: render/ and net/ (LOD of chunks), tests, bench_kernels.
 */
#ifndef LM_LOD_PYRAMID_H
#define LM_LOD_PYRAMID_H

#include <stddef.h>
#include <stdint.h>

#include "lumadb.h"

#define LM_LOD_SUMS 16u

struct lm_lod_level {
    uint32_t dim[3];
    uint32_t *count;
    float *sums; /* LM_LOD_SUMS * cells, channel-major */
};

/* Allocates a zeroed level of dim[0] x dim[1] x dim[2] cells (each >= 1). Errors
 * (*out untouched): LM_EBADARG, LM_ELIMIT (more than 2^31 cells), -ENOMEM. */
int lm_lod_level_new(const uint32_t dim[3], struct lm_lod_level *out);
void lm_lod_level_free(struct lm_lod_level *l); /* frees the arrays; NULL is a no-op */
static inline size_t lm_lod_cells(const struct lm_lod_level *l)
{
    return (size_t)l->dim[0] * l->dim[1] * l->dim[2];
}

/* Fills a zeroed level with the level-0 voxels vox[0..n) whose coordinates lie in
 * [base, base + dim) (as lm_voxels_query returns them): count, sums of colour
 * (mean * count) and intensity, and SH sums. Others are left out. */
void lm_lod_level_from_voxels(struct lm_lod_level *l, const int32_t base[3],
                              const struct lm_voxel *vox, size_t n);

/* One implementation. Use lm_lod_parent, which checks arguments. */
struct lm_lod_table {
    const char *name; /* "scalar", "avx2", "opencl" */
    /* Writes every cell of parent from child (invariants (1), (2)). Returns 0, or
     * non-zero when it could not run (OpenCL failed). */
    int (*build)(const struct lm_lod_level *child, struct lm_lod_level *parent);
};

const struct lm_lod_table *lm_lod_scalar(void);  /* never NULL */
const struct lm_lod_table *lm_lod_avx2(void);    /* NULL without AVX2 + FMA */
const struct lm_lod_table *lm_lod_opencl(void);  /* NULL without a device */
const struct lm_lod_table *lm_lod_best(void);    /* AVX2, else scalar */

/* Builds parent (allocated by the caller with dim = ceil(child dim / 2)) from child.
 * Errors: LM_EBADARG for NULL arguments or arrays, or mismatched dimensions. */
int lm_lod_parent(const struct lm_lod_table *t, const struct lm_lod_level *child,
                  struct lm_lod_level *parent);

/* Builds levels 1.. from levels[0] until a level of one cell, into levels[1..],
 * allocating them; *n_levels receives the number of levels including level 0. levels
 * must have room for 1 + ceil(log2(max dim)) entries (33 always suffice). On an error
 * the levels made so far are freed and *n_levels is untouched. */
int lm_lod_pyramid(const struct lm_lod_table *t, struct lm_lod_level *levels,
                   size_t *n_levels);

extern const struct lm_lod_table lm__lod_scalar_table;
extern const struct lm_lod_table lm__lod_avx2_table;
extern const struct lm_lod_table lm__lod_cl_table;
/* For implementations: channel ch (-1: counts) of parent row `row` (row = Y + dim[1] *
 * Z of the parent), cells x0.. of it, by the scalar rule. */
void lm__lod_row(const struct lm_lod_level *child, struct lm_lod_level *parent, int ch,
                 size_t row, uint32_t x0);

#endif
