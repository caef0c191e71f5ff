/* render.c - the frame: directory sync, LOD selection, tile loads, drawing (render.h). */
#include "render.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include <cglm/cglm.h>

#include "alloc.h"
#include "error.h"
#include "gl.h"
#include "hud.h"
#include "lod.h"
#include "tiles.h"

struct voxel_prog {
    GLuint id;
    GLint view_proj, eye, cell, point_scale, mode, cubes, exposure, range;
};

struct line_prog {
    GLuint id;
    GLint view_proj;
};

struct lm_render {
    lm_db *db;
    char *field;
    struct lm_render_opts opts;
    struct voxel_prog voxel;
    struct line_prog line;
    GLuint line_vao, line_vbo;
    float *lines;            /* x y z r g b per vertex */
    size_t n_lines, cap_lines;
    struct lm__hud hud;
    struct lm__lod lod;
    struct lm__lod_plan plan;
    struct lm__tiles tiles;
    bool t_base_set;
    int64_t shader_mtime_ns; /* newest shader file seen by lm_render_poll_shaders */
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* ---------------------------------------------------------------- names, settings */

static const char *const color_names[LM_RENDER_COLOR_COUNT] = {"radiance", "colour",
                                                               "intensity", "time"};

const char *lm_render_color_name(enum lm_render_color c)
{
    return (unsigned)c < LM_RENDER_COLOR_COUNT ? color_names[c] : "?";
}

int lm_render_color_parse(const char *name)
{
    for (int i = 0; i < LM_RENDER_COLOR_COUNT; i++)
        if (!strcasecmp(name, color_names[i]))
            return i;
    if (!strcasecmp(name, "color"))
        return LM_RENDER_COLOR_STORED;
    return LM_EBADARG;
}

void lm_render_settings_default(struct lm_render_settings *s)
{
    memset(s, 0, sizeof *s);
    s->color = LM_RENDER_COLOR_RADIANCE;
    s->shape = LM_RENDER_SPLATS;
    s->lod = true;
    s->exposure = 1.0f;
}

/* ---------------------------------------------------------------- programs */

/* The renderer's shader files: voxel, line and HUD program, vertex then fragment. */
static const char *const shader_files[] = {"voxel.vert", "voxel.frag", "line.vert",
                                           "line.frag", "hud.vert", "hud.frag"};

static int load_programs(struct voxel_prog *vp, struct line_prog *lp, GLuint *hud,
                         struct lm_error *err)
{
    GLuint v = 0, l = 0, h = 0;
    int rc = lm_gl_program(shader_files[0], shader_files[1], &v, err);
    if (!rc)
        rc = lm_gl_program(shader_files[2], shader_files[3], &l, err);
    if (!rc)
        rc = lm_gl_program(shader_files[4], shader_files[5], &h, err);
    if (rc) {
        if (v)
            glDeleteProgram(v);
        if (l)
            glDeleteProgram(l);
        return rc;
    }
    vp->id = v;
    vp->view_proj = glGetUniformLocation(v, "u_view_proj");
    vp->eye = glGetUniformLocation(v, "u_eye");
    vp->cell = glGetUniformLocation(v, "u_cell");
    vp->point_scale = glGetUniformLocation(v, "u_point_scale");
    vp->mode = glGetUniformLocation(v, "u_mode");
    vp->cubes = glGetUniformLocation(v, "u_cubes");
    vp->exposure = glGetUniformLocation(v, "u_exposure");
    vp->range = glGetUniformLocation(v, "u_range");
    lp->id = l;
    lp->view_proj = glGetUniformLocation(l, "u_view_proj");
    *hud = h;
    return 0;
}

/* Newest modification time of the shader files in dir (ns), 0 if none is there. */
static int64_t newest_shader(const char *dir)
{
    int64_t newest = 0;
    for (size_t i = 0; i < sizeof shader_files / sizeof *shader_files; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, shader_files[i]);
        if (stat(path, &st) == 0) {
            int64_t t = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
            newest = t > newest ? t : newest;
        }
    }
    return newest;
}

int lm_render_poll_shaders(lm_render *r, bool *reloaded, struct lm_error *err)
{
    *reloaded = false;
    const char *dir = getenv("LUMADB_SHADER_DIR");
    if (!dir || !*dir)
        return 0;
    int64_t t = newest_shader(dir);
    if (!r->shader_mtime_ns || t <= r->shader_mtime_ns) {
        r->shader_mtime_ns = r->shader_mtime_ns ? r->shader_mtime_ns : t;
        return 0;
    }
    r->shader_mtime_ns = t;
    int rc = lm_render_reload_shaders(r, err);
    *reloaded = rc == 0;
    return rc;
}

int lm_render_reload_shaders(lm_render *r, struct lm_error *err)
{
    struct voxel_prog vp;
    struct line_prog lp;
    GLuint hud;
    int rc = load_programs(&vp, &lp, &hud, err);
    if (rc)
        return rc;
    glDeleteProgram(r->voxel.id);
    glDeleteProgram(r->line.id);
    r->voxel = vp;
    r->line = lp;
    lm__hud_set_program(&r->hud, hud);
    return 0;
}

/* ---------------------------------------------------------------- open, close */

int lm_render_open(lm_db *db, const char *field, const struct lm_render_opts *opts,
                   lm_render **out, struct lm_error *err)
{
    if (!db || !field || !out)
        return lm__fail(err, LM_EBADARG, "renderer needs a database and a field name");
    lm_render *r = lm_calloc(1, sizeof *r);
    if (!r || !(r->field = lm_strdup(field))) {
        lm_free(r);
        return lm__fail(err, -ENOMEM, "out of memory opening the renderer");
    }
    r->db = db;
    if (opts)
        r->opts = *opts;
    if (!r->opts.voxel_budget)
        r->opts.voxel_budget = LM_RENDER_DEFAULT_BUDGET;
    if (!r->opts.memory_budget)
        r->opts.memory_budget = 256u << 20;
    if (!(r->opts.pixel_error > 0))
        r->opts.pixel_error = LM_RENDER_DEFAULT_PIXEL_ERROR;
    if (!(r->opts.load_ms > 0))
        r->opts.load_ms = 10.0;
    lm__lod_init(&r->lod);
    GLuint hud_prog = 0;
    int rc = load_programs(&r->voxel, &r->line, &hud_prog, err);
    if (rc) {
        lm_free(r->field);
        lm_free(r);
        return rc;
    }
    if ((rc = lm__hud_init(&r->hud, hud_prog, err)) || (rc = lm__tiles_init(&r->tiles, err)))
        goto fail;
    glGenVertexArrays(1, &r->line_vao);
    glGenBuffers(1, &r->line_vbo);
    glBindVertexArray(r->line_vao);
    glBindBuffer(GL_ARRAY_BUFFER, r->line_vbo);
    glEnableVertexAttribArray(0);
    glVertexAttribPointer(0, 3, GL_FLOAT, GL_FALSE, 6 * sizeof(float), (void *)0);
    glEnableVertexAttribArray(1);
    glVertexAttribPointer(1, 3, GL_FLOAT, GL_FALSE, 6 * sizeof(float),
                          (void *)(3 * sizeof(float)));
    glBindVertexArray(0);
    glBindBuffer(GL_ARRAY_BUFFER, 0);
    if ((rc = lm_gl_check("creating the renderer", err)) ||
        (rc = lm__lod_sync(&r->lod, db, field, NULL, err)))
        goto fail;
    *out = r;
    return 0;
fail:
    lm_render_close(r);
    return rc;
}

void lm_render_close(lm_render *r)
{
    if (!r)
        return;
    if (r->voxel.id)
        glDeleteProgram(r->voxel.id);
    if (r->line.id)
        glDeleteProgram(r->line.id);
    if (r->line_vao)
        glDeleteVertexArrays(1, &r->line_vao);
    if (r->line_vbo)
        glDeleteBuffers(1, &r->line_vbo);
    lm__hud_free(&r->hud);
    lm__tiles_free(&r->tiles);
    lm__lod_plan_free(&r->plan);
    lm__lod_free(&r->lod);
    lm_free(r->lines);
    lm_free(r->field);
    lm_free(r);
}

int lm_render_bounds(lm_render *r, float bmin[3], float bmax[3], struct lm_error *err)
{
    int rc = lm__lod_sync(&r->lod, r->db, r->field, NULL, err);
    if (rc)
        return rc;
    if (!r->lod.have_field || !r->lod.n_chunks)
        return lm__fail(err, LM_ENOTFOUND, "field '%s' is missing or empty", r->field);
    memcpy(bmin, r->lod.bmin, 3 * sizeof *bmin);
    memcpy(bmax, r->lod.bmax, 3 * sizeof *bmax);
    return 0;
}

/* ---------------------------------------------------------------- selection and loads */

struct probe_ctx {
    const struct lm__tiles *tiles;
    bool need_time;
};

static enum lm__tile_state probe(void *ctx, const struct lm__lnode *n, uint32_t *count)
{
    const struct probe_ctx *p = ctx;
    return lm__tiles_state(p->tiles, n, p->need_time, count);
}

/* Selects and loads until the view is complete (s->complete) or the frame's loading
 * time is spent; leaves the final draw list in r->plan. */
static int select_and_load(lm_render *r, const struct lm__lod_view *view,
                           const struct lm_render_settings *s, struct lm_render_stats *st,
                           struct lm_error *err)
{
    struct probe_ctx pc = {&r->tiles, s->color == LM_RENDER_COLOR_TIME};
    double t0 = now_ms();
    for (int round = 0; round < 4 * LM__LOD_MAX_LEVEL; round++) {
        int rc = lm__lod_select(&r->lod, view, probe, &pc, &r->plan);
        if (rc)
            return lm__fail(err, rc, "out of memory choosing tiles");
        st->tiles_pending = r->plan.n_load;
        if (!r->plan.n_load)
            break;
        /* absent tiles first; at least one stale tile a frame so that changes keep
         * showing while the camera moves */
        uint32_t loaded = 0;
        bool stale_done = false;
        for (uint32_t i = 0; i < r->plan.n_load; i++) {
            const struct lm__lod_pick *p = &r->plan.load[i];
            bool stale = p->state == LM__TILE_STALE;
            if (!s->complete && !p->required && loaded && now_ms() - t0 > r->opts.load_ms &&
                (stale_done || !stale))
                continue;
            if ((rc = lm__tiles_load(&r->tiles, r->db, r->field, &r->lod, p->node,
                                     pc.need_time, err)))
                return rc;
            stale_done = stale_done || stale;
            loaded++;
        }
        st->tiles_loaded += loaded;
        if (!s->complete) { /* draw what is resident now; the rest loads next frame */
            if ((rc = lm__lod_select(&r->lod, view, probe, &pc, &r->plan)))
                return lm__fail(err, rc, "out of memory choosing tiles");
            st->tiles_pending = r->plan.n_load;
            break;
        }
    }
    st->load_ms = now_ms() - t0;
    return 0;
}

/* ---------------------------------------------------------------- lines */

static int line(lm_render *r, const float a[3], const float b[3], const float rgb[3])
{
    if (r->n_lines + 2 > r->cap_lines) {
        size_t cap = r->cap_lines ? r->cap_lines * 2 : 1024;
        float *v = lm_realloc(r->lines, cap * 6 * sizeof *v);
        if (!v)
            return -ENOMEM;
        r->lines = v;
        r->cap_lines = cap;
    }
    float *o = r->lines + r->n_lines * 6;
    memcpy(o, a, 3 * sizeof *o);
    memcpy(o + 3, rgb, 3 * sizeof *o);
    memcpy(o + 6, b, 3 * sizeof *o);
    memcpy(o + 9, rgb, 3 * sizeof *o);
    r->n_lines += 2;
    return 0;
}

static int box_lines(lm_render *r, const float lo[3], const float hi[3], const float rgb[3])
{
    int rc = 0;
    for (int e = 0; e < 12 && !rc; e++) {
        int axis = e / 4, o1 = (axis + 1) % 3, o2 = (axis + 2) % 3;
        float a[3], b[3];
        a[axis] = lo[axis];
        b[axis] = hi[axis];
        a[o1] = b[o1] = (e & 1) ? hi[o1] : lo[o1];
        a[o2] = b[o2] = (e & 2) ? hi[o2] : lo[o2];
        rc = line(r, a, b, rgb);
    }
    return rc;
}

static int overlay_lines(lm_render *r, const struct lm_render_settings *s)
{
    static const float level_rgb[6][3] = {{1.0f, 0.3f, 0.3f}, {1.0f, 0.7f, 0.2f},
                                          {0.9f, 0.9f, 0.2f}, {0.3f, 0.9f, 0.4f},
                                          {0.3f, 0.7f, 1.0f}, {0.8f, 0.4f, 1.0f}};
    r->n_lines = 0;
    int rc = 0;
    for (uint32_t i = 0; s->boxes && i < r->plan.n_draw && !rc; i++) {
        const struct lm__lnode *n = r->plan.draw[i].node;
        rc = box_lines(r, n->bmin, n->bmax, level_rgb[n->key.k % 6]);
    }
    if (s->axes && !rc && r->lod.n_chunks) {
        float ext = 0;
        for (int a = 0; a < 3; a++)
            ext = fmaxf(ext, r->lod.bmax[a] - r->lod.bmin[a]);
        static const float o[3] = {0, 0, 0}, rgb[3][3] = {{1, 0.2f, 0.2f}, {0.2f, 1, 0.2f},
                                                           {0.3f, 0.5f, 1}};
        for (int a = 0; a < 3 && !rc; a++) {
            float tip[3] = {0, 0, 0};
            tip[a] = 0.25f * ext;
            rc = line(r, o, tip, rgb[a]);
        }
        static const float white[3] = {0.8f, 0.8f, 0.8f};
        if (!rc)
            rc = box_lines(r, r->lod.bmin, r->lod.bmax, white);
    }
    return rc;
}

/* ---------------------------------------------------------------- the frame */

/* Near and far planes enclosing the field (grown by the coarsest cell: cubes stick out
 * of the samples' bounds). */
static void depth_range(const lm_render *r, const struct lm_render_camera *cam, float *near_d,
                        float *far_d)
{
    vec3 fwd;
    glm_vec3_sub((float *)cam->target, (float *)cam->eye, fwd);
    glm_vec3_normalize(fwd);
    if (!r->lod.n_chunks) {
        *near_d = 0.1f;
        *far_d = 1000.0f;
        return;
    }
    float grow = ldexpf(r->lod.voxel_size, (int)r->lod.top), lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < 8; i++) {
        float d = 0;
        for (int a = 0; a < 3; a++) {
            float c = (i >> a & 1) ? r->lod.bmax[a] + grow : r->lod.bmin[a] - grow;
            d += (c - cam->eye[a]) * fwd[a];
        }
        lo = fminf(lo, d);
        hi = fmaxf(hi, d);
    }
    if (hi <= 0) { /* the field is behind the camera */
        *near_d = 0.1f;
        *far_d = 1.0f;
        return;
    }
    *far_d = hi * 1.01f;
    *near_d = fmaxf(lo * 0.99f, *far_d * 1e-4f);
}

static void draw_voxels(lm_render *r, const struct lm_render_camera *cam,
                        const struct lm_render_settings *s, const float *view_proj,
                        float point_scale)
{
    const struct voxel_prog *vp = &r->voxel;
    bool cubes = s->shape == LM_RENDER_CUBES;
    glEnable(GL_DEPTH_TEST);
    glDepthFunc(GL_LESS);
    if (cubes) {
        glEnable(GL_CULL_FACE);
        glCullFace(GL_BACK);
    } else {
        glDisable(GL_CULL_FACE);
    }
    glEnable(GL_PROGRAM_POINT_SIZE);
    glUseProgram(vp->id);
    glUniformMatrix4fv(vp->view_proj, 1, GL_FALSE, view_proj);
    glUniform3fv(vp->eye, 1, cam->eye);
    glUniform1f(vp->point_scale, point_scale);
    glUniform1i(vp->mode, (int)s->color);
    glUniform1i(vp->cubes, cubes);
    glUniform1f(vp->exposure, s->exposure);
    if (s->color == LM_RENDER_COLOR_TIME)
        glUniform2f(vp->range, (float)((double)(r->lod.t_min - r->tiles.t_base) * 1e-6),
                    (float)((double)(r->lod.t_max - r->tiles.t_base) * 1e-6));
    else
        glUniform2f(vp->range, r->lod.i_min, r->lod.i_max);
    for (uint32_t i = 0; i < r->plan.n_draw; i++) {
        const struct lm__lnode *n = r->plan.draw[i].node;
        struct lm__tile *tile = lm__tiles_find(&r->tiles, &n->key);
        if (!tile)
            continue;
        tile->used_frame = r->tiles.frame;
        glUniform1f(vp->cell, ldexpf(r->lod.voxel_size, n->key.k));
        lm__tiles_draw(tile, cubes);
    }
    glBindVertexArray(0);
}

int lm_render_frame(lm_render *r, const struct lm_render_camera *cam,
                    const struct lm_render_settings *s, int width, int height,
                    struct lm_render_stats *stats, struct lm_error *err)
{
    struct lm_render_stats st = {0};
    int rc = lm__lod_sync(&r->lod, r->db, r->field, NULL, err);
    if (rc)
        return rc;
    if (r->lod.have_field && !r->t_base_set) {
        r->tiles.t_base = r->lod.t_min; /* time origin of the tiles' time column */
        r->t_base_set = r->lod.n_chunks > 0;
    }
    r->tiles.frame++;
    if (width <= 0 || height <= 0)
        return 0;
    float aspect = (float)width / (float)height, near_d, far_d;
    depth_range(r, cam, &near_d, &far_d);
    mat4 view, proj, vp;
    lm_render_camera_matrices(cam, aspect, near_d, far_d, (float *)view, (float *)proj);
    glm_mat4_mul(proj, view, vp);
    struct lm_region frustum;
    if ((rc = lm_frustum_from_camera(cam->eye, cam->target, cam->up, cam->fov_y_deg, aspect,
                                     near_d, far_d, &frustum)))
        return lm__fail(err, rc, "bad camera (eye equals target, or up parallel to the view)");
    struct lm__lod_view lv = {
        .eye = {cam->eye[0], cam->eye[1], cam->eye[2]},
        .focal_px = (float)height / (2.0f * tanf(glm_rad(cam->fov_y_deg) * 0.5f)),
        .pixel_error = !s->lod ? 0.0f : s->pixel_error > 0 ? s->pixel_error : r->opts.pixel_error,
        .budget = !s->lod ? UINT64_MAX
                          : r->opts.voxel_budget / (s->shape == LM_RENDER_CUBES ? 4 : 1),
    };
    memcpy(lv.planes, frustum.planes, sizeof lv.planes);
    if ((rc = select_and_load(r, &lv, s, &st, err)))
        return rc;

    glClearColor(LM_RENDER_BG_R / 255.0f, LM_RENDER_BG_G / 255.0f, LM_RENDER_BG_B / 255.0f, 1);
    glClearDepth(1.0);
    glDepthMask(GL_TRUE);
    glClear(GL_COLOR_BUFFER_BIT | GL_DEPTH_BUFFER_BIT);
    draw_voxels(r, cam, s, (float *)vp, proj[1][1] * (float)height * 0.5f);
    if ((s->boxes || s->axes) && !(rc = overlay_lines(r, s)) && r->n_lines) {
        glUseProgram(r->line.id);
        glUniformMatrix4fv(r->line.view_proj, 1, GL_FALSE, (float *)vp);
        glBindVertexArray(r->line_vao);
        glBindBuffer(GL_ARRAY_BUFFER, r->line_vbo);
        glBufferData(GL_ARRAY_BUFFER, (GLsizeiptr)(r->n_lines * 6 * sizeof(float)), r->lines,
                     GL_STREAM_DRAW);
        glDrawArrays(GL_LINES, 0, (GLsizei)r->n_lines);
        glBindVertexArray(0);
        glBindBuffer(GL_ARRAY_BUFFER, 0);
    }
    if (rc)
        return lm__fail(err, rc, "out of memory drawing outlines");
    if (s->hud && (rc = lm__hud_draw(&r->hud, s->hud, 8, 8, 2.0f, width, height, err)))
        return rc;
    lm__tiles_evict(&r->tiles, r->opts.memory_budget);
    if ((rc = lm_gl_check("drawing a frame", err)))
        return rc;

    st.voxels = r->plan.voxels;
    st.tiles_drawn = r->plan.n_draw;
    st.level_min = r->plan.level_min;
    st.level_max = r->plan.level_max;
    st.tiles_resident = r->tiles.n;
    st.bytes_resident = r->tiles.bytes;
    st.loads = r->tiles.loads;
    st.evictions = r->tiles.evictions;
    st.field_lsn = r->lod.field_lsn;
    st.syncs = r->lod.syncs;
    st.chunks = r->lod.n_chunks;
    for (uint32_t i = 0; i < r->tiles.n; i++)
        st.chunks_resident += r->tiles.v[i].key.k == 0;
    st.field_missing = !r->lod.have_field;
    if (stats)
        *stats = st;
    return 0;
}
