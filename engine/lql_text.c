/* lql_text.c - LQL for people: error rendering with a caret, name suggestions, and the
 * canonical printer of statements. */
#include "lql_int.h"

#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- output */

/* snprintf-style output: writes what fits, counts everything. */
struct sink {
    char *buf;
    size_t cap, len;
};

static void put(struct sink *o, const char *s, size_t n)
{
    if (o->len < o->cap) {
        size_t room = o->cap - o->len - 1;
        memcpy(o->buf + o->len, s, n < room ? n : room);
        o->buf[o->len + (n < room ? n : room)] = '\0';
    }
    o->len += n;
}

static void puts_(struct sink *o, const char *s) { put(o, s, strlen(s)); }

static void putf(struct sink *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct sink *o, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        put(o, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static size_t done(struct sink *o)
{
    if (o->cap && o->len == 0)
        o->buf[0] = '\0';
    return o->len;
}

/* ---------------------------------------------------------------- suggestions */

#define SUGGEST_MAX 255 /* longer names and candidates are never suggested */

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c; }

/* Optimal string alignment distance, case-insensitive: insertions, deletions,
 * substitutions and swaps of neighbours each cost one. */
static size_t edit_distance(const char *a, size_t na, const char *b, size_t nb)
{
    size_t rows[3][SUGGEST_MAX + 1];
    size_t *two = rows[0], *one = rows[1], *cur = rows[2];
    for (size_t j = 0; j <= nb; j++)
        one[j] = j;
    for (size_t i = 1; i <= na; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= nb; j++) {
            int ca = lower((unsigned char)a[i - 1]), cb = lower((unsigned char)b[j - 1]);
            size_t best = one[j - 1] + (ca != cb);
            if (one[j] + 1 < best)
                best = one[j] + 1;
            if (cur[j - 1] + 1 < best)
                best = cur[j - 1] + 1;
            if (i > 1 && j > 1 && ca == lower((unsigned char)b[j - 2]) &&
                lower((unsigned char)a[i - 2]) == cb && two[j - 2] + 1 < best)
                best = two[j - 2] + 1;
            cur[j] = best;
        }
        size_t *t = two;
        two = one;
        one = cur;
        cur = t;
    }
    return one[nb];
}

const char *lm_lql_suggest(const char *name, const char *const *candidates, size_t n)
{
    if (!name || !candidates)
        return NULL;
    size_t nn = strlen(name), best_d = (size_t)-1;
    const char *best = NULL;
    if (nn > SUGGEST_MAX)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        const char *c = candidates[i];
        size_t nc = c ? strlen(c) : SUGGEST_MAX + 1;
        if (nc > SUGGEST_MAX)
            continue;
        size_t longer = nn > nc ? nn : nc, gap = nn > nc ? nn - nc : nc - nn;
        if (gap * 3 > longer)
            continue; /* the distance is at least the length difference */
        size_t d = edit_distance(name, nn, c, nc);
        /* Ties go to a candidate with the same first letter, then to the earlier. */
        size_t score = 2 * d + (nn && nc && lower((unsigned char)name[0]) !=
                                                lower((unsigned char)c[0]));
        if (d * 3 <= longer && score < best_d) {
            best = c;
            best_d = score;
        }
    }
    return best;
}

/* ---------------------------------------------------------------- errors */

size_t lm_lql_format_error(const char *text, const struct lm_error *err, char *buf,
                           size_t cap)
{
    struct sink o = {buf, cap, 0};
    if (!err)
        return done(&o);
    if (err->line == 0) {
        puts_(&o, err->message);
        return done(&o);
    }
    putf(&o, "%u:%u: ", err->line, err->column);
    puts_(&o, err->message);
    if (!text)
        return done(&o);
    const char *line = text;
    for (uint32_t l = 1; l < err->line; l++) {
        line = strchr(line, '\n');
        if (!line)
            return done(&o);
        line++;
    }
    size_t n = strcspn(line, "\n");
    if (n > 0 && line[n - 1] == '\r')
        n--;
    put(&o, "\n", 1);
    put(&o, line, n);
    put(&o, "\n", 1);
    /* Under each character before the column: a tab for a tab, else a space; a column
     * past the end of the line puts the caret just after it. */
    uint32_t col = 1;
    for (size_t i = 0; i < n && col < err->column; i++) {
        if (((unsigned char)line[i] & 0xC0) == 0x80)
            continue;
        put(&o, line[i] == '\t' ? "\t" : " ", 1);
        col++;
    }
    put(&o, "^", 1);
    return done(&o);
}

/* ---------------------------------------------------------------- statements */

static void put_name(struct sink *o, const struct lm_lql_name *name)
{
    size_t n = strlen(name->text);
    if (lm__lql_is_plain_name(name->text, n)) {
        put(o, name->text, n);
        return;
    }
    put(o, "\"", 1);
    for (const char *s = name->text; *s; s++) {
        put(o, s, 1);
        if (*s == '"')
            put(o, s, 1); /* a quote is written twice */
    }
    put(o, "\"", 1);
}

/* The shortest of %.15g, %.16g, %.17g that reads back to v, with '.' for the locale's
 * decimal point. */
static void put_number(struct sink *o, double v)
{
    char tmp[64], out[64];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    const char *dp = localeconv()->decimal_point;
    size_t dpn = dp ? strlen(dp) : 0, k = 0;
    for (size_t i = 0; tmp[i]; i++) {
        if (dpn && strncmp(tmp + i, dp, dpn) == 0) {
            out[k++] = '.';
            i += dpn - 1;
        } else {
            out[k++] = tmp[i];
        }
    }
    out[k] = '\0';
    puts_(o, out);
}

static void put_value(struct sink *o, const struct lm_lql_value *v)
{
    if (v->param)
        puts_(o, v->negated ? "-?" : "?");
    else
        put_number(o, v->number);
}

static void put_point(struct sink *o, const struct lm_lql_value v[3])
{
    for (int i = 0; i < 3; i++) {
        puts_(o, i ? ", " : "(");
        put_value(o, &v[i]);
    }
    puts_(o, ")");
}

/* "<word> value", "<word> (x, y, z)", "<word> name": words carry their own spaces. */
static void put_kw_value(struct sink *o, const char *word, const struct lm_lql_value *v)
{
    puts_(o, word);
    put_value(o, v);
}

static void put_kw_point(struct sink *o, const char *word, const struct lm_lql_value v[3])
{
    puts_(o, word);
    put_point(o, v);
}

static void put_kw_name(struct sink *o, const char *word, const struct lm_lql_name *name)
{
    puts_(o, word);
    put_name(o, name);
}

enum { PREC_OR = 1, PREC_AND, PREC_NOT, PREC_PRIMARY };

static void put_expr(struct sink *o, const struct lm_lql_expr *e, int min_prec)
{
    static const char *const ops[] = {
        [LM_CMP_LT] = "<", [LM_CMP_LE] = "<=", [LM_CMP_GT] = ">",
        [LM_CMP_GE] = ">=", [LM_CMP_EQ] = "=",  [LM_CMP_NE] = "!="};
    int prec = e->kind == LM_LQL_EXPR_OR    ? PREC_OR
               : e->kind == LM_LQL_EXPR_AND ? PREC_AND
               : e->kind == LM_LQL_EXPR_NOT ? PREC_NOT
                                            : PREC_PRIMARY;
    if (prec < min_prec)
        puts_(o, "(");
    switch (e->kind) {
    case LM_LQL_EXPR_AND:
    case LM_LQL_EXPR_OR:
        for (size_t i = 0; i < e->list.n; i++) {
            if (i)
                puts_(o, prec == PREC_OR ? " OR " : " AND ");
            put_expr(o, e->list.args[i], prec + 1);
        }
        break;
    case LM_LQL_EXPR_NOT:
        puts_(o, "NOT ");
        put_expr(o, e->operand, PREC_NOT);
        break;
    case LM_LQL_EXPR_CMP:
        put_name(o, &e->cmp.column);
        if (e->cmp.op == LM_CMP_BETWEEN) {
            put_kw_value(o, " BETWEEN ", &e->cmp.a);
            put_kw_value(o, " AND ", &e->cmp.b);
        } else {
            putf(o, " %s ", e->cmp.op >= LM_CMP_LT && e->cmp.op <= LM_CMP_NE ? ops[e->cmp.op] : "?");
            put_value(o, &e->cmp.a);
        }
        break;
    case LM_LQL_EXPR_REGION: {
        const struct lm_lql_region *r = &e->region;
        if (r->kind == LM_REGION_BOX) {
            put_kw_point(o, "INSIDE BOX ", r->box.min);
            put_kw_point(o, " TO ", r->box.max);
        } else if (r->kind == LM_REGION_SPHERE) {
            put_kw_value(o, "WITHIN ", &r->sphere.radius);
            put_kw_point(o, " OF ", r->sphere.center);
        } else {
            put_kw_point(o, "IN FRUSTUM (EYE ", r->frustum.eye);
            put_kw_point(o, ", TARGET ", r->frustum.target);
            put_kw_point(o, ", UP ", r->frustum.up);
            put_kw_value(o, ", FOV ", &r->frustum.fov_y);
            put_kw_value(o, ", ASPECT ", &r->frustum.aspect);
            put_kw_value(o, ", NEAR ", &r->frustum.near_d);
            put_kw_value(o, ", FAR ", &r->frustum.far_d);
            puts_(o, ")");
        }
        break;
    }
    case LM_LQL_EXPR_TRUE: puts_(o, "TRUE"); break;
    }
    if (prec < min_prec)
        puts_(o, ")");
}

static void put_where(struct sink *o, const struct lm_lql_expr *where)
{
    if (where) {
        puts_(o, " WHERE ");
        put_expr(o, where, PREC_OR);
    }
}

static void put_select(struct sink *o, const struct lm_lql_select *s,
                       const struct lm_lql_name *field)
{
    static const char *const aggs[] = {"", "count", "sum", "avg", "min", "max"};
    puts_(o, "SELECT ");
    if (s->star)
        puts_(o, "*");
    for (size_t i = 0; i < s->n_items; i++) {
        const struct lm_lql_select_item *it = &s->items[i];
        if (i)
            puts_(o, ", ");
        if (it->agg != LM_LQL_AGG_NONE)
            putf(o, "%s(", aggs[it->agg]);
        if (it->column.text)
            put_name(o, &it->column);
        else
            puts_(o, "*");
        if (it->agg != LM_LQL_AGG_NONE)
            puts_(o, ")");
        if (it->alias.text)
            put_kw_name(o, " AS ", &it->alias);
    }
    put_kw_name(o, " FROM ", field);
    if (s->has_nearest) {
        put_kw_value(o, " NEAREST ", &s->nearest_k);
        put_kw_point(o, " TO ", s->nearest_point);
    }
    put_where(o, s->where);
    if (s->group == LM_LQL_GROUP_VOXEL)
        puts_(o, " GROUP BY VOXEL");
    else if (s->group == LM_LQL_GROUP_CHUNK)
        puts_(o, " GROUP BY CHUNK");
    else if (s->group == LM_LQL_GROUP_LOD)
        put_kw_value(o, " GROUP BY LOD ", &s->lod);
    for (size_t i = 0; i < s->n_order; i++) {
        put_kw_name(o, i ? ", " : " ORDER BY ", &s->order[i].column);
        if (s->order[i].desc)
            puts_(o, " DESC");
    }
    if (s->has_limit)
        put_kw_value(o, " LIMIT ", &s->limit);
}

static void put_stmt(struct sink *o, const struct lm_lql_stmt *s)
{
    static const char *const types[] = {[LM_TYPE_F32] = "f32", [LM_TYPE_I32] = "i32",
                                        [LM_TYPE_U8] = "u8"};
    switch (s->kind) {
    case LM_LQL_CREATE_FIELD:
        put_kw_name(o, "CREATE FIELD ", &s->field);
        put_kw_value(o, " (VOXEL ", &s->create.voxel);
        if (s->create.has_chunk)
            put_kw_value(o, ", CHUNK ", &s->create.chunk);
        for (size_t i = 0; i < s->create.n_columns; i++) {
            const struct lm_lql_column_def *d = &s->create.columns[i];
            put_kw_name(o, ", ", &d->name);
            putf(o, " %s", d->type >= LM_TYPE_F32 && d->type <= LM_TYPE_U8 ? types[d->type] : "?");
        }
        puts_(o, ")");
        break;
    case LM_LQL_DROP_FIELD: put_kw_name(o, "DROP FIELD ", &s->field); break;
    case LM_LQL_SHOW_FIELDS: puts_(o, "SHOW FIELDS"); break;
    case LM_LQL_DESCRIBE: put_kw_name(o, "DESCRIBE ", &s->field); break;
    case LM_LQL_INSERT:
        put_kw_name(o, "INSERT INTO ", &s->field);
        for (size_t i = 0; i < s->insert.n_columns; i++)
            put_kw_name(o, i ? ", " : " (", &s->insert.columns[i]);
        puts_(o, s->insert.n_columns ? ") VALUES " : " VALUES ");
        for (size_t r = 0; r < s->insert.n_rows; r++)
            for (size_t c = 0; c < s->insert.width; c++)
                put_kw_value(o, c ? ", " : r ? "), (" : "(",
                             &s->insert.values[r * s->insert.width + c]);
        puts_(o, ")");
        break;
    case LM_LQL_SELECT: put_select(o, &s->select, &s->field); break;
    case LM_LQL_RAYCAST:
        put_kw_name(o, "RAYCAST ", &s->field);
        put_kw_point(o, " FROM ", s->raycast.origin);
        put_kw_point(o, " DIR ", s->raycast.dir);
        if (s->raycast.has_max)
            put_kw_value(o, " MAX ", &s->raycast.max_dist);
        if (s->raycast.mode == LM_RAY_ALL)
            puts_(o, " RETURN ALL");
        break;
    case LM_LQL_RADIANCE:
        put_kw_name(o, "RADIANCE ", &s->field);
        put_kw_point(o, " AT ", s->radiance.at);
        put_kw_point(o, " TOWARD ", s->radiance.toward);
        break;
    case LM_LQL_DELETE:
        put_kw_name(o, "DELETE FROM ", &s->field);
        put_where(o, s->delete_where);
        break;
    case LM_LQL_UPDATE:
        put_kw_name(o, "UPDATE ", &s->field);
        for (size_t i = 0; i < s->update.n_sets; i++) {
            put_kw_name(o, i ? ", " : " SET ", &s->update.sets[i].column);
            put_kw_value(o, " = ", &s->update.sets[i].value);
        }
        put_where(o, s->update.where);
        break;
    case LM_LQL_EXPLAIN:
        puts_(o, "EXPLAIN ");
        put_stmt(o, s->explain);
        break;
    }
}

size_t lm_lql_format_stmt(const struct lm_lql_stmt *stmt, char *buf, size_t cap)
{
    struct sink o = {buf, cap, 0};
    if (stmt)
        put_stmt(&o, stmt);
    return done(&o);
}
