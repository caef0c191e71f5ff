/* test_render.c - the viewer's renderer drawn offscreen (EGL surfaceless, Mesa
 * llvmpipe): known voxels appear at their projected positions in their colours over the
 * background, for splats and cubes and from two cameras; radiance follows the voxel's
 * SH toward the eye; attribute modes follow the ramp; LOD coarsens with distance under
 * the budget; inserts and deletes show at the next frame; the cache stays under its
 * memory budget; shader errors name the file and line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <cglm/cglm.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "alloc.h"
#include "context.h"
#include "gl.h"
#include "lumadb.h"
#include "render/known_scene.h"
#include "render.h"
#include "sh.h"

#define W 320
#define H 240
#define TOL 3 /* per channel, in 1/255 */

static lm_render_ctx *ctx;

struct fixture {
    char dir[64];
    lm_db *db;
    unsigned char rgb[W * H * 3];
};

/* ---------------------------------------------------------------- helpers */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int group_setup(void **state)
{
    (void)state;
    struct lm_error err = {0};
    struct lm_render_ctx_opts o = {.kind = LM_RENDER_CTX_OFFSCREEN, .width = W, .height = H};
    int rc = lm_render_ctx_open(&o, &ctx, &err);
    if (rc)
        fprintf(stderr, "offscreen GL context: %s\n", err.message);
    return rc;
}

static int group_teardown(void **state)
{
    (void)state;
    lm_render_ctx_close(ctx);
    return 0;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/lumadb-render-XXXXXX");
    if (!mkdtemp(f->dir) || lm_db_open(f->dir, NULL, &f->db, NULL))
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    lm_db_close(f->db);
    nftw(f->dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void make_field(lm_db *db, float voxel_size)
{
    struct lm_field_opts o = {.voxel_size = voxel_size};
    assert_int_equal(lm_field_create(db, "f", &o, NULL), 0);
}

/* Inserts n samples inside level-0 voxel v (voxel size vs) with one colour, intensity,
 * time and direction (NULL = +z). */
static void put_voxel(lm_db *db, float vs, const int v[3], const float rgb[3], float inten,
                      int64_t t, const float dir[3], int n)
{
    float x[16], y[16], z[16], r[16], g[16], b[16], in[16], dx[16], dy[16], dz[16];
    int64_t tt[16];
    assert_true(n <= 16);
    for (int i = 0; i < n; i++) {
        float u = 0.15f + 0.7f * (float)i / (float)(n > 1 ? n - 1 : 1);
        x[i] = ((float)v[0] + u) * vs;
        y[i] = ((float)v[1] + 1.0f - u) * vs;
        z[i] = ((float)v[2] + 0.5f) * vs;
        r[i] = rgb[0], g[i] = rgb[1], b[i] = rgb[2];
        in[i] = inten;
        tt[i] = t;
        dx[i] = dir ? dir[0] : 0, dy[i] = dir ? dir[1] : 0, dz[i] = dir ? dir[2] : 1;
    }
    struct lm_batch bt = {.n = (size_t)n, .x = x, .y = y, .z = z, .dx = dx, .dy = dy, .dz = dz,
                          .r = r, .g = g, .b = b, .intensity = in, .t = tt};
    struct lm_error err = {0};
    int rc = lm_insert(db, "f", &bt, NULL, &err);
    if (rc)
        fail_msg("insert: %s", err.message);
}

static void camera(struct lm_render_camera *c, float ex, float ey, float ez, float tx,
                   float ty, float tz)
{
    *c = (struct lm_render_camera){{ex, ey, ez}, {tx, ty, tz}, {0, 0, 1}, 50.0f};
}

/* Window position (GL convention: origin bottom left) of world point p. */
static void project(const struct lm_render_camera *c, const float p[3], int *px, int *py)
{
    bool visible;
    known_scene_project(c, W, H, p, px, py, &visible);
    assert_true(visible);
}

static void render(struct fixture *f, lm_render *r, const struct lm_render_camera *c,
                   const struct lm_render_settings *s, struct lm_render_stats *st)
{
    struct lm_error err = {0};
    int w, h, rc;
    lm_render_ctx_begin(ctx, &w, &h);
    assert_int_equal(w, W);
    assert_int_equal(h, H);
    if ((rc = lm_render_frame(r, c, s, w, h, st, &err)) ||
        (rc = lm_render_ctx_present(ctx, &err)) || (rc = lm_render_ctx_read_rgb(ctx, f->rgb, &err)))
        fail_msg("frame: %s (%s)", err.message, lm_strerror(rc));
    const char *dir = getenv("LUMADB_TEST_PNG_DIR"); /* to look at the frames */
    if (dir && *dir) {
        static int shot;
        char path[512];
        snprintf(path, sizeof path, "%s/render-%03d.png", dir, shot++);
        lm_render_ctx_write_png(ctx, path, NULL);
    }
}

/* A renderer with default settings but for the colour mode, loading completely. */
static lm_render *open_renderer(lm_db *db, const struct lm_render_opts *o,
                                struct lm_render_settings *s, enum lm_render_color color)
{
    lm_render_settings_default(s);
    s->color = color;
    s->complete = true;
    lm_render *r = NULL;
    struct lm_error err = {0};
    int rc = lm_render_open(db, "f", o, &r, &err);
    if (rc)
        fail_msg("lm_render_open: %s (%s)", err.message, lm_strerror(rc));
    return r;
}

static void expect_pixel(const struct fixture *f, int x, int y, int r, int g, int b,
                         const char *what)
{
    assert_true(x >= 0 && x < W && y >= 0 && y < H);
    const unsigned char *p = &f->rgb[((size_t)y * W + (size_t)x) * 3];
    if (abs(p[0] - r) > TOL || abs(p[1] - g) > TOL || abs(p[2] - b) > TOL)
        fail_msg("%s at (%d, %d): got (%d, %d, %d), want (%d, %d, %d)", what, x, y, p[0], p[1],
                 p[2], r, g, b);
}

static void expect_background(const struct fixture *f, int x, int y, const char *what)
{
    expect_pixel(f, x, y, LM_RENDER_BG_R, LM_RENDER_BG_G, LM_RENDER_BG_B, what);
}

static int u8(float v)
{
    return (int)lrintf(fminf(fmaxf(v, 0.0f), 1.0f) * 255.0f);
}

/* ---------------------------------------------------------------- a known scene */

static void centre(const int v[3], float vs, float out[3])
{
    for (int a = 0; a < 3; a++)
        out[a] = ((float)v[a] + 0.5f) * vs;
}

static void load_scene(lm_db *db)
{
    make_field(db, 1.0f);
    for (size_t i = 0; i < N_SCENE; i++)
        put_voxel(db, 1.0f, scene[i].v, scene[i].rgb, 1.0f, 0, NULL, 4);
}

/* Every voxel of the scene in its colour at its projected centre (and a pixel either
 * side), background in the corners and between the red and green voxels. */
static void check_scene(struct fixture *f, const struct lm_render_camera *c)
{
    for (size_t i = 0; i < N_SCENE; i++) {
        float p[3];
        int x, y;
        centre(scene[i].v, 1.0f, p);
        project(c, p, &x, &y);
        for (int d = -1; d <= 1; d++)
            expect_pixel(f, x + d, y, u8(scene[i].rgb[0]), u8(scene[i].rgb[1]),
                         u8(scene[i].rgb[2]), scene[i].name);
    }
    expect_background(f, 2, 2, "corner");
    expect_background(f, W - 3, H - 3, "corner");
    float mid[3] = {3.5f, 0.5f, 0.5f}; /* empty space between red and green */
    int x, y;
    project(c, mid, &x, &y);
    expect_background(f, x, y, "between the red and green voxels");
}

static void known_voxels_appear_at_their_projected_positions(void **state)
{
    struct fixture *f = *state;
    load_scene(f->db);
    struct lm_render_settings s;
    lm_render *r = open_renderer(f->db, NULL, &s, LM_RENDER_COLOR_STORED);
    struct lm_render_camera c1, c2;
    camera(&c1, 14, -16, 12, 1, 1, 2);
    camera(&c2, -13, 12, 8, 2, -1, 3);
    struct lm_render_stats st;
    for (int shape = 0; shape < 2; shape++) {
        s.shape = shape ? LM_RENDER_CUBES : LM_RENDER_SPLATS;
        render(f, r, &c1, &s, &st);
        assert_int_equal(st.voxels, N_SCENE);
        assert_int_equal(st.level_max, 0);
        check_scene(f, &c1);
        /* another camera: every voxel moves, and where the red one was is now empty */
        int x1, y1, x2, y2;
        float red[3];
        centre(scene[0].v, 1.0f, red);
        project(&c1, red, &x1, &y1);
        project(&c2, red, &x2, &y2);
        assert_true(abs(x1 - x2) + abs(y1 - y2) > 20);
        for (size_t i = 0; i < N_SCENE; i++) { /* nothing else lands there */
            float p[3];
            int x, y;
            centre(scene[i].v, 1.0f, p);
            project(&c2, p, &x, &y);
            assert_true(abs(x - x1) + abs(y - y1) > 25);
        }
        render(f, r, &c2, &s, &st);
        check_scene(f, &c2);
        expect_background(f, x1, y1, "where the red voxel was");
    }
    lm_render_close(r);
}

/* ---------------------------------------------------------------- radiance */

static void radiance_follows_the_sh_toward_the_eye(void **state)
{
    struct fixture *f = *state;
    make_field(f->db, 1.0f);
    static const int v[3] = {0, 0, 0};
    static const float east[3] = {1, 0, 0}, west[3] = {-1, 0, 0};
    static const float warm[3] = {1.0f, 0.2f, 0.0f}, cool[3] = {0.0f, 0.2f, 1.0f};
    put_voxel(f->db, 1.0f, v, warm, 1.0f, 0, east, 8); /* light leaving toward +x */
    put_voxel(f->db, 1.0f, v, cool, 0.8f, 0, west, 8); /* and toward -x */
    struct lm_voxel vox;
    assert_int_equal(lm_voxel_get(f->db, "f", v, &vox), 0);
    assert_int_equal(vox.count, 16);
    struct lm_render_settings s;
    lm_render *r = open_renderer(f->db, NULL, &s, LM_RENDER_COLOR_RADIANCE);
    float c[3];
    centre(v, 1.0f, c);
    static const float sides[2][3] = {{0.8f, 0.36f, 0.48f}, {-0.8f, -0.36f, 0.48f}};
    int got[2][3];
    for (int shape = 0; shape < 2; shape++) {
        s.shape = shape ? LM_RENDER_CUBES : LM_RENDER_SPLATS;
        for (int k = 0; k < 2; k++) {
            struct lm_render_camera cam;
            camera(&cam, c[0] + 12 * sides[k][0], c[1] + 12 * sides[k][1],
                   c[2] + 12 * sides[k][2], c[0], c[1], c[2]);
            float d[3] = {cam.eye[0] - c[0], cam.eye[1] - c[1], cam.eye[2] - c[2]};
            float l = sqrtf(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
            for (int a = 0; a < 3; a++)
                d[a] /= l;
            int want[3];
            for (int ch = 0; ch < 3; ch++)
                want[ch] = u8(lm_sh_eval(vox.sh[ch], vox.count, d));
            struct lm_render_stats st;
            render(f, r, &cam, &s, &st);
            int x, y;
            project(&cam, c, &x, &y);
            expect_pixel(f, x, y, want[0], want[1], want[2], "radiance toward the eye");
            memcpy(got[k], want, sizeof want);
        }
    }
    /* seen from the east it is warm, from the west cool */
    assert_true(got[0][0] > got[0][2] + 150);
    assert_true(got[1][2] > got[1][0] + 100);
    lm_render_close(r);
}

/* ---------------------------------------------------------------- attribute ramps */

static void attribute_modes_follow_the_ramp(void **state)
{
    struct fixture *f = *state;
    make_field(f->db, 1.0f);
    static const int lo[3] = {0, 0, 0}, mid[3] = {4, 0, 0}, hi[3] = {8, 0, 0};
    static const float grey[3] = {0.5f, 0.5f, 0.5f};
    put_voxel(f->db, 1.0f, lo, grey, 0.5f, 0, NULL, 4);
    put_voxel(f->db, 1.0f, mid, grey, 1.25f, 5000000, NULL, 4);
    put_voxel(f->db, 1.0f, hi, grey, 2.0f, 10000000, NULL, 4);
    struct lm_render_settings s;
    lm_render *r = open_renderer(f->db, NULL, &s, LM_RENDER_COLOR_RADIANCE);
    struct lm_render_camera cam;
    camera(&cam, 4.5f, -14, 8, 4.5f, 0.5f, 0.5f);
    /* ramp stops 0, 2 and 4 of voxel.vert */
    static const int want[3][3] = {{26, 26, 115}, {64, 204, 77}, {217, 38, 26}};
    const int *vs[3] = {lo, mid, hi};
    for (int mode = LM_RENDER_COLOR_INTENSITY; mode <= LM_RENDER_COLOR_TIME; mode++) {
        s.color = (enum lm_render_color)mode;
        struct lm_render_stats st;
        render(f, r, &cam, &s, &st);
        for (int i = 0; i < 3; i++) {
            float p[3];
            int x, y;
            centre(vs[i], 1.0f, p);
            project(&cam, p, &x, &y);
            expect_pixel(f, x, y, want[i][0], want[i][1], want[i][2],
                         mode == LM_RENDER_COLOR_TIME ? "time ramp" : "intensity ramp");
        }
    }
    lm_render_close(r);
}

/* ---------------------------------------------------------------- live updates */

static void inserts_and_deletes_show_at_the_next_frame(void **state)
{
    struct fixture *f = *state;
    load_scene(f->db);
    struct lm_render_settings s;
    lm_render *r = open_renderer(f->db, NULL, &s, LM_RENDER_COLOR_STORED);
    struct lm_render_camera cam;
    camera(&cam, 14, -16, 12, 1, 1, 2);
    struct lm_render_stats st0, st1, st2;
    render(f, r, &cam, &s, &st0);
    render(f, r, &cam, &s, &st1);
    assert_int_equal(st1.syncs, st0.syncs); /* nothing changed: nothing re-read */
    assert_int_equal(st1.loads, st0.loads);

    static const int mv[3] = {3, 3, 0};
    static const float magenta[3] = {1, 0, 1};
    float p[3];
    int x, y;
    centre(mv, 1.0f, p);
    project(&cam, p, &x, &y);
    expect_background(f, x, y, "before the insert");
    put_voxel(f->db, 1.0f, mv, magenta, 1.0f, 0, NULL, 3);
    render(f, r, &cam, &s, &st2);
    expect_pixel(f, x, y, 255, 0, 255, "inserted voxel");
    assert_true(st2.syncs > st1.syncs);
    assert_int_equal(st2.loads, st1.loads + 1); /* only the changed chunk's tile */
    check_scene(f, &cam);

    /* delete it again, then a whole chunk (the violet voxel's) */
    struct lm_selection del = {.region = {.kind = LM_REGION_BOX, .min = {3, 3, 0},
                                          .max = {3.99f, 3.99f, 0.99f}}};
    uint64_t n = 0;
    assert_int_equal(lm_delete(f->db, "f", &del, &n, NULL, NULL), 0);
    assert_int_equal(n, 3);
    render(f, r, &cam, &s, &st2);
    expect_background(f, x, y, "deleted voxel");
    centre(scene[4].v, 1.0f, p);
    project(&cam, p, &x, &y);
    expect_pixel(f, x, y, u8(scene[4].rgb[0]), u8(scene[4].rgb[1]), u8(scene[4].rgb[2]),
                 "violet voxel before its chunk goes");
    del.region = (struct lm_region){.kind = LM_REGION_BOX, .min = {-10, -10, -10},
                                    .max = {-0.5f, -0.5f, 10}};
    assert_int_equal(lm_delete(f->db, "f", &del, &n, NULL, NULL), 0);
    assert_int_equal(n, 4);
    render(f, r, &cam, &s, &st2);
    expect_background(f, x, y, "voxel of a deleted chunk");
    assert_int_equal(st2.voxels, N_SCENE - 1);
    lm_render_close(r);
}

static void a_missing_field_draws_nothing_until_it_appears(void **state)
{
    struct fixture *f = *state;
    struct lm_render_settings s;
    lm_render *r = open_renderer(f->db, NULL, &s, LM_RENDER_COLOR_STORED);
    struct lm_render_camera cam;
    camera(&cam, 14, -16, 12, 1, 1, 2);
    struct lm_render_stats st;
    render(f, r, &cam, &s, &st);
    assert_true(st.field_missing);
    assert_int_equal(st.voxels, 0);
    expect_background(f, W / 2, H / 2, "empty picture");
    float bmin[3], bmax[3];
    assert_int_equal(lm_render_bounds(r, bmin, bmax, NULL), LM_ENOTFOUND);
    load_scene(f->db);
    render(f, r, &cam, &s, &st);
    assert_false(st.field_missing);
    check_scene(f, &cam);
    assert_int_equal(lm_render_bounds(r, bmin, bmax, NULL), 0);
    assert_true(bmin[0] < -5.5f && bmin[0] > -6.0f && bmax[0] > 6.5f && bmax[0] < 7.0f);
    lm_render_close(r);
}

/* ---------------------------------------------------------------- level of detail */

/* A flat plane of samples, 256 x 256 units at z = 0, one per unit voxel: 64 chunks,
 * octree levels 0-3. */
static void load_plane(lm_db *db)
{
    make_field(db, 1.0f);
    enum { SIDE = 256 };
    float *x = malloc(SIDE * SIDE * sizeof *x), *y = malloc(SIDE * SIDE * sizeof *y),
          *z = calloc(SIDE * SIDE, sizeof *z), *c = malloc(SIDE * SIDE * sizeof *c);
    for (int i = 0; i < SIDE * SIDE; i++) {
        x[i] = (float)(i % SIDE) - 127.5f;
        y[i] = (float)(i / SIDE) - 127.5f;
        c[i] = (float)(i % 7) / 7.0f;
    }
    struct lm_batch bt = {.n = SIDE * SIDE, .x = x, .y = y, .z = z, .r = c, .g = c, .b = c};
    assert_int_equal(lm_insert(db, "f", &bt, NULL, NULL), 0);
    free(x), free(y), free(z), free(c);
}

static void lod_coarsens_with_distance_under_the_budget(void **state)
{
    struct fixture *f = *state;
    load_plane(f->db);
    struct lm_render_opts o = {.voxel_budget = 8000};
    struct lm_render_settings s;
    lm_render *r = open_renderer(f->db, &o, &s, LM_RENDER_COLOR_STORED);
    struct lm_render_camera far_cam, near_cam;
    camera(&far_cam, 0, -500, 400, 0, 0, 0);
    camera(&near_cam, 0, -12, 6, 0, 0, 0);
    struct lm_render_stats fs, ns;
    render(f, r, &far_cam, &s, &fs);
    render(f, r, &near_cam, &s, &ns);
    print_message("far: %llu voxels, LOD %u-%u; near: %llu voxels, LOD %u-%u\n",
                  (unsigned long long)fs.voxels, fs.level_min, fs.level_max,
                  (unsigned long long)ns.voxels, ns.level_min, ns.level_max);
    assert_true(fs.level_min >= 1);       /* far away: nothing at full resolution */
    assert_int_equal(ns.level_min, 0);    /* close up: full resolution in front */
    assert_true(ns.level_max > 0);        /* and, for the budget, coarser further away */
    assert_true(fs.voxels <= o.voxel_budget);
    assert_true(ns.voxels <= o.voxel_budget);
    /* the plane covers the middle of the picture in both */
    for (int k = 0; k < 2; k++) {
        render(f, r, k ? &near_cam : &far_cam, &s, k ? &ns : &fs);
        const unsigned char *p = &f->rgb[((size_t)(H / 2) * W + W / 2) * 3];
        assert_false(p[0] == LM_RENDER_BG_R && p[1] == LM_RENDER_BG_G && p[2] == LM_RENDER_BG_B);
    }
    /* LOD off: the finest level everywhere in view, whatever the budget */
    s.lod = false;
    render(f, r, &far_cam, &s, &fs);
    assert_int_equal(fs.level_max, 0);
    assert_true(fs.voxels > o.voxel_budget);
    lm_render_close(r);
}

static void a_frame_without_complete_loading_never_shows_holes(void **state)
{
    struct fixture *f = *state;
    load_plane(f->db);
    struct lm_render_opts o = {.load_ms = 0.001}; /* one tile per frame */
    struct lm_render_settings s;
    lm_render *r = open_renderer(f->db, &o, &s, LM_RENDER_COLOR_STORED);
    s.complete = false;
    struct lm_render_camera cam;
    camera(&cam, 0, -30, 20, 0, 0, 0);
    struct lm_render_stats st;
    int frames = 0;
    do { /* coarse first, then finer tiles replace their parents as they arrive */
        render(f, r, &cam, &s, &st);
        const unsigned char *p = &f->rgb[((size_t)(H / 2) * W + W / 2) * 3];
        assert_false(p[0] == LM_RENDER_BG_R && p[1] == LM_RENDER_BG_G && p[2] == LM_RENDER_BG_B);
        assert_true(st.tiles_loaded <= 1 || frames == 0);
    } while (st.tiles_pending && ++frames < 500);
    assert_true(frames > 3);
    assert_int_equal(st.tiles_pending, 0);
    assert_int_equal(st.level_min, 0);
    lm_render_close(r);
}

static void the_tile_cache_stays_under_its_memory_budget(void **state)
{
    struct fixture *f = *state;
    load_plane(f->db);
    struct lm_render_opts o = {.memory_budget = 256 << 10};
    struct lm_render_settings s;
    lm_render *r = open_renderer(f->db, &o, &s, LM_RENDER_COLOR_RADIANCE);
    struct lm_render_camera cam;
    struct lm_render_stats st;
    for (int i = 0; i < 8; i++) { /* low passes over different corners */
        float a = (float)i * 0.785f;
        camera(&cam, 90 * cosf(a), 90 * sinf(a), 8, 110 * cosf(a), 110 * sinf(a), 0);
        render(f, r, &cam, &s, &st);
        assert_true(st.bytes_resident <= o.memory_budget ||
                    st.tiles_resident == st.tiles_drawn); /* all in use this frame */
    }
    print_message("%u tiles resident, %llu bytes, %llu evictions\n", st.tiles_resident,
                  (unsigned long long)st.bytes_resident, (unsigned long long)st.evictions);
    assert_true(st.evictions > 0);
    lm_render_close(r);
}

/* ---------------------------------------------------------------- shaders and HUD */

/* Writes text to path and dates it `age` seconds from now (file times can be coarse). */
static void write_file(const char *path, const char *text, int age)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    struct timespec t[2];
    clock_gettime(CLOCK_REALTIME, &t[0]);
    t[0].tv_sec += age;
    t[1] = t[0];
    assert_int_equal(utimensat(AT_FDCWD, path, t, 0), 0);
}

static void shader_errors_name_the_file_and_line(void **state)
{
    struct fixture *f = *state;
    load_scene(f->db);
    static const char *const names[] = {"voxel.vert", "voxel.frag", "line.vert", "line.frag",
                                        "hud.vert", "hud.frag"};
    char dir[64] = "/tmp/lumadb-shaders-XXXXXX", path[256];
    assert_non_null(mkdtemp(dir));
    for (size_t i = 0; i < 6; i++) { /* a copy of the embedded sources */
        char *text, where[256];
        assert_int_equal(lm_gl_shader_source(names[i], &text, where, sizeof where, NULL), 0);
        assert_string_equal(where + strlen(where) - strlen(names[i]), names[i]);
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        write_file(path, text, 0);
        lm_free(text);
    }
    setenv("LUMADB_SHADER_DIR", dir, 1);
    struct lm_render_settings s; /* from the hot-reload directory, good sources */
    lm_render *r = open_renderer(f->db, NULL, &s, LM_RENDER_COLOR_STORED);
    struct lm_error err = {0};
    bool reloaded = true;
    assert_int_equal(lm_render_poll_shaders(r, &reloaded, &err), 0); /* the baseline */
    assert_false(reloaded);
    snprintf(path, sizeof path, "%s/voxel.frag", dir);
    write_file(path, "#version 330 core\n"
                     "flat in vec3 v_color;\n"
                     "out vec4 o_color;\n"
                     "void main()\n"
                     "{ o_color = vec4(v_colour, 1.0); }\n", 10);
    lm_render *bad = NULL;
    assert_int_equal(lm_render_open(f->db, "f", NULL, &bad, &err), LM_ESYNTAX);
    assert_null(bad);
    char want[300];
    snprintf(want, sizeof want, "%s/voxel.frag:5:", dir);
    if (!strstr(err.message, want))
        fail_msg("message '%s' does not name '%s'", err.message, want);
    assert_int_equal(err.line, 5);
    /* a reload that fails keeps the working programs, and is not retried */
    assert_int_equal(lm_render_poll_shaders(r, &reloaded, &err), LM_ESYNTAX);
    assert_false(reloaded);
    assert_int_equal(err.line, 5);
    assert_int_equal(lm_render_poll_shaders(r, &reloaded, &err), 0);
    assert_false(reloaded);
    assert_int_equal(lm_render_reload_shaders(r, &err), LM_ESYNTAX);
    struct lm_render_camera cam;
    camera(&cam, 14, -16, 12, 1, 1, 2);
    struct lm_render_stats st;
    render(f, r, &cam, &s, &st);
    check_scene(f, &cam);
    /* fixed on disk: the reload picks it up */
    write_file(path, "#version 330 core\n"
                     "flat in vec3 v_color;\n"
                     "out vec4 o_color;\n"
                     "void main()\n"
                     "{ o_color = vec4(1.0 - v_color, 1.0); }\n", 20);
    assert_int_equal(lm_render_poll_shaders(r, &reloaded, &err), 0);
    assert_true(reloaded);
    render(f, r, &cam, &s, &st);
    float p[3];
    int x, y;
    centre(scene[0].v, 1.0f, p);
    project(&cam, p, &x, &y);
    expect_pixel(f, x, y, 0, 255, 255, "red voxel through the inverting shader");
    unsetenv("LUMADB_SHADER_DIR");
    lm_render_close(r);
    nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void the_hud_draws_text_in_the_top_left(void **state)
{
    struct fixture *f = *state;
    load_scene(f->db);
    struct lm_render_settings s;
    lm_render *r = open_renderer(f->db, NULL, &s, LM_RENDER_COLOR_RADIANCE);
    struct lm_render_camera cam;
    camera(&cam, 14, -16, 12, 1, 1, 2);
    struct lm_render_stats st;
    s.hud = "HUD 123";
    render(f, r, &cam, &s, &st);
    int lit = 0;
    for (int y = H - 30; y < H; y++) /* top rows: GL rows run bottom-up */
        for (int x = 0; x < 120; x++) {
            const unsigned char *p = &f->rgb[((size_t)y * W + (size_t)x) * 3];
            lit += p[0] > 200 && p[1] > 200 && p[2] > 200;
        }
    assert_true(lit > 40);
    s.hud = NULL;
    render(f, r, &cam, &s, &st);
    for (int y = H - 30; y < H; y++)
        for (int x = 0; x < 120; x++)
            expect_background(f, x, y, "no HUD");
    lm_render_close(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(known_voxels_appear_at_their_projected_positions,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(radiance_follows_the_sh_toward_the_eye, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(attribute_modes_follow_the_ramp, setup, teardown),
        cmocka_unit_test_setup_teardown(inserts_and_deletes_show_at_the_next_frame, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_missing_field_draws_nothing_until_it_appears, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(lod_coarsens_with_distance_under_the_budget, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_frame_without_complete_loading_never_shows_holes,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(the_tile_cache_stays_under_its_memory_budget, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(shader_errors_name_the_file_and_line, setup, teardown),
        cmocka_unit_test_setup_teardown(the_hud_draws_text_in_the_top_left, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
