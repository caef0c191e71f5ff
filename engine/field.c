/* field.c - field schema, batch validation and the mutations of a field. */
#include "field.h"

#include "device.h"
#include "kdtree.h"
#include "scan.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "morton.h"
#include "octdir.h"
#include "region.h"

#define MAX_BATCH (1u << 26)

/* ---------------------------------------------------------------- schema */

static const char *const builtin_names[LM_COL_USER] = {
    "x", "y", "z", "dx", "dy", "dz", "r", "g", "b", "intensity", "t"};

const char *lm_column_name(int column, const struct lm_field_opts *opts)
{
    if (column >= 0 && column < LM_COL_USER)
        return builtin_names[column];
    if (opts && column >= LM_COL_USER && (uint32_t)(column - LM_COL_USER) < opts->n_user_columns)
        return opts->user_columns[column - LM_COL_USER].name;
    return NULL;
}

int lm_column_find(const char *name, const struct lm_field_opts *opts)
{
    for (int c = 0; c < LM_COL_USER; c++)
        if (!strcasecmp(name, builtin_names[c]))
            return c;
    for (uint32_t u = 0; opts && u < opts->n_user_columns; u++)
        if (!strcasecmp(name, opts->user_columns[u].name))
            return LM_COL_USER + (int)u;
    return LM_ENOCOLUMN;
}

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > LM_NAME_MAX || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_'))
            return false;
    return true;
}

int lm__field_validate(const char *name, const struct lm_field_opts *opts,
                       struct lm_field_opts *norm, struct lm_error *err)
{
    if (!name || !valid_name(name))
        return lm__fail(err, LM_EBADARG,
                        "field name '%s' is invalid: use 1-%d characters [A-Za-z_][A-Za-z0-9_]*",
                        name ? name : "(null)", LM_NAME_MAX);
    if (!opts)
        return lm__fail(err, LM_EBADARG, "field '%s': options are required (voxel size)", name);
    *norm = *opts;
    if (!isfinite(opts->voxel_size) || opts->voxel_size <= 0.0f)
        return lm__fail(err, LM_EBADARG, "field '%s': voxel size %g must be a finite number > 0",
                        name, (double)opts->voxel_size);
    if (!norm->chunk_edge)
        norm->chunk_edge = 32;
    uint32_t e = norm->chunk_edge;
    if (e < 4 || e > 256 || (e & (e - 1)))
        return lm__fail(err, LM_EBADARG,
                        "field '%s': chunk edge %u must be a power of two in [4, 256]", name, e);
    if (opts->n_user_columns > LM_MAX_USER_COLUMNS)
        return lm__fail(err, LM_EBADARG, "field '%s': %u user columns, at most %d", name,
                        opts->n_user_columns, LM_MAX_USER_COLUMNS);
    for (uint32_t u = 0; u < opts->n_user_columns; u++) {
        const struct lm_column_def *c = &opts->user_columns[u];
        if (!memchr(c->name, 0, sizeof c->name) || !valid_name(c->name))
            return lm__fail(err, LM_EBADARG, "field '%s': user column %u has an invalid name",
                            name, u);
        if (c->type != LM_TYPE_F32 && c->type != LM_TYPE_I32 && c->type != LM_TYPE_U8)
            return lm__fail(err, LM_EBADARG, "field '%s': column '%s' has unknown type %d",
                            name, c->name, (int)c->type);
        struct lm_field_opts before = *opts;
        before.n_user_columns = u;
        if (lm_column_find(c->name, &before) >= 0)
            return lm__fail(err, LM_EBADARG,
                            "field '%s': column name '%s' is used twice or is built in", name,
                            c->name);
    }
    for (uint32_t u = opts->n_user_columns; u < LM_MAX_USER_COLUMNS; u++)
        memset(&norm->user_columns[u], 0, sizeof norm->user_columns[u]);
    return 0;
}

int lm__field_new(const char *name, const struct lm_field_opts *opts, struct lm_field **out,
                  struct lm_error *err)
{
    struct lm_field_opts norm;
    int rc = lm__field_validate(name, opts, &norm, err);
    if (rc)
        return rc;
    struct lm_field *f = lm_calloc(1, sizeof *f);
    if (!f)
        return lm__fail(err, -ENOMEM, "out of memory creating field '%s'", name);
    snprintf(f->name, sizeof f->name, "%s", name);
    f->opts = norm;
    f->schema.voxel_size = norm.voxel_size;
    f->schema.inv_voxel = 1.0 / (double)norm.voxel_size;
    f->schema.edge = norm.chunk_edge;
    f->schema.log2_edge = (uint32_t)__builtin_ctz(norm.chunk_edge);
    f->schema.n_user = norm.n_user_columns;
    for (uint32_t u = 0; u < norm.n_user_columns; u++)
        f->schema.user_type[u] = norm.user_columns[u].type;
    lm__octree_init(&f->tree);
    *out = f;
    return 0;
}

static void free_leaves(struct lm__onode *n, const struct lm_schema *s)
{
    if (!n)
        return;
    if (n->chunk)
        lm__chunk_free(n->chunk, s);
    for (int i = 0; i < 8; i++)
        free_leaves(n->child[i], s);
}

void lm__field_free(struct lm_field *f)
{
    if (!f)
        return;
    free_leaves(f->tree.root, &f->schema);
    lm__octree_destroy(&f->tree);
    lm_free(f);
}

/* ---------------------------------------------------------------- validation */

int lm__field_check_batch(const struct lm_field *f, const struct lm_batch *b,
                          struct lm_error *err)
{
    if (b->n > MAX_BATCH)
        return lm__fail(err, LM_ELIMIT, "batch of %zu samples exceeds the limit of %u", b->n,
                        MAX_BATCH);
    if (!b->x || !b->y || !b->z)
        return lm__fail(err, LM_ESCHEMA, "batch lacks position column %s",
                        !b->x ? "x" : !b->y ? "y" : "z");
    int ndir = !!b->dx + !!b->dy + !!b->dz, ncol = !!b->r + !!b->g + !!b->b;
    if (ndir != 0 && ndir != 3)
        return lm__fail(err, LM_ESCHEMA, "batch gives %d of the 3 direction columns", ndir);
    if (ncol != 0 && ncol != 3)
        return lm__fail(err, LM_ESCHEMA, "batch gives %d of the 3 colour columns", ncol);
    if (b->n_user != 0 && b->n_user != f->schema.n_user)
        return lm__fail(err, LM_ESCHEMA, "batch has %u user columns, field '%s' has %u",
                        b->n_user, f->name, f->schema.n_user);
    /* Chunk coordinates must fit in int32: |p / voxel| < 2^(31 + log2 edge). */
    double limit = ldexp(1.0, 31 + (int)f->schema.log2_edge) - 1.0;
    for (size_t i = 0; i < b->n; i++) {
        const float p[3] = {b->x[i], b->y[i], b->z[i]};
        for (int a = 0; a < 3; a++) {
            if (!isfinite(p[a]))
                return lm__fail(err, LM_EBADVALUE, "sample %zu: %c = %g is not a finite number",
                                i, "xyz"[a], (double)p[a]);
            if (fabs((double)p[a] * f->schema.inv_voxel) >= limit)
                return lm__fail(err, LM_EBADVALUE,
                                "sample %zu: %c = %g is outside the addressable grid", i,
                                "xyz"[a], (double)p[a]);
        }
        if (ndir) {
            const float d[3] = {b->dx[i], b->dy[i], b->dz[i]};
            double len = sqrt((double)d[0] * d[0] + (double)d[1] * d[1] + (double)d[2] * d[2]);
            if (!isfinite(len) || fabs(len - 1.0) > 1e-3)
                return lm__fail(err, LM_EBADVALUE,
                                "sample %zu: direction (%g, %g, %g) has length %g, not 1", i,
                                (double)d[0], (double)d[1], (double)d[2], len);
        }
        if (ncol) {
            const float c[3] = {b->r[i], b->g[i], b->b[i]};
            for (int k = 0; k < 3; k++)
                if (!(c[k] >= 0.0f && c[k] <= 1.0f))
                    return lm__fail(err, LM_EBADVALUE,
                                    "sample %zu: colour %c = %g is outside [0, 1]", i, "rgb"[k],
                                    (double)c[k]);
        }
        if (b->intensity && !(isfinite(b->intensity[i]) && b->intensity[i] >= 0.0f))
            return lm__fail(err, LM_EBADVALUE,
                            "sample %zu: intensity = %g must be a finite number >= 0", i,
                            (double)b->intensity[i]);
        for (uint32_t u = 0; u < b->n_user; u++)
            if (b->user[u] && f->schema.user_type[u] == LM_TYPE_F32 &&
                !isfinite(((const float *)b->user[u])[i]))
                return lm__fail(err, LM_EBADVALUE, "sample %zu: %s = %g is not a finite number",
                                i, f->opts.user_columns[u].name,
                                (double)((const float *)b->user[u])[i]);
    }
    return 0;
}

int lm__field_check_selection(const struct lm_field *f, const struct lm_selection *sel,
                              struct lm_error *err)
{
    if (!sel)
        return 0;
    int rc = lm__region_validate(&sel->region, err);
    if (rc)
        return rc;
    if (sel->n_filters > LM_MAX_FILTERS)
        return lm__fail(err, LM_EBADARG, "%u filters, at most %d", sel->n_filters,
                        LM_MAX_FILTERS);
    for (uint32_t i = 0; i < sel->n_filters; i++) {
        const struct lm_filter *flt = &sel->filters[i];
        if (!lm_column_name(flt->column, &f->opts))
            return lm__fail(err, LM_ENOCOLUMN, "filter %u: field '%s' has no column %d", i,
                            f->name, flt->column);
        if (flt->cmp < LM_CMP_LT || flt->cmp > LM_CMP_BETWEEN)
            return lm__fail(err, LM_EBADARG, "filter %u: unknown comparison %d", i,
                            (int)flt->cmp);
        if (isnan(flt->a) || (flt->cmp == LM_CMP_BETWEEN && isnan(flt->b)))
            return lm__fail(err, LM_EBADARG, "filter %u on %s: NaN is not comparable", i,
                            lm_column_name(flt->column, &f->opts));
    }
    return 0;
}

/* ---------------------------------------------------------------- selection */

bool lm__row_passes_filters(const struct lm_chunk *c, const struct lm_schema *s,
                            const struct lm_selection *sel, uint32_t i)
{
    for (uint32_t k = 0; k < sel->n_filters; k++) {
        const struct lm_filter *f = &sel->filters[k];
        if (!lm__filter_holds(lm__chunk_value(c, s, f->column, i), f))
            return false;
    }
    return true;
}

struct range_sink {
    const struct lm_chunk *c;
    const struct lm_schema *s;
    const struct lm_selection *sel;
    uint32_t *out;
    uint32_t n;
};

static int take_run(void *ctx, uint32_t begin, uint32_t end)
{
    struct range_sink *k = ctx;
    for (uint32_t i = begin; i < end; i++)
        if (!k->sel->n_filters || lm__row_passes_filters(k->c, k->s, k->sel, i))
            k->out[k->n++] = i;
    return 0;
}

/* Scan predicate for a filter, when its column is stored in a type the kernels compare
 * exactly as the engine does (colour and direction are stored encoded: no). */
static bool scan_pred(const struct lm_chunk *c, const struct lm_schema *s,
                      const struct lm_filter *f, struct lm_scan_pred *out)
{
    const void *col = NULL;
    enum lm_scan_type type = LM_SCAN_F32;
    switch (f->column) {
    case LM_COL_X: col = c->x; break;
    case LM_COL_Y: col = c->y; break;
    case LM_COL_Z: col = c->z; break;
    case LM_COL_INTENSITY: col = c->intensity; break;
    case LM_COL_T: col = c->t; type = LM_SCAN_I64; break;
    default:
        if (f->column < LM_COL_USER)
            return false;
        col = c->user[f->column - LM_COL_USER];
        type = (enum lm_scan_type)s->user_type[f->column - LM_COL_USER];
    }
    *out = (struct lm_scan_pred){col, type, f->cmp, f->a, f->b};
    return true;
}

/* Compiles the selection into a scan plan over all rows of c; false when some filter
 * needs the row-by-row path. */
bool lm__chunk_scan_plan(const struct lm_chunk *c, const struct lm_schema *s,
                         const struct lm_selection *sel, int overlap, struct lm_scan_plan *plan)
{
    static const struct lm_region all = {.kind = LM_REGION_ALL};
    struct lm_scan_pred preds[LM_MAX_FILTERS];
    uint32_t n = sel ? sel->n_filters : 0;
    for (uint32_t k = 0; k < n; k++)
        if (!scan_pred(c, s, &sel->filters[k], &preds[k]))
            return false;
    const struct lm_region *r = sel && overlap != LM__INSIDE ? &sel->region : &all;
    return lm_scan_plan_init(plan, c->n, c->x, c->y, c->z, r, preds, n) == 0;
}

/* Should a partial region go through the kd-tree (prunes) or a full scan (streams)?
 * The tree wins when the region covers a small part of the chunk. */
static bool prefer_tree(const struct lm_chunk *c, const struct lm_region *r)
{
    float lo[3], hi[3], frac = 1.0f;
    for (int a = 0; a < 3; a++) {
        float rlo = r->kind == LM_REGION_BOX ? r->min[a] : r->center[a] - r->radius;
        float rhi = r->kind == LM_REGION_BOX ? r->max[a] : r->center[a] + r->radius;
        lo[a] = rlo > c->bmin[a] ? rlo : c->bmin[a];
        hi[a] = rhi < c->bmax[a] ? rhi : c->bmax[a];
        float ext = c->bmax[a] - c->bmin[a];
        if (ext > 0)
            frac *= hi[a] > lo[a] ? (hi[a] - lo[a]) / ext : 0.0f;
    }
    return r->kind == LM_REGION_FRUSTUM || frac < 0.25f;
}

uint32_t lm__chunk_select(const struct lm_chunk *c, const struct lm_schema *s,
                          const struct lm_selection *sel, int overlap, uint32_t *out)
{
    static const struct lm_selection everything = {.region = {.kind = LM_REGION_ALL}};
    if (!sel)
        sel = &everything;
    const struct lm_region *r = &sel->region;
    bool partial = overlap == LM__PARTIAL;
    struct lm_scan_plan plan;
    if ((!partial || !prefer_tree(c, r)) && lm__chunk_scan_plan(c, s, sel, overlap, &plan)) {
        size_t n = 0;
        lm_scan_select(lm_device_scan_table(c->n), &plan, out, &n);
        return (uint32_t)n;
    }
    struct range_sink k = {c, s, sel, out, 0};
    uint32_t scan_from = 0;
    const lm_kdtree *kd = partial ? lm__chunk_index(c) : NULL;
    if (kd) {
        /* The kd-tree prunes the sorted rows; its runs come in ascending order and
         * use the same float expressions as lm__region_contains. */
        if (r->kind == LM_REGION_BOX)
            lm_kdtree_box(kd, c->x, c->y, c->z, r->min, r->max, take_run, &k);
        else if (r->kind == LM_REGION_SPHERE)
            lm_kdtree_sphere(kd, c->x, c->y, c->z, r->center, r->radius, take_run, &k);
        else
            lm_kdtree_frustum(kd, c->x, c->y, c->z, r->planes, take_run, &k);
        scan_from = c->n_sorted;
    }
    for (uint32_t i = scan_from; i < c->n; i++) {
        if (overlap != LM__INSIDE && !lm__region_contains(r, c->x[i], c->y[i], c->z[i]))
            continue;
        if (sel->n_filters && !lm__row_passes_filters(c, s, sel, i))
            continue;
        out[k.n++] = i;
    }
    return k.n;
}

static int walk_node(struct lm__onode *n, const struct lm_region *region, int parent_overlap,
                     lm__leaf_fn fn, void *ctx)
{
    int ov = parent_overlap == LM__INSIDE
                 ? LM__INSIDE
                 : (int)lm__region_classify(region, n->bmin, n->bmax);
    if (ov == LM__OUTSIDE || !n->count)
        return 0;
    if (n->chunk)
        return fn(n, ov, ctx);
    for (int i = 0; i < 8; i++) {
        if (!n->child[i])
            continue;
        int rc = walk_node(n->child[i], region, ov, fn, ctx);
        if (rc)
            return rc;
    }
    return 0;
}

int lm__field_walk(const struct lm_field *f, const struct lm_region *region,
                   lm__leaf_fn fn, void *ctx)
{
    static const struct lm_region all = {.kind = LM_REGION_ALL};
    if (!f->tree.root)
        return 0;
    return walk_node(f->tree.root, region ? region : &all, LM__PARTIAL, fn, ctx);
}

/* ---------------------------------------------------------------- insert */

struct group_map {
    int32_t *coord; /* 3 per slot */
    uint32_t *group; /* slot -> group + 1, 0 = empty */
    uint32_t cap;
};

static uint32_t coord_hash(const int32_t c[3], uint32_t cap)
{
    uint64_t h = (uint64_t)(uint32_t)c[0] * 0x9e3779b97f4a7c15ull ^
                 (uint64_t)(uint32_t)c[1] * 0xc2b2ae3d27d4eb4full ^
                 (uint64_t)(uint32_t)c[2] * 0x165667b19e3779f9ull;
    return (uint32_t)((h ^ h >> 31) & (cap - 1));
}

struct lm__insert_plan {
    struct lm_field *f;
    uint32_t n, n_groups;    /* a group is the batch's rows in one chunk */
    struct lm__staged st;    /* the batch with the per-row values below */
    uint32_t *vkey;          /* local voxel key per row */
    uint16_t *dir;           /* octahedral directions, 2 per row, or NULL */
    uint32_t *group, *rank;  /* per row: its group, its place in the group */
    uint32_t *order;         /* rows grouped by chunk, batch order in a group */
    uint32_t *by_brick;      /* per group, its places in brick order */
    uint32_t *g_start;       /* group g is order[g_start[g] .. g_start[g + 1]) */
    struct lm__onode **g_leaf;
    struct lm_chunk **g_chunk;
    struct lm__chunk_rows *g_rows;
    void **g_base;           /* scratch for lm__chunk_append */
    bool *g_new;             /* chunk created by this plan (removed on abort) */
};

static void plan_free(struct lm__insert_plan *p)
{
    lm_free(p->vkey);
    lm_free(p->dir);
    lm_free(p->group);
    lm_free(p->rank);
    lm_free(p->order);
    lm_free(p->by_brick);
    lm_free(p->g_start);
    lm_free(p->g_leaf);
    lm_free(p->g_chunk);
    lm_free(p->g_rows);
    lm_free(p->g_base);
    lm_free(p->g_new);
    lm_free(p);
}

void lm__field_insert_abort(struct lm__insert_plan *p)
{
    if (!p)
        return;
    for (uint32_t g = 0; p->g_leaf && p->g_new && g < p->n_groups; g++) {
        if (p->g_new[g] && p->g_leaf[g]) {
            struct lm_chunk *c = p->g_leaf[g]->chunk;
            lm__octree_remove(&p->f->tree, p->g_leaf[g]);
            lm__chunk_free(c, &p->f->schema);
        }
    }
    plan_free(p);
}

/* Normalised in double, stored octahedral: the row's direction from here on. */
static void encode_directions(const struct lm_batch *b, uint16_t *restrict out)
{
    const float *restrict dx = b->dx, *restrict dy = b->dy, *restrict dz = b->dz;
    for (size_t i = 0, n = b->n; i < n; i++) {
        double d[3] = {dx[i], dy[i], dz[i]};
        double l = sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
        float u[3] = {(float)(d[0] / l), (float)(d[1] / l), (float)(d[2] / l)};
        lm__oct_encode(u, &out[2 * i]);
    }
}

/* Groups the rows by chunk: p->group, p->n_groups and the group sizes in g_start
 * (shifted by one, for the prefix sum), from each row's chunk coordinates. A small hash
 * map; runs of rows in one chunk skip it. */
static int group_rows(struct lm__insert_plan *p, const int32_t *row_chunk)
{
    struct group_map gm = {.cap = 16};
    while (gm.cap < 2u * p->n)
        gm.cap <<= 1;
    gm.coord = lm_alloc((size_t)gm.cap * 3 * sizeof *gm.coord);
    gm.group = lm_calloc(gm.cap, sizeof *gm.group);
    if (!gm.coord || !gm.group) {
        lm_free(gm.coord);
        lm_free(gm.group);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < p->n; i++) {
        const int32_t *cc = &row_chunk[3 * i];
        if (i && !memcmp(cc, cc - 3, 3 * sizeof *cc)) {
            p->group[i] = p->group[i - 1];
        } else {
            uint32_t h = coord_hash(cc, gm.cap);
            while (gm.group[h] && memcmp(&gm.coord[3 * h], cc, 3 * sizeof *cc))
                h = (h + 1) & (gm.cap - 1);
            if (!gm.group[h]) {
                memcpy(&gm.coord[3 * h], cc, 3 * sizeof *cc);
                gm.group[h] = ++p->n_groups;
            }
            p->group[i] = gm.group[h] - 1;
        }
        p->g_start[p->group[i] + 1]++;
    }
    lm_free(gm.coord);
    lm_free(gm.group);
    return 0;
}

int lm__field_insert_prepare(struct lm_field *f, const struct lm_batch *b,
                             struct lm__insert_plan **out, struct lm_error *err)
{
    const struct lm_schema *s = &f->schema;
    uint32_t n = (uint32_t)b->n, ng;
    struct lm__insert_plan *p = lm_calloc(1, sizeof *p);
    int32_t *row_chunk = NULL;
    uint32_t *scratch = NULL;
    if (!p)
        goto nomem;
    p->f = f;
    p->n = n;
    row_chunk = lm_alloc(((size_t)n + 1) * 3 * sizeof *row_chunk);
    p->vkey = lm_alloc(((size_t)n + 1) * sizeof *p->vkey);
    p->group = lm_alloc(((size_t)n + 1) * sizeof *p->group);
    p->rank = lm_alloc(((size_t)n + 1) * sizeof *p->rank);
    p->order = lm_alloc(((size_t)n + 1) * sizeof *p->order);
    p->by_brick = lm_alloc(((size_t)n + 1) * sizeof *p->by_brick);
    p->g_start = lm_calloc((size_t)n + 2, sizeof *p->g_start);
    if (!row_chunk || !p->vkey || !p->group || !p->rank || !p->order || !p->by_brick ||
        !p->g_start)
        goto nomem;
    if (b->dx) {
        if (!(p->dir = lm_alloc((size_t)n * 2 * sizeof *p->dir)))
            goto nomem;
        encode_directions(b, p->dir);
    }
    /* Every row's voxel, once: its chunk and its local voxel key. */
    for (uint32_t i = 0; i < n; i++) {
        int64_t v[3] = {lm_voxel_of(b->x[i], s->inv_voxel), lm_voxel_of(b->y[i], s->inv_voxel),
                        lm_voxel_of(b->z[i], s->inv_voxel)};
        for (int a = 0; a < 3; a++)
            row_chunk[3 * i + a] = lm_chunk_of(v[a], s->log2_edge);
        p->vkey[i] = lm__vkey(v[0], v[1], v[2], s->log2_edge);
    }
    if (group_rows(p, row_chunk))
        goto nomem;
    ng = p->n_groups;
    p->g_leaf = lm_calloc(ng, sizeof *p->g_leaf);
    p->g_chunk = lm_calloc(ng, sizeof *p->g_chunk);
    p->g_rows = lm_calloc(ng, sizeof *p->g_rows);
    p->g_base = lm_calloc(ng, sizeof *p->g_base);
    p->g_new = lm_calloc(ng, sizeof *p->g_new);
    scratch = lm_alloc(((size_t)n + lm__chunk_n_bricks(s) + 1) * sizeof *scratch);
    if (!p->g_leaf || !p->g_chunk || !p->g_rows || !p->g_base || !p->g_new || !scratch)
        goto nomem;
    /* Counting sort by group, stable: order, and each row's rank in its group. */
    for (uint32_t g = 0; g < ng; g++)
        p->g_start[g + 1] += p->g_start[g];
    memcpy(scratch, p->g_start, ng * sizeof *scratch);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t at = scratch[p->group[i]]++;
        p->order[at] = i;
        p->rank[i] = at - p->g_start[p->group[i]];
    }
    p->st = (struct lm__staged){.b = b, .vkey = p->vkey, .dir = p->dir, .group = p->group,
                                .rank = p->rank};
    /* Find or create every chunk and reserve room; nothing visible changes (new
     * chunks are empty, which queries skip). */
    for (uint32_t g = 0; g < ng; g++) {
        const uint32_t *rows = &p->order[p->g_start[g]];
        uint32_t count = p->g_start[g + 1] - p->g_start[g];
        const int32_t *cc = &row_chunk[3 * rows[0]];
        struct lm__onode *leaf = lm__octree_find(&f->tree, cc);
        if (!leaf) {
            struct lm_chunk *c = lm__chunk_new(cc, s);
            if (!c || lm__octree_add(&f->tree, c, &leaf)) {
                lm__chunk_free(c, s);
                goto nomem;
            }
            p->g_new[g] = true;
        }
        p->g_leaf[g] = leaf;
        p->g_chunk[g] = leaf->chunk;
        if (lm__chunk_reserve(leaf->chunk, s, &p->st, rows, count))
            goto nomem;
        /* voxels are updated in brick order: aggregate updates then stay in cache */
        uint32_t *by_brick = &p->by_brick[p->g_start[g]];
        lm__chunk_order_rows(s, p->vkey, rows, by_brick, count, scratch);
        p->g_rows[g] = (struct lm__chunk_rows){count, rows, by_brick};
    }
    lm_free(scratch);
    lm_free(row_chunk);
    *out = p;
    return 0;
nomem:
    lm_free(scratch);
    lm_free(row_chunk);
    lm__field_insert_abort(p);
    return lm__fail(err, -ENOMEM, "out of memory inserting %u samples into '%s'", n, f->name);
}

void lm__field_insert_commit(struct lm__insert_plan *p, uint64_t lsn)
{
    struct lm_field *f = p->f;
    lm__chunk_append(p->g_chunk, p->n_groups, &f->schema, &p->st, p->g_rows, p->g_base);
    for (uint32_t g = 0; g < p->n_groups; g++) {
        struct lm_chunk *c = p->g_chunk[g];
        c->lsn = lsn;
        lm__chunk_compact(c, &f->schema, false); /* best effort: a tail is valid */
        lm__octree_refresh(&f->tree, p->g_leaf[g]);
    }
    f->n_samples += p->n;
    f->lsn = lsn;
    plan_free(p);
}

int lm__field_insert(struct lm_field *f, const struct lm_batch *b, uint64_t lsn,
                     struct lm_error *err)
{
    if (!b->n)
        return 0;
    struct lm__insert_plan *p;
    int rc = lm__field_insert_prepare(f, b, &p, err);
    if (rc)
        return rc;
    lm__field_insert_commit(p, lsn);
    return 0;
}

/* ---------------------------------------------------------------- delete, update */

struct leaf_list {
    struct lm__onode **v;
    uint32_t n, cap;
    int *overlap;
};

static int collect_leaf(struct lm__onode *leaf, int overlap, void *ctx)
{
    struct leaf_list *l = ctx;
    if (l->n == l->cap) {
        uint32_t cap = l->cap ? l->cap * 2 : 64;
        struct lm__onode **v = lm_realloc(l->v, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        l->v = v;
        int *o = lm_realloc(l->overlap, cap * sizeof *o);
        if (!o)
            return -ENOMEM;
        l->overlap = o;
        l->cap = cap;
    }
    l->v[l->n] = leaf;
    l->overlap[l->n++] = overlap;
    return 0;
}

/* Leaves that may hold rows of the selection, collected before any change (a walk
 * must not run while leaves are being removed). */
static int collect(const struct lm_field *f, const struct lm_selection *sel,
                   struct leaf_list *l)
{
    memset(l, 0, sizeof *l);
    int rc = lm__field_walk(f, sel ? &sel->region : NULL, collect_leaf, l);
    if (rc) {
        lm_free(l->v);
        lm_free(l->overlap);
    }
    return rc;
}

int lm__field_delete(struct lm_field *f, const struct lm_selection *sel, uint64_t lsn,
                     uint64_t *n_deleted, struct lm_error *err)
{
    const struct lm_schema *s = &f->schema;
    struct leaf_list l;
    uint64_t total = 0;
    int rc = collect(f, sel, &l);
    if (rc)
        return lm__fail(err, rc, "out of memory planning delete on '%s'", f->name);
    for (uint32_t k = 0; k < l.n && !rc; k++) {
        struct lm_chunk *c = l.v[k]->chunk;
        uint32_t *idx = lm_alloc((size_t)c->n * sizeof *idx);
        bool *keep = lm_alloc((size_t)c->n * sizeof *keep);
        if (!idx || !keep) {
            rc = -ENOMEM;
        } else {
            uint32_t m = lm__chunk_select(c, s, sel, l.overlap[k], idx);
            if (m == c->n) {
                total += m;
                lm__octree_remove(&f->tree, l.v[k]);
                lm__chunk_free(c, s);
            } else if (m) {
                memset(keep, 1, (size_t)c->n * sizeof *keep);
                for (uint32_t i = 0; i < m; i++)
                    keep[idx[i]] = false;
                rc = lm__chunk_retain(c, s, keep);
                if (!rc) {
                    total += m;
                    c->lsn = lsn;
                    lm__octree_refresh(&f->tree, l.v[k]);
                }
            }
        }
        lm_free(idx);
        lm_free(keep);
    }
    lm_free(l.v);
    lm_free(l.overlap);
    f->n_samples -= total;
    if (total)
        f->lsn = lsn;
    if (rc)
        return lm__fail(err, rc, "out of memory deleting from '%s' after %llu rows", f->name,
                        (unsigned long long)total);
    if (n_deleted)
        *n_deleted = total;
    return 0;
}

int lm__field_check_update(const struct lm_field *f, int column, double value,
                           struct lm_error *err)
{
    const struct lm_schema *s = &f->schema;
    const char *cname = lm_column_name(column, &f->opts);
    if (!cname)
        return lm__fail(err, LM_ENOCOLUMN, "field '%s' has no column %d", f->name, column);
    if (column <= LM_COL_DZ)
        return lm__fail(err, LM_EBADARG,
                        "column '%s' cannot be updated in place: delete and insert the samples",
                        cname);
    bool colour = column >= LM_COL_R && column <= LM_COL_B;
    if (!isfinite(value) || (colour && (value < 0 || value > 1)) ||
        (column == LM_COL_INTENSITY && value < 0))
        return lm__fail(err, LM_EBADVALUE, "value %g is not valid for column '%s'", value,
                        cname);
    enum lm_type ut = column >= LM_COL_USER ? s->user_type[column - LM_COL_USER] : LM_TYPE_F32;
    if (column >= LM_COL_USER && ut != LM_TYPE_F32 &&
        (value != floor(value) || value < (ut == LM_TYPE_U8 ? 0 : INT32_MIN) ||
         value > (ut == LM_TYPE_U8 ? 255 : INT32_MAX)))
        return lm__fail(err, LM_EBADVALUE, "value %g does not fit column '%s'", value, cname);
    if (column == LM_COL_T && (value != floor(value) || fabs(value) > 9.2e18))
        return lm__fail(err, LM_EBADVALUE, "time %g must be an integer number of microseconds",
                        value);
    return 0;
}

int lm__field_update(struct lm_field *f, const struct lm_selection *sel, int column,
                     double value, uint64_t lsn, uint64_t *n_updated, struct lm_error *err)
{
    const struct lm_schema *s = &f->schema;
    int vrc = lm__field_check_update(f, column, value, err);
    if (vrc)
        return vrc;
    bool colour = column >= LM_COL_R && column <= LM_COL_B;
    enum lm_type ut = column >= LM_COL_USER ? s->user_type[column - LM_COL_USER] : LM_TYPE_F32;
    struct leaf_list l;
    uint64_t total = 0;
    int rc = collect(f, sel, &l);
    if (rc)
        return lm__fail(err, rc, "out of memory planning update on '%s'", f->name);
    for (uint32_t k = 0; k < l.n && !rc; k++) {
        struct lm_chunk *c = l.v[k]->chunk;
        uint32_t *idx = lm_alloc((size_t)c->n * sizeof *idx);
        if (!idx) {
            rc = -ENOMEM;
            break;
        }
        uint32_t m = lm__chunk_select(c, s, sel, l.overlap[k], idx);
        for (uint32_t j = 0; j < m; j++) {
            uint32_t i = idx[j];
            switch (column) {
            case LM_COL_R: c->r[i] = (uint8_t)lrint(value * 255.0); break;
            case LM_COL_G: c->g[i] = (uint8_t)lrint(value * 255.0); break;
            case LM_COL_B: c->b[i] = (uint8_t)lrint(value * 255.0); break;
            case LM_COL_INTENSITY: c->intensity[i] = (float)value; break;
            case LM_COL_T: c->t[i] = (int64_t)value; break;
            default: {
                uint32_t u = (uint32_t)(column - LM_COL_USER);
                if (ut == LM_TYPE_F32)
                    ((float *)c->user[u])[i] = (float)value;
                else if (ut == LM_TYPE_I32)
                    ((int32_t *)c->user[u])[i] = (int32_t)value;
                else
                    ((uint8_t *)c->user[u])[i] = (uint8_t)value;
            }
            }
        }
        lm_free(idx);
        if (m) {
            total += m;
            c->lsn = lsn;
            if (colour || column == LM_COL_INTENSITY)
                rc = lm__chunk_recompute(c, s);
            lm__octree_refresh(&f->tree, l.v[k]);
        }
    }
    lm_free(l.v);
    lm_free(l.overlap);
    if (total)
        f->lsn = lsn;
    if (rc)
        return lm__fail(err, rc, "out of memory updating '%s'", f->name);
    if (n_updated)
        *n_updated = total;
    return 0;
}

/* ---------------------------------------------------------------- misc */

static int compact_leaf(struct lm__onode *leaf, int overlap, void *ctx)
{
    (void)overlap;
    const struct lm_field *f = ctx;
    int rc = lm__chunk_compact(leaf->chunk, &f->schema, true);
    if (!rc && leaf->chunk->n_sorted && !lm__chunk_index(leaf->chunk))
        rc = -ENOMEM;
    return rc;
}

int lm__field_compact(struct lm_field *f)
{
    return lm__field_walk(f, NULL, compact_leaf, f);
}

struct info_acc {
    const struct lm_schema *s;
    uint64_t voxels, bytes;
};

static int info_leaf(struct lm__onode *leaf, int overlap, void *ctx)
{
    (void)overlap;
    struct info_acc *a = ctx;
    a->voxels += leaf->chunk->vox_n;
    a->bytes += lm__chunk_memory(leaf->chunk, a->s);
    return 0;
}

void lm__field_stat(const struct lm_field *f, struct lm_field_info *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", f->name);
    out->opts = f->opts;
    out->n_samples = f->n_samples;
    out->n_chunks = f->tree.n_chunks;
    out->lsn = f->lsn;
    if (f->tree.root && f->tree.root->count) {
        memcpy(out->bounds_min, f->tree.root->bmin, sizeof out->bounds_min);
        memcpy(out->bounds_max, f->tree.root->bmax, sizeof out->bounds_max);
    }
}

void lm__field_info(const struct lm_field *f, struct lm_field_info *out)
{
    lm__field_stat(f, out);
    struct info_acc a = {&f->schema, 0, sizeof *f};
    lm__field_walk(f, NULL, info_leaf, &a);
    out->n_voxels = a.voxels;
    out->memory_bytes = a.bytes + (uint64_t)f->tree.map_cap * sizeof(void *) +
                        (uint64_t)f->tree.n_chunks * 2 * sizeof(struct lm__onode);
}
