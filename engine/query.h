/* query.h - read queries over one field: rows, nearest, aggregates, voxels and LOD,
 * radiance, ray casts, chunk iteration.
 *
 * Owns: the result objects it returns (ownership passes to the caller on success).
 * Invariants: (1) queries never modify the field. (2) every result equals what a scan
 *   of all rows with the same float expressions would give (region.h, kdtree.h (3)).
 * Threading: any number of queries may run at once under db.c's read lock.
 * Called by: db.c. Arguments are validated by db.c before these run. */
#ifndef LM_QUERY_H
#define LM_QUERY_H

#include "field.h"

int lm__query_select(const struct lm_field *f, const struct lm_selection *sel, size_t limit,
                     struct lm_rows **out);
int lm__query_nearest(const struct lm_field *f, const float p[3], size_t k, float max_dist,
                      const struct lm_selection *filters, struct lm_rows **out);
int lm__query_aggregate(const struct lm_field *f, const struct lm_selection *sel, int column,
                        struct lm_aggregate *out);
int lm__query_voxels(const struct lm_field *f, const struct lm_region *region, uint32_t level,
                     struct lm_voxels **out);
int lm__query_voxel_get(const struct lm_field *f, const int32_t coord[3], struct lm_voxel *out);
/* Cursor state for lm_voxel_cursor (db.c owns the lock). */
struct lm__voxel_seek {
    const struct lm_field *f;
    int32_t last[3];
    const struct lm_chunk *chunk; /* chunk at `last`, or NULL when absent */
    bool valid;
    int32_t brick_key[3];         /* voxel coord >> 3 of the cached brick */
    const struct lm__brick *brick;/* that brick (NULL: empty or not cached) */
    bool brick_valid;
};
const struct lm__voxel_agg *lm__voxel_seek(struct lm__voxel_seek *s, const int32_t coord[3]);
void lm__voxel_fill(struct lm_voxel *out, const int32_t coord[3], const struct lm__voxel_agg *a);

int lm__query_radiance(const struct lm_field *f, const float p[3], const float dir[3],
                       float rgb[3], float *weight);
int lm__query_raycast(const struct lm_field *f, const float origin[3], const float dir[3],
                      float max_dist, enum lm_ray_mode mode, struct lm_ray_result **out);
int lm__query_chunks(const struct lm_field *f, const struct lm_region *region,
                     uint64_t since_lsn, lm_chunk_fn fn, void *user);

#endif
