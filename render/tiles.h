/* tiles.h - GPU tiles: one instance buffer of voxels per LOD node (lod.h invariant 2),
 * cached across frames, reloaded when the node's chunks change, evicted least recently
 * used under a memory budget.
 *
 * Owns: every tile's GL buffer and vertex arrays, the shared unit-cube geometry, and
 *   the map from node keys to tiles.
 * Invariants:
 *  (1) A tile is current for node n iff tile.sig == n.sig (and it has the time column
 *      when time colouring asks for it); a stale tile stays drawable until reloaded.
 *  (2) bytes == sum of the tiles' buffer sizes.
 *  (3) lm__tiles_evict never drops a tile used in the current frame.
 *  (4) Instance layout (struct lm__instance, 72 bytes): centre xyz (f32), mean colour
 *      rgba8 (a = 255), mean intensity and mean time in seconds since t_base (f32),
 *      SH sums divided by the sample count, per channel (Y00, Y1-1, Y10, Y11) (f32),
 *      at vertex attribute locations 1..6; location 0 is the cube corner.
 * Threading: the GL thread. Called by: render.c. */
#ifndef LM_RENDER_TILES_H
#define LM_RENDER_TILES_H

#include <stddef.h>
#include <stdint.h>

#include "gl.h"
#include "keymap.h"
#include "lod.h"

struct lm__instance {
    float center[3];
    uint8_t rgba[4];
    float attr[2];    /* mean intensity, mean time (s since t_base) */
    float sh[3][4];   /* SH sums / count */
};

struct lm__tile {
    struct lm__tkey key;
    uint64_t sig, lsn;
    uint32_t n;              /* voxels */
    bool has_time;
    GLuint vbo, vao_splat, vao_cube;
    size_t bytes;
    uint64_t used_frame;
};

struct lm__tiles {
    struct lm__tile *v;
    uint32_t n, cap;
    struct lm__keymap map;   /* key -> index in v */
    size_t bytes;            /* invariant 2 */
    GLuint cube_vbo, cube_ebo;
    uint64_t frame;          /* current frame number (caller advances it) */
    uint64_t loads, evictions;
    int64_t t_base;          /* time origin of attr[1], microseconds */
};

/* Creates the shared cube geometry. 0, or a translated GL error. */
int lm__tiles_init(struct lm__tiles *t, struct lm_error *err);
/* Deletes every tile and the cube geometry. */
void lm__tiles_free(struct lm__tiles *t);

/* Tile of a key, or NULL. The pointer is valid until the next load or evict. */
struct lm__tile *lm__tiles_find(const struct lm__tiles *t, const struct lm__tkey *key);
/* State of node n's tile (invariant 1); *count receives its voxel count if resident. */
enum lm__tile_state lm__tiles_state(const struct lm__tiles *t, const struct lm__lnode *n,
                                    bool need_time, uint32_t *count);

/* Loads (or reloads) node n's tile: lm_voxels_query over the node's cell at level k,
 * plus, with with_time, the mean sample time of each cell from lm_chunks_each. On a
 * database or memory error the previous tile, if any, is kept; on a GL error it is
 * dropped. Errors: the database's, -ENOMEM, GL errors. */
int lm__tiles_load(struct lm__tiles *t, lm_db *db, const char *field,
                   const struct lm__lod *l, const struct lm__lnode *n, bool with_time,
                   struct lm_error *err);

/* Drops least recently used tiles until bytes <= budget (invariant 3). */
void lm__tiles_evict(struct lm__tiles *t, size_t budget);

/* Issues the draw call of a tile with the voxel program bound: points (one per voxel)
 * or instanced cubes. */
void lm__tiles_draw(const struct lm__tile *tile, bool cubes);

#endif
