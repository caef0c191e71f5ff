/* bench_storage.c - durable ingest per policy and batch size beside raw fdatasync/s on
 * the same disk, checkpoint size and speed, and open (recovery) time of a large
 * database. Usage: bench_storage [--quick] [DIR] (DIR: where to put the databases, on
 * the disk to measure; default /tmp). */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../tests/tmpdir.h"
#include "bench_util.h"
#include "demo_scene.h"
#include "lumadb.h"

static char base[256] = "/tmp";

static double raw_fdatasync_per_s(void)
{
    char path[300];
    snprintf(path, sizeof path, "%s/lumadb-fsync-probe", base);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    char blk[4096] = {0};
    int n = 0;
    double t0 = bench_now();
    while (bench_now() - t0 < 1.0) {
        if (pwrite(fd, blk, sizeof blk, (off_t)n * 4096) != (ssize_t)sizeof blk)
            break;
        fdatasync(fd);
        n++;
    }
    double rate = n / (bench_now() - t0);
    close(fd);
    unlink(path);
    return rate;
}

/* Ingest `total` demo samples in batches of `batch` from `threads` writers. */
struct job {
    lm_db *db;
    size_t first, count, batch;
    float *c[10];
    int64_t *t;
    uint8_t *mat;
};

#include <pthread.h>

static void *writer(void *p)
{
    struct job *j = p;
    for (size_t off = 0; off < j->count; off += j->batch) {
        size_t n = j->count - off < j->batch ? j->count - off : j->batch;
        size_t a = j->first + off;
        struct lm_batch b = {.n = n, .x = j->c[0] + a, .y = j->c[1] + a, .z = j->c[2] + a,
                             .dx = j->c[3] + a, .dy = j->c[4] + a, .dz = j->c[5] + a,
                             .r = j->c[6] + a, .g = j->c[7] + a, .b = j->c[8] + a,
                             .intensity = j->c[9] + a, .t = j->t + a, .n_user = 1,
                             .user = {j->mat + a}};
        if (lm_insert(j->db, "terrain", &b, NULL, NULL))
            return (void *)1;
    }
    return NULL;
}

struct scene {
    size_t n;
    float *c[10];
    int64_t *t;
    uint8_t *mat;
};

static void scene_make(struct scene *s, uint32_t side)
{
    s->n = (size_t)side * side;
    for (int k = 0; k < 10; k++)
        s->c[k] = malloc(s->n * sizeof(float));
    s->t = malloc(s->n * sizeof(int64_t));
    s->mat = malloc(s->n);
    struct lm_demo_scene sc = {.side = side, .seed = 42};
    lm_demo_generate(&sc, 0, s->n, s->c[0], s->c[1], s->c[2], s->c[3], s->c[4], s->c[5],
                     s->c[6], s->c[7], s->c[8], s->c[9], s->t, s->mat);
}

static double ingest(const struct scene *s, size_t total, enum lm_sync pol, size_t batch,
                     int threads, char *dir_out)
{
    char dir[300];
    snprintf(dir, sizeof dir, "%s/lumadb-bench-XXXXXX", base);
    if (!mkdtemp(dir))
        return 0;
    struct lm_db_opts o = {.create = true, .sync = pol};
    lm_db *db;
    lm_db_open(dir, &o, &db, NULL);
    struct lm_field_opts fo;
    lm_demo_field_opts(&fo);
    lm_field_create(db, "terrain", &fo, NULL);
    pthread_t th[8];
    struct job jobs[8];
    double t0 = bench_now();
    for (int i = 0; i < threads; i++) {
        jobs[i] = (struct job){db, total / threads * i, total / threads, batch, {0}, s->t, s->mat};
        memcpy(jobs[i].c, s->c, sizeof jobs[i].c);
        pthread_create(&th[i], NULL, writer, &jobs[i]);
    }
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    double dt = bench_now() - t0;
    lm_db_close(db);
    if (dir_out)
        strcpy(dir_out, dir);
    else
        tmpdir_remove(dir);
    return (double)(total / threads * threads) / dt;
}

int main(int argc, char **argv)
{
    bool quick = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = true;
        else
            snprintf(base, sizeof base, "%s", argv[i]);
    }
    printf("# LumaDB storage benchmark (databases under %s)\n", base);
    struct scene s;
    scene_make(&s, quick ? 1024 : 3163); /* 1M or 10M samples */
    double fs = raw_fdatasync_per_s();

    const char *cols[] = {"policy", "batch", "writers", "samples", "samples/s",
                          "raw fdatasync/s (same disk)", NULL};
    bench_table_header("Durable ingest (lm_insert, demo terrain rows)", cols);
    struct { const char *name; enum lm_sync pol; } pols[] = {
        {"always", LM_SYNC_ALWAYS}, {"group", LM_SYNC_GROUP}, {"none", LM_SYNC_NONE}};
    size_t batches[] = {1, 100, 10000};
    for (int p = 0; p < 3; p++)
        for (int b = 0; b < 3; b++)
            for (int w = 1; w <= 2; w++) {
                /* bounded work: small batches are fsync-bound, so fewer samples */
                size_t total = batches[b] == 1 ? 400 : batches[b] == 100 ? 40000 : 1000000;
                if (pols[p].pol == LM_SYNC_NONE && batches[b] == 1)
                    total = 100000;
                double r = ingest(&s, total, pols[p].pol, batches[b], w, NULL);
                char bs[32], ws[32], ns[32], rs[32], f[32];
                snprintf(bs, sizeof bs, "%zu", batches[b]);
                snprintf(ws, sizeof ws, "%d", w);
                snprintf(ns, sizeof ns, "%zu", total);
                snprintf(rs, sizeof rs, "%.0f", r);
                snprintf(f, sizeof f, "%.0f", fs);
                const char *row[] = {pols[p].name, bs, ws, ns, rs, f, NULL};
                bench_table_row(row);
            }

    /* a big database: checkpoint size, checkpoint time, open time */
    char dir[300];
    double r = ingest(&s, s.n, LM_SYNC_GROUP, 100000, 1, dir);
    lm_db *db;
    double t0 = bench_now();
    lm_db_open(dir, NULL, &db, NULL);
    double open_s = bench_now() - t0;
    struct lm_db_stats st;
    lm_db_stats(db, &st);
    struct lm_field_info info;
    lm_field_info(db, "terrain", &info, NULL);
    /* rewrite every chunk once to time a full checkpoint */
    lm_update(db, "terrain", NULL, LM_COL_T, 1, NULL, NULL, NULL);
    t0 = bench_now();
    lm_db_checkpoint(db, NULL);
    double ck_s = bench_now() - t0;
    lm_db_close(db);
    const char *c2[] = {"samples", "group ingest (100k batches)", "checkpoint bytes/sample",
                        "raw column bytes/sample", "full checkpoint", "write MB/s (raw columns)",
                        "open (load + rebuild)", NULL};
    bench_table_header("Checkpoint and open", c2);
    char a[32], b2[32], c[32], d[32], e[32], f[32], g[32];
    snprintf(a, sizeof a, "%llu", (unsigned long long)info.n_samples);
    snprintf(b2, sizeof b2, "%.2f M/s", r / 1e6);
    snprintf(c, sizeof c, "%.2f", (double)st.checkpoint_bytes / (double)info.n_samples);
    snprintf(d, sizeof d, "%d", 32);
    snprintf(e, sizeof e, "%.0f ms", ck_s * 1e3);
    snprintf(f, sizeof f, "%.0f", (double)info.n_samples * 32 / ck_s / 1e6);
    snprintf(g, sizeof g, "%.0f ms", open_s * 1e3);
    const char *row[] = {a, b2, c, d, e, f, g, NULL};
    bench_table_row(row);
    tmpdir_remove(dir);
    return 0;
}
