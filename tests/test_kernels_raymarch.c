/* test_kernels_raymarch.c - the ray march: scalar, AVX2 and OpenCL tables bit for bit
 * on random grids and rays (ties, axis-parallel rays, rays from outside, empty grids);
 * hits against an exact traversal in double precision on rays in general position; a
 * grid built from a database's voxels against lm_raycast; resident device copies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <string.h>

#include "alloc.h"
#include "device.h"
#include "raymarch.h"
#include "sh.h"
#include "test_kernels.h"
#include "tmpdir.h"

static const struct lm_ray_table *impls[3];
static int n_impls;

/* ---------------------------------------------------------------- random grids */

/* Voxels in a few clusters inside a cube of `side` voxels at a random offset (so that
 * grids start at negative coordinates too), with random aggregates. */
static struct lm_voxel *random_voxels(size_t *n, uint32_t side)
{
    size_t cap = 20000, k = 0;
    struct lm_voxel *v = lm_alloc(cap * sizeof *v);
    assert_non_null(v);
    int32_t off[3];
    for (int a = 0; a < 3; a++)
        off[a] = (int32_t)below(64) - 32;
    uint32_t clusters = 1 + below(6);
    uint8_t *seen = lm_calloc((size_t)side * side * side, 1);
    assert_non_null(seen);
    for (uint32_t c = 0; c < clusters; c++) {
        uint32_t centre[3], radius = 1 + below(side / 4);
        for (int a = 0; a < 3; a++)
            centre[a] = below(side);
        for (uint32_t j = 0, m = below(3000); j < m && k < cap; j++) {
            uint32_t q[3];
            for (int a = 0; a < 3; a++) {
                int64_t x = (int64_t)centre[a] + (int64_t)below(2 * radius + 1) - radius;
                q[a] = (uint32_t)(x < 0 ? 0 : x >= side ? side - 1 : x);
            }
            size_t at = ((size_t)q[2] * side + q[1]) * side + q[0];
            if (seen[at])
                continue;
            seen[at] = 1;
            struct lm_voxel *o = &v[k++];
            memset(o, 0, sizeof *o);
            for (int a = 0; a < 3; a++)
                o->coord[a] = (int32_t)q[a] + off[a];
            o->count = 1 + below(50);
            for (int ch = 0; ch < 3; ch++)
                for (int cf = 0; cf < 4; cf++)
                    o->sh[ch][cf] = (float)uniform(cf ? -0.3 : 0, 1) * (float)o->count;
        }
    }
    lm_free(seen);
    *n = k;
    return v;
}

/* Rays from inside or around the grid; some on exact voxel boundaries, some parallel
 * to axes or planes, some with tmax 0 or infinite. */
static void random_rays(const struct lm_ray_grid *g, struct lm_ray *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float len = 0;
        for (int a = 0; a < 3; a++) {
            float ext = (float)(g->bricks[a] * LM_RAY_BRICK) * g->voxel_size;
            r[i].o[a] = g->origin[a] + (float)uniform(-0.3, 1.3) * ext;
            if (below(4) == 0) /* on a voxel boundary */
                r[i].o[a] = g->origin[a] + (float)below(g->bricks[a] * 8 + 1) * g->voxel_size;
            r[i].d[a] = (float)uniform(-1, 1);
            if (below(6) == 0)
                r[i].d[a] = 0;
            len += r[i].d[a] * r[i].d[a];
        }
        if (len == 0) {
            r[i].d[below(3)] = 1;
            len = 1;
        }
        for (int a = 0; a < 3; a++)
            r[i].d[a] /= sqrtf(len);
        if (below(8) == 0) { /* diagonal: crossings tie */
            float s = below(2) ? 1.0f : -1.0f;
            r[i].d[0] = r[i].d[1] = r[i].d[2] = s * 0.57735026f;
        }
        float tmaxes[] = {0.0f, INFINITY, (float)uniform(0, 200) * g->voxel_size};
        r[i].tmax = tmaxes[below(8) < 2 ? below(2) : 2];
        r[i].pad = 0;
    }
}

/* ---------------------------------------------------------------- tests */

static void tables_agree_bit_for_bit(void **state)
{
    (void)state;
    enum { RAYS = 3000 };
    struct lm_ray *rays = lm_alloc(RAYS * sizeof *rays);
    struct lm_ray_out *out[3];
    for (int i = 0; i < 3; i++)
        assert_non_null(out[i] = lm_alloc(RAYS * sizeof *out[i]));
    rng_start(1);
    for (int round = 0; round < 12; round++) {
        size_t nv;
        struct lm_voxel *v = random_voxels(&nv, 16 + below(100));
        struct lm_ray_grid g;
        float vs = below(2) ? 1.0f : (float)uniform(0.01, 3);
        assert_int_equal(lm_ray_grid_build(v, round == 0 ? 0 : nv, vs, &g), 0);
        random_rays(&g, rays, RAYS);
        uint32_t max_hits = (uint32_t[]){1, 0, 3}[round % 3];
        for (int i = 0; i < n_impls; i++)
            assert_int_equal(lm_ray_march(impls[i], &g, rays, RAYS, max_hits, out[i]), 0);
        for (int i = 1; i < n_impls; i++)
            for (size_t j = 0; j < RAYS; j++)
                if (memcmp(&out[0][j], &out[i][j], sizeof out[0][j])) {
                    const struct lm_ray_out *a = &out[0][j], *b = &out[i][j];
                    print_error("ray %zu (seed %" PRIu64 ", round %d): %s hits %u voxel %d %d %d "
                                "t %.9g rad %.9g; %s hits %u voxel %d %d %d t %.9g rad %.9g\n",
                                j, test_seed, round, impls[0]->name, a->hits, a->voxel[0],
                                a->voxel[1], a->voxel[2], a->t_hit, a->radiance[0],
                                impls[i]->name, b->hits, b->voxel[0], b->voxel[1],
                                b->voxel[2], b->t_hit, b->radiance[0]);
                    fail();
                }
        lm_ray_grid_free(&g);
        lm_free(v);
    }
    lm_free(rays);
    for (int i = 0; i < 3; i++)
        lm_free(out[i]);
}

/* ---------------------------------------------------------------- exact traversal */

/* Occupied voxel at grid coordinates c, or NULL. */
static const uint32_t *voxel_at(const struct lm_ray_grid *g, const int64_t c[3])
{
    for (int a = 0; a < 3; a++)
        if (c[a] < 0 || c[a] >= (int64_t)g->bricks[a] * 8)
            return NULL;
    int32_t bi = g->brick_index[((size_t)(c[2] / 8) * g->bricks[1] + (size_t)(c[1] / 8)) *
                                    g->bricks[0] + (size_t)(c[0] / 8)];
    if (bi < 0)
        return NULL;
    const uint32_t *s =
        &g->slot[(size_t)bi * 512 + (size_t)((c[2] % 8 * 8 + c[1] % 8) * 8 + c[0] % 8)];
    return *s ? s : NULL;
}

#define MARGIN 2e-4 /* voxels: closer than this to an edge or end is ambiguous */

/* Walks the ray in double precision through every voxel its open segment crosses
 * (within the grid, up to tmax); false when the ray comes within MARGIN of two planes
 * at once, starts or ends near a plane, or runs along one: there rounding decides. */
static bool exact_walk(const struct lm_ray_grid *g, const struct lm_ray *r,
                       struct lm_ray_out *o)
{
    double p[3], d[3], lo = 0, hi = (double)r->tmax / g->voxel_size;
    int lo_axis = -1, hi_axis = -1; /* the grid face the ray enters / leaves by */
    *o = (struct lm_ray_out){{-1, -1, -1}, INFINITY, {0, 0, 0}, 0};
    for (int a = 0; a < 3; a++) {
        p[a] = ((double)r->o[a] - g->origin[a]) / g->voxel_size;
        d[a] = r->d[a];
        double dim = g->bricks[a] * 8.0;
        if (d[a] == 0) {
            double f = p[a] - floor(p[a]);
            if (f < MARGIN || f > 1 - MARGIN)
                return false;
            if (p[a] < 0 || p[a] > dim)
                return true;
            continue;
        }
        double t1 = -p[a] / d[a], t2 = (dim - p[a]) / d[a];
        if (fmin(t1, t2) > lo) {
            lo = fmin(t1, t2);
            lo_axis = a;
        }
        if (fmax(t1, t2) < hi) {
            hi = fmax(t1, t2);
            hi_axis = a;
        }
    }
    if (hi - lo < MARGIN)
        return fabs(hi - lo) > MARGIN; /* a clear miss, or too close to call */
    /* Where the walk starts, every axis but the one whose grid face it enters by must be
     * clear of a cell plane in position, not only in time: the kernels round p to float
     * and a start within an ulp of a plane starts in either cell. */
    for (int a = 0; a < 3; a++) {
        if (d[a] == 0 || (lo > 0 && a == lo_axis))
            continue;
        double q = p[a] + d[a] * lo, f = q - floor(q);
        if (f < MARGIN || f > 1 - MARGIN)
            return false;
    }
    /* every plane crossing in (lo, hi), and the midpoint of each piece between them */
    double ts[4096];
    size_t nt = 0;
    ts[nt++] = lo;
    for (int a = 0; a < 3; a++) {
        if (d[a] == 0)
            continue;
        double from = p[a] + d[a] * lo, to = p[a] + d[a] * hi;
        for (double k = ceil(fmin(from, to)); k <= floor(fmax(from, to)) && nt < 4000; k++) {
            double t = (k - p[a]) / d[a];
            if ((a == lo_axis && t == lo) || (a == hi_axis && t == hi))
                continue; /* the grid face itself: where the walk starts or ends */
            ts[nt++] = t;
        }
    }
    if (nt >= 4000)
        return false;
    ts[nt++] = hi;
    for (size_t i = 1; i < nt; i++) /* insertion sort: few crossings */
        for (size_t j = i; j > 0 && ts[j] < ts[j - 1]; j--) {
            double x = ts[j];
            ts[j] = ts[j - 1];
            ts[j - 1] = x;
        }
    for (size_t i = 0; i + 1 < nt; i++) {
        if (ts[i + 1] - ts[i] < MARGIN)
            return false;
        double mid = 0.5 * (ts[i] + ts[i + 1]);
        int64_t c[3];
        for (int a = 0; a < 3; a++)
            c[a] = (int64_t)floor(p[a] + d[a] * mid);
        const uint32_t *s = voxel_at(g, c);
        if (!s)
            continue;
        if (!o->hits) {
            for (int a = 0; a < 3; a++)
                o->voxel[a] = (int32_t)c[a];
            o->t_hit = (float)(ts[i] * g->voxel_size);
        }
        const float back[3] = {-r->d[0], -r->d[1], -r->d[2]};
        for (int ch = 0; ch < 3; ch++)
            o->radiance[ch] += lm_sh_eval(&g->sh[(size_t)(*s - 1) * 12 + (size_t)ch * 4],
                                          g->count[*s - 1], back);
        o->hits++;
    }
    return true;
}

static void hits_match_an_exact_traversal(void **state)
{
    (void)state;
    enum { RAYS = 4000 };
    struct lm_ray *rays = lm_alloc(RAYS * sizeof *rays);
    struct lm_ray_out *out = lm_alloc(RAYS * sizeof *out);
    assert_true(rays && out);
    size_t checked = 0, total = 0;
    rng_start(2);
    for (int round = 0; round < 8; round++) {
        size_t nv;
        struct lm_voxel *v = random_voxels(&nv, 16 + below(60));
        struct lm_ray_grid g;
        assert_int_equal(lm_ray_grid_build(v, nv, (float)uniform(0.1, 2), &g), 0);
        random_rays(&g, rays, RAYS);
        for (size_t j = 0; j < RAYS; j++) /* general position: no exact boundaries */
            for (int a = 0; a < 3; a++)
                rays[j].o[a] += (float)uniform(-0.01, 0.01) * g.voxel_size;
        assert_int_equal(lm_ray_march(lm_ray_scalar(), &g, rays, RAYS, 0, out), 0);
        for (size_t j = 0; j < RAYS; j++) {
            struct lm_ray_out want;
            total++;
            if (!exact_walk(&g, &rays[j], &want))
                continue;
            checked++;
            const struct lm_ray_out *got = &out[j];
            /* The kernels compute in float: a crossing time (k - p) / d carries p's
             * rounding (a few ulps of |p|, in cells) divided by that axis's |d|, which
             * grazing rays make large; the exact walk computes in double. */
            float p_max = 0.0f, d_min = 1.0f;
            for (int a = 0; a < 3; a++) {
                float pa = fabsf((rays[j].o[a] - g.origin[a]) * g.inv_voxel);
                p_max = pa > p_max ? pa : p_max;
                float da = fabsf(rays[j].d[a]);
                if (da > 0.0f && da < d_min)
                    d_min = da;
            }
            float t_cells = fabsf(want.t_hit) / g.voxel_size;
            float rounding = 8.0f * FLT_EPSILON * (p_max + t_cells) / d_min * g.voxel_size;
            bool ok = got->hits == want.hits &&
                !memcmp(got->voxel, want.voxel, sizeof want.voxel) &&
                !memcmp(got->radiance, want.radiance, sizeof want.radiance) &&
                (!want.hits ||
                 fabsf(got->t_hit - want.t_hit) <=
                     1e-3f * g.voxel_size + 1e-5f * fabsf(want.t_hit) + rounding);
            if (!ok) {
                print_error("ray %zu (seed %" PRIu64 "): hits %u voxel %d %d %d t %.9g; exact "
                            "%u %d %d %d %.9g\n", j, test_seed, got->hits, got->voxel[0],
                            got->voxel[1], got->voxel[2], got->t_hit, want.hits, want.voxel[0],
                            want.voxel[1], want.voxel[2], want.t_hit);
                fail();
            }
        }
        lm_ray_grid_free(&g);
        lm_free(v);
    }
    print_message("%zu of %zu rays in general position checked\n", checked, total);
    assert_true(checked > total / 2);
    lm_free(rays);
    lm_free(out);
}

/* ---------------------------------------------------------------- against the engine */

static void grid_from_a_field_agrees_with_lm_raycast(void **state)
{
    (void)state;
    char dir[64];
    assert_int_equal(tmpdir_make("lm-ray", dir, sizeof dir), 0);
    lm_db *db;
    assert_int_equal(lm_db_open(dir, NULL, &db, NULL), 0);
    struct lm_field_opts fo = {.voxel_size = 0.5f, .chunk_edge = 16};
    assert_int_equal(lm_field_create(db, "f", &fo, NULL), 0);
    enum { N = 20000, RAYS = 2000 };
    float *x = lm_alloc(N * sizeof *x), *y = lm_alloc(N * sizeof *y), *z = lm_alloc(N * sizeof *z);
    float *dx = lm_alloc(N * sizeof *dx), *dy = lm_alloc(N * sizeof *dy),
          *dz = lm_alloc(N * sizeof *dz);
    float *in = lm_alloc(N * sizeof *in);
    rng_start(3);
    for (size_t i = 0; i < N; i++) {
        /* a lumpy shell around the origin, so rays cross empty space and surfaces */
        double u = uniform(-1, 1), phi = uniform(0, 2 * M_PI), rr = uniform(8, 10);
        double s = sqrt(1 - u * u);
        x[i] = (float)(rr * s * cos(phi));
        y[i] = (float)(rr * s * sin(phi));
        z[i] = (float)(rr * u);
        double a = uniform(-1, 1), b = uniform(0, 2 * M_PI), t = sqrt(1 - a * a);
        dx[i] = (float)(t * cos(b));
        dy[i] = (float)(t * sin(b));
        dz[i] = (float)a;
        float len = sqrtf(dx[i] * dx[i] + dy[i] * dy[i] + dz[i] * dz[i]);
        dx[i] /= len;
        dy[i] /= len;
        dz[i] /= len;
        in[i] = (float)uniform(0, 2);
    }
    struct lm_batch b = {.n = N, .x = x, .y = y, .z = z, .dx = dx, .dy = dy, .dz = dz,
                         .intensity = in};
    assert_int_equal(lm_insert(db, "f", &b, NULL, NULL), 0);
    struct lm_voxels *vox;
    assert_int_equal(lm_voxels_query(db, "f", NULL, 0, &vox, NULL), 0);
    struct lm_ray_grid g;
    assert_int_equal(lm_ray_grid_build(vox->v, vox->n, fo.voxel_size, &g), 0);
    int32_t base[3]; /* field voxel coordinates of grid voxel 0 */
    for (int a = 0; a < 3; a++)
        base[a] = (int32_t)lroundf(g.origin[a] / fo.voxel_size);

    struct lm_ray *rays = lm_alloc(RAYS * sizeof *rays);
    struct lm_ray_out *out = lm_alloc(RAYS * sizeof *out);
    for (size_t j = 0; j < RAYS; j++) {
        double u = uniform(-1, 1), phi = uniform(0, 2 * M_PI), s = sqrt(1 - u * u);
        float o[3] = {(float)(14 * s * cos(phi)), (float)(14 * s * sin(phi)), (float)(14 * u)};
        float len = 0;
        for (int a = 0; a < 3; a++) { /* toward somewhere near the middle */
            rays[j].o[a] = o[a];
            rays[j].d[a] = (float)uniform(-4, 4) - o[a];
            len += rays[j].d[a] * rays[j].d[a];
        }
        for (int a = 0; a < 3; a++)
            rays[j].d[a] /= sqrtf(len);
        rays[j].tmax = 30;
        rays[j].pad = 0;
    }
    const struct lm_ray_table *t = impls[n_impls - 1]; /* the device when there is one */
    assert_int_equal(lm_ray_march(t, &g, rays, RAYS, 0, out), 0);
    size_t compared = 0, with_hits = 0;
    for (size_t j = 0; j < RAYS; j++) {
        struct lm_ray_out exact;
        if (!exact_walk(&g, &rays[j], &exact))
            continue;
        struct lm_ray_result *res;
        assert_int_equal(lm_raycast(db, "f", rays[j].o, rays[j].d, rays[j].tmax, LM_RAY_ALL,
                                    &res, NULL), 0);
        compared++;
        with_hits += res->n_hits > 0;
        assert_int_equal(out[j].hits, res->n_hits);
        if (res->n_hits) {
            for (int a = 0; a < 3; a++)
                assert_int_equal(out[j].voxel[a] + base[a], res->hits[0].voxel[a]);
            assert_true(fabsf(out[j].t_hit - res->hits[0].t_enter) <= 1e-3f);
        }
        assert_memory_equal(out[j].radiance, res->radiance, sizeof res->radiance);
        lm_ray_result_free(res);
    }
    print_message("%zu rays compared with lm_raycast, %zu with hits\n", compared, with_hits);
    assert_true(compared > RAYS / 2 && with_hits > compared / 4);
    lm_ray_grid_free(&g);
    lm_voxels_free(vox);
    lm_free(rays);
    lm_free(out);
    lm_free(x);
    lm_free(y);
    lm_free(z);
    lm_free(dx);
    lm_free(dy);
    lm_free(dz);
    lm_free(in);
    lm_db_close(db);
    tmpdir_remove(dir);
}

/* ---------------------------------------------------------------- device copies */

static void device_keeps_a_grid_until_its_version_changes(void **state)
{
    (void)state;
    lm_cl *cl = lm_device_cl();
    if (!lm_ray_opencl() || !cl)
        skip();
    struct lm_voxel v = {
        .coord = {3, 4, 5}, .count = 2, .sh = {{1, 0, 0, 0}, {2, 0, 0, 0}, {3, 0, 0, 0}}};
    struct lm_ray_grid g;
    assert_int_equal(lm_ray_grid_build(&v, 1, 1, &g), 0);
    struct lm_ray r = {.o = {3.5f, 4.5f, -10}, .tmax = 100, .d = {0, 0, 1}};
    struct lm_ray_out a, b;
    struct lm_cl_stats s0, s1, s2;
    lm_cl_lock(cl);
    lm_cl_stats(cl, &s0);
    lm_cl_unlock(cl);
    assert_int_equal(lm_ray_march(lm_ray_opencl(), &g, &r, 1, 1, &a), 0);
    assert_int_equal(lm_ray_march(lm_ray_opencl(), &g, &r, 1, 1, &b), 0);
    lm_cl_lock(cl);
    lm_cl_stats(cl, &s1);
    lm_cl_unlock(cl);
    assert_int_equal(s1.resident_misses - s0.resident_misses, 6); /* six arrays, once */
    assert_int_equal(s1.resident_hits - s0.resident_hits, 6);
    assert_int_equal(a.hits, 1);
    assert_int_equal(a.voxel[2], 5);
    assert_memory_equal(&a, &b, sizeof a);
    g.sh[0] = 2; /* new content, new version: the device copy follows */
    g.version++;
    assert_int_equal(lm_ray_march(lm_ray_opencl(), &g, &r, 1, 1, &b), 0);
    lm_cl_lock(cl);
    lm_cl_stats(cl, &s2);
    lm_cl_unlock(cl);
    assert_int_equal(s2.resident_misses - s1.resident_misses, 6);
    assert_true(b.radiance[0] == 2 * a.radiance[0]);
    lm_ray_grid_free(&g);
}

static void bad_arguments_are_rejected(void **state)
{
    (void)state;
    struct lm_voxel v[2] = {{.coord = {1, 2, 3}, .count = 1}, {.coord = {1, 2, 3}, .count = 1}};
    struct lm_ray_grid g;
    assert_int_equal(lm_ray_grid_build(v, 2, 1, &g), LM_EBADARG); /* the same voxel twice */
    assert_int_equal(lm_ray_grid_build(v, 1, 0, &g), LM_EBADARG);
    v[1].coord[0] = 1 << 30;
    assert_int_equal(lm_ray_grid_build(v, 2, 1, &g), LM_ELIMIT);
    assert_int_equal(lm_ray_grid_build(v, 1, 1, &g), 0);
    struct lm_ray r = {.o = {0, 0, 0}, .tmax = 1, .d = {1, 0, 0}};
    struct lm_ray_out o;
    const struct lm_ray_table *t = lm_ray_best();
    assert_int_equal(lm_ray_march(t, &g, &r, 1, 1, &o), 0);
    assert_int_equal(lm_ray_march(NULL, &g, &r, 1, 1, &o), LM_EBADARG);
    assert_int_equal(lm_ray_march(t, &g, NULL, 1, 1, &o), LM_EBADARG);
    r.d[0] = 0;
    assert_int_equal(lm_ray_march(t, &g, &r, 1, 1, &o), LM_EBADARG);
    r.d[0] = NAN;
    assert_int_equal(lm_ray_march(t, &g, &r, 1, 1, &o), LM_EBADARG);
    r.d[0] = 1;
    r.tmax = -1;
    assert_int_equal(lm_ray_march(t, &g, &r, 1, 1, &o), LM_EBADARG);
    r.tmax = 1;
    g.voxel_size = 0;
    assert_int_equal(lm_ray_march(t, &g, &r, 1, 1, &o), LM_EBADARG);
    lm_ray_grid_free(&g);
    lm_ray_grid_free(NULL);
}

int main(void)
{
    rng_init("test_kernels_raymarch");
    TEST_IMPLS("test_kernels_raymarch", impls, n_impls, lm_ray_scalar, lm_ray_avx2,
               lm_ray_opencl);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bad_arguments_are_rejected),
        cmocka_unit_test(tables_agree_bit_for_bit),
        cmocka_unit_test(hits_match_an_exact_traversal),
        cmocka_unit_test(grid_from_a_field_agrees_with_lm_raycast),
        cmocka_unit_test(device_keeps_a_grid_until_its_version_changes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
