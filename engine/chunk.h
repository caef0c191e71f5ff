/* chunk.h - one chunk: edge^3 voxels of a field, samples as columns, voxel aggregates.
 *
 * Owns: the column arrays, the voxel aggregate table and the chunk's search index.
 * Invariants:
 *  (1) Rows [0, n_sorted) are ordered by Morton code (morton.h invariant 2), ties in
 *      insertion order; rows [n_sorted, n) are an unsorted tail of recent inserts.
 *  (2) The search index covers exactly rows [0, n_sorted).
 *  (3) Every row lies in this chunk: floor(p / voxel) >> log2_edge == coord.
 *  (4) The voxel table holds one entry per occupied voxel whose sums equal the sums
 *      over that voxel's rows; bmin/bmax are the tight bounds of all rows (n > 0).
 *  (5) Mutators either fully succeed or leave the chunk unchanged, except
 *      lm__chunk_compact, which may fail and leave the (valid) tail in place.
 * Threading: none inside; field.c holds the database lock around every call.
 * Called by: field.c (writes), query.c (reads). */
#ifndef LM_CHUNK_H
#define LM_CHUNK_H

#include <stdbool.h>
#include <stdint.h>

#include "kdtree.h"
#include "lumadb.h"

/* What a chunk needs to know of its field. */
struct lm_schema {
    float voxel_size;
    double inv_voxel;
    uint32_t edge, log2_edge;
    uint32_t n_user;
    enum lm_type user_type[LM_MAX_USER_COLUMNS];
};

/* Aggregate of one voxel. key = local x | y << 8 | z << 16, plus 1 (0 = empty slot). */
struct lm__voxel_agg {
    uint32_t key;
    uint32_t count;
    float sum_r, sum_g, sum_b, sum_i;
    float sh[3][4];
};

struct lm_chunk {
    int32_t coord[3];
    uint64_t lsn;
    uint32_t n, cap, n_sorted;
    float *x, *y, *z;
    uint16_t *dir; /* 2 per row, octahedral */
    uint8_t *r, *g, *b;
    float *intensity;
    int64_t *t;
    void *user[LM_MAX_USER_COLUMNS];
    struct lm__voxel_agg *vox; /* open addressing, vox_cap a power of two */
    uint32_t vox_cap, vox_n;
    float bmin[3], bmax[3];
    lm_kdtree *kd;
};

size_t lm__type_size(enum lm_type t);

struct lm_chunk *lm__chunk_new(const int32_t coord[3]);
void lm__chunk_free(struct lm_chunk *c, const struct lm_schema *s);

/* Makes room for `extra` more rows (columns and voxel table). -ENOMEM leaves the chunk
 * as it was (arrays may have grown, content unchanged). */
int lm__chunk_reserve(struct lm_chunk *c, const struct lm_schema *s, uint32_t extra);

/* Appends validated rows idx[0..count) of batch to the tail. Never fails after a
 * successful lm__chunk_reserve(c, s, count). Directions are normalised by the caller
 * into dir_norm (3 per batch row, or NULL for the default). */
void lm__chunk_append(struct lm_chunk *c, const struct lm_schema *s,
                      const struct lm_batch *b, const float *dir_norm,
                      const uint32_t *idx, uint32_t count);

/* Sorts the tail into the Morton-ordered rows and rebuilds the search index when the
 * tail is large (or always with force). 0 or -ENOMEM (chunk still valid). */
int lm__chunk_compact(struct lm_chunk *c, const struct lm_schema *s, bool force);

/* Keeps rows whose keep[i] is true, in order; recomputes voxels, bounds and index.
 * Returns 0 or -ENOMEM with the chunk unchanged. */
int lm__chunk_retain(struct lm_chunk *c, const struct lm_schema *s, const bool *keep);

/* Recomputes voxel aggregates and bounds from the rows (after in-place updates). */
int lm__chunk_recompute(struct lm_chunk *c, const struct lm_schema *s);

/* Voxel aggregate for local voxel (lx, ly, lz), or NULL. */
const struct lm__voxel_agg *lm__chunk_voxel(const struct lm_chunk *c, uint32_t lx,
                                            uint32_t ly, uint32_t lz);

/* Column value of row i as double (any column index). */
double lm__chunk_value(const struct lm_chunk *c, const struct lm_schema *s, int column,
                       uint32_t i);

/* Bytes held by the chunk. */
size_t lm__chunk_memory(const struct lm_chunk *c, const struct lm_schema *s);

#endif
