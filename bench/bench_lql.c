/* bench_lql.c - the LQL layer: parse + plan time per statement kind, end-to-end latency
 * of queries through the executor on the demo scene (1M samples), and the import rate of
 * `lumadb import` for a 1M-point binary PLY (and the same points as CSV).
 *
 * usage: bench_lql [--side N] [--reps R] [--dir D]   (side^2 samples, default 1024) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "bench_util.h"
#include "cli.h"
#include "demo_scene.h"
#include "exec.h"
#include "lql.h"
#include "scan.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* ---------------------------------------------------------------- parse + plan */

static void parse_plan(lm_db *db, int reps)
{
    static const struct { const char *kind, *text; } st[] = {
        {"CREATE FIELD", "CREATE FIELD other (VOXEL 0.25, CHUNK 16, label i32, w f32)"},
        {"DROP FIELD", "DROP FIELD terrain"},
        {"SHOW FIELDS", "SHOW FIELDS"},
        {"DESCRIBE", "DESCRIBE terrain"},
        {"INSERT (10 rows)", "INSERT INTO terrain (x, y, z, intensity, material) VALUES "
                             "(1, 2, 3, 0.5, 1), (2, 3, 4, 0.5, 1), (3, 4, 5, 0.5, 1), "
                             "(4, 5, 6, 0.5, 1), (5, 6, 7, 0.5, 1), (6, 7, 8, 0.5, 1), "
                             "(7, 8, 9, 0.5, 1), (8, 9, 10, 0.5, 1), (9, 10, 11, 0.5, 1), "
                             "(10, 11, 12, 0.5, 1)"},
        {"SELECT box + filter", "SELECT x, y, z, intensity FROM terrain WHERE INSIDE BOX "
                                "(-20, -20, -60) TO (20, 20, 60) AND intensity > 0.5 "
                                "ORDER BY intensity DESC LIMIT 100"},
        {"SELECT OR / NOT", "SELECT count(*) FROM terrain WHERE (WITHIN 10 OF (0, 0, 0) OR "
                            "WITHIN 10 OF (50, 50, 0)) AND NOT material = 2"},
        {"SELECT aggregates", "SELECT count(*), sum(intensity), avg(r), min(t), max(t) FROM "
                              "terrain WHERE t BETWEEN 0 AND 1e12"},
        {"SELECT GROUP BY", "SELECT count(*), avg(intensity) AS i FROM terrain GROUP BY LOD 3 "
                            "ORDER BY i DESC LIMIT 10"},
        {"SELECT NEAREST", "SELECT * FROM terrain NEAREST 10 TO (10, -5, 6) WHERE "
                           "intensity > 0.1"},
        {"SELECT IN FRUSTUM", "SELECT x, y FROM terrain WHERE IN FRUSTUM (EYE (0, 0, 80), "
                              "TARGET (0, 0, 0), UP (0, 1, 0), FOV 60, ASPECT 1.5, NEAR 1, "
                              "FAR 200)"},
        {"RAYCAST", "RAYCAST terrain FROM (-120, -40, 80) DIR (0.8, 0.3, -0.52) MAX 500"},
        {"RADIANCE", "RADIANCE terrain AT (-30, 12, -19.055) TOWARD (-0.6, -0.1, 0.79)"},
        {"DELETE", "DELETE FROM terrain WHERE WITHIN 1 OF (0, 0, 0) OR t < 0"},
        {"UPDATE", "UPDATE terrain SET material = 3, intensity = 1 WHERE INSIDE BOX "
                   "(0, 0, -50) TO (1, 1, 50)"},
        {"EXPLAIN SELECT", "EXPLAIN SELECT count(*) FROM terrain WHERE x > 0 OR y > 0"},
    };
    static const char *const cols[] = {"statement", "parse (µs)", "parse + plan (µs)", NULL};
    bench_table_header("LQL parse + plan per statement (median of runs; plan = names "
                       "resolved, WHERE compiled and pushed down, nothing run)", cols);
    int runs = reps * 200;
    double *tp = malloc((size_t)runs * sizeof *tp), *tq = malloc((size_t)runs * sizeof *tq);
    for (size_t k = 0; k < sizeof st / sizeof st[0]; k++) {
        size_t len = strlen(st[k].text);
        for (int r = 0; r < runs; r++) {
            struct lm_lql_stmt *s;
            double t0 = bench_now();
            if (lm_lql_parse(st[k].text, len, &s, NULL))
                abort();
            double t1 = bench_now();
            struct lm_error err;
            int rc = lm_exec_check(db, s, &err);
            double t2 = bench_now();
            if (rc) {
                fprintf(stderr, "%s: %s\n", st[k].text, err.message);
                abort();
            }
            lm_lql_free(s);
            tp[r] = (t1 - t0) * 1e6;
            tq[r] = (t2 - t0) * 1e6;
        }
        char a[32], b[32];
        snprintf(a, sizeof a, "%.2f", median(tp, runs));
        snprintf(b, sizeof b, "%.2f", median(tq, runs));
        bench_table_row((const char *const[]){st[k].kind, a, b, NULL});
    }
    free(tp);
    free(tq);
}

/* ---------------------------------------------------------------- end to end */

static void end_to_end(lm_db *db, int reps)
{
    static const struct { const char *what, *text; } q[] = {
        {"aggregate, box (lm_aggregate)",
         "SELECT count(*), avg(intensity), max(intensity) FROM terrain WHERE INSIDE BOX "
         "(-20, -20, -60) TO (20, 20, 60)"},
        {"rows, box + filter (lm_select)",
         "SELECT x, y, z, intensity FROM terrain WHERE INSIDE BOX (-20, -20, -60) TO "
         "(20, 20, 60) AND intensity > 0.5"},
        {"rows, ORDER BY + LIMIT",
         "SELECT x, y, z, intensity FROM terrain WHERE WITHIN 30 OF (0, 0, 0) ORDER BY "
         "intensity DESC LIMIT 10"},
        {"count, OR of two spheres (per sample)",
         "SELECT count(*) FROM terrain WHERE WITHIN 15 OF (0, 0, 0) OR WITHIN 15 OF "
         "(60, 60, 0)"},
        {"count, NOT of an OR of comparisons (pushed down)",
         "SELECT count(*) FROM terrain WHERE NOT (material = 1 OR intensity < 0.2)"},
        {"count, NOT of a sphere (chunk stream, every sample)",
         "SELECT count(*) FROM terrain WHERE NOT WITHIN 50 OF (0, 0, 0)"},
        {"aggregate, full scan (lm_aggregate)",
         "SELECT count(*), sum(intensity), min(t), max(t) FROM terrain WHERE intensity > 0.5"},
        {"NEAREST 10", "SELECT * FROM terrain NEAREST 10 TO (10, -5, 6.7)"},
        {"NEAREST 10 with a residual WHERE",
         "SELECT x, y, z, distance FROM terrain NEAREST 10 TO (10, -5, 6.7) WHERE "
         "material = 2 OR intensity > 0.9"},
        {"GROUP BY LOD 5 (stored voxels)",
         "SELECT count(*), avg(r), sum(intensity) FROM terrain GROUP BY LOD 5"},
        {"GROUP BY VOXEL in a box (per sample)",
         "SELECT count(*), max(intensity) FROM terrain WHERE INSIDE BOX (-10, -10, -60) TO "
         "(10, 10, 60) GROUP BY VOXEL"},
        {"GROUP BY CHUNK (chunk stream)", "SELECT count(*), avg(intensity) FROM terrain "
                                          "WHERE material != 0 GROUP BY CHUNK"},
        {"RAYCAST FIRST", "RAYCAST terrain FROM (-120, -40, 80) DIR (0.8, 0.3, -0.52) MAX 500"},
        {"RAYCAST ALL", "RAYCAST terrain FROM (-120, -40, 80) DIR (0.8, 0.3, -0.52) MAX 500 "
                        "RETURN ALL"},
        {"RADIANCE", "RADIANCE terrain AT (-30, 12, -19.055) TOWARD (-0.6, -0.1, 0.79)"},
        {"EXPLAIN (octree walk + sampled estimate)",
         "EXPLAIN SELECT count(*) FROM terrain WHERE WITHIN 15 OF (0, 0, 0) OR "
         "WITHIN 15 OF (60, 60, 0)"},
    };
    static const char *const cols[] = {"query", "rows", "median (ms)", "best (ms)", NULL};
    bench_table_header("End-to-end latency through lm_exec_text on the demo scene (parse, "
                       "plan, run, result table)", cols);
    double *t = malloc((size_t)reps * sizeof *t);
    for (size_t k = 0; k < sizeof q / sizeof q[0]; k++) {
        size_t rows = 0;
        for (int r = 0; r < reps; r++) {
            struct lm_exec_result *res = NULL;
            struct lm_error err;
            double t0 = bench_now();
            if (lm_exec_text(db, q[k].text, strlen(q[k].text), NULL, &res, &err)) {
                fprintf(stderr, "%s: %s\n", q[k].text, err.message);
                abort();
            }
            t[r] = (bench_now() - t0) * 1e3;
            rows = res->n_rows;
            lm_exec_result_free(res);
        }
        double best = t[0];
        for (int r = 1; r < reps; r++)
            best = t[r] < best ? t[r] : best;
        char a[32], b[32], c[32];
        snprintf(a, sizeof a, "%zu", rows);
        snprintf(b, sizeof b, "%.3f", median(t, reps));
        snprintf(c, sizeof c, "%.3f", best);
        bench_table_row((const char *const[]){q[k].what, a, b, c, NULL});
    }
    free(t);
}

/* ---------------------------------------------------------------- import */

static void write_files(const struct lm_demo_scene *sc, const char *ply, const char *csv)
{
    size_t n = (size_t)sc->side * sc->side, step = 65536;
    float *f = malloc(10 * step * sizeof *f);
    int64_t *t = malloc(step * sizeof *t);
    uint8_t *m = malloc(step);
    FILE *fp = fopen(ply, "wb"), *fc = fopen(csv, "w");
    fprintf(fp, "ply\nformat binary_little_endian 1.0\nelement vertex %zu\n"
                "property float x\nproperty float y\nproperty float z\n"
                "property float nx\nproperty float ny\nproperty float nz\n"
                "property uchar red\nproperty uchar green\nproperty uchar blue\n"
                "property float intensity\nproperty uchar material\nend_header\n", n);
    fprintf(fc, "x,y,z,dx,dy,dz,r,g,b,intensity,material:u8\n");
    for (size_t first = 0; first < n; first += step) {
        size_t k = n - first < step ? n - first : step;
        float *c[10];
        for (int j = 0; j < 10; j++)
            c[j] = f + (size_t)j * step;
        lm_demo_generate(sc, first, k, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8],
                         c[9], t, m);
        for (size_t i = 0; i < k; i++) {
            unsigned char rec[33];
            for (int j = 0; j < 6; j++)
                memcpy(rec + 4 * j, &c[j][i], 4);
            for (int j = 0; j < 3; j++)
                rec[24 + j] = (unsigned char)lrintf(c[6 + j][i] * 255.0f);
            memcpy(rec + 27, &c[9][i], 4);
            rec[31] = m[i];
            fwrite(rec, 1, 32, fp);
            fprintf(fc, "%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%u\n",
                    (double)c[0][i], (double)c[1][i], (double)c[2][i], (double)c[3][i],
                    (double)c[4][i], (double)c[5][i], (double)c[6][i], (double)c[7][i],
                    (double)c[8][i], (double)c[9][i], m[i]);
        }
    }
    fclose(fp);
    fclose(fc);
    free(f);
    free(t);
    free(m);
}

static void import_rate(const char *dir, const struct lm_demo_scene *sc, int reps)
{
    char ply[512], csv[512], db[512];
    snprintf(ply, sizeof ply, "%s/points.ply", dir);
    snprintf(csv, sizeof csv, "%s/points.csv", dir);
    write_files(sc, ply, csv);
    size_t n = (size_t)sc->side * sc->side;
    static const char *const cols[] = {"file", "samples", "MB", "import (s)", "samples/s",
                                       "with open + checkpoint on close (s)", NULL};
    bench_table_header("lumadb import (field created with voxel 0.5, batches of 65536 "
                       "through lm_insert with group commit; medians)", cols);
    const char *files[2] = {ply, csv}, *names[2] = {"binary PLY", "CSV"};
    double *t = malloc((size_t)reps * sizeof *t), *ti = malloc((size_t)reps * sizeof *ti);
    char summary[512];
    snprintf(summary, sizeof summary, "%s/summary.txt", dir);
    fflush(stdout);
    int saved = dup(1);
    for (int k = 0; k < 2; k++) {
        for (int r = 0; r < reps; r++) {
            snprintf(db, sizeof db, "%s/import-%d-%d", dir, k, r);
            char *argv[] = {db, "points", (char *)files[k], "--voxel", "0.5", NULL};
            int out = open(summary, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            dup2(out, 1); /* the command's summary line: "... in X s (...)" */
            double t0 = bench_now();
            int rc = lm_cmd_import(5, argv);
            t[r] = bench_now() - t0;
            fflush(stdout);
            dup2(saved, 1);
            close(out);
            FILE *f = fopen(summary, "r");
            char line[512] = "";
            if (rc || !f || !fgets(line, sizeof line, f))
                abort();
            fclose(f);
            const char *in = strstr(line, " in ");
            ti[r] = in ? atof(in + 4) : t[r];
            char cmd[600];
            snprintf(cmd, sizeof cmd, "rm -rf '%s'", db);
            if (system(cmd))
                abort();
        }
        FILE *f = fopen(files[k], "rb");
        fseek(f, 0, SEEK_END);
        double mb = (double)ftell(f) / 1e6;
        fclose(f);
        double med = median(t, reps), imp = median(ti, reps);
        char a[32], b[32], c[32], d[32], e[32];
        snprintf(a, sizeof a, "%zu", n);
        snprintf(b, sizeof b, "%.1f", mb);
        snprintf(c, sizeof c, "%.3f", imp);
        snprintf(d, sizeof d, "%.0f", (double)n / imp);
        snprintf(e, sizeof e, "%.3f", med);
        bench_table_row((const char *const[]){names[k], a, b, c, d, e, NULL});
    }
    free(t);
    free(ti);
    close(saved);
    unlink(summary);
    unlink(ply);
    unlink(csv);
}

int main(int argc, char **argv)
{
    struct lm_demo_scene sc = {.side = 1024, .seed = 42};
    int reps = 5;
    char dir[256] = "/tmp/lumadb-bench-lql-XXXXXX";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--side") && i + 1 < argc)
            sc.side = (uint32_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            snprintf(dir, sizeof dir, "%s/lumadb-bench-lql-XXXXXX", argv[++i]);
    }
    if (!mkdtemp(dir) || reps < 1)
        return 2;
    char dbdir[300];
    snprintf(dbdir, sizeof dbdir, "%s/db", dir);
    lm_db *db;
    struct lm_db_opts o = {.create = true, .sync = LM_SYNC_NONE};
    struct lm_error err;
    if (lm_db_open(dbdir, &o, &db, &err) || lm_demo_load(db, "terrain", &sc, 65536, &err) ||
        lm_field_optimize(db, "terrain", &err)) {
        fprintf(stderr, "setting up the demo scene: %s\n", err.message);
        return 1;
    }
    printf("# LQL benchmark: demo scene of %u samples, %d runs per row, scan kernel %s\n",
           sc.side * sc.side, reps, lm_scan_best()->name);
    parse_plan(db, reps);
    end_to_end(db, reps);
    lm_db_close(db);
    import_rate(dir, &sc, reps < 3 ? reps : 3);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) ? 1 : 0;
}
