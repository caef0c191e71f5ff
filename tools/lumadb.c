/* lumadb.c - the `lumadb` command: subcommand dispatch and the demo job. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "demo_scene.h"
#include "lumadb.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int usage(FILE *to)
{
    fprintf(to,
            "usage: lumadb <command> [args]\n"
            "\n"
            "commands:\n"
            "  demo [DIR] [--side N]   generate the demo terrain (N^2 samples, default\n"
            "                          1024^2) in DIR (default data/demo) and query it\n"
            "  shell [DIR]             interactive LQL shell (history, completion)\n"
            "  query [DIR] \"LQL\"       run statements; '-' reads them from stdin\n"
            "  import [DIR] FIELD FILE load a PLY, CSV or XYZ file into FIELD\n"
            "  export [DIR] FIELD FILE write FIELD (or --where \"...\") as PLY or CSV\n"
            "  help                    this text\n"
            "\n"
            "DIR defaults to " LM_CLI_DEFAULT_DIR "; 'lumadb COMMAND --help' for details.\n");
    return to == stderr ? 2 : 0;
}

static int fail(const char *what, int rc, const struct lm_error *err)
{
    fprintf(stderr, "lumadb: %s: %s\n", what, err && err->message[0] ? err->message
                                                                      : lm_strerror(rc));
    return 1;
}

static int cmd_demo(int argc, char **argv)
{
    const char *dir = "data/demo";
    struct lm_demo_scene sc = {.side = 1024, .seed = 42};
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--side") && i + 1 < argc)
            sc.side = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--help"))
            return usage(stdout);
        else if (argv[i][0] == '-')
            return fprintf(stderr, "lumadb demo: unknown option '%s'\n", argv[i]), 2;
        else
            dir = argv[i];
    }
    if (sc.side < 2 || sc.side > 8192)
        return fprintf(stderr, "lumadb demo: --side must be in [2, 8192]\n"), 2;
    struct lm_error err = {0};
    lm_db *db;
    int rc = lm_db_open(dir, NULL, &db, &err);
    if (rc)
        return fail(dir, rc, &err);
    const char *field = "terrain";
    struct lm_field_info info;
    if (lm_field_info(db, field, &info, NULL) == 0) {
        printf("field '%s' is already in %s\n", field, dir);
    } else {
        double t0 = now();
        rc = lm_demo_load(db, field, &sc, 65536, &err);
        if (rc) {
            lm_db_close(db);
            return fail("generating the demo scene", rc, &err);
        }
        double dt = now() - t0;
        printf("generated %u samples of a lit terrain into %s/%s in %.2f s (%.2f M samples/s)\n",
               sc.side * sc.side, dir, field, dt, sc.side * (double)sc.side / dt / 1e6);
    }
    lm_field_info(db, field, &info, NULL);
    printf("field %s: %llu samples, %llu chunks, %llu voxels, %.1f MiB in memory "
           "(%.1f bytes/sample), bounds (%.1f, %.1f, %.1f) to (%.1f, %.1f, %.1f)\n\n",
           field, (unsigned long long)info.n_samples, (unsigned long long)info.n_chunks,
           (unsigned long long)info.n_voxels, (double)info.memory_bytes / 1048576.0,
           (double)info.memory_bytes / (double)(info.n_samples ? info.n_samples : 1),
           (double)info.bounds_min[0], (double)info.bounds_min[1], (double)info.bounds_min[2],
           (double)info.bounds_max[0], (double)info.bounds_max[1], (double)info.bounds_max[2]);

    /* 1. aggregate over a box */
    struct lm_selection box = {.region = {.kind = LM_REGION_BOX,
                                          .min = {-20, -20, -60}, .max = {20, 20, 60}}};
    struct lm_aggregate agg;
    double t0 = now();
    if ((rc = lm_aggregate(db, field, &box, LM_COL_INTENSITY, &agg, &err)))
        return lm_db_close(db), fail("aggregate", rc, &err);
    printf("query: SELECT count(*), avg(intensity), max(intensity) FROM terrain\n"
           "       WHERE INSIDE BOX (-20,-20,-60) TO (20,20,60)\n"
           "  -> count %llu, avg %.4f, max %.4f   (%.2f ms)\n\n",
           (unsigned long long)agg.count, agg.avg, agg.max, (now() - t0) * 1e3);

    /* 2. nearest neighbours of a point on the ground */
    float p[3] = {10.0f, -5.0f, lm_demo_height(10.0f, -5.0f)};
    struct lm_rows *rows = NULL;
    t0 = now();
    if ((rc = lm_nearest(db, field, p, 3, 0, NULL, &rows, &err)))
        return lm_db_close(db), fail("nearest", rc, &err);
    printf("query: SELECT x, y, z, intensity FROM terrain NEAREST 3 TO (%.2f, %.2f, %.2f)\n",
           (double)p[0], (double)p[1], (double)p[2]);
    for (size_t i = 0; i < rows->n; i++)
        printf("  -> (%.3f, %.3f, %.3f) intensity %.4f at distance %.4f\n", (double)rows->x[i],
               (double)rows->y[i], (double)rows->z[i], (double)rows->intensity[i],
               (double)rows->distance[i]);
    printf("  (%.3f ms)\n\n", (now() - t0) * 1e3);
    lm_rows_free(rows);

    /* 3. direction-dependent radiance: toward the sun's mirror direction and away */
    float toward[3] = {-0.6f, -0.1f, 0.79f}, away[3] = {0.6f, 0.1f, 0.79f};
    for (int k = 0; k < 3; k++) {
        float l1 = sqrtf(toward[0] * toward[0] + toward[1] * toward[1] + toward[2] * toward[2]);
        toward[k] /= l1 > 0 ? 1.0f : 1.0f;
    }
    float n1 = sqrtf(toward[0] * toward[0] + toward[1] * toward[1] + toward[2] * toward[2]);
    float n2 = sqrtf(away[0] * away[0] + away[1] * away[1] + away[2] * away[2]);
    for (int k = 0; k < 3; k++) {
        toward[k] /= n1;
        away[k] /= n2;
    }
    float q[3] = {-30.0f, 12.0f, lm_demo_height(-30.0f, 12.0f) + 0.2f}, rgb[3], w;
    const float *dirs[2] = {toward, away};
    for (int k = 0; k < 2; k++) {
        if ((rc = lm_radiance(db, field, q, dirs[k], rgb, &w, &err)))
            return lm_db_close(db), fail("radiance", rc, &err);
        printf("query: RADIANCE terrain AT (%.1f, %.1f, %.2f) TOWARD (%.2f, %.2f, %.2f)\n"
               "  -> rgb (%.4f, %.4f, %.4f)\n",
               (double)q[0], (double)q[1], (double)q[2], (double)dirs[k][0],
               (double)dirs[k][1], (double)dirs[k][2], (double)rgb[0], (double)rgb[1],
               (double)rgb[2]);
    }
    printf("\n");

    /* 4. a ray from the sky */
    float o[3] = {-120.0f, -40.0f, 80.0f}, d[3] = {0.8f, 0.3f, -0.52f};
    float dl = sqrtf(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
    for (int k = 0; k < 3; k++)
        d[k] /= dl;
    struct lm_ray_result *ray = NULL;
    t0 = now();
    if ((rc = lm_raycast(db, field, o, d, 500.0f, LM_RAY_FIRST, &ray, &err)))
        return lm_db_close(db), fail("raycast", rc, &err);
    printf("query: RAYCAST terrain FROM (%.0f, %.0f, %.0f) DIR (%.3f, %.3f, %.3f) RETURN FIRST\n",
           (double)o[0], (double)o[1], (double)o[2], (double)d[0], (double)d[1], (double)d[2]);
    if (ray->n_hits)
        printf("  -> hit voxel (%d, %d, %d) at distance %.3f, %u samples, mean colour "
               "(%.3f, %.3f, %.3f)   (%.3f ms)\n",
               ray->hits[0].voxel[0], ray->hits[0].voxel[1], ray->hits[0].voxel[2],
               (double)ray->hits[0].t_enter, ray->hits[0].agg.count,
               (double)ray->hits[0].agg.mean_r, (double)ray->hits[0].agg.mean_g,
               (double)ray->hits[0].agg.mean_b, (now() - t0) * 1e3);
    else
        printf("  -> no hit\n");
    lm_ray_result_free(ray);
    lm_db_close(db);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage(stderr);
    const char *cmd = argv[1];
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h"))
        return usage(stdout);
    if (!strcmp(cmd, "demo"))
        return cmd_demo(argc - 2, argv + 2);
    if (!strcmp(cmd, "shell"))
        return lm_cmd_shell(argc - 2, argv + 2);
    if (!strcmp(cmd, "query"))
        return lm_cmd_query(argc - 2, argv + 2);
    if (!strcmp(cmd, "import"))
        return lm_cmd_import(argc - 2, argv + 2);
    if (!strcmp(cmd, "export"))
        return lm_cmd_export(argc - 2, argv + 2);
    fprintf(stderr, "lumadb: unknown command '%s' (try 'lumadb help')\n", cmd);
    return 2;
}
