/* db.c - the database handle: directory lock, fields, locking, the public API.
 *
 * Invariants: (1) mutations run under the write lock, queries under the read lock;
 *   (2) every mutation is validated completely before anything changes; (3) a failure
 *   after a change began (out of memory mid-apply) marks the database failed: every
 *   later call returns LM_EFAILED until it is reopened, so that no half-applied
 *   change is ever built upon. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "error.h"
#include "field.h"
#include "query.h"
#include "region.h"

struct lm_db {
    char *dir;
    int lock_fd;
    struct lm_db_opts opts;
    pthread_rwlock_t lock;
    struct lm_field **fields; /* sorted by name */
    size_t n_fields, cap_fields;
    uint64_t lsn;
    atomic_bool failed;
};

/* ---------------------------------------------------------------- open/close */

int lm_db_open(const char *dir, const struct lm_db_opts *opts, lm_db **out,
               struct lm_error *err)
{
    static const struct lm_db_opts defaults = {.create = true, .sync = LM_SYNC_GROUP};
    if (!dir || !*dir || !out)
        return lm__fail(err, LM_EBADARG, "database directory is required");
    if (!opts)
        opts = &defaults;
    if (opts->create && mkdir(dir, 0755) && errno != EEXIST)
        return lm__fail(err, -errno, "cannot create database directory '%s': %s", dir,
                        strerror(errno));
    struct stat st;
    if (stat(dir, &st))
        return lm__fail(err, -errno, "cannot open database directory '%s': %s", dir,
                        strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return lm__fail(err, -ENOTDIR, "'%s' is not a directory", dir);
    lm_db *db = lm_calloc(1, sizeof *db);
    if (!db || !(db->dir = lm_strdup(dir))) {
        lm_free(db);
        return lm__fail(err, -ENOMEM, "out of memory opening '%s'", dir);
    }
    db->opts = *opts;
    db->lock_fd = -1;
    if (!opts->read_only) {
        /* One writer process per directory: an advisory lock on LOCK. */
        char path[4096];
        snprintf(path, sizeof path, "%s/LOCK", dir);
        db->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (db->lock_fd < 0) {
            int e = errno;
            lm_db_close(db);
            return lm__fail(err, -e, "cannot open lock file '%s': %s", path, strerror(e));
        }
        if (flock(db->lock_fd, LOCK_EX | LOCK_NB)) {
            int e = errno;
            lm_db_close(db);
            if (e == EWOULDBLOCK)
                return lm__fail(err, LM_ELOCKED,
                                "database '%s' is open for writing by another process", dir);
            return lm__fail(err, -e, "cannot lock '%s': %s", path, strerror(e));
        }
    }
    pthread_rwlock_init(&db->lock, NULL);
    *out = db;
    return 0;
}

void lm_db_close(lm_db *db)
{
    if (!db)
        return;
    for (size_t i = 0; i < db->n_fields; i++)
        lm__field_free(db->fields[i]);
    lm_free(db->fields);
    if (db->lock_fd >= 0)
        close(db->lock_fd);
    if (db->dir)
        pthread_rwlock_destroy(&db->lock);
    lm_free(db->dir);
    lm_free(db);
}

uint64_t lm_db_lsn(lm_db *db)
{
    pthread_rwlock_rdlock(&db->lock);
    uint64_t l = db->lsn;
    pthread_rwlock_unlock(&db->lock);
    return l;
}

/* ---------------------------------------------------------------- locking helpers */

static int begin_write(lm_db *db, struct lm_error *err)
{
    if (db->opts.read_only)
        return lm__fail(err, LM_EREADONLY, "database '%s' is open read-only", db->dir);
    pthread_rwlock_wrlock(&db->lock);
    if (atomic_load(&db->failed)) {
        pthread_rwlock_unlock(&db->lock);
        return lm__fail(err, LM_EFAILED, "database '%s' failed earlier; reopen it", db->dir);
    }
    return 0;
}

/* Ends a mutation; rc from an apply that may have changed state marks the db failed. */
static int end_write(lm_db *db, int rc, bool changed_on_error)
{
    if (rc && changed_on_error)
        atomic_store(&db->failed, true);
    pthread_rwlock_unlock(&db->lock);
    return rc;
}

static int begin_read(lm_db *db, struct lm_error *err)
{
    pthread_rwlock_rdlock(&db->lock);
    if (atomic_load(&db->failed)) {
        pthread_rwlock_unlock(&db->lock);
        return lm__fail(err, LM_EFAILED, "database '%s' failed earlier; reopen it", db->dir);
    }
    return 0;
}

static size_t field_pos(const lm_db *db, const char *name, bool *found)
{
    size_t lo = 0, hi = db->n_fields;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(db->fields[mid]->name, name);
        if (!c) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static struct lm_field *find_field(const lm_db *db, const char *name, struct lm_error *err)
{
    bool found = false;
    size_t i = name ? field_pos(db, name, &found) : 0;
    if (!found) {
        lm__fail(err, LM_ENOFIELD, "no field named '%s'", name ? name : "(null)");
        return NULL;
    }
    return db->fields[i];
}

/* ---------------------------------------------------------------- fields */

int lm_field_create(lm_db *db, const char *name, const struct lm_field_opts *opts,
                    struct lm_error *err)
{
    struct lm_field *f;
    int rc = lm__field_new(name, opts, &f, err);
    if (rc)
        return rc;
    if ((rc = begin_write(db, err))) {
        lm__field_free(f);
        return rc;
    }
    bool found;
    size_t pos = field_pos(db, name, &found);
    if (found) {
        lm__field_free(f);
        return end_write(db, lm__fail(err, LM_EFIELDEXISTS, "field '%s' already exists", name),
                         false);
    }
    if (db->n_fields == db->cap_fields) {
        size_t cap = db->cap_fields ? db->cap_fields * 2 : 8;
        struct lm_field **v = lm_realloc(db->fields, cap * sizeof *v);
        if (!v) {
            lm__field_free(f);
            return end_write(db, lm__fail(err, -ENOMEM, "out of memory creating '%s'", name),
                             false);
        }
        db->fields = v;
        db->cap_fields = cap;
    }
    memmove(&db->fields[pos + 1], &db->fields[pos], (db->n_fields - pos) * sizeof *db->fields);
    db->fields[pos] = f;
    db->n_fields++;
    f->lsn = ++db->lsn;
    return end_write(db, 0, false);
}

int lm_field_drop(lm_db *db, const char *name, struct lm_error *err)
{
    int rc = begin_write(db, err);
    if (rc)
        return rc;
    bool found = false;
    size_t pos = name ? field_pos(db, name, &found) : 0;
    if (!found)
        return end_write(db, lm__fail(err, LM_ENOFIELD, "no field named '%s'",
                                      name ? name : "(null)"), false);
    lm__field_free(db->fields[pos]);
    memmove(&db->fields[pos], &db->fields[pos + 1],
            (db->n_fields - pos - 1) * sizeof *db->fields);
    db->n_fields--;
    db->lsn++;
    return end_write(db, 0, false);
}

int lm_field_list(lm_db *db, struct lm_field_info *out, size_t cap, size_t *n)
{
    int rc = begin_read(db, NULL);
    if (rc)
        return rc;
    for (size_t i = 0; i < db->n_fields && i < cap; i++)
        lm__field_info(db->fields[i], &out[i]);
    if (n)
        *n = db->n_fields;
    pthread_rwlock_unlock(&db->lock);
    return 0;
}

int lm_field_info(lm_db *db, const char *name, struct lm_field_info *out,
                  struct lm_error *err)
{
    int rc = begin_read(db, err);
    if (rc)
        return rc;
    struct lm_field *f = find_field(db, name, err);
    if (f)
        lm__field_info(f, out);
    pthread_rwlock_unlock(&db->lock);
    return f ? 0 : LM_ENOFIELD;
}

/* ---------------------------------------------------------------- writes */

int lm_insert(lm_db *db, const char *field, const struct lm_batch *batch, uint64_t *lsn,
              struct lm_error *err)
{
    if (!batch)
        return lm__fail(err, LM_EBADARG, "batch is required");
    int rc = begin_write(db, err);
    if (rc)
        return rc;
    struct lm_field *f = find_field(db, field, err);
    if (!f)
        return end_write(db, LM_ENOFIELD, false);
    if ((rc = lm__field_check_batch(f, batch, err)))
        return end_write(db, rc, false);
    if (!batch->n) {
        if (lsn)
            *lsn = db->lsn;
        return end_write(db, 0, false);
    }
    uint64_t l = db->lsn + 1;
    /* lm__field_insert is all-or-nothing: a failure there changed nothing. */
    if ((rc = lm__field_insert(f, batch, l, err)))
        return end_write(db, rc, false);
    db->lsn = l;
    if (lsn)
        *lsn = l;
    return end_write(db, 0, false);
}

int lm_field_optimize(lm_db *db, const char *name, struct lm_error *err)
{
    int rc = begin_write(db, err);
    if (rc)
        return rc;
    struct lm_field *f = find_field(db, name, err);
    if (!f)
        return end_write(db, LM_ENOFIELD, false);
    /* Compaction only reorders rows; a failure leaves every chunk valid. */
    rc = lm__field_compact(f);
    if (rc)
        lm__fail(err, rc, "out of memory optimising '%s'", name);
    return end_write(db, rc, false);
}

int lm_delete(lm_db *db, const char *field, const struct lm_selection *sel,
              uint64_t *n_deleted, uint64_t *lsn, struct lm_error *err)
{
    int rc = begin_write(db, err);
    if (rc)
        return rc;
    struct lm_field *f = find_field(db, field, err);
    if (!f)
        return end_write(db, LM_ENOFIELD, false);
    if ((rc = lm__field_check_selection(f, sel, err)))
        return end_write(db, rc, false);
    uint64_t l = db->lsn + 1, n = 0;
    if ((rc = lm__field_delete(f, sel, l, &n, err)))
        return end_write(db, rc, true);
    if (n)
        db->lsn = l;
    if (n_deleted)
        *n_deleted = n;
    if (lsn)
        *lsn = db->lsn;
    return end_write(db, 0, false);
}

int lm_update(lm_db *db, const char *field, const struct lm_selection *sel, int column,
              double value, uint64_t *n_updated, uint64_t *lsn, struct lm_error *err)
{
    int rc = begin_write(db, err);
    if (rc)
        return rc;
    struct lm_field *f = find_field(db, field, err);
    if (!f)
        return end_write(db, LM_ENOFIELD, false);
    if ((rc = lm__field_check_selection(f, sel, err)))
        return end_write(db, rc, false);
    uint64_t l = db->lsn + 1, n = 0;
    rc = lm__field_update(f, sel, column, value, l, &n, err);
    /* Validation errors come before any change; only out-of-memory is mid-apply. */
    if (rc)
        return end_write(db, rc, rc == -ENOMEM);
    if (n)
        db->lsn = l;
    if (n_updated)
        *n_updated = n;
    if (lsn)
        *lsn = db->lsn;
    return end_write(db, 0, false);
}

/* ---------------------------------------------------------------- reads */

/* Looks up the field under the read lock; on success the caller must unlock. */
static int read_field(lm_db *db, const char *name, const struct lm_selection *sel,
                      struct lm_field **f, struct lm_error *err)
{
    int rc = begin_read(db, err);
    if (rc)
        return rc;
    *f = find_field(db, name, err);
    if (!*f)
        rc = LM_ENOFIELD;
    else
        rc = lm__field_check_selection(*f, sel, err);
    if (rc)
        pthread_rwlock_unlock(&db->lock);
    return rc;
}

static int end_read(lm_db *db, int rc, struct lm_error *err, const char *what)
{
    pthread_rwlock_unlock(&db->lock);
    if (rc == -ENOMEM)
        lm__fail(err, rc, "out of memory running %s", what);
    return rc;
}

int lm_select(lm_db *db, const char *field, const struct lm_selection *sel, size_t limit,
              struct lm_rows **out, struct lm_error *err)
{
    struct lm_field *f;
    int rc = read_field(db, field, sel, &f, err);
    if (rc)
        return rc;
    return end_read(db, lm__query_select(f, sel, limit, out), err, "select");
}

int lm_nearest(lm_db *db, const char *field, const float p[3], size_t k, float max_dist,
               const struct lm_selection *filters, struct lm_rows **out,
               struct lm_error *err)
{
    if (!p || !isfinite(p[0]) || !isfinite(p[1]) || !isfinite(p[2]) || isnan(max_dist))
        return lm__fail(err, LM_EBADARG, "nearest needs a finite query point");
    struct lm_field *f;
    int rc = read_field(db, field, filters, &f, err);
    if (rc)
        return rc;
    return end_read(db, lm__query_nearest(f, p, k, max_dist, filters, out), err, "nearest");
}

int lm_aggregate(lm_db *db, const char *field, const struct lm_selection *sel, int column,
                 struct lm_aggregate *out, struct lm_error *err)
{
    struct lm_field *f;
    int rc = read_field(db, field, sel, &f, err);
    if (rc)
        return rc;
    if (!lm_column_name(column, &f->opts))
        return end_read(db, lm__fail(err, LM_ENOCOLUMN, "field '%s' has no column %d",
                                     field, column), err, "aggregate");
    return end_read(db, lm__query_aggregate(f, sel, column, out), err, "aggregate");
}

int lm_voxels_query(lm_db *db, const char *field, const struct lm_region *region,
                    uint32_t level, struct lm_voxels **out, struct lm_error *err)
{
    struct lm_selection sel = {.region = region ? *region : (struct lm_region){0}};
    struct lm_field *f;
    int rc = read_field(db, field, &sel, &f, err);
    if (rc)
        return rc;
    if (level > 40)
        return end_read(db, lm__fail(err, LM_EBADARG, "LOD level %u is above 40", level), err,
                        "voxels");
    return end_read(db, lm__query_voxels(f, region, level, out), err, "voxels");
}

int lm_voxel_get(lm_db *db, const char *field, const int32_t coord[3], struct lm_voxel *out)
{
    struct lm_field *f;
    int rc = read_field(db, field, NULL, &f, NULL);
    if (rc)
        return rc;
    return end_read(db, lm__query_voxel_get(f, coord, out), NULL, "voxel lookup");
}

struct lm_voxel_cursor {
    lm_db *db;
    struct lm__voxel_seek seek;
};

int lm_voxel_cursor_open(lm_db *db, const char *field, lm_voxel_cursor **out,
                         struct lm_error *err)
{
    lm_voxel_cursor *cur = lm_calloc(1, sizeof *cur);
    if (!cur)
        return lm__fail(err, -ENOMEM, "out of memory opening a voxel cursor");
    struct lm_field *f;
    int rc = read_field(db, field, NULL, &f, err);
    if (rc) {
        lm_free(cur);
        return rc;
    }
    /* the read lock stays held until lm_voxel_cursor_close */
    cur->db = db;
    cur->seek.f = f;
    *out = cur;
    return 0;
}

int lm_voxel_cursor_get(lm_voxel_cursor *cur, const int32_t coord[3], struct lm_voxel *out)
{
    const struct lm__voxel_agg *a = lm__voxel_seek(&cur->seek, coord);
    if (!a)
        return LM_ENOTFOUND;
    lm__voxel_fill(out, coord, a);
    return 0;
}

uint32_t lm_voxel_cursor_count(lm_voxel_cursor *cur, const int32_t coord[3])
{
    const struct lm__voxel_agg *a = lm__voxel_seek(&cur->seek, coord);
    return a ? a->count : 0;
}

void lm_voxel_cursor_close(lm_voxel_cursor *cur)
{
    if (!cur)
        return;
    pthread_rwlock_unlock(&cur->db->lock);
    lm_free(cur);
}

static int check_dir(const float d[3], struct lm_error *err, const char *what)
{
    double l = sqrt((double)d[0] * d[0] + (double)d[1] * d[1] + (double)d[2] * d[2]);
    if (!isfinite(l) || fabs(l - 1.0) > 1e-3)
        return lm__fail(err, LM_EBADARG, "%s direction (%g, %g, %g) is not a unit vector", what,
                        (double)d[0], (double)d[1], (double)d[2]);
    return 0;
}

int lm_radiance(lm_db *db, const char *field, const float p[3], const float dir[3],
                float rgb[3], float *weight, struct lm_error *err)
{
    if (!isfinite(p[0]) || !isfinite(p[1]) || !isfinite(p[2]))
        return lm__fail(err, LM_EBADARG, "radiance needs a finite point");
    int rc = check_dir(dir, err, "radiance");
    if (rc)
        return rc;
    struct lm_field *f;
    if ((rc = read_field(db, field, NULL, &f, err)))
        return rc;
    rc = lm__query_radiance(f, p, dir, rgb, weight);
    if (rc == LM_ENOTFOUND)
        lm__fail(err, rc, "no occupied voxel around (%g, %g, %g) in '%s'", (double)p[0],
                 (double)p[1], (double)p[2], field);
    return end_read(db, rc, err, "radiance");
}

int lm_raycast(lm_db *db, const char *field, const float origin[3], const float dir[3],
               float max_dist, enum lm_ray_mode mode, struct lm_ray_result **out,
               struct lm_error *err)
{
    if (!isfinite(origin[0]) || !isfinite(origin[1]) || !isfinite(origin[2]))
        return lm__fail(err, LM_EBADARG, "ray origin must be finite");
    if (!(max_dist > 0.0f) || !isfinite(max_dist))
        return lm__fail(err, LM_EBADARG, "ray length %g must be a finite number > 0",
                        (double)max_dist);
    if (mode != LM_RAY_FIRST && mode != LM_RAY_ALL)
        return lm__fail(err, LM_EBADARG, "unknown ray mode %d", (int)mode);
    int rc = check_dir(dir, err, "ray");
    if (rc)
        return rc;
    struct lm_field *f;
    if ((rc = read_field(db, field, NULL, &f, err)))
        return rc;
    return end_read(db, lm__query_raycast(f, origin, dir, max_dist, mode, out), err,
                    "raycast");
}

int lm_chunks_each(lm_db *db, const char *field, const struct lm_region *region,
                   uint64_t since_lsn, lm_chunk_fn fn, void *user, struct lm_error *err)
{
    if (!fn)
        return lm__fail(err, LM_EBADARG, "a chunk callback is required");
    struct lm_selection sel = {.region = region ? *region : (struct lm_region){0}};
    struct lm_field *f;
    int rc = read_field(db, field, &sel, &f, err);
    if (rc)
        return rc;
    rc = lm__query_chunks(f, region, since_lsn, fn, user);
    pthread_rwlock_unlock(&db->lock);
    return rc;
}
