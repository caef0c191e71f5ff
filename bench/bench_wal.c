/* bench_wal.c - durable append throughput of the write-ahead log.
 *
 * For each sync policy (always, group, none), payload size (batches of 1, 100 and
 * 10,000 samples at 32 bytes a sample) and writer count (1, 4): writers call
 * lm_wal_append (write + sync) in a loop for a fixed time. Reported: records/s, payload
 * MB/s, and records per fdatasync (counted through the lm_io table). Beside it, raw
 * fdatasync/s on the same file system in the same run (4 KiB appends, 4 KiB
 * overwrites), which bounds what always/group can reach.
 *
 * Usage: bench_wal [seconds per cell, default 1] [directory, default /tmp]
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>

#include "alloc.h"
#include "bench_util.h"
#include "io.h"
#include "wal.h"

#include "../tests/tmpdir.h"

#define SAMPLE_BYTES 32

static _Atomic uint64_t n_datasyncs;

static int counting_fdatasync(void *ctx, int fd)
{
    (void)ctx;
    atomic_fetch_add_explicit(&n_datasyncs, 1, memory_order_relaxed);
    return lm_io_posix()->fdatasync(NULL, fd);
}

/* What kind of storage dir lives on, in words. */
static const char *fs_kind(const char *dir, char *out, size_t cap)
{
    struct statfs st;
    if (statfs(dir, &st)) {
        snprintf(out, cap, "unknown (%s)", strerror(errno));
        return out;
    }
    switch ((unsigned long)st.f_type) {
    case 0x01021994ul: snprintf(out, cap, "tmpfs (memory: fdatasync does nothing)"); break;
    case 0xEF53ul: snprintf(out, cap, "ext4 (disk)"); break;
    case 0x58465342ul: snprintf(out, cap, "xfs (disk)"); break;
    case 0x9123683Eul: snprintf(out, cap, "btrfs (disk)"); break;
    case 0x794c7630ul: snprintf(out, cap, "overlayfs (over a disk or memory)"); break;
    default: snprintf(out, cap, "file system type 0x%lx", (unsigned long)st.f_type); break;
    }
    return out;
}

/* Raw fdatasync rate: 4 KiB pwrite + fdatasync in a loop, appending or overwriting. */
static double raw_fdatasync_per_s(const char *dir, bool append, double seconds)
{
    char path[600];
    snprintf(path, sizeof path, "%s/raw-fdatasync", dir);
    const struct lm_io *io = lm_io_posix();
    int fd;
    if (io->open(NULL, path, O_RDWR | O_CREAT | O_TRUNC, 0644, &fd))
        return 0;
    char block[4096];
    memset(block, 0x5a, sizeof block);
    uint64_t n = 0;
    double t0 = bench_now(), t;
    do {
        uint64_t off = append ? n * sizeof block : 0;
        if (io->pwrite(NULL, fd, block, sizeof block, off) || io->fdatasync(NULL, fd))
            break;
        n++;
    } while ((t = bench_now()) - t0 < seconds);
    io->close(NULL, fd);
    io->unlink(NULL, path);
    return (double)n / (bench_now() - t0);
}

struct cell {
    lm_wal *w;
    size_t payload;
    double until;
    _Atomic uint64_t records;
    _Atomic int rc;
};

static void *writer(void *arg)
{
    struct cell *c = arg;
    uint8_t *buf = lm_alloc(c->payload);
    if (!buf) {
        c->rc = -ENOMEM;
        return NULL;
    }
    memset(buf, 0xa5, c->payload);
    struct iovec part = {buf, c->payload};
    uint64_t mine = 0;
    while (bench_now() < c->until) {
        int rc = lm_wal_append(c->w, 1, &part, 1, NULL);
        if (rc) {
            c->rc = rc;
            break;
        }
        mine++;
    }
    c->records += mine;
    lm_free(buf);
    return NULL;
}

static void run_cell(const char *root, enum lm_sync sync, const char *policy,
                     size_t samples, int threads, double seconds)
{
    char dir[600];
    snprintf(dir, sizeof dir, "%s/log", root);
    struct lm_io io = *lm_io_posix();
    io.fdatasync = counting_fdatasync;
    struct lm_wal_opts o = {.io = &io, .dir = dir, .sync = sync};
    struct lm_error err;
    struct cell c = {.payload = samples * SAMPLE_BYTES};
    if (lm_wal_open(&o, &c.w, &err)) {
        fprintf(stderr, "bench_wal: %s\n", err.message);
        exit(1);
    }
    pthread_t th[8];
    uint64_t syncs0 = n_datasyncs;
    double t0 = bench_now();
    c.until = t0 + seconds;
    for (int i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, writer, &c);
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    double dt = bench_now() - t0;
    uint64_t syncs = n_datasyncs - syncs0;
    int crc = lm_wal_close(c.w);
    tmpdir_remove(dir);
    if (c.rc || crc) {
        fprintf(stderr, "bench_wal: append failed: %s\n", lm_strerror(c.rc ? c.rc : crc));
        exit(1);
    }
    char s_pol[16], s_pay[32], s_thr[8], s_rec[32], s_mb[32], s_per[32];
    snprintf(s_pol, sizeof s_pol, "%s", policy);
    snprintf(s_pay, sizeof s_pay, "%zu x 32 B = %zu B", samples, c.payload);
    snprintf(s_thr, sizeof s_thr, "%d", threads);
    snprintf(s_rec, sizeof s_rec, "%.0f", (double)c.records / dt);
    snprintf(s_mb, sizeof s_mb, "%.1f", (double)c.records * (double)c.payload / dt / 1e6);
    if (syncs)
        snprintf(s_per, sizeof s_per, "%.2f", (double)c.records / (double)syncs);
    else
        snprintf(s_per, sizeof s_per, "no fdatasync");
    const char *row[] = {s_pay, s_thr, s_pol, s_rec, s_mb, s_per, NULL};
    bench_table_row(row);
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 1.0;
    const char *base = argc > 2 ? argv[2] : "/tmp";
    if (seconds <= 0)
        seconds = 1.0;
    char root[512];
    snprintf(root, sizeof root, "%s/lmbench-wal-XXXXXX", base);
    if (!mkdtemp(root)) {
        fprintf(stderr, "bench_wal: cannot make a directory under %s\n", base);
        return 1;
    }
    char kind[96];
    printf("Write-ahead log durable appends: %.1f s per cell, directory %s on %s\n",
           seconds, root, fs_kind(root, kind, sizeof kind));

    /* Disk speed drifts on shared machines: the raw rate is taken before and after,
     * and the three policies of one payload/writer pair run back to back. */
    double raw_before[2] = {raw_fdatasync_per_s(root, true, seconds),
                            raw_fdatasync_per_s(root, false, seconds)};

    const char *cols[] = {"payload", "writers", "policy", "records/s", "MB/s",
                          "records per fdatasync", NULL};
    bench_table_header("lm_wal_append (write + sync until durable)", cols);
    static const struct {
        enum lm_sync sync;
        const char *name;
    } policies[] = {{LM_SYNC_ALWAYS, "always"}, {LM_SYNC_GROUP, "group"},
                    {LM_SYNC_NONE, "none"}};
    static const size_t batches[] = {1, 100, 10000};
    static const int writers[] = {1, 4};
    for (size_t s = 0; s < 3; s++)
        for (size_t t = 0; t < 2; t++)
            for (size_t p = 0; p < 3; p++)
                run_cell(root, policies[p].sync, policies[p].name, batches[s], writers[t],
                         seconds);
    printf("\nnone: appends are handed to the OS only; its fdatasyncs are those of segment\n"
           "rotation (every 64 MiB) and close.\n");

    const char *raw_cols[] = {"operation", "fdatasync/s before", "fdatasync/s after", NULL};
    bench_table_header("Raw fdatasync on the same file system, one thread", raw_cols);
    static const char *const ops[] = {"4 KiB append + fdatasync",
                                      "4 KiB overwrite + fdatasync"};
    for (int i = 0; i < 2; i++) {
        char a[32], b[32];
        snprintf(a, sizeof a, "%.0f", raw_before[i]);
        snprintf(b, sizeof b, "%.0f", raw_fdatasync_per_s(root, i == 0, seconds));
        bench_table_row((const char *[]){ops[i], a, b, NULL});
    }
    tmpdir_remove(root);
    return 0;
}
