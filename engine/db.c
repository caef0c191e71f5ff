/* db.c - the database handle: directory lock, fields, locking, logging, recovery,
 * checkpoints, and the public API.
 *
 * Invariants:
 *  (1) mutations run under the write lock, queries under the read lock;
 *  (2) every mutation is validated completely before anything is logged or changed;
 *  (3) a mutation is logged (WAL record, LSN assigned) and applied under the write
 *      lock, in LSN order, then made durable per policy after the lock is released
 *      (so concurrent writers share one fsync); it is acknowledged only after that;
 *  (4) a failure after logging (apply out of memory, a failed fsync) marks the database
 *      failed: every later call returns LM_EFAILED until it is reopened, and recovery
 *      then rebuilds the state from the checkpoint and the log;
 *  (5) open = load the checkpoint, replay the log after it, remove orphaned segments.
 *  (6) a replica (lm__db_open_replica) has no log of its own: its changes arrive as
 *      records with sequence numbers chosen by replication and go through the same
 *      apply(); the public write calls refuse it.
 */
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
#include "db.h"
#include "device.h"
#include "error.h"
#include "field.h"
#include "io.h"
#include "query.h"
#include "record.h"
#include "region.h"
#include "store.h"
#include "wal.h"

#define DEFAULT_CHECKPOINT_BYTES (64ull << 20)

struct lm_db {
    char *dir;
    int lock_fd;
    struct lm_db_opts opts;
    const struct lm_io *io;
    lm_wal *wal;               /* NULL when read-only */
    pthread_rwlock_t lock;
    struct lm_field **fields; /* sorted by name */
    size_t n_fields, cap_fields;
    uint64_t lsn;
    uint64_t ckpt_lsn;
    _Atomic uint64_t wal_bytes; /* logged since the last checkpoint */
    atomic_bool failed;
    bool replica;              /* invariant 6 */
};

/* ---------------------------------------------------------------- fields table */

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

static int fields_insert(lm_db *db, struct lm_field *f, size_t pos)
{
    if (db->n_fields == db->cap_fields) {
        size_t cap = db->cap_fields ? db->cap_fields * 2 : 8;
        struct lm_field **v = lm_realloc(db->fields, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        db->fields = v;
        db->cap_fields = cap;
    }
    memmove(&db->fields[pos + 1], &db->fields[pos], (db->n_fields - pos) * sizeof *db->fields);
    db->fields[pos] = f;
    db->n_fields++;
    return 0;
}

static void fields_remove(lm_db *db, size_t pos)
{
    lm__field_free(db->fields[pos]);
    memmove(&db->fields[pos], &db->fields[pos + 1],
            (db->n_fields - pos - 1) * sizeof *db->fields);
    db->n_fields--;
}

/* ---------------------------------------------------------------- apply */

/* Applies a decoded record with sequence number lsn: the one code path of both live
 * writes and recovery (record.h invariant 1). */
static int apply(lm_db *db, const struct lm__record *r, uint64_t lsn, uint64_t *count,
                 struct lm_error *err)
{
    bool found = false;
    size_t pos = field_pos(db, r->field, &found);
    if (r->type == LM_REC_FIELD_CREATE) {
        if (found)
            return lm__fail(err, LM_EFIELDEXISTS, "field '%s' already exists", r->field);
        struct lm_field *f;
        int rc = lm__field_new(r->field, &r->opts, &f, err);
        if (rc)
            return rc;
        if (fields_insert(db, f, pos)) {
            lm__field_free(f);
            return lm__fail(err, -ENOMEM, "out of memory creating '%s'", r->field);
        }
        f->lsn = lsn;
        return 0;
    }
    if (!found)
        return lm__fail(err, LM_ENOFIELD, "no field named '%s'", r->field);
    struct lm_field *f = db->fields[pos];
    switch (r->type) {
    case LM_REC_FIELD_DROP:
        fields_remove(db, pos);
        return 0;
    case LM_REC_INSERT:
        if (count)
            *count = r->batch.n;
        return lm__field_insert(f, &r->batch, lsn, err);
    case LM_REC_DELETE:
        return lm__field_delete(f, &r->sel, lsn, count, err);
    case LM_REC_UPDATE:
        return lm__field_update(f, &r->sel, r->column, r->value, lsn, count, err);
    default:
        return lm__fail(err, LM_ECORRUPT, "unknown record type %d", (int)r->type);
    }
}

static int user_sizes(void *ctx, const char *field, uint32_t sizes[LM_MAX_USER_COLUMNS],
                      uint32_t *n_user)
{
    lm_db *db = ctx;
    struct lm_field *f = find_field(db, field, NULL);
    if (!f)
        return LM_ENOFIELD;
    *n_user = f->schema.n_user;
    for (uint32_t u = 0; u < f->schema.n_user; u++)
        sizes[u] = (uint32_t)lm__type_size(f->schema.user_type[u]);
    return 0;
}

struct replay_ctx {
    lm_db *db;
    struct lm_error *err;
};

static int replay_one(void *ctx, uint64_t lsn, uint16_t type, const void *payload, size_t n)
{
    struct replay_ctx *rc_ = ctx;
    struct lm__record r;
    int rc = lm__record_decode(type, payload, n, user_sizes, rc_->db, &r, rc_->err);
    if (rc)
        return rc;
    rc = apply(rc_->db, &r, lsn, NULL, rc_->err);
    lm__record_free(&r);
    if (rc) {
        /* Records are validated before they are logged: a failure here is damage. */
        char why[512];
        snprintf(why, sizeof why, "%s", rc_->err ? rc_->err->message : lm_strerror(rc));
        return lm__fail(rc_->err, rc == -ENOMEM ? rc : LM_ECORRUPT,
                        "replaying log record %llu: %s", (unsigned long long)lsn, why);
    }
    rc_->db->lsn = lsn;
    return 0;
}

/* ---------------------------------------------------------------- open/close */

static int take_lock(lm_db *db, struct lm_error *err)
{
    /* One writer process per directory: an advisory lock on LOCK. */
    char path[4096];
    snprintf(path, sizeof path, "%s/LOCK", db->dir);
    db->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (db->lock_fd < 0)
        return lm__fail(err, -errno, "cannot open lock file '%s': %s", path, strerror(errno));
    if (flock(db->lock_fd, LOCK_EX | LOCK_NB)) {
        int e = errno;
        if (e == EWOULDBLOCK)
            return lm__fail(err, LM_ELOCKED,
                            "database '%s' is open for writing by another process", db->dir);
        return lm__fail(err, -e, "cannot lock '%s': %s", path, strerror(e));
    }
    return 0;
}

/* Read-only state: the checkpoint plus whatever the writer has logged since. */
static int load_read_only(lm_db *db, struct lm_error *err)
{
    int rc = lm__store_load(db->io, db->dir, &db->fields, &db->n_fields, &db->ckpt_lsn, err);
    if (rc)
        return rc;
    db->cap_fields = db->n_fields;
    db->lsn = db->ckpt_lsn;
    char wal_dir[4096];
    snprintf(wal_dir, sizeof wal_dir, "%s/wal", db->dir);
    struct replay_ctx ctx = {db, err};
    uint64_t last = 0;
    return lm_wal_read(db->io, wal_dir, db->lsn, replay_one, &ctx, &last, err);
}

static void free_fields(struct lm_field **fields, size_t n)
{
    for (size_t i = 0; i < n; i++)
        lm__field_free(fields[i]);
    lm_free(fields);
}

int lm_db_refresh(lm_db *db, struct lm_error *err)
{
    if (!db->opts.read_only)
        return 0; /* the writer's own handle is always current */
    pthread_rwlock_wrlock(&db->lock);
    uint64_t ck = 0;
    int rc = lm__store_manifest_lsn(db->io, db->dir, &ck);
    bool reload = !rc && ck != db->ckpt_lsn; /* the writer checkpointed */
    if (!rc && !reload) {
        /* same checkpoint: apply the records logged since */
        char wal_dir[4096];
        snprintf(wal_dir, sizeof wal_dir, "%s/wal", db->dir);
        struct replay_ctx ctx = {db, err};
        rc = lm_wal_read(db->io, wal_dir, db->lsn, replay_one, &ctx, NULL, err);
        if (rc == LM_ENOTFOUND) { /* the log was truncated under us */
            reload = true;
            rc = 0;
        }
    }
    /* Load the new state into a shadow handle and swap it in only when it loaded
     * whole, so a failure keeps the old view. The writer may remove files while we
     * read them: one retry. */
    for (int attempt = 0; reload && attempt < 2; attempt++) {
        lm_db shadow = {.dir = db->dir, .io = db->io, .opts = db->opts, .lock_fd = -1};
        rc = load_read_only(&shadow, err);
        if (rc) {
            free_fields(shadow.fields, shadow.n_fields);
            continue;
        }
        free_fields(db->fields, db->n_fields);
        db->fields = shadow.fields;
        db->n_fields = shadow.n_fields;
        db->cap_fields = shadow.cap_fields;
        db->ckpt_lsn = shadow.ckpt_lsn;
        db->lsn = shadow.lsn;
        break;
    }
    pthread_rwlock_unlock(&db->lock);
    return rc;
}

static int recover(lm_db *db, struct lm_error *err)
{
    if (db->opts.read_only)
        return load_read_only(db, err);
    int rc = lm__store_load(db->io, db->dir, &db->fields, &db->n_fields, &db->ckpt_lsn, err);
    if (rc)
        return rc;
    db->cap_fields = db->n_fields;
    db->lsn = db->ckpt_lsn;
    char wal_dir[4096];
    snprintf(wal_dir, sizeof wal_dir, "%s/wal", db->dir);
    struct lm_wal_opts wo = {.io = db->io, .dir = wal_dir, .sync = db->opts.sync,
                             .group_commit_us = db->opts.group_commit_us};
    if ((rc = lm_wal_open(&wo, &db->wal, err)))
        return rc;
    struct replay_ctx ctx = {db, err};
    if ((rc = lm_wal_replay(db->wal, db->ckpt_lsn, replay_one, &ctx, err)))
        return rc;
    /* A log that ends before the checkpoint (truncated after it) continues after it. */
    if (lm_wal_last_lsn(db->wal) < db->ckpt_lsn &&
        (rc = lm_wal_truncate_upto(db->wal, db->ckpt_lsn)))
        return lm__fail(err, rc, "moving the log past checkpoint %llu: %s",
                        (unsigned long long)db->ckpt_lsn, lm_strerror(rc));
    if (lm_wal_last_lsn(db->wal) > db->lsn)
        db->lsn = lm_wal_last_lsn(db->wal);
    return lm__store_collect(db->io, db->dir, db->fields, db->n_fields, err);
}

/* A replica starts empty whatever the directory holds: replication restores its
 * snapshot and replays its log into it (invariant 6). */
static int start_replica(lm_db *db, struct lm_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/MANIFEST", db->dir);
    int rc = db->io->unlink(db->io->ctx, path);
    if (rc && rc != -ENOENT)
        return lm__fail(err, rc, "removing %s: %s", path, lm_strerror(rc));
    return lm__store_collect(db->io, db->dir, NULL, 0, err);
}

static int open_db(const char *dir, const struct lm_db_opts *opts, bool replica, lm_db **out,
                   struct lm_error *err)
{
    static const struct lm_db_opts defaults = {.create = true, .sync = LM_SYNC_GROUP};
    if (!dir || !*dir || !out)
        return lm__fail(err, LM_EBADARG, "database directory is required");
    if (!opts)
        opts = &defaults;
    if (opts->sync != LM_SYNC_GROUP && opts->sync != LM_SYNC_ALWAYS && opts->sync != LM_SYNC_NONE)
        return lm__fail(err, LM_EBADARG, "unknown durability policy %d", (int)opts->sync);
    const struct lm_io *io = opts->io ? opts->io : lm_io_posix();
    if (opts->create && !opts->read_only) {
        int rc = lm_io_mkdir_durable(io, dir, NULL, err);
        if (rc)
            return rc;
    }
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
    db->io = io;
    db->replica = replica;
    db->lock_fd = -1;
    pthread_rwlock_init(&db->lock, NULL);
    int rc = opts->read_only ? 0 : take_lock(db, err);
    if (!rc)
        rc = replica ? start_replica(db, err) : recover(db, err);
    if (rc) {
        atomic_store(&db->failed, true); /* close must not checkpoint a partial state */
        lm_db_close(db);
        return rc;
    }
    if (!opts->read_only) /* the OpenCL binary cache, should kernels need a build */
        lm_device_use_data_dir(dir);
    *out = db;
    return 0;
}

int lm_db_open(const char *dir, const struct lm_db_opts *opts, lm_db **out,
               struct lm_error *err)
{
    return open_db(dir, opts, false, out, err);
}

int lm__db_open_replica(const char *dir, const struct lm_io *io, lm_db **out,
                        struct lm_error *err)
{
    struct lm_db_opts o = {.create = true, .sync = LM_SYNC_NONE, .io = io};
    return open_db(dir, &o, true, out, err);
}

static int checkpoint_locked(lm_db *db, struct lm_error *err)
{
    if (db->lsn == db->ckpt_lsn)
        return 0;
    int rc = lm__store_checkpoint(db->io, db->dir, db->fields, db->n_fields, db->lsn,
                                  &db->ckpt_lsn, err);
    if (rc)
        return rc;
    atomic_store(&db->wal_bytes, 0);
    if (db->wal && (rc = lm_wal_truncate_upto(db->wal, db->ckpt_lsn)))
        return lm__fail(err, rc, "truncating the log after checkpoint %llu: %s",
                        (unsigned long long)db->ckpt_lsn, lm_strerror(rc));
    return lm__store_collect(db->io, db->dir, db->fields, db->n_fields, err);
}

void lm_db_close(lm_db *db)
{
    if (!db)
        return;
    if (db->wal && !atomic_load(&db->failed))
        checkpoint_locked(db, NULL); /* best effort: the log still holds everything */
    lm_wal_close(db->wal);
    for (size_t i = 0; i < db->n_fields; i++)
        lm__field_free(db->fields[i]);
    lm_free(db->fields);
    if (db->lock_fd >= 0)
        close(db->lock_fd);
    pthread_rwlock_destroy(&db->lock);
    lm_free(db->dir);
    lm_free(db);
}

void lm__db_abandon(lm_db *db)
{
    if (!db)
        return;
    atomic_store(&db->failed, true); /* no checkpoint in close */
    lm_wal_abandon(db->wal);         /* its unsynced buffer is what a crash loses */
    db->wal = NULL;
    lm_db_close(db);
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

/* begin_write for the calls that log a change: a replica takes its changes from
 * replication only (invariant 6). */
static int begin_logged(lm_db *db, struct lm_error *err)
{
    if (db->replica)
        return lm__fail(err, LM_EREADONLY,
                        "database '%s' is a cluster replica: write through the cluster",
                        db->dir);
    return begin_write(db, err);
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

int lm_db_checkpoint(lm_db *db, struct lm_error *err)
{
    int rc = begin_write(db, err);
    if (rc)
        return rc;
    rc = checkpoint_locked(db, err);
    pthread_rwlock_unlock(&db->lock);
    return rc;
}

int lm_db_stats(lm_db *db, struct lm_db_stats *out)
{
    int rc = begin_read(db, NULL);
    if (rc)
        return rc;
    out->checkpoint_lsn = db->ckpt_lsn;
    out->checkpoint_bytes = lm__store_bytes(db->fields, db->n_fields);
    out->wal_bytes_since_checkpoint = atomic_load(&db->wal_bytes);
    pthread_rwlock_unlock(&db->lock);
    return 0;
}

/* ---------------------------------------------------------------- logged mutations */

/* Logs and applies one mutation under the write lock (invariant 3), then waits for
 * durability outside it. enc holds the record; r the same mutation decoded (what
 * apply() takes). */
static int commit(lm_db *db, uint16_t type, const struct lm__record_enc *enc,
                  const struct lm__record *r, struct lm__insert_plan *plan, uint64_t *count,
                  uint64_t *lsn_out, struct lm_error *err)
{
    uint64_t lsn = 0;
    size_t bytes = 0;
    for (int i = 0; i < enc->n_iov; i++)
        bytes += enc->iov[i].iov_len;
    int rc = lm_wal_write(db->wal, type, enc->iov, enc->n_iov, &lsn);
    if (rc) {
        lm__field_insert_abort(plan);
        if (rc != -ENOMEM && rc != LM_ELIMIT)
            atomic_store(&db->failed, true); /* the log failed: nothing more is safe */
        pthread_rwlock_unlock(&db->lock);
        return lm__fail(err, rc, "writing the log of '%s': %s", db->dir, lm_strerror(rc));
    }
    if (plan)
        lm__field_insert_commit(plan, lsn); /* prepared before logging: cannot fail */
    else
        rc = apply(db, r, lsn, count, err);
    if (rc) {
        /* logged but not (fully) applied: only recovery can make the two agree */
        atomic_store(&db->failed, true);
        pthread_rwlock_unlock(&db->lock);
        return rc;
    }
    db->lsn = lsn;
    uint64_t logged = atomic_fetch_add(&db->wal_bytes, bytes) + bytes;
    pthread_rwlock_unlock(&db->lock);
    if ((rc = lm_wal_sync(db->wal, lsn))) {
        atomic_store(&db->failed, true);
        return lm__fail(err, rc, "making the log of '%s' durable: %s (not acknowledged)",
                        db->dir, lm_strerror(rc));
    }
    if (lsn_out)
        *lsn_out = lsn;
    uint64_t limit = db->opts.checkpoint_bytes ? db->opts.checkpoint_bytes
                                               : DEFAULT_CHECKPOINT_BYTES;
    if (logged >= limit && atomic_load(&db->wal_bytes) >= limit) {
        /* The write is durable and acknowledged whatever happens here; a failed
         * checkpoint leaves the previous one and the log in force. */
        pthread_rwlock_wrlock(&db->lock);
        if (!atomic_load(&db->failed) && atomic_load(&db->wal_bytes) >= limit)
            checkpoint_locked(db, NULL);
        pthread_rwlock_unlock(&db->lock);
    }
    return 0;
}

/* ---------------------------------------------------------------- fields */

int lm_field_create(lm_db *db, const char *name, const struct lm_field_opts *opts,
                    struct lm_error *err)
{
    struct lm_field_opts norm;
    int rc = lm__field_validate(name, opts, &norm, err);
    if (rc)
        return rc;
    if ((rc = begin_logged(db, err)))
        return rc;
    bool found;
    field_pos(db, name, &found);
    if (found) {
        pthread_rwlock_unlock(&db->lock);
        return lm__fail(err, LM_EFIELDEXISTS, "field '%s' already exists", name);
    }
    struct lm__record_enc enc;
    lm__record_field_create(&enc, name, &norm);
    struct lm__record r = {.type = LM_REC_FIELD_CREATE, .opts = norm};
    snprintf(r.field, sizeof r.field, "%s", name);
    return commit(db, LM_REC_FIELD_CREATE, &enc, &r, NULL, NULL, NULL, err);
}

int lm_field_drop(lm_db *db, const char *name, struct lm_error *err)
{
    int rc = begin_logged(db, err);
    if (rc)
        return rc;
    if (!find_field(db, name, err)) {
        pthread_rwlock_unlock(&db->lock);
        return LM_ENOFIELD;
    }
    struct lm__record_enc enc;
    lm__record_field_drop(&enc, name);
    struct lm__record r = {.type = LM_REC_FIELD_DROP};
    snprintf(r.field, sizeof r.field, "%s", name);
    return commit(db, LM_REC_FIELD_DROP, &enc, &r, NULL, NULL, NULL, err);
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

/* Describes a field under the read lock with fill (lm__field_info or lm__field_stat). */
static int describe(lm_db *db, const char *name, struct lm_field_info *out,
                    struct lm_error *err,
                    void (*fill)(const struct lm_field *, struct lm_field_info *))
{
    int rc = begin_read(db, err);
    if (rc)
        return rc;
    struct lm_field *f = find_field(db, name, err);
    if (f)
        fill(f, out);
    pthread_rwlock_unlock(&db->lock);
    return f ? 0 : LM_ENOFIELD;
}

int lm_field_info(lm_db *db, const char *name, struct lm_field_info *out,
                  struct lm_error *err)
{
    return describe(db, name, out, err, lm__field_info);
}

int lm_field_stat(lm_db *db, const char *name, struct lm_field_info *out,
                  struct lm_error *err)
{
    return describe(db, name, out, err, lm__field_stat);
}

int lm_field_optimize(lm_db *db, const char *name, struct lm_error *err)
{
    int rc = begin_write(db, err);
    if (rc)
        return rc;
    struct lm_field *f = find_field(db, name, err);
    if (!f) {
        pthread_rwlock_unlock(&db->lock);
        return LM_ENOFIELD;
    }
    /* Compaction only reorders rows; a failure leaves every chunk valid. */
    rc = lm__field_compact(f);
    if (rc)
        lm__fail(err, rc, "out of memory optimising '%s'", name);
    pthread_rwlock_unlock(&db->lock);
    return rc;
}

/* ---------------------------------------------------------------- writes */

/* Takes the write lock and finds the field; on success the caller holds the lock. */
static int write_field(lm_db *db, const char *name, struct lm_field **f,
                       struct lm_error *err)
{
    int rc = begin_logged(db, err);
    if (rc)
        return rc;
    *f = find_field(db, name, err);
    if (!*f) {
        pthread_rwlock_unlock(&db->lock);
        return LM_ENOFIELD;
    }
    return 0;
}

int lm_insert(lm_db *db, const char *field, const struct lm_batch *batch, uint64_t *lsn,
              struct lm_error *err)
{
    if (!batch)
        return lm__fail(err, LM_EBADARG, "batch is required");
    struct lm_field *f;
    int rc = write_field(db, field, &f, err);
    if (rc)
        return rc;
    if ((rc = lm__field_check_batch(f, batch, err)) || !batch->n) {
        if (!rc && lsn)
            *lsn = db->lsn;
        pthread_rwlock_unlock(&db->lock);
        return rc;
    }
    uint32_t sizes[LM_MAX_USER_COLUMNS];
    for (uint32_t u = 0; u < f->schema.n_user; u++)
        sizes[u] = (uint32_t)lm__type_size(f->schema.user_type[u]);
    struct lm__insert_plan *plan;
    if ((rc = lm__field_insert_prepare(f, batch, &plan, err))) {
        pthread_rwlock_unlock(&db->lock);
        return rc;
    }
    struct lm__record_enc enc;
    lm__record_insert(&enc, field, batch, sizes);
    struct lm__record r = {.type = LM_REC_INSERT, .batch = *batch};
    snprintf(r.field, sizeof r.field, "%s", field);
    return commit(db, LM_REC_INSERT, &enc, &r, plan, NULL, lsn, err);
}

int lm_delete(lm_db *db, const char *field, const struct lm_selection *sel,
              uint64_t *n_deleted, uint64_t *lsn, struct lm_error *err)
{
    struct lm_field *f;
    int rc = write_field(db, field, &f, err);
    if (rc)
        return rc;
    if ((rc = lm__field_check_selection(f, sel, err))) {
        pthread_rwlock_unlock(&db->lock);
        return rc;
    }
    struct lm__record_enc enc;
    lm__record_delete(&enc, field, sel);
    struct lm__record r = {.type = LM_REC_DELETE};
    if (sel)
        r.sel = *sel;
    snprintf(r.field, sizeof r.field, "%s", field);
    uint64_t n = 0;
    rc = commit(db, LM_REC_DELETE, &enc, &r, NULL, &n, lsn, err);
    if (!rc && n_deleted)
        *n_deleted = n;
    return rc;
}

int lm_update(lm_db *db, const char *field, const struct lm_selection *sel, int column,
              double value, uint64_t *n_updated, uint64_t *lsn, struct lm_error *err)
{
    struct lm_field *f;
    int rc = write_field(db, field, &f, err);
    if (rc)
        return rc;
    if ((rc = lm__field_check_selection(f, sel, err)) ||
        (rc = lm__field_check_update(f, column, value, err))) {
        pthread_rwlock_unlock(&db->lock);
        return rc;
    }
    struct lm__record_enc enc;
    lm__record_update(&enc, field, sel, column, value);
    struct lm__record r = {.type = LM_REC_UPDATE, .column = column, .value = value};
    if (sel)
        r.sel = *sel;
    snprintf(r.field, sizeof r.field, "%s", field);
    uint64_t n = 0;
    rc = commit(db, LM_REC_UPDATE, &enc, &r, NULL, &n, lsn, err);
    if (!rc && n_updated)
        *n_updated = n;
    return rc;
}

/* ---------------------------------------------------------------- replicated records */

/* Checks a decoded mutation against the current state, as the public write calls do
 * before logging (invariant 2). FIELD_CREATE options are normalised in place. Caller
 * holds a lock. Every failure is a function of the record and the state only, so all
 * replicas reach the same verdict. */
static int check_record(lm_db *db, struct lm__record *r, struct lm_error *err)
{
    if (r->type == LM_REC_FIELD_CREATE) {
        struct lm_field_opts norm;
        int rc = lm__field_validate(r->field, &r->opts, &norm, err);
        if (rc)
            return rc;
        r->opts = norm;
        bool found;
        field_pos(db, r->field, &found);
        return found ? lm__fail(err, LM_EFIELDEXISTS, "field '%s' already exists", r->field)
                     : 0;
    }
    struct lm_field *f = find_field(db, r->field, err);
    if (!f)
        return LM_ENOFIELD;
    switch (r->type) {
    case LM_REC_FIELD_DROP:
        return 0;
    case LM_REC_INSERT:
        return lm__field_check_batch(f, &r->batch, err);
    case LM_REC_DELETE:
        return lm__field_check_selection(f, &r->sel, err);
    case LM_REC_UPDATE: {
        int rc = lm__field_check_selection(f, &r->sel, err);
        return rc ? rc : lm__field_check_update(f, r->column, r->value, err);
    }
    default:
        return lm__fail(err, LM_EBADARG, "unknown record type %d", (int)r->type);
    }
}

struct sizes_ctx {
    lm_db *db;
    bool missing; /* the record names a field that does not exist */
};

static int record_user_sizes(void *ctx, const char *field, uint32_t sizes[LM_MAX_USER_COLUMNS],
                             uint32_t *n_user)
{
    struct sizes_ctx *c = ctx;
    int rc = user_sizes(c->db, field, sizes, n_user);
    c->missing = rc != 0;
    return rc;
}

/* Decodes a record payload against the current schema (caller holds a lock). A record
 * that does not fit the field as it is now (it was checked against an older state, or
 * it is malformed) is LM_ENOFIELD or LM_ESCHEMA: a verdict, not damage. */
static int decode_record(lm_db *db, uint16_t type, const void *payload, size_t n,
                         struct lm__record *r, struct lm_error *err)
{
    struct sizes_ctx ctx = {db, false};
    int rc = lm__record_decode(type, payload, n, record_user_sizes, &ctx, r, err);
    if (rc == LM_ECORRUPT && ctx.missing)
        return lm__fail(err, LM_ENOFIELD, "no field named '%s'", r->field);
    if (rc == LM_ECORRUPT) {
        char why[400];
        snprintf(why, sizeof why, "%.380s", err ? err->message : "malformed");
        return lm__fail(err, LM_ESCHEMA, "record does not fit the field's schema: %s", why);
    }
    return rc;
}

int lm__db_check_record(lm_db *db, uint16_t type, const void *payload, size_t n, bool wait,
                        struct lm_error *err)
{
    if (!wait && pthread_rwlock_tryrdlock(&db->lock))
        return -EBUSY; /* a writer holds it */
    int rc = wait ? begin_read(db, err) : 0;
    if (rc)
        return rc;
    if (!wait && atomic_load(&db->failed)) {
        pthread_rwlock_unlock(&db->lock);
        return lm__fail(err, LM_EFAILED, "database '%s' failed earlier; reopen it", db->dir);
    }
    struct lm__record r;
    if (!(rc = decode_record(db, type, payload, n, &r, err))) {
        rc = check_record(db, &r, err);
        lm__record_free(&r);
    }
    pthread_rwlock_unlock(&db->lock);
    return rc;
}

int lm__db_encode(lm_db *db, const struct lm__record *rec, void **out, size_t *n,
                  struct lm_error *err)
{
    struct lm__record r = *rec;
    r.owned = NULL;
    int rc = begin_read(db, err);
    if (rc)
        return rc;
    if ((rc = check_record(db, &r, err))) {
        pthread_rwlock_unlock(&db->lock);
        return rc;
    }
    uint32_t sizes[LM_MAX_USER_COLUMNS] = {0}, n_user = 0;
    struct lm__record_enc enc;
    switch (r.type) {
    case LM_REC_FIELD_CREATE: lm__record_field_create(&enc, r.field, &r.opts); break;
    case LM_REC_FIELD_DROP: lm__record_field_drop(&enc, r.field); break;
    case LM_REC_INSERT:
        user_sizes(db, r.field, sizes, &n_user);
        lm__record_insert(&enc, r.field, &r.batch, sizes);
        break;
    case LM_REC_DELETE: lm__record_delete(&enc, r.field, &r.sel); break;
    default: lm__record_update(&enc, r.field, &r.sel, r.column, r.value); break;
    }
    pthread_rwlock_unlock(&db->lock); /* enc points at rec's arrays, not at the state */
    size_t total = 0;
    for (int i = 0; i < enc.n_iov; i++)
        total += enc.iov[i].iov_len;
    uint8_t *p = lm_alloc(total ? total : 1);
    if (!p)
        return lm__fail(err, -ENOMEM, "out of memory encoding a record of %zu bytes", total);
    size_t at = 0;
    for (int i = 0; i < enc.n_iov; i++) {
        memcpy(p + at, enc.iov[i].iov_base, enc.iov[i].iov_len);
        at += enc.iov[i].iov_len;
    }
    *out = p;
    *n = total;
    return 0;
}

int lm__db_apply_record(lm_db *db, uint16_t type, const void *payload, size_t n, uint64_t lsn,
                        uint64_t *count, struct lm_error *err)
{
    if (!db->replica)
        return lm__fail(err, LM_EBADARG, "'%s' is not a replica", db->dir);
    int rc = begin_write(db, err);
    if (rc)
        return rc;
    if (lsn <= db->lsn) {
        pthread_rwlock_unlock(&db->lock);
        return lm__fail(err, LM_EBADARG, "record %llu is not after %llu",
                        (unsigned long long)lsn, (unsigned long long)db->lsn);
    }
    struct lm__record r;
    uint64_t k = 0;
    if ((rc = decode_record(db, type, payload, n, &r, err)) == 0) {
        if (!(rc = check_record(db, &r, err)) && !(rc = apply(db, &r, lsn, &k, err)))
            db->lsn = lsn;
        lm__record_free(&r);
    }
    /* Past the checks only running out of memory stops a record, and every other
     * replica applied it: this one no longer matches them (invariant 4). */
    if (rc == -ENOMEM)
        atomic_store(&db->failed, true);
    pthread_rwlock_unlock(&db->lock);
    if (!rc && count)
        *count = k;
    return rc;
}

/* A checkpoint file of the directory: the manifest or a chunk segment (store.h). */
static bool checkpoint_file(const char *name)
{
    if (!strcmp(name, "MANIFEST"))
        return true;
    unsigned long long seg;
    char tail[8];
    int used = 0;
    return strlen(name) == 27 &&
           sscanf(name, "chunks-%16llx.%3s%n", &seg, tail, &used) == 2 && used == 27 &&
           !strcmp(tail, "lmc");
}

struct file_list {
    const struct lm_io *io;
    const char *dir;
    struct lm__db_file *v;
    size_t n, cap;
    struct lm_error *err;
};

static int list_checkpoint_file(void *arg, const char *name)
{
    struct file_list *l = arg;
    if (!checkpoint_file(name))
        return 0;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        struct lm__db_file *v = lm_realloc(l->v, cap * sizeof *v);
        if (!v)
            return lm__fail(l->err, -ENOMEM, "out of memory listing a checkpoint");
        l->v = v;
        l->cap = cap;
    }
    struct lm__db_file *f = &l->v[l->n];
    snprintf(f->name, sizeof f->name, "%s", name);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", l->dir, name);
    int rc = lm_io_read_file(l->io, path, &f->data, &f->n, l->err);
    if (!rc)
        l->n++;
    return rc;
}

void lm__db_files_free(struct lm__db_file *files, size_t n)
{
    for (size_t i = 0; files && i < n; i++)
        lm_free(files[i].data);
    lm_free(files);
}

int lm__db_snapshot(lm_db *db, struct lm__db_file **files, size_t *n, uint64_t *lsn,
                    struct lm_error *err)
{
    if (!db->replica)
        return lm__fail(err, LM_EBADARG, "'%s' is not a replica", db->dir);
    int rc = begin_write(db, err);
    if (rc)
        return rc;
    struct file_list l = {db->io, db->dir, NULL, 0, 0, err};
    if (!(rc = checkpoint_locked(db, err)) &&
        !(rc = db->io->list_dir(db->io->ctx, db->dir, list_checkpoint_file, &l))) {
        *files = l.v;
        *n = l.n;
        *lsn = db->lsn;
    } else {
        lm__db_files_free(l.v, l.n);
    }
    pthread_rwlock_unlock(&db->lock);
    return rc;
}

int lm__db_restore(lm_db *db, const struct lm__db_file *files, size_t n,
                   struct lm_error *err)
{
    if (!db->replica)
        return lm__fail(err, LM_EBADARG, "'%s' is not a replica", db->dir);
    const struct lm__db_file *manifest = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!checkpoint_file(files[i].name))
            return lm__fail(err, LM_ECORRUPT, "'%.64s' is no checkpoint file", files[i].name);
        if (!strcmp(files[i].name, "MANIFEST"))
            manifest = &files[i];
    }
    int rc = begin_write(db, err);
    if (rc)
        return rc;
    /* The directory is this replica's own copy: replace its checkpoint, segments first
     * and the manifest that names them last (store.h invariant 1). */
    char path[4096];
    snprintf(path, sizeof path, "%s/MANIFEST", db->dir);
    rc = db->io->unlink(db->io->ctx, path);
    if (rc == -ENOENT)
        rc = 0;
    if (rc)
        lm__fail(err, rc, "removing %s: %s", path, lm_strerror(rc));
    else
        rc = lm__store_collect(db->io, db->dir, NULL, 0, err);
    for (size_t i = 0; i < n && !rc; i++) {
        if (&files[i] == manifest)
            continue;
        snprintf(path, sizeof path, "%s/%s", db->dir, files[i].name);
        rc = lm_io_write_file_atomic(db->io, path, files[i].data, files[i].n, err);
    }
    if (!rc && manifest) {
        snprintf(path, sizeof path, "%s/MANIFEST", db->dir);
        rc = lm_io_write_file_atomic(db->io, path, manifest->data, manifest->n, err);
    }
    struct lm_field **fields = NULL;
    size_t n_fields = 0;
    uint64_t lsn = 0;
    if (!rc)
        rc = lm__store_load(db->io, db->dir, &fields, &n_fields, &lsn, err);
    if (rc) {
        /* memory and disk no longer agree: only a restart (a fresh replica) mends it */
        atomic_store(&db->failed, true);
        pthread_rwlock_unlock(&db->lock);
        return rc;
    }
    for (size_t i = 0; i < db->n_fields; i++)
        lm__field_free(db->fields[i]);
    lm_free(db->fields);
    db->fields = fields;
    db->n_fields = db->cap_fields = n_fields;
    db->lsn = db->ckpt_lsn = lsn;
    pthread_rwlock_unlock(&db->lock);
    return 0;
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

/* Mirrors lm__field_walk: classify from the root, inherit INSIDE, prune OUTSIDE. */
static void walk_stats(const struct lm__onode *n, const struct lm_region *region,
                       int parent, struct lm_walk_stats *s)
{
    s->nodes_visited++;
    int ov = parent == LM__INSIDE ? LM__INSIDE
                                  : (int)lm__region_classify(region, n->bmin, n->bmax);
    if (ov == LM__OUTSIDE || !n->count) {
        s->nodes_pruned++;
        return;
    }
    if (n->chunk) {
        if (ov == LM__INSIDE) {
            s->chunks_inside++;
            s->samples_inside += n->chunk->n;
        } else {
            s->chunks_partial++;
            s->samples_partial += n->chunk->n;
        }
        return;
    }
    for (int i = 0; i < 8; i++)
        if (n->child[i])
            walk_stats(n->child[i], region, ov, s);
}

int lm_walk_stats(lm_db *db, const char *field, const struct lm_region *region,
                  struct lm_walk_stats *out, struct lm_error *err)
{
    static const struct lm_region all = {.kind = LM_REGION_ALL};
    struct lm_selection sel = {.region = region ? *region : all};
    struct lm_field *f;
    int rc = read_field(db, field, &sel, &f, err);
    if (rc)
        return rc;
    struct lm_walk_stats s = {0};
    if (f->tree.root)
        walk_stats(f->tree.root, &sel.region, LM__PARTIAL, &s);
    pthread_rwlock_unlock(&db->lock);
    *out = s;
    return 0;
}
