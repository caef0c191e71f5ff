/* bench_render.c - viewer frame rate on the demo terrain, offscreen (EGL surfaceless,
 * Mesa llvmpipe), through the same renderer as `lumadb view`.
 *
 * For each size: generate the demo terrain into a temporary directory, then measure
 * the time from lm_render_open to the first frame (interactive loading: top tiles
 * plus the per-frame load budget) and to the first complete frame, the frame rate
 * along the built-in camera tour (tiles loading as the camera moves), and the steady
 * frame rate at the home view once everything is resident. Prints markdown tables.
 *
 *   bench_render [--sides 1024,3163] [--frames 120] [--size 1280x720] [--cubes]
 *                [--budget N] [--pixel-error PX] [--mode radiance|colour|intensity|time]
 */
#include <ftw.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "context.h"
#include "demo_scene.h"
#include "render.h"

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int cmp_double(const void *pa, const void *pb)
{
    double a = *(const double *)pa, b = *(const double *)pb;
    return a < b ? -1 : a > b;
}

struct result {
    uint64_t samples, chunks, voxels_field;
    double gen_s, first_ms, complete_ms;
    double tour_fps, tour_mean_ms, tour_p95_ms, tour_cpu_ms, tour_voxels;
    double steady_fps, steady_ms, steady_cpu_ms;
    uint64_t steady_voxels;
    uint32_t steady_lmin, steady_lmax;
};

static int fail(const char *what, int rc, const struct lm_error *err)
{
    fprintf(stderr, "bench_render: %s: %s\n", what,
            err && err->message[0] ? err->message : lm_strerror(rc));
    return 1;
}

/* Draws `n` frames with cameras from cam_at; fills times (ms, wall) and cpu total. */
static int frames(lm_render_ctx *ctx, lm_render *r, const struct lm_render_settings *set,
                  const struct lm_render_camera *home, bool tour, int n, double *times,
                  double *cpu_s, double *voxels, struct lm_render_stats *last)
{
    struct lm_error err = {0};
    double c0 = cpu_now(), vox = 0;
    for (int i = 0; i < n; i++) {
        struct lm_render_camera cam = *home;
        if (tour)
            lm_render_camera_tour(home, n > 1 ? (float)i / (float)(n - 1) : 0.0f, &cam);
        int w, h, rc;
        lm_render_ctx_begin(ctx, &w, &h);
        double t0 = bench_now();
        if ((rc = lm_render_frame(r, &cam, set, w, h, last, &err)) ||
            (rc = lm_render_ctx_present(ctx, &err)))
            return fail("frame", rc, &err);
        times[i] = (bench_now() - t0) * 1e3;
        vox += (double)last->voxels;
    }
    *cpu_s = cpu_now() - c0;
    *voxels = vox / n;
    return 0;
}

static int run(lm_render_ctx *ctx, uint32_t side, int n_frames,
               const struct lm_render_opts *opts, enum lm_render_shape shape,
               enum lm_render_color color, struct result *res)
{
    memset(res, 0, sizeof *res);
    char dir[] = "/tmp/lumadb-bench-render-XXXXXX";
    if (!mkdtemp(dir))
        return fail("mkdtemp", -1, NULL);
    struct lm_error err = {0};
    lm_db *db = NULL;
    lm_render *r = NULL;
    double *times = calloc((size_t)n_frames, sizeof *times);
    struct lm_demo_scene sc = {.side = side, .seed = 42};
    double t0 = bench_now();
    int rc = lm_db_open(dir, NULL, &db, &err);
    if (rc || (rc = lm_demo_load(db, "terrain", &sc, 65536, &err))) {
        rc = fail("demo", rc, &err);
        goto done;
    }
    res->gen_s = bench_now() - t0;
    struct lm_field_info info;
    lm_field_info(db, "terrain", &info, NULL);
    res->samples = info.n_samples;
    res->chunks = info.n_chunks;
    res->voxels_field = info.n_voxels;

    struct lm_render_settings set;
    lm_render_settings_default(&set);
    set.shape = shape;
    set.color = color;
    struct lm_render_stats st;
    struct lm_render_camera home;
    float bmin[3], bmax[3];
    static const float from[3] = {-0.55f, -0.8f, 0.65f}, up[3] = {0, 0, 1};
    int w, h;
    lm_render_ctx_begin(ctx, &w, &h);

    /* open -> first frame, then -> first complete frame */
    t0 = bench_now();
    if ((rc = lm_render_open(db, "terrain", opts, &r, &err)) ||
        (rc = lm_render_bounds(r, bmin, bmax, &err))) {
        rc = fail("open", rc, &err);
        goto done;
    }
    lm_render_camera_frame(&home, bmin, bmax, from, up, 50.0f, (float)w / (float)h);
    if ((rc = lm_render_frame(r, &home, &set, w, h, &st, &err)) ||
        (rc = lm_render_ctx_present(ctx, &err))) {
        rc = fail("first frame", rc, &err);
        goto done;
    }
    res->first_ms = (bench_now() - t0) * 1e3;
    set.complete = true;
    if ((rc = lm_render_frame(r, &home, &set, w, h, &st, &err)) ||
        (rc = lm_render_ctx_present(ctx, &err))) {
        rc = fail("complete frame", rc, &err);
        goto done;
    }
    res->complete_ms = (bench_now() - t0) * 1e3;
    set.complete = false;

    /* the tour: tiles load as the camera moves */
    double cpu, vox;
    if ((rc = frames(ctx, r, &set, &home, true, n_frames, times, &cpu, &vox, &st)))
        goto done;
    double sum = 0;
    for (int i = 0; i < n_frames; i++)
        sum += times[i];
    qsort(times, (size_t)n_frames, sizeof *times, cmp_double);
    res->tour_mean_ms = sum / n_frames;
    res->tour_fps = 1e3 / res->tour_mean_ms;
    res->tour_p95_ms = times[(int)((n_frames - 1) * 0.95)];
    res->tour_cpu_ms = cpu * 1e3 / n_frames;
    res->tour_voxels = vox;

    /* steady state at home: everything resident */
    set.complete = true;
    lm_render_frame(r, &home, &set, w, h, &st, &err);
    set.complete = false;
    int n_steady = n_frames < 30 ? n_frames : 30;
    if ((rc = frames(ctx, r, &set, &home, false, n_steady, times, &cpu, &vox, &st)))
        goto done;
    sum = 0;
    for (int i = 0; i < n_steady; i++)
        sum += times[i];
    res->steady_ms = sum / n_steady;
    res->steady_fps = 1e3 / res->steady_ms;
    res->steady_cpu_ms = cpu * 1e3 / n_steady;
    res->steady_voxels = st.voxels;
    res->steady_lmin = st.level_min;
    res->steady_lmax = st.level_max;
done:
    lm_render_close(r);
    lm_db_close(db);
    free(times);
    nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    return rc;
}

int main(int argc, char **argv)
{
    uint32_t sides[8] = {1024, 3163};
    int n_sides = 2, n_frames = 120, width = 1280, height = 720;
    struct lm_render_opts opts = {0};
    enum lm_render_shape shape = LM_RENDER_SPLATS;
    enum lm_render_color color = LM_RENDER_COLOR_RADIANCE;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(argv[i], "--sides")) {
            n_sides = 0;
            for (char *p = argv[++i]; *p && n_sides < 8; p += *p == ',')
                sides[n_sides++] = (uint32_t)strtoul(p, &p, 10);
        } else if (!strcmp(argv[i], "--frames")) {
            n_frames = atoi(v), i++;
        } else if (!strcmp(argv[i], "--size")) {
            sscanf(v, "%dx%d", &width, &height), i++;
        } else if (!strcmp(argv[i], "--budget")) {
            opts.voxel_budget = strtoull(v, NULL, 10), i++;
        } else if (!strcmp(argv[i], "--pixel-error")) {
            opts.pixel_error = strtof(v, NULL), i++;
        } else if (!strcmp(argv[i], "--mode") && lm_render_color_parse(v) >= 0) {
            color = (enum lm_render_color)lm_render_color_parse(v), i++;
        } else if (!strcmp(argv[i], "--cubes")) {
            shape = LM_RENDER_CUBES;
        } else {
            fprintf(stderr, "usage: bench_render [--sides 1024,3163] [--frames N] "
                            "[--size WxH] [--budget N] [--pixel-error PX] [--cubes]\n"
                            "                    [--mode radiance|colour|intensity|time]\n");
            return 2;
        }
    }
    if (n_frames < 2 || width < 16 || height < 16)
        return fprintf(stderr, "bench_render: bad --frames or --size\n"), 2;
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    struct lm_error err = {0};
    lm_render_ctx *ctx;
    struct lm_render_ctx_opts co = {.kind = LM_RENDER_CTX_OFFSCREEN, .width = width,
                                    .height = height};
    int rc = lm_render_ctx_open(&co, &ctx, &err);
    if (rc)
        return fail("context", rc, &err);
    char title[256];
    snprintf(title, sizeof title, "viewer on the demo terrain: %s, %dx%d, %s, %s, %d-frame tour",
             lm_render_ctx_renderer(ctx), width, height,
             shape == LM_RENDER_CUBES ? "cubes" : "splats", lm_render_color_name(color),
             n_frames);
    static const char *const cols[] = {
        "samples", "chunks / voxels", "generate (s)", "open -> first frame (ms)",
        "open -> complete frame (ms)", "tour fps", "tour frame ms (mean / p95)",
        "tour CPU ms / frame", "tour voxels drawn (mean)", "steady fps (home view)",
        "steady CPU ms / frame", "steady voxels (LOD)", NULL};
    bench_table_header(title, cols);
    for (int i = 0; i < n_sides && !rc; i++) {
        struct result r;
        if ((rc = run(ctx, sides[i], n_frames, &opts, shape, color, &r)))
            break;
        char c[12][64];
        snprintf(c[0], 64, "%.1fM", (double)r.samples / 1e6);
        snprintf(c[1], 64, "%llu / %llu", (unsigned long long)r.chunks,
                 (unsigned long long)r.voxels_field);
        snprintf(c[2], 64, "%.1f", r.gen_s);
        snprintf(c[3], 64, "%.0f", r.first_ms);
        snprintf(c[4], 64, "%.0f", r.complete_ms);
        snprintf(c[5], 64, "%.1f", r.tour_fps);
        snprintf(c[6], 64, "%.1f / %.1f", r.tour_mean_ms, r.tour_p95_ms);
        snprintf(c[7], 64, "%.1f", r.tour_cpu_ms);
        snprintf(c[8], 64, "%.0f", r.tour_voxels);
        snprintf(c[9], 64, "%.1f", r.steady_fps);
        snprintf(c[10], 64, "%.1f", r.steady_cpu_ms);
        snprintf(c[11], 64, "%llu (%u-%u)", (unsigned long long)r.steady_voxels, r.steady_lmin,
                 r.steady_lmax);
        const char *cells[13] = {c[0], c[1], c[2], c[3], c[4],  c[5], c[6],
                                 c[7], c[8], c[9], c[10], c[11], NULL};
        bench_table_row(cells);
    }
    lm_render_ctx_close(ctx);
    return rc;
}
