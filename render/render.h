/* render.h - the LumaDB viewer's renderer: draws a light field of a database with
 * OpenGL 3.3 core, into a window or offscreen (context.h) through the same code.
 *
 * Each frame: poll the database lsn and, when it moved, re-read the chunk directory
 * (lod.h); pick octree tiles by screen-space error under a voxel budget; load missing
 * or changed tiles (lm_voxels_query at the tile's level) within a time budget; evict
 * least recently used tiles over a memory budget; draw voxels as splats or cubes,
 * coloured by radiance toward the eye (the voxel's L1 SH evaluated in the shader),
 * stored colour, or intensity / time through a colour ramp; then boxes, axes, HUD.
 *
 * Owns: GL programs, the tile cache (GL buffers), the chunk directory, a copy of the
 *   field name. Borrows: the database handle (must outlive the renderer).
 * Invariants: (1) needs the GL context current that was current at open;
 *   (2) the library never prints: errors come back as codes with lm_error text;
 *   (3) a frame with settings.complete draws exactly what unlimited loading would: the
 *   same camera and data always give the same picture (snapshots and tests rely on it).
 * Threading: the thread that owns the GL context; the database may be written by other
 *   threads or processes meanwhile (changes show at the next frame).
 * Called by: tools/cmd_view.c (view, snapshot), tests/test_render*.c, bench/bench_render.c. */
#ifndef LM_RENDER_H
#define LM_RENDER_H

#include <stdbool.h>
#include <stdint.h>

#include "camera.h"
#include "lumadb.h"

typedef struct lm_render lm_render;

/* Background colour (sRGB bytes), for tests and compositing. */
#define LM_RENDER_BG_R 15
#define LM_RENDER_BG_G 18
#define LM_RENDER_BG_B 23

enum lm_render_color {
    LM_RENDER_COLOR_RADIANCE = 0, /* SH radiance toward the eye, times exposure */
    LM_RENDER_COLOR_STORED,       /* mean stored colour */
    LM_RENDER_COLOR_INTENSITY,    /* mean intensity on the ramp (field's sample range) */
    LM_RENDER_COLOR_TIME,         /* mean time on the ramp (field's sample range) */
    LM_RENDER_COLOR_COUNT
};
/* "radiance", "colour", "intensity", "time". */
const char *lm_render_color_name(enum lm_render_color c);
/* Mode for a name (also "color"), or LM_EBADARG. */
int lm_render_color_parse(const char *name);

enum lm_render_shape { LM_RENDER_SPLATS = 0, LM_RENDER_CUBES = 1 };

struct lm_render_opts {
    uint64_t voxel_budget;   /* most voxels per frame as splats (cubes: a quarter, as they
                                cost about 6x more to draw); 0 = LM_RENDER_DEFAULT_BUDGET */
    uint64_t memory_budget;  /* bytes of tile buffers kept; 0 = 256 MiB */
    float pixel_error;       /* refine until a cell covers at most this many pixels;
                                0 = LM_RENDER_DEFAULT_PIXEL_ERROR */
    double load_ms;          /* tile loading per frame (ms); 0 = 10 */
};
#define LM_RENDER_DEFAULT_BUDGET 200000u
#define LM_RENDER_DEFAULT_PIXEL_ERROR 2.0f

struct lm_render_settings {
    enum lm_render_color color;
    enum lm_render_shape shape;
    bool lod;           /* false: the finest level everywhere in view, no voxel budget */
    bool boxes;         /* outline the drawn tiles, coloured by level */
    bool axes;          /* world axes at the origin and the field's bounds */
    bool complete;      /* load every tile this view wants before drawing (invariant 3) */
    float exposure;     /* radiance multiplier */
    float pixel_error;  /* > 0: overrides opts.pixel_error for this frame */
    const char *hud;    /* text drawn at the top left, or NULL */
};
/* Radiance, splats, LOD on, no boxes or axes, incomplete, exposure 1, no HUD. */
void lm_render_settings_default(struct lm_render_settings *s);

struct lm_render_stats {
    uint64_t voxels;          /* voxels drawn */
    uint32_t tiles_drawn, tiles_resident, tiles_loaded, tiles_pending;
    uint32_t level_min, level_max; /* LOD levels drawn */
    uint64_t bytes_resident;  /* tile buffer bytes */
    uint64_t loads, evictions;/* totals since open */
    uint64_t field_lsn, syncs;/* lsn the picture shows; directory re-reads so far */
    uint32_t chunks;          /* chunks in the field */
    uint32_t chunks_resident; /* of which on the GPU at full resolution (level-0 tiles) */
    bool field_missing;       /* the field does not exist (yet) */
    double load_ms;           /* time spent loading tiles in this frame */
};

/* Creates a renderer for `field` of db in the current GL context: compiles the shaders
 * (embedded, or from $LUMADB_SHADER_DIR) and reads the chunk directory. opts may be
 * NULL. A field that does not exist yet is not an error (frames are empty until it
 * does). Errors: LM_EBADARG, LM_ESYNTAX (shader: err names file and line), GL errors,
 * database errors, -ENOMEM. */
int lm_render_open(lm_db *db, const char *field, const struct lm_render_opts *opts,
                   lm_render **out, struct lm_error *err);
/* Releases GL objects and memory (needs the context current). NULL is a no-op. */
void lm_render_close(lm_render *r);

/* Draws one frame into the bound framebuffer of width x height pixels (see
 * lm_render_ctx_begin). stats (optional) describes what was drawn. Errors: database
 * errors, -ENOMEM, GL errors (translated); the frame may then be partial. */
int lm_render_frame(lm_render *r, const struct lm_render_camera *cam,
                    const struct lm_render_settings *s, int width, int height,
                    struct lm_render_stats *stats, struct lm_error *err);

/* Tight bounds of the field's samples (after bringing the directory up to date).
 * LM_ENOTFOUND when the field is missing or empty. */
int lm_render_bounds(lm_render *r, float bmin[3], float bmax[3], struct lm_error *err);

/* Recompiles every shader (from $LUMADB_SHADER_DIR when set). On error the previous
 * programs stay in use and err names the file and line. */
int lm_render_reload_shaders(lm_render *r, struct lm_error *err);

/* Hot reload: when $LUMADB_SHADER_DIR is set and one of the renderer's shader files
 * there changed since the last call (modification time), reloads them all as
 * lm_render_reload_shaders does and sets *reloaded. A failed reload is not retried
 * until a file changes again. Cheap enough to call a few times a second. */
int lm_render_poll_shaders(lm_render *r, bool *reloaded, struct lm_error *err);

#endif
