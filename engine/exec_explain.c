/* exec_explain.c - EXPLAIN: the plan of a statement as (step, detail) rows, with the
 * octree walk it makes (lm_walk_stats), the index each chunk gets and an estimate of
 * the rows from a sample of the candidates. Nothing is written, no row is copied. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "exec_int.h"
#include "region.h"

#define SAMPLE_ROWS 4096 /* rows examined for an estimate */

int lm__explain_line(struct lm_exec_result *r, const char *step, const char *fmt, ...)
{
    char detail[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    struct lm_exec_value *row = lm__result_row(r);
    const char *a = lm__result_text(r, step), *b = lm__result_text(r, detail);
    if (!row || !a || !b)
        return -ENOMEM;
    row[0] = (struct lm_exec_value){LM_EXEC_TEXT, .s = a};
    row[1] = (struct lm_exec_value){LM_EXEC_TEXT, .s = b};
    return 0;
}

/* ---------------------------------------------------------------- access */

struct probe {
    struct lm__exec *ex;
    const struct lm__xfield *f;
    const struct lm_selection *sel;
    const struct lm__pred *pred;
    size_t stride, next;         /* sample every stride-th candidate row */
    double matched;
    uint64_t kd, scan, inside;
};

/* The engine's choice for a partial chunk (field.c prefer_tree): the kd-tree when the
 * region covers under a quarter of the chunk's bounds, or is a frustum. */
static bool prefers_tree(const struct lm_chunk_view *c, const struct lm_region *r)
{
    float frac = 1.0f;
    for (int a = 0; a < 3; a++) {
        float rlo = r->kind == LM_REGION_BOX ? r->min[a] : r->center[a] - r->radius;
        float rhi = r->kind == LM_REGION_BOX ? r->max[a] : r->center[a] + r->radius;
        float lo = rlo > c->bounds_min[a] ? rlo : c->bounds_min[a];
        float hi = rhi < c->bounds_max[a] ? rhi : c->bounds_max[a];
        float ext = c->bounds_max[a] - c->bounds_min[a];
        if (ext > 0)
            frac *= hi > lo ? (hi - lo) / ext : 0.0f;
    }
    return r->kind == LM_REGION_FRUSTUM || frac < 0.25f;
}

static bool passes(const struct probe *p, const struct lm__row *r)
{
    if (p->pred)
        return lm__pred_eval(p->pred, r);
    if (!lm__region_contains(&p->sel->region, r->view->x[r->i], r->view->y[r->i],
                             r->view->z[r->i]))
        return false;
    for (uint32_t k = 0; k < p->sel->n_filters; k++) {
        struct lm__pred c = {.kind = LM__P_CMP, .cmp = p->sel->filters[k]};
        if (!lm__pred_eval(&c, r))
            return false;
    }
    return true;
}

static int probe_chunk(const struct lm_chunk_view *v, void *user)
{
    struct probe *p = user;
    int rc = lm__exec_canceled(p->ex);
    if (rc)
        return rc;
    enum lm__overlap ov = lm__region_classify(&p->sel->region, v->bounds_min, v->bounds_max);
    if (ov == LM__INSIDE)
        p->inside++;
    else if (prefers_tree(v, &p->sel->region))
        p->kd++;
    else
        p->scan++;
    struct lm__row r = {.f = p->f, .view = v};
    for (r.i = p->next; r.i < v->n; r.i += p->stride)
        if (passes(p, &r))
            p->matched += (double)p->stride;
    p->next = r.i - v->n;
    return 0;
}

int lm__explain_access(struct lm__exec *ex, const struct lm__xfield *f,
                       const struct lm_selection *sel, const struct lm__pred *pred,
                       struct lm_exec_result *r, double *est)
{
    struct lm_walk_stats ws;
    int rc = lm_walk_stats(ex->db, f->name, &sel->region, &ws, ex->err);
    if (rc)
        return lm__exec_engine(ex, rc);
    uint64_t reached = ws.chunks_inside + ws.chunks_partial;
    if ((rc = lm__explain_line(r, "octree",
                               "%llu nodes visited, %llu pruned; %llu of %llu chunks reached "
                               "(%llu inside the region, %llu partial), %llu skipped",
                               (unsigned long long)ws.nodes_visited,
                               (unsigned long long)ws.nodes_pruned,
                               (unsigned long long)reached,
                               (unsigned long long)f->info.n_chunks,
                               (unsigned long long)ws.chunks_inside,
                               (unsigned long long)ws.chunks_partial,
                               (unsigned long long)(f->info.n_chunks - reached))))
        return rc;
    uint64_t cand = ws.samples_inside + ws.samples_partial;
    struct probe p = {.ex = ex, .f = f, .sel = sel, .pred = pred,
                      .stride = cand > SAMPLE_ROWS ? (size_t)(cand / SAMPLE_ROWS) : 1};
    rc = lm_chunks_each(ex->db, f->name, &sel->region, 0, probe_chunk, &p, ex->err);
    if (rc)
        return rc == LM_ECANCELED ? rc : lm__exec_engine(ex, rc);
    if (sel->region.kind == LM_REGION_ALL)
        rc = lm__explain_line(r, "index", "none: every chunk is scanned whole");
    else
        rc = lm__explain_line(r, "index",
                              "scan of %llu chunks inside the region; kd-tree in %llu partial "
                              "chunks, scan in %llu (the region covers a quarter or more)",
                              (unsigned long long)p.inside, (unsigned long long)p.kd,
                              (unsigned long long)p.scan);
    if (!rc)
        rc = lm__explain_line(r, "estimate",
                              "%.0f of %llu candidate samples match (%s %llu rows)", p.matched,
                              (unsigned long long)cand,
                              p.stride > 1 ? "sampled every" : "all", 
                              (unsigned long long)(p.stride > 1 ? p.stride : cand));
    *est = p.matched;
    return rc;
}

/* ---------------------------------------------------------------- statements */

static int explain_other(struct lm__exec *ex, const struct lm_lql_stmt *s,
                         struct lm_exec_result *r)
{
    /* the statement's own checks, without running it */
    bool was = ex->plan_only;
    ex->plan_only = true;
    struct lm_exec_result *none = NULL;
    int rc = lm__exec_dispatch(ex, s, &none);
    ex->plan_only = was;
    lm_exec_result_free(none);
    if (rc)
        return rc;
    switch (s->kind) {
    case LM_LQL_CREATE_FIELD:
        return lm__explain_line(r, "access", "lm_field_create, logged then applied");
    case LM_LQL_DROP_FIELD:
        return lm__explain_line(r, "access", "lm_field_drop, logged then applied");
    case LM_LQL_SHOW_FIELDS:
        return lm__explain_line(r, "access", "lm_field_list");
    case LM_LQL_DESCRIBE:
        return lm__explain_line(r, "access", "lm_field_info");
    case LM_LQL_RAYCAST:
        return lm__explain_line(r, "access",
                                "lm_raycast: hierarchical DDA through the voxel grid, empty "
                                "chunks skipped; %s; length %s",
                                s->raycast.mode == LM_RAY_ALL ? "every occupied voxel"
                                                              : "stops at the first occupied "
                                                                "voxel",
                                s->raycast.has_max ? "from MAX" : "to the far side of the "
                                                                  "field's bounds");
    case LM_LQL_RADIANCE:
        return lm__explain_line(r, "access",
                                "lm_radiance: the 8 voxels around the point, trilinear "
                                "weights, L1 spherical harmonics evaluated toward the "
                                "direction");
    default: break;
    }
    return 0;
}

int lm__exec_explain(struct lm__exec *ex, const struct lm_lql_stmt *s,
                     struct lm_exec_result **out)
{
    const struct lm_lql_stmt *in = s->explain;
    if (ex->plan_only)
        return lm__exec_dispatch(ex, in, out);
    struct lm_exec_result *r;
    int rc = lm__result_new(s->kind, &r);
    if (rc)
        return rc;
    if ((rc = lm__result_column(r, "step", LM_EXEC_TEXT)) ||
        (rc = lm__result_column(r, "detail", LM_EXEC_TEXT)))
        goto done;
    size_t need = lm_lql_format_stmt(in, NULL, 0);
    char *text = lm__arena_alloc(&ex->tmp, need + 1);
    if (!text) {
        rc = -ENOMEM;
        goto done;
    }
    lm_lql_format_stmt(in, text, need + 1);
    if ((rc = lm__explain_line(r, "statement", "%s", text)))
        goto done;
    if (in->field.text && in->kind != LM_LQL_CREATE_FIELD) {
        struct lm__xfield f;
        if ((rc = lm__exec_field(ex, &in->field, &f)))
            goto done;
        lm_field_info(ex->db, f.name, &f.info, NULL); /* with its voxel count */
        rc = lm__explain_line(r, "field",
                              "%s: %llu samples in %llu chunks, %llu voxels (voxel %g, chunk "
                              "%u)",
                              f.name, (unsigned long long)f.info.n_samples,
                              (unsigned long long)f.info.n_chunks,
                              (unsigned long long)f.info.n_voxels,
                              (double)f.info.opts.voxel_size, f.info.opts.chunk_edge);
        if (rc)
            goto done;
    }
    switch (in->kind) {
    case LM_LQL_SELECT: rc = lm__explain_select(ex, in, r); break;
    case LM_LQL_INSERT:
    case LM_LQL_DELETE:
    case LM_LQL_UPDATE: rc = lm__explain_write(ex, in, r); break;
    default: rc = explain_other(ex, in, r); break;
    }
done:
    if (rc) {
        lm_exec_result_free(r);
        return rc;
    }
    *out = r;
    return 0;
}
