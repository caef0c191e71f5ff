/* wal.c - write-ahead log: segment files, group commit, recovery scan and replay.
 *
 * Write path. lm_wal_write encodes a record into `cur`, an in-memory buffer, under
 * `mu`. lm_wal_sync makes one waiting thread the leader: it swaps `cur` with `spare`,
 * drops `mu`, writes the taken buffer at the end of the last segment and fdatasyncs it,
 * then retakes `mu`, advances synced_lsn and wakes everyone; threads whose records were
 * in that buffer return, the rest elect the next leader. While `busy` is set exactly one
 * thread does I/O on the last segment (or lingers before doing so), so writes reach the
 * file in LSN order. Rotation sets `rotating`, which holds new records back until the
 * old segment is flushed and synced and the new one exists durably.
 */
#include "wal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "crc32c.h"
#include "error.h"

#define SEG_MAGIC "LUMAWAL\n"
#define SEG_HDR 32u          /* segment header bytes */
#define REC_HDR 24u          /* record header bytes */
#define NAME_LEN 24u         /* "wal-" + 16 hex digits + ".log" */
#define PATH_CAP 4096u
#define FLUSH_BYTES (4u << 20) /* lm_wal_write hands the buffer to the OS past this */
#define READ_CHUNK (1u << 20)  /* replay reads segments in pieces of this size */

struct buf {
    uint8_t *p;
    size_t len, cap;
};

struct lm_wal {
    const struct lm_io *io;
    char *dir;
    enum lm_sync sync;
    uint64_t segment_bytes;
    uint32_t group_us, group_bytes;

    pthread_mutex_t mu;       /* guards every field below */
    pthread_cond_t done;      /* broadcast: I/O finished, rotation ended, or failure */
    pthread_cond_t more;      /* signalled: a record arrived while a leader lingers */
    pthread_mutex_t trunc_mu; /* serialises lm_wal_truncate_upto */

    uint64_t *segs;           /* first LSN of each segment, ascending; last = open one */
    size_t n_segs, cap_segs;
    int fd;                   /* the last segment, read-write */
    uint64_t seg_end;         /* its size once `cur` is written */
    uint64_t next_lsn;        /* LSN of the next record */
    uint64_t written_lsn;     /* records up to here are in the file */
    uint64_t synced_lsn;      /* records up to here are durable */
    struct buf cur, spare;
    bool busy, lingering, rotating;
    int in_sync;              /* threads inside lm_wal_sync */
    int failed;               /* 0, or the OS error that failed the log (sticky) */
    bool wrote;               /* lm_wal_write ran since open: replay refuses */
};

/* ---------------------------------------------------------------- bytes */

static uint64_t align8(uint64_t n) { return (n + 7) & ~(uint64_t)7; }

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p) { return get32(p) | (uint64_t)get32(p + 4) << 32; }

static int buf_reserve(struct buf *b, size_t need)
{
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64 << 10;
    while (cap < need)
        cap *= 2;
    uint8_t *p = lm_realloc(b->p, cap);
    if (!p)
        return -ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

/* ---------------------------------------------------------------- segment header */

/* Segment header, at offset 0 of every segment file (little-endian):
 *
 * | offset | size | field                                              |
 * |--------|------|----------------------------------------------------|
 * | 0      | 8    | magic "LUMAWAL\n"                                  |
 * | 8      | 4    | format version (LM_WAL_VERSION = 1)                |
 * | 12     | 4    | header size in bytes (32); records start there     |
 * | 16     | 8    | first LSN: that of the segment's first record      |
 * | 24     | 4    | reserved, 0                                        |
 * | 28     | 4    | CRC-32C of bytes 0..27                             |
 *
 * The first LSN also names the file: wal-<16 lowercase hex digits>.log. */
static void seg_header_encode(uint8_t h[SEG_HDR], uint64_t first_lsn)
{
    memset(h, 0, SEG_HDR);
    memcpy(h, SEG_MAGIC, 8);
    put32(h + 8, LM_WAL_VERSION);
    put32(h + 12, SEG_HDR);
    put64(h + 16, first_lsn);
    put32(h + 28, lm_crc32c(0, h, 28));
}

/* Checks a header read from a file (n bytes of it were there) against the first LSN
 * of its name. Returns 0, LM_EVERSION or LM_ECORRUPT, with a reason in why[cap]. The
 * version is checked before the checksum: a newer writer may checksum differently. */
static int seg_header_check(const uint8_t *h, size_t n, uint64_t name_lsn, char *why,
                            size_t cap)
{
    if (n < SEG_HDR) {
        snprintf(why, cap, "segment header is %zu bytes, %u expected", n, SEG_HDR);
        return LM_ECORRUPT;
    }
    if (memcmp(h, SEG_MAGIC, 8)) {
        snprintf(why, cap, "not a write-ahead log segment (bad magic)");
        return LM_ECORRUPT;
    }
    uint32_t version = get32(h + 8);
    if (version > LM_WAL_VERSION) {
        snprintf(why, cap, "format version %" PRIu32 " is newer than this build reads (%u)",
                 version, LM_WAL_VERSION);
        return LM_EVERSION;
    }
    if (get32(h + 28) != lm_crc32c(0, h, 28)) {
        snprintf(why, cap, "segment header checksum mismatch");
        return LM_ECORRUPT;
    }
    if (version == 0 || get32(h + 12) != SEG_HDR) {
        snprintf(why, cap, "bad version %" PRIu32 " or header size %" PRIu32, version,
                 get32(h + 12));
        return LM_ECORRUPT;
    }
    if (get64(h + 16) != name_lsn) {
        snprintf(why, cap, "header says first LSN %" PRIu64 ", the file name %" PRIu64,
                 get64(h + 16), name_lsn);
        return LM_ECORRUPT;
    }
    return 0;
}

/* ---------------------------------------------------------------- records */

/* Record, at 8-byte aligned offsets from 32 on (little-endian):
 *
 * | offset | size | field                                                     |
 * |--------|------|-----------------------------------------------------------|
 * | 0      | 4    | CRC-32C of the payload, continued over bytes 4..23 here   |
 * | 4      | 4    | payload length n (at most LM_WAL_MAX_RECORD)              |
 * | 8      | 8    | LSN                                                       |
 * | 16     | 2    | type (the caller's)                                       |
 * | 18     | 2    | flags, 0 in version 1                                     |
 * | 20     | 4    | reserved, 0                                               |
 * | 24     | n    | payload                                                   |
 * | 24+n   | pad  | zeros up to the next multiple of 8 (not checksummed)      |
 *
 * The payload is checksummed first so that lm_wal_write can do it before taking the
 * log's lock; only the 20 header bytes are added under it. */
static void record_encode(uint8_t *dst, uint64_t lsn, uint16_t type, uint32_t payload_crc,
                          const struct iovec *parts, int nparts, size_t n)
{
    put32(dst + 4, (uint32_t)n);
    put64(dst + 8, lsn);
    put16(dst + 16, type);
    put16(dst + 18, 0);
    put32(dst + 20, 0);
    put32(dst, lm_crc32c(payload_crc, dst + 4, REC_HDR - 4));
    uint8_t *p = dst + REC_HDR;
    for (int i = 0; i < nparts; i++) {
        if (parts[i].iov_len)
            memcpy(p, parts[i].iov_base, parts[i].iov_len);
        p += parts[i].iov_len;
    }
    memset(p, 0, align8(REC_HDR + n) - (REC_HDR + n));
}

static uint32_t record_crc(const uint8_t *rec, uint32_t n)
{
    return lm_crc32c(lm_crc32c(0, rec + REC_HDR, n), rec + 4, REC_HDR - 4);
}

/* ---------------------------------------------------------------- reading segments */

/* Buffered reads of one segment file. */
struct reader {
    const struct lm_io *io;
    int fd;
    uint64_t size;
    struct buf b;
    uint64_t at; /* file offset of b.p[0] */
};

/* Points *p at bytes [off, off + n) of the file. Returns 0, 1 when the file ends
 * before off + n, or -errno / -ENOMEM. */
static int reader_get(struct reader *r, uint64_t off, size_t n, const uint8_t **p)
{
    if (off > r->size || n > r->size - off)
        return 1;
    if (off >= r->at && off + n <= r->at + r->b.len) {
        *p = r->b.p + (off - r->at);
        return 0;
    }
    uint64_t want = n > READ_CHUNK ? n : READ_CHUNK;
    if (want > r->size - off)
        want = r->size - off;
    if (buf_reserve(&r->b, (size_t)want))
        return -ENOMEM;
    size_t got = 0;
    r->b.len = 0;
    int rc = r->io->pread(r->io->ctx, r->fd, r->b.p, (size_t)want, off, &got);
    if (rc)
        return rc;
    r->at = off;
    r->b.len = got;
    if (got < n)
        return 1;
    *p = r->b.p;
    return 0;
}

typedef int (*visit_fn)(void *ctx, uint64_t lsn, uint16_t type, const void *payload,
                        size_t n);

/* Where a scan of a segment's records stopped. */
struct scan {
    uint64_t end;      /* offset after the last good record (8-aligned) */
    uint64_t last_lsn; /* LSN of the last good record; first LSN - 1 when none */
    bool bad;          /* stopped at a bad record at `end` */
    bool misnumbered;  /* ...whose checksum holds but whose LSN is wrong */
    int stop;          /* non-zero: what fn returned to stop the walk */
    char why[128];
};

/* Reads records from the header's end, checking length, checksum and LSN sequence,
 * and passes those with LSN > after to fn (when not NULL). Returns 0 (s says where it
 * stopped and whether fn stopped it) or -errno / -ENOMEM. */
static int scan_segment(struct reader *r, uint64_t first_lsn, uint64_t after, visit_fn fn,
                        void *ctx, struct scan *s)
{
    uint64_t off = SEG_HDR, lsn = first_lsn;
    memset(s, 0, sizeof *s);
    while (off < r->size) {
        const uint8_t *h;
        int rc = reader_get(r, off, REC_HDR, &h);
        if (rc < 0)
            return rc;
        if (rc) {
            snprintf(s->why, sizeof s->why, "file ends inside a record header");
            s->bad = true;
            break;
        }
        uint32_t n = get32(h + 4);
        if (n > LM_WAL_MAX_RECORD) {
            snprintf(s->why, sizeof s->why, "record length %" PRIu32 " is over the limit", n);
            s->bad = true;
            break;
        }
        if ((rc = reader_get(r, off, REC_HDR + (size_t)n, &h)) < 0)
            return rc;
        if (rc) {
            snprintf(s->why, sizeof s->why, "file ends inside a record of %" PRIu32 " bytes",
                     n);
            s->bad = true;
            break;
        }
        if (get32(h) != record_crc(h, n)) {
            snprintf(s->why, sizeof s->why, "record checksum mismatch");
            s->bad = true;
            break;
        }
        if (get64(h + 8) != lsn) {
            snprintf(s->why, sizeof s->why, "record has LSN %" PRIu64 " where %" PRIu64
                     " was expected", get64(h + 8), lsn);
            s->bad = s->misnumbered = true;
            break;
        }
        if (fn && lsn > after && (s->stop = fn(ctx, lsn, get16(h + 16), h + REC_HDR, n)))
            break;
        off += align8(REC_HDR + (uint64_t)n);
        lsn++;
    }
    s->end = off;
    s->last_lsn = lsn - 1;
    return 0;
}

/* ---------------------------------------------------------------- segment files */

static void seg_path(const lm_wal *w, uint64_t first_lsn, char out[PATH_CAP])
{
    snprintf(out, PATH_CAP, "%s/wal-%016" PRIx64 ".log", w->dir, first_lsn);
}

/* The first LSN named by a segment file name, or 0 when name is not one. */
static uint64_t seg_name_lsn(const char *name)
{
    if (strlen(name) != NAME_LEN || memcmp(name, "wal-", 4) || strcmp(name + 20, ".log"))
        return 0;
    uint64_t v = 0;
    for (int i = 4; i < 20; i++) {
        char c = name[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return 0;
        v = v << 4 | (uint64_t)d;
    }
    return v;
}

static int segs_reserve(lm_wal *w, size_t need)
{
    if (need <= w->cap_segs)
        return 0;
    size_t cap = w->cap_segs ? w->cap_segs * 2 : 16;
    while (cap < need)
        cap *= 2;
    uint64_t *v = lm_realloc(w->segs, cap * sizeof *v);
    if (!v)
        return -ENOMEM;
    w->segs = v;
    w->cap_segs = cap;
    return 0;
}

static int collect_segment(void *arg, const char *name)
{
    lm_wal *w = arg;
    uint64_t lsn = seg_name_lsn(name);
    if (!lsn)
        return 0; /* not ours: leave it alone */
    if (segs_reserve(w, w->n_segs + 1))
        return -ENOMEM;
    w->segs[w->n_segs++] = lsn;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Creates segment `first` durably: file, header, fdatasync, directory fsync. */
static int seg_create(lm_wal *w, uint64_t first, int *fd_out)
{
    const struct lm_io *io = w->io;
    char path[PATH_CAP];
    uint8_t h[SEG_HDR];
    seg_path(w, first, path);
    seg_header_encode(h, first);
    int fd = -1;
    int rc = io->open(io->ctx, path, O_RDWR | O_CREAT | O_EXCL, 0644, &fd);
    if (rc)
        return rc;
    if (!(rc = io->pwrite(io->ctx, fd, h, SEG_HDR, 0)) &&
        !(rc = io->fdatasync(io->ctx, fd)) && !(rc = io->sync_dir(io->ctx, w->dir))) {
        *fd_out = fd;
        return 0;
    }
    io->close(io->ctx, fd);
    return rc;
}

/* Opens segment `first` (read-only unless rw) and checks its header. Returns the
 * descriptor and size; errors are filled into err naming the file. *fd_out is -1 on
 * failure. `torn_header` (may be NULL) is set when the header is missing or damaged
 * in a file no longer than a header (a creation cut short by a crash). */
static int seg_open(lm_wal *w, uint64_t first, bool rw, int *fd_out, uint64_t *size,
                    bool *torn_header, struct lm_error *err)
{
    const struct lm_io *io = w->io;
    char path[PATH_CAP], why[128];
    uint8_t h[SEG_HDR];
    size_t got = 0;
    int fd = -1;
    seg_path(w, first, path);
    *fd_out = -1;
    if (torn_header)
        *torn_header = false;
    int rc = io->open(io->ctx, path, rw ? O_RDWR : O_RDONLY, 0, &fd);
    if (!rc)
        rc = io->size(io->ctx, fd, size);
    if (!rc)
        rc = io->pread(io->ctx, fd, h, SEG_HDR, 0, &got);
    if (rc) {
        if (fd >= 0)
            io->close(io->ctx, fd);
        return lm__fail(err, rc, "%s: cannot read: %s", path, lm_strerror(rc));
    }
    rc = seg_header_check(h, got, first, why, sizeof why);
    if (rc == LM_ECORRUPT && torn_header && *size <= SEG_HDR) {
        *torn_header = true;
        rc = 0;
    }
    if (rc) {
        io->close(io->ctx, fd);
        return lm__fail_at(err, rc, 0, 0, 0, "%s: %s", path, why);
    }
    *fd_out = fd;
    return 0;
}

/* Makes the last segment (open read-write as fd, `size` bytes) end after its last good
 * record: rewrites a header cut short by a crash, cuts off a torn tail, fdatasyncs the
 * result, and sets the append position and LSNs. */
static int recover_last(lm_wal *w, int fd, uint64_t size, bool torn_header,
                        struct lm_error *err)
{
    const struct lm_io *io = w->io;
    uint64_t first = w->segs[w->n_segs - 1];
    char path[PATH_CAP];
    seg_path(w, first, path);
    struct scan s = {.end = SEG_HDR, .last_lsn = first - 1};
    int rc = 0;
    if (torn_header) {
        uint8_t h[SEG_HDR];
        seg_header_encode(h, first);
        if (!(rc = io->ftruncate(io->ctx, fd, 0)))
            rc = io->pwrite(io->ctx, fd, h, SEG_HDR, 0);
    } else {
        struct reader r = {.io = io, .fd = fd, .size = size};
        rc = scan_segment(&r, first, 0, NULL, NULL, &s);
        lm_free(r.b.p);
        if (!rc && s.misnumbered)
            return lm__fail_at(err, LM_ECORRUPT, 0, 0, (int64_t)s.end,
                               "%s: offset %" PRIu64 ": %s", path, s.end, s.why);
        if (!rc && s.end != size)
            rc = io->ftruncate(io->ctx, fd, s.end);
    }
    /* Synced even when nothing was cut: records a dead process left in the page cache
     * are visible but maybe not durable, and appends are about to build on them. */
    if (!rc)
        rc = io->fdatasync(io->ctx, fd);
    if (rc)
        return lm__fail(err, rc, "%s: cannot cut off the torn tail: %s", path,
                        lm_strerror(rc));
    w->seg_end = s.end;
    w->next_lsn = s.last_lsn + 1;
    w->written_lsn = w->synced_lsn = s.last_lsn;
    return 0;
}

/* ---------------------------------------------------------------- open / close */

static void wal_free(lm_wal *w)
{
    if (w->fd >= 0)
        w->io->close(w->io->ctx, w->fd);
    pthread_mutex_destroy(&w->mu);
    pthread_mutex_destroy(&w->trunc_mu);
    pthread_cond_destroy(&w->done);
    pthread_cond_destroy(&w->more);
    lm_free(w->cur.p);
    lm_free(w->spare.p);
    lm_free(w->segs);
    lm_free(w->dir);
    lm_free(w);
}

static int wal_init_sync(lm_wal *w)
{
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca))
        return -ENOMEM;
    int rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (!rc)
        rc = pthread_cond_init(&w->more, &ca);
    pthread_condattr_destroy(&ca);
    if (!rc && (rc = pthread_cond_init(&w->done, NULL)))
        pthread_cond_destroy(&w->more);
    return rc ? -rc : 0;
}

/* A log handle with its locks and directory name, no files open. */
static int wal_alloc(const struct lm_io *io, const char *dir, lm_wal **out,
                     struct lm_error *err)
{
    lm_wal *w = lm_calloc(1, sizeof *w);
    if (!w)
        return lm__fail(err, -ENOMEM, "write-ahead log: out of memory");
    w->fd = -1;
    w->io = io ? io : lm_io_posix();
    if (pthread_mutex_init(&w->mu, NULL)) {
        lm_free(w);
        return lm__fail(err, -ENOMEM, "write-ahead log: cannot make a mutex");
    }
    if (pthread_mutex_init(&w->trunc_mu, NULL) || wal_init_sync(w)) {
        pthread_mutex_destroy(&w->mu);
        lm_free(w);
        return lm__fail(err, -ENOMEM, "write-ahead log: cannot make a mutex");
    }
    if (!(w->dir = lm_strdup(dir))) {
        wal_free(w);
        return lm__fail(err, -ENOMEM, "write-ahead log: out of memory");
    }
    *out = w;
    return 0;
}

int lm_wal_open(const struct lm_wal_opts *o, lm_wal **out, struct lm_error *err)
{
    if (!o || !out || !o->dir || !*o->dir)
        return lm__fail(err, LM_EBADARG, "write-ahead log: no options or directory");
    if (o->sync != LM_SYNC_GROUP && o->sync != LM_SYNC_ALWAYS && o->sync != LM_SYNC_NONE)
        return lm__fail(err, LM_EBADARG, "write-ahead log: unknown sync policy %d", o->sync);
    if (strlen(o->dir) + 1 + NAME_LEN + 1 > PATH_CAP)
        return lm__fail(err, LM_EBADARG, "%s: directory path too long", o->dir);
    if (o->segment_bytes && o->segment_bytes < SEG_HDR + REC_HDR)
        return lm__fail(err, LM_EBADARG, "write-ahead log: segment_bytes %" PRIu64
                        " is below %u", o->segment_bytes, SEG_HDR + REC_HDR);
    lm_wal *w;
    int rc = wal_alloc(o->io, o->dir, &w, err);
    if (rc)
        return rc;
    w->sync = o->sync;
    w->segment_bytes = o->segment_bytes ? o->segment_bytes : LM_WAL_DEFAULT_SEGMENT_BYTES;
    w->group_us = o->group_commit_us ? o->group_commit_us : LM_WAL_DEFAULT_GROUP_US;
    w->group_bytes = o->group_commit_bytes ? o->group_commit_bytes
                                           : LM_WAL_DEFAULT_GROUP_BYTES;
    rc = lm_io_mkdir_durable(w->io, w->dir, NULL, err);
    if (!rc && (rc = w->io->list_dir(w->io->ctx, w->dir, collect_segment, w)))
        lm__fail(err, rc, "%s: cannot list: %s", w->dir, lm_strerror(rc));
    if (rc)
        goto fail;
    if (w->n_segs > 1)
        qsort(w->segs, w->n_segs, sizeof *w->segs, cmp_u64);

    if (w->n_segs == 0) { /* a new log */
        if ((rc = segs_reserve(w, 1)) || (rc = seg_create(w, 1, &w->fd))) {
            lm__fail(err, rc, "%s: cannot create the first segment: %s", w->dir,
                     lm_strerror(rc));
            goto fail;
        }
        w->segs[w->n_segs++] = 1;
        w->seg_end = SEG_HDR;
        w->next_lsn = 1;
        *out = w;
        return 0;
    }
    for (size_t i = 0; i + 1 < w->n_segs; i++) {
        int fd;
        uint64_t size;
        if ((rc = seg_open(w, w->segs[i], false, &fd, &size, NULL, err)))
            goto fail;
        w->io->close(w->io->ctx, fd);
    }
    uint64_t size = 0;
    bool torn_header = false;
    if ((rc = seg_open(w, w->segs[w->n_segs - 1], true, &w->fd, &size, &torn_header, err)) ||
        (rc = recover_last(w, w->fd, size, torn_header, err)))
        goto fail;
    /* A process that died between creating a segment and fsyncing the directory left
     * a name that is visible but not durable: make it durable before appending to it. */
    if ((rc = w->io->sync_dir(w->io->ctx, w->dir))) {
        lm__fail(err, rc, "%s: fsync of directory failed: %s", w->dir, lm_strerror(rc));
        goto fail;
    }
    *out = w;
    return 0;
fail:
    wal_free(w);
    return rc;
}

/* ---------------------------------------------------------------- write path */

/* Marks the log failed by OS error rc and wakes every waiter; returns rc. */
static int fail_locked(lm_wal *w, int rc)
{
    w->failed = rc;
    pthread_cond_broadcast(&w->done);
    return rc;
}

/* Writes the buffered records to the last segment and, with `sync`, fdatasyncs it.
 * Called with mu held, busy and rotating clear and the log not failed; drops mu
 * during the I/O and returns with it held. */
static int flush_locked(lm_wal *w, bool sync)
{
    const struct lm_io *io = w->io;
    struct buf out = w->cur;
    uint64_t upto = w->next_lsn - 1;
    bool need_sync = sync && w->synced_lsn < upto;
    if (!out.len && !need_sync)
        return 0;
    w->cur = w->spare; /* empty: new records go there meanwhile */
    w->spare = (struct buf){0};
    w->busy = true;
    uint64_t off = w->seg_end - out.len;
    int fd = w->fd;
    pthread_mutex_unlock(&w->mu);
    int rc = out.len ? io->pwrite(io->ctx, fd, out.p, out.len, off) : 0;
    if (!rc && need_sync)
        rc = io->fdatasync(io->ctx, fd);
    pthread_mutex_lock(&w->mu);
    out.len = 0;
    w->spare = out;
    w->busy = false;
    if (rc)
        return fail_locked(w, rc);
    w->written_lsn = upto;
    if (need_sync)
        w->synced_lsn = upto;
    pthread_cond_broadcast(&w->done);
    return 0;
}

/* Group commit: a leader that has company waits up to group_us for more records, or
 * until group_bytes are pending. Holds `busy` so no one else starts I/O meanwhile. */
static void linger_locked(lm_wal *w)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    uint64_t ns = (uint64_t)until.tv_nsec + (uint64_t)w->group_us * 1000u;
    until.tv_sec += (time_t)(ns / 1000000000u);
    until.tv_nsec = (long)(ns % 1000000000u);
    w->busy = w->lingering = true;
    while (w->cur.len < w->group_bytes)
        if (pthread_cond_timedwait(&w->more, &w->mu, &until) == ETIMEDOUT)
            break;
    w->busy = w->lingering = false;
}

/* Ends the last segment and starts segment `first` (>= next_lsn): flushes and syncs
 * the old one whole (invariant 3), creates the new one durably. Called with mu held,
 * busy and rotating clear, not failed; drops mu meanwhile. */
static int rotate_locked(lm_wal *w, uint64_t first)
{
    if (segs_reserve(w, w->n_segs + 1))
        return -ENOMEM;
    w->rotating = true; /* holds new records back until the new segment exists */
    int rc = flush_locked(w, true);
    int fd = -1;
    if (!rc) {
        w->busy = true;
        pthread_mutex_unlock(&w->mu);
        rc = seg_create(w, first, &fd);
        pthread_mutex_lock(&w->mu);
        w->busy = false;
        if (rc) {
            fail_locked(w, rc);
        } else {
            w->io->close(w->io->ctx, w->fd); /* synced above: nothing to lose */
            w->fd = fd;
            w->segs[w->n_segs++] = first;
            w->seg_end = SEG_HDR;
            w->next_lsn = first;
            w->written_lsn = w->synced_lsn = first - 1;
        }
    }
    w->rotating = false;
    pthread_cond_broadcast(&w->done);
    return rc;
}

int lm_wal_write(lm_wal *w, uint16_t type, const struct iovec *parts, int nparts,
                 uint64_t *lsn)
{
    if (!w || nparts < 0 || (nparts > 0 && !parts))
        return LM_EBADARG;
    size_t n = 0;
    uint32_t crc = 0;
    for (int i = 0; i < nparts; i++) {
        if (parts[i].iov_len && !parts[i].iov_base)
            return LM_EBADARG;
        if (parts[i].iov_len > LM_WAL_MAX_RECORD - n)
            return LM_ELIMIT;
        n += parts[i].iov_len;
        crc = lm_crc32c(crc, parts[i].iov_base, parts[i].iov_len);
    }
    size_t rec = (size_t)align8(REC_HDR + (uint64_t)n);
    int rc = 0;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        if (w->failed) {
            rc = LM_EFAILED;
            goto out;
        }
        bool full = w->seg_end + rec > w->segment_bytes && w->seg_end > SEG_HDR;
        if (w->rotating || (full && w->busy)) {
            pthread_cond_wait(&w->done, &w->mu);
            continue;
        }
        if (!full)
            break;
        if ((rc = rotate_locked(w, w->next_lsn)))
            goto out;
    }
    if (buf_reserve(&w->cur, w->cur.len + rec)) {
        rc = -ENOMEM;
        goto out;
    }
    uint64_t l = w->next_lsn;
    record_encode(w->cur.p + w->cur.len, l, type, crc, parts, nparts, n);
    w->cur.len += rec;
    w->seg_end += rec;
    w->next_lsn++;
    w->wrote = true;
    if (w->lingering)
        pthread_cond_signal(&w->more);
    if (w->cur.len >= FLUSH_BYTES && !w->busy)
        rc = flush_locked(w, false);
    if (!rc && lsn)
        *lsn = l;
out:
    pthread_mutex_unlock(&w->mu);
    return rc;
}

int lm_wal_sync(lm_wal *w, uint64_t lsn)
{
    if (!w)
        return LM_EBADARG;
    int rc;
    pthread_mutex_lock(&w->mu);
    w->in_sync++;
    for (;;) {
        uint64_t done = w->sync == LM_SYNC_NONE ? w->written_lsn : w->synced_lsn;
        if (lsn <= done) {
            rc = 0;
            break;
        }
        if (lsn >= w->next_lsn) {
            rc = LM_EBADARG;
            break;
        }
        if (w->failed) {
            rc = LM_EFAILED;
            break;
        }
        if (w->busy || w->rotating) {
            pthread_cond_wait(&w->done, &w->mu);
            continue;
        }
        if (w->sync == LM_SYNC_GROUP && w->in_sync > 1)
            linger_locked(w);
        if ((rc = flush_locked(w, w->sync != LM_SYNC_NONE)))
            break;
    }
    w->in_sync--;
    pthread_mutex_unlock(&w->mu);
    return rc;
}

int lm_wal_append(lm_wal *w, uint16_t type, const struct iovec *parts, int nparts,
                  uint64_t *lsn)
{
    uint64_t l;
    int rc = lm_wal_write(w, type, parts, nparts, &l);
    if (!rc)
        rc = lm_wal_sync(w, l);
    if (!rc && lsn)
        *lsn = l;
    return rc;
}

uint64_t lm_wal_last_lsn(lm_wal *w)
{
    if (!w)
        return 0;
    pthread_mutex_lock(&w->mu);
    uint64_t l = w->next_lsn - 1;
    pthread_mutex_unlock(&w->mu);
    return l;
}

/* ---------------------------------------------------------------- truncation */

int lm_wal_truncate_upto(lm_wal *w, uint64_t lsn)
{
    if (!w || lsn == UINT64_MAX)
        return LM_EBADARG;
    const struct lm_io *io = w->io;
    int rc = 0;
    pthread_mutex_lock(&w->trunc_mu);
    pthread_mutex_lock(&w->mu);
    for (;;) { /* all records covered: start an empty segment at lsn + 1 */
        uint64_t open_first = w->segs[w->n_segs - 1];
        bool empty = w->next_lsn == open_first;
        if (w->failed) {
            rc = LM_EFAILED;
            break;
        }
        if (lsn < w->next_lsn - 1 || (empty && open_first == lsn + 1))
            break;
        if (w->busy || w->rotating) {
            pthread_cond_wait(&w->done, &w->mu);
            continue;
        }
        rc = rotate_locked(w, lsn + 1);
        break;
    }
    size_t victims = 0;
    while (!rc && victims + 1 < w->n_segs && w->segs[victims + 1] - 1 <= lsn)
        victims++;
    pthread_mutex_unlock(&w->mu);

    /* Only this function removes segments, and only from the front: segs[0] is stable
     * under trunc_mu while rotations append at the back. */
    size_t removed = 0;
    for (; !rc && removed < victims; removed++) {
        char path[PATH_CAP];
        pthread_mutex_lock(&w->mu);
        seg_path(w, w->segs[0], path);
        pthread_mutex_unlock(&w->mu);
        rc = io->unlink(io->ctx, path);
        if (rc == -ENOENT)
            rc = 0;
        if (rc)
            break;
        pthread_mutex_lock(&w->mu);
        memmove(w->segs, w->segs + 1, (w->n_segs - 1) * sizeof *w->segs);
        w->n_segs--;
        pthread_mutex_unlock(&w->mu);
    }
    if (removed) {
        int src = io->sync_dir(io->ctx, w->dir);
        if (src) {
            pthread_mutex_lock(&w->mu);
            if (!w->failed)
                fail_locked(w, src);
            pthread_mutex_unlock(&w->mu);
            rc = rc ? rc : src;
        }
    }
    pthread_mutex_unlock(&w->trunc_mu);
    return rc;
}

/* ---------------------------------------------------------------- replay */

int lm_wal_replay(lm_wal *w, uint64_t after_lsn, visit_fn fn, void *ctx,
                  struct lm_error *err)
{
    if (!w || !fn)
        return lm__fail(err, LM_EBADARG, "write-ahead log: no log or callback");
    pthread_mutex_lock(&w->mu);
    bool wrote = w->wrote;
    pthread_mutex_unlock(&w->mu);
    if (wrote)
        return lm__fail(err, LM_EBADARG, "%s: replay must come before the first write",
                        w->dir);
    if (after_lsn >= w->next_lsn - 1)
        return 0; /* nothing newer (the caller may be ahead: see truncate_upto) */
    /* Start at the last segment whose first LSN is <= after_lsn + 1. */
    size_t i = 0;
    while (i + 1 < w->n_segs && w->segs[i + 1] <= after_lsn + 1)
        i++;
    char path[PATH_CAP];
    seg_path(w, w->segs[i], path);
    if (w->segs[i] > after_lsn + 1)
        return lm__fail_at(err, LM_ECORRUPT, 0, 0, 16,
                           "%s: records %" PRIu64 "..%" PRIu64 " were asked for but the "
                           "log starts at LSN %" PRIu64, path, after_lsn + 1,
                           w->segs[i] - 1, w->segs[i]);
    struct reader r = {.io = w->io, .fd = -1};
    uint64_t expect = w->segs[i];
    int rc = 0;
    for (; !rc && i < w->n_segs; i++) {
        seg_path(w, w->segs[i], path);
        if (w->segs[i] != expect) {
            rc = lm__fail_at(err, LM_ECORRUPT, 0, 0, 16,
                             "%s: segment starts at LSN %" PRIu64 " but the one before it "
                             "ends at %" PRIu64, path, w->segs[i], expect - 1);
            break;
        }
        if ((rc = seg_open(w, w->segs[i], false, &r.fd, &r.size, NULL, err)))
            break;
        r.at = 0;
        r.b.len = 0;
        struct scan s;
        rc = scan_segment(&r, w->segs[i], after_lsn, fn, ctx, &s);
        w->io->close(w->io->ctx, r.fd);
        if (rc)
            lm__fail(err, rc, "%s: cannot read: %s", path, lm_strerror(rc));
        else if (s.stop)
            rc = s.stop;
        else if (s.bad)
            rc = lm__fail_at(err, LM_ECORRUPT, 0, 0, (int64_t)s.end,
                             "%s: offset %" PRIu64 ": %s", path, s.end, s.why);
        expect = s.last_lsn + 1;
    }
    lm_free(r.b.p);
    return rc;
}

/* ---------------------------------------------------------------- read-only */

int lm_wal_read(const struct lm_io *io, const char *dir, uint64_t after_lsn, visit_fn fn,
                void *ctx, uint64_t *last_lsn, struct lm_error *err)
{
    lm_wal *w;
    int rc = wal_alloc(io, dir, &w, err);
    if (rc)
        return rc;
    if ((rc = w->io->list_dir(w->io->ctx, w->dir, collect_segment, w))) {
        if (rc == -ENOENT)
            rc = 0; /* no log yet: nothing to read */
        else
            lm__fail(err, rc, "%s: cannot list: %s", w->dir, lm_strerror(rc));
    }
    if (rc || !w->n_segs) {
        if (last_lsn)
            *last_lsn = after_lsn;
        wal_free(w);
        return rc;
    }
    if (w->n_segs > 1)
        qsort(w->segs, w->n_segs, sizeof *w->segs, cmp_u64);
    size_t i = 0;
    while (i + 1 < w->n_segs && w->segs[i + 1] <= after_lsn + 1)
        i++;
    char path[PATH_CAP];
    seg_path(w, w->segs[i], path);
    uint64_t expect = w->segs[i], last = after_lsn;
    if (w->segs[i] > after_lsn + 1) {
        /* the writer checkpointed and truncated past what the reader has */
        wal_free(w);
        return lm__fail(err, LM_ENOTFOUND, "%s: log starts at LSN %" PRIu64 ", after %" PRIu64,
                        path, expect, after_lsn + 1);
    }
    struct reader r = {.io = w->io, .fd = -1};
    for (; !rc && i < w->n_segs; i++) {
        seg_path(w, w->segs[i], path);
        bool is_last = i + 1 == w->n_segs;
        if (w->segs[i] != expect) {
            rc = lm__fail_at(err, LM_ECORRUPT, 0, 0, 16,
                             "%s: segment starts at LSN %" PRIu64 " but the one before it "
                             "ends at %" PRIu64, path, w->segs[i], expect - 1);
            break;
        }
        bool torn = false;
        if ((rc = seg_open(w, w->segs[i], false, &r.fd, &r.size, is_last ? &torn : NULL, err))) {
            if (is_last && rc == LM_ECORRUPT) /* a header being written right now */
                rc = 0;
            break;
        }
        r.at = 0;
        r.b.len = 0;
        struct scan sc;
        rc = scan_segment(&r, w->segs[i], after_lsn, fn, ctx, &sc);
        w->io->close(w->io->ctx, r.fd);
        r.fd = -1;
        if (rc)
            lm__fail(err, rc, "%s: cannot read: %s", path, lm_strerror(rc));
        else if (sc.stop)
            rc = sc.stop;
        else if (sc.bad && !is_last) /* the last one may be in the middle of a write */
            rc = lm__fail_at(err, LM_ECORRUPT, 0, 0, (int64_t)sc.end,
                             "%s: offset %" PRIu64 ": %s", path, sc.end, sc.why);
        if (sc.last_lsn > last)
            last = sc.last_lsn;
        expect = sc.last_lsn + 1;
    }
    lm_free(r.b.p);
    wal_free(w);
    if (!rc && last_lsn)
        *last_lsn = last;
    return rc;
}

/* ---------------------------------------------------------------- close */

void lm_wal_abandon(lm_wal *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    while (w->busy || w->rotating)
        pthread_cond_wait(&w->done, &w->mu);
    pthread_mutex_unlock(&w->mu);
    wal_free(w); /* pending records are dropped, as a crash would drop them */
}

int lm_wal_close(lm_wal *w)
{
    if (!w)
        return 0;
    pthread_mutex_lock(&w->mu);
    while (w->busy || w->rotating)
        pthread_cond_wait(&w->done, &w->mu);
    int rc = w->failed ? LM_EFAILED : flush_locked(w, true);
    pthread_mutex_unlock(&w->mu);
    wal_free(w);
    return rc;
}
