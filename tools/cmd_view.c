/* cmd_view.c - `lumadb view` (window) and `lumadb snapshot` (offscreen PNG).
 *
 * Both open the field the same way (a database directory read-only; with --demo the
 * demo terrain generated into a temporary directory; for ws://HOST:PORT/FIELD a live
 * mirror of the server's field in a temporary directory), build the same renderer
 * (render/render.h) and differ only in the context they draw into and in who moves
 * the camera: the user, a script (--script), the built-in orbit (--frames), or
 * --camera for a snapshot. */
#include <errno.h>
#include <ftw.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "commands.h"
#include "context.h"
#include "demo_scene.h"
#include "lumadb.h"
#include "mirror.h"
#include "render.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Ctrl-C and kill end the view loop normally, so that a --demo directory is removed. */
static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* ---------------------------------------------------------------- options */

struct view_args {
    const char *dir, *field, *out, *script;
    const char *url, *token;  /* a remote field: ws://HOST:PORT/FIELD, HELLO's token */
    struct lm_mirror_url remote;
    bool demo, live, cubes, no_lod, hud, no_hud, boxes, axes, have_camera;
    uint32_t side;
    int width, height;
    long frames;
    float fov;
    float camera[9];
    enum lm_render_color color;
    struct lm_render_opts opts;
};

static const char view_usage[] =
    "usage: lumadb view DIR FIELD [options]\n"
    "       lumadb view ws://HOST:PORT/FIELD [--token T] [options]\n"
    "       lumadb view --demo [--side N] [--live] [options]\n"
    "       lumadb snapshot DIR FIELD --out FILE.png [options]\n"
    "       lumadb snapshot ws://HOST:PORT/FIELD --out FILE.png [options]\n"
    "\n"
    "  ws://HOST:PORT/FIELD  a field served by `lumadb serve`, shown live: it is copied\n"
    "                     into a temporary directory, then kept up to date\n"
    "  --token T          remote: the server's token (when reads need it)\n"
    "  --demo             generate the demo terrain into a temporary directory (field\n"
    "                     'terrain'); DIR is then not read\n"
    "  --side N           demo: N^2 samples (default 1024: 1M)\n"
    "  --live             demo: keep writing samples while viewing (live updates)\n"
    "  --size WxH         window or image size (default 1280x720)\n"
    "  --mode M           radiance | colour | intensity | time (default radiance)\n"
    "  --cubes            draw cubes instead of splats\n"
    "  --no-lod           finest level everywhere in view\n"
    "  --budget N         most voxels drawn per frame (default 300000)\n"
    "  --pixel-error PX   refine until a cell covers at most PX pixels (default 2)\n"
    "  --fov DEG          vertical field of view (default 50)\n"
    "  --camera E,T[,U]   eye, target and up as 6 or 9 comma-separated numbers\n"
    "  --boxes, --axes    outline tiles by level; draw axes and field bounds\n"
    "  --hud              snapshot: draw the HUD too\n"
    "  --out FILE.png     snapshot: where to write the image; view (with --frames):\n"
    "                     the window's last frame\n"
    "  --no-hud           view: start with the HUD hidden\n"
    "  --frames N         view: render N frames, print fps and exit\n"
    "  --script FILE      view: camera path ('FRAME camera EX,EY,EZ TX,TY,TZ' and\n"
    "                     'FRAME key K' lines), with --frames\n";

static int parse_floats(const char *s, float *out, int max)
{
    int n = 0;
    while (n < max) {
        char *end;
        float v = strtof(s, &end);
        if (end == s || !isfinite(v))
            return -1;
        out[n++] = v;
        if (*end == 0)
            return n;
        if (*end != ',')
            return -1;
        s = end + 1;
    }
    return -1;
}

static int parse_args(const char *cmd, int argc, char **argv, struct view_args *a)
{
    memset(a, 0, sizeof *a);
    a->side = 1024;
    a->width = 1280;
    a->height = 720;
    a->fov = 50.0f;
    a->color = LM_RENDER_COLOR_RADIANCE;
    int npos = 0;
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = true;
        char name[32];
        const char *eq = strncmp(o, "--", 2) ? NULL : strchr(o, '=');
        bool inline_value = eq && (size_t)(eq - o) < sizeof name;
        if (inline_value) { /* --option=value */
            memcpy(name, o, (size_t)(eq - o));
            name[eq - o] = 0;
            o = name;
            v = eq + 1;
        }
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            fputs(view_usage, stdout);
            return 1;
        } else if (!strcmp(o, "--demo")) {
            a->demo = true, takes = false;
        } else if (!strcmp(o, "--live")) {
            a->live = true, takes = false;
        } else if (!strcmp(o, "--cubes")) {
            a->cubes = true, takes = false;
        } else if (!strcmp(o, "--no-lod")) {
            a->no_lod = true, takes = false;
        } else if (!strcmp(o, "--hud")) {
            a->hud = true, takes = false;
        } else if (!strcmp(o, "--no-hud")) {
            a->no_hud = true, takes = false;
        } else if (!strcmp(o, "--boxes")) {
            a->boxes = true, takes = false;
        } else if (!strcmp(o, "--axes")) {
            a->axes = true, takes = false;
        } else if (o[0] == '-' && !v) {
            fprintf(stderr, "lumadb %s: option '%s' needs a value (or is unknown)\n", cmd, o);
            return 2;
        } else if (!strcmp(o, "--side")) {
            a->side = (uint32_t)strtoul(v, NULL, 10);
        } else if (!strcmp(o, "--size")) {
            if (sscanf(v, "%dx%d", &a->width, &a->height) != 2 || a->width < 1 ||
                a->height < 1 || a->width > 16384 || a->height > 16384) {
                fprintf(stderr, "lumadb %s: --size wants WxH, e.g. 1280x720\n", cmd);
                return 2;
            }
        } else if (!strcmp(o, "--mode")) {
            int m = lm_render_color_parse(v);
            if (m < 0) {
                fprintf(stderr, "lumadb %s: --mode is radiance, colour, intensity or time\n",
                        cmd);
                return 2;
            }
            a->color = (enum lm_render_color)m;
        } else if (!strcmp(o, "--budget")) {
            a->opts.voxel_budget = strtoull(v, NULL, 10);
        } else if (!strcmp(o, "--pixel-error")) {
            a->opts.pixel_error = strtof(v, NULL);
        } else if (!strcmp(o, "--fov")) {
            a->fov = strtof(v, NULL);
            if (!(a->fov > 1.0f && a->fov < 170.0f)) {
                fprintf(stderr, "lumadb %s: --fov must be in (1, 170) degrees\n", cmd);
                return 2;
            }
        } else if (!strcmp(o, "--camera")) {
            int n = parse_floats(v, a->camera, 9);
            if (n != 6 && n != 9) {
                fprintf(stderr, "lumadb %s: --camera wants ex,ey,ez,tx,ty,tz[,ux,uy,uz]\n",
                        cmd);
                return 2;
            }
            if (n == 6) {
                a->camera[6] = a->camera[7] = 0;
                a->camera[8] = 1;
            }
            a->have_camera = true;
        } else if (!strcmp(o, "--out")) {
            a->out = v;
        } else if (!strcmp(o, "--frames")) {
            a->frames = strtol(v, NULL, 10);
        } else if (!strcmp(o, "--script")) {
            a->script = v;
        } else if (!strcmp(o, "--token")) {
            a->token = v;
        } else if (o[0] == '-') {
            fprintf(stderr, "lumadb %s: unknown option '%s' (try --help)\n", cmd, o);
            return 2;
        } else {
            takes = false;
            if (npos == 0)
                a->dir = o;
            else if (npos == 1)
                a->field = o;
            else {
                fprintf(stderr, "lumadb %s: unexpected argument '%s'\n", cmd, o);
                return 2;
            }
            npos++;
        }
        if (inline_value && !takes) {
            fprintf(stderr, "lumadb %s: option '%s' takes no value\n", cmd, o);
            return 2;
        }
        i += takes && !inline_value;
    }
    if (a->dir && strstr(a->dir, "://")) {
        struct lm_error err = {0};
        if (lm_mirror_parse_url(a->dir, &a->remote, &err)) {
            fprintf(stderr, "lumadb %s: %s (try --help)\n", cmd, err.message);
            return 2;
        }
        if (a->field) {
            fprintf(stderr, "lumadb %s: '%s' names the field already; unexpected '%s'\n",
                    cmd, a->dir, a->field);
            return 2;
        }
        if (a->demo) {
            fprintf(stderr, "lumadb %s: --demo and a remote field exclude each other\n", cmd);
            return 2;
        }
        a->url = a->dir;
        a->dir = NULL;
        a->field = a->remote.field;
    }
    if (a->demo && !a->field)
        a->field = "terrain";
    if (!a->demo && !a->url && (!a->dir || !a->field)) {
        fprintf(stderr, "lumadb %s: DIR and FIELD are required (or --demo)\n%s", cmd,
                view_usage);
        return 2;
    }
    if (a->demo && (a->side < 2 || a->side > 8192)) {
        fprintf(stderr, "lumadb %s: --side must be in [2, 8192]\n", cmd);
        return 2;
    }
    return 0;
}

/* ---------------------------------------------------------------- the data source */

struct source {
    lm_db *db;
    lm_mirror *mirror;        /* a remote field's, writing db */
    const char *cmd;
    char tmpdir[64];
    pthread_t writer;
    bool writing;
    atomic_bool stop;
    atomic_ullong written;
    const char *field;
};

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* --live: a column of light rising over the terrain's centre, a batch every 50 ms, so
 * the viewer has changed chunks to re-read. */
static void *live_writer(void *arg)
{
    struct source *s = arg;
    enum { N = 2000 };
    float x[N], y[N], z[N], dx[N], dy[N], dz[N], r[N], g[N], b[N];
    for (uint64_t round = 0; !atomic_load(&s->stop); round++) {
        for (int i = 0; i < N; i++) {
            float u = (float)(round * N + (uint64_t)i) * 0.0007f;
            float h = fmodf(u * 2.0f, 60.0f);
            x[i] = 6.0f * cosf(u * 7.0f);
            y[i] = 6.0f * sinf(u * 7.0f);
            z[i] = 30.0f + h;
            float d[3] = {cosf(u * 3.0f), sinf(u * 3.0f), 0.3f};
            float l = sqrtf(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
            dx[i] = d[0] / l, dy[i] = d[1] / l, dz[i] = d[2] / l;
            r[i] = 0.5f + 0.5f * sinf(u), g[i] = 0.5f + 0.5f * sinf(u + 2.1f);
            b[i] = 0.5f + 0.5f * sinf(u + 4.2f);
        }
        struct lm_batch bt = {.n = N, .x = x, .y = y, .z = z, .dx = dx, .dy = dy, .dz = dz,
                              .r = r, .g = g, .b = b, .n_user = 0};
        if (lm_insert(s->db, s->field, &bt, NULL, NULL))
            break;
        atomic_fetch_add(&s->written, N);
        usleep(50000);
    }
    return NULL;
}

static void source_close(struct source *s)
{
    if (s->writing) {
        atomic_store(&s->stop, true);
        pthread_join(s->writer, NULL);
    }
    lm_mirror_close(s->mirror); /* before the database it writes */
    lm_db_close(s->db);
    if (s->tmpdir[0])
        nftw(s->tmpdir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static int make_tmpdir(const char *cmd, struct source *s)
{
    snprintf(s->tmpdir, sizeof s->tmpdir, "/tmp/lumadb-view-XXXXXX");
    if (mkdtemp(s->tmpdir))
        return 0;
    fprintf(stderr, "lumadb %s: cannot create a temporary directory: %s\n", cmd,
            strerror(errno));
    s->tmpdir[0] = 0;
    return 1;
}

/* After the first SYNCED: a lost connection or a frame that could not be applied. */
static void mirror_log(void *user, const char *line)
{
    const struct source *s = user;
    fprintf(stderr, "lumadb %s: %s\n", s->cmd, line);
}

/* A remote field: a mirror into a temporary directory, waited for until it holds the
 * whole field (so that the first frame and --camera-less framing see all of it). The
 * renderer then reads it like any database; the mirror's writes show as new lsns. */
static int remote_open(const char *cmd, const struct view_args *a, struct source *s)
{
    struct lm_error err = {0};
    struct lm_db_opts o = {.create = true, .sync = LM_SYNC_NONE}; /* a copy: no fsync */
    int rc;
    if (make_tmpdir(cmd, s))
        return 1;
    if ((rc = lm_db_open(s->tmpdir, &o, &s->db, &err))) {
        fprintf(stderr, "lumadb %s: %s: %s\n", cmd, s->tmpdir,
                err.message[0] ? err.message : lm_strerror(rc));
        return 1;
    }
    struct lm_mirror_opts mo = {.db = s->db, .url = a->url, .token = a->token,
                                .log = mirror_log, .log_user = s};
    double t0 = now_s();
    struct sigaction sa = {.sa_handler = on_signal}; /* Ctrl-C while loading */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if ((rc = lm_mirror_open(&mo, &s->mirror, &err))) {
        fprintf(stderr, "lumadb %s: %s\n", cmd, err.message[0] ? err.message : lm_strerror(rc));
        return 1;
    }
    while ((rc = lm_mirror_wait(s->mirror, 0, 200, &err)) == -ETIMEDOUT && !interrupted)
        ;
    if (rc) {
        fprintf(stderr, "lumadb %s: %s\n", cmd,
                rc == -ETIMEDOUT ? "interrupted while loading the remote field" : err.message);
        return 1;
    }
    struct lm_mirror_stats st;
    lm_mirror_stats(s->mirror, &st);
    printf("remote: field '%s' from %s: %llu samples in %u chunks, copied in %.2f s\n",
           a->field, a->url, (unsigned long long)st.samples_applied, st.field_chunks,
           now_s() - t0);
    return 0;
}

static int source_open(const char *cmd, const struct view_args *a, struct source *s)
{
    memset(s, 0, sizeof *s);
    s->field = a->field;
    s->cmd = cmd;
    struct lm_error err = {0};
    int rc;
    if (a->url) {
        if ((rc = remote_open(cmd, a, s)))
            source_close(s);
        return rc;
    }
    if (!a->demo) {
        struct lm_db_opts o = {.read_only = true, .create = false};
        if ((rc = lm_db_open(a->dir, &o, &s->db, &err))) {
            fprintf(stderr, "lumadb %s: %s\n", cmd, err.message[0] ? err.message
                                                                   : lm_strerror(rc));
            return 1;
        }
        struct lm_field_info info;
        if (lm_field_info(s->db, a->field, &info, NULL) == LM_ENOFIELD)
            fprintf(stderr,
                    "lumadb %s: no field '%s' in %s yet; showing it as soon as the writer "
                    "creates it\n",
                    cmd, a->field, a->dir);
        return 0;
    }
    if (make_tmpdir(cmd, s))
        return 1;
    struct lm_demo_scene sc = {.side = a->side, .seed = 42};
    double t0 = now_s();
    if ((rc = lm_db_open(s->tmpdir, NULL, &s->db, &err)) ||
        (rc = lm_demo_load(s->db, a->field, &sc, 65536, &err))) {
        fprintf(stderr, "lumadb %s: demo: %s\n", cmd, err.message[0] ? err.message
                                                                     : lm_strerror(rc));
        source_close(s);
        return 1;
    }
    printf("demo: %u samples generated in %.2f s\n", sc.side * sc.side, now_s() - t0);
    if (a->live) {
        if (pthread_create(&s->writer, NULL, live_writer, s)) {
            fprintf(stderr, "lumadb %s: cannot start the live writer\n", cmd);
            source_close(s);
            return 1;
        }
        s->writing = true;
    }
    return 0;
}

/* ---------------------------------------------------------------- shared set-up */

struct session {
    struct view_args a;
    struct source src;
    lm_render_ctx *ctx;
    lm_render *r;
    struct lm_render_settings set;
    struct lm_render_camera cam, home;
};

static int report(const char *cmd, const char *what, int rc, const struct lm_error *err)
{
    fprintf(stderr, "lumadb %s: %s: %s\n", cmd, what,
            err && err->message[0] ? err->message : lm_strerror(rc));
    return 1;
}

/* Renders one frame. A remote field's mirror writes nothing meanwhile, so every chunk
 * is drawn in one version (mirror.h invariant 2). */
static int draw(struct session *s, int w, int h, struct lm_render_stats *st,
                struct lm_error *err)
{
    if (s->src.mirror)
        lm_mirror_lock(s->src.mirror);
    int rc = lm_render_frame(s->r, &s->cam, &s->set, w, h, st, err);
    if (s->src.mirror)
        lm_mirror_unlock(s->src.mirror);
    return rc;
}

/* The default camera: the field from the south-west, above (z up). */
static void home_camera(struct session *s)
{
    static const float from[3] = {-0.55f, -0.8f, 0.65f}, up[3] = {0, 0, 1};
    float bmin[3] = {-1, -1, -1}, bmax[3] = {1, 1, 1};
    lm_render_bounds(s->r, bmin, bmax, NULL);
    if (s->a.have_camera) {
        const float *c = s->a.camera;
        memcpy(s->home.eye, c, 3 * sizeof *c);
        memcpy(s->home.target, c + 3, 3 * sizeof *c);
        float l = sqrtf(c[6] * c[6] + c[7] * c[7] + c[8] * c[8]);
        for (int k = 0; k < 3; k++)
            s->home.up[k] = l > 0 ? c[6 + k] / l : (k == 2);
        s->home.fov_y_deg = s->a.fov;
    } else {
        lm_render_camera_frame(&s->home, bmin, bmax, from, up, s->a.fov,
                               (float)s->a.width / (float)s->a.height);
    }
    s->cam = s->home;
}

static void session_close(struct session *s)
{
    lm_render_close(s->r);
    lm_render_ctx_close(s->ctx);
    source_close(&s->src);
}

static int session_open(const char *cmd, int argc, char **argv, enum lm_render_ctx_kind kind,
                        struct session *s)
{
    memset(s, 0, sizeof *s);
    int rc = parse_args(cmd, argc, argv, &s->a);
    if (rc)
        return rc == 1 ? -1 : rc;
    /* glibc's default trimming returns memory every frame: llvmpipe runs 2.5-4x slower */
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    if ((rc = source_open(cmd, &s->a, &s->src)))
        return rc;
    struct lm_error err = {0};
    struct lm_render_ctx_opts co = {.kind = kind, .width = s->a.width, .height = s->a.height,
                                    .title = "lumadb view", .vsync = s->a.frames <= 0};
    if ((rc = lm_render_ctx_open(&co, &s->ctx, &err))) {
        report(cmd, "opening a GL context", rc, &err);
        source_close(&s->src);
        return 1;
    }
    if ((rc = lm_render_open(s->src.db, s->a.field, &s->a.opts, &s->r, &err))) {
        report(cmd, "starting the renderer", rc, &err);
        session_close(s);
        return 1;
    }
    lm_render_settings_default(&s->set);
    s->set.color = s->a.color;
    s->set.shape = s->a.cubes ? LM_RENDER_CUBES : LM_RENDER_SPLATS;
    s->set.lod = !s->a.no_lod;
    s->set.boxes = s->a.boxes;
    s->set.axes = s->a.axes;
    home_camera(s);
    return 0;
}

/* ---------------------------------------------------------------- snapshot */

int lm_cmd_snapshot(int argc, char **argv)
{
    struct session s;
    int rc = session_open("snapshot", argc, argv, LM_RENDER_CTX_OFFSCREEN, &s);
    if (rc)
        return rc < 0 ? 0 : rc;
    if (!s.a.out) {
        fprintf(stderr, "lumadb snapshot: --out FILE.png is required\n");
        session_close(&s);
        return 2;
    }
    struct lm_error err = {0};
    struct lm_render_stats st;
    int w, h;
    char hud[256];
    lm_render_ctx_begin(s.ctx, &w, &h);
    s.set.complete = true;
    snprintf(hud, sizeof hud, "%s  %s", s.a.field, lm_render_color_name(s.set.color));
    s.set.hud = s.a.hud ? hud : NULL;
    double t0 = now_s();
    if ((rc = draw(&s, w, h, &st, &err)) ||
        (rc = lm_render_ctx_present(s.ctx, &err)) ||
        (rc = lm_render_ctx_write_png(s.ctx, s.a.out, &err))) {
        session_close(&s);
        return report("snapshot", "rendering", rc, &err);
    }
    printf("snapshot: %s (%dx%d, %s): %llu voxels in %u tiles, LOD %u-%u, %.0f ms\n",
           s.a.out, w, h, lm_render_color_name(s.set.color), (unsigned long long)st.voxels,
           st.tiles_drawn, st.level_min, st.level_max, (now_s() - t0) * 1e3);
    session_close(&s);
    return 0;
}

/* ---------------------------------------------------------------- scripted camera */

struct keyframe {
    long frame;
    bool is_key;
    int key;
    float eye[3], target[3];
};

struct script {
    struct keyframe *k;
    size_t n;
};

static int script_load(const char *path, struct script *sc)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "lumadb view: cannot open script '%s': %s\n", path, strerror(errno));
        return 1;
    }
    char line[512];
    size_t cap = 0;
    long lineno = 0;
    int rc = 0;
    while (!rc && fgets(line, sizeof line, f)) {
        lineno++;
        char *p = line + strspn(line, " \t");
        if (*p == '#' || *p == '\n' || !*p)
            continue;
        struct keyframe k = {0};
        char what[16], a[128] = "", b[128] = "";
        int got = sscanf(p, "%ld %15s %127s %127s", &k.frame, what, a, b);
        if (got >= 3 && !strcmp(what, "key") && a[0]) {
            k.is_key = true;
            k.key = a[1] ? (!strcmp(a, "esc") ? LM_KEY_ESCAPE : -1)
                         : (a[0] >= 'a' && a[0] <= 'z' ? a[0] - 32 : a[0]);
            rc = k.key < 0;
        } else if (got == 4 && !strcmp(what, "camera")) {
            rc = parse_floats(a, k.eye, 3) != 3 || parse_floats(b, k.target, 3) != 3;
        } else {
            rc = 1;
        }
        if (rc) {
            fprintf(stderr, "%s:%ld: expected 'FRAME camera EX,EY,EZ TX,TY,TZ' or "
                    "'FRAME key K'\n", path, lineno);
            break;
        }
        if (sc->n == cap) {
            cap = cap ? cap * 2 : 16;
            struct keyframe *v = lm_realloc(sc->k, cap * sizeof *v);
            if (!v) {
                rc = 1;
                break;
            }
            sc->k = v;
        }
        sc->k[sc->n++] = k;
    }
    fclose(f);
    return rc;
}

/* Camera at `frame`: linear between the camera keyframes around it. */
static bool script_camera(const struct script *sc, long frame, struct lm_render_camera *cam)
{
    const struct keyframe *prev = NULL, *next = NULL;
    for (size_t i = 0; i < sc->n; i++) {
        if (sc->k[i].is_key)
            continue;
        if (sc->k[i].frame <= frame)
            prev = &sc->k[i];
        else if (!next)
            next = &sc->k[i];
    }
    if (!prev && !next)
        return false;
    if (!prev || !next) {
        const struct keyframe *k = prev ? prev : next;
        memcpy(cam->eye, k->eye, sizeof cam->eye);
        memcpy(cam->target, k->target, sizeof cam->target);
        return true;
    }
    float t = (float)(frame - prev->frame) / (float)(next->frame - prev->frame);
    for (int a = 0; a < 3; a++) {
        cam->eye[a] = prev->eye[a] + (next->eye[a] - prev->eye[a]) * t;
        cam->target[a] = prev->target[a] + (next->target[a] - prev->target[a]) * t;
    }
    return true;
}

/* ---------------------------------------------------------------- view */

struct view_state {
    bool fly, help, show_hud;
    bool adaptive;     /* coarsen while the camera moves to keep frames under ~40 ms */
    float detail;      /* pixel error when the camera is still */
    float moving;      /* pixel error while it moves (adaptive) */
    double fps, frame_ms;
    struct lm_render_stats st;
    double *times;    /* --frames: every frame's time (ms) */
    long n_times;
    double sum_ms, max_ms;
};

static void keys(struct session *s, struct view_state *v, int key, bool *quit)
{
    struct lm_error err = {0};
    int rc;
    switch (key) {
    case LM_KEY_ESCAPE: *quit = true; break;
    case 'M': s->set.color = (s->set.color + 1) % LM_RENDER_COLOR_COUNT; break;
    case 'C': s->set.shape = s->set.shape == LM_RENDER_CUBES ? LM_RENDER_SPLATS
                                                             : LM_RENDER_CUBES; break;
    case 'L': s->set.lod = !s->set.lod; break;
    case 'B': s->set.boxes = !s->set.boxes; break;
    case 'X': s->set.axes = !s->set.axes; break;
    case 'H': v->help = !v->help; break;
    case LM_KEY_F1: v->show_hud = !v->show_hud; break;
    case 'V': case LM_KEY_TAB: v->fly = !v->fly; break;
    case 'F': case LM_KEY_HOME: {
        float bmin[3], bmax[3], from[3];
        if (lm_render_bounds(s->r, bmin, bmax, NULL))
            break;
        for (int a = 0; a < 3; a++)
            from[a] = s->cam.eye[a] - s->cam.target[a];
        int w, h;
        lm_render_ctx_begin(s->ctx, &w, &h);
        lm_render_camera_frame(&s->cam, bmin, bmax, from, s->cam.up, s->cam.fov_y_deg,
                               h > 0 ? (float)w / (float)h : 1.0f);
        break;
    }
    case '[': v->detail = fmaxf(v->detail / 1.25f, 0.5f), v->moving = v->detail; break;
    case ']': v->detail = fminf(v->detail * 1.25f, 32.0f), v->moving = v->detail; break;
    case 'P': v->adaptive = !v->adaptive, v->moving = v->detail; break;
    case '=': case '+': s->set.exposure *= 1.25f; break;
    case '-': s->set.exposure /= 1.25f; break;
    case 'R': case LM_KEY_F5:
        if ((rc = lm_render_reload_shaders(s->r, &err)))
            report("view", "reloading shaders", rc, &err);
        else
            printf("view: shaders reloaded\n");
        break;
    default: break;
    }
}

static void controls(struct session *s, struct view_state *v, const struct lm_render_input *in,
                     double dt)
{
    struct lm_render_camera *c = &s->cam;
    float bmin[3] = {0}, bmax[3] = {1, 1, 1}, ext = 1;
    if (!lm_render_bounds(s->r, bmin, bmax, NULL))
        for (int a = 0; a < 3; a++)
            ext = fmaxf(ext, bmax[a] - bmin[a]);
    float spin = (float)(1.5 * dt);
    if (v->fly) {
        float speed = ext * 0.25f * (float)dt * (in->down[LM_KEY_SHIFT] ? 4.0f : 1.0f);
        lm_render_camera_move(c, speed * (in->down['W'] - in->down['S']),
                              speed * (in->down['D'] - in->down['A']),
                              speed * (in->down['E'] - in->down['Q']));
        if (in->button[0])
            lm_render_camera_look(c, (float)(-in->dx * 0.004), (float)(-in->dy * 0.004));
        lm_render_camera_look(c, spin * (in->down[LM_KEY_LEFT] - in->down[LM_KEY_RIGHT]),
                              spin * (in->down[LM_KEY_UP] - in->down[LM_KEY_DOWN]));
        return;
    }
    if (in->button[0] && !in->down[LM_KEY_SHIFT])
        lm_render_camera_orbit(c, (float)(-in->dx * 0.006), (float)(in->dy * 0.006));
    if (in->button[1] || in->button[2] || (in->button[0] && in->down[LM_KEY_SHIFT]))
        lm_render_camera_pan(c, (float)(-in->dx * 0.0015), (float)(in->dy * 0.0015));
    if (in->scroll != 0)
        lm_render_camera_zoom(c, powf(0.88f, (float)in->scroll));
    lm_render_camera_orbit(c, spin * (in->down[LM_KEY_RIGHT] - in->down[LM_KEY_LEFT]),
                           spin * (in->down[LM_KEY_UP] - in->down[LM_KEY_DOWN]));
    float z = (float)(1.0 + 1.5 * dt);
    if (in->down[LM_KEY_PAGE_UP])
        lm_render_camera_zoom(c, 1.0f / z);
    if (in->down[LM_KEY_PAGE_DOWN])
        lm_render_camera_zoom(c, z);
}

static void hud_text(const struct session *s, const struct view_state *v, char *buf,
                     size_t cap)
{
    const struct lm_render_stats *st = &v->st;
    int n = snprintf(buf, cap,
                     "%.1f fps (%.1f ms)   %llu voxels   LOD %u-%u%s\n"
                     "tiles: %u drawn, %u resident (%.1f MiB), %u loading   chunks: %u resident"
                     " of %u   lsn %llu\n"
                     "%s  %s  %s  detail %.1f px%s%s",
                     v->fps, v->frame_ms, (unsigned long long)st->voxels, st->level_min,
                     st->level_max, s->set.lod ? "" : " (LOD off)", st->tiles_drawn,
                     st->tiles_resident, (double)st->bytes_resident / 1048576.0,
                     st->tiles_pending, st->chunks_resident, st->chunks,
                     (unsigned long long)st->field_lsn,
                     lm_render_color_name(s->set.color),
                     s->set.shape == LM_RENDER_CUBES ? "cubes" : "splats",
                     v->fly ? "fly" : "orbit", s->set.pixel_error,
                     v->adaptive ? " (adaptive)" : "", v->help ? "" : "   H: help");
    if (s->src.mirror && n > 0 && (size_t)n < cap) {
        struct lm_mirror_stats ms;
        lm_mirror_stats(s->src.mirror, &ms);
        n += snprintf(buf + n, cap - (size_t)n, "\n%s: %s, %llu chunk versions received",
                      s->a.url, lm_mirror_state_name(ms.state),
                      (unsigned long long)ms.chunks_applied);
    }
    if (st->field_missing && n > 0 && (size_t)n < cap)
        n += snprintf(buf + n, cap - (size_t)n, "\nfield '%s' does not exist (yet)",
                      s->a.field);
    if (v->help && n > 0 && (size_t)n < cap)
        snprintf(buf + n, cap - (size_t)n,
                 "\n\norbit: left drag turn, right/middle or shift+left drag pan, wheel zoom,"
                 "\n       arrows turn, PgUp/PgDn zoom"
                 "\nfly (V or Tab): WASD move, Q/E down/up, shift faster, left drag or "
                 "arrows look"
                 "\nM colour mode  C cubes/splats  L LOD  B tile boxes  X axes  F frame field"
                 "\n[ ] finer/coarser detail  P adaptive detail  +/- exposure"
                 "\nR reload shaders  F1 HUD  H help  Esc quit");
}

static int cmp_double(const void *pa, const void *pb)
{
    double a = *(const double *)pa, b = *(const double *)pb;
    return a < b ? -1 : a > b;
}

static void print_summary(const struct session *s, const struct view_state *v, long frames,
                          double seconds)
{
    double mean = frames ? v->sum_ms / (double)frames : 0.0;
    if (v->n_times) { /* a scripted run draws all the time: its rate is the frame rate */
        qsort(v->times, (size_t)v->n_times, sizeof *v->times, cmp_double);
        printf("view: %ld frames in %.2f s: %.1f fps (frame mean %.1f ms, p95 %.1f ms, "
               "max %.1f ms)\n", frames, seconds, seconds > 0 ? (double)frames / seconds : 0.0,
               mean, v->times[(long)((double)(v->n_times - 1) * 0.95)], v->max_ms);
    } else { /* an interactive one idles when nothing changes */
        printf("view: %ld frames drawn in %.2f s (frame mean %.1f ms, max %.1f ms)\n", frames,
               seconds, mean, v->max_ms);
    }
    const struct lm_render_stats *st = &v->st;
    printf("view: last frame %llu voxels in %u tiles, LOD %u-%u; %u tiles resident (%.1f MiB); "
           "%llu tile loads, %llu evictions; %llu directory syncs, field lsn %llu",
           (unsigned long long)st->voxels, st->tiles_drawn, st->level_min, st->level_max,
           st->tiles_resident, (double)st->bytes_resident / 1048576.0,
           (unsigned long long)st->loads, (unsigned long long)st->evictions,
           (unsigned long long)st->syncs, (unsigned long long)st->field_lsn);
    if (s->src.writing)
        printf("; live writer added %llu samples",
               (unsigned long long)atomic_load(&s->src.written));
    if (s->src.mirror) {
        struct lm_mirror_stats ms;
        lm_mirror_stats(s->src.mirror, &ms);
        printf("; remote %s: %llu chunk versions, %llu samples received, server lsn %llu",
               lm_mirror_state_name(ms.state), (unsigned long long)ms.chunks_applied,
               (unsigned long long)ms.samples_applied, (unsigned long long)ms.server_lsn);
    }
    printf("\n");
}

int lm_cmd_view(int argc, char **argv)
{
    struct session s;
    int rc = session_open("view", argc, argv, LM_RENDER_CTX_WINDOW, &s);
    if (rc)
        return rc < 0 ? 0 : rc;
    struct script sc = {0};
    if (s.a.script && (rc = script_load(s.a.script, &sc))) {
        session_close(&s);
        lm_free(sc.k);
        return 2;
    }
    struct view_state v = {.show_hud = !s.a.no_hud, .adaptive = s.a.frames <= 0,
                           .detail = s.a.opts.pixel_error > 0 ? s.a.opts.pixel_error
                                                              : LM_RENDER_DEFAULT_PIXEL_ERROR};
    v.moving = v.detail;
    if (s.a.frames > 0 && !(v.times = lm_calloc((size_t)s.a.frames, sizeof *v.times))) {
        session_close(&s);
        return 1;
    }
    struct lm_error err = {0};
    char hud[1024];
    bool quit = false;
    double start = now_s(), last = start;
    long frame = 0;
    printf("view: %s, field '%s'%s%s\n", lm_render_ctx_renderer(s.ctx), s.a.field,
           s.a.demo ? " (demo)" : s.a.url ? " of " : "", s.a.url ? s.a.url : "");
    double wait = 0, last_shader_poll = start, refreshed_at = start;
    uint64_t shown_lsn = 0;
    int shown_w = -1, shown_h = -1;
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    while (!quit && !interrupted && (s.a.frames <= 0 || frame < s.a.frames)) {
        struct lm_render_input in;
        lm_render_ctx_poll(s.ctx, &in, wait);
        double t = now_s(), dt = t - last;
        last = t;
        for (int i = 0; i < in.n_pressed; i++)
            keys(&s, &v, in.pressed[i], &quit);
        quit = quit || in.close;
        bool active = s.a.frames > 0 || frame == 0 || in.n_pressed || in.scroll != 0 ||
                      in.refresh;
        if (t - last_shader_poll > 0.5) { /* hot reload from $LUMADB_SHADER_DIR */
            bool reloaded;
            last_shader_poll = t;
            if ((rc = lm_render_poll_shaders(s.r, &reloaded, &err)))
                report("view", "reloading shaders", rc, &err);
            else if (reloaded)
                printf("view: shaders reloaded\n");
            active = active || reloaded;
            rc = 0;
        }
        if (s.a.frames > 0) {
            for (size_t i = 0; i < sc.n; i++)
                if (sc.k[i].is_key && sc.k[i].frame == frame)
                    keys(&s, &v, sc.k[i].key, &quit);
            if (!script_camera(&sc, frame, &s.cam))
                lm_render_camera_tour(&s.home, s.a.frames > 1 ? (float)frame /
                                      (float)(s.a.frames - 1) : 0.0f, &s.cam);
        } else {
            controls(&s, &v, &in, dt);
            static const int moving[] = {'W', 'A', 'S', 'D', 'Q', 'E', LM_KEY_LEFT,
                                         LM_KEY_RIGHT, LM_KEY_UP, LM_KEY_DOWN,
                                         LM_KEY_PAGE_UP, LM_KEY_PAGE_DOWN};
            for (size_t i = 0; i < sizeof moving / sizeof *moving; i++)
                active = active || in.down[moving[i]];
            active = active || ((in.dx != 0 || in.dy != 0) &&
                                (in.button[0] || in.button[1] || in.button[2]));
        }
        int w, h;
        lm_render_ctx_begin(s.ctx, &w, &h);
        /* an idle window is not redrawn: nothing moved, nothing is loading, the data
         * and the size are as last shown; the next poll then sleeps a little */
        /* a read-only handle catches up with the writing process twice a second */
        if (now_s() - refreshed_at >= 0.5) {
            lm_db_refresh(s.src.db, NULL);
            refreshed_at = now_s();
        }
        uint64_t lsn = lm_db_lsn(s.src.db);
        if (!active && !v.st.tiles_pending && lsn == shown_lsn && w == shown_w &&
            h == shown_h) {
            wait = 0.1;
            continue;
        }
        /* still: full detail; moving: the adaptive detail */
        bool still = s.a.frames <= 0 && !in.n_pressed && in.scroll == 0 && !in.dx && !in.dy;
        for (int i = 0; i < LM_KEY_LIMIT && still; i++)
            still = !in.down[i] || i == LM_KEY_SHIFT;
        s.set.pixel_error = v.adaptive && !still ? v.moving : v.detail;
        wait = 0;
        shown_lsn = lsn;
        shown_w = w;
        shown_h = h;
        hud_text(&s, &v, hud, sizeof hud);
        s.set.hud = v.show_hud ? hud : NULL;
        double f0 = now_s();
        bool shot = s.a.out && s.a.frames > 0 && frame == s.a.frames - 1;
        s.set.complete = shot; /* the picture a snapshot of this camera would show */
        if ((rc = draw(&s, w, h, &v.st, &err)) ||
            (shot && (rc = lm_render_ctx_write_png(s.ctx, s.a.out, &err))) ||
            (rc = lm_render_ctx_present(s.ctx, &err))) {
            report("view", "rendering", rc, &err);
            break;
        }
        double ms = (now_s() - f0) * 1e3;
        v.frame_ms = v.frame_ms ? 0.9 * v.frame_ms + 0.1 * ms : ms;
        v.fps = 1000.0 / fmax(v.frame_ms, 1e-3);
        if (v.times)
            v.times[v.n_times++] = ms;
        v.sum_ms += ms;
        v.max_ms = fmax(v.max_ms, ms);
        if (v.adaptive && !still) {
            if (v.frame_ms > 50)
                v.moving = fminf(v.moving * 1.15f, 16.0f);
            else if (v.frame_ms < 25)
                v.moving = fmaxf(v.moving / 1.05f, v.detail);
        }
        frame++;
    }
    print_summary(&s, &v, frame, now_s() - start);
    lm_free(v.times);
    lm_free(sc.k);
    session_close(&s);
    return rc ? 1 : 0;
}
