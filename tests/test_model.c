/* test_model.c - randomized model test: thousands of random inserts, deletes, updates
 * and queries applied to the engine and to a brute-force reference kept here; every
 * answer must match. LUMADB_TEST_SEED fixes the seed, LUMADB_MODEL_OPS the number of
 * operations (default 10000). The seed is printed so that a failure can be replayed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lumadb.h"
#include "sh.h"

/* ---------------------------------------------------------------- reference */

struct ref_sample {
    float x, y, z;
    float d[3];        /* as stored: octahedral round trip */
    uint8_t r, g, b;   /* as stored: 8 bit */
    float intensity;
    int64_t t;
    int32_t id;
};

struct ref {
    struct ref_sample *v;
    size_t n, cap;
};

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float rndf(float lo, float hi)
{
    return lo + (hi - lo) * (float)(rnd() >> 40) * (1.0f / 16777216.0f);
}

static const float VOXEL = 0.25f;
static const uint32_t EDGE = 8;
static const char *FIELD = "model";
static uint64_t seed;

#define FAILF(...)                                                                      \
    do {                                                                                \
        fprintf(stderr, "model test failed (seed %llu): ", (unsigned long long)seed);  \
        fprintf(stderr, __VA_ARGS__);                                                   \
        fprintf(stderr, "\n");                                                          \
        fail();                                                                         \
    } while (0)

static bool ref_in_region(const struct lm_region *r, const struct ref_sample *s)
{
    switch (r->kind) {
    case LM_REGION_ALL: return true;
    case LM_REGION_BOX:
        return s->x >= r->min[0] && s->x <= r->max[0] && s->y >= r->min[1] &&
               s->y <= r->max[1] && s->z >= r->min[2] && s->z <= r->max[2];
    case LM_REGION_SPHERE: {
        float dx = s->x - r->center[0], dy = s->y - r->center[1], dz = s->z - r->center[2];
        return dx * dx + dy * dy + dz * dz <= r->radius * r->radius;
    }
    case LM_REGION_FRUSTUM:
        for (int i = 0; i < 6; i++)
            if (r->planes[i][0] * s->x + r->planes[i][1] * s->y + r->planes[i][2] * s->z +
                    r->planes[i][3] < 0.0f)
                return false;
        return true;
    }
    return false;
}

static double ref_value(const struct ref_sample *s, int col)
{
    switch (col) {
    case LM_COL_X: return s->x;
    case LM_COL_Y: return s->y;
    case LM_COL_Z: return s->z;
    case LM_COL_DX: return s->d[0];
    case LM_COL_DY: return s->d[1];
    case LM_COL_DZ: return s->d[2];
    case LM_COL_R: return (float)s->r * (1.0f / 255.0f);
    case LM_COL_G: return (float)s->g * (1.0f / 255.0f);
    case LM_COL_B: return (float)s->b * (1.0f / 255.0f);
    case LM_COL_INTENSITY: return s->intensity;
    case LM_COL_T: return (double)s->t;
    default: return s->id;
    }
}

static bool ref_match(const struct lm_selection *sel, const struct ref_sample *s)
{
    if (!ref_in_region(&sel->region, s))
        return false;
    for (uint32_t i = 0; i < sel->n_filters; i++) {
        const struct lm_filter *f = &sel->filters[i];
        double v = ref_value(s, f->column);
        bool ok = false;
        switch (f->cmp) {
        case LM_CMP_LT: ok = v < f->a; break;
        case LM_CMP_LE: ok = v <= f->a; break;
        case LM_CMP_GT: ok = v > f->a; break;
        case LM_CMP_GE: ok = v >= f->a; break;
        case LM_CMP_EQ: ok = v == f->a; break;
        case LM_CMP_NE: ok = v != f->a; break;
        case LM_CMP_BETWEEN: ok = v >= f->a && v <= f->b; break;
        }
        if (!ok)
            return false;
    }
    return true;
}

/* ---------------------------------------------------------------- random inputs */

/* Positions straddle the origin so negative chunk coordinates are exercised; some
 * batches cluster so that voxels hold many samples. */
static void random_point(float p[3], bool clustered, const float centre[3])
{
    for (int a = 0; a < 3; a++)
        p[a] = clustered ? centre[a] + rndf(-0.6f, 0.6f) : rndf(-6.0f, 6.0f);
}

static void random_unit(float d[3])
{
    for (;;) {
        for (int a = 0; a < 3; a++)
            d[a] = rndf(-1, 1);
        float l = sqrtf(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
        if (l > 0.1f && l <= 1.0f) {
            for (int a = 0; a < 3; a++)
                d[a] /= l;
            return;
        }
    }
}

static void random_region(struct lm_region *r)
{
    memset(r, 0, sizeof *r);
    switch (rnd() % 4) {
    case 0: r->kind = LM_REGION_ALL; break;
    case 1:
        r->kind = LM_REGION_BOX;
        for (int a = 0; a < 3; a++) {
            float c = rndf(-6, 6), h = rndf(0.05f, 4.0f);
            r->min[a] = c - h;
            r->max[a] = c + h;
        }
        break;
    case 2:
        r->kind = LM_REGION_SPHERE;
        for (int a = 0; a < 3; a++)
            r->center[a] = rndf(-6, 6);
        r->radius = rndf(0.1f, 5.0f);
        break;
    default: {
        float eye[3], target[3] = {0, 0, 0}, up[3] = {0, 1, 0};
        for (int a = 0; a < 3; a++) {
            eye[a] = rndf(-12, 12);
            target[a] = rndf(-3, 3);
        }
        if (fabsf(eye[0] - target[0]) < 0.5f && fabsf(eye[2] - target[2]) < 0.5f)
            eye[0] += 3.0f; /* keep up from being parallel to the view */
        assert_int_equal(lm_frustum_from_camera(eye, target, up, rndf(20, 90), rndf(0.5f, 2),
                                                rndf(0.1f, 2), rndf(5, 30), r),
                         0);
    }
    }
}

static void random_selection(struct lm_selection *sel)
{
    memset(sel, 0, sizeof *sel);
    random_region(&sel->region);
    uint32_t nf = (uint32_t)(rnd() % 3);
    for (uint32_t i = 0; i < nf; i++) {
        struct lm_filter *f = &sel->filters[sel->n_filters++];
        static const int cols[] = {LM_COL_INTENSITY, LM_COL_T, LM_COL_R, LM_COL_USER, LM_COL_X};
        f->column = cols[rnd() % 5];
        f->cmp = (enum lm_cmp)(1 + rnd() % 7);
        switch (f->column) {
        case LM_COL_INTENSITY: f->a = rndf(0, 4); f->b = f->a + rndf(0, 2); break;
        case LM_COL_T: f->a = (double)(rnd() % 1000); f->b = f->a + (double)(rnd() % 500); break;
        case LM_COL_R: f->a = (double)(rnd() % 256) / 255.0; f->b = f->a + 0.3; break;
        case LM_COL_USER: f->a = (double)(rnd() % 20000); f->b = f->a + 5000; break;
        default: f->a = rndf(-6, 6); f->b = f->a + rndf(0, 3); break;
        }
    }
}

/* ---------------------------------------------------------------- operations */

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static void op_insert(lm_db *db, struct ref *ref, int32_t *next_id)
{
    size_t n = 1 + rnd() % (rnd() % 8 == 0 ? 3000 : 200);
    float *col = calloc(n * 11, sizeof *col);
    int64_t *t = calloc(n, sizeof *t);
    int32_t *id = calloc(n, sizeof *id);
    float *x = col, *y = x + n, *z = y + n, *dx = z + n, *dy = dx + n, *dz = dy + n,
          *r = dz + n, *g = r + n, *b = g + n, *in = b + n;
    bool clustered = rnd() % 2;
    float centre[3] = {rndf(-5, 5), rndf(-5, 5), rndf(-5, 5)};
    for (size_t i = 0; i < n; i++) {
        float p[3], d[3];
        random_point(p, clustered, centre);
        random_unit(d);
        x[i] = p[0]; y[i] = p[1]; z[i] = p[2];
        dx[i] = d[0]; dy[i] = d[1]; dz[i] = d[2];
        r[i] = rndf(0, 1); g[i] = rndf(0, 1); b[i] = rndf(0, 1);
        in[i] = rndf(0, 5);
        t[i] = (int64_t)(rnd() % 1500);
        id[i] = (*next_id)++;
    }
    if (rnd() % 50 == 0) /* duplicate position: exact ties in nearest */
        x[n - 1] = x[0], y[n - 1] = y[0], z[n - 1] = z[0];
    struct lm_batch batch = {.n = n, .x = x, .y = y, .z = z, .dx = dx, .dy = dy, .dz = dz,
                             .r = r, .g = g, .b = b, .intensity = in, .t = t, .n_user = 1,
                             .user = {id}};
    struct lm_error err;
    if (lm_insert(db, FIELD, &batch, NULL, &err))
        FAILF("insert of %zu: %s", n, err.message);
    for (size_t i = 0; i < n; i++) {
        if (ref->n == ref->cap) {
            ref->cap = ref->cap ? ref->cap * 2 : 1024;
            ref->v = realloc(ref->v, ref->cap * sizeof *ref->v);
        }
        struct ref_sample *s = &ref->v[ref->n++];
        s->x = x[i]; s->y = y[i]; s->z = z[i];
        /* stored: normalised in double, then octahedral */
        double dd[3] = {dx[i], dy[i], dz[i]};
        double l = sqrt(dd[0] * dd[0] + dd[1] * dd[1] + dd[2] * dd[2]);
        float d[3] = {(float)(dd[0] / l), (float)(dd[1] / l), (float)(dd[2] / l)};
        uint16_t oct[2];
        lm_dir_encode(d, oct);
        lm_dir_decode(oct, s->d);
        s->r = (uint8_t)lrintf(r[i] * 255.0f);
        s->g = (uint8_t)lrintf(g[i] * 255.0f);
        s->b = (uint8_t)lrintf(b[i] * 255.0f);
        s->intensity = in[i];
        s->t = t[i];
        s->id = id[i];
    }
    free(col);
    free(t);
    free(id);
}

static void op_delete(lm_db *db, struct ref *ref)
{
    struct lm_selection sel;
    random_selection(&sel);
    if (sel.region.kind == LM_REGION_ALL && rnd() % 4) /* rarely wipe everything */
        sel.region.kind = LM_REGION_SPHERE, sel.region.radius = rndf(0.2f, 2.0f);
    uint64_t n = 0;
    struct lm_error err;
    if (lm_delete(db, FIELD, &sel, &n, NULL, &err))
        FAILF("delete: %s", err.message);
    size_t o = 0, expect = 0;
    for (size_t i = 0; i < ref->n; i++) {
        if (ref_match(&sel, &ref->v[i]))
            expect++;
        else
            ref->v[o++] = ref->v[i];
    }
    ref->n = o;
    if (n != expect)
        FAILF("delete removed %llu rows, reference %zu", (unsigned long long)n, expect);
}

static void op_update(lm_db *db, struct ref *ref)
{
    struct lm_selection sel;
    random_selection(&sel);
    bool intensity = rnd() % 2;
    double v = intensity ? (double)rndf(0, 5) : (double)(rnd() % 1500);
    if (intensity)
        v = (float)v; /* stored as f32 */
    uint64_t n = 0;
    struct lm_error err;
    if (lm_update(db, FIELD, &sel, intensity ? LM_COL_INTENSITY : LM_COL_T, v, &n, NULL, &err))
        FAILF("update: %s", err.message);
    size_t expect = 0;
    for (size_t i = 0; i < ref->n; i++) {
        if (!ref_match(&sel, &ref->v[i]))
            continue;
        expect++;
        if (intensity)
            ref->v[i].intensity = (float)v;
        else
            ref->v[i].t = (int64_t)v;
    }
    if (n != expect)
        FAILF("update changed %llu rows, reference %zu", (unsigned long long)n, expect);
}

static void check_select(lm_db *db, const struct ref *ref)
{
    struct lm_selection sel;
    random_selection(&sel);
    struct lm_rows *rows = NULL;
    struct lm_error err;
    if (lm_select(db, FIELD, &sel, 0, &rows, &err))
        FAILF("select: %s", err.message);
    int32_t *got = malloc((rows->n + 1) * sizeof *got), *want = malloc((ref->n + 1) * sizeof *want);
    size_t nw = 0;
    for (size_t i = 0; i < rows->n; i++)
        got[i] = ((int32_t *)rows->user[0])[i];
    for (size_t i = 0; i < ref->n; i++)
        if (ref_match(&sel, &ref->v[i]))
            want[nw++] = ref->v[i].id;
    if (rows->n != nw)
        FAILF("select (region kind %d, %u filters) returned %zu rows, reference %zu",
              (int)sel.region.kind, sel.n_filters, rows->n, nw);
    qsort(got, rows->n, sizeof *got, cmp_i32);
    qsort(want, nw, sizeof *want, cmp_i32);
    for (size_t i = 0; i < nw; i++)
        if (got[i] != want[i])
            FAILF("select row set differs at %zu: id %d vs %d", i, got[i], want[i]);
    /* Returned values must be the stored ones. */
    for (size_t i = 0; i < rows->n && i < 50; i++) {
        int32_t id = ((int32_t *)rows->user[0])[i];
        for (size_t j = 0; j < ref->n; j++) {
            if (ref->v[j].id != id)
                continue;
            const struct ref_sample *s = &ref->v[j];
            if (rows->x[i] != s->x || rows->intensity[i] != s->intensity || rows->t[i] != s->t ||
                rows->r[i] != (float)ref_value(s, LM_COL_R) || rows->dx[i] != s->d[0])
                FAILF("row id %d returned different values than stored", id);
        }
    }
    free(got);
    free(want);
    lm_rows_free(rows);
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static void check_nearest(lm_db *db, const struct ref *ref)
{
    float p[3] = {rndf(-7, 7), rndf(-7, 7), rndf(-7, 7)};
    size_t k = 1 + rnd() % 30;
    float max_dist = rnd() % 3 == 0 ? rndf(0.1f, 3.0f) : 0.0f;
    struct lm_selection filt = {0};
    if (rnd() % 3 == 0) {
        filt.n_filters = 1;
        filt.filters[0] = (struct lm_filter){LM_COL_INTENSITY, LM_CMP_GT, rndf(0, 4), 0};
    }
    struct lm_rows *rows = NULL;
    struct lm_error err;
    if (lm_nearest(db, FIELD, p, k, max_dist, &filt, &rows, &err))
        FAILF("nearest: %s", err.message);
    float *all = malloc((ref->n + 1) * sizeof *all);
    size_t na = 0;
    for (size_t i = 0; i < ref->n; i++) {
        const struct ref_sample *s = &ref->v[i];
        if (!ref_match(&filt, s))
            continue;
        float dx = s->x - p[0], dy = s->y - p[1], dz = s->z - p[2];
        float d2 = dx * dx + dy * dy + dz * dz;
        if (max_dist > 0 && d2 > max_dist * max_dist)
            continue;
        all[na++] = d2;
    }
    qsort(all, na, sizeof *all, cmp_float);
    size_t want = na < k ? na : k;
    if (rows->n != want)
        FAILF("nearest k=%zu returned %zu rows, reference %zu", k, rows->n, want);
    for (size_t i = 0; i < want; i++) {
        float dx = rows->x[i] - p[0], dy = rows->y[i] - p[1], dz = rows->z[i] - p[2];
        float d2 = dx * dx + dy * dy + dz * dz;
        if (d2 != all[i] || rows->distance[i] != sqrtf(all[i]))
            FAILF("nearest %zu-th distance^2 %g, reference %g", i, (double)d2, (double)all[i]);
    }
    free(all);
    lm_rows_free(rows);
}

static void check_aggregate(lm_db *db, const struct ref *ref)
{
    struct lm_selection sel;
    random_selection(&sel);
    int col = rnd() % 2 ? LM_COL_INTENSITY : LM_COL_T;
    struct lm_aggregate a;
    struct lm_error err;
    if (lm_aggregate(db, FIELD, &sel, col, &a, &err))
        FAILF("aggregate: %s", err.message);
    uint64_t count = 0;
    double sum = 0, mn = 0, mx = 0;
    for (size_t i = 0; i < ref->n; i++) {
        if (!ref_match(&sel, &ref->v[i]))
            continue;
        double v = ref_value(&ref->v[i], col);
        if (!count || v < mn)
            mn = v;
        if (!count || v > mx)
            mx = v;
        sum += v;
        count++;
    }
    if (a.count != count || (count && (a.min != mn || a.max != mx)) ||
        fabs(a.sum - sum) > 1e-9 * (fabs(sum) + 1))
        FAILF("aggregate count %llu sum %g min %g max %g, reference %llu %g %g %g",
              (unsigned long long)a.count, a.sum, a.min, a.max, (unsigned long long)count, sum,
              mn, mx);
}

/* Reference voxel aggregate computed from the samples. */
struct ref_cell {
    int64_t c[3];
    uint32_t count;
    double sum_i, sum_r, sh[3][4];
};

static void ref_cell_of(const struct ref_sample *s, uint32_t level, int64_t c[3])
{
    const float p[3] = {s->x, s->y, s->z};
    for (int a = 0; a < 3; a++)
        c[a] = (int64_t)floor((double)p[a] * (1.0 / (double)VOXEL)) >> level;
}

static void ref_cell(const struct ref *ref, const int64_t c[3], uint32_t level,
                     struct ref_cell *out)
{
    memset(out, 0, sizeof *out);
    memcpy(out->c, c, sizeof out->c);
    for (size_t i = 0; i < ref->n; i++) {
        int64_t v[3];
        ref_cell_of(&ref->v[i], level, v);
        if (v[0] != c[0] || v[1] != c[1] || v[2] != c[2])
            continue;
        const struct ref_sample *s = &ref->v[i];
        float y[4], col[3] = {(float)ref_value(s, LM_COL_R), (float)ref_value(s, LM_COL_G),
                              (float)ref_value(s, LM_COL_B)};
        lm_sh_basis(s->d, y);
        out->count++;
        out->sum_i += s->intensity;
        out->sum_r += col[0];
        for (int ch = 0; ch < 3; ch++)
            for (int k = 0; k < 4; k++)
                out->sh[ch][k] += col[ch] * s->intensity * y[k];
    }
}

static bool close_enough(double a, double b, double rel)
{
    return fabs(a - b) <= rel * (fabs(a) + fabs(b)) + 1e-4;
}

static void check_voxels(lm_db *db, const struct ref *ref)
{
    static const uint32_t levels[] = {0, 1, 2, 3, 4, 6};
    uint32_t level = levels[rnd() % 6];
    struct lm_region region;
    random_region(&region);
    struct lm_voxels *vox = NULL;
    struct lm_error err;
    if (lm_voxels_query(db, FIELD, &region, level, &vox, &err))
        FAILF("voxels: %s", err.message);
    /* Every sample's cell that meets the region must be listed with the right count. */
    uint64_t total = 0;
    for (size_t i = 0; i < vox->n; i++) {
        const struct lm_voxel *v = &vox->v[i];
        total += v->count;
        if (i && memcmp(&vox->v[i - 1].coord, &v->coord, sizeof v->coord) == 0)
            FAILF("voxel listed twice");
        if (i % 17)
            continue; /* spot-check aggregates: the brute force is O(n) per cell */
        int64_t c[3] = {v->coord[0], v->coord[1], v->coord[2]};
        struct ref_cell rc;
        ref_cell(ref, c, level, &rc);
        if (rc.count != v->count || !close_enough(rc.sum_i, v->sum_intensity, 1e-4) ||
            !close_enough(rc.sum_r / rc.count, v->mean_r, 1e-4) ||
            !close_enough(rc.sh[1][2], v->sh[1][2], 1e-3))
            FAILF("LOD %u cell (%d,%d,%d): count %u sum_i %g, reference %u %g", level,
                  v->coord[0], v->coord[1], v->coord[2], v->count, (double)v->sum_intensity,
                  rc.count, rc.sum_i);
    }
    if (region.kind == LM_REGION_ALL && total != ref->n)
        FAILF("LOD %u cells hold %llu samples, reference %zu", level,
              (unsigned long long)total, ref->n);
    lm_voxels_free(vox);
}

static void check_radiance(lm_db *db, const struct ref *ref)
{
    if (!ref->n)
        return;
    const struct ref_sample *s = &ref->v[rnd() % ref->n];
    float p[3] = {s->x + rndf(-0.2f, 0.2f), s->y + rndf(-0.2f, 0.2f), s->z + rndf(-0.2f, 0.2f)};
    float d[3], rgb[3], w = 0;
    random_unit(d);
    struct lm_error err;
    int rc = lm_radiance(db, FIELD, p, d, rgb, &w, &err);
    /* Reference: trilinear over occupied voxel centres, SH per invariant of sh.h. */
    double u[3], fr[3], acc[3] = {0, 0, 0}, wsum = 0;
    int64_t base[3];
    for (int a = 0; a < 3; a++) {
        u[a] = (double)p[a] / (double)VOXEL - 0.5;
        base[a] = (int64_t)floor(u[a]);
        fr[a] = u[a] - (double)base[a];
    }
    for (int corner = 0; corner < 8; corner++) {
        int64_t v[3];
        double wt = 1;
        for (int a = 0; a < 3; a++) {
            int bit = (corner >> a) & 1;
            v[a] = base[a] + bit;
            wt *= bit ? fr[a] : 1 - fr[a];
        }
        struct ref_cell rcell;
        ref_cell(ref, v, 0, &rcell);
        if (!rcell.count || wt <= 0)
            continue;
        float y[4];
        lm_sh_basis(d, y);
        for (int ch = 0; ch < 3; ch++) {
            double l = rcell.sh[ch][0] * y[0] +
                       (rcell.sh[ch][1] * y[1] + rcell.sh[ch][2] * y[2] + rcell.sh[ch][3] * y[3]) /
                           3.0;
            l *= 4.0 * M_PI / rcell.count;
            acc[ch] += wt * (l > 0 ? l : 0);
        }
        wsum += wt;
    }
    if (wsum <= 0) {
        if (rc != LM_ENOTFOUND)
            FAILF("radiance found light where the reference has no voxel (rc %d)", rc);
        return;
    }
    if (rc)
        FAILF("radiance: %s", err.message);
    for (int ch = 0; ch < 3; ch++)
        if (!close_enough(acc[ch] / wsum, rgb[ch], 2e-3))
            FAILF("radiance channel %d = %g, reference %g", ch, (double)rgb[ch], acc[ch] / wsum);
    if (!close_enough(w, wsum, 1e-5))
        FAILF("radiance weight %g, reference %g", (double)w, wsum);
}

/* Slab intersection of the ray with voxel v: [t0, t1] (empty when t0 > t1). */
static void ray_voxel(const float o[3], const float d[3], const int64_t v[3], double *t0,
                      double *t1)
{
    *t0 = -INFINITY;
    *t1 = INFINITY;
    for (int a = 0; a < 3; a++) {
        double lo = (double)v[a] * VOXEL, hi = lo + VOXEL;
        if (d[a] == 0) {
            if (o[a] < lo || o[a] >= hi)
                *t0 = INFINITY;
            continue;
        }
        double ta = (lo - o[a]) / d[a], tb = (hi - o[a]) / d[a];
        if (ta > tb) {
            double tmp = ta;
            ta = tb;
            tb = tmp;
        }
        if (ta > *t0)
            *t0 = ta;
        if (tb < *t1)
            *t1 = tb;
    }
}

static void check_raycast(lm_db *db, const struct ref *ref)
{
    float o[3] = {rndf(-8, 8), rndf(-8, 8), rndf(-8, 8)}, d[3];
    if (ref->n && rnd() % 2) { /* aim at a sample so that hits are common */
        const struct ref_sample *s = &ref->v[rnd() % ref->n];
        float to[3] = {s->x - o[0], s->y - o[1], s->z - o[2]};
        float l = sqrtf(to[0] * to[0] + to[1] * to[1] + to[2] * to[2]);
        for (int a = 0; a < 3; a++)
            d[a] = to[a] / l;
    } else {
        random_unit(d);
    }
    float max_dist = rndf(1, 30);
    enum lm_ray_mode mode = rnd() % 2 ? LM_RAY_ALL : LM_RAY_FIRST;
    struct lm_ray_result *res = NULL;
    struct lm_error err;
    if (lm_raycast(db, FIELD, o, d, max_dist, mode, &res, &err))
        FAILF("raycast: %s", err.message);
    /* Reference: every occupied voxel the ray segment crosses, with a margin for rays
     * that graze an edge (either answer is right there). */
    const double slack = 1e-4;
    double first_t = INFINITY, first_loose = INFINITY;
    for (size_t i = 0; i < ref->n; i++) {
        int64_t v[3];
        ref_cell_of(&ref->v[i], 0, v);
        double t0, t1;
        ray_voxel(o, d, v, &t0, &t1);
        if (t0 < 0)
            t0 = 0;
        if (t1 > max_dist)
            t1 = max_dist;
        if (t1 - t0 > slack && t0 < first_t)
            first_t = t0;
        if (t1 - t0 >= -slack && t0 < first_loose)
            first_loose = t0;
    }
    for (size_t h = 0; h < res->n_hits; h++) {
        int64_t v[3] = {res->hits[h].voxel[0], res->hits[h].voxel[1], res->hits[h].voxel[2]};
        double t0, t1;
        ray_voxel(o, d, v, &t0, &t1);
        if (t0 < 0)
            t0 = 0;
        if (t1 > max_dist)
            t1 = max_dist;
        if (t1 - t0 < -slack)
            FAILF("raycast hit voxel (%lld,%lld,%lld) that the ray misses",
                  (long long)v[0], (long long)v[1], (long long)v[2]);
        struct ref_cell rc;
        ref_cell(ref, v, 0, &rc);
        if (!rc.count || rc.count != res->hits[h].agg.count)
            FAILF("raycast hit voxel with %u samples, reference %u", res->hits[h].agg.count,
                  rc.count);
        if (h && res->hits[h].t_enter < res->hits[h - 1].t_enter - 1e-4f)
            FAILF("raycast hits out of order");
    }
    if (isfinite(first_t)) {
        if (!res->n_hits)
            FAILF("raycast found nothing, reference hits at t = %g", first_t);
        /* a grazed voxel before the first clear hit may be reported first */
        if (res->hits[0].t_enter > first_t + 1e-3 || res->hits[0].t_enter < first_loose - 1e-3)
            FAILF("raycast first hit at t = %g, reference %g (grazing %g)",
                  (double)res->hits[0].t_enter, first_t, first_loose);
    }
    if (mode == LM_RAY_FIRST && res->n_hits > 1)
        FAILF("raycast FIRST returned %zu hits", res->n_hits);
    uint64_t in_hits = 0;
    for (size_t h = 0; h < res->n_hits; h++)
        in_hits += res->hits[h].agg.count;
    if (res->samples->n != in_hits)
        FAILF("raycast returned %zu samples, hit voxels hold %llu", res->samples->n,
              (unsigned long long)in_hits);
    lm_ray_result_free(res);
}

struct chunk_tally {
    uint64_t samples, chunks, newer;
    uint64_t since;
};

static int tally(const struct lm_chunk_view *c, void *user)
{
    struct chunk_tally *t = user;
    t->samples += c->n;
    t->chunks++;
    if (c->lsn <= t->since)
        return -1;
    return 0;
}

static void check_info(lm_db *db, const struct ref *ref)
{
    struct lm_field_info info;
    assert_int_equal(lm_field_info(db, FIELD, &info, NULL), 0);
    if (info.n_samples != ref->n)
        FAILF("field reports %llu samples, reference %zu", (unsigned long long)info.n_samples,
              ref->n);
    struct chunk_tally t = {0};
    assert_int_equal(lm_chunks_each(db, FIELD, NULL, 0, tally, &t, NULL), 0);
    if (t.samples != ref->n || t.chunks != info.n_chunks)
        FAILF("chunk walk saw %llu samples in %llu chunks, expected %zu in %llu",
              (unsigned long long)t.samples, (unsigned long long)t.chunks, ref->n,
              (unsigned long long)info.n_chunks);
}

static void model_test(void **state)
{
    (void)state;
    const char *s = getenv("LUMADB_TEST_SEED"), *o = getenv("LUMADB_MODEL_OPS");
    seed = s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
    long ops = o ? atol(o) : 10000;
    rng_state = seed;
    fprintf(stderr, "model test: seed %llu, %ld operations\n", (unsigned long long)seed, ops);
    char dir[] = "/tmp/lumadb-model-XXXXXX";
    assert_non_null(mkdtemp(dir));
    lm_db *db;
    struct lm_error err;
    assert_int_equal(lm_db_open(dir, NULL, &db, &err), 0);
    struct lm_field_opts fo = {.voxel_size = VOXEL, .chunk_edge = EDGE, .n_user_columns = 1};
    strcpy(fo.user_columns[0].name, "id");
    fo.user_columns[0].type = LM_TYPE_I32;
    assert_int_equal(lm_field_create(db, FIELD, &fo, &err), 0);
    struct ref ref = {0};
    int32_t next_id = 0;
    long counts[10] = {0};
    for (long i = 0; i < ops; i++) {
        uint64_t kind = rnd() % 100;
        /* keep the reference around ~10k samples: inserts dominate while small */
        if (ref.n < 3000 && kind >= 40)
            kind = 0;
        if (kind < 20) {
            op_insert(db, &ref, &next_id);
            counts[0]++;
        } else if (kind < 26 || (ref.n > 12000 && kind < 40)) {
            op_delete(db, &ref);
            counts[1]++;
        } else if (kind < 32) {
            op_update(db, &ref);
            counts[2]++;
        } else if (kind < 50) {
            check_select(db, &ref);
            counts[3]++;
        } else if (kind < 65) {
            check_nearest(db, &ref);
            counts[4]++;
        } else if (kind < 75) {
            check_aggregate(db, &ref);
            counts[5]++;
        } else if (kind < 82) {
            check_voxels(db, &ref);
            counts[6]++;
        } else if (kind < 90) {
            check_radiance(db, &ref);
            counts[7]++;
        } else if (kind < 98) {
            check_raycast(db, &ref);
            counts[8]++;
        } else {
            check_info(db, &ref);
            counts[9]++;
        }
    }
    check_info(db, &ref);
    fprintf(stderr,
            "model test: %ld inserts, %ld deletes, %ld updates, %ld selects, %ld nearest, "
            "%ld aggregates, %ld voxel queries, %ld radiance, %ld ray casts, %ld info; "
            "%zu samples at the end\n",
            counts[0], counts[1], counts[2], counts[3], counts[4], counts[5], counts[6],
            counts[7], counts[8], counts[9], ref.n);
    lm_db_close(db);
    free(ref.v);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(model_test),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
