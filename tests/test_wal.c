/* test_wal.c - the write-ahead log: round trips, rotation, truncation, torn tails,
 * corruption, versions, crashes through the fault backend, failures, group commit.
 * Most tests use `fast`, the POSIX table with fsyncs made no-ops: durability is what
 * the fault backend models, and real fsyncs would only make the run slow and its
 * time depend on the disk. One round trip goes through the real POSIX table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "crc32c.h"
#include "io.h"
#include "tmpdir.h"
#include "wal.h"

static struct lm_io fast; /* set up in main() */

static int no_sync(void *ctx, int fd)
{
    (void)ctx;
    (void)fd;
    return 0;
}

static int no_sync_dir(void *ctx, const char *path)
{
    (void)ctx;
    (void)path;
    return 0;
}

struct fixture {
    char root[64];
    char dir[96]; /* the log's directory (made by lm_wal_open) */
};

static int setup(void **state)
{
    struct fixture *fx = lm_calloc(1, sizeof *fx);
    if (!fx || tmpdir_make("lmwal", fx->root, sizeof fx->root))
        return -1;
    snprintf(fx->dir, sizeof fx->dir, "%s/wal", fx->root);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    tmpdir_remove(fx->root);
    lm_free(fx);
    return 0;
}

/* A fresh log directory for one round of a loop. */
static void reset_dir(struct fixture *fx)
{
    tmpdir_remove(fx->dir);
}

/* ---------------------------------------------------------------- records */

/* Record lsn of a test stream: its size, type and bytes follow from lsn and a salt. */
static size_t rec_size(uint64_t lsn) { return lsn % 23 == 0 ? 0 : (size_t)(lsn * 37 % 300); }
static uint16_t rec_type(uint64_t lsn) { return (uint16_t)(lsn % 7 + 1); }

static void rec_fill(uint64_t lsn, uint32_t salt, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t)(lsn * 31 + i * 7 + salt);
}

/* Writes record lsn of the stream (in up to three parts); sync: append, else write. */
static int put_rec(lm_wal *w, uint64_t lsn, uint32_t salt, bool sync, uint64_t *got)
{
    uint8_t buf[300];
    size_t n = rec_size(lsn);
    rec_fill(lsn, salt, buf, n);
    struct iovec parts[3] = {{buf, n / 3}, {buf + n / 3, n / 2 - n / 3}, {buf + n / 2, n - n / 2}};
    int nparts = n ? (int)(lsn % 3) + 1 : 0;
    if (nparts == 1)
        parts[0].iov_len = n;
    else if (nparts == 2)
        parts[1].iov_len = n - n / 3;
    return sync ? lm_wal_append(w, rec_type(lsn), parts, nparts, got)
                : lm_wal_write(w, rec_type(lsn), parts, nparts, got);
}

/* Appends records first..last (acknowledged) and checks their LSNs. */
static void put_range(lm_wal *w, uint64_t first, uint64_t last, uint32_t salt)
{
    for (uint64_t l = first; l <= last; l++) {
        uint64_t got = 0;
        assert_int_equal(put_rec(w, l, salt, true, &got), 0);
        assert_int_equal(got, l);
    }
}

/* Replay visitor: checks each record against the stream, in LSN order. */
struct seen {
    uint64_t next;  /* the LSN expected next */
    uint64_t count;
    uint32_t salt;
    uint64_t salt_from; /* records from this LSN on use salt2 */
    uint32_t salt2;
};

static int check_rec(void *ctx, uint64_t lsn, uint16_t type, const void *payload, size_t n)
{
    struct seen *s = ctx;
    uint8_t want[300];
    assert_int_equal(lsn, s->next);
    assert_int_equal(type, rec_type(lsn));
    assert_int_equal(n, rec_size(lsn));
    rec_fill(lsn, s->salt_from && lsn >= s->salt_from ? s->salt2 : s->salt, want, n);
    if (n)
        assert_memory_equal(payload, want, n);
    s->next++;
    s->count++;
    return 0;
}

/* Replays after `after` and returns how many records came (all checked). */
static uint64_t replay_count(lm_wal *w, uint64_t after, uint32_t salt)
{
    struct seen s = {.next = after + 1, .salt = salt};
    struct lm_error err;
    int rc = lm_wal_replay(w, after, check_rec, &s, &err);
    if (rc)
        fail_msg("replay: %s (%d)", err.message, rc);
    return s.count;
}

static lm_wal *open_log(struct fixture *fx, const struct lm_io *io, enum lm_sync sync,
                        uint64_t segment_bytes)
{
    struct lm_wal_opts o = {.io = io ? io : &fast, .dir = fx->dir,
                            .segment_bytes = segment_bytes, .sync = sync};
    lm_wal *w = NULL;
    struct lm_error err;
    int rc = lm_wal_open(&o, &w, &err);
    if (rc)
        fail_msg("open: %s (%d)", err.message, rc);
    return w;
}

static int count_segment(void *arg, const char *name)
{
    if (!strncmp(name, "wal-", 4))
        ++*(int *)arg;
    return 0;
}

static int segment_count(struct fixture *fx)
{
    int n = 0;
    assert_int_equal(lm_io_posix()->list_dir(NULL, fx->dir, count_segment, &n), 0);
    return n;
}

struct seg_span {
    uint64_t oldest, newest; /* first LSNs of the oldest and newest segment files */
};

static int span_of(void *arg, const char *name)
{
    struct seg_span *sp = arg;
    if (strncmp(name, "wal-", 4))
        return 0;
    uint64_t v = strtoull(name + 4, NULL, 16);
    if (v < sp->oldest)
        sp->oldest = v;
    if (v > sp->newest)
        sp->newest = v;
    return 0;
}

static struct seg_span segment_span(struct fixture *fx)
{
    struct seg_span sp = {UINT64_MAX, 0};
    assert_int_equal(lm_io_posix()->list_dir(NULL, fx->dir, span_of, &sp), 0);
    return sp;
}

static void seg_file(struct fixture *fx, uint64_t first, char *out, size_t cap)
{
    snprintf(out, cap, "%s/wal-%016" PRIx64 ".log", fx->dir, first);
}

/* Offset of record lsn within a segment that starts at `first`. */
static uint64_t rec_offset(uint64_t first, uint64_t lsn)
{
    uint64_t off = 32;
    for (uint64_t l = first; l < lsn; l++)
        off += (24 + rec_size(l) + 7) / 8 * 8;
    return off;
}

static void *slurp(const char *path, size_t *n)
{
    void *data = NULL;
    assert_int_equal(lm_io_read_file(lm_io_posix(), path, &data, n, NULL), 0);
    return data;
}

static void spill(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* Writes records 1..n to a new log, closes it, and returns the bytes of its first
 * segment (lm_free them); path receives that segment's path. */
static uint8_t *make_log(struct fixture *fx, enum lm_sync sync, uint64_t segment_bytes,
                         uint64_t n, char path[256], size_t *size)
{
    reset_dir(fx);
    lm_wal *w = open_log(fx, NULL, sync, segment_bytes);
    put_range(w, 1, n, 0);
    assert_int_equal(lm_wal_close(w), 0);
    seg_file(fx, 1, path, 256);
    return slurp(path, size);
}

/* ---------------------------------------------------------------- round trips */

static void records_round_trip_across_segment_rotations(void **state)
{
    struct fixture *fx = *state;
    lm_wal *w = open_log(fx, NULL, LM_SYNC_GROUP, 4096);
    assert_int_equal(lm_wal_last_lsn(w), 0);
    put_range(w, 1, 990, 0);
    for (uint64_t l = 991; l <= 1000; l++) /* written, never synced: close syncs them */
        assert_int_equal(put_rec(w, l, 0, false, NULL), 0);
    assert_int_equal(lm_wal_last_lsn(w), 1000);
    assert_int_equal(lm_wal_close(w), 0);
    assert_true(segment_count(fx) > 20);

    w = open_log(fx, NULL, LM_SYNC_GROUP, 4096);
    assert_int_equal(lm_wal_last_lsn(w), 1000);
    assert_int_equal(replay_count(w, 0, 0), 1000);
    assert_int_equal(replay_count(w, 500, 0), 500);
    assert_int_equal(replay_count(w, 999, 0), 1);
    assert_int_equal(replay_count(w, 1000, 0), 0);
    put_range(w, 1001, 1001, 0);
    assert_int_equal(lm_wal_close(w), 0);

    w = open_log(fx, NULL, LM_SYNC_ALWAYS, 4096);
    assert_int_equal(replay_count(w, 0, 0), 1001);
    assert_int_equal(lm_wal_close(w), 0);
    assert_int_equal(lm_wal_close(NULL), 0);

    /* The same through the real POSIX table (real fsyncs: kept short). */
    reset_dir(fx);
    w = open_log(fx, lm_io_posix(), LM_SYNC_ALWAYS, 1024);
    put_range(w, 1, 30, 0);
    assert_int_equal(lm_wal_close(w), 0);
    assert_true(segment_count(fx) > 3);
    w = open_log(fx, lm_io_posix(), LM_SYNC_ALWAYS, 1024);
    assert_int_equal(replay_count(w, 0, 0), 30);
    assert_int_equal(lm_wal_close(w), 0);
}

static int stop_at_three(void *ctx, uint64_t lsn, uint16_t type, const void *p, size_t n)
{
    (void)type;
    (void)p;
    (void)n;
    *(uint64_t *)ctx = lsn;
    return lsn == 3 ? 77 : 0;
}

static void replay_stops_when_the_visitor_says_so_and_rejects_misuse(void **state)
{
    struct fixture *fx = *state;
    struct lm_wal_opts bad = {.io = &fast, .dir = NULL};
    lm_wal *w = NULL;
    struct lm_error err;
    assert_int_equal(lm_wal_open(&bad, &w, &err), LM_EBADARG);
    assert_null(w);
    bad.dir = fx->dir;
    bad.sync = (enum lm_sync)9;
    assert_int_equal(lm_wal_open(&bad, &w, &err), LM_EBADARG);

    w = open_log(fx, NULL, LM_SYNC_ALWAYS, 0);
    put_range(w, 1, 5, 0);
    assert_int_equal(lm_wal_close(w), 0);
    w = open_log(fx, NULL, LM_SYNC_ALWAYS, 0);
    uint64_t at = 0;
    assert_int_equal(lm_wal_replay(w, 0, stop_at_three, &at, &err), 77);
    assert_int_equal(at, 3);
    assert_int_equal(lm_wal_sync(w, 9), LM_EBADARG); /* never assigned */
    assert_int_equal(lm_wal_sync(w, 5), 0);
    struct iovec huge = {&at, (size_t)LM_WAL_MAX_RECORD + 1};
    assert_int_equal(lm_wal_write(w, 1, &huge, 1, NULL), LM_ELIMIT);
    assert_int_equal(lm_wal_write(w, 1, NULL, 1, NULL), LM_EBADARG);
    put_range(w, 6, 6, 0);
    assert_int_equal(lm_wal_replay(w, 0, stop_at_three, &at, &err), LM_EBADARG);
    assert_int_equal(lm_wal_close(w), 0);
}

static void truncate_upto_removes_covered_segments_and_replay_goes_on(void **state)
{
    struct fixture *fx = *state;
    lm_wal *w = open_log(fx, NULL, LM_SYNC_GROUP, 4096);
    put_range(w, 1, 1000, 0);
    int before = segment_count(fx);
    assert_int_equal(lm_wal_truncate_upto(w, 600), 0);
    int after = segment_count(fx);
    assert_true(after < before);
    assert_true(after > 1);
    assert_int_equal(lm_wal_close(w), 0);

    w = open_log(fx, NULL, LM_SYNC_GROUP, 4096);
    assert_int_equal(replay_count(w, 600, 0), 400);
    /* The segment holding 601 survived, the one before it (all <= 600) did not. */
    uint64_t oldest = segment_span(fx).oldest;
    assert_true(oldest > 1 && oldest <= 601);
    assert_int_equal(replay_count(w, oldest - 1, 0), 1001 - oldest);
    struct seen s = {.next = 1};
    struct lm_error err;
    assert_int_equal(lm_wal_replay(w, oldest - 2, check_rec, &s, &err), LM_ECORRUPT);
    assert_non_null(strstr(err.message, "were asked for"));
    assert_int_equal(s.count, 0);

    /* Truncating everything leaves one empty segment; numbering goes on. */
    assert_int_equal(lm_wal_truncate_upto(w, 1000), 0);
    assert_int_equal(segment_count(fx), 1);
    put_range(w, 1001, 1003, 0);
    assert_int_equal(lm_wal_close(w), 0);
    w = open_log(fx, NULL, LM_SYNC_GROUP, 4096);
    assert_int_equal(lm_wal_last_lsn(w), 1003);
    assert_int_equal(replay_count(w, 1000, 0), 3);

    /* A checkpoint ahead of the log moves the numbering past it. */
    assert_int_equal(lm_wal_truncate_upto(w, 5000), 0);
    assert_int_equal(lm_wal_last_lsn(w), 5000);
    assert_int_equal(segment_count(fx), 1);
    put_range(w, 5001, 5002, 0);
    assert_int_equal(lm_wal_close(w), 0);
    w = open_log(fx, NULL, LM_SYNC_GROUP, 4096);
    assert_int_equal(replay_count(w, 5000, 0), 2);
    assert_int_equal(lm_wal_close(w), 0);
}

/* ---------------------------------------------------------------- damage */

/* Damages the last record of a 20-record log at every byte boundary (cut off there,
 * or zeroed from there on) and checks each time that open keeps records 1..19 (all 20
 * when only padding was lost), that replay sees exactly those, and that appends
 * continue after them and survive a reopen. */
static void torn_tail_at_every_byte_is_cut_off_and_earlier_records_survive(void **state)
{
    struct fixture *fx = *state;
    char path[256];
    size_t size;
    uint8_t *orig = make_log(fx, LM_SYNC_ALWAYS, 0, 20, path, &size);
    lm_wal *w;
    uint64_t start = rec_offset(1, 20), body_end = start + 24 + rec_size(20);
    assert_int_equal(size, (body_end + 7) / 8 * 8);
    uint8_t *img = lm_alloc(size);
    for (int zeroed = 0; zeroed < 2; zeroed++)
        for (uint64_t cut = start; cut < size; cut++) {
            memcpy(img, orig, size);
            if (zeroed)
                memset(img + cut, 0, size - cut);
            spill(path, img, zeroed ? size : cut);
            uint64_t keep = cut >= body_end ? 20 : 19;
            w = open_log(fx, NULL, LM_SYNC_ALWAYS, 0);
            assert_int_equal(lm_wal_last_lsn(w), keep);
            assert_int_equal(replay_count(w, 0, 0), keep);
            put_range(w, keep + 1, keep + 1, 0);
            assert_int_equal(lm_wal_close(w), 0);
            w = open_log(fx, NULL, LM_SYNC_ALWAYS, 0);
            assert_int_equal(replay_count(w, 0, 0), keep + 1);
            assert_int_equal(lm_wal_close(w), 0);
        }
    lm_free(img);
    lm_free(orig);
}

static void flipped_byte_in_an_older_segment_is_corruption_naming_file_and_offset(void **state)
{
    struct fixture *fx = *state;
    char path[256];
    size_t size;
    uint8_t *img = make_log(fx, LM_SYNC_GROUP, 4096, 200, path, &size);
    uint64_t off = rec_offset(1, 4);
    assert_true(off + 30 < size);
    img[off + 26] ^= 0x10; /* a payload byte of record 4, records 5.. follow */
    spill(path, img, size);
    lm_free(img);

    lm_wal *w = open_log(fx, NULL, LM_SYNC_GROUP, 4096); /* only the last is scanned */
    struct seen s = {.next = 1};
    struct lm_error err;
    assert_int_equal(lm_wal_replay(w, 0, check_rec, &s, &err), LM_ECORRUPT);
    assert_int_equal(s.count, 3);
    assert_int_equal(err.code, LM_ECORRUPT);
    assert_int_equal(err.offset, (int64_t)off);
    assert_non_null(strstr(err.message, "wal-0000000000000001.log"));
    char at[64];
    snprintf(at, sizeof at, "offset %" PRIu64 ":", off);
    assert_non_null(strstr(err.message, at));
    assert_non_null(strstr(err.message, "checksum"));
    /* Replay past that segment does not read it. */
    assert_int_equal(replay_count(w, 150, 0), 50);
    assert_int_equal(lm_wal_close(w), 0);
}

static void well_checksummed_record_with_a_wrong_lsn_is_corruption_not_a_tail(void **state)
{
    struct fixture *fx = *state;
    char path[256];
    size_t size;
    uint8_t *img = make_log(fx, LM_SYNC_ALWAYS, 0, 10, path, &size);
    uint64_t off = rec_offset(1, 6);
    img[off + 8] += 1; /* LSN 6 -> 7 */
    uint32_t n = (uint32_t)rec_size(6);
    uint32_t crc = lm_crc32c(lm_crc32c(0, img + off + 24, n), img + off + 4, 20);
    memcpy(img + off, &crc, 4); /* little-endian host */
    spill(path, img, size);
    lm_free(img);
    struct lm_wal_opts o = {.io = &fast, .dir = fx->dir};
    struct lm_error err;
    lm_wal *w2 = NULL;
    assert_int_equal(lm_wal_open(&o, &w2, &err), LM_ECORRUPT);
    assert_null(w2);
    assert_int_equal(err.offset, (int64_t)off);
    assert_non_null(strstr(err.message, "LSN 7 where 6"));
}

static void newer_format_version_is_refused_naming_the_file(void **state)
{
    struct fixture *fx = *state;
    char path[256];
    size_t size; /* several segments; the first is older, its header checked at open */
    uint8_t *img = make_log(fx, LM_SYNC_ALWAYS, 1024, 40, path, &size);
    img[8] = 2;
    uint32_t crc = lm_crc32c(0, img, 28);
    memcpy(img + 28, &crc, 4);
    spill(path, img, size);
    struct lm_wal_opts o = {.io = &fast, .dir = fx->dir};
    struct lm_error err;
    lm_wal *w2 = NULL;
    assert_int_equal(lm_wal_open(&o, &w2, &err), LM_EVERSION);
    assert_null(w2);
    assert_non_null(strstr(err.message, path));
    assert_non_null(strstr(err.message, "version 2"));
    /* The same file with version 1 again opens. */
    img[8] = 1;
    crc = lm_crc32c(0, img, 28);
    memcpy(img + 28, &crc, 4);
    spill(path, img, size);
    lm_free(img);
    lm_wal *w = open_log(fx, NULL, LM_SYNC_ALWAYS, 1024);
    assert_int_equal(replay_count(w, 0, 0), 40);
    assert_int_equal(lm_wal_close(w), 0);
}

static void last_segment_with_a_header_cut_short_is_rewritten(void **state)
{
    struct fixture *fx = *state;
    for (size_t keep = 0; keep < 32; keep += 7) {
        reset_dir(fx);
        lm_wal *w = open_log(fx, NULL, LM_SYNC_ALWAYS, 0);
        put_range(w, 1, 9, 0);
        assert_int_equal(lm_wal_close(w), 0);
        char path[256];
        seg_file(fx, 10, path, sizeof path); /* as a crash during rotation leaves it */
        uint8_t junk[32];
        memset(junk, 0xab, sizeof junk);
        spill(path, junk, keep);
        w = open_log(fx, NULL, LM_SYNC_ALWAYS, 0);
        assert_int_equal(lm_wal_last_lsn(w), 9);
        assert_int_equal(replay_count(w, 0, 0), 9);
        put_range(w, 10, 12, 0);
        assert_int_equal(lm_wal_close(w), 0);
        w = open_log(fx, NULL, LM_SYNC_ALWAYS, 0);
        assert_int_equal(replay_count(w, 0, 0), 12);
        assert_int_equal(lm_wal_close(w), 0);
    }
}

/* ---------------------------------------------------------------- crashes */

/* Opens through a fault backend whose every call from the nth on fails (the machine
 * stops), appends until an append fails, and then either loses power at once or (with
 * `restart`) first restarts the process: reopens through the same backend, checks,
 * appends two more acknowledged records, and then loses power. On reopen every
 * acknowledged record must be there and the log a clean prefix of what was written. */
static void crash_at_every_call_keeps_acknowledged_records(struct fixture *fx,
                                                           enum lm_sync sync, bool restart)
{
    const uint64_t total = 30;
    bool completed = false;
    for (uint64_t nth = 1; !completed; nth++) {
        assert_true(nth < 1000);
        reset_dir(fx);
        struct lm_io *io;
        assert_int_equal(lm_io_fault_new(&fast, nth, &io), 0);
        lm_io_fault_fail(io, LM_IO_OP_ANY, nth, EIO, true);
        struct lm_wal_opts o = {.io = io, .dir = fx->dir, .segment_bytes = 1024,
                                .sync = sync};
        lm_wal *w = NULL;
        uint64_t acked = 0;
        if (!lm_wal_open(&o, &w, NULL)) {
            for (uint64_t l = 1; l <= total; l++) {
                if (put_rec(w, l, 0, true, NULL))
                    break;
                acked = l;
            }
            int crc = lm_wal_close(w);
            completed = acked == total && crc == 0;
            if (acked < total)
                assert_int_not_equal(crc, 0);
        }
        w = NULL;
        if (restart) { /* the process died; the machine did not */
            lm_io_fault_fail(io, LM_IO_OP_ANY, 0, 0, false);
            w = open_log(fx, io, sync, 1024);
            uint64_t last = lm_wal_last_lsn(w);
            assert_true(last >= acked);
            assert_int_equal(replay_count(w, 0, 0), last);
            put_range(w, last + 1, last + 2, 0);
            acked = last + 2;
        }
        assert_int_equal(lm_io_fault_crash(io, LM_IO_FAULT_TEAR |
                                                   (nth % 2 ? LM_IO_FAULT_IN_ORDER : 0)),
                         0);
        lm_wal_close(w);
        lm_io_fault_free(io);

        w = open_log(fx, NULL, sync, 1024);
        uint64_t last = lm_wal_last_lsn(w);
        if (last < acked)
            fail_msg("call %" PRIu64 " failed%s: %" PRIu64 " acknowledged, %" PRIu64
                     " recovered", nth, restart ? " (then a restart)" : "", acked, last);
        assert_int_equal(replay_count(w, 0, 0), last);
        put_range(w, last + 1, last + 2, 0);
        assert_int_equal(lm_wal_close(w), 0);
    }
}

static void crash_at_any_call_loses_no_acknowledged_record_always(void **state)
{
    crash_at_every_call_keeps_acknowledged_records(*state, LM_SYNC_ALWAYS, false);
}

static void crash_at_any_call_loses_no_acknowledged_record_group(void **state)
{
    crash_at_every_call_keeps_acknowledged_records(*state, LM_SYNC_GROUP, false);
}

static void restart_after_a_failed_call_then_power_loss_loses_nothing_acknowledged(
    void **state)
{
    crash_at_every_call_keeps_acknowledged_records(*state, LM_SYNC_ALWAYS, true);
    crash_at_every_call_keeps_acknowledged_records(*state, LM_SYNC_GROUP, true);
}

/* Acknowledged records, then more handed to the OS but never synced (NONE policy, or a
 * failed fdatasync): a crash with a torn tail keeps the acknowledged ones and a clean
 * prefix of the rest, and the log continues right after it. */
static void crash_drops_the_unacknowledged_tail_cleanly(void **state)
{
    struct fixture *fx = *state;
    for (uint64_t seed = 1; seed <= 24; seed++) {
        enum lm_sync sync = seed % 3 == 0 ? LM_SYNC_NONE : seed % 3 == 1 ? LM_SYNC_GROUP
                                                                         : LM_SYNC_ALWAYS;
        reset_dir(fx);
        struct lm_io *io;
        assert_int_equal(lm_io_fault_new(&fast, seed, &io), 0);
        lm_wal *w = open_log(fx, io, sync, 0);
        put_range(w, 1, 10, 0);
        if (sync == LM_SYNC_NONE) {
            assert_int_equal(lm_wal_close(w), 0); /* close syncs whatever the policy */
            w = open_log(fx, io, sync, 0);
            put_range(w, 11, 40, 0); /* in the file, not durable */
        } else {
            for (uint64_t l = 11; l <= 40; l++)
                assert_int_equal(put_rec(w, l, 0, false, NULL), 0);
            lm_io_fault_fail(io, LM_IO_OP_FDATASYNC, 1, EIO, false);
            assert_int_equal(lm_wal_sync(w, 40), -EIO); /* written, sync failed */
        }
        unsigned flags = LM_IO_FAULT_TEAR | (seed % 2 ? LM_IO_FAULT_IN_ORDER : 0);
        assert_int_equal(lm_io_fault_crash(io, flags), 0);
        lm_wal_close(w);

        w = open_log(fx, io, sync, 0);
        uint64_t last = lm_wal_last_lsn(w);
        assert_true(last >= 10 && last < 40);
        if (sync == LM_SYNC_NONE && !(flags & LM_IO_FAULT_IN_ORDER))
            assert_int_equal(last, 10); /* a hole before the torn record: cut there */
        assert_int_equal(replay_count(w, 0, 0), last);
        /* The tail was cut: a record with new contents takes the next LSN. */
        put_range(w, last + 1, last + 1, 99);
        assert_int_equal(lm_wal_close(w), 0);
        w = open_log(fx, io, sync, 0);
        struct seen s = {.next = 1, .salt_from = last + 1, .salt2 = 99};
        assert_int_equal(lm_wal_replay(w, 0, check_rec, &s, NULL), 0);
        assert_int_equal(s.count, last + 1);
        assert_int_equal(lm_wal_close(w), 0);
        lm_io_fault_free(io);
    }
}

/* NONE never syncs appends, but a full segment is synced before the next one starts,
 * so a crash leaves a clean prefix and older segments replay without corruption. */
static void crash_under_sync_none_leaves_a_clean_prefix_across_segments(void **state)
{
    struct fixture *fx = *state;
    for (uint64_t seed = 1; seed <= 8; seed++) {
        reset_dir(fx);
        struct lm_io *io;
        assert_int_equal(lm_io_fault_new(&fast, seed, &io), 0);
        lm_wal *w = open_log(fx, io, LM_SYNC_NONE, 1024);
        put_range(w, 1, 60, 0);
        uint64_t open_first = segment_span(fx).newest;
        assert_true(open_first > 20);
        assert_int_equal(lm_io_fault_crash(io, LM_IO_FAULT_TEAR | LM_IO_FAULT_IN_ORDER), 0);
        lm_wal_close(w);
        w = open_log(fx, io, LM_SYNC_NONE, 1024);
        uint64_t last = lm_wal_last_lsn(w);
        assert_true(last + 1 >= open_first && last <= 60); /* only the open segment lost */
        assert_int_equal(replay_count(w, 0, 0), last);
        assert_int_equal(lm_wal_close(w), 0);
        lm_io_fault_free(io);
    }
}

/* ---------------------------------------------------------------- failures */

static void failed_fsync_is_returned_never_retried_and_sticky(void **state)
{
    struct fixture *fx = *state;
    for (int p = 0; p < 2; p++) {
        reset_dir(fx);
        enum lm_sync sync = p ? LM_SYNC_GROUP : LM_SYNC_ALWAYS;
        struct lm_io *io;
        assert_int_equal(lm_io_fault_new(&fast, 3, &io), 0);
        lm_wal *w = open_log(fx, io, sync, 0);
        put_range(w, 1, 5, 0);
        lm_io_fault_fail(io, LM_IO_OP_FDATASYNC, 1, EIO, false);
        uint64_t lsn = 0;
        assert_int_equal(put_rec(w, 6, 0, true, &lsn), -EIO);
        assert_int_equal(lsn, 0); /* not acknowledged */
        uint64_t syncs = lm_io_fault_count(io, LM_IO_OP_FDATASYNC);
        uint64_t writes = lm_io_fault_count(io, LM_IO_OP_PWRITE);
        assert_int_equal(put_rec(w, 7, 0, false, NULL), LM_EFAILED);
        assert_int_equal(put_rec(w, 7, 0, true, NULL), LM_EFAILED);
        assert_int_equal(lm_wal_sync(w, 6), LM_EFAILED);
        assert_int_equal(lm_wal_sync(w, 5), 0); /* was durable before the failure */
        assert_int_equal(lm_wal_truncate_upto(w, 3), LM_EFAILED);
        assert_int_equal(lm_wal_close(w), LM_EFAILED);
        assert_int_equal(lm_io_fault_count(io, LM_IO_OP_FDATASYNC), syncs);
        assert_int_equal(lm_io_fault_count(io, LM_IO_OP_PWRITE), writes);

        assert_int_equal(lm_io_fault_crash(io, 0), 0);
        w = open_log(fx, io, sync, 0);
        assert_int_equal(replay_count(w, 0, 0), 5);
        put_range(w, 6, 6, 0);
        assert_int_equal(lm_wal_close(w), 0);
        lm_io_fault_free(io);
    }
}

static void write_error_such_as_enospc_is_returned_and_fails_the_log(void **state)
{
    struct fixture *fx = *state;
    struct lm_io *io;
    assert_int_equal(lm_io_fault_new(&fast, 5, &io), 0);
    lm_wal *w = open_log(fx, io, LM_SYNC_GROUP, 0);
    put_range(w, 1, 5, 0);
    lm_io_fault_fail(io, LM_IO_OP_PWRITE, 1, ENOSPC, true);
    assert_int_equal(put_rec(w, 6, 0, true, NULL), -ENOSPC);
    assert_int_equal(put_rec(w, 6, 0, true, NULL), LM_EFAILED);
    assert_int_equal(lm_wal_close(w), LM_EFAILED);
    lm_io_fault_fail(io, LM_IO_OP_PWRITE, 0, 0, false);
    w = open_log(fx, io, LM_SYNC_GROUP, 0);
    assert_int_equal(replay_count(w, 0, 0), 5);
    assert_int_equal(lm_wal_close(w), 0);
    lm_io_fault_free(io);

    /* A failure inside rotation (creating the next segment) fails the log too. */
    reset_dir(fx);
    assert_int_equal(lm_io_fault_new(&fast, 5, &io), 0);
    w = open_log(fx, io, LM_SYNC_ALWAYS, 512);
    lm_io_fault_fail(io, LM_IO_OP_SYNC_DIR, 1, EIO, false);
    uint64_t l = 0;
    int rc = 0;
    while (!rc && l < 100)
        rc = put_rec(w, ++l, 0, true, NULL);
    assert_int_equal(rc, -EIO);
    assert_int_equal(put_rec(w, l + 1, 0, true, NULL), LM_EFAILED);
    lm_wal_close(w);
    lm_io_fault_free(io);
}

/* ---------------------------------------------------------------- group commit */

/* fdatasync counted and made as slow as a small disk's (300 us). */
static _Atomic uint64_t datasyncs;
static int slow_fdatasync(void *ctx, int fd)
{
    (void)ctx;
    datasyncs++;
    (void)fd;
    struct timespec t = {0, 300 * 1000};
    nanosleep(&t, NULL);
    return 0;
}

struct writer {
    lm_wal *w;
    pthread_mutex_t *engine_lock;
    uint64_t *applied; /* LSNs in the order the "engine" applied them */
    size_t *n_applied;
    uint32_t id;
    int rc;
};

enum { WRITERS = 4, PER_WRITER = 250 };

static void *writer_main(void *arg)
{
    struct writer *wr = arg;
    for (uint32_t seq = 0; seq < PER_WRITER && !wr->rc; seq++) {
        uint32_t body[2] = {wr->id, seq};
        struct iovec part = {body, sizeof body};
        uint64_t lsn;
        pthread_mutex_lock(wr->engine_lock); /* short: write only */
        wr->rc = lm_wal_write(wr->w, 1, &part, 1, &lsn);
        if (!wr->rc)
            wr->applied[(*wr->n_applied)++] = lsn;
        pthread_mutex_unlock(wr->engine_lock);
        if (!wr->rc)
            wr->rc = lm_wal_sync(wr->w, lsn);
    }
    return NULL;
}

struct order {
    uint64_t next;
    uint32_t seq[WRITERS];
};

static int check_order(void *ctx, uint64_t lsn, uint16_t type, const void *p, size_t n)
{
    struct order *o = ctx;
    uint32_t body[2];
    assert_int_equal(lsn, o->next++);
    assert_int_equal(type, 1);
    assert_int_equal(n, sizeof body);
    memcpy(body, p, sizeof body);
    assert_true(body[0] < WRITERS);
    assert_int_equal(body[1], o->seq[body[0]]++); /* each writer's records in order */
    return 0;
}

static void concurrent_writers_share_fdatasyncs_and_keep_lsn_order(void **state)
{
    struct fixture *fx = *state;
    struct lm_io io = fast;
    io.fdatasync = slow_fdatasync;
    datasyncs = 0;
    lm_wal *w = open_log(fx, &io, LM_SYNC_GROUP, 64 << 10);
    uint64_t base = datasyncs;
    pthread_mutex_t engine_lock = PTHREAD_MUTEX_INITIALIZER;
    uint64_t applied[WRITERS * PER_WRITER];
    size_t n_applied = 0;
    struct writer wr[WRITERS];
    pthread_t th[WRITERS];
    for (uint32_t i = 0; i < WRITERS; i++) {
        wr[i] = (struct writer){w, &engine_lock, applied, &n_applied, i, 0};
        assert_int_equal(pthread_create(&th[i], NULL, writer_main, &wr[i]), 0);
    }
    for (int i = 0; i < WRITERS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(wr[i].rc, 0);
    }
    uint64_t syncs = datasyncs - base;
    const uint64_t records = WRITERS * PER_WRITER;
    assert_int_equal(n_applied, records);
    for (size_t i = 0; i < n_applied; i++)
        assert_int_equal(applied[i], i + 1); /* LSN order = apply order */
    if (syncs >= records)
        fail_msg("%" PRIu64 " fdatasyncs for %" PRIu64 " records", syncs, records);
    print_message("    %" PRIu64 " fdatasyncs for %" PRIu64 " records\n", syncs, records);
    assert_int_equal(lm_wal_close(w), 0);

    w = open_log(fx, &io, LM_SYNC_GROUP, 64 << 10);
    struct order o = {.next = 1};
    assert_int_equal(lm_wal_replay(w, 0, check_order, &o, NULL), 0);
    assert_int_equal(o.next, records + 1);
    for (int i = 0; i < WRITERS; i++)
        assert_int_equal(o.seq[i], PER_WRITER);
    assert_int_equal(lm_wal_close(w), 0);
}

int main(void)
{
    fast = *lm_io_posix();
    fast.fsync = no_sync;
    fast.fdatasync = no_sync;
    fast.sync_dir = no_sync_dir;
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(records_round_trip_across_segment_rotations),
        T(replay_stops_when_the_visitor_says_so_and_rejects_misuse),
        T(truncate_upto_removes_covered_segments_and_replay_goes_on),
        T(torn_tail_at_every_byte_is_cut_off_and_earlier_records_survive),
        T(flipped_byte_in_an_older_segment_is_corruption_naming_file_and_offset),
        T(well_checksummed_record_with_a_wrong_lsn_is_corruption_not_a_tail),
        T(newer_format_version_is_refused_naming_the_file),
        T(last_segment_with_a_header_cut_short_is_rewritten),
        T(crash_at_any_call_loses_no_acknowledged_record_always),
        T(crash_at_any_call_loses_no_acknowledged_record_group),
        T(restart_after_a_failed_call_then_power_loss_loses_nothing_acknowledged),
        T(crash_drops_the_unacknowledged_tail_cleanly),
        T(crash_under_sync_none_leaves_a_clean_prefix_across_segments),
        T(failed_fsync_is_returned_never_retried_and_sticky),
        T(write_error_such_as_enospc_is_returned_and_fails_the_log),
        T(concurrent_writers_share_fdatasyncs_and_keep_lsn_order),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
