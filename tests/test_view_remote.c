/* test_view_remote.c - a field served by a real `lumadb serve` on 127.0.0.1, seen from
 * its clients: `lumadb snapshot ws://...` draws known voxels at their projected
 * positions in their colours, and the demo terrain exactly as a local snapshot does;
 * a mirror with the renderer on it (what `lumadb view ws://...` runs) shows samples
 * inserted over HTTP while it is subscribed; an unknown field and a bad URL fail with
 * the server's text and a usage error. Offscreen (EGL surfaceless, Mesa llvmpipe). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stb_image.h> /* the implementation is in Debian's libstb */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/spawn.h"
#include "context.h"
#include "demo_scene.h"
#include "lumadb.h"
#include "mirror.h"
#include "render.h"
#include "render/known_scene.h"
#include "tmpdir.h"

#define W 320
#define H 240
#define TOL 3 /* per channel, in 1/255 */
#define TOKEN "view-remote-token-0123"

/* ---------------------------------------------------------------- the server */

struct served {
    char dir[64], log[96];
    pid_t pid;
    int port;
    lm_render_ctx *ctx;
};
static struct served srv;

static const struct known added = {{3, 3, 0}, {1, 0.5f, 0}, "orange voxel inserted over HTTP"};

/* Four samples inside level-0 voxel v (voxel size 1), pointing up, in one colour. */
static void voxel_samples(const struct known *k, float x[4], float y[4], float z[4])
{
    for (int i = 0; i < 4; i++) {
        float u = 0.15f + 0.7f * (float)i / 3.0f;
        x[i] = (float)k->v[0] + u;
        y[i] = (float)k->v[1] + 1.0f - u;
        z[i] = (float)k->v[2] + 0.5f;
    }
}

static int make_data(const char *dir)
{
    lm_db *db;
    struct lm_field_opts o = {.voxel_size = 1.0f};
    if (lm_db_open(dir, NULL, &db, NULL) || lm_field_create(db, "f", &o, NULL))
        return -1;
    int rc = 0;
    for (size_t i = 0; i < N_SCENE && !rc; i++) {
        float x[4], y[4], z[4], r[4], g[4], b[4];
        voxel_samples(&scene[i], x, y, z);
        for (int k = 0; k < 4; k++)
            r[k] = scene[i].rgb[0], g[k] = scene[i].rgb[1], b[k] = scene[i].rgb[2];
        struct lm_batch bt = {.n = 4, .x = x, .y = y, .z = z, .r = r, .g = g, .b = b};
        rc = lm_insert(db, "f", &bt, NULL, NULL);
    }
    struct lm_demo_scene sc = {.side = 128, .seed = 42}; /* as `snapshot --demo --side 128` */
    if (!rc)
        rc = lm_demo_load(db, "terrain", &sc, 65536, NULL);
    lm_db_close(db);
    return rc;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Starts `lumadb serve DIR --port 0` and reads its port from the log. */
static int start_server(void)
{
    srv.pid = fork();
    if (srv.pid == 0) {
        int fd = open(srv.log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(LUMADB_BIN, LUMADB_BIN, "serve", srv.dir, "--port", "0", "--token", TOKEN,
              "--rate", "0", (char *)NULL);
        _exit(127);
    }
    for (double until = now_s() + 60; now_s() < until; usleep(50000)) {
        char line[512];
        FILE *f = fopen(srv.log, "r");
        while (f && fgets(line, sizeof line, f)) {
            const char *at = strstr(line, "listening on http://127.0.0.1:");
            if (at)
                srv.port = atoi(at + strlen("listening on http://127.0.0.1:"));
        }
        if (f)
            fclose(f);
        if (srv.port > 0)
            return 0;
        if (waitpid(srv.pid, NULL, WNOHANG) == srv.pid)
            break;
    }
    fprintf(stderr, "lumadb serve did not start; its log is %s\n", srv.log);
    return -1;
}

static int group_setup(void **state)
{
    (void)state;
    struct lm_error err = {0};
    struct lm_render_ctx_opts o = {.kind = LM_RENDER_CTX_OFFSCREEN, .width = W, .height = H};
    if (tmpdir_make("lumadb-view-remote", srv.dir, sizeof srv.dir) || make_data(srv.dir))
        return -1;
    snprintf(srv.log, sizeof srv.log, "%s.log", srv.dir);
    if (lm_render_ctx_open(&o, &srv.ctx, &err)) {
        fprintf(stderr, "offscreen GL context: %s\n", err.message);
        return -1;
    }
    return start_server();
}

/* Stops the server with SIGTERM: it must exit 0 with a clean sanitizer report. */
static int group_teardown(void **state)
{
    (void)state;
    int status = -1, rc = 0;
    if (srv.pid > 0) {
        kill(srv.pid, SIGTERM);
        waitpid(srv.pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "lumadb serve exited with status %d; log %s\n", status, srv.log);
            rc = -1;
        }
    }
    char line[512];
    FILE *f = fopen(srv.log, "r");
    while (f && fgets(line, sizeof line, f))
        if (strstr(line, "Sanitizer") || strstr(line, "runtime error")) {
            fprintf(stderr, "lumadb serve: %s", line);
            rc = -1;
        }
    if (f)
        fclose(f);
    lm_render_ctx_close(srv.ctx);
    tmpdir_remove(srv.dir);
    if (!rc)
        remove(srv.log);
    return rc;
}

/* ---------------------------------------------------------------- pictures */

struct image {
    int w, h;
    unsigned char *rgb;
};

static struct image load_png(const char *path)
{
    struct image im = {0};
    int n;
    im.rgb = stbi_load(path, &im.w, &im.h, &n, 3);
    if (!im.rgb)
        fail_msg("%s: %s", path, stbi_failure_reason());
    return im;
}

static void camera(struct lm_render_camera *c, const float eye[3], const float target[3])
{
    *c = (struct lm_render_camera){{eye[0], eye[1], eye[2]}, {target[0], target[1], target[2]},
                                   {0, 0, 1}, 50.0f};
}

/* Pixel (top row first, as in a PNG) of world point p. */
static void project(const struct lm_render_camera *c, const float p[3], int *px, int *py)
{
    bool visible;
    known_scene_project(c, W, H, p, px, py, &visible);
    assert_true(visible);
    *py = H - 1 - *py;
}

static int u8(float v)
{
    return (int)lrintf(fminf(fmaxf(v, 0.0f), 1.0f) * 255.0f);
}

static void expect_pixel(const struct image *im, int x, int y, const float rgb[3],
                         const char *what)
{
    assert_true(x >= 0 && x < im->w && y >= 0 && y < im->h);
    const unsigned char *p = &im->rgb[((size_t)y * (size_t)im->w + (size_t)x) * 3];
    int want[3] = {rgb ? u8(rgb[0]) : LM_RENDER_BG_R, rgb ? u8(rgb[1]) : LM_RENDER_BG_G,
                   rgb ? u8(rgb[2]) : LM_RENDER_BG_B};
    for (int k = 0; k < 3; k++)
        if (abs(p[k] - want[k]) > TOL)
            fail_msg("%s at (%d, %d): got (%d, %d, %d), want (%d, %d, %d)", what, x, y, p[0],
                     p[1], p[2], want[0], want[1], want[2]);
}

/* Each voxel in its colour at its projected centre (and a pixel either side); the
 * background where nothing is. */
static void check_voxels(const struct image *im, const struct lm_render_camera *c,
                         const struct known *k, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float p[3] = {(float)k[i].v[0] + 0.5f, (float)k[i].v[1] + 0.5f, (float)k[i].v[2] + 0.5f};
        int x, y;
        project(c, p, &x, &y);
        for (int d = -1; d <= 1; d++)
            expect_pixel(im, x + d, y, k[i].rgb, k[i].name);
    }
    expect_pixel(im, 2, 2, NULL, "corner");
    float mid[3] = {3.5f, 0.5f, 0.5f}; /* between the red and green voxels */
    int x, y;
    project(c, mid, &x, &y);
    expect_pixel(im, x, y, NULL, "between the red and green voxels");
}

static void url_of(char *out, size_t cap, const char *field)
{
    snprintf(out, cap, "ws://127.0.0.1:%d/%s", srv.port, field);
}

/* ---------------------------------------------------------------- tests */

static void snapshot_of_a_served_field_shows_its_voxels_where_they_project(void **state)
{
    (void)state;
    static const float eyes[2][3] = {{14, -16, 12}, {-13, 12, 8}};
    static const float targets[2][3] = {{1, 1, 2}, {2, -1, 3}};
    char url[96], png[96], cam[128];
    url_of(url, sizeof url, "f");
    snprintf(png, sizeof png, "%s.png", srv.dir);
    for (int k = 0; k < 2; k++) {
        snprintf(cam, sizeof cam, "%g,%g,%g,%g,%g,%g", (double)eyes[k][0], (double)eyes[k][1],
                 (double)eyes[k][2], (double)targets[k][0], (double)targets[k][1],
                 (double)targets[k][2]);
        struct spawn_out o = spawn_lumadb(NULL, "snapshot", url, "--out", png, "--camera", cam,
                                          "--size", "320x240", "--mode", "colour",
                                          k ? "--cubes" : "--no-lod", NULL);
        if (o.status)
            fail_msg("snapshot %s exited %d:\n%s%s", url, o.status, o.out, o.err);
        assert_non_null(strstr(o.out, "20 samples in 2 chunks"));
        spawn_free(&o);
        struct lm_render_camera c;
        camera(&c, eyes[k], targets[k]);
        struct image im = load_png(png);
        assert_int_equal(im.w, W);
        assert_int_equal(im.h, H);
        check_voxels(&im, &c, scene, N_SCENE);
        stbi_image_free(im.rgb);
    }
    remove(png);
}

/* The terrain through the server looks exactly as the same terrain generated locally. */
static void served_demo_terrain_equals_a_local_snapshot(void **state)
{
    (void)state;
    char url[96], remote[96], local[96];
    url_of(url, sizeof url, "terrain");
    snprintf(remote, sizeof remote, "%s-remote.png", srv.dir);
    snprintf(local, sizeof local, "%s-local.png", srv.dir);
    struct spawn_out a = spawn_lumadb(NULL, "snapshot", url, "--out", remote, "--size",
                                      "320x240", "--mode", "colour", NULL);
    struct spawn_out b = spawn_lumadb(NULL, "snapshot", "--demo", "--side", "128", "--out",
                                      local, "--size", "320x240", "--mode", "colour", NULL);
    if (a.status || b.status)
        fail_msg("snapshots exited %d, %d:\n%s%s", a.status, b.status, a.err, b.err);
    spawn_free(&a);
    spawn_free(&b);
    struct image p = load_png(remote), q = load_png(local);
    size_t differ = 0, content = 0, n = (size_t)W * H;
    for (size_t i = 0; i < n; i++) {
        bool d = false, c = false;
        for (int k = 0; k < 3; k++) {
            d |= abs(p.rgb[3 * i + k] - q.rgb[3 * i + k]) > 8;
            c |= p.rgb[3 * i + k] != p.rgb[k];
        }
        differ += d;
        content += c;
    }
    assert_true(content > n / 20); /* not two blank pictures */
    if (differ > n / 200)
        fail_msg("%zu of %zu pixels differ", differ, n);
    stbi_image_free(p.rgb);
    stbi_image_free(q.rgb);
    remove(remote);
    remove(local);
}

/* POST /v1/fields/NAME/samples; returns the insert's lsn, or 0. */
static uint64_t http_insert(const char *field, const char *json)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)srv.port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return 0;
    }
    char req[2048], resp[4096];
    int n = snprintf(req, sizeof req,
                     "POST /v1/fields/%s/samples HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     field, TOKEN, strlen(json), json);
    size_t got = 0;
    ssize_t k;
    if (write(fd, req, (size_t)n) != n)
        got = sizeof resp; /* nothing to read */
    while (got < sizeof resp - 1 && (k = read(fd, resp + got, sizeof resp - 1 - got)) > 0)
        got += (size_t)k;
    close(fd);
    resp[got < sizeof resp ? got : sizeof resp - 1] = 0;
    const char *lsn = strstr(resp, "\"lsn\":");
    if (strncmp(resp, "HTTP/1.1 200", 12) || !lsn)
        fail_msg("insert over HTTP: %s", resp);
    return strtoull(lsn + 6, NULL, 10);
}

static void render_to(lm_render *r, const struct lm_render_camera *c, lm_mirror *m,
                      struct image *im)
{
    struct lm_render_settings s;
    lm_render_settings_default(&s);
    s.color = LM_RENDER_COLOR_STORED;
    s.complete = true;
    struct lm_render_stats st;
    struct lm_error err = {0};
    int w, h, rc;
    unsigned char *up = malloc((size_t)W * H * 3);
    lm_render_ctx_begin(srv.ctx, &w, &h);
    lm_mirror_lock(m);
    rc = lm_render_frame(r, c, &s, w, h, &st, &err);
    lm_mirror_unlock(m);
    if (rc || (rc = lm_render_ctx_present(srv.ctx, &err)) ||
        (rc = lm_render_ctx_read_rgb(srv.ctx, up, &err)))
        fail_msg("frame: %s (%s)", err.message, lm_strerror(rc));
    /* read_rgb is bottom row first (GL); images here are top row first */
    im->w = W, im->h = H;
    for (int y = 0; y < H; y++)
        memcpy(im->rgb + (size_t)y * W * 3, up + (size_t)(H - 1 - y) * W * 3, (size_t)W * 3);
    free(up);
}

/* What `view ws://` runs: a mirror into a local database, the renderer on it. Samples
 * inserted over HTTP while it is subscribed show at the next frame. */
static void samples_inserted_while_subscribed_show_in_the_next_frame(void **state)
{
    (void)state;
    char dir[64], url[96];
    url_of(url, sizeof url, "f");
    struct lm_db_opts o = {.create = true, .sync = LM_SYNC_NONE};
    lm_db *copy;
    assert_int_equal(tmpdir_make("lumadb-view-copy", dir, sizeof dir), 0);
    assert_int_equal(lm_db_open(dir, &o, &copy, NULL), 0);
    lm_mirror *m;
    struct lm_error err = {0};
    struct lm_mirror_opts mo = {.db = copy, .url = url};
    assert_int_equal(lm_mirror_open(&mo, &m, &err), 0);
    if (lm_mirror_wait(m, 0, 30000, &err))
        fail_msg("mirror: %s", err.message);
    lm_render *r;
    if (lm_render_open(copy, "f", NULL, &r, &err))
        fail_msg("renderer: %s", err.message);
    static const float eye[3] = {14, -16, 12}, target[3] = {1, 1, 2};
    struct lm_render_camera c;
    camera(&c, eye, target);
    struct image im = {.rgb = malloc((size_t)W * H * 3)};
    render_to(r, &c, m, &im);
    check_voxels(&im, &c, scene, N_SCENE);
    float p[3] = {3.5f, 3.5f, 0.5f};
    int x, y;
    project(&c, p, &x, &y);
    expect_pixel(&im, x, y, NULL, "where the orange voxel will be");

    char json[512];
    float sx[4], sy[4], sz[4];
    voxel_samples(&added, sx, sy, sz);
    snprintf(json, sizeof json,
             "{\"x\":[%g,%g,%g,%g],\"y\":[%g,%g,%g,%g],\"z\":[%g,%g,%g,%g],"
             "\"r\":[1,1,1,1],\"g\":[0.5,0.5,0.5,0.5],\"b\":[0,0,0,0]}",
             (double)sx[0], (double)sx[1], (double)sx[2], (double)sx[3], (double)sy[0],
             (double)sy[1], (double)sy[2], (double)sy[3], (double)sz[0], (double)sz[1],
             (double)sz[2], (double)sz[3]);
    uint64_t lsn = http_insert("f", json);
    assert_true(lsn > 0);
    if (lm_mirror_wait(m, lsn, 30000, &err))
        fail_msg("mirror after the insert: %s", err.message);
    render_to(r, &c, m, &im);
    check_voxels(&im, &c, scene, N_SCENE);
    /* 0.5 is stored as 128/255 */
    const struct known orange = {{3, 3, 0}, {1, 128.0f / 255.0f, 0}, added.name};
    check_voxels(&im, &c, &orange, 1);
    free(im.rgb);
    lm_render_close(r);
    lm_mirror_close(m);
    lm_db_close(copy);
    tmpdir_remove(dir);
}

static void unknown_fields_and_bad_urls_fail_with_the_reason(void **state)
{
    (void)state;
    char url[96], png[96];
    url_of(url, sizeof url, "nope");
    snprintf(png, sizeof png, "%s-none.png", srv.dir);
    struct spawn_out o = spawn_lumadb(NULL, "snapshot", url, "--out", png, NULL);
    assert_int_equal(o.status, 1);
    assert_non_null(strstr(o.err, url));
    assert_non_null(strstr(o.err, "no field named 'nope'"));
    spawn_free(&o);
    assert_int_equal(access(png, F_OK), -1);
    o = spawn_lumadb(NULL, "view", "ws://127.0.0.1:99999/f", "--frames", "1", NULL);
    assert_int_equal(o.status, 2);
    assert_non_null(strstr(o.err, "'ws://127.0.0.1:99999/f'"));
    assert_non_null(strstr(o.err, "port"));
    spawn_free(&o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(snapshot_of_a_served_field_shows_its_voxels_where_they_project),
        cmocka_unit_test(served_demo_terrain_equals_a_local_snapshot),
        cmocka_unit_test(samples_inserted_while_subscribed_show_in_the_next_frame),
        cmocka_unit_test(unknown_fields_and_bad_urls_fail_with_the_reason),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
