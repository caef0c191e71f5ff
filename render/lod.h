/* lod.h - the viewer's picture of a field and the choice of what to draw each frame.
 *
 * Owns: a directory of the field's chunks (coordinates, lsn, bounds, counts, value
 *   ranges) and a tree of tile nodes over them. CPU memory only, no GL.
 * Invariants:
 *  (1) Node (k, c) exists iff some chunk has coord >> k == c (arithmetic shift: the
 *      engine's octree grid), for 0 <= k <= top. Level-0 nodes are the chunks.
 *  (2) The tile of node (k, c) is the field's voxels at LOD level k inside the node's
 *      cell: at most edge^3 cells of size voxel_size * 2^k, so every level draws about
 *      the same number of cells per tile and children halve the cell size.
 *  (3) node.sig changes whenever a chunk under the node changes lsn, appears or
 *      vanishes: a tile loaded when the signature was node.sig is current.
 *  (4) top is the smallest level whose cell spans the field's extent on every axis
 *      (at most 8 top nodes), capped at LM__LOD_MAX_LEVEL.
 *  (5) lm__lod_select draws only tiles the probe reports resident, never a node and one
 *      of its descendants together, and refines a node only once all of its children
 *      in view are resident, so the picture has no holes while tiles load.
 * Threading: none; the render thread. Called by: render.c (sync, select), tiles.c. */
#ifndef LM_RENDER_LOD_H
#define LM_RENDER_LOD_H

#include <stdbool.h>
#include <stdint.h>

#include "keymap.h"
#include "lumadb.h"

#define LM__LOD_MAX_LEVEL 30

struct lm__lchunk {
    int32_t c[3];
    uint64_t lsn, n, n_voxels;
    float bmin[3], bmax[3];
    float i_min, i_max;     /* sample intensity range */
    int64_t t_min, t_max;   /* sample time range */
};

struct lm__lnode {
    struct lm__tkey key;
    float bmin[3], bmax[3]; /* tight bounds of the samples under the node */
    uint64_t lsn;           /* highest chunk lsn under the node */
    uint64_t sig;           /* invariant 3 */
    uint64_t n_samples, n_voxels0; /* samples, and occupied level-0 voxels */
};

struct lm__lod {
    bool have_field;              /* the field exists (else everything below is empty) */
    float voxel_size;
    uint32_t edge, log2_edge, top;
    uint64_t db_lsn, field_lsn;   /* what the last sync saw */
    uint64_t syncs;               /* number of syncs that found a change */
    struct lm__lchunk *chunks;
    uint32_t n_chunks, cap_chunks;
    struct lm__keymap chunk_map;  /* (0, coord) -> index in chunks */
    struct lm__lnode *nodes;
    uint32_t n_nodes, cap_nodes;
    struct lm__keymap node_map;   /* key -> index in nodes */
    float bmin[3], bmax[3];       /* field bounds */
    float i_min, i_max;           /* field intensity range */
    int64_t t_min, t_max;         /* field time range */
};

void lm__lod_init(struct lm__lod *l);
void lm__lod_free(struct lm__lod *l);

/* Brings the directory up to date with the database: cheap when nothing changed (one
 * lm_db_lsn); otherwise walks the field's chunks with lm_chunks_each, scans the columns
 * of changed chunks for value ranges and rebuilds the nodes. *changed (optional) tells
 * whether anything changed. A missing field is not an error: the picture is empty.
 * Errors: those of the database (-ENOMEM, LM_EFAILED); the directory is then unchanged. */
int lm__lod_sync(struct lm__lod *l, lm_db *db, const char *field, bool *changed,
                 struct lm_error *err);

/* Node by key, or NULL. */
const struct lm__lnode *lm__lod_node(const struct lm__lod *l, const struct lm__tkey *key);

/* World box of a node's cell (not the tight bounds). */
void lm__lod_cell_box(const struct lm__lod *l, const struct lm__tkey *key, double lo[3],
                      double hi[3]);

/* What the selection needs to know about a node's tile. */
enum lm__tile_state { LM__TILE_ABSENT = 0, LM__TILE_STALE, LM__TILE_FRESH };
typedef enum lm__tile_state (*lm__lod_probe)(void *ctx, const struct lm__lnode *node,
                                            uint32_t *n_voxels);

struct lm__lod_view {
    float eye[3];
    float planes[6][4];   /* frustum, normals inward (lm_frustum_from_camera) */
    float focal_px;       /* pixels per world unit at distance 1: h / (2 tan(fov/2)) */
    float pixel_error;    /* refine while a cell would cover more pixels than this */
    uint64_t budget;      /* most voxels to draw (the top level may exceed it) */
};

struct lm__lod_pick {
    const struct lm__lnode *node;
    float error;          /* projected cell size in pixels */
    uint32_t n_voxels;    /* resident count (draw list) or estimate (load list) */
    enum lm__tile_state state; /* load list: ABSENT or STALE */
    bool required;        /* load list: an absent top tile (nothing draws without it) */
};

/* The result of a selection; arrays are reused across calls. */
struct lm__lod_plan {
    struct lm__lod_pick *draw, *load;
    uint32_t n_draw, n_load, cap_draw, cap_load;
    uint64_t voxels;      /* sum of n_voxels over draw */
    uint32_t level_min, level_max; /* over draw (0, 0 when empty) */
    struct lm__lod_pick *heap;     /* scratch */
    uint32_t cap_heap;
};

/* Chooses the tiles to draw for a view (invariant 5) and the tiles to load, the latter
 * most urgent first: absent top-level tiles, then absent tiles (they hold refinement
 * back), then stale ones (they are drawn meanwhile), each by projected error.
 * 0 or -ENOMEM. */
int lm__lod_select(const struct lm__lod *l, const struct lm__lod_view *v,
                   lm__lod_probe probe, void *ctx, struct lm__lod_plan *plan);
void lm__lod_plan_free(struct lm__lod_plan *plan);

#endif
