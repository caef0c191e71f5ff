/* exec.c - the LQL executor: entry points, names, result tables, field statements,
 * RAYCAST, RADIANCE and prepared statements. SELECT, writes and EXPLAIN live in
 * exec_select.c, exec_write.c and exec_explain.c (exec_int.h). */
#include "exec_int.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "error.h"

/* ---------------------------------------------------------------- arena */

#define ARENA_BLOCK 16384

struct lm__arena_block {
    struct lm__arena_block *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

void *lm__arena_alloc(struct lm__arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    struct lm__arena_block *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > ARENA_BLOCK / 4 ? n : ARENA_BLOCK;
        b = lm_alloc(sizeof *b + cap);
        if (!b)
            return NULL;
        b->used = 0;
        b->cap = cap;
        if (n > ARENA_BLOCK / 4 && a->head) { /* keep filling the current block */
            b->next = a->head->next;
            a->head->next = b;
        } else {
            b->next = a->head;
            a->head = b;
        }
    }
    void *p = b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

char *lm__arena_strdup(struct lm__arena *a, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = lm__arena_alloc(a, n);
    if (p)
        memcpy(p, s, n);
    return p;
}

void lm__arena_free(struct lm__arena *a)
{
    for (struct lm__arena_block *b = a->head, *next; b; b = next) {
        next = b->next;
        lm_free(b);
    }
    a->head = NULL;
}

/* ---------------------------------------------------------------- errors */

int lm__exec_fail(struct lm__exec *ex, int code, struct lm_lql_pos pos, const char *fmt, ...)
{
    if (!ex->err)
        return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ex->err->message, sizeof ex->err->message, fmt, ap);
    va_end(ap);
    ex->err->code = code;
    ex->err->line = pos.line;
    ex->err->column = pos.column;
    ex->err->offset = -1;
    return code;
}

int lm__exec_engine(struct lm__exec *ex, int rc)
{
    if (rc && ex->err) {
        if (!ex->err->message[0] || ex->err->code != rc)
            snprintf(ex->err->message, sizeof ex->err->message, "%s", lm_strerror(rc));
        ex->err->code = rc;
        if (!ex->err->line) {
            ex->err->line = ex->stmt->pos.line;
            ex->err->column = ex->stmt->pos.column;
        }
    }
    return rc;
}

int lm__exec_canceled(struct lm__exec *ex)
{
    if (ex->opts && ex->opts->cancel && *ex->opts->cancel)
        return lm__exec_fail(ex, LM_ECANCELED, ex->stmt->pos, "statement canceled");
    return 0;
}

/* ---------------------------------------------------------------- names */

int lm__exec_field(struct lm__exec *ex, const struct lm_lql_name *name, struct lm__xfield *out)
{
    memset(out, 0, sizeof *out);
    int rc = lm_field_stat(ex->db, name->text, &out->info, NULL);
    if (rc == LM_ENOFIELD) {
        size_t n = 0;
        struct lm_field_info *list = NULL;
        const char **names = NULL;
        const char *near = NULL;
        if (lm_field_list(ex->db, NULL, 0, &n) == 0 && n) {
            list = lm_calloc(n, sizeof *list);
            names = lm_calloc(n, sizeof *names);
            if (list && names && lm_field_list(ex->db, list, n, &n) == 0) {
                for (size_t i = 0; i < n; i++)
                    names[i] = list[i].name;
                near = lm_lql_suggest(name->text, names, n);
            }
        }
        if (near)
            lm__exec_fail(ex, rc, name->pos, "unknown field '%s'; did you mean '%s'?",
                          name->text, near);
        else
            lm__exec_fail(ex, rc, name->pos, "unknown field '%s'", name->text);
        lm_free(list);
        lm_free(names);
        return rc;
    }
    if (rc)
        return lm__exec_fail(ex, rc, name->pos, "field '%s': %s", name->text, lm_strerror(rc));
    out->name = out->info.name;
    out->n_cols = LM_COL_USER + (int)out->info.opts.n_user_columns;
    for (int c = 0; c < out->n_cols; c++)
        out->cols[c] = lm_column_name(c, &out->info.opts);
    out->inv_voxel = 1.0 / (double)out->info.opts.voxel_size;
    out->log2_edge = (uint32_t)__builtin_ctz(out->info.opts.chunk_edge);
    return 0;
}

int lm__exec_column(struct lm__exec *ex, const struct lm__xfield *f,
                    const struct lm_lql_name *name, int *out)
{
    int c = lm_column_find(name->text, &f->info.opts);
    if (c >= 0) {
        *out = c;
        return 0;
    }
    const char *near = lm_lql_suggest(name->text, f->cols, (size_t)f->n_cols);
    if (near)
        return lm__exec_fail(ex, LM_ENOCOLUMN, name->pos,
                             "unknown column '%s' in field '%s'; did you mean '%s'?",
                             name->text, f->name, near);
    return lm__exec_fail(ex, LM_ENOCOLUMN, name->pos, "unknown column '%s' in field '%s'",
                         name->text, f->name);
}

enum lm_exec_type lm__column_type(const struct lm__xfield *f, int col)
{
    if (col == LM_COL_T)
        return LM_EXEC_INT;
    if (col >= LM_COL_USER &&
        f->info.opts.user_columns[col - LM_COL_USER].type != LM_TYPE_F32)
        return LM_EXEC_INT;
    return LM_EXEC_F32;
}

int lm__exec_float(struct lm__exec *ex, const struct lm_lql_value *v, float *out)
{
    if (!(fabs(v->number) <= FLT_MAX))
        return lm__exec_fail(ex, LM_EBADVALUE, v->pos,
                             "%g is out of the range of a 32-bit float", v->number);
    *out = (float)v->number;
    return 0;
}

int lm__exec_point(struct lm__exec *ex, const struct lm_lql_value v[3], float out[3])
{
    for (int a = 0; a < 3; a++) {
        int rc = lm__exec_float(ex, &v[a], &out[a]);
        if (rc)
            return rc;
    }
    return 0;
}

int lm__exec_direction(struct lm__exec *ex, const struct lm_lql_value v[3], float out[3])
{
    double len = sqrt(v[0].number * v[0].number + v[1].number * v[1].number +
                      v[2].number * v[2].number);
    if (!(len > 0) || !isfinite(len))
        return lm__exec_fail(ex, LM_EBADVALUE, v[0].pos,
                             "a direction needs a non-zero length (this one is (%g, %g, %g))",
                             v[0].number, v[1].number, v[2].number);
    for (int a = 0; a < 3; a++)
        out[a] = (float)(v[a].number / len);
    return 0;
}

/* ---------------------------------------------------------------- results */

int lm__result_new(enum lm_lql_kind kind, struct lm_exec_result **out)
{
    struct lm_exec_result *r = lm_calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->store = lm_calloc(1, sizeof *r->store);
    if (!r->store) {
        lm_free(r);
        return -ENOMEM;
    }
    r->kind = kind;
    *out = r;
    return 0;
}

int lm__result_column(struct lm_exec_result *r, const char *name, enum lm_exec_type type)
{
    if (r->n_rows)
        return LM_EINTERNAL; /* columns come before rows */
    if ((r->n_columns & 7) == 0) {
        struct lm_exec_column *c = lm__arena_alloc(&r->store->arena,
                                                   (r->n_columns + 8) * sizeof *c);
        if (!c)
            return -ENOMEM;
        if (r->n_columns)
            memcpy(c, r->columns, r->n_columns * sizeof *c);
        r->columns = c;
    }
    const char *copy = lm__arena_strdup(&r->store->arena, name);
    if (!copy)
        return -ENOMEM;
    r->columns[r->n_columns++] = (struct lm_exec_column){copy, type};
    return 0;
}

struct lm_exec_value *lm__result_row(struct lm_exec_result *r)
{
    size_t w = r->n_columns ? r->n_columns : 1;
    if (r->n_rows == r->store->cap_rows) {
        size_t cap = r->store->cap_rows ? r->store->cap_rows * 2 : 64;
        struct lm_exec_value *p = lm_realloc(r->rows, cap * w * sizeof *p);
        if (!p)
            return NULL;
        r->rows = p;
        r->store->cap_rows = cap;
    }
    struct lm_exec_value *row = &r->rows[r->n_rows++ * w];
    memset(row, 0, w * sizeof *row);
    return row;
}

const char *lm__result_text(struct lm_exec_result *r, const char *s)
{
    return lm__arena_strdup(&r->store->arena, s);
}

void lm__result_message(struct lm_exec_result *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->message, sizeof r->message, fmt, ap);
    va_end(ap);
}

void lm_exec_result_free(struct lm_exec_result *res)
{
    while (res) {
        struct lm_exec_result *next = res->next;
        if (res->store)
            lm__arena_free(&res->store->arena);
        lm_free(res->store);
        lm_free(res->rows);
        lm_free(res);
        res = next;
    }
}

/* ---------------------------------------------------------------- field statements */

static bool plain_name(const char *s)
{
    if (!((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
        return false;
    for (const char *p = s + 1; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '_'))
            return false;
    return true;
}

static int exec_create(struct lm__exec *ex, const struct lm_lql_stmt *s,
                       struct lm_exec_result **out)
{
    const struct lm_lql_create *c = &s->create;
    struct lm_field_opts o = {0};
    if (!plain_name(s->field.text))
        return lm__exec_fail(ex, LM_EBADARG, s->field.pos,
                             "field name '%s' must be letters, digits and '_', not starting "
                             "with a digit", s->field.text);
    if (!(c->voxel.number > 0) || !(c->voxel.number <= FLT_MAX) ||
        !((float)c->voxel.number > 0))
        return lm__exec_fail(ex, LM_EBADVALUE, c->voxel.pos,
                             "VOXEL %g: the voxel size must be a number > 0", c->voxel.number);
    o.voxel_size = (float)c->voxel.number;
    if (c->has_chunk) {
        double e = c->chunk.number;
        if (e < 4 || e > 256 || ((uint32_t)e & ((uint32_t)e - 1)))
            return lm__exec_fail(ex, LM_EBADVALUE, c->chunk.pos,
                                 "CHUNK %g: the chunk edge must be a power of two in [4, 256]",
                                 e);
        o.chunk_edge = (uint32_t)e;
    }
    if (c->n_columns > LM_MAX_USER_COLUMNS)
        return lm__exec_fail(ex, LM_ELIMIT, c->columns[LM_MAX_USER_COLUMNS].name.pos,
                             "a field has at most %d user columns", LM_MAX_USER_COLUMNS);
    o.n_user_columns = (uint32_t)c->n_columns;
    for (size_t i = 0; i < c->n_columns; i++) {
        const struct lm_lql_column_def *d = &c->columns[i];
        if (!plain_name(d->name.text))
            return lm__exec_fail(ex, LM_EBADARG, d->name.pos,
                                 "column name '%s' must be letters, digits and '_', not "
                                 "starting with a digit", d->name.text);
        int builtin = lm_column_find(d->name.text, NULL);
        if (builtin >= 0)
            return lm__exec_fail(ex, LM_EBADARG, d->name.pos,
                                 "'%s' is a built-in column; choose another name",
                                 d->name.text);
        for (size_t j = 0; j < i; j++)
            if (!strcasecmp(c->columns[j].name.text, d->name.text))
                return lm__exec_fail(ex, LM_EBADARG, d->name.pos,
                                     "column '%s' is listed twice", d->name.text);
        snprintf(o.user_columns[i].name, sizeof o.user_columns[i].name, "%s", d->name.text);
        o.user_columns[i].type = d->type;
    }
    if (lm_field_stat(ex->db, s->field.text, &(struct lm_field_info){0}, NULL) == 0)
        return lm__exec_fail(ex, LM_EFIELDEXISTS, s->field.pos, "field '%s' already exists",
                             s->field.text);
    if (ex->plan_only)
        return 0;
    int rc = lm_field_create(ex->db, s->field.text, &o, ex->err);
    if (rc)
        return lm__exec_engine(ex, rc);
    if ((rc = lm__result_new(s->kind, out)))
        return rc;
    lm__result_message(*out, "created field %s", s->field.text);
    return 0;
}

static int exec_drop(struct lm__exec *ex, const struct lm_lql_stmt *s,
                     struct lm_exec_result **out)
{
    struct lm__xfield f;
    int rc = lm__exec_field(ex, &s->field, &f);
    if (rc || ex->plan_only)
        return rc;
    if ((rc = lm_field_drop(ex->db, s->field.text, ex->err)))
        return lm__exec_engine(ex, rc);
    if ((rc = lm__result_new(s->kind, out)))
        return rc;
    lm__result_message(*out, "dropped field %s (%llu samples)", s->field.text,
                       (unsigned long long)f.info.n_samples);
    return 0;
}

static const char *type_name(enum lm_type t)
{
    return t == LM_TYPE_I32 ? "i32" : t == LM_TYPE_U8 ? "u8" : "f32";
}

static int exec_show(struct lm__exec *ex, const struct lm_lql_stmt *s,
                     struct lm_exec_result **out)
{
    if (ex->plan_only)
        return 0;
    size_t n = 0;
    int rc = lm_field_list(ex->db, NULL, 0, &n);
    if (rc)
        return lm__exec_engine(ex, rc);
    struct lm_field_info *list = lm_calloc(n ? n : 1, sizeof *list);
    if (!list)
        return -ENOMEM;
    struct lm_exec_result *r = NULL;
    if ((rc = lm_field_list(ex->db, list, n, &n)) || (rc = lm__result_new(s->kind, &r)))
        goto done;
    static const struct { const char *name; enum lm_exec_type type; } cols[] = {
        {"name", LM_EXEC_TEXT},     {"samples", LM_EXEC_INT},    {"chunks", LM_EXEC_INT},
        {"voxels", LM_EXEC_INT},    {"voxel_size", LM_EXEC_F32}, {"chunk_edge", LM_EXEC_INT},
        {"columns", LM_EXEC_TEXT}};
    for (size_t c = 0; c < sizeof cols / sizeof cols[0] && !rc; c++)
        rc = lm__result_column(r, cols[c].name, cols[c].type);
    for (size_t i = 0; i < n && !rc; i++) {
        char users[LM_MAX_USER_COLUMNS * (LM_NAME_MAX + 8)] = "";
        size_t len = 0;
        for (uint32_t u = 0; u < list[i].opts.n_user_columns; u++)
            len += (size_t)snprintf(users + len, sizeof users - len, "%s%s %s", u ? ", " : "",
                                    list[i].opts.user_columns[u].name,
                                    type_name(list[i].opts.user_columns[u].type));
        struct lm_exec_value *row = lm__result_row(r);
        const char *name = lm__result_text(r, list[i].name), *ucols = lm__result_text(r, users);
        if (!row || !name || !ucols) {
            rc = -ENOMEM;
            break;
        }
        row[0] = (struct lm_exec_value){LM_EXEC_TEXT, .s = name};
        row[1] = (struct lm_exec_value){LM_EXEC_INT, .i = (int64_t)list[i].n_samples};
        row[2] = (struct lm_exec_value){LM_EXEC_INT, .i = (int64_t)list[i].n_chunks};
        row[3] = (struct lm_exec_value){LM_EXEC_INT, .i = (int64_t)list[i].n_voxels};
        row[4] = (struct lm_exec_value){LM_EXEC_F32, .d = list[i].opts.voxel_size};
        row[5] = (struct lm_exec_value){LM_EXEC_INT, .i = list[i].opts.chunk_edge};
        row[6] = (struct lm_exec_value){LM_EXEC_TEXT, .s = ucols};
    }
done:
    lm_free(list);
    if (rc) {
        lm_exec_result_free(r);
        return rc == -ENOMEM ? lm__exec_fail(ex, rc, s->pos, "out of memory") : lm__exec_engine(ex, rc);
    }
    *out = r;
    return 0;
}

static int exec_describe(struct lm__exec *ex, const struct lm_lql_stmt *s,
                         struct lm_exec_result **out)
{
    struct lm__xfield f;
    int rc = lm__exec_field(ex, &s->field, &f);
    if (rc || ex->plan_only)
        return rc;
    struct lm_exec_result *r;
    if ((rc = lm__result_new(s->kind, &r)))
        return rc;
    if ((rc = lm__result_column(r, "column", LM_EXEC_TEXT)) ||
        (rc = lm__result_column(r, "type", LM_EXEC_TEXT)) ||
        (rc = lm__result_column(r, "stored as", LM_EXEC_TEXT)))
        goto fail;
    for (int c = 0; c < f.n_cols; c++) {
        const char *type = "f32", *stored = "f32";
        if (c >= LM_COL_DX && c <= LM_COL_DZ)
            stored = "unit direction, octahedral 2 x 16 bit";
        else if (c >= LM_COL_R && c <= LM_COL_B)
            stored = "colour in [0, 1], 8 bit";
        else if (c == LM_COL_T)
            type = stored = "i64";
        else if (c >= LM_COL_USER)
            type = stored = type_name(f.info.opts.user_columns[c - LM_COL_USER].type);
        struct lm_exec_value *row = lm__result_row(r);
        const char *a = lm__result_text(r, f.cols[c]), *b = lm__result_text(r, type),
                   *d = lm__result_text(r, stored);
        if (!row || !a || !b || !d) {
            rc = -ENOMEM;
            goto fail;
        }
        row[0] = (struct lm_exec_value){LM_EXEC_TEXT, .s = a};
        row[1] = (struct lm_exec_value){LM_EXEC_TEXT, .s = b};
        row[2] = (struct lm_exec_value){LM_EXEC_TEXT, .s = d};
    }
    const struct lm_field_info *i = &f.info;
    lm_field_info(ex->db, f.name, &f.info, NULL); /* voxels and memory: chunk by chunk */
    lm__result_message(r,
                       "field %s: %llu samples in %llu chunks, %llu voxels; voxel %g, chunk "
                       "%u; bounds (%g, %g, %g) to (%g, %g, %g); %.1f MiB in memory",
                       f.name, (unsigned long long)i->n_samples, (unsigned long long)i->n_chunks,
                       (unsigned long long)i->n_voxels, (double)i->opts.voxel_size,
                       i->opts.chunk_edge, (double)i->bounds_min[0], (double)i->bounds_min[1],
                       (double)i->bounds_min[2], (double)i->bounds_max[0],
                       (double)i->bounds_max[1], (double)i->bounds_max[2],
                       (double)i->memory_bytes / 1048576.0);
    *out = r;
    return 0;
fail:
    lm_exec_result_free(r);
    return lm__exec_fail(ex, rc, s->pos, "out of memory");
}

/* ---------------------------------------------------------------- RAYCAST, RADIANCE */

/* Column set of a sample table: every column of the field, then `distance`. */
static int sample_columns(struct lm_exec_result *r, const struct lm__xfield *f, bool distance)
{
    int rc = 0;
    for (int c = 0; c < f->n_cols && !rc; c++)
        rc = lm__result_column(r, f->cols[c], lm__column_type(f, c));
    if (!rc && distance)
        rc = lm__result_column(r, "distance", LM_EXEC_F32);
    return rc;
}

static void sample_value(const struct lm__xfield *f, const struct lm_rows *rows, size_t i,
                         int c, struct lm_exec_value *v)
{
    double d = lm_rows_value(rows, c, i);
    if (lm__column_type(f, c) == LM_EXEC_INT)
        *v = (struct lm_exec_value){LM_EXEC_INT, .i = c == LM_COL_T ? rows->t[i] : (int64_t)d};
    else
        *v = (struct lm_exec_value){LM_EXEC_F32, .d = d};
}

static int sample_rows(struct lm_exec_result *r, const struct lm__xfield *f,
                       const struct lm_rows *rows)
{
    for (size_t i = 0; rows && i < rows->n; i++) {
        struct lm_exec_value *v = lm__result_row(r);
        if (!v)
            return -ENOMEM;
        for (int c = 0; c < f->n_cols; c++)
            sample_value(f, rows, i, c, &v[c]);
        if (rows->distance)
            v[f->n_cols] = (struct lm_exec_value){LM_EXEC_F32, .d = rows->distance[i]};
    }
    return 0;
}

/* Without MAX, a ray runs to the far side of the field's bounds. */
static float ray_length(const struct lm__xfield *f, const float o[3])
{
    double far2 = 0;
    for (int a = 0; a < 3; a++) {
        double lo = fabs((double)o[a] - f->info.bounds_min[a]);
        double hi = fabs((double)o[a] - f->info.bounds_max[a]);
        double d = (lo > hi ? lo : hi) + 2.0 * f->info.opts.voxel_size;
        far2 += d * d;
    }
    double len = sqrt(far2);
    return len > 1.0 && len < FLT_MAX ? (float)len : 1.0f;
}

static int exec_raycast(struct lm__exec *ex, const struct lm_lql_stmt *s,
                        struct lm_exec_result **out)
{
    const struct lm_lql_raycast *rc_ = &s->raycast;
    struct lm__xfield f;
    float o[3], d[3], max = 0;
    int rc = lm__exec_field(ex, &s->field, &f);
    if (rc || (rc = lm__exec_point(ex, rc_->origin, o)) ||
        (rc = lm__exec_direction(ex, rc_->dir, d)))
        return rc;
    if (rc_->has_max) {
        if ((rc = lm__exec_float(ex, &rc_->max_dist, &max)))
            return rc;
        if (!(max > 0))
            return lm__exec_fail(ex, LM_EBADVALUE, rc_->max_dist.pos,
                                 "MAX %g: the ray length must be > 0", rc_->max_dist.number);
    } else {
        max = ray_length(&f, o);
    }
    if (ex->plan_only)
        return 0;
    struct lm_ray_result *ray = NULL;
    if ((rc = lm_raycast(ex->db, f.name, o, d, max, rc_->mode, &ray, ex->err)))
        return lm__exec_engine(ex, rc);
    struct lm_exec_result *r = NULL, *samples = NULL;
    static const struct { const char *name; enum lm_exec_type type; } cols[] = {
        {"hit", LM_EXEC_INT},        {"vx", LM_EXEC_INT},         {"vy", LM_EXEC_INT},
        {"vz", LM_EXEC_INT},         {"t_enter", LM_EXEC_F32},    {"t_exit", LM_EXEC_F32},
        {"samples", LM_EXEC_INT},    {"mean_r", LM_EXEC_F32},     {"mean_g", LM_EXEC_F32},
        {"mean_b", LM_EXEC_F32},     {"sum_intensity", LM_EXEC_F32}};
    if ((rc = lm__result_new(s->kind, &r)) || (rc = lm__result_new(s->kind, &samples)))
        goto done;
    for (size_t c = 0; c < sizeof cols / sizeof cols[0] && !rc; c++)
        rc = lm__result_column(r, cols[c].name, cols[c].type);
    for (size_t h = 0; h < ray->n_hits && !rc; h++) {
        const struct lm_ray_hit *hit = &ray->hits[h];
        struct lm_exec_value *v = lm__result_row(r);
        if (!v) {
            rc = -ENOMEM;
            break;
        }
        v[0] = (struct lm_exec_value){LM_EXEC_INT, .i = (int64_t)h + 1};
        for (int a = 0; a < 3; a++)
            v[1 + a] = (struct lm_exec_value){LM_EXEC_INT, .i = hit->voxel[a]};
        v[4] = (struct lm_exec_value){LM_EXEC_F32, .d = hit->t_enter};
        v[5] = (struct lm_exec_value){LM_EXEC_F32, .d = hit->t_exit};
        v[6] = (struct lm_exec_value){LM_EXEC_INT, .i = hit->agg.count};
        v[7] = (struct lm_exec_value){LM_EXEC_F32, .d = hit->agg.mean_r};
        v[8] = (struct lm_exec_value){LM_EXEC_F32, .d = hit->agg.mean_g};
        v[9] = (struct lm_exec_value){LM_EXEC_F32, .d = hit->agg.mean_b};
        v[10] = (struct lm_exec_value){LM_EXEC_F32, .d = hit->agg.sum_intensity};
    }
    if (!rc)
        rc = sample_columns(samples, &f, true);
    if (!rc)
        rc = sample_rows(samples, &f, ray->samples);
    if (!rc) {
        lm__result_message(r, "%zu voxel%s hit within %g; radiance toward the origin (%g, %g, %g)",
                           ray->n_hits, ray->n_hits == 1 ? "" : "s", (double)max,
                           (double)ray->radiance[0], (double)ray->radiance[1],
                           (double)ray->radiance[2]);
        lm__result_message(samples, "%zu sample%s in the hit voxel%s",
                           samples->n_rows, samples->n_rows == 1 ? "" : "s",
                           rc_->mode == LM_RAY_ALL ? "s" : "");
        r->next = samples;
        samples = NULL;
    }
done:
    lm_ray_result_free(ray);
    lm_exec_result_free(samples);
    if (rc) {
        lm_exec_result_free(r);
        return lm__exec_fail(ex, rc, s->pos, "out of memory");
    }
    *out = r;
    return 0;
}

static int exec_radiance(struct lm__exec *ex, const struct lm_lql_stmt *s,
                         struct lm_exec_result **out)
{
    struct lm__xfield f;
    float p[3], d[3], rgb[3], w = 0;
    int rc = lm__exec_field(ex, &s->field, &f);
    if (rc || (rc = lm__exec_point(ex, s->radiance.at, p)) ||
        (rc = lm__exec_direction(ex, s->radiance.toward, d)) || ex->plan_only)
        return rc;
    rc = lm_radiance(ex->db, f.name, p, d, rgb, &w, ex->err);
    if (rc && rc != LM_ENOTFOUND)
        return lm__exec_engine(ex, rc);
    bool found = rc == 0;
    struct lm_exec_result *r;
    if ((rc = lm__result_new(s->kind, &r)))
        return rc;
    static const char *const names[] = {"r", "g", "b", "weight"};
    for (int c = 0; c < 4 && !rc; c++)
        rc = lm__result_column(r, names[c], LM_EXEC_F32);
    struct lm_exec_value *v = rc || !found ? NULL : lm__result_row(r);
    if (rc || (found && !v)) {
        lm_exec_result_free(r);
        return lm__exec_fail(ex, -ENOMEM, s->pos, "out of memory");
    }
    if (found) {
        for (int c = 0; c < 3; c++)
            v[c] = (struct lm_exec_value){LM_EXEC_F32, .d = rgb[c]};
        v[3] = (struct lm_exec_value){LM_EXEC_F32, .d = w};
    } else {
        lm__result_message(r, "no occupied voxel around (%g, %g, %g)", (double)p[0],
                           (double)p[1], (double)p[2]);
    }
    if (ex->err)
        lm__error_clear(ex->err);
    *out = r;
    return 0;
}

/* ---------------------------------------------------------------- running */

int lm__exec_dispatch(struct lm__exec *ex, const struct lm_lql_stmt *s,
                      struct lm_exec_result **out)
{
    switch (s->kind) {
    case LM_LQL_CREATE_FIELD: return exec_create(ex, s, out);
    case LM_LQL_DROP_FIELD: return exec_drop(ex, s, out);
    case LM_LQL_SHOW_FIELDS: return exec_show(ex, s, out);
    case LM_LQL_DESCRIBE: return exec_describe(ex, s, out);
    case LM_LQL_INSERT: return lm__exec_insert(ex, s, out);
    case LM_LQL_SELECT: return lm__exec_select(ex, s, out);
    case LM_LQL_RAYCAST: return exec_raycast(ex, s, out);
    case LM_LQL_RADIANCE: return exec_radiance(ex, s, out);
    case LM_LQL_DELETE: return lm__exec_delete(ex, s, out);
    case LM_LQL_UPDATE: return lm__exec_update(ex, s, out);
    case LM_LQL_EXPLAIN: return lm__exec_explain(ex, s, out);
    }
    return lm__exec_fail(ex, LM_EBADARG, s->pos, "unknown statement kind %d", (int)s->kind);
}

static int run(lm_db *db, const struct lm_lql_stmt *stmt, const struct lm_exec_opts *opts,
               bool plan_only, struct lm_exec_result **out, struct lm_error *err)
{
    if (err)
        lm__error_clear(err);
    if (!db || !stmt || (!out && !plan_only))
        return lm__fail(err, LM_EBADARG, "lm_exec needs a database, a statement and *out");
    int rc = lm_lql_check_bound(stmt, err);
    if (rc)
        return rc;
    struct lm__exec ex = {.db = db, .opts = opts, .err = err, .stmt = stmt,
                          .plan_only = plan_only};
    struct lm_exec_result *res = NULL;
    rc = lm__exec_dispatch(&ex, stmt, &res);
    lm__arena_free(&ex.tmp);
    if (rc == -ENOMEM && err && !err->message[0])
        lm__exec_fail(&ex, rc, stmt->pos, "out of memory");
    if (rc || plan_only) {
        lm_exec_result_free(res);
        return rc;
    }
    if (err)
        lm__error_clear(err);
    *out = res;
    return 0;
}

int lm_exec(lm_db *db, const struct lm_lql_stmt *stmt, const struct lm_exec_opts *opts,
            struct lm_exec_result **out, struct lm_error *err)
{
    return run(db, stmt, opts, false, out, err);
}

int lm_exec_check(lm_db *db, const struct lm_lql_stmt *stmt, struct lm_error *err)
{
    return run(db, stmt, NULL, true, NULL, err);
}

int lm_exec_text(lm_db *db, const char *text, size_t len, const struct lm_exec_opts *opts,
                 struct lm_exec_result **out, struct lm_error *err)
{
    struct lm_lql_stmt *s;
    int rc = lm_lql_parse(text, len, &s, err);
    if (rc)
        return rc;
    rc = lm_exec(db, s, opts, out, err);
    lm_lql_free(s);
    return rc;
}

int lm_exec_each(lm_db *db, const struct lm_lql_stmt *stmt, const struct lm_exec_opts *opts,
                 lm_exec_columns_fn columns, lm_exec_row_fn fn, void *user,
                 struct lm_error *err)
{
    if (err)
        lm__error_clear(err);
    if (!db || !stmt || !fn)
        return lm__fail(err, LM_EBADARG, "lm_exec_each needs a database, a statement and fn");
    if (stmt->kind != LM_LQL_SELECT)
        return lm__fail_at(err, LM_EBADARG, stmt->pos.line, stmt->pos.column, -1,
                           "only SELECT hands out rows one by one, not %s",
                           lm_lql_kind_name(stmt->kind));
    int rc = lm_lql_check_bound(stmt, err);
    if (rc)
        return rc;
    struct lm__exec ex = {.db = db, .opts = opts, .err = err, .stmt = stmt};
    rc = lm__exec_select_each(&ex, stmt, columns, fn, user);
    lm__arena_free(&ex.tmp);
    return rc;
}

/* ---------------------------------------------------------------- prepared statements */

struct lm_exec_stmt {
    lm_db *db;
    char *text;
    struct lm_lql_stmt *tree;
};

int lm_exec_prepare(lm_db *db, const char *text, size_t len, lm_exec_stmt **out,
                    struct lm_error *err)
{
    if (!db || !text || !out)
        return lm__fail(err, LM_EBADARG, "lm_exec_prepare needs a database, text and *out");
    lm_exec_stmt *st = lm_calloc(1, sizeof *st);
    char *copy = lm_alloc(len + 1);
    if (!st || !copy) {
        lm_free(st);
        lm_free(copy);
        return lm__fail(err, -ENOMEM, "out of memory preparing a statement");
    }
    memcpy(copy, text, len);
    copy[len] = '\0';
    int rc = lm_lql_parse(copy, len, &st->tree, err);
    if (rc) {
        lm_free(copy);
        lm_free(st);
        return rc;
    }
    st->db = db;
    st->text = copy;
    *out = st;
    return 0;
}

uint32_t lm_exec_param_count(const lm_exec_stmt *st)
{
    return st ? st->tree->n_params : 0;
}

int lm_exec_bind(lm_exec_stmt *st, uint32_t index, double value, struct lm_error *err)
{
    if (!st)
        return lm__fail(err, LM_EBADARG, "no statement");
    int rc = lm_lql_bind_number(st->tree, index, value);
    if (!rc)
        return 0;
    if (index < 1 || index > st->tree->n_params)
        return lm__fail(err, rc, "parameter %u does not exist: the statement has %u", index,
                        st->tree->n_params);
    const struct lm_lql_value *slot = st->tree->params[index - 1];
    return lm__fail_at(err, rc, slot->pos.line, slot->pos.column, -1,
                       slot->integer ? "parameter %u needs an integer in [0, 2^53], not %g"
                                     : "parameter %u needs a finite number, not %g",
                       index, value);
}

int lm_exec_run(lm_exec_stmt *st, const struct lm_exec_opts *opts,
                struct lm_exec_result **out, struct lm_error *err)
{
    if (!st)
        return lm__fail(err, LM_EBADARG, "no statement");
    return lm_exec(st->db, st->tree, opts, out, err);
}

const struct lm_lql_stmt *lm_exec_tree(const lm_exec_stmt *st)
{
    return st ? st->tree : NULL;
}

const char *lm_exec_stmt_text(const lm_exec_stmt *st)
{
    return st ? st->text : NULL;
}

void lm_exec_stmt_free(lm_exec_stmt *st)
{
    if (!st)
        return;
    lm_lql_free(st->tree);
    lm_free(st->text);
    lm_free(st);
}
