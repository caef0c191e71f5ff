/* lumadb.h - the public C API of LumaDB, a light-field spatial database.
 *
 * Owns: nothing by itself; every handle below is opaque and owned by the caller
 * between its _open/_new and _close/_free.
 *
 * A database directory holds named light fields. A field stores samples (rays:
 * position, unit direction of travel, colour, intensity, time, user columns) in a
 * sparse voxel grid: chunks of edge^3 voxels, columns ordered by Morton code, per-voxel
 * aggregates (count, mean colour, summed intensity, L1 spherical-harmonic radiance),
 * an octree over chunks (culling + level-of-detail pyramid) and per-chunk kd-trees
 * (nearest neighbours).
 *
 * Conventions (see docs/DESIGN.md):
 *  - Every fallible call returns 0 or a negative LM_E* code. OS failures are -errno,
 *    LumaDB's own codes are <= -10000. lm_strerror() names any of them.
 *  - An optional `struct lm_error *err` receives a message for people: what, where,
 *    why. Pass NULL to ignore it.
 *  - `*out` parameters are written only on success.
 *  - Result objects (lm_rows, lm_voxels, ...) are owned by the caller and freed with
 *    their _free function; NULL is accepted by every _free/_close.
 *  - Threading: any number of threads may query one lm_db at once; mutations are
 *    serialised by the database (one writer at a time, readers wait for it).
 *  - Bad input (non-finite numbers, non-unit directions, unknown names, mismatched
 *    batches) is rejected whole: nothing of a rejected call is applied.
 */
#ifndef LUMADB_H
#define LUMADB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- errors */

/* X(name, value, message). OS errors are passed through as -errno. */
#define LM_ERROR_TABLE(X)                                                        \
    X(LM_EBADARG,      -10001, "invalid argument")                               \
    X(LM_EBADVALUE,    -10002, "invalid value in input data")                    \
    X(LM_ENOFIELD,     -10003, "no such field")                                  \
    X(LM_EFIELDEXISTS, -10004, "field already exists")                           \
    X(LM_ENOCOLUMN,    -10005, "no such column")                                 \
    X(LM_ESCHEMA,      -10006, "batch does not match the field schema")          \
    X(LM_ECORRUPT,     -10007, "stored data is corrupt")                         \
    X(LM_EVERSION,     -10008, "unsupported format version")                     \
    X(LM_ESYNTAX,      -10009, "syntax error")                                   \
    X(LM_EREADONLY,    -10010, "database is open read-only")                     \
    X(LM_ELOCKED,      -10011, "database directory is locked by another process")\
    X(LM_ENOTFOUND,    -10012, "nothing found")                                  \
    X(LM_ELIMIT,       -10013, "limit exceeded")                                 \
    X(LM_EFAILED,      -10014, "database failed earlier; reopen it")             \
    X(LM_ENOTLEADER,   -10015, "not the cluster leader")                         \
    X(LM_ECANCELED,    -10016, "operation canceled")                             \
    X(LM_ENODEVICE,    -10017, "no compute device available")                    \
    X(LM_EINTERNAL,    -10018, "internal error")

enum lm_error_code {
#define LM__ERROR_ENUM(name, value, msg) name = value,
    LM_ERROR_TABLE(LM__ERROR_ENUM)
#undef LM__ERROR_ENUM
};

/* Text for any code returned by LumaDB (ours or -errno). Never NULL. */
const char *lm_strerror(int code);

/* Details for people. `line`/`column` are 1-based positions in query text or an
 * imported file (0 when not applicable); `offset` a byte offset in a file (-1 when
 * not applicable). */
struct lm_error {
    int code;
    uint32_t line, column;
    int64_t offset;
    char message[512];
};

/* ---------------------------------------------------------------- schema */

enum lm_type { LM_TYPE_F32 = 1, LM_TYPE_I32 = 2, LM_TYPE_U8 = 3 };

/* Built-in columns. User columns are numbered LM_COL_USER + i in schema order. */
enum lm_column {
    LM_COL_X = 0, LM_COL_Y, LM_COL_Z,     /* position, f32 world units */
    LM_COL_DX, LM_COL_DY, LM_COL_DZ,      /* unit direction of travel (stored octahedral 2x16 bit) */
    LM_COL_R, LM_COL_G, LM_COL_B,         /* colour in [0,1] (stored 8 bit) */
    LM_COL_INTENSITY,                     /* f32, >= 0 */
    LM_COL_T,                             /* i64 microseconds */
    LM_COL_USER                           /* first user column */
};

#define LM_NAME_MAX 63
#define LM_MAX_USER_COLUMNS 32

struct lm_column_def {
    char name[LM_NAME_MAX + 1];
    enum lm_type type;
};

struct lm_field_opts {
    float voxel_size;     /* world units per voxel edge, > 0 */
    uint32_t chunk_edge;  /* voxels per chunk edge: power of two in [4, 256]; 0 = 32 */
    uint32_t n_user_columns;
    struct lm_column_def user_columns[LM_MAX_USER_COLUMNS];
};

/* Description of a field as stored. */
struct lm_field_info {
    char name[LM_NAME_MAX + 1];
    struct lm_field_opts opts;
    uint64_t n_samples;
    uint64_t n_chunks;
    uint64_t n_voxels;      /* occupied voxels */
    uint64_t lsn;           /* sequence number of the last change */
    float bounds_min[3], bounds_max[3]; /* tight bounds of all samples (0s if empty) */
    uint64_t memory_bytes;  /* bytes held by this field's columns, aggregates and indexes */
};

/* Name of a column of a field's schema (built-in or user); NULL if out of range. */
const char *lm_column_name(int column, const struct lm_field_opts *opts);
/* Column index for a name (case-insensitive), or LM_ENOCOLUMN. */
int lm_column_find(const char *name, const struct lm_field_opts *opts);

/* ---------------------------------------------------------------- database */

typedef struct lm_db lm_db;

enum lm_sync { LM_SYNC_GROUP = 0, LM_SYNC_ALWAYS = 1, LM_SYNC_NONE = 2 };

struct lm_io; /* engine/io.h: the storage backend table */

/* Durability policies (a write is acknowledged only once its policy is met):
 *  LM_SYNC_GROUP  (default) fsync before acknowledging, one fsync shared by the
 *                 writers that arrive while another is under way;
 *  LM_SYNC_ALWAYS fsync before acknowledging, never waiting to gather others;
 *  LM_SYNC_NONE   hand the log to the OS only: survives a process crash, not a power
 *                 loss (bulk loads, chosen explicitly). */
struct lm_db_opts {
    bool read_only;           /* open without the writer lock: the last checkpoint plus the
                                 log so far; lm_db_refresh catches up later */
    bool create;              /* create the directory if missing */
    enum lm_sync sync;        /* durability policy */
    uint32_t group_commit_us; /* group commit window; 0 = default (100 us) */
    uint64_t checkpoint_bytes;/* checkpoint after this much log; 0 = 64 MiB */
    const struct lm_io *io;   /* storage backend; NULL = POSIX (tests inject faults) */
};

/* Opens (and with opts->create, creates) the database directory `dir`. opts may be
 * NULL for defaults (create, group commit). Errors: LM_ELOCKED when another process
 * holds the directory for writing; LM_ECORRUPT / LM_EVERSION for bad files (err names
 * the file and offset); -errno from the OS. */
int lm_db_open(const char *dir, const struct lm_db_opts *opts, lm_db **out,
               struct lm_error *err);
/* Closes the database: pending writes are made durable and a checkpoint is written so
 * that the next open is fast. NULL is a no-op. */
void lm_db_close(lm_db *db);

/* Writes a checkpoint now: changed chunks to a new LZ4 segment, a new manifest, and the
 * log truncated. Errors: -errno from storage (the previous checkpoint stays valid). */
int lm_db_checkpoint(lm_db *db, struct lm_error *err);

/* Storage figures: bytes of live checkpoint data and of the log since it. */
struct lm_db_stats {
    uint64_t checkpoint_lsn;
    uint64_t checkpoint_bytes;
    uint64_t wal_bytes_since_checkpoint;
};
int lm_db_stats(lm_db *db, struct lm_db_stats *out);

/* Sequence number of the last applied change. */
uint64_t lm_db_lsn(lm_db *db);

/* Read-only handles: catch up with the writer process (a new checkpoint, records logged
 * since); on error the previous view stays. Writer handles: nothing to do, returns 0. */
int lm_db_refresh(lm_db *db, struct lm_error *err);

/* ---------------------------------------------------------------- fields */

/* Creates a field. Name: 1..63 chars [A-Za-z_][A-Za-z0-9_]*. Errors: LM_EFIELDEXISTS,
 * LM_EBADARG (voxel size <= 0 or not finite, bad chunk edge, duplicate or reserved
 * column name). */
int lm_field_create(lm_db *db, const char *name, const struct lm_field_opts *opts,
                    struct lm_error *err);
int lm_field_drop(lm_db *db, const char *name, struct lm_error *err);
/* Fills *out with up to `cap` field infos, sets *n to the number of fields (which may
 * exceed cap). Sorted by name. */
int lm_field_list(lm_db *db, struct lm_field_info *out, size_t cap, size_t *n);
int lm_field_info(lm_db *db, const char *name, struct lm_field_info *out,
                  struct lm_error *err);
/* As lm_field_info in constant time, for callers that look a field up per statement
 * (the query executor): n_voxels and memory_bytes are left 0, which lm_field_info
 * counts chunk by chunk. */
int lm_field_stat(lm_db *db, const char *name, struct lm_field_info *out,
                  struct lm_error *err);

/* ---------------------------------------------------------------- writes */

/* Sorts every chunk's recent inserts into Morton order and builds the search indexes
 * now rather than on first use (after bulk loads, before latency-sensitive reads).
 * Never changes query answers. */
int lm_field_optimize(lm_db *db, const char *name, struct lm_error *err);

/* A batch of n samples as columns. Required: x, y, z. Optional (NULL = default):
 * dx/dy/dz (all three or none; default (0,0,1)), r/g/b (all or none; default 1),
 * intensity (default 1), t (default 0). user[i] points at n values of user column i
 * in the column's type (NULL = zero). Directions must be unit length within 1e-3 and
 * are normalised; colours must lie in [0,1]; intensity must be finite and >= 0. */
struct lm_batch {
    size_t n;
    const float *x, *y, *z;
    const float *dx, *dy, *dz;
    const float *r, *g, *b;
    const float *intensity;
    const int64_t *t;
    uint32_t n_user;                          /* must be 0 or the field's user count */
    const void *user[LM_MAX_USER_COLUMNS];
};

/* Inserts a batch atomically: all samples or none. *lsn (optional) receives the change's
 * sequence number. Errors: LM_ENOFIELD, LM_EBADVALUE (err names the sample index, column
 * and value), LM_ESCHEMA. */
int lm_insert(lm_db *db, const char *field, const struct lm_batch *batch, uint64_t *lsn,
              struct lm_error *err);

/* ---------------------------------------------------------------- selections */

enum lm_region_kind { LM_REGION_ALL = 0, LM_REGION_BOX, LM_REGION_SPHERE, LM_REGION_FRUSTUM };

/* A frustum is six planes a*x+b*y+c*z+d >= 0 inside (normals pointing in). Build one
 * from a camera with lm_frustum_from_camera. */
struct lm_region {
    enum lm_region_kind kind;
    float min[3], max[3];       /* BOX: inclusive bounds */
    float center[3], radius;    /* SPHERE: distance <= radius */
    float planes[6][4];         /* FRUSTUM */
};

/* Fills a frustum region from a perspective camera; fov_y in degrees. */
int lm_frustum_from_camera(const float eye[3], const float target[3], const float up[3],
                           float fov_y_deg, float aspect, float near_d, float far_d,
                           struct lm_region *out);

enum lm_cmp { LM_CMP_LT = 1, LM_CMP_LE, LM_CMP_GT, LM_CMP_GE, LM_CMP_EQ, LM_CMP_NE,
              LM_CMP_BETWEEN /* a <= v <= b */ };

/* column <cmp> a [AND b]: the stored value (decoded: colour in [0,1]) compared with the
 * constants exactly, as real numbers. */
struct lm_filter {
    int column;
    enum lm_cmp cmp;
    double a, b;
};

#define LM_MAX_FILTERS 16

/* Region AND every filter. */
struct lm_selection {
    struct lm_region region;
    uint32_t n_filters;
    struct lm_filter filters[LM_MAX_FILTERS];
};

/* ---------------------------------------------------------------- rows */

/* Rows returned by queries: all columns, decoded. `distance` is filled by nearest and
 * ray queries (else NULL). Column pointers are NULL when n is 0. The whole result is
 * one allocation owned by the caller: free it with lm_rows_free. */
struct lm_rows {
    size_t n;
    float *x, *y, *z, *dx, *dy, *dz, *r, *g, *b, *intensity;
    int64_t *t;
    uint32_t n_user;
    enum lm_type user_type[LM_MAX_USER_COLUMNS];
    void *user[LM_MAX_USER_COLUMNS];
    float *distance;
};
void lm_rows_free(struct lm_rows *rows);
/* Value of any column of row i as a double. */
double lm_rows_value(const struct lm_rows *rows, int column, size_t i);

/* ---------------------------------------------------------------- reads */

/* Samples inside the selection, in storage order (chunk, then Morton order), at most
 * `limit` of them (0 = no limit). */
int lm_select(lm_db *db, const char *field, const struct lm_selection *sel, size_t limit,
              struct lm_rows **out, struct lm_error *err);

/* The k samples nearest to p that pass the selection's filters (its region is
 * ignored; `max_dist` > 0 bounds the search radius), nearest first; equal distances come
 * in a deterministic order for a given database state. rows->distance holds the
 * distances. */
int lm_nearest(lm_db *db, const char *field, const float p[3], size_t k, float max_dist,
               const struct lm_selection *filters, struct lm_rows **out,
               struct lm_error *err);

/* Aggregate of one column over the selection. */
struct lm_aggregate {
    uint64_t count;
    double sum, min, max, avg; /* min/max/avg are 0 when count is 0 */
};
int lm_aggregate(lm_db *db, const char *field, const struct lm_selection *sel, int column,
                 struct lm_aggregate *out, struct lm_error *err);

/* For EXPLAIN: the kernel paths the calling thread's scans ran on since its previous
 * call of this function, which starts a new record: "scalar", "avx2", "opencl", joined
 * by "+" in that order, or "none". Call it before a query (to clear) and after it. The
 * path is chosen per chunk by size, device and LUMADB_DEVICE (auto|cpu|opencl). The
 * string is static. */
const char *lm_kernel_paths(void);

/* Deletes the samples in the selection (NULL selects every sample); *n_deleted
 * (optional) receives how many. Atomic. */
int lm_delete(lm_db *db, const char *field, const struct lm_selection *sel,
              uint64_t *n_deleted, uint64_t *lsn, struct lm_error *err);

/* Sets a column (colour, intensity, t or a user column; positions and directions are
 * changed by delete + insert) to `value` for every sample in the selection (NULL: all).
 * Atomic. */
int lm_update(lm_db *db, const char *field, const struct lm_selection *sel, int column,
              double value, uint64_t *n_updated, uint64_t *lsn, struct lm_error *err);

/* ---------------------------------------------------------------- voxels and LOD */

/* Aggregated voxels. Level 0 = voxels of the field; level L merges 2^L x 2^L x 2^L
 * voxels. `coord` are integer voxel coordinates at that level (world position of the
 * cell's min corner = coord * voxel_size * 2^L). sh holds L1 spherical-harmonic sums
 * per channel [channel][coef] with coef order (Y00, Y1-1, Y10, Y11) of
 * colour*intensity; mean_* are means over the cell's samples. */
struct lm_voxel {
    int32_t coord[3];
    uint32_t count;
    float mean_r, mean_g, mean_b;
    float sum_intensity;
    float sh[3][4];
};
struct lm_voxels {
    size_t n;
    uint32_t level;
    float cell_size;
    struct lm_voxel *v;
};
void lm_voxels_free(struct lm_voxels *vox);

/* Occupied cells at `level` that intersect the region (its filters are ignored: cells
 * aggregate every sample). Sorted by (z, y, x) of coord. */
int lm_voxels_query(lm_db *db, const char *field, const struct lm_region *region,
                    uint32_t level, struct lm_voxels **out, struct lm_error *err);

/* Looks up one level-0 voxel. LM_ENOTFOUND when empty. */
int lm_voxel_get(lm_db *db, const char *field, const int32_t coord[3], struct lm_voxel *out);

/* A read cursor over one field's level-0 voxels for long runs of lookups (renderers,
 * samplers). It holds the database read lock until closed, so writers wait: keep it
 * short-lived. It caches the last chunk, so neighbouring lookups cost one hash probe.
 * One thread per cursor. */
typedef struct lm_voxel_cursor lm_voxel_cursor;
int lm_voxel_cursor_open(lm_db *db, const char *field, lm_voxel_cursor **out,
                         struct lm_error *err);
/* As lm_voxel_get: 0 and *out filled, or LM_ENOTFOUND for an empty voxel. */
int lm_voxel_cursor_get(lm_voxel_cursor *cur, const int32_t coord[3], struct lm_voxel *out);
/* Voxel sample count only (0 when empty): the cheapest probe. */
uint32_t lm_voxel_cursor_count(lm_voxel_cursor *cur, const int32_t coord[3]);
void lm_voxel_cursor_close(lm_voxel_cursor *cur); /* releases the read lock; NULL ok */

/* Radiance leaving point p in unit direction dir: trilinear interpolation of the
 * neighbouring voxels' L1 SH (empty voxels get no weight), evaluated toward dir.
 * rgb receives radiance per channel; *weight (optional) the summed trilinear weight of
 * occupied voxels (0 < weight <= 1). LM_ENOTFOUND when no neighbouring voxel is occupied.
 * Reconstruction: L(d) = mean(f) + mean(f*w).d, f = colour*intensity, w = the sample's
 * direction — the L1 projection with band-1 window 1/3, which is never negative. */
int lm_radiance(lm_db *db, const char *field, const float p[3], const float dir[3],
                float rgb[3], float *weight, struct lm_error *err);

/* ---------------------------------------------------------------- ray cast */

enum lm_ray_mode { LM_RAY_FIRST = 0, LM_RAY_ALL = 1 };

/* One voxel crossed by a ray. */
struct lm_ray_hit {
    int32_t voxel[3];
    float t_enter, t_exit;   /* distances along the ray */
    struct lm_voxel agg;
};
struct lm_ray_result {
    size_t n_hits;
    struct lm_ray_hit *hits;  /* occupied voxels in ray order; FIRST: at most one */
    struct lm_rows *samples;  /* ALL: samples in hit voxels, by distance along the ray
                                 (rows->distance = projection on the ray); FIRST: the
                                 samples of the first hit voxel */
    float radiance[3];        /* sum over hit voxels of their SH radiance toward -dir */
};
void lm_ray_result_free(struct lm_ray_result *res);

/* Walks the voxel grid from `origin` along unit `dir` up to max_dist (> 0) with a
 * hierarchical DDA (empty chunks skipped). */
int lm_raycast(lm_db *db, const char *field, const float origin[3], const float dir[3],
               float max_dist, enum lm_ray_mode mode, struct lm_ray_result **out,
               struct lm_error *err);

/* ---------------------------------------------------------------- chunks */

/* Read-only view of one chunk, valid only during the callback. */
struct lm_chunk_view {
    int32_t coord[3];          /* chunk coordinates: voxel coord >> log2(chunk_edge) */
    uint64_t lsn;              /* sequence number of the chunk's last change */
    size_t n;                  /* samples */
    size_t n_voxels;           /* occupied voxels */
    float bounds_min[3], bounds_max[3];
    const float *x, *y, *z;
    const uint16_t *dir_oct;   /* 2 x u16 per sample, octahedral */
    const uint8_t *r, *g, *b;
    const float *intensity;
    const int64_t *t;
    const void *user[LM_MAX_USER_COLUMNS];
};

/* Calls fn for each chunk intersecting region (NULL = all) whose lsn > since_lsn, in
 * octree (Morton) order of chunk coordinates, under the read lock. fn returning non-zero stops the walk
 * and that value is returned. */
typedef int (*lm_chunk_fn)(const struct lm_chunk_view *chunk, void *user);
int lm_chunks_each(lm_db *db, const char *field, const struct lm_region *region,
                   uint64_t since_lsn, lm_chunk_fn fn, void *user, struct lm_error *err);

/* What the octree walk of a read over `region` (NULL = all) meets, without reading
 * samples: for query plans (EXPLAIN). The walk classifies octree nodes against the
 * region from the root down; a node outside it is pruned with its subtree, a node
 * inside it has every descendant inside. Leaves reached hold one chunk each. */
struct lm_walk_stats {
    uint64_t nodes_visited;    /* octree nodes reached (inner and leaves) */
    uint64_t nodes_pruned;     /* of those, outside the region or empty: subtree skipped */
    uint64_t chunks_inside;    /* leaves wholly inside the region */
    uint64_t chunks_partial;   /* leaves the region's boundary crosses */
    uint64_t samples_inside, samples_partial; /* samples in those chunks */
};
int lm_walk_stats(lm_db *db, const char *field, const struct lm_region *region,
                  struct lm_walk_stats *out, struct lm_error *err);

/* ---------------------------------------------------------------- helpers */

/* Octahedral encoding of a unit direction into two 16-bit values and back. */
void lm_dir_encode(const float d[3], uint16_t out[2]);
void lm_dir_decode(const uint16_t in[2], float d[3]);

#ifdef __cplusplus
}
#endif
#endif /* LUMADB_H */
