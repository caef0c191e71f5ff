/* bench_engine.c - engine core figures beside the libraries a user would pick instead:
 * ingest, box query latency, full-scan filter+aggregate vs a memory sum, kNN vs
 * nanoflann, voxel reads vs OpenVDB, bytes per sample. Single thread throughout.
 * Usage: bench_engine [--quick]   (--quick: 1M points only, for smoke runs)
 *        bench_engine --ingest N  (ingest of N uniform samples only, batches of 10k and
 *                                  100k, best of 3 by wall and by CPU time) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "anchors.h"
#include "bench_util.h"
#include "lumadb.h"

static char dir_template[] = "/tmp/lumadb-bench-XXXXXX";
static uint64_t rng = 7;

static void cell(char *buf, size_t n, const char *fmt, double v)
{
    snprintf(buf, n, fmt, v);
}

/* Uniform points in [0, extent)^3 with random directions and colours. */
struct cols {
    size_t n;
    float *x, *y, *z, *dx, *dy, *dz, *r, *g, *b, *in;
    int64_t *t;
};

static void cols_alloc(struct cols *c, size_t n)
{
    c->n = n;
    float **f[] = {&c->x, &c->y, &c->z, &c->dx, &c->dy, &c->dz, &c->r, &c->g, &c->b, &c->in};
    for (size_t k = 0; k < 10; k++)
        *f[k] = malloc(n * sizeof(float));
    c->t = malloc(n * sizeof(int64_t));
}

static void cols_free(struct cols *c)
{
    float *f[] = {c->x, c->y, c->z, c->dx, c->dy, c->dz, c->r, c->g, c->b, c->in};
    for (size_t k = 0; k < 10; k++)
        free(f[k]);
    free(c->t);
}

static void cols_uniform(struct cols *c, float extent)
{
    for (size_t i = 0; i < c->n; i++) {
        c->x[i] = bench_rngf(&rng) * extent;
        c->y[i] = bench_rngf(&rng) * extent;
        c->z[i] = bench_rngf(&rng) * extent;
        float d[3];
        do {
            d[0] = bench_rngf(&rng) * 2 - 1;
            d[1] = bench_rngf(&rng) * 2 - 1;
            d[2] = bench_rngf(&rng) * 2 - 1;
        } while (d[0] * d[0] + d[1] * d[1] + d[2] * d[2] < 0.01f);
        float l = sqrtf(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
        c->dx[i] = d[0] / l;
        c->dy[i] = d[1] / l;
        c->dz[i] = d[2] / l;
        c->r[i] = bench_rngf(&rng);
        c->g[i] = bench_rngf(&rng);
        c->b[i] = bench_rngf(&rng);
        c->in[i] = bench_rngf(&rng) * 2;
        c->t[i] = (int64_t)i;
    }
}

static struct lm_batch batch_of(const struct cols *c, size_t first, size_t n)
{
    return (struct lm_batch){.n = n, .x = c->x + first, .y = c->y + first, .z = c->z + first,
                             .dx = c->dx + first, .dy = c->dy + first, .dz = c->dz + first,
                             .r = c->r + first, .g = c->g + first, .b = c->b + first,
                             .intensity = c->in + first, .t = c->t + first};
}

/* checkpoint_bytes 0: the default (a checkpoint after every 64 MiB of log) */
static lm_db *open_db_with(const char *field, float voxel, uint64_t checkpoint_bytes)
{
    char *dir = strdup(dir_template);
    if (!mkdtemp(dir))
        return NULL;
    lm_db *db;
    struct lm_db_opts o = {.create = true, .sync = LM_SYNC_NONE,
                           .checkpoint_bytes = checkpoint_bytes};
    if (lm_db_open(dir, &o, &db, NULL))
        return NULL;
    struct lm_field_opts fo = {.voxel_size = voxel, .chunk_edge = 32};
    if (lm_field_create(db, field, &fo, NULL))
        return NULL;
    free(dir);
    return db;
}

static lm_db *open_db(const char *field, float voxel)
{
    return open_db_with(field, voxel, 0);
}

/* ---------------------------------------------------------------- ingest */

static lm_db *bench_ingest(const struct cols *c, size_t batch, const char *label, double *rate)
{
    lm_db *db = open_db("f", 1.0f);
    double t0 = bench_now();
    for (size_t first = 0; first < c->n; first += batch) {
        size_t n = c->n - first < batch ? c->n - first : batch;
        struct lm_batch b = batch_of(c, first, n);
        struct lm_error e;
        if (lm_insert(db, "f", &b, NULL, &e)) {
            fprintf(stderr, "insert failed: %s\n", e.message);
            exit(1);
        }
    }
    double dt = bench_now() - t0;
    *rate = (double)c->n / dt;
    char a[64], r[64], s[64];
    snprintf(a, sizeof a, "%zu", c->n);
    snprintf(s, sizeof s, "%zu", batch);
    cell(r, sizeof r, "%.2f M/s", *rate / 1e6);
    const char *row[] = {label, a, s, r, NULL};
    bench_table_row(row);
    return db;
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Ingest only: best of 3 fresh databases per batch size, by wall and by CPU time (the
 * machine may be shared; CPU time is the steadier figure); with the default
 * checkpoints (as the full run) and with none during the run (lm_insert alone). */
static int ingest_only(size_t n)
{
    struct cols c;
    cols_alloc(&c, n);
    cols_uniform(&c, 100.0f);
    const char *cols[] = {"samples", "batch", "checkpoints", "best wall M/s", "best CPU M/s",
                          NULL};
    bench_table_header("Ingest (lm_insert, in memory, log without sync), best of 3", cols);
    const size_t batches[] = {10000, 100000, 100000};
    for (int k = 0; k < 3; k++) {
        double best_wall = 1e30, best_cpu = 1e30;
        for (int rep = 0; rep < 3; rep++) {
            lm_db *db = open_db_with("f", 1.0f, k < 2 ? 0 : UINT64_MAX);
            double t0 = bench_now(), c0 = cpu_now();
            for (size_t first = 0; first < n; first += batches[k]) {
                struct lm_batch b = batch_of(&c, first, n - first < batches[k] ? n - first
                                                                                : batches[k]);
                struct lm_error e;
                if (lm_insert(db, "f", &b, NULL, &e)) {
                    fprintf(stderr, "insert failed: %s\n", e.message);
                    return 1;
                }
            }
            double wall = bench_now() - t0, cpu = cpu_now() - c0;
            best_wall = wall < best_wall ? wall : best_wall;
            best_cpu = cpu < best_cpu ? cpu : best_cpu;
            lm_db_close(db);
        }
        char a[32], b[32], w[32], p[32];
        snprintf(a, sizeof a, "%zu", n);
        snprintf(b, sizeof b, "%zu", batches[k]);
        cell(w, sizeof w, "%.2f", (double)n / best_wall / 1e6);
        cell(p, sizeof p, "%.2f", (double)n / best_cpu / 1e6);
        const char *row[] = {a, b, k < 2 ? "every 64 MiB of log" : "none", w, p, NULL};
        bench_table_row(row);
    }
    cols_free(&c);
    return 0;
}

/* ---------------------------------------------------------------- queries */

static void bench_box(lm_db *db, float extent, const struct cols *c)
{
    const char *cols[] = {"box", "side", "rows (avg)", "LumaDB µs (avg)", "SQLite R*Tree µs (avg)",
                          "ratio (R*Tree / LumaDB)", NULL};
    bench_table_header("Box query (LumaDB lm_select materialises rows; R*Tree steps ids)", cols);
    double t_build = bench_now();
    anchor_rtree *rt = anchor_rtree_build(c->x, c->y, c->z, c->n);
    fprintf(stderr, "R*Tree build of %zu points: %.1f s\n", c->n, bench_now() - t_build);
    struct { const char *name; float side; int reps; } sizes[] = {
        {"small", extent * 0.02f, 2000}, {"medium", extent * 0.1f, 200}, {"large", extent * 0.5f, 5}};
    for (int k = 0; k < 3; k++) {
        struct lm_selection *sels = calloc((size_t)sizes[k].reps, sizeof *sels);
        for (int i = 0; i < sizes[k].reps; i++) {
            sels[i].region.kind = LM_REGION_BOX;
            for (int a = 0; a < 3; a++) {
                sels[i].region.min[a] = bench_rngf(&rng) * (extent - sizes[k].side);
                sels[i].region.max[a] = sels[i].region.min[a] + sizes[k].side;
            }
        }
        double rows = 0, rt_rows = 0, t0 = bench_now();
        for (int i = 0; i < sizes[k].reps; i++) {
            struct lm_rows *r;
            lm_select(db, "f", &sels[i], 0, &r, NULL);
            rows += (double)r->n;
            lm_rows_free(r);
        }
        double dt = (bench_now() - t0) / sizes[k].reps;
        t0 = bench_now();
        for (int i = 0; rt && i < sizes[k].reps; i++)
            rt_rows += (double)anchor_rtree_box(rt, sels[i].region.min, sels[i].region.max);
        double dt_rt = (bench_now() - t0) / sizes[k].reps;
        if (rt && rt_rows != rows)
            fprintf(stderr, "box %s: R*Tree found %.0f rows, LumaDB %.0f\n", sizes[k].name,
                    rt_rows, rows);
        free(sels);
        char s[32], n[32], l[32], rl[32], ra[32];
        cell(s, sizeof s, "%.1f", sizes[k].side);
        cell(n, sizeof n, "%.0f", rows / sizes[k].reps);
        cell(l, sizeof l, "%.1f", dt * 1e6);
        cell(rl, sizeof rl, "%.1f", dt_rt * 1e6);
        cell(ra, sizeof ra, "%.2f", dt_rt / dt);
        const char *row[] = {sizes[k].name, s, n, l, rl, ra, NULL};
        bench_table_row(row);
    }
    anchor_rtree_free(rt);
}

static void bench_scan(lm_db *db, size_t n)
{
    const char *cols[] = {"query", "bytes scanned", "GB/s", "memory-sum GB/s", "ratio", NULL};
    bench_table_header("Full-scan filter + aggregate vs a memory sum of the same bytes", cols);
    /* sum(intensity) WHERE intensity > 1.0 reads the intensity column once */
    struct lm_selection sel = {.n_filters = 1,
                               .filters = {{LM_COL_INTENSITY, LM_CMP_GT, 1.0, 0}}};
    struct lm_aggregate a;
    double best = 1e9;
    for (int r = 0; r < 5; r++) {
        double t0 = bench_now();
        lm_aggregate(db, "f", &sel, LM_COL_INTENSITY, &a, NULL);
        double dt = bench_now() - t0;
        if (dt < best)
            best = dt;
    }
    size_t bytes = n * sizeof(float);
    float *copy = malloc(bytes);
    for (size_t i = 0; i < n; i++)
        copy[i] = (float)i;
    double mem = bench_memsum_gbps(copy, bytes, 5);
    free(copy);
    double gbps = (double)bytes / best / 1e9;
    char b[32], g[32], m[32], ra[32];
    cell(b, sizeof b, "%.0f MB", (double)bytes / 1e6);
    cell(g, sizeof g, "%.2f", gbps);
    cell(m, sizeof m, "%.2f", mem);
    cell(ra, sizeof ra, "%.2f", gbps / mem);
    const char *row[] = {"sum(intensity) WHERE intensity > 1", b, g, m, ra, NULL};
    bench_table_row(row);
}

static void bench_knn(lm_db *db, const struct cols *c, float extent)
{
    const size_t k = 10, nq = 100000;
    float *q = malloc(nq * 3 * sizeof *q);
    for (size_t i = 0; i < nq * 3; i++)
        q[i] = bench_rngf(&rng) * extent;
    double t0 = bench_now();
    anchor_nanoflann *nf = anchor_nanoflann_build(c->x, c->y, c->z, c->n, 10, 1);
    double nf_build = bench_now() - t0;
    uint32_t idx[16];
    float d2[16];
    t0 = bench_now();
    double check = 0;
    for (size_t i = 0; i < nq; i++)
        check += anchor_nanoflann_knn(nf, &q[3 * i], k, idx, d2) ? d2[k - 1] : 0;
    double nf_dt = bench_now() - t0;
    double mine_check = 0;
    size_t mismatches = 0;
    t0 = bench_now();
    for (size_t i = 0; i < nq; i++) {
        struct lm_rows *r;
        lm_nearest(db, "f", &q[3 * i], k, 0, NULL, &r, NULL);
        mine_check += r->n == k ? (double)r->distance[k - 1] * r->distance[k - 1] : 0;
        lm_rows_free(r);
    }
    double mine_dt = bench_now() - t0;
    /* same answers: k-th distances agree on a sample of queries */
    for (size_t i = 0; i < 1000; i++) {
        struct lm_rows *r;
        lm_nearest(db, "f", &q[3 * i], k, 0, NULL, &r, NULL);
        anchor_nanoflann_knn(nf, &q[3 * i], k, idx, d2);
        if (fabsf(r->distance[k - 1] * r->distance[k - 1] - d2[k - 1]) > 1e-4f * d2[k - 1])
            mismatches++;
        lm_rows_free(r);
    }
    (void)check;
    (void)mine_check;
    char n[32], a[32], b[32], ra[32], mm[32];
    snprintf(n, sizeof n, "%zu", c->n);
    cell(a, sizeof a, "%.0f", (double)nq / mine_dt);
    cell(b, sizeof b, "%.0f", (double)nq / nf_dt);
    cell(ra, sizeof ra, "%.2f", nf_dt / mine_dt);
    snprintf(mm, sizeof mm, "%zu / 1000", mismatches);
    const char *row[] = {n, a, b, ra, mm, NULL};
    bench_table_row(row);
    fprintf(stderr, "nanoflann build %.2f s\n", nf_build);
    anchor_nanoflann_free(nf);
    free(q);
}

/* ---------------------------------------------------------------- voxels */

static void shuffle(int32_t *v, size_t n)
{
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = bench_rng(&rng) % (i + 1);
        for (int a = 0; a < 3; a++) {
            int32_t t = v[3 * i + a];
            v[3 * i + a] = v[3 * j + a];
            v[3 * j + a] = t;
        }
    }
}

static void bench_voxels(size_t n_vox)
{
    /* Clustered: dense 22^3 blocks scattered over a large space, one sample per voxel. */
    const int B = 22;
    size_t per = (size_t)B * B * B, blocks = (n_vox + per - 1) / per;
    size_t n = blocks * per;
    int32_t *ijk = malloc(n * 3 * sizeof *ijk);
    float *val = malloc(n * sizeof *val);
    struct cols c;
    cols_alloc(&c, n);
    size_t o = 0;
    for (size_t bl = 0; bl < blocks; bl++) {
        /* blocks on a 100 x 100 lattice with gaps, so that no voxel is set twice */
        int32_t base[3] = {(int32_t)(bl % 100) * 40 - 2000,
                           (int32_t)((bl / 100) % 100) * 40 - 2000,
                           (int32_t)(bl / 10000) * 40 - 200};
        for (int z = 0; z < B; z++)
            for (int y = 0; y < B; y++)
                for (int x = 0; x < B; x++, o++) {
                    ijk[3 * o] = base[0] + x;
                    ijk[3 * o + 1] = base[1] + y;
                    ijk[3 * o + 2] = base[2] + z;
                    val[o] = 1.0f;
                    c.x[o] = (float)ijk[3 * o] + 0.5f;
                    c.y[o] = (float)ijk[3 * o + 1] + 0.5f;
                    c.z[o] = (float)ijk[3 * o + 2] + 0.5f;
                    c.dx[o] = 0, c.dy[o] = 0, c.dz[o] = 1;
                    c.r[o] = c.g[o] = c.b[o] = 1;
                    c.in[o] = 1;
                    c.t[o] = 0;
                }
    }
    lm_db *db = open_db("f", 1.0f);
    for (size_t first = 0; first < n; first += 1 << 20) {
        size_t m = n - first < (1u << 20) ? n - first : 1u << 20;
        struct lm_batch b = batch_of(&c, first, m);
        lm_insert(db, "f", &b, NULL, NULL);
    }
    anchor_openvdb *vdb = anchor_openvdb_build(ijk, val, n);
    const char *cols[] = {"order", "voxels", "LumaDB ns/voxel", "OpenVDB ns/voxel",
                          "LumaDB / OpenVDB", NULL};
    bench_table_header("Voxel reads (cursor vs OpenVDB ValueAccessor), clustered", cols);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            shuffle(ijk, n);
        lm_voxel_cursor *cur;
        lm_voxel_cursor_open(db, "f", &cur, NULL);
        double t0 = bench_now();
        uint64_t sum = 0;
        for (size_t i = 0; i < n; i++)
            sum += lm_voxel_cursor_count(cur, &ijk[3 * i]);
        double mine = (bench_now() - t0) / (double)n * 1e9;
        lm_voxel_cursor_close(cur);
        t0 = bench_now();
        double vsum = anchor_openvdb_read_sum(vdb, ijk, n);
        double theirs = (bench_now() - t0) / (double)n * 1e9;
        if (sum != n || (size_t)vsum != n)
            fprintf(stderr, "voxel read check failed: %llu / %.0f of %zu\n",
                    (unsigned long long)sum, vsum, n);
        char nv[32], a[32], b[32], r[32];
        snprintf(nv, sizeof nv, "%zu", n);
        cell(a, sizeof a, "%.1f", mine);
        cell(b, sizeof b, "%.1f", theirs);
        cell(r, sizeof r, "%.2f", mine / theirs);
        const char *row[] = {pass ? "random" : "coherent", nv, a, b, r, NULL};
        bench_table_row(row);
    }
    struct lm_field_info info;
    lm_field_info(db, "f", &info, NULL);
    printf("\nvoxel memory: LumaDB %.1f B/voxel (whole field incl. samples), OpenVDB %.1f B/voxel\n",
           (double)info.memory_bytes / (double)n,
           (double)anchor_openvdb_memory_bytes(vdb) / (double)n);
    anchor_openvdb_free(vdb);
    lm_db_close(db);
    cols_free(&c);
    free(ijk);
    free(val);
}

int main(int argc, char **argv)
{
    if (argc > 2 && !strcmp(argv[1], "--ingest"))
        return ingest_only((size_t)strtoull(argv[2], NULL, 10));
    bool quick = argc > 1 && !strcmp(argv[1], "--quick");
    printf("# LumaDB engine benchmark (single thread)\n");
    size_t sizes[2] = {1000000, 10000000};
    int n_sizes = quick ? 1 : 2;
    const float extent = 100.0f;

    const char *icols[] = {"data", "samples", "batch", "ingest", NULL};
    bench_table_header("Ingest (lm_insert, in memory)", icols);
    struct cols c[2];
    lm_db *db[2];
    for (int s = 0; s < n_sizes; s++) {
        cols_alloc(&c[s], sizes[s]);
        cols_uniform(&c[s], extent);
        double rate;
        lm_db *small = bench_ingest(&c[s], 10000, "uniform", &rate);
        lm_db_close(small);
        db[s] = bench_ingest(&c[s], 100000, "uniform", &rate);
        /* sort every tail and build the kd-trees once, as after a bulk load */
        double t0 = bench_now();
        lm_field_optimize(db[s], "f", NULL);
        fprintf(stderr, "optimize of %zu samples: %.2f s\n", sizes[s], bench_now() - t0);
    }

    bench_box(db[0], extent, &c[0]); /* 1M points: the R*Tree build is slow beyond */
    bench_scan(db[n_sizes - 1], sizes[n_sizes - 1]);

    const char *kcols[] = {"points", "LumaDB q/s", "nanoflann q/s", "ratio", "k-th distance mismatches", NULL};
    bench_table_header("kNN k=10, uniform points, single thread", kcols);
    for (int s = 0; s < n_sizes; s++)
        bench_knn(db[s], &c[s], extent);

    const char *mcols[] = {"samples", "bytes/sample (all)", "columns", "voxel aggregates + kd-tree + octree", NULL};
    bench_table_header("Memory per sample", mcols);
    for (int s = 0; s < n_sizes; s++) {
        struct lm_field_info info;
        lm_field_info(db[s], "f", &info, NULL);
        char n[32], a[32], b[32], r[32];
        snprintf(n, sizeof n, "%zu", sizes[s]);
        cell(a, sizeof a, "%.1f", (double)info.memory_bytes / (double)sizes[s]);
        cell(b, sizeof b, "%.1f", 31.0);
        cell(r, sizeof r, "%.1f", (double)info.memory_bytes / (double)sizes[s] - 31.0);
        const char *row[] = {n, a, b, r, NULL};
        bench_table_row(row);
    }
    for (int s = 0; s < n_sizes; s++) {
        lm_db_close(db[s]);
        cols_free(&c[s]);
    }
    bench_voxels(quick ? 1000000 : 10000000);
    return 0;
}
