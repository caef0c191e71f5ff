/* exec_where.c - WHERE expressions: compiled against a field, evaluated per sample with
 * the engine's rules, pushed down into selections, expanded into unions of selections. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "exec_int.h"
#include "region.h"

/* ---------------------------------------------------------------- compile */

static struct lm__pred *pred_new(struct lm__exec *ex, enum lm__pred_kind kind,
                                 struct lm_lql_pos pos, size_t n)
{
    struct lm__pred *p = lm__arena_alloc(&ex->tmp, sizeof *p);
    if (!p)
        return NULL;
    p->kind = kind;
    p->pos = pos;
    p->n = n;
    if (n && !(p->args = lm__arena_alloc(&ex->tmp, n * sizeof *p->args)))
        return NULL;
    return p;
}

static int oom(struct lm__exec *ex)
{
    return lm__exec_fail(ex, -ENOMEM, ex->stmt->pos, "out of memory planning the statement");
}

static int compile_frustum(struct lm__exec *ex, const struct lm_lql_expr *e,
                           struct lm_region *out)
{
    const struct lm_lql_region *g = &e->region;
    float eye[3], target[3], up[3], fov, aspect, nd, fd;
    int rc;
    if ((rc = lm__exec_point(ex, g->frustum.eye, eye)) ||
        (rc = lm__exec_point(ex, g->frustum.target, target)) ||
        (rc = lm__exec_point(ex, g->frustum.up, up)) ||
        (rc = lm__exec_float(ex, &g->frustum.fov_y, &fov)) ||
        (rc = lm__exec_float(ex, &g->frustum.aspect, &aspect)) ||
        (rc = lm__exec_float(ex, &g->frustum.near_d, &nd)) ||
        (rc = lm__exec_float(ex, &g->frustum.far_d, &fd)))
        return rc;
    if (!(fov > 0 && fov < 180))
        return lm__exec_fail(ex, LM_EBADVALUE, g->frustum.fov_y.pos,
                             "FOV %g: the field of view must lie between 0 and 180 degrees",
                             (double)fov);
    if (!(aspect > 0))
        return lm__exec_fail(ex, LM_EBADVALUE, g->frustum.aspect.pos,
                             "ASPECT %g must be > 0", (double)aspect);
    if (!(nd > 0))
        return lm__exec_fail(ex, LM_EBADVALUE, g->frustum.near_d.pos, "NEAR %g must be > 0",
                             (double)nd);
    if (!(fd > nd))
        return lm__exec_fail(ex, LM_EBADVALUE, g->frustum.far_d.pos,
                             "FAR %g must be greater than NEAR %g", (double)fd, (double)nd);
    if (lm_frustum_from_camera(eye, target, up, fov, aspect, nd, fd, out))
        return lm__exec_fail(ex, LM_EBADVALUE, g->frustum.up[0].pos,
                             "UP must not be parallel to the view direction (and EYE not "
                             "equal to TARGET)");
    return 0;
}

static int compile_region(struct lm__exec *ex, const struct lm_lql_expr *e,
                          struct lm_region *out)
{
    const struct lm_lql_region *g = &e->region;
    memset(out, 0, sizeof *out);
    out->kind = g->kind;
    int rc;
    switch (g->kind) {
    case LM_REGION_BOX:
        if ((rc = lm__exec_point(ex, g->box.min, out->min)) ||
            (rc = lm__exec_point(ex, g->box.max, out->max)))
            return rc;
        for (int a = 0; a < 3; a++)
            if (out->min[a] > out->max[a])
                return lm__exec_fail(ex, LM_EBADVALUE, g->box.min[a].pos,
                                     "INSIDE BOX: %c goes from %g to %g; write the low corner "
                                     "first", "xyz"[a], (double)out->min[a],
                                     (double)out->max[a]);
        return 0;
    case LM_REGION_SPHERE:
        if ((rc = lm__exec_point(ex, g->sphere.center, out->center)) ||
            (rc = lm__exec_float(ex, &g->sphere.radius, &out->radius)))
            return rc;
        if (!(out->radius >= 0))
            return lm__exec_fail(ex, LM_EBADVALUE, g->sphere.radius.pos,
                                 "WITHIN %g: the radius must be >= 0", (double)out->radius);
        return 0;
    case LM_REGION_FRUSTUM:
        return compile_frustum(ex, e, out);
    case LM_REGION_ALL:
        break;
    }
    return lm__exec_fail(ex, LM_EINTERNAL, e->pos, "unknown region kind %d", (int)g->kind);
}

static int compile(struct lm__exec *ex, const struct lm__xfield *f,
                   const struct lm_lql_expr *e, struct lm__pred **out)
{
    struct lm__pred *p;
    int rc;
    switch (e->kind) {
    case LM_LQL_EXPR_AND:
    case LM_LQL_EXPR_OR:
        p = pred_new(ex, e->kind == LM_LQL_EXPR_AND ? LM__P_AND : LM__P_OR, e->pos, e->list.n);
        if (!p)
            return oom(ex);
        for (size_t i = 0; i < e->list.n; i++)
            if ((rc = compile(ex, f, e->list.args[i], &p->args[i])))
                return rc;
        break;
    case LM_LQL_EXPR_NOT:
        if (!(p = pred_new(ex, LM__P_NOT, e->pos, 1)))
            return oom(ex);
        if ((rc = compile(ex, f, e->operand, &p->args[0])))
            return rc;
        break;
    case LM_LQL_EXPR_CMP: {
        int col;
        if ((rc = lm__exec_column(ex, f, &e->cmp.column, &col)))
            return rc;
        if (!(p = pred_new(ex, LM__P_CMP, e->pos, 0)))
            return oom(ex);
        p->cmp = (struct lm_filter){col, e->cmp.op, e->cmp.a.number,
                                    e->cmp.op == LM_CMP_BETWEEN ? e->cmp.b.number : 0};
        break;
    }
    case LM_LQL_EXPR_REGION:
        if (!(p = pred_new(ex, LM__P_REGION, e->pos, 0)))
            return oom(ex);
        if ((rc = compile_region(ex, e, &p->region)))
            return rc;
        break;
    case LM_LQL_EXPR_TRUE:
        if (!(p = pred_new(ex, LM__P_TRUE, e->pos, 0)))
            return oom(ex);
        break;
    default:
        return lm__exec_fail(ex, LM_EINTERNAL, e->pos, "unknown expression kind %d",
                             (int)e->kind);
    }
    *out = p;
    return 0;
}

int lm__pred_compile(struct lm__exec *ex, const struct lm__xfield *f,
                     const struct lm_lql_expr *e, struct lm__pred **out)
{
    if (!e) {
        struct lm__pred *p = pred_new(ex, LM__P_TRUE, ex->stmt->pos, 0);
        if (!p)
            return oom(ex);
        *out = p;
        return 0;
    }
    return compile(ex, f, e, out);
}

/* ---------------------------------------------------------------- evaluate */

double lm__row_value(const struct lm__row *r, int col)
{
    if (r->rows)
        return lm_rows_value(r->rows, col, r->i);
    const struct lm_chunk_view *v = r->view;
    size_t i = r->i;
    switch (col) {
    case LM_COL_X: return v->x[i];
    case LM_COL_Y: return v->y[i];
    case LM_COL_Z: return v->z[i];
    case LM_COL_DX:
    case LM_COL_DY:
    case LM_COL_DZ: {
        float d[3];
        lm_dir_decode(&v->dir_oct[2 * i], d);
        return d[col - LM_COL_DX];
    }
    case LM_COL_R: return (float)v->r[i] * (1.0f / 255.0f);
    case LM_COL_G: return (float)v->g[i] * (1.0f / 255.0f);
    case LM_COL_B: return (float)v->b[i] * (1.0f / 255.0f);
    case LM_COL_INTENSITY: return v->intensity[i];
    case LM_COL_T: return (double)v->t[i];
    default: break;
    }
    uint32_t u = (uint32_t)(col - LM_COL_USER);
    if (col < LM_COL_USER || u >= r->f->info.opts.n_user_columns)
        return 0.0;
    switch (r->f->info.opts.user_columns[u].type) {
    case LM_TYPE_F32: return ((const float *)v->user[u])[i];
    case LM_TYPE_I32: return ((const int32_t *)v->user[u])[i];
    case LM_TYPE_U8: return ((const uint8_t *)v->user[u])[i];
    }
    return 0.0;
}

bool lm__pred_eval(const struct lm__pred *p, const struct lm__row *r)
{
    switch (p->kind) {
    case LM__P_TRUE: return true;
    case LM__P_FALSE: return false;
    case LM__P_AND:
        for (size_t i = 0; i < p->n; i++)
            if (!lm__pred_eval(p->args[i], r))
                return false;
        return true;
    case LM__P_OR:
        for (size_t i = 0; i < p->n; i++)
            if (lm__pred_eval(p->args[i], r))
                return true;
        return false;
    case LM__P_NOT: return !lm__pred_eval(p->args[0], r);
    case LM__P_CMP: return lm__filter_holds(lm__row_value(r, p->cmp.column), &p->cmp);
    case LM__P_REGION: {
        float x, y, z;
        if (r->rows) {
            x = r->rows->x[r->i];
            y = r->rows->y[r->i];
            z = r->rows->z[r->i];
        } else {
            x = r->view->x[r->i];
            y = r->view->y[r->i];
            z = r->view->z[r->i];
        }
        return lm__region_contains(&p->region, x, y, z);
    }
    }
    return false;
}

void lm__pred_columns(const struct lm__pred *p, bool used[LM__MAX_COLUMNS])
{
    if (p->kind == LM__P_CMP)
        used[p->cmp.column] = true;
    if (p->kind == LM__P_REGION)
        used[LM_COL_X] = used[LM_COL_Y] = used[LM_COL_Z] = true;
    for (size_t i = 0; i < p->n; i++)
        lm__pred_columns(p->args[i], used);
}

/* ---------------------------------------------------------------- bounding boxes */

/* Per-axis bounds in double; +-inf where unbounded, lo > hi when empty. */
struct bbox {
    double lo[3], hi[3];
};

static void bbox_all(struct bbox *b)
{
    for (int a = 0; a < 3; a++) {
        b->lo[a] = -INFINITY;
        b->hi[a] = INFINITY;
    }
}

static void bbox_meet(struct bbox *b, const struct bbox *o)
{
    for (int a = 0; a < 3; a++) {
        b->lo[a] = fmax(b->lo[a], o->lo[a]);
        b->hi[a] = fmin(b->hi[a], o->hi[a]);
    }
}

static bool bbox_empty(const struct bbox *b)
{
    return b->lo[0] > b->hi[0] || b->lo[1] > b->hi[1] || b->lo[2] > b->hi[2];
}

/* Corners of a frustum: intersections of near|far, the two side pairs. */
static bool frustum_bbox(const struct lm_region *r, struct bbox *b)
{
    double lo[3] = {INFINITY, INFINITY, INFINITY}, hi[3] = {-INFINITY, -INFINITY, -INFINITY};
    for (int k = 0; k < 8; k++) {
        const float *p[3] = {r->planes[k & 1], r->planes[2 + ((k >> 1) & 1)],
                             r->planes[4 + (k >> 2)]};
        double m[3][3], rhs[3];
        for (int i = 0; i < 3; i++) {
            for (int j = 0; j < 3; j++)
                m[i][j] = p[i][j];
            rhs[i] = -(double)p[i][3];
        }
        double det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) -
                     m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
                     m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
        if (!(fabs(det) > 1e-12))
            return false;
        for (int c = 0; c < 3; c++) { /* Cramer: column c replaced by rhs */
            double q[3][3];
            memcpy(q, m, sizeof q);
            for (int i = 0; i < 3; i++)
                q[i][c] = rhs[i];
            double dc = q[0][0] * (q[1][1] * q[2][2] - q[1][2] * q[2][1]) -
                        q[0][1] * (q[1][0] * q[2][2] - q[1][2] * q[2][0]) +
                        q[0][2] * (q[1][0] * q[2][1] - q[1][1] * q[2][0]);
            double v = dc / det;
            lo[c] = fmin(lo[c], v);
            hi[c] = fmax(hi[c], v);
        }
    }
    for (int a = 0; a < 3; a++) {
        /* the engine tests in float: pad for its rounding */
        double pad = 1e-4 * (hi[a] - lo[a]) + 1e-5 * fmax(fabs(lo[a]), fabs(hi[a])) + 1e-6;
        b->lo[a] = lo[a] - pad;
        b->hi[a] = hi[a] + pad;
    }
    return isfinite(b->lo[0] + b->lo[1] + b->lo[2] + b->hi[0] + b->hi[1] + b->hi[2]);
}

static void pred_bbox(const struct lm__pred *p, struct bbox *b)
{
    bbox_all(b);
    switch (p->kind) {
    case LM__P_TRUE:
    case LM__P_NOT:
        return;
    case LM__P_FALSE:
        for (int a = 0; a < 3; a++) {
            b->lo[a] = INFINITY;
            b->hi[a] = -INFINITY;
        }
        return;
    case LM__P_AND:
        for (size_t i = 0; i < p->n; i++) {
            struct bbox o;
            pred_bbox(p->args[i], &o);
            bbox_meet(b, &o);
        }
        return;
    case LM__P_OR: {
        for (int a = 0; a < 3; a++) {
            b->lo[a] = INFINITY;
            b->hi[a] = -INFINITY;
        }
        for (size_t i = 0; i < p->n; i++) {
            struct bbox o;
            pred_bbox(p->args[i], &o);
            if (bbox_empty(&o))
                continue;
            for (int a = 0; a < 3; a++) {
                b->lo[a] = fmin(b->lo[a], o.lo[a]);
                b->hi[a] = fmax(b->hi[a], o.hi[a]);
            }
        }
        return;
    }
    case LM__P_CMP: {
        int a = p->cmp.column - LM_COL_X;
        if (p->cmp.column > LM_COL_Z)
            return;
        double x = p->cmp.a;
        switch (p->cmp.cmp) {
        case LM_CMP_LT: case LM_CMP_LE: b->hi[a] = x; break;
        case LM_CMP_GT: case LM_CMP_GE: b->lo[a] = x; break;
        case LM_CMP_EQ: b->lo[a] = b->hi[a] = x; break;
        case LM_CMP_BETWEEN: b->lo[a] = x; b->hi[a] = p->cmp.b; break;
        case LM_CMP_NE: break;
        }
        return;
    }
    case LM__P_REGION: {
        const struct lm_region *r = &p->region;
        if (r->kind == LM_REGION_BOX) {
            for (int a = 0; a < 3; a++) {
                b->lo[a] = r->min[a];
                b->hi[a] = r->max[a];
            }
        } else if (r->kind == LM_REGION_SPHERE) {
            for (int a = 0; a < 3; a++) {
                double pad = 1e-5 * ((double)r->radius + fabs((double)r->center[a])) + 1e-6;
                b->lo[a] = (double)r->center[a] - r->radius - pad;
                b->hi[a] = (double)r->center[a] + r->radius + pad;
            }
        } else if (r->kind == LM_REGION_FRUSTUM && !frustum_bbox(r, b)) {
            bbox_all(b);
        }
        return;
    }
    }
}

/* Float bounds at least as wide as [lo, hi]; false when the axis is unbounded. */
static bool float_bounds(double lo, double hi, float *flo, float *fhi)
{
    if (!(lo > -INFINITY) && !(hi < INFINITY))
        return false;
    if (lo < -FLT_MAX || !(lo > -INFINITY))
        *flo = -FLT_MAX;
    else {
        *flo = (float)lo;
        if ((double)*flo > lo)
            *flo = nextafterf(*flo, -INFINITY);
    }
    if (hi > FLT_MAX || !(hi < INFINITY))
        *fhi = FLT_MAX;
    else {
        *fhi = (float)hi;
        if ((double)*fhi < hi)
            *fhi = nextafterf(*fhi, INFINITY);
    }
    return true;
}

/* ---------------------------------------------------------------- push down */

/* Conditions of one conjunction as they are gathered. */
struct gather {
    bool has_box, nothing, residual;
    float lo[3], hi[3];
    const struct lm_region *other;   /* the one non-box region */
    uint32_t n;
    struct lm_filter f[LM_MAX_FILTERS];
};

static void gather_init(struct gather *g)
{
    memset(g, 0, sizeof *g);
    for (int a = 0; a < 3; a++) {
        g->lo[a] = -FLT_MAX;
        g->hi[a] = FLT_MAX;
    }
}

static void gather_filter(struct gather *g, const struct lm_filter *f)
{
    if (g->n == LM_MAX_FILTERS)
        g->residual = true;
    else
        g->f[g->n++] = *f;
}

static enum lm_cmp complement(enum lm_cmp c)
{
    switch (c) {
    case LM_CMP_LT: return LM_CMP_GE;
    case LM_CMP_LE: return LM_CMP_GT;
    case LM_CMP_GT: return LM_CMP_LE;
    case LM_CMP_GE: return LM_CMP_LT;
    case LM_CMP_EQ: return LM_CMP_NE;
    case LM_CMP_NE: return LM_CMP_EQ;
    case LM_CMP_BETWEEN: break;
    }
    return LM_CMP_BETWEEN; /* no single complement */
}

/* One literal of a conjunction (AND nodes are walked when `walk_and`). */
static void gather(struct gather *g, const struct lm__pred *p, bool walk_and)
{
    switch (p->kind) {
    case LM__P_TRUE: return;
    case LM__P_FALSE: g->nothing = true; return;
    case LM__P_AND:
        if (!walk_and) {
            g->residual = true;
            return;
        }
        for (size_t i = 0; i < p->n; i++)
            gather(g, p->args[i], true);
        return;
    case LM__P_CMP: gather_filter(g, &p->cmp); return;
    case LM__P_NOT: {
        /* values are never NaN (the engine refuses them), so NOT (v < a) is v >= a */
        const struct lm__pred *q = p->args[0];
        if (q->kind == LM__P_CMP && complement(q->cmp.cmp) != LM_CMP_BETWEEN) {
            struct lm_filter f = q->cmp;
            f.cmp = complement(f.cmp);
            gather_filter(g, &f);
        } else if (q->kind == LM__P_TRUE) {
            g->nothing = true;
        } else {
            g->residual = true;
        }
        return;
    }
    case LM__P_REGION:
        if (p->region.kind == LM_REGION_BOX) {
            g->has_box = true;
            for (int a = 0; a < 3; a++) {
                g->lo[a] = fmaxf(g->lo[a], p->region.min[a]);
                g->hi[a] = fminf(g->hi[a], p->region.max[a]);
            }
        } else if (!g->other) {
            g->other = &p->region;
        } else {
            g->residual = true;
        }
        return;
    case LM__P_OR: g->residual = true; return;
    }
}

/* The gathered conditions as one selection; false when some were left out. */
static bool gather_finish(struct gather *g, struct lm_selection *sel)
{
    memset(sel, 0, sizeof *sel);
    sel->region.kind = LM_REGION_ALL;
    for (int a = 0; a < 3 && g->has_box; a++)
        if (g->lo[a] > g->hi[a])
            g->nothing = true;
    if (g->other) {
        sel->region = *g->other;
        for (int a = 0; a < 3 && g->has_box; a++)
            gather_filter(g, &(struct lm_filter){LM_COL_X + a, LM_CMP_BETWEEN, g->lo[a],
                                                 g->hi[a]});
    } else if (g->has_box) {
        sel->region.kind = LM_REGION_BOX;
        memcpy(sel->region.min, g->lo, sizeof g->lo);
        memcpy(sel->region.max, g->hi, sizeof g->hi);
    }
    sel->n_filters = g->n;
    memcpy(sel->filters, g->f, g->n * sizeof *g->f);
    return !g->residual;
}

static struct lm__pred *nnf(struct lm__exec *ex, const struct lm__pred *p, bool neg);

int lm__pred_push(struct lm__exec *ex, const struct lm__pred *p, struct lm__push *out)
{
    /* NOT moved onto comparisons first: NOT (a = 1 OR b < 2) is a != 1 AND b >= 2 */
    const struct lm__pred *q = nnf(ex, p, false);
    if (!q)
        return oom(ex);
    p = q;
    struct gather g;
    gather_init(&g);
    gather(&g, p, true);
    out->exact = gather_finish(&g, &out->sel);
    out->nothing = g.nothing;
    if (out->exact || out->nothing)
        return 0;
    /* Candidates: narrow an ALL or BOX region by the bounding box of the whole. */
    struct bbox b;
    pred_bbox(p, &b);
    if (bbox_empty(&b)) {
        out->nothing = true;
        return 0;
    }
    struct lm_region *r = &out->sel.region;
    if (r->kind != LM_REGION_ALL && r->kind != LM_REGION_BOX)
        return 0;
    bool bounded = false;
    float lo[3] = {-FLT_MAX, -FLT_MAX, -FLT_MAX}, hi[3] = {FLT_MAX, FLT_MAX, FLT_MAX};
    for (int a = 0; a < 3; a++) {
        if (float_bounds(b.lo[a], b.hi[a], &lo[a], &hi[a]))
            bounded = true;
    }
    if (!bounded)
        return 0;
    if (r->kind == LM_REGION_ALL) {
        r->kind = LM_REGION_BOX;
        memcpy(r->min, lo, sizeof lo);
        memcpy(r->max, hi, sizeof hi);
    } else {
        for (int a = 0; a < 3; a++) {
            r->min[a] = fmaxf(r->min[a], lo[a]);
            r->max[a] = fminf(r->max[a], hi[a]);
        }
    }
    for (int a = 0; a < 3; a++)
        if (r->min[a] > r->max[a])
            out->nothing = true;
    return 0;
}

/* ---------------------------------------------------------------- disjunctive terms */

/* A conjunction of literals, and a union of them. */
struct term {
    size_t n;
    const struct lm__pred **lit;
};
struct termset {
    size_t n;
    struct term *t;
};

/* Negation normal form: NOT only on spheres and frusta. */
static struct lm__pred *nnf(struct lm__exec *ex, const struct lm__pred *p, bool neg)
{
    struct lm__pred *q;
    switch (p->kind) {
    case LM__P_TRUE:
    case LM__P_FALSE:
        return pred_new(ex, (p->kind == LM__P_TRUE) != neg ? LM__P_TRUE : LM__P_FALSE, p->pos,
                        0);
    case LM__P_NOT:
        return nnf(ex, p->args[0], !neg);
    case LM__P_AND:
    case LM__P_OR: {
        bool and = (p->kind == LM__P_AND) != neg;
        if (!(q = pred_new(ex, and ? LM__P_AND : LM__P_OR, p->pos, p->n)))
            return NULL;
        for (size_t i = 0; i < p->n; i++)
            if (!(q->args[i] = nnf(ex, p->args[i], neg)))
                return NULL;
        return q;
    }
    case LM__P_CMP:
        if (!(q = pred_new(ex, LM__P_CMP, p->pos, 0)))
            return NULL;
        q->cmp = p->cmp;
        if (!neg)
            return q;
        if (p->cmp.cmp != LM_CMP_BETWEEN) {
            q->cmp.cmp = complement(p->cmp.cmp);
            return q;
        }
        { /* NOT (a <= v <= b) is v < a OR v > b */
            struct lm__pred *o = pred_new(ex, LM__P_OR, p->pos, 2), *hi;
            if (!o || !(hi = pred_new(ex, LM__P_CMP, p->pos, 0)))
                return NULL;
            q->cmp.cmp = LM_CMP_LT;
            hi->cmp = (struct lm_filter){p->cmp.column, LM_CMP_GT, p->cmp.b, 0};
            o->args[0] = q;
            o->args[1] = hi;
            return o;
        }
    case LM__P_REGION:
        if (!neg) {
            if ((q = pred_new(ex, LM__P_REGION, p->pos, 0)))
                q->region = p->region;
            return q;
        }
        if (p->region.kind == LM_REGION_BOX) {
            /* outside a box: below or above some axis (floats compare exactly as doubles) */
            if (!(q = pred_new(ex, LM__P_OR, p->pos, 6)))
                return NULL;
            for (int k = 0; k < 6; k++) {
                struct lm__pred *c = pred_new(ex, LM__P_CMP, p->pos, 0);
                if (!c)
                    return NULL;
                int a = k >> 1;
                c->cmp = (struct lm_filter){LM_COL_X + a, (k & 1) ? LM_CMP_GT : LM_CMP_LT,
                                            (k & 1) ? p->region.max[a] : p->region.min[a], 0};
                q->args[k] = c;
            }
            return q;
        }
        if (!(q = pred_new(ex, LM__P_NOT, p->pos, 1)) ||
            !(q->args[0] = pred_new(ex, LM__P_REGION, p->pos, 0)))
            return NULL;
        q->args[0]->region = p->region;
        return q;
    }
    return NULL;
}

/* Disjunctive form of an NNF tree; -E2BIG past max terms. */
static int dnf(struct lm__exec *ex, const struct lm__pred *p, size_t max, struct termset *out)
{
    struct lm__arena *a = &ex->tmp;
    out->n = 0;
    out->t = NULL;
    if (p->kind == LM__P_FALSE)
        return 0;
    if (p->kind == LM__P_OR) {
        struct termset *parts = lm__arena_alloc(a, p->n * sizeof *parts);
        if (!parts)
            return -ENOMEM;
        size_t total = 0;
        for (size_t i = 0; i < p->n; i++) {
            int rc = dnf(ex, p->args[i], max, &parts[i]);
            if (rc)
                return rc;
            if ((total += parts[i].n) > max)
                return -E2BIG;
        }
        if (!(out->t = lm__arena_alloc(a, (total ? total : 1) * sizeof *out->t)))
            return -ENOMEM;
        for (size_t i = 0; i < p->n; i++)
            for (size_t j = 0; j < parts[i].n; j++)
                out->t[out->n++] = parts[i].t[j];
        return 0;
    }
    if (p->kind == LM__P_AND) {
        struct termset acc = {1, lm__arena_alloc(a, sizeof *acc.t)};
        if (!acc.t)
            return -ENOMEM;
        for (size_t i = 0; i < p->n; i++) {
            struct termset part, next;
            int rc = dnf(ex, p->args[i], max, &part);
            if (rc)
                return rc;
            if (part.n && acc.n > max / part.n)
                return -E2BIG;
            next.n = 0;
            size_t prod = acc.n * part.n;
            next.t = lm__arena_alloc(a, (prod ? prod : 1) * sizeof *next.t);
            if (!next.t)
                return -ENOMEM;
            for (size_t x = 0; x < acc.n; x++)
                for (size_t y = 0; y < part.n; y++) {
                    struct term *t = &next.t[next.n++];
                    t->n = acc.t[x].n + part.t[y].n;
                    if (!(t->lit = lm__arena_alloc(a, (t->n ? t->n : 1) * sizeof *t->lit)))
                        return -ENOMEM;
                    if (acc.t[x].n)
                        memcpy(t->lit, acc.t[x].lit, acc.t[x].n * sizeof *t->lit);
                    if (part.t[y].n)
                        memcpy(t->lit + acc.t[x].n, part.t[y].lit,
                               part.t[y].n * sizeof *t->lit);
                }
            acc = next;
        }
        *out = acc;
        return 0;
    }
    /* a literal, or TRUE: one term */
    if (!(out->t = lm__arena_alloc(a, sizeof *out->t)))
        return -ENOMEM;
    out->n = 1;
    if (p->kind != LM__P_TRUE) {
        if (!(out->t[0].lit = lm__arena_alloc(a, sizeof *out->t[0].lit)))
            return -ENOMEM;
        out->t[0].lit[0] = p;
        out->t[0].n = 1;
    }
    return 0;
}

int lm__pred_terms(struct lm__exec *ex, const struct lm__pred *p, size_t max_terms,
                   struct lm__terms *out, bool *ok)
{
    *ok = false;
    memset(out, 0, sizeof *out);
    struct lm__pred *n = nnf(ex, p, false);
    if (!n)
        return oom(ex);
    struct termset ts;
    int rc = dnf(ex, n, max_terms, &ts);
    if (rc == -E2BIG)
        return 0;
    if (rc)
        return oom(ex);
    if (!(out->sel = lm__arena_alloc(&ex->tmp, (ts.n ? ts.n : 1) * sizeof *out->sel)))
        return oom(ex);
    for (size_t i = 0; i < ts.n; i++) {
        struct gather g;
        gather_init(&g);
        for (size_t k = 0; k < ts.t[i].n; k++)
            gather(&g, ts.t[i].lit[k], false);
        if (!gather_finish(&g, &out->sel[out->n]))
            return 0; /* NOT WITHIN, two spheres, too many filters: no selection */
        if (!g.nothing)
            out->n++;
    }
    *ok = true;
    return 0;
}

/* ---------------------------------------------------------------- text */

static const char *cmp_text(enum lm_cmp c)
{
    static const char *const t[] = {"?", "<", "<=", ">", ">=", "=", "!=", "BETWEEN"};
    return (unsigned)c < sizeof t / sizeof t[0] ? t[c] : "?";
}

void lm__selection_text(const struct lm__xfield *f, const struct lm_selection *sel, char *buf,
                        size_t cap)
{
    size_t n = 0;
#define PUT(...)                                                                      \
    do {                                                                              \
        int k_ = snprintf(buf + n, n < cap ? cap - n : 0, __VA_ARGS__);              \
        n += k_ > 0 ? (size_t)k_ : 0;                                                 \
    } while (0)
    if (cap)
        buf[0] = '\0';
    const struct lm_region *r = &sel->region;
    switch (r->kind) {
    case LM_REGION_ALL: break;
    case LM_REGION_BOX:
        PUT("BOX (%g, %g, %g) TO (%g, %g, %g)", (double)r->min[0], (double)r->min[1],
            (double)r->min[2], (double)r->max[0], (double)r->max[1], (double)r->max[2]);
        break;
    case LM_REGION_SPHERE:
        PUT("WITHIN %g OF (%g, %g, %g)", (double)r->radius, (double)r->center[0],
            (double)r->center[1], (double)r->center[2]);
        break;
    case LM_REGION_FRUSTUM: PUT("FRUSTUM (6 planes)"); break;
    }
    for (uint32_t i = 0; i < sel->n_filters; i++) {
        const struct lm_filter *fl = &sel->filters[i];
        const char *name = fl->column < f->n_cols ? f->cols[fl->column] : "?";
        if (n)
            PUT(" AND ");
        if (fl->cmp == LM_CMP_BETWEEN)
            PUT("%s BETWEEN %.9g AND %.9g", name, fl->a, fl->b);
        else
            PUT("%s %s %.9g", name, cmp_text(fl->cmp), fl->a);
    }
    if (!n)
        PUT("every sample");
#undef PUT
}
