/* exec_write.c - INSERT, DELETE and UPDATE: values checked where they are written, WHERE
 * clauses mapped onto one selection, a union of selections, or distinct samples; and
 * their EXPLAIN. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "exec_int.h"

static int oom(struct lm__exec *ex)
{
    return lm__exec_fail(ex, -ENOMEM, ex->stmt->pos, "out of memory");
}

/* ---------------------------------------------------------------- values */

/* Checks v for column col as lm_insert / lm_update would, with the error at v. */
static int check_value(struct lm__exec *ex, const struct lm__xfield *f, int col,
                       const struct lm_lql_value *v)
{
    double x = v->number;
    const char *name = f->cols[col];
    if (col <= LM_COL_DZ || col == LM_COL_INTENSITY ||
        (col >= LM_COL_USER &&
         f->info.opts.user_columns[col - LM_COL_USER].type == LM_TYPE_F32)) {
        if (!(fabs(x) <= FLT_MAX))
            return lm__exec_fail(ex, LM_EBADVALUE, v->pos,
                                 "%s = %g is out of the range of a 32-bit float", name, x);
    }
    if (col >= LM_COL_R && col <= LM_COL_B && !(x >= 0 && x <= 1))
        return lm__exec_fail(ex, LM_EBADVALUE, v->pos,
                             "colour %s = %g is outside [0, 1]", name, x);
    if (col == LM_COL_INTENSITY && !(x >= 0))
        return lm__exec_fail(ex, LM_EBADVALUE, v->pos, "intensity = %g must be >= 0", x);
    if (col == LM_COL_T && (x != floor(x) || fabs(x) > 9.2e18))
        return lm__exec_fail(ex, LM_EBADVALUE, v->pos,
                             "t = %g must be a whole number of microseconds", x);
    if (col >= LM_COL_USER) {
        enum lm_type t = f->info.opts.user_columns[col - LM_COL_USER].type;
        if (t == LM_TYPE_I32 && (x != floor(x) || x < INT32_MIN || x > INT32_MAX))
            return lm__exec_fail(ex, LM_EBADVALUE, v->pos,
                                 "%s is i32: %g is not a whole number in [-2^31, 2^31)", name,
                                 x);
        if (t == LM_TYPE_U8 && (x != floor(x) || x < 0 || x > 255))
            return lm__exec_fail(ex, LM_EBADVALUE, v->pos,
                                 "%s is u8: %g is not a whole number in [0, 255]", name, x);
    }
    return 0;
}

/* ---------------------------------------------------------------- INSERT */

struct columns_in {
    float *f32[LM_COL_T];       /* x .. intensity */
    int64_t *t;
    void *user[LM_MAX_USER_COLUMNS];
};

static const float DEFAULTS[LM_COL_T] = {0, 0, 0, 0, 0, 1, 1, 1, 1, 1};

static int plan_insert(struct lm__exec *ex, const struct lm_lql_stmt *s,
                       struct lm__xfield *f, int *map)
{
    const struct lm_lql_insert *in = &s->insert;
    int rc = lm__exec_field(ex, &s->field, f);
    if (rc)
        return rc;
    if (!in->n_columns) {
        if (in->width > (size_t)f->n_cols || in->width < 3)
            return lm__exec_fail(ex, LM_EBADARG, in->values[0].pos,
                                 "field '%s' has %d columns (%s, %s, %s, ...); rows without a "
                                 "column list give the first 3 to %d of them in order, this "
                                 "one has %zu values",
                                 f->name, f->n_cols, f->cols[0], f->cols[1], f->cols[2],
                                 f->n_cols, in->width);
        for (size_t i = 0; i < in->width; i++)
            map[i] = (int)i;
        return 0;
    }
    bool seen[LM__MAX_COLUMNS] = {false};
    for (size_t i = 0; i < in->n_columns; i++) {
        if ((rc = lm__exec_column(ex, f, &in->columns[i], &map[i])))
            return rc;
        if (seen[map[i]])
            return lm__exec_fail(ex, LM_EBADARG, in->columns[i].pos,
                                 "column '%s' is listed twice", in->columns[i].text);
        seen[map[i]] = true;
    }
    for (int a = 0; a < 3; a++)
        if (!seen[LM_COL_X + a])
            return lm__exec_fail(ex, LM_EBADARG, in->columns[0].pos,
                                 "INSERT needs the position: x, y and z (%s is missing)",
                                 f->cols[LM_COL_X + a]);
    return 0;
}

int lm__exec_insert(struct lm__exec *ex, const struct lm_lql_stmt *s,
                    struct lm_exec_result **out)
{
    const struct lm_lql_insert *in = &s->insert;
    struct lm__xfield f;
    int map[LM__MAX_COLUMNS + 1];
    if (in->width > LM__MAX_COLUMNS)
        return lm__exec_fail(ex, LM_EBADARG, in->values[0].pos, "too many values per row");
    int rc = plan_insert(ex, s, &f, map);
    if (rc)
        return rc;
    size_t n = in->n_rows, w = in->width;
    for (size_t i = 0; i < n * w; i++)
        if ((rc = check_value(ex, &f, map[i % w], &in->values[i])))
            return rc;
    bool given[LM__MAX_COLUMNS] = {false};
    for (size_t c = 0; c < w; c++)
        given[map[c]] = true;
    /* positions the grid can address, unit directions: as lm_insert checks them */
    double limit = ldexp(1.0, 31 + (int)f.log2_edge) - 1.0;
    bool dir = given[LM_COL_DX] || given[LM_COL_DY] || given[LM_COL_DZ];
    for (size_t r = 0; r < n; r++) {
        double d[3] = {0, 0, 1};
        for (size_t c = 0; c < w; c++) {
            const struct lm_lql_value *v = &in->values[r * w + c];
            if (map[c] <= LM_COL_Z && fabs((double)(float)v->number * f.inv_voxel) >= limit)
                return lm__exec_fail(ex, LM_EBADVALUE, v->pos,
                                     "%s = %g is outside the addressable grid", f.cols[map[c]],
                                     v->number);
            if (map[c] >= LM_COL_DX && map[c] <= LM_COL_DZ)
                d[map[c] - LM_COL_DX] = (double)(float)v->number;
        }
        double len = sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
        if (dir && fabs(len - 1.0) > 1e-3) {
            size_t c = 0;
            while (map[c] < LM_COL_DX || map[c] > LM_COL_DZ)
                c++;
            return lm__exec_fail(ex, LM_EBADVALUE, in->values[r * w + c].pos,
                                 "direction (%g, %g, %g) has length %g; it must be a unit "
                                 "vector", d[0], d[1], d[2], len);
        }
    }
    if (ex->plan_only)
        return 0;
    struct columns_in col = {0};
    struct lm_batch b = {.n = n};
    bool user = false;
    for (int c = LM_COL_USER; c < f.n_cols; c++)
        user |= given[c];
    rc = -ENOMEM;
    for (int c = 0; c < LM_COL_T; c++) {
        bool need = c <= LM_COL_Z || given[c] ||
                    (c >= LM_COL_DX && c <= LM_COL_DZ && dir) ||
                    (c >= LM_COL_R && c <= LM_COL_B &&
                     (given[LM_COL_R] || given[LM_COL_G] || given[LM_COL_B]));
        if (need && !(col.f32[c] = lm_alloc((n ? n : 1) * sizeof(float))))
            goto done;
        for (size_t r = 0; need && r < n; r++)
            col.f32[c][r] = DEFAULTS[c];
    }
    if (given[LM_COL_T] && !(col.t = lm_calloc(n ? n : 1, sizeof *col.t)))
        goto done;
    for (int c = LM_COL_USER; user && c < f.n_cols; c++)
        if (!(col.user[c - LM_COL_USER] = lm_calloc(n ? n : 1, 4)))
            goto done;
    for (size_t r = 0; r < n; r++)
        for (size_t k = 0; k < w; k++) {
            double v = in->values[r * w + k].number;
            int c = map[k];
            if (c < LM_COL_T)
                col.f32[c][r] = (float)v;
            else if (c == LM_COL_T)
                col.t[r] = (int64_t)v;
            else {
                enum lm_type t = f.info.opts.user_columns[c - LM_COL_USER].type;
                void *p = col.user[c - LM_COL_USER];
                if (t == LM_TYPE_F32)
                    ((float *)p)[r] = (float)v;
                else if (t == LM_TYPE_I32)
                    ((int32_t *)p)[r] = (int32_t)v;
                else
                    ((uint8_t *)p)[r] = (uint8_t)v;
            }
        }
    b.x = col.f32[LM_COL_X];
    b.y = col.f32[LM_COL_Y];
    b.z = col.f32[LM_COL_Z];
    b.dx = col.f32[LM_COL_DX];
    b.dy = col.f32[LM_COL_DY];
    b.dz = col.f32[LM_COL_DZ];
    b.r = col.f32[LM_COL_R];
    b.g = col.f32[LM_COL_G];
    b.b = col.f32[LM_COL_B];
    b.intensity = col.f32[LM_COL_INTENSITY];
    b.t = col.t;
    b.n_user = user ? f.info.opts.n_user_columns : 0;
    for (uint32_t u = 0; u < b.n_user; u++)
        b.user[u] = col.user[u];
    if ((rc = lm_insert(ex->db, f.name, &b, NULL, ex->err))) {
        rc = lm__exec_engine(ex, rc);
        goto done;
    }
    if ((rc = lm__result_new(s->kind, out)))
        goto done;
    (*out)->affected = n;
    lm__result_message(*out, "inserted %zu sample%s", n, n == 1 ? "" : "s");
done:
    for (int c = 0; c < LM_COL_T; c++)
        lm_free(col.f32[c]);
    lm_free(col.t);
    for (int u = 0; u < LM_MAX_USER_COLUMNS; u++)
        lm_free(col.user[u]);
    return rc == -ENOMEM ? oom(ex) : rc;
}

/* ---------------------------------------------------------------- DELETE, UPDATE */

#define MAX_TERMS 64

enum wmode {
    W_NOTHING = 1, /* the WHERE matches no sample */
    W_ONE,         /* one selection */
    W_TERMS,       /* one selection per term of the disjunctive form */
    W_KEYS         /* one selection per distinct matching sample */
};

struct set {
    int col;
    double value;
    bool in_where;
};

struct wplan {
    struct lm__xfield f;
    struct lm__pred *where;
    struct lm__push push;
    struct lm__terms terms;
    enum wmode mode;
    bool used[LM__MAX_COLUMNS];  /* columns the WHERE reads */
    size_t n_sets;
    struct set *sets;            /* UPDATE, in the order they run: read-by-WHERE last */
};

static int plan_write(struct lm__exec *ex, const struct lm_lql_stmt *s, struct wplan *pl)
{
    memset(pl, 0, sizeof *pl);
    const struct lm_lql_expr *where = s->kind == LM_LQL_DELETE ? s->delete_where
                                                                : s->update.where;
    int rc = lm__exec_field(ex, &s->field, &pl->f);
    if (rc || (rc = lm__pred_compile(ex, &pl->f, where, &pl->where)))
        return rc;
    lm__pred_columns(pl->where, pl->used);
    if (s->kind == LM_LQL_UPDATE) {
        const struct lm_lql_update *u = &s->update;
        if (!(pl->sets = lm__arena_alloc(&ex->tmp, u->n_sets * sizeof *pl->sets)))
            return oom(ex);
        const struct lm_lql_set *read = NULL;
        size_t n_first = 0;
        for (size_t i = 0; i < u->n_sets; i++) {
            int col;
            const struct lm_lql_set *st = &u->sets[i];
            if ((rc = lm__exec_column(ex, &pl->f, &st->column, &col)))
                return rc;
            if (col <= LM_COL_DZ)
                return lm__exec_fail(ex, LM_EBADARG, st->column.pos,
                                     "column '%s' cannot be updated in place (the index is "
                                     "built on positions and directions): delete and insert "
                                     "the samples", pl->f.cols[col]);
            for (size_t j = 0; j < i; j++)
                if (lm_column_find(u->sets[j].column.text, &pl->f.info.opts) == col)
                    return lm__exec_fail(ex, LM_EBADARG, st->column.pos,
                                         "column '%s' is set twice", pl->f.cols[col]);
            if ((rc = check_value(ex, &pl->f, col, &st->value)))
                return rc;
            if (pl->used[col]) {
                if (read)
                    return lm__exec_fail(ex, LM_EBADARG, st->column.pos,
                                         "UPDATE sets '%s' and '%s', which its WHERE both "
                                         "reads; set one of them per statement",
                                         read->column.text, st->column.text);
                read = st;
                pl->sets[u->n_sets - 1] = (struct set){col, st->value.number, true};
            } else {
                pl->sets[n_first++] = (struct set){col, st->value.number, false};
            }
        }
        pl->n_sets = u->n_sets;
    }
    if ((rc = lm__pred_push(ex, pl->where, &pl->push)))
        return rc;
    bool ok = false;
    if (pl->push.nothing)
        pl->mode = W_NOTHING;
    else if (pl->push.exact)
        pl->mode = W_ONE;
    else if ((rc = lm__pred_terms(ex, pl->where, MAX_TERMS, &pl->terms, &ok)))
        return rc;
    else if (ok)
        pl->mode = pl->terms.n ? W_TERMS : W_NOTHING;
    else
        pl->mode = W_KEYS;
    return 0;
}

/* Samples matching the WHERE, counted on the candidates. */
struct counter {
    struct lm__exec *ex;
    const struct wplan *pl;
    uint64_t n;
};

static int count_chunk(const struct lm_chunk_view *v, void *user)
{
    struct counter *c = user;
    int rc = lm__exec_canceled(c->ex);
    if (rc)
        return rc;
    struct lm__row r = {.f = &c->pl->f, .view = v};
    for (r.i = 0; r.i < v->n; r.i++)
        c->n += lm__pred_eval(c->pl->where, &r);
    return 0;
}

static int count_matches(struct lm__exec *ex, const struct wplan *pl, uint64_t *n)
{
    struct counter c = {ex, pl, 0};
    int rc = lm_chunks_each(ex->db, pl->f.name, &pl->push.sel.region, 0, count_chunk, &c,
                            ex->err);
    if (rc)
        return rc == LM_ECANCELED ? rc : lm__exec_engine(ex, rc);
    *n = c.n;
    return 0;
}

/* Distinct matching samples, as selections that match exactly the samples with the same
 * position and the same values in every column the WHERE reads (which all match). */
struct keys {
    size_t n, width;         /* width: 3 + filter columns */
    double *v;               /* n * width */
    int cols[LM_MAX_FILTERS];
    uint32_t n_cols;
    uint64_t matched;
};

static int key_cmp(const void *a, const void *b, void *width)
{
    const double *x = a, *y = b;
    for (size_t k = 0; k < *(const size_t *)width; k++)
        if (x[k] != y[k])
            return x[k] < y[k] ? -1 : 1;
    return 0;
}

static int collect_keys(struct lm__exec *ex, const struct wplan *pl, struct keys *k)
{
    memset(k, 0, sizeof *k);
    for (int c = LM_COL_Z + 1; c < pl->f.n_cols; c++) {
        if (!pl->used[c])
            continue;
        if (k->n_cols == LM_MAX_FILTERS)
            return lm__exec_fail(ex, LM_ELIMIT, ex->stmt->pos,
                                 "this WHERE reads more than %d columns besides the position "
                                 "and is no union of selections; split the statement",
                                 LM_MAX_FILTERS);
        k->cols[k->n_cols++] = c;
    }
    k->width = 3 + k->n_cols;
    struct lm_rows *rows = NULL;
    int rc = lm_select(ex->db, pl->f.name, &pl->push.sel, 0, &rows, ex->err);
    if (rc)
        return lm__exec_engine(ex, rc);
    struct lm__row r = {.f = &pl->f, .rows = rows};
    if (!(k->v = lm_alloc((rows->n ? rows->n : 1) * k->width * sizeof *k->v))) {
        lm_rows_free(rows);
        return oom(ex);
    }
    for (r.i = 0; r.i < rows->n; r.i++) {
        if (!lm__pred_eval(pl->where, &r))
            continue;
        double *v = &k->v[k->n++ * k->width];
        v[0] = rows->x[r.i];
        v[1] = rows->y[r.i];
        v[2] = rows->z[r.i];
        for (uint32_t c = 0; c < k->n_cols; c++)
            v[3 + c] = lm__row_value(&r, k->cols[c]);
    }
    lm_rows_free(rows);
    k->matched = k->n;
    qsort_r(k->v, k->n, k->width * sizeof *k->v, key_cmp, &k->width);
    size_t m = 0;
    for (size_t i = 0; i < k->n; i++)
        if (!m || key_cmp(&k->v[(m - 1) * k->width], &k->v[i * k->width], &k->width))
            memmove(&k->v[m++ * k->width], &k->v[i * k->width], k->width * sizeof *k->v);
    k->n = m;
    return 0;
}

static void key_selection(const struct keys *k, size_t i, struct lm_selection *sel)
{
    const double *v = &k->v[i * k->width];
    memset(sel, 0, sizeof *sel);
    sel->region.kind = LM_REGION_BOX;
    for (int a = 0; a < 3; a++)
        sel->region.min[a] = sel->region.max[a] = (float)v[a];
    sel->n_filters = k->n_cols;
    for (uint32_t c = 0; c < k->n_cols; c++)
        sel->filters[c] = (struct lm_filter){k->cols[c], LM_CMP_EQ, v[3 + c], 0};
}

/* The selections a write runs over, in order. */
struct targets {
    size_t n;
    const struct lm_selection *sel;  /* W_ONE, W_TERMS */
    struct keys keys;                /* W_KEYS */
};

static void target(const struct targets *t, const struct wplan *pl, size_t i,
                   struct lm_selection *out)
{
    if (pl->mode == W_KEYS)
        key_selection(&t->keys, i, out);
    else
        *out = t->sel[i];
}

static int targets_get(struct lm__exec *ex, const struct wplan *pl, struct targets *t)
{
    memset(t, 0, sizeof *t);
    switch (pl->mode) {
    case W_NOTHING: return 0;
    case W_ONE: t->n = 1; t->sel = &pl->push.sel; return 0;
    case W_TERMS: t->n = pl->terms.n; t->sel = pl->terms.sel; return 0;
    case W_KEYS: {
        int rc = collect_keys(ex, pl, &t->keys);
        t->n = t->keys.n;
        return rc;
    }
    }
    return LM_EINTERNAL;
}

/* Ends a DELETE or UPDATE: frees the targets, and on success reports `total` samples
 * `verb` ("deleted", "updated"). */
static int write_done(struct lm__exec *ex, const struct lm_lql_stmt *s, struct targets *t,
                      int rc, uint64_t total, const char *verb, struct lm_exec_result **out)
{
    lm_free(t->keys.v);
    if (!rc && !(rc = lm__result_new(s->kind, out))) {
        (*out)->affected = total;
        lm__result_message(*out, "%s %llu sample%s", verb, (unsigned long long)total,
                           total == 1 ? "" : "s");
    }
    return rc == -ENOMEM ? oom(ex) : rc;
}

int lm__exec_delete(struct lm__exec *ex, const struct lm_lql_stmt *s,
                    struct lm_exec_result **out)
{
    struct wplan pl;
    int rc = plan_write(ex, s, &pl);
    if (rc || ex->plan_only)
        return rc;
    struct targets t;
    if ((rc = targets_get(ex, &pl, &t)))
        return rc;
    uint64_t total = 0;
    for (size_t i = 0; i < t.n && !rc; i++) {
        struct lm_selection sel;
        uint64_t n = 0;
        target(&t, &pl, i, &sel);
        if ((rc = lm__exec_canceled(ex)))
            break;
        if ((rc = lm_delete(ex->db, pl.f.name, &sel, &n, NULL, ex->err)))
            rc = lm__exec_engine(ex, rc);
        total += n;
    }
    return write_done(ex, s, &t, rc, total, "deleted", out);
}

int lm__exec_update(struct lm__exec *ex, const struct lm_lql_stmt *s,
                    struct lm_exec_result **out)
{
    struct wplan pl;
    int rc = plan_write(ex, s, &pl);
    if (rc || ex->plan_only)
        return rc;
    uint64_t total = 0;
    bool counted = false;
    if (pl.mode == W_TERMS && pl.terms.n > 1) { /* terms may overlap: count once before */
        if ((rc = count_matches(ex, &pl, &total)))
            return rc;
        counted = true;
    }
    struct targets t;
    if ((rc = targets_get(ex, &pl, &t)))
        return rc;
    if (pl.mode == W_KEYS) {
        total = t.keys.matched;
        counted = true;
    }
    /* Columns the WHERE does not read first: they leave every verdict as it was; the
     * one it reads last, so that each selection still finds the samples it matched. */
    for (size_t c = 0; c < pl.n_sets && !rc; c++)
        for (size_t i = 0; i < t.n && !rc; i++) {
            struct lm_selection sel;
            uint64_t n = 0;
            target(&t, &pl, i, &sel);
            if ((rc = lm__exec_canceled(ex)))
                break;
            if ((rc = lm_update(ex->db, pl.f.name, &sel, pl.sets[c].col, pl.sets[c].value, &n,
                                NULL, ex->err)))
                rc = lm__exec_engine(ex, rc);
            if (!counted && c == 0)
                total += n;
        }
    return write_done(ex, s, &t, rc, total, "updated", out);
}

/* ---------------------------------------------------------------- EXPLAIN */

int lm__explain_write(struct lm__exec *ex, const struct lm_lql_stmt *s,
                      struct lm_exec_result *r)
{
    if (s->kind == LM_LQL_INSERT) {
        struct lm__xfield f;
        int map[LM__MAX_COLUMNS + 1];
        int rc = plan_insert(ex, s, &f, map);
        if (!rc)
            rc = lm__explain_line(r, "access", "lm_insert: %zu sample%s in one atomic batch "
                                               "(write-ahead log, then chunks and voxels)",
                                  s->insert.n_rows, s->insert.n_rows == 1 ? "" : "s");
        if (!rc)
            rc = lm__explain_line(r, "rows", "%zu", s->insert.n_rows);
        return rc;
    }
    struct wplan pl;
    int rc = plan_write(ex, s, &pl);
    if (rc)
        return rc;
    const char *call = s->kind == LM_LQL_DELETE ? "lm_delete" : "lm_update";
    char sel[1024];
    lm__selection_text(&pl.f, &pl.push.sel, sel, sizeof sel);
    switch (pl.mode) {
    case W_NOTHING:
        rc = lm__explain_line(r, "where", "matches no sample: no engine call");
        break;
    case W_ONE:
        rc = lm__explain_line(r, "where", "pushed down whole: %s", sel);
        if (!rc)
            rc = lm__explain_line(r, "access", "%s, %zu call%s (one per column), each atomic",
                                  call, s->kind == LM_LQL_DELETE ? 1 : pl.n_sets,
                                  s->kind == LM_LQL_DELETE || pl.n_sets == 1 ? "" : "s");
        break;
    case W_TERMS:
        rc = lm__explain_line(r, "where", "a union of %zu selections (its disjunctive form):",
                              pl.terms.n);
        for (size_t i = 0; i < pl.terms.n && !rc; i++) {
            lm__selection_text(&pl.f, &pl.terms.sel[i], sel, sizeof sel);
            rc = lm__explain_line(r, "term", "%s", sel);
        }
        if (!rc)
            rc = lm__explain_line(r, "access", "%s per selection%s; each call atomic, the "
                                               "statement not",
                                  call, s->kind == LM_LQL_UPDATE ? " and column" : "");
        break;
    case W_KEYS:
        rc = lm__explain_line(r, "where", "no union of selections expresses it: candidates "
                                          "%s, then the WHERE per sample", sel);
        if (!rc)
            rc = lm__explain_line(r, "access", "%s per distinct matching sample (position "
                                               "and the columns the WHERE reads); each call "
                                               "atomic, the statement not", call);
        break;
    }
    double est = 0;
    if (!rc && pl.mode != W_NOTHING)
        rc = lm__explain_access(ex, &pl.f, &pl.push.sel, pl.push.exact ? NULL : pl.where, r,
                                &est);
    if (!rc)
        rc = lm__explain_line(r, "rows", "about %.0f", est);
    return rc;
}
