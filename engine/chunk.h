/* chunk.h - one chunk: edge^3 voxels of a field, samples as columns, voxel aggregates.
 *
 * Owns: the column arrays, the voxel aggregate table and the chunk's search index.
 * Invariants:
 *  (1) Rows [0, n_sorted) are ordered by Morton code (morton.h invariant 2), ties in
 *      insertion order; rows [n_sorted, n) are an unsorted tail of recent inserts.
 *  (2) The search index, when built, covers exactly rows [0, n_sorted).
 *  (3) Every row lies in this chunk: floor(p / voxel) >> log2_edge == coord.
 *  (4) The bricks hold one aggregate per occupied voxel whose sums equal the sums
 *      over that voxel's rows; the chunk totals are the sums over all rows;
 *      bmin/bmax are the tight bounds of all rows (n > 0).
 *  (5) Mutators either fully succeed or leave the chunk unchanged, except
 *      lm__chunk_compact, which may fail and leave the (valid) tail in place.
 * Threading: none inside; field.c holds the database lock around every call.
 * Called by: field.c (writes), query.c (reads). */
#ifndef LM_CHUNK_H
#define LM_CHUNK_H

#include <pthread.h>
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

/* Aggregate of one voxel. key = local x | y << 8 | z << 16, plus 1. */
struct lm__voxel_agg {
    uint32_t key;
    uint32_t count;
    float sum_r, sum_g, sum_b, sum_i;
    float sh[3][4];
};

/* Voxels are kept in bricks of LM_BRICK^3 (or edge^3 for smaller chunks): a dense slot
 * table per brick (1 + index into agg, 0 = empty) and the brick's aggregates packed in
 * an array. Lookups are two array reads, and neighbouring voxels share cache lines. */
#define LM_BRICK 8u
struct lm__brick {
    uint16_t slot[LM_BRICK * LM_BRICK * LM_BRICK];
    uint32_t n, cap;
    struct lm__voxel_agg *agg;
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
    struct lm__brick **bricks; /* lm__chunk_n_bricks(s) entries, NULL = empty brick */
    uint32_t brick_edge, bricks_side;
    uint32_t vox_n;
    float bmin[3], bmax[3];
    /* running totals over all rows, for the octree (invariant 4) */
    double sum_r, sum_g, sum_b, sum_i, sh[3][4];
    /* where the chunk's last checkpointed version lives (store.c); seg 0 = nowhere */
    uint64_t disk_seg, disk_off;
    uint32_t disk_len;
    /* search index over rows [0, n_sorted), built on first use (lm__chunk_index) */
    pthread_mutex_t kd_lock;
    lm_kdtree *_Atomic kd;
};

static inline uint32_t lm__brick_edge(const struct lm_schema *s)
{
    return s->edge < LM_BRICK ? s->edge : LM_BRICK;
}

static inline uint32_t lm__chunk_n_bricks(const struct lm_schema *s)
{
    uint32_t nb = s->edge / lm__brick_edge(s);
    return nb * nb * nb;
}

/* Local voxel key x | y << 8 | z << 16 of voxel (vx, vy, vz) inside its chunk: the low
 * log2_edge bits of each voxel coordinate (the chunk is the high bits). */
static inline uint32_t lm__vkey(int64_t vx, int64_t vy, int64_t vz, uint32_t log2_edge)
{
    uint32_t m = (1u << log2_edge) - 1;
    return ((uint32_t)vx & m) | ((uint32_t)vy & m) << 8 | ((uint32_t)vz & m) << 16;
}

/* A validated batch with the per-row values its insert computes once (field.c), for
 * batch row j: vkey[j] its local voxel key; dir[2j..2j+1] its octahedral direction
 * (dir NULL: the batch has none, rows get +z); group[j] the number of its chunk among
 * the batch's chunks; rank[j] its place among that chunk's rows in batch order.
 * Borrowed, not owned. */
struct lm__staged {
    const struct lm_batch *b;
    const uint32_t *vkey;
    const uint16_t *dir;
    const uint32_t *group;
    const uint32_t *rank;
};

/* The rows a staged batch adds to one chunk: tail row c->n + r is batch row
 * batch_row[r] (r < count, batch order); by_brick lists the same r ordered by brick,
 * stably (lm__chunk_order_rows). Borrowed. */
struct lm__chunk_rows {
    uint32_t count;
    const uint32_t *batch_row;
    const uint32_t *by_brick;
};

/* The chunk's kd-tree over rows [0, n_sorted), built on first use; NULL when the chunk
 * has no sorted rows or the build ran out of memory (callers then scan). Safe under the
 * read lock: concurrent first uses are serialised by kd_lock. */
const lm_kdtree *lm__chunk_index(const struct lm_chunk *c);

size_t lm__type_size(enum lm_type t);

struct lm_chunk *lm__chunk_new(const int32_t coord[3], const struct lm_schema *s);
void lm__chunk_free(struct lm_chunk *c, const struct lm_schema *s);

/* Makes room for rows idx[0..count) of the staged batch (columns, bricks, voxel
 * slots). -ENOMEM leaves the chunk's content as it was (arrays may have grown). */
int lm__chunk_reserve(struct lm_chunk *c, const struct lm_schema *s,
                      const struct lm__staged *st, const uint32_t *idx, uint32_t count);

/* Appends every row of the staged batch to the tail of chunk[st->group[j]], in batch
 * order (rows[g] describes chunk[g]'s share). Columns are filled one at a time in one
 * pass over the batch; voxels are then updated chunk by chunk in brick order. Never
 * fails after a successful lm__chunk_reserve of every chunk's rows; base is scratch of
 * n_chunks pointers. */
void lm__chunk_append(struct lm_chunk *const *chunk, uint32_t n_chunks,
                      const struct lm_schema *s, const struct lm__staged *st,
                      const struct lm__chunk_rows *rows, void **base);

/* Fills by_brick[0..count) with 0..count-1 ordered stably by the brick of voxel key
 * vkey[batch_row[r]], so that appending updates one brick's aggregates at a time.
 * scratch must hold count + lm__chunk_n_bricks(s) + 1 entries. Never fails. */
void lm__chunk_order_rows(const struct lm_schema *s, const uint32_t *vkey,
                          const uint32_t *batch_row, uint32_t *by_brick, uint32_t count,
                          uint32_t *scratch);

/* Merges the tail into the Morton-ordered rows (in place) and drops the search index
 * when the tail outgrows a quarter of the sorted rows (or always with force, which also
 * gives the arrays' spare room back). 0 or -ENOMEM (chunk still valid). */
int lm__chunk_compact(struct lm_chunk *c, const struct lm_schema *s, bool force);

/* Keeps rows whose keep[i] is true, in order; recomputes voxels, bounds and index.
 * Returns 0 or -ENOMEM with the chunk unchanged. */
int lm__chunk_retain(struct lm_chunk *c, const struct lm_schema *s, const bool *keep);

/* Recomputes voxel aggregates and bounds from the rows (after in-place updates). */
int lm__chunk_recompute(struct lm_chunk *c, const struct lm_schema *s);

/* Voxel aggregate for local voxel (lx, ly, lz), or NULL. */
const struct lm__voxel_agg *lm__chunk_voxel(const struct lm_chunk *c, uint32_t lx,
                                            uint32_t ly, uint32_t lz);

/* Every column array of the chunk with its element size, in storage order: x, y, z,
 * dir, r, g, b, intensity, t, then user columns. Returns the count. */
struct lm__column_ref {
    void **ptr;
    size_t size;
};
#define LM__MAX_COLUMNS (9 + LM_MAX_USER_COLUMNS)
uint32_t lm__chunk_columns(struct lm_chunk *c, const struct lm_schema *s,
                           struct lm__column_ref out[LM__MAX_COLUMNS]);

/* Column value of row i as double (any column index). */
double lm__chunk_value(const struct lm_chunk *c, const struct lm_schema *s, int column,
                       uint32_t i);

/* Bytes held by the chunk. */
size_t lm__chunk_memory(const struct lm_chunk *c, const struct lm_schema *s);

#endif
