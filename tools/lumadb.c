/* lumadb.c - the `lumadb` command: subcommand dispatch and the demo job. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cmd_serve.h"
#include "commands.h"
#include "cluster.h"
#include "demo_scene.h"
#include "exec.h"
#include "format.h"
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
            "  serve [DIR] [--port P] [--bind ADDR] [--token T] [--demo]\n"
            "                          HTTP + WebSocket server (see 'lumadb serve --help')\n"
            "  view DIR FIELD [opts]   viewer window (--demo: the demo terrain; --help)\n"
            "  view ws://HOST:PORT/FIELD [opts]  a served field, live\n"
            "  snapshot DIR FIELD --out FILE.png [opts]  one frame offscreen to PNG\n"
            "                          (DIR FIELD or ws://HOST:PORT/FIELD)\n"
            "  node DIR --node-id N --peers ID=HOST:PORT/CLIENT,...\n"
            "                          run one replicated cluster node (lumadb node --help)\n"
            "  cluster status|add|remove ... --nodes HOST:PORT,...\n"
            "                          ask a cluster's nodes (lumadb cluster --help)\n"
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

    /* Example queries, in LQL through the executor, printed as the shell prints them. */
    float gx = 10.0f, gy = -5.0f, rx = -30.0f, ry = 12.0f;
    char q[8][400];
    snprintf(q[0], sizeof q[0], "SELECT count(*), avg(intensity), max(intensity) FROM %s "
             "WHERE INSIDE BOX (-20, -20, -60) TO (20, 20, 60)", field);
    snprintf(q[1], sizeof q[1], "SELECT x, y, z, intensity, distance FROM %s "
             "NEAREST 3 TO (%g, %g, %.3f)", field, (double)gx, (double)gy,
             (double)lm_demo_height(gx, gy));
    /* toward the sun's mirror direction, and away from it */
    snprintf(q[2], sizeof q[2], "RADIANCE %s AT (%g, %g, %.3f) TOWARD (-0.6, -0.1, 0.79)",
             field, (double)rx, (double)ry, (double)(lm_demo_height(rx, ry) + 0.2f));
    snprintf(q[3], sizeof q[3], "RADIANCE %s AT (%g, %g, %.3f) TOWARD (0.6, 0.1, 0.79)",
             field, (double)rx, (double)ry, (double)(lm_demo_height(rx, ry) + 0.2f));
    snprintf(q[4], sizeof q[4], "RAYCAST %s FROM (-120, -40, 80) DIR (0.8, 0.3, -0.52) "
             "MAX 500 RETURN FIRST", field);
    snprintf(q[5], sizeof q[5], "SELECT count(*) AS n, avg(r), avg(g), avg(b) FROM %s "
             "GROUP BY LOD 6 ORDER BY n DESC LIMIT 4", field);
    snprintf(q[6], sizeof q[6], "SELECT material, x, y, z FROM %s WHERE WITHIN 3 OF (0, 0, %.3f)"
             " AND (material = 1 OR NOT intensity < 0.5) ORDER BY z DESC LIMIT 3", field,
             (double)lm_demo_height(0, 0));
    snprintf(q[7], sizeof q[7], "EXPLAIN %.300s", q[0]);
    for (int k = 0; k < 8; k++) {
        struct lm_exec_result *res = NULL;
        printf("lumadb> %s;\n", q[k]);
        double t0 = now();
        rc = lm_exec_text(db, q[k], strlen(q[k]), NULL, &res, &err);
        double dt = now() - t0;
        if (rc) {
            lm_cli_error(stderr, "lumadb demo", q[k], &err, rc);
            lm_db_close(db);
            return 1;
        }
        lm_fmt_result(stdout, stdout, res, LM_FMT_TABLE);
        printf("Time: %.3f ms\n\n", dt * 1e3);
        lm_exec_result_free(res);
    }
    printf("more: lumadb shell %s\n", dir);
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
    if (!strcmp(cmd, "serve"))
        return lm_cmd_serve(argc - 2, argv + 2);
    if (!strcmp(cmd, "view"))
        return lm_cmd_view(argc - 2, argv + 2);
    if (!strcmp(cmd, "snapshot"))
        return lm_cmd_snapshot(argc - 2, argv + 2);
    if (!strcmp(cmd, "node"))
        return lm_cmd_node(argc - 2, argv + 2);
    if (!strcmp(cmd, "cluster"))
        return lm_cmd_cluster(argc - 2, argv + 2);
    fprintf(stderr, "lumadb: unknown command '%s' (try 'lumadb help')\n", cmd);
    return 2;
}
