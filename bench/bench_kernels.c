/* bench_kernels.c - throughput of every kernel on every path this machine has (scalar,
 * AVX2, OpenCL), each beside a memory-sum of the same bytes measured in the same run
 * (the bandwidth bound), and the ray march beside OpenVDB's VolumeRayIntersector on
 * the same voxels with the same shading. Paths take turns within each repetition and
 * keep their best, so that drift on a shared machine touches them alike. OpenCL runs
 * once untimed first (program build, work-group compile).
 * Usage: bench_kernels [section ...] [--rows M] [--reps R]
 *   sections: scan cull ray lod knn (default: all); --rows: scan rows in millions (16);
 *   --reps: repetitions (3). LUMADB_CL_SHAPE=gpu runs the GPU-shaped OpenCL kernels. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "anchors.h"
#include "bench_util.h"
#include "cull.h"
#include "device.h"
#include "knn.h"
#include "lod_pyramid.h"
#include "raymarch.h"
#include "scan.h"
#include "sh.h"

static int reps = 3;

static void *must_alloc(size_t n)
{
    void *p = lm_alloc(n);
    if (!p) {
        fprintf(stderr, "bench_kernels: cannot allocate %zu bytes\n", n);
        exit(1);
    }
    return p;
}

/* ---------------------------------------------------------------- the driver */

#define MAX_PATHS 4
#define MAX_SPANS 8

/* Bytes a kernel reads, for the memory-sum beside it. */
struct span {
    const void *p;
    size_t n;
};

/* One measured case: the paths (tables, or anything run knows), what a call does and
 * reads, and the call itself. */
struct job {
    const char *what, *unit; /* "box ~10%", "rows" */
    double units;            /* per call */
    struct span read[MAX_SPANS];
    int n_read;              /* 0: no GB/s columns */
    int n;
    const char *name[MAX_PATHS];
    const void *table[MAX_PATHS];
    int vs;                  /* the path every other is compared with; -1: AVX2/scalar */
    void (*run)(const void *table, void *ctx);
    void *ctx;
};

static void job_path(struct job *j, const void *t, const char *name)
{
    if (t) {
        j->table[j->n] = t;
        j->name[j->n++] = name;
    }
}

/* The three tables of a kernel, and vs = -1. */
#define JOB_PATHS(j, prefix)                                                               \
    do {                                                                                   \
        job_path(j, prefix##_scalar(), "scalar");                                          \
        job_path(j, prefix##_avx2(), "avx2");                                              \
        job_path(j, prefix##_opencl(), "opencl");                                          \
        (j)->vs = -1;                                                                      \
    } while (0)

static size_t read_bytes(const struct job *j)
{
    size_t b = 0;
    for (int i = 0; i < j->n_read; i++)
        b += j->read[i].n;
    return b;
}

/* GB/s of a memory-sum over the spans, one after the other. */
static double memsum(const struct job *j)
{
    double seconds = 0;
    for (int i = 0; i < j->n_read; i++)
        seconds += (double)j->read[i].n / 1e9 / bench_memsum_gbps(j->read[i].p, j->read[i].n, 1);
    return (double)read_bytes(j) / 1e9 / seconds;
}

/* The path path i is compared with: j->vs when set, else AVX2 when there is one (scalar
 * for AVX2 itself), else scalar; -1 for none. */
static int vs_of(const struct job *j, int i)
{
    if (j->vs >= 0)
        return i == j->vs ? -1 : j->vs;
    int avx2 = -1;
    for (int k = 0; k < j->n; k++)
        avx2 = !strcmp(j->name[k], "avx2") ? k : avx2;
    return i == 0 ? -1 : avx2 >= 0 && i != avx2 ? avx2 : 0;
}

static void header(const char *title)
{
    bench_table_header(title, (const char *const[]){"case", "path", "ms", "throughput",
                       "GB/s", "memsum GB/s", "of memsum", "vs", NULL});
}

/* Times every path (best of reps, the memory-sum in the same reps) and prints a row
 * each. */
static void measure(const struct job *j)
{
    double best[MAX_PATHS], mem = 0;
    for (int i = 0; i < j->n; i++) {
        best[i] = INFINITY;
        if (!strcmp(j->name[i], "opencl"))
            j->run(j->table[i], j->ctx); /* warm-up */
    }
    for (int r = 0; r < reps; r++) {
        if (j->n_read) {
            double g = memsum(j);
            mem = g > mem ? g : mem;
        }
        for (int i = 0; i < j->n; i++) {
            double t0 = bench_now();
            j->run(j->table[i], j->ctx);
            double dt = bench_now() - t0;
            best[i] = dt < best[i] ? dt : best[i];
        }
    }
    size_t bytes = read_bytes(j);
    for (int i = 0; i < j->n; i++) {
        char ms[32], thr[48], gb[32] = "-", ms2[32] = "-", of[32] = "-", vs[64] = "-";
        double dt = best[i];
        int v = vs_of(j, i);
        snprintf(ms, sizeof ms, "%.2f", dt * 1e3);
        snprintf(thr, sizeof thr, "%.1f M%s/s", j->units / dt / 1e6, j->unit);
        if (bytes) {
            snprintf(gb, sizeof gb, "%.2f", (double)bytes / dt / 1e9);
            snprintf(ms2, sizeof ms2, "%.2f", mem);
            snprintf(of, sizeof of, "%.0f%%", 100.0 * (double)bytes / dt / 1e9 / mem);
        }
        if (v >= 0)
            snprintf(vs, sizeof vs, "%.2fx %s", best[v] / dt, j->name[v]);
        bench_table_row(
            (const char *const[]){j->what, j->name[i], ms, thr, gb, ms2, of, vs, NULL});
    }
}

/* ---------------------------------------------------------------- scan */

struct scan_ctx {
    struct lm_scan_plan plan;
    const float *col;
    uint32_t *sel;  /* NULL: aggregate */
    uint64_t count; /* of the last call */
};

static void scan_run(const void *t, void *ctx)
{
    struct scan_ctx *s = ctx;
    if (s->sel) {
        size_t k = 0;
        lm_scan_select(t, &s->plan, s->sel, &k);
        s->count = k;
    } else {
        struct lm_scan_agg a;
        lm_scan_aggregate(t, &s->plan, s->col, LM_SCAN_F32, &a);
        s->count = a.count;
    }
}

struct scan_case {
    const char *name;
    struct lm_region region;
    bool pred, select; /* intensity > 0.5; a selection vector instead of a sum */
};

static void bench_scan(size_t rows)
{
    const float e10 = cbrtf(0.1f), e20 = cbrtf(0.2f), r10 = cbrtf(0.3f / (4 * (float)M_PI));
    const struct lm_region all = {.kind = LM_REGION_ALL},
                           box10 = {.kind = LM_REGION_BOX, .min = {0.2f, 0.2f, 0.2f},
                                    .max = {0.2f + e10, 0.2f + e10, 0.2f + e10}},
                           box20 = {.kind = LM_REGION_BOX, .min = {0.1f, 0.1f, 0.1f},
                                    .max = {0.1f + e20, 0.1f + e20, 0.1f + e20}},
                           ball = {.kind = LM_REGION_SPHERE, .center = {0.5f, 0.5f, 0.5f},
                                   .radius = r10};
    const struct scan_case cases[] = {
        {"sum, no filter", all, false, false},     {"box ~10%", box10, false, false},
        {"box ~20% + i > 0.5", box20, true, false}, {"sphere ~10%", ball, false, false},
        {"box ~10%, select", box10, false, true},
    };

    float *col[4];
    uint64_t rng = 42;
    for (int c = 0; c < 4; c++) { /* separately allocated columns, as a chunk has them */
        col[c] = must_alloc(rows * sizeof(float));
        for (size_t i = 0; i < rows; i++)
            col[c][i] = bench_rngf(&rng);
    }
    uint32_t *sel = must_alloc(rows * sizeof *sel);
    memset(sel, 0, rows * sizeof *sel);
    struct lm_scan_pred bright = {.col = col[3], .type = LM_SCAN_F32, .op = LM_CMP_GT, .a = 0.5};
    char title[160];
    snprintf(title, sizeof title, "Scan: filter + aggregate, %zuM rows (f32 x, y, z, "
             "intensity), best of %d; bytes = the columns read", rows >> 20, reps);
    header(title);
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        bool filtered = cases[ci].region.kind != LM_REGION_ALL;
        struct scan_ctx s = {.col = col[3], .sel = cases[ci].select ? sel : NULL};
        lm_scan_plan_init(&s.plan, rows, col[0], col[1], col[2], &cases[ci].region, &bright,
                          cases[ci].pred);
        struct job j = {.what = cases[ci].name, .unit = "rows", .units = (double)rows,
                        .run = scan_run, .ctx = &s};
        JOB_PATHS(&j, lm_scan);
        for (int c = filtered ? 0 : 3; c < 4; c++)
            j.read[j.n_read++] = (struct span){col[c], rows * sizeof(float)};
        measure(&j);
    }
    for (int c = 0; c < 4; c++)
        lm_free(col[c]);
    lm_free(sel);
}

/* ---------------------------------------------------------------- cull */

struct cull_ctx {
    const struct lm_cull_input *in;
    uint8_t *vis;
    float *sse, *hp;
};

static void cull_run(const void *t, void *ctx)
{
    struct cull_ctx *c = ctx;
    ((const struct lm_cull_table *)t)->classify(c->in, c->vis, c->sse, c->hp);
}

static void bench_cull(void)
{
    /* A complete octree over 128^3 leaf chunks of edge 8, every level down from the
     * root (level 7): 2.4M nodes, parents before children. */
    size_t n = 0, cap = 0;
    for (int L = 0; L <= 7; L++)
        cap += (size_t)1 << (3 * (7 - L));
    float *col[6];
    for (int c = 0; c < 6; c++)
        col[c] = must_alloc(cap * sizeof(float));
    uint8_t *level = must_alloc(cap), *vis = must_alloc(cap);
    int32_t *parent = must_alloc(cap * sizeof *parent);
    float *sse = must_alloc(cap * sizeof *sse), *hp = must_alloc(cap * sizeof *hp);
    size_t first[8]; /* first node of each level, root first */
    for (int L = 7; L >= 0; L--) {
        size_t side = (size_t)128 >> L, ps = side / 2;
        float cell = 8.0f * (float)(1 << L);
        first[7 - L] = n;
        for (size_t z = 0; z < side; z++)
            for (size_t y = 0; y < side; y++)
                for (size_t x = 0; x < side; x++, n++) {
                    col[0][n] = (float)x * cell;
                    col[1][n] = (float)y * cell;
                    col[2][n] = (float)z * cell;
                    col[3][n] = col[0][n] + cell;
                    col[4][n] = col[1][n] + cell;
                    col[5][n] = col[2][n] + cell;
                    level[n] = (uint8_t)L;
                    parent[n] = L == 7
                        ? -1
                        : (int32_t)(first[6 - L] + (z / 2 * ps + y / 2) * ps + x / 2);
                }
    }
    const float eye[3] = {-100, 500, -100};
    struct lm_cull_input in = {.n = n, .min_x = col[0], .min_y = col[1], .min_z = col[2],
                               .max_x = col[3], .max_y = col[4], .max_z = col[5],
                               .level = level, .parent = parent, .k = 800, .error0 = 0.25f};
    struct lm_region fr;
    lm_frustum_from_camera(eye, (const float[]){512, 0, 512}, (const float[]){0, 1, 0}, 60,
                           1.5f, 0.1f, 3000, &fr);
    memcpy(in.planes, fr.planes, sizeof fr.planes);
    memcpy(in.eye, eye, sizeof eye);
    char title[160];
    snprintf(title, sizeof title, "Frustum cull + screen-space error: %zu octree nodes, best "
             "of %d; bytes = boxes, levels, parents", n, reps);
    header(title);
    struct cull_ctx c = {&in, vis, sse, hp};
    struct job j = {.what = "classify nodes", .unit = "nodes", .units = (double)n,
                    .run = cull_run, .ctx = &c};
    JOB_PATHS(&j, lm_cull);
    for (int k = 0; k < 6; k++)
        j.read[j.n_read++] = (struct span){col[k], n * sizeof(float)};
    j.read[j.n_read++] = (struct span){level, n};
    j.read[j.n_read++] = (struct span){parent, n * sizeof(int32_t)};
    measure(&j);
    uint32_t *out = must_alloc(n * sizeof *out);
    struct lm_cull_result res;
    double t0 = bench_now();
    lm_cull_select(lm_cull_best(), &in, 1.0f, 20000, out, &res);
    printf("\nThe cut under a budget of 20000 nodes (%s): %zu nodes at tau %.3g (asked 1), "
           "%.1f ms with the classification.\n", lm_cull_best()->name, res.n, res.tau_used,
           (bench_now() - t0) * 1e3);
    for (int k = 0; k < 6; k++)
        lm_free(col[k]);
    lm_free(level);
    lm_free(vis);
    lm_free(parent);
    lm_free(sse);
    lm_free(hp);
    lm_free(out);
}

/* ---------------------------------------------------------------- ray march */

/* Voxels of a rolling terrain 1-3 voxels thick (first hits of camera rays), or a cloud
 * of random blobs (rays that cross many occupied voxels). */
static struct lm_voxel *make_voxels(bool terrain, size_t *n, uint32_t side)
{
    size_t cap = terrain ? (size_t)side * side * 3 : 2000000, k = 0;
    struct lm_voxel *v = must_alloc(cap * sizeof *v);
    uint8_t *seen = terrain ? NULL : lm_calloc((size_t)side * side * side, 1);
    uint64_t rng = 7;
    for (uint32_t z = 0; terrain && z < side; z++)
        for (uint32_t x = 0; x < side; x++) {
            double h = 40 + 18 * sin(x * 0.031) * cos(z * 0.027) + 6 * sin(x * 0.13 + z * 0.07);
            int top = (int)h, thick = 1 + (int)(bench_rng(&rng) % 3);
            for (int y = top - thick + 1; y <= top; y++) {
                struct lm_voxel *o = &v[k++];
                memset(o, 0, sizeof *o);
                o->coord[0] = (int32_t)x;
                o->coord[1] = y;
                o->coord[2] = (int32_t)z;
                o->count = 1 + (uint32_t)(bench_rng(&rng) % 8);
                for (int c = 0; c < 3; c++)
                    o->sh[c][0] = (float)o->count * bench_rngf(&rng);
            }
        }
    for (int blob = 0; !terrain && blob < 60; blob++) {
        float ctr[3] = {bench_rngf(&rng) * side, bench_rngf(&rng) * side, bench_rngf(&rng) * side};
        float r = 4 + bench_rngf(&rng) * 14;
        for (int j = 0; j < 20000 && k < cap; j++) {
            int q[3];
            bool in = true;
            for (int a = 0; a < 3; a++) {
                q[a] = (int)(ctr[a] + (bench_rngf(&rng) * 2 - 1) * r);
                in = in && q[a] >= 0 && q[a] < (int)side;
            }
            size_t at = in ? ((size_t)q[2] * side + (size_t)q[1]) * side + (size_t)q[0] : 0;
            if (!in || seen[at])
                continue;
            seen[at] = 1;
            struct lm_voxel *o = &v[k++];
            memset(o, 0, sizeof *o);
            memcpy(o->coord, q, sizeof q);
            o->count = 1 + (uint32_t)(bench_rng(&rng) % 8);
            for (int c = 0; c < 3; c++)
                for (int f = 0; f < 4; f++)
                    o->sh[c][f] = (float)o->count * (bench_rngf(&rng) - (f ? 0.5f : 0.0f));
        }
    }
    lm_free(seen);
    *n = k;
    return v;
}

/* A call of either a ray table or OpenVDB (table == the anchor, marked by vdb_path). */
struct ray_ctx {
    const struct lm_ray_grid *g;
    const struct lm_ray *rays;
    size_t n;
    uint32_t max_hits;
    struct lm_ray_out *out[MAX_PATHS];
    const void *table[MAX_PATHS];
    anchor_openvdb *vdb;
    const float *vrays;  /* the rays in OpenVDB's index space */
    int32_t *vhit;
    float (*vrgb)[3];
    size_t vhits;
};

/* OpenVDB's hits, shaded as ours are (lm__ray_shade): the value of a voxel in the
 * OpenVDB grid is its index in our grid. */
static void shade_visit(void *user, size_t ray, float value)
{
    struct ray_ctx *s = user;
    const float *d = s->rays[ray].d;
    const float back[3] = {-d[0], -d[1], -d[2]};
    float y[4];
    lm_sh_basis(back, y);
    lm__ray_shade(s->g, (uint32_t)value, y, s->vrgb[ray]);
}

static void ray_run(const void *t, void *ctx)
{
    struct ray_ctx *s = ctx;
    if (t == s->vdb) {
        memset(s->vrgb, 0, s->n * sizeof *s->vrgb);
        s->vhits = anchor_openvdb_raycast(s->vdb, s->vrays, s->n, s->max_hits == 1, s->vhit,
                                          shade_visit, s);
        return;
    }
    for (int i = 0; i < MAX_PATHS; i++)
        if (s->table[i] == t)
            lm_ray_march(t, s->g, s->rays, s->n, s->max_hits, s->out[i]);
}

static void bench_ray_case(const char *name, bool terrain, uint32_t max_hits)
{
    enum { W = 512, H = 512 };
    const uint32_t side = terrain ? 512 : 256;
    size_t nv, nr = (size_t)W * H;
    struct lm_voxel *vox = make_voxels(terrain, &nv, side);
    struct lm_ray_grid g;
    if (lm_ray_grid_build(vox, nv, 1.0f, &g)) {
        fprintf(stderr, "bench_kernels: grid build failed\n");
        exit(1);
    }
    /* the same voxels for OpenVDB: grid coordinates, value = our voxel index */
    int32_t *ijk = must_alloc(nv * 3 * sizeof *ijk);
    float *val = must_alloc(nv * sizeof *val);
    for (size_t i = 0; i < nv; i++) {
        size_t c[3];
        for (int a = 0; a < 3; a++)
            ijk[3 * i + a] =
                (int32_t)(c[a] = (size_t)(vox[i].coord[a] - (int32_t)lroundf(g.origin[a])));
        size_t bi =
            (size_t)g.brick_index[(c[2] / 8 * g.bricks[1] + c[1] / 8) * g.bricks[0] + c[0] / 8];
        size_t l = (c[2] % 8 * 8 + c[1] % 8) * 8 + c[0] % 8;
        val[i] = (float)(g.slot[bi * LM_RAY_BRICK_VOXELS + l] - 1);
    }
    anchor_openvdb *vdb = anchor_openvdb_build(ijk, val, nv);
    struct lm_ray *rays = must_alloc(nr * sizeof *rays);
    float *vrays = must_alloc(nr * 8 * sizeof *vrays);
    uint64_t rng = 99;
    for (size_t i = 0; i < nr; i++) {
        float d[3], len = 0;
        if (terrain) { /* a camera above one corner looking across the terrain */
            float u = ((float)(i % W) + 0.5f) / W - 0.5f, v = ((float)(i / W) + 0.5f) / H - 0.5f;
            memcpy(rays[i].o, (const float[]){-20, 120, -20}, 3 * sizeof(float));
            d[0] = 0.7f + u;
            d[1] = -0.45f + 0.6f * v;
            d[2] = 0.7f - u;
        } else { /* random chords through the cloud */
            for (int a = 0; a < 3; a++) {
                rays[i].o[a] = bench_rngf(&rng) * (float)side;
                d[a] = bench_rngf(&rng) * 2 - 1;
            }
        }
        for (int a = 0; a < 3; a++)
            len += d[a] * d[a];
        for (int a = 0; a < 3; a++)
            rays[i].d[a] = d[a] / sqrtf(len);
        rays[i].tmax = 2000;
        rays[i].pad = 0;
        for (int a = 0; a < 3; a++) { /* OpenVDB's index space: its voxel ijk is ours */
            vrays[8 * i + a] = (rays[i].o[a] - g.origin[a]) * g.inv_voxel;
            vrays[8 * i + 4 + a] = rays[i].d[a];
        }
        vrays[8 * i + 3] = rays[i].tmax * g.inv_voxel;
        vrays[8 * i + 7] = 0;
    }
    struct ray_ctx s = {.g = &g, .rays = rays, .n = nr, .max_hits = max_hits, .vdb = vdb,
                        .vrays = vrays};
    struct job j = {.what = name, .unit = "rays", .units = (double)nr, .run = ray_run,
                    .ctx = &s};
    JOB_PATHS(&j, lm_ray);
    j.vs = j.n;
    job_path(&j, vdb, "OpenVDB VolumeRayIntersector + DDA");
    for (int i = 0; i < j.n; i++) {
        s.table[i] = j.table[i];
        s.out[i] = must_alloc(nr * sizeof *s.out[i]);
    }
    s.vhit = must_alloc(nr * 3 * sizeof *s.vhit);
    s.vrgb = must_alloc(nr * sizeof *s.vrgb);
    anchor_openvdb_raycast(vdb, vrays, 1, 1, NULL, NULL, NULL); /* builds its tree */
    measure(&j);

    size_t hits = 0, same = 0, crossed = 0;
    for (size_t i = 0; i < nr; i++) {
        const struct lm_ray_out *o = &s.out[0][i];
        hits += o->hits > 0;
        crossed += o->hits;
        same += (o->hits ? !memcmp(o->voxel, &s.vhit[3 * i], 12) : s.vhit[3 * i] == INT32_MIN) &&
                !memcmp(o->radiance, s.vrgb[i], sizeof s.vrgb[i]);
        for (int k = 1; k < j.vs; k++)
            if (memcmp(&s.out[k][i], o, sizeof *o))
                fprintf(stderr, "bench_kernels: ray %zu: %s differs from scalar\n", i, j.name[k]);
    }
    printf("| %s: %zu voxels, %zu rays, %zu hit (OpenVDB %zu), %.1f occupied voxels per ray; "
           "first hit and radiance equal to OpenVDB's on %.2f%% of rays | | | | | | | |\n",
           name, nv, nr, hits, s.vhits, (double)crossed / (double)nr,
           100.0 * (double)same / (double)nr);
    for (int i = 0; i < j.n; i++)
        lm_free(s.out[i]);
    lm_free(s.vhit);
    lm_free(s.vrgb);
    lm_free(rays);
    lm_free(vrays);
    lm_free(ijk);
    lm_free(val);
    lm_free(vox);
    anchor_openvdb_free(vdb);
    lm_ray_grid_free(&g);
}

static void bench_ray(void)
{
    char title[200];
    snprintf(title, sizeof title, "Ray march: 512 x 512 rays, best of %d; OpenVDB shades its "
             "hits with the same SH code (vs: rays/s over OpenVDB's)", reps);
    header(title);
    bench_ray_case("terrain 512^2, first hit", true, 1);
    bench_ray_case("cloud 256^3, all hits + SH radiance", false, 0);
}

/* ---------------------------------------------------------------- LOD */

struct lod_ctx {
    const struct lm_lod_level *child;
    struct lm_lod_level *parent;
};

static void lod_run(const void *t, void *ctx)
{
    struct lod_ctx *c = ctx;
    lm_lod_parent(t, c->child, c->parent);
}

static void bench_lod(void)
{
    const uint32_t edge = 128, dim[3] = {edge, edge, edge}, pd[3] = {edge / 2, edge / 2, edge / 2};
    struct lm_lod_level child, parent;
    if (lm_lod_level_new(dim, &child) || lm_lod_level_new(pd, &parent)) {
        fprintf(stderr, "bench_kernels: cannot allocate LOD levels\n");
        exit(1);
    }
    uint64_t rng = 5;
    size_t cells = lm_lod_cells(&child);
    for (size_t i = 0; i < cells; i++)
        child.count[i] = (uint32_t)(bench_rng(&rng) % 4);
    for (size_t i = 0; i < cells * LM_LOD_SUMS; i++)
        child.sums[i] = bench_rngf(&rng);
    char title[160];
    snprintf(title, sizeof title, "LOD: one parent level of a %u^3 level (count + 16 sums per "
             "cell), best of %d; bytes = the child level", edge, reps);
    header(title);
    struct lod_ctx c = {&child, &parent};
    struct job j = {.what = "parent level", .unit = "cells",
                    .units = (double)lm_lod_cells(&parent), .run = lod_run, .ctx = &c};
    JOB_PATHS(&j, lm_lod);
    j.read[j.n_read++] = (struct span){child.count, cells * sizeof(uint32_t)};
    j.read[j.n_read++] = (struct span){child.sums, cells * LM_LOD_SUMS * sizeof(float)};
    measure(&j);
    lm_lod_level_free(&child);
    lm_lod_level_free(&parent);
}

/* ---------------------------------------------------------------- kNN */

struct knn_ctx {
    const struct lm_knn_input *in;
    uint32_t *idx, *found;
    float *d2;
};

static void knn_run(const void *t, void *ctx)
{
    struct knn_ctx *c = ctx;
    lm_knn_run(t, c->in, c->idx, c->d2, c->found);
}

static void bench_knn(void)
{
    enum { N = 4096, M = 16384, K = 8 };
    float *pts = must_alloc(3 * N * sizeof *pts), *q = must_alloc(3 * M * sizeof *q);
    uint64_t rng = 11;
    for (size_t i = 0; i < 3 * N; i++)
        pts[i] = bench_rngf(&rng) * 32;
    for (size_t i = 0; i < 3 * M; i++)
        q[i] = bench_rngf(&rng) * 32;
    struct lm_knn_input in = {.n = N, .x = pts, .y = pts + N, .z = pts + 2 * N, .m = M,
                              .qx = q, .qy = q + M, .qz = q + 2 * M, .k = K,
                              .max_d2 = INFINITY, .id = 1, .version = 1};
    struct knn_ctx c = {&in, must_alloc((size_t)M * K * sizeof(uint32_t)),
                        must_alloc(M * sizeof(uint32_t)),
                        must_alloc((size_t)M * K * sizeof(float))};
    char title[160];
    snprintf(title, sizeof title, "kNN, brute force: %d queries x %d points (one chunk), k = %d, "
             "best of %d; throughput in query-point pairs", M, N, K, reps);
    header(title);
    struct job j = {.what = "k nearest", .unit = "pairs", .units = (double)N * M,
                    .run = knn_run, .ctx = &c};
    JOB_PATHS(&j, lm_knn);
    measure(&j);
    lm_free(pts);
    lm_free(q);
    lm_free(c.idx);
    lm_free(c.found);
    lm_free(c.d2);
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    size_t rows = (size_t)16 << 20;
    bool want[5] = {false}, any = false;
    const char *names[5] = {"scan", "cull", "ray", "lod", "knn"};
    for (int i = 1; i < argc; i++) {
        bool known = false;
        if (!strcmp(argv[i], "--rows") && i + 1 < argc) {
            rows = (size_t)(atof(argv[++i]) * (1 << 20));
            known = true;
        } else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
            reps = atoi(argv[++i]);
            known = true;
        }
        for (int s = 0; s < 5; s++)
            if (!strcmp(argv[i], names[s]))
                want[s] = any = known = true;
        if (!known)
            reps = 0; /* the usage below */
    }
    if (reps < 1 || !rows) {
        fprintf(stderr,
                "usage: bench_kernels [scan|cull|ray|lod|knn ...] [--rows M] [--reps R]\n");
        return 2;
    }
    struct lm_error err = {0};
    if (lm_device_status(&err) == 0) {
        const struct lm_cl_info *ci = lm_cl_info(lm_device_cl());
        printf("OpenCL: %s on %s (%s, %u compute units), %s-shaped kernels. ", ci->platform,
               ci->device, ci->type & CL_DEVICE_TYPE_GPU ? "GPU" : "CPU device",
               ci->compute_units, ci->shape == LM_CL_SHAPE_GPU ? "GPU" : "CPU");
    } else {
        printf("OpenCL: none (%s): CPU paths only. ", err.message);
    }
    printf("Scalar and AVX2 run on one thread; OpenCL on every compute unit of its device.\n");
    if (!any || want[0])
        bench_scan(rows);
    void (*run[5])(void) = {NULL, bench_cull, bench_ray, bench_lod, bench_knn};
    for (int s = 1; s < 5; s++)
        if (!any || want[s])
            run[s]();
    return 0;
}
