/* exec_select.c - SELECT: the plan (names, items, WHERE push-down, the access path),
 * the row sources (lm_select, chunk stream, lm_nearest, lm_aggregate, lm_voxels_query),
 * aggregation and grouping, ORDER BY and LIMIT; and its EXPLAIN. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "exec_int.h"
#include "morton.h"
#include "scan.h"

/* ---------------------------------------------------------------- plan */

#define COL_STAR (-1)      /* count(*) */
#define COL_DISTANCE (-2)  /* NEAREST's distance */

enum path {
    PATH_NOTHING = 1, /* the WHERE matches no sample */
    PATH_SELECT,      /* lm_select on the whole WHERE */
    PATH_FILTER,      /* lm_select on candidates, WHERE per sample */
    PATH_STREAM,      /* lm_chunks_each on candidates, WHERE per sample */
    PATH_AGGREGATE,   /* lm_aggregate per column */
    PATH_VOXELS,      /* lm_voxels_query */
    PATH_NEAREST      /* lm_nearest, WHERE per sample when needed */
};

struct item {
    enum lm_lql_agg agg;
    int col;                 /* field column, COL_STAR or COL_DISTANCE */
    char name[2 * LM_NAME_MAX + 8];
    enum lm_exec_type type;
};

struct order_key {
    size_t out;              /* column of the table being built (hidden ones included) */
    bool desc;
};

struct plan {
    struct lm__xfield f;
    struct lm__pred *where;
    struct lm__push push;
    size_t n_items;
    struct item *items;
    bool aggregate;
    enum lm_lql_group group;
    uint32_t level;          /* cells of 2^level voxels: VOXEL 0, CHUNK log2 edge, LOD n */
    size_t n_keys;           /* 3 (cx, cy, cz) when grouped */
    size_t n_hidden;         /* sort-only columns after the items (plain selects) */
    int hidden[LM__MAX_COLUMNS];
    size_t n_order;
    struct order_key *order;
    bool has_limit;
    uint64_t limit;
    bool nearest, residual;  /* residual: the WHERE is evaluated per sample */
    uint64_t k;
    float point[3], max_dist;
    enum path path;
};

static int oom(struct lm__exec *ex)
{
    return lm__exec_fail(ex, -ENOMEM, ex->stmt->pos, "out of memory");
}

static const char *agg_name(enum lm_lql_agg a)
{
    static const char *const n[] = {"", "count", "sum", "avg", "min", "max"};
    return n[a];
}

static int plan_items(struct lm__exec *ex, const struct lm_lql_select *q, struct plan *pl)
{
    const struct lm__xfield *f = &pl->f;
    size_t n = q->star ? (size_t)f->n_cols + pl->nearest : q->n_items;
    if (!(pl->items = lm__arena_alloc(&ex->tmp, (n ? n : 1) * sizeof *pl->items)))
        return oom(ex);
    pl->n_items = n;
    if (q->star) {
        for (int c = 0; c < f->n_cols; c++) {
            pl->items[c].col = c;
            pl->items[c].type = lm__column_type(f, c);
            snprintf(pl->items[c].name, sizeof pl->items[c].name, "%s", f->cols[c]);
        }
        if (pl->nearest) {
            struct item *it = &pl->items[f->n_cols];
            it->col = COL_DISTANCE;
            it->type = LM_EXEC_F32;
            snprintf(it->name, sizeof it->name, "distance");
        }
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        const struct lm_lql_select_item *si = &q->items[i];
        struct item *it = &pl->items[i];
        it->agg = si->agg;
        if (!si->column.text) {
            it->col = COL_STAR;
        } else if (pl->nearest && !strcasecmp(si->column.text, "distance") &&
                   lm_column_find(si->column.text, &f->info.opts) < 0) {
            it->col = COL_DISTANCE;
        } else {
            int rc = lm__exec_column(ex, f, &si->column, &it->col);
            if (rc)
                return rc;
        }
        enum lm_exec_type ct = it->col >= 0 ? lm__column_type(f, it->col) : LM_EXEC_F32;
        switch (si->agg) {
        case LM_LQL_AGG_NONE: it->type = ct; break;
        case LM_LQL_AGG_COUNT: it->type = LM_EXEC_INT; break;
        case LM_LQL_AGG_SUM:
        case LM_LQL_AGG_AVG: it->type = LM_EXEC_F64; break;
        case LM_LQL_AGG_MIN:
        case LM_LQL_AGG_MAX: it->type = ct; break;
        }
        if (si->alias.text)
            snprintf(it->name, sizeof it->name, "%s", si->alias.text);
        else if (si->agg == LM_LQL_AGG_NONE)
            snprintf(it->name, sizeof it->name, "%s", si->column.text);
        else
            snprintf(it->name, sizeof it->name, "%s(%s)", agg_name(si->agg),
                     si->column.text ? si->column.text : "*");
        if (si->agg != LM_LQL_AGG_NONE)
            pl->aggregate = true;
    }
    for (size_t i = 0; i < n; i++) {
        if (q->items[i].agg != LM_LQL_AGG_NONE)
            continue;
        if (q->group != LM_LQL_GROUP_NONE)
            return lm__exec_fail(ex, LM_EBADARG, q->items[i].pos,
                                 "with GROUP BY, '%s' must be inside an aggregate (grouped "
                                 "rows begin with the cell coordinates cx, cy, cz)",
                                 q->items[i].column.text);
        if (pl->aggregate)
            return lm__exec_fail(ex, LM_EBADARG, q->items[i].pos,
                                 "'%s' must be inside an aggregate such as min(%s), since "
                                 "other items are aggregates and there is no GROUP BY",
                                 q->items[i].column.text, q->items[i].column.text);
    }
    return 0;
}

/* Output column names of the table being built: keys, items (hidden ones aside). */
static const char *out_name(const struct plan *pl, size_t c)
{
    static const char *const keys[] = {"cx", "cy", "cz"};
    return c < pl->n_keys ? keys[c] : pl->items[c - pl->n_keys].name;
}

static int plan_order(struct lm__exec *ex, const struct lm_lql_select *q, struct plan *pl)
{
    if (!q->n_order)
        return 0;
    if (!(pl->order = lm__arena_alloc(&ex->tmp, q->n_order * sizeof *pl->order)))
        return oom(ex);
    size_t n_out = pl->n_keys + pl->n_items;
    for (size_t k = 0; k < q->n_order; k++) {
        const struct lm_lql_name *nm = &q->order[k].column;
        struct order_key *o = &pl->order[pl->n_order++];
        o->desc = q->order[k].desc;
        size_t c;
        for (c = 0; c < n_out; c++)
            if (!strcasecmp(out_name(pl, c), nm->text))
                break;
        if (c < n_out) {
            o->out = c;
            continue;
        }
        int col = pl->aggregate ? -1 : lm_column_find(nm->text, &pl->f.info.opts);
        if (col >= 0) { /* a column of the field not in the output: sort by it, then drop */
            size_t h;
            for (h = 0; h < pl->n_hidden && pl->hidden[h] != col; h++)
                ;
            if (h == pl->n_hidden)
                pl->hidden[pl->n_hidden++] = col;
            o->out = n_out + h;
            continue;
        }
        const char *cand[LM__MAX_COLUMNS + 3 + 64];
        size_t nc = 0;
        for (c = 0; c < n_out && nc < 64 + 3; c++)
            cand[nc++] = out_name(pl, c);
        for (int fc = 0; !pl->aggregate && fc < pl->f.n_cols; fc++)
            cand[nc++] = pl->f.cols[fc];
        const char *near = lm_lql_suggest(nm->text, cand, nc);
        if (near)
            return lm__exec_fail(ex, LM_EBADARG, nm->pos,
                                 "ORDER BY '%s' is not an output column; did you mean '%s'?",
                                 nm->text, near);
        return lm__exec_fail(ex, LM_EBADARG, nm->pos,
                             "ORDER BY '%s' is not an output column%s", nm->text,
                             pl->aggregate ? " (name an aggregate by its alias, or quote it "
                                             "as \"count(*)\")"
                                           : "");
    }
    return 0;
}

/* Farthest distance from p to a point of the region's bounds, or 0 when unbounded. */
static float region_reach(const struct lm_region *r, const float p[3])
{
    double d2 = 0;
    if (r->kind == LM_REGION_BOX) {
        for (int a = 0; a < 3; a++) {
            double lo = fabs((double)p[a] - r->min[a]), hi = fabs((double)p[a] - r->max[a]);
            double d = lo > hi ? lo : hi;
            d2 += d * d;
        }
    } else if (r->kind == LM_REGION_SPHERE) {
        for (int a = 0; a < 3; a++) {
            double d = (double)p[a] - r->center[a];
            d2 += d * d;
        }
        d2 = sqrt(d2) + r->radius;
        d2 *= d2;
    } else {
        return 0.0f;
    }
    double d = sqrt(d2) * (1.0 + 1e-5) + 1e-5;
    return d < FLT_MAX / 2 ? (float)d : 0.0f;
}

static bool voxel_item(const struct item *it)
{
    if (it->agg == LM_LQL_AGG_COUNT)
        return true;
    if (it->agg == LM_LQL_AGG_AVG)
        return (it->col >= LM_COL_R && it->col <= LM_COL_B) || it->col == LM_COL_INTENSITY;
    return it->agg == LM_LQL_AGG_SUM && it->col == LM_COL_INTENSITY;
}

static int plan_select(struct lm__exec *ex, const struct lm_lql_stmt *s, struct plan *pl)
{
    const struct lm_lql_select *q = &s->select;
    memset(pl, 0, sizeof *pl);
    int rc = lm__exec_field(ex, &s->field, &pl->f);
    if (rc)
        return rc;
    pl->nearest = q->has_nearest;
    if (pl->nearest) {
        pl->k = (uint64_t)q->nearest_k.number;
        if ((rc = lm__exec_point(ex, q->nearest_point, pl->point)))
            return rc;
    }
    if ((rc = plan_items(ex, q, pl)))
        return rc;
    pl->group = q->group;
    if (q->group != LM_LQL_GROUP_NONE) {
        if (q->star)
            return lm__exec_fail(ex, LM_EBADARG, q->group_pos,
                                 "GROUP BY needs aggregates such as count(*) in the select "
                                 "list, not *");
        pl->n_keys = 3;
        pl->level = q->group == LM_LQL_GROUP_CHUNK ? pl->f.log2_edge
                    : q->group == LM_LQL_GROUP_LOD ? (uint32_t)q->lod.number : 0;
        if (q->group == LM_LQL_GROUP_LOD && q->lod.number > 40)
            return lm__exec_fail(ex, LM_EBADVALUE, q->lod.pos,
                                 "LOD %g: levels go from 0 (voxels) to 40", q->lod.number);
    }
    if ((rc = plan_order(ex, q, pl)))
        return rc;
    pl->has_limit = q->has_limit;
    pl->limit = q->has_limit ? (uint64_t)q->limit.number : 0;
    if ((rc = lm__pred_compile(ex, &pl->f, q->where, &pl->where)))
        return rc;
    if ((rc = lm__pred_push(ex, pl->where, &pl->push)))
        return rc;
    const struct lm_selection *sel = &pl->push.sel;
    bool everything = pl->push.exact && sel->region.kind == LM_REGION_ALL && !sel->n_filters;
    if (pl->push.nothing) {
        pl->path = PATH_NOTHING;
    } else if (pl->nearest) {
        pl->path = PATH_NEAREST;
        pl->residual = !(pl->push.exact && sel->region.kind == LM_REGION_ALL);
        pl->max_dist = region_reach(&sel->region, pl->point);
    } else if (pl->aggregate && pl->group == LM_LQL_GROUP_NONE) {
        pl->path = pl->push.exact ? PATH_AGGREGATE : PATH_STREAM;
    } else if (pl->group != LM_LQL_GROUP_NONE) {
        bool vox = everything && pl->group != LM_LQL_GROUP_CHUNK;
        for (size_t i = 0; i < pl->n_items && vox; i++)
            vox = voxel_item(&pl->items[i]);
        pl->path = vox ? PATH_VOXELS : PATH_STREAM;
    } else if (pl->push.exact) {
        pl->path = PATH_SELECT;
    } else {
        /* with no region nor filter to narrow the candidates, stream the chunks rather
         * than copy every sample out first */
        pl->path = sel->region.kind == LM_REGION_ALL && !sel->n_filters ? PATH_STREAM
                                                                         : PATH_FILTER;
    }
    if (pl->path == PATH_STREAM || pl->path == PATH_FILTER)
        pl->residual = true;
    return 0;
}

/* ---------------------------------------------------------------- aggregates */

struct acc {
    uint64_t count;
    double sum, min, max;
    int64_t imin, imax;
};

static void acc_init(struct acc *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        a[i] = (struct acc){0, 0, INFINITY, -INFINITY, INT64_MAX, INT64_MIN};
}

static int64_t row_int(const struct lm__row *r, int col)
{
    if (col == LM_COL_T)
        return r->rows ? r->rows->t[r->i] : r->view->t[r->i];
    return (int64_t)lm__row_value(r, col);
}

static void acc_add(struct acc *a, const struct item *it, const struct lm__row *r, float dist)
{
    a->count++;
    if (it->agg == LM_LQL_AGG_COUNT || it->col == COL_STAR)
        return;
    if (it->col >= 0 && lm__column_type(r->f, it->col) == LM_EXEC_INT) {
        int64_t v = row_int(r, it->col);
        a->sum += (double)v;
        a->imin = v < a->imin ? v : a->imin;
        a->imax = v > a->imax ? v : a->imax;
        return;
    }
    double v = it->col == COL_DISTANCE ? (double)dist : lm__row_value(r, it->col);
    a->sum += v;
    a->min = v < a->min ? v : a->min;
    a->max = v > a->max ? v : a->max;
}

static struct lm_exec_value acc_value(const struct acc *a, const struct item *it)
{
    struct lm_exec_value v = {LM_EXEC_NULL};
    if (it->agg == LM_LQL_AGG_COUNT)
        return (struct lm_exec_value){LM_EXEC_INT, .i = (int64_t)a->count};
    if (!a->count)
        return v;
    switch (it->agg) {
    case LM_LQL_AGG_SUM: return (struct lm_exec_value){LM_EXEC_F64, .d = a->sum};
    case LM_LQL_AGG_AVG:
        return (struct lm_exec_value){LM_EXEC_F64, .d = a->sum / (double)a->count};
    case LM_LQL_AGG_MIN:
    case LM_LQL_AGG_MAX: {
        bool min = it->agg == LM_LQL_AGG_MIN;
        if (it->type == LM_EXEC_INT)
            return (struct lm_exec_value){LM_EXEC_INT, .i = min ? a->imin : a->imax};
        return (struct lm_exec_value){it->type, .d = min ? a->min : a->max};
    }
    default: return v;
    }
}

/* Cells of grouped rows: open addressing on (cx, cy, cz). */
struct groups {
    int64_t (*key)[3];
    struct acc *acc;         /* n_items per group */
    size_t n, cap;
    uint32_t *slot;          /* group + 1, 0 = empty */
    size_t n_slots;
};

static uint64_t key_hash(const int64_t k[3])
{
    uint64_t h = (uint64_t)k[0] * 0x9e3779b97f4a7c15ull ^ (uint64_t)k[1] * 0xc2b2ae3d27d4eb4full ^
                 (uint64_t)k[2] * 0x165667b19e3779f9ull;
    return h ^ h >> 29;
}

static int groups_grow(struct groups *g, size_t n_items)
{
    size_t cap = g->cap ? g->cap * 2 : 256;
    if (cap > UINT32_MAX / 2)
        return -ENOMEM;
    int64_t(*key)[3] = lm_realloc(g->key, cap * sizeof *key);
    if (!key)
        return -ENOMEM;
    g->key = key;
    struct acc *acc = lm_realloc(g->acc, cap * (n_items ? n_items : 1) * sizeof *acc);
    if (!acc)
        return -ENOMEM;
    g->acc = acc;
    uint32_t *slot = lm_calloc(cap * 2, sizeof *slot);
    if (!slot)
        return -ENOMEM;
    lm_free(g->slot);
    g->slot = slot;
    g->n_slots = cap * 2;
    g->cap = cap;
    for (size_t i = 0; i < g->n; i++) {
        size_t s = key_hash(g->key[i]) & (g->n_slots - 1);
        while (g->slot[s])
            s = (s + 1) & (g->n_slots - 1);
        g->slot[s] = (uint32_t)i + 1;
    }
    return 0;
}

/* The accumulators of cell k (created empty); NULL when out of memory. */
static struct acc *groups_find(struct groups *g, const int64_t k[3], size_t n_items)
{
    if (g->n_slots) {
        size_t s = key_hash(k) & (g->n_slots - 1);
        for (; g->slot[s]; s = (s + 1) & (g->n_slots - 1)) {
            uint32_t i = g->slot[s] - 1;
            if (g->key[i][0] == k[0] && g->key[i][1] == k[1] && g->key[i][2] == k[2])
                return &g->acc[i * n_items];
        }
    }
    if (g->n == g->cap && groups_grow(g, n_items))
        return NULL;
    size_t s = key_hash(k) & (g->n_slots - 1);
    while (g->slot[s])
        s = (s + 1) & (g->n_slots - 1);
    size_t i = g->n++;
    g->slot[s] = (uint32_t)i + 1;
    memcpy(g->key[i], k, sizeof g->key[i]);
    acc_init(&g->acc[i * n_items], n_items);
    return &g->acc[i * n_items];
}

static void groups_free(struct groups *g)
{
    lm_free(g->key);
    lm_free(g->acc);
    lm_free(g->slot);
}

/* ---------------------------------------------------------------- runs */

struct run {
    struct lm__exec *ex;
    struct plan *pl;
    struct lm_exec_result *res;  /* the table (plain rows; grouped and aggregate at the end) */
    struct acc *acc;             /* aggregate without GROUP BY */
    struct groups groups;
    lm_exec_row_fn each;         /* lm_exec_each without ORDER BY: rows go here */
    void *user;
    struct lm_exec_value *rowbuf;
    uint64_t emitted;
    size_t since_check;
    int64_t last_key[3];         /* the cell of the previous sample and its group: samples */
    size_t last_group;           /* come cell after cell (chunks, Morton order) */
    bool has_last;
};

#define STOP 1 /* a sink's "enough rows" */

static int sort_rows(struct run *q);

static void item_value(const struct item *it, const struct lm__row *r, float dist,
                       struct lm_exec_value *v)
{
    if (it->col == COL_DISTANCE)
        *v = (struct lm_exec_value){LM_EXEC_F32, .d = dist};
    else if (it->type == LM_EXEC_INT)
        *v = (struct lm_exec_value){LM_EXEC_INT, .i = row_int(r, it->col)};
    else
        *v = (struct lm_exec_value){it->type, .d = lm__row_value(r, it->col)};
}

/* The cell of a sample at the plan's level, by the engine's rule (floor of position
 * over voxel size, then an arithmetic shift); a chunk view knows its chunk. */
static void cell_of(const struct plan *pl, const struct lm__row *r, int64_t k[3])
{
    if (pl->group == LM_LQL_GROUP_CHUNK && r->view) {
        for (int a = 0; a < 3; a++)
            k[a] = r->view->coord[a];
        return;
    }
    for (int a = 0; a < 3; a++)
        k[a] = lm_voxel_of((float)lm__row_value(r, LM_COL_X + a), pl->f.inv_voxel) >> pl->level;
}

/* One matching sample. Returns 0, STOP, or an error. */
static int sink(struct run *q, const struct lm__row *r, float dist)
{
    const struct plan *pl = q->pl;
    if (pl->group != LM_LQL_GROUP_NONE) {
        int64_t k[3];
        cell_of(pl, r, k);
        struct acc *acc;
        if (q->has_last && k[0] == q->last_key[0] && k[1] == q->last_key[1] &&
            k[2] == q->last_key[2]) {
            acc = &q->groups.acc[q->last_group * pl->n_items];
        } else {
            if (!(acc = groups_find(&q->groups, k, pl->n_items)))
                return -ENOMEM;
            memcpy(q->last_key, k, sizeof k);
            q->last_group = (size_t)(acc - q->groups.acc) / (pl->n_items ? pl->n_items : 1);
            q->has_last = true;
        }
        for (size_t i = 0; i < pl->n_items; i++)
            acc_add(&acc[i], &pl->items[i], r, dist);
        return 0;
    }
    if (pl->aggregate) {
        for (size_t i = 0; i < pl->n_items; i++)
            acc_add(&q->acc[i], &pl->items[i], r, dist);
        return 0;
    }
    if (pl->has_limit && !pl->n_order && q->emitted >= pl->limit)
        return STOP;
    struct lm_exec_value *v = q->each ? q->rowbuf : lm__result_row(q->res);
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < pl->n_items; i++)
        item_value(&pl->items[i], r, dist, &v[i]);
    for (size_t h = 0; h < pl->n_hidden; h++) {
        struct item it = {.col = pl->hidden[h], .type = lm__column_type(&pl->f, pl->hidden[h])};
        item_value(&it, r, dist, &v[pl->n_items + h]);
    }
    q->emitted++;
    if (q->each) {
        int rc = q->each(v, pl->n_items, q->user);
        if (rc)
            return rc;
    } else if (pl->n_order && pl->has_limit && q->res->n_rows >= 2 * pl->limit + 4096) {
        /* ORDER BY ... LIMIT n: only the first n rows of the sorted prefix can be in the
         * answer (later rows sort after their equals), so the rest goes now */
        if (sort_rows(q))
            return -ENOMEM;
        q->res->n_rows = (size_t)pl->limit;
    }
    return pl->has_limit && !pl->n_order && q->emitted >= pl->limit ? STOP : 0;
}

static int check_cancel(struct run *q)
{
    if (++q->since_check < 4096)
        return 0;
    q->since_check = 0;
    return lm__exec_canceled(q->ex);
}

/* Rows of an engine answer through the WHERE (when residual) into the sink. */
static int feed_rows(struct run *q, const struct lm_rows *rows, size_t max)
{
    struct lm__row r = {.f = &q->pl->f, .rows = rows};
    size_t passed = 0;
    for (r.i = 0; r.i < rows->n && passed < max; r.i++) {
        int rc = check_cancel(q);
        if (rc)
            return rc;
        if (q->pl->residual && !lm__pred_eval(q->pl->where, &r))
            continue;
        passed++;
        if ((rc = sink(q, &r, rows->distance ? rows->distance[r.i] : 0.0f)))
            return rc;
    }
    return 0;
}

static int src_select(struct run *q)
{
    struct plan *pl = q->pl;
    size_t limit = pl->path == PATH_SELECT && pl->has_limit && !pl->n_order &&
                           !pl->aggregate && pl->group == LM_LQL_GROUP_NONE
                       ? (size_t)pl->limit
                       : 0;
    if (pl->has_limit && !pl->limit && !pl->n_order && !pl->aggregate &&
        pl->group == LM_LQL_GROUP_NONE)
        return 0; /* LIMIT 0 */
    struct lm_rows *rows = NULL;
    int rc = lm_select(q->ex->db, pl->f.name, &pl->push.sel, limit, &rows, q->ex->err);
    if (rc)
        return lm__exec_engine(q->ex, rc);
    rc = feed_rows(q, rows, SIZE_MAX);
    lm_rows_free(rows);
    return rc;
}

static int stream_chunk(const struct lm_chunk_view *v, void *user)
{
    struct run *q = user;
    int rc = lm__exec_canceled(q->ex);
    if (rc)
        return rc;
    struct lm__row r = {.f = &q->pl->f, .view = v};
    for (r.i = 0; r.i < v->n; r.i++) {
        if (!lm__pred_eval(q->pl->where, &r))
            continue;
        if ((rc = sink(q, &r, 0.0f)))
            return rc;
    }
    return 0;
}

static int src_stream(struct run *q)
{
    int rc = lm_chunks_each(q->ex->db, q->pl->f.name, &q->pl->push.sel.region, 0, stream_chunk,
                            q, q->ex->err);
    if (rc < 0 && rc != LM_ECANCELED && rc != -ENOMEM)
        return lm__exec_engine(q->ex, rc);
    return rc;
}

static int src_nearest(struct run *q)
{
    struct plan *pl = q->pl;
    uint64_t want = pl->k;
    if (pl->has_limit && !pl->n_order && !pl->aggregate && pl->group == LM_LQL_GROUP_NONE &&
        pl->limit < want)
        want = pl->limit;
    if (!want)
        return 0;
    struct lm_selection filters = pl->push.sel;
    filters.region.kind = LM_REGION_ALL; /* lm_nearest ignores it; the WHERE checks it */
    uint64_t total = pl->f.info.n_samples;
    size_t ask = (size_t)(pl->residual ? (want < 16 ? 64 : want * 4) : want);
    for (;;) {
        if (ask > total)
            ask = (size_t)(total ? total : 1);
        struct lm_rows *rows = NULL;
        int rc = lm_nearest(q->ex->db, pl->f.name, pl->point, ask, pl->max_dist, &filters,
                            &rows, q->ex->err);
        if (rc)
            return lm__exec_engine(q->ex, rc);
        size_t passed = rows->n;
        if (pl->residual) {
            struct lm__row r = {.f = &pl->f, .rows = rows};
            passed = 0;
            for (r.i = 0; r.i < rows->n; r.i++)
                passed += lm__pred_eval(pl->where, &r);
        }
        /* A shorter answer than asked for holds every candidate; so does asking for all. */
        if (passed >= want || rows->n < ask || ask >= total) {
            rc = feed_rows(q, rows, (size_t)want);
            lm_rows_free(rows);
            return rc == STOP ? 0 : rc;
        }
        lm_rows_free(rows);
        if ((rc = lm__exec_canceled(q->ex)))
            return rc;
        ask = ask > SIZE_MAX / 4 ? SIZE_MAX : ask * 4;
    }
}

static int src_aggregate(struct run *q)
{
    struct plan *pl = q->pl;
    for (size_t i = 0; i < pl->n_items; i++) {
        const struct item *it = &pl->items[i];
        int col = it->col >= 0 ? it->col : LM_COL_X;
        size_t j;
        for (j = 0; j < i && (pl->items[j].col >= 0 ? pl->items[j].col : LM_COL_X) != col; j++)
            ;
        if (j < i) { /* one engine call per column */
            q->acc[i] = q->acc[j];
            continue;
        }
        struct lm_aggregate a;
        int rc = lm_aggregate(q->ex->db, pl->f.name, &pl->push.sel, col, &a, q->ex->err);
        if (rc)
            return lm__exec_engine(q->ex, rc);
        q->acc[i] = (struct acc){a.count, a.sum, a.min, a.max, (int64_t)a.min, (int64_t)a.max};
    }
    return 0;
}

/* Grouped rows from the stored voxel aggregates. */
static int src_voxels(struct run *q)
{
    struct plan *pl = q->pl;
    struct lm_voxels *vox = NULL;
    int rc = lm_voxels_query(q->ex->db, pl->f.name, NULL, pl->level, &vox, q->ex->err);
    if (rc)
        return lm__exec_engine(q->ex, rc);
    for (size_t j = 0; j < vox->n; j++) {
        const struct lm_voxel *v = &vox->v[j];
        struct lm_exec_value *row = lm__result_row(q->res);
        if (!row) {
            rc = -ENOMEM;
            break;
        }
        for (int a = 0; a < 3; a++)
            row[a] = (struct lm_exec_value){LM_EXEC_INT, .i = v->coord[a]};
        for (size_t i = 0; i < pl->n_items; i++) {
            const struct item *it = &pl->items[i];
            double d = 0;
            if (it->agg == LM_LQL_AGG_COUNT) {
                row[3 + i] = (struct lm_exec_value){LM_EXEC_INT, .i = v->count};
                continue;
            }
            if (it->col == LM_COL_INTENSITY)
                d = it->agg == LM_LQL_AGG_SUM ? v->sum_intensity
                                              : (double)v->sum_intensity / v->count;
            else
                d = it->col == LM_COL_R ? v->mean_r : it->col == LM_COL_G ? v->mean_g : v->mean_b;
            row[3 + i] = (struct lm_exec_value){LM_EXEC_F64, .d = d};
        }
    }
    lm_voxels_free(vox);
    return rc;
}

/* ---------------------------------------------------------------- order */

struct sorter {
    const struct lm_exec_result *res;
    const struct plan *pl;
};

static int value_cmp(const struct lm_exec_value *a, const struct lm_exec_value *b)
{
    if (a->type == LM_EXEC_NULL || b->type == LM_EXEC_NULL)
        return (a->type != LM_EXEC_NULL) - (b->type != LM_EXEC_NULL);
    if (a->type == LM_EXEC_TEXT || b->type == LM_EXEC_TEXT) {
        int c = strcmp(a->type == LM_EXEC_TEXT ? a->s : "", b->type == LM_EXEC_TEXT ? b->s : "");
        return (c > 0) - (c < 0);
    }
    if (a->type == LM_EXEC_INT && b->type == LM_EXEC_INT)
        return (a->i > b->i) - (a->i < b->i);
    double x = a->type == LM_EXEC_INT ? (double)a->i : a->d;
    double y = b->type == LM_EXEC_INT ? (double)b->i : b->d;
    return (x > y) - (x < y);
}

static int row_cmp(const struct sorter *s, size_t a, size_t b)
{
    size_t w = s->res->n_columns;
    for (size_t k = 0; k < s->pl->n_order; k++) {
        const struct order_key *o = &s->pl->order[k];
        int c = value_cmp(&s->res->rows[a * w + o->out], &s->res->rows[b * w + o->out]);
        if (c)
            return o->desc ? -c : c;
    }
    return 0;
}

/* Stable merge sort of row numbers. */
static void merge_sort(const struct sorter *s, size_t *v, size_t *tmp, size_t n)
{
    if (n < 2)
        return;
    size_t h = n / 2;
    merge_sort(s, v, tmp, h);
    merge_sort(s, v + h, tmp, n - h);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n)
        tmp[k++] = row_cmp(s, v[j], v[i]) < 0 ? v[j++] : v[i++];
    while (i < h)
        tmp[k++] = v[i++];
    while (j < n)
        tmp[k++] = v[j++];
    memcpy(v, tmp, n * sizeof *v);
}

/* Sorts the table's rows by ORDER BY, stably. */
static int sort_rows(struct run *q)
{
    struct lm_exec_result *res = q->res;
    const struct plan *pl = q->pl;
    size_t w = res->n_columns, n = res->n_rows;
    if (pl->n_order && n > 1) {
        size_t *ord = lm_alloc(n * sizeof *ord), *tmp = lm_alloc(n * sizeof *tmp);
        struct lm_exec_value *sorted = lm_alloc(n * w * sizeof *sorted);
        if (!ord || !tmp || !sorted) {
            lm_free(ord);
            lm_free(tmp);
            lm_free(sorted);
            return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++)
            ord[i] = i;
        struct sorter s = {res, pl};
        merge_sort(&s, ord, tmp, n);
        for (size_t i = 0; i < n; i++)
            memcpy(&sorted[i * w], &res->rows[ord[i] * w], w * sizeof *sorted);
        lm_free(res->rows);
        res->rows = sorted;
        res->store->cap_rows = n;
        lm_free(ord);
        lm_free(tmp);
    }
    return 0;
}

/* ORDER BY, then LIMIT, then dropping the sort-only columns. */
static int finish_table(struct run *q)
{
    struct lm_exec_result *res = q->res;
    const struct plan *pl = q->pl;
    size_t w = res->n_columns;
    if (sort_rows(q))
        return -ENOMEM;
    if (pl->has_limit && res->n_rows > pl->limit)
        res->n_rows = (size_t)pl->limit;
    if (pl->n_hidden) {
        size_t keep = w - pl->n_hidden;
        for (size_t i = 0; i < res->n_rows; i++)
            memmove(&res->rows[i * keep], &res->rows[i * w], keep * sizeof *res->rows);
        res->n_columns = keep;
    }
    return 0;
}

static int cmp_key(const void *pa, const void *pb)
{
    const int64_t *a = pa, *b = pb;
    for (int k = 2; k >= 0; k--)
        if (a[k] != b[k])
            return a[k] < b[k] ? -1 : 1;
    return 0;
}

/* Grouped rows in (cz, cy, cx) order. */
static int emit_groups(struct run *q)
{
    struct groups *g = &q->groups;
    const struct plan *pl = q->pl;
    /* sort (key, group) pairs: 4 int64 each */
    int64_t(*order)[4] = lm_alloc((g->n ? g->n : 1) * sizeof *order);
    if (!order)
        return -ENOMEM;
    for (size_t i = 0; i < g->n; i++) {
        memcpy(order[i], g->key[i], sizeof g->key[i]);
        order[i][3] = (int64_t)i;
    }
    qsort(order, g->n, sizeof *order, cmp_key);
    for (size_t j = 0; j < g->n; j++) {
        struct lm_exec_value *row = lm__result_row(q->res);
        if (!row) {
            lm_free(order);
            return -ENOMEM;
        }
        for (int a = 0; a < 3; a++)
            row[a] = (struct lm_exec_value){LM_EXEC_INT, .i = order[j][a]};
        const struct acc *acc = &g->acc[(size_t)order[j][3] * pl->n_items];
        for (size_t i = 0; i < pl->n_items; i++)
            row[3 + i] = acc_value(&acc[i], &pl->items[i]);
    }
    lm_free(order);
    return 0;
}

static int table_columns(struct lm_exec_result *res, const struct plan *pl)
{
    int rc = 0;
    static const char *const keys[] = {"cx", "cy", "cz"};
    for (size_t k = 0; k < pl->n_keys && !rc; k++)
        rc = lm__result_column(res, keys[k], LM_EXEC_INT);
    for (size_t i = 0; i < pl->n_items && !rc; i++)
        rc = lm__result_column(res, pl->items[i].name, pl->items[i].type);
    for (size_t h = 0; h < pl->n_hidden && !rc; h++)
        rc = lm__result_column(res, pl->f.cols[pl->hidden[h]],
                               lm__column_type(&pl->f, pl->hidden[h]));
    return rc;
}

static int run_plan(struct run *q)
{
    struct plan *pl = q->pl;
    int rc = 0;
    if (pl->aggregate && pl->group == LM_LQL_GROUP_NONE) {
        if (!(q->acc = lm__arena_alloc(&q->ex->tmp, pl->n_items * sizeof *q->acc)))
            return -ENOMEM;
        acc_init(q->acc, pl->n_items);
    }
    switch (pl->path) {
    case PATH_NOTHING: break;
    case PATH_SELECT:
    case PATH_FILTER: rc = src_select(q); break;
    case PATH_STREAM: rc = src_stream(q); break;
    case PATH_AGGREGATE: rc = src_aggregate(q); break;
    case PATH_VOXELS: rc = src_voxels(q); break;
    case PATH_NEAREST: rc = src_nearest(q); break;
    }
    if (rc == STOP)
        rc = 0;
    if (rc || q->each)
        return rc;
    if (pl->group != LM_LQL_GROUP_NONE && pl->path != PATH_VOXELS)
        rc = emit_groups(q);
    else if (pl->aggregate && pl->group == LM_LQL_GROUP_NONE) {
        struct lm_exec_value *row = lm__result_row(q->res);
        if (!row)
            return -ENOMEM;
        for (size_t i = 0; i < pl->n_items; i++)
            row[i] = acc_value(&q->acc[i], &pl->items[i]);
    }
    return rc ? rc : finish_table(q);
}

int lm__exec_select(struct lm__exec *ex, const struct lm_lql_stmt *s,
                    struct lm_exec_result **out)
{
    struct plan pl;
    int rc = plan_select(ex, s, &pl);
    if (rc || ex->plan_only)
        return rc;
    struct run q = {.ex = ex, .pl = &pl};
    if ((rc = lm__result_new(s->kind, &q.res)) || (rc = table_columns(q.res, &pl)) ||
        (rc = run_plan(&q))) {
        lm_exec_result_free(q.res);
        groups_free(&q.groups);
        return rc == -ENOMEM ? oom(ex) : rc;
    }
    groups_free(&q.groups);
    *out = q.res;
    return 0;
}

int lm__exec_select_each(struct lm__exec *ex, const struct lm_lql_stmt *s,
                         lm_exec_columns_fn columns, lm_exec_row_fn fn, void *user)
{
    struct plan pl;
    int rc = plan_select(ex, s, &pl);
    if (rc)
        return rc;
    if (pl.aggregate || pl.group != LM_LQL_GROUP_NONE)
        return lm__exec_fail(ex, LM_EBADARG, s->pos,
                             "rows one by one come only from a SELECT without aggregates");
    struct run q = {.ex = ex, .pl = &pl};
    if ((rc = lm__result_new(s->kind, &q.res)) || (rc = table_columns(q.res, &pl)))
        goto done;
    if (columns && (rc = columns(q.res->columns, pl.n_items, user)))
        goto done;
    if (!pl.n_order) { /* straight from the engine to fn */
        q.each = fn;
        q.user = user;
        if (!(q.rowbuf = lm__arena_alloc(&ex->tmp, (pl.n_items + pl.n_hidden + 1) *
                                                       sizeof *q.rowbuf)))
            rc = -ENOMEM;
        else
            rc = run_plan(&q);
        goto done;
    }
    if ((rc = run_plan(&q)))
        goto done;
    for (size_t i = 0; i < q.res->n_rows && !rc; i++)
        rc = fn(&q.res->rows[i * q.res->n_columns], q.res->n_columns, user);
done:
    lm_exec_result_free(q.res);
    return rc == -ENOMEM ? oom(ex) : rc;
}

/* ---------------------------------------------------------------- EXPLAIN */

int lm__explain_select(struct lm__exec *ex, const struct lm_lql_stmt *s,
                       struct lm_exec_result *r)
{
    struct plan pl;
    int rc = plan_select(ex, s, &pl);
    if (rc)
        return rc;
    char sel[1024];
    lm__selection_text(&pl.f, &pl.push.sel, sel, sizeof sel);
    const char *kernel = lm_scan_best()->name;
    double est = 0;
    bool walk = pl.path != PATH_NOTHING && pl.path != PATH_VOXELS;
    switch (pl.path) {
    case PATH_NOTHING:
        rc = lm__explain_line(r, "where", "matches no sample (its boxes do not meet): no "
                                          "engine call");
        break;
    case PATH_SELECT:
        rc = lm__explain_line(r, "where", "pushed down whole: %s", sel);
        if (!rc)
            rc = lm__explain_line(r, "access", "lm_select%s: octree walk; chunks inside the "
                                               "region scanned, partial ones searched",
                                  pl.has_limit && !pl.n_order ? " with LIMIT pushed down" : "");
        break;
    case PATH_FILTER:
    case PATH_STREAM:
        rc = lm__explain_line(r, "where", "candidates: %s; then the whole WHERE per sample",
                              sel);
        if (!rc)
            rc = lm__explain_line(r, "access", pl.path == PATH_FILTER
                                                   ? "lm_select on the candidates"
                                                   : "chunk stream (lm_chunks_each) over the "
                                                     "candidates, no copy of the samples");
        break;
    case PATH_AGGREGATE:
        rc = lm__explain_line(r, "where", "pushed down whole: %s", sel);
        if (!rc)
            rc = lm__explain_line(r, "access", "lm_aggregate, one call per column");
        break;
    case PATH_VOXELS:
        rc = lm__explain_line(r, "access",
                              "lm_voxels_query level %u: stored voxel aggregates%s", pl.level,
                              pl.level > pl.f.log2_edge ? " from the octree LOD pyramid"
                                                        : " (dense bricks), no sample read");
        if (!rc)
            rc = lm__explain_line(r, "index", "octree LOD");
        struct lm_field_info full; /* the voxel count is counted chunk by chunk */
        if (lm_field_info(ex->db, pl.f.name, &full, NULL) == 0)
            est = fmax(1.0, (double)full.n_voxels / pow(8.0, pl.level));
        break;
    case PATH_NEAREST:
        rc = lm__explain_line(r, "where", "%s%s",
                              pl.push.sel.n_filters ? "filters passed to lm_nearest; " : "",
                              pl.residual ? "the whole WHERE per sample, asking for more "
                                            "neighbours until k pass"
                                          : "no per-sample check");
        if (!rc)
            rc = lm__explain_line(r, "access",
                                  "lm_nearest k = %llu: best-first octree walk by box "
                                  "distance%s",
                                  (unsigned long long)pl.k,
                                  pl.max_dist > 0 ? ", bounded by the region" : "");
        if (!rc)
            rc = lm__explain_line(r, "index", "kd-tree per chunk (sorted rows), scan of "
                                              "unsorted tails");
        break;
    }
    if (!rc && walk && pl.path != PATH_NEAREST)
        rc = lm__explain_access(ex, &pl.f, &pl.push.sel, pl.residual ? pl.where : NULL, r,
                                &est);
    if (!rc && walk && pl.path != PATH_NEAREST) {
        bool kernels = true;
        for (uint32_t i = 0; i < pl.push.sel.n_filters; i++)
            if (pl.push.sel.filters[i].column >= LM_COL_DX &&
                pl.push.sel.filters[i].column <= LM_COL_B)
                kernels = false;
        rc = lm__explain_line(r, "kernel", kernels ? "%s scan kernel"
                                                   : "row by row (colour and direction "
                                                     "filters decode each sample); %s kernel "
                                                     "unused",
                              kernel);
    }
    if (!rc && pl.path == PATH_NEAREST)
        est = (double)pl.k;
    if (!rc && pl.group != LM_LQL_GROUP_NONE && pl.path != PATH_VOXELS)
        rc = lm__explain_line(r, "group", "hash of cells of 2^%u voxels per edge, sorted by "
                                          "(cz, cy, cx)", pl.level);
    if (!rc && pl.aggregate && pl.group == LM_LQL_GROUP_NONE)
        est = 1;
    if (!rc && pl.n_order)
        rc = lm__explain_line(r, "order", "stable sort on %zu key%s", pl.n_order,
                              pl.n_order == 1 ? "" : "s");
    if (!rc && pl.has_limit && est > (double)pl.limit)
        est = (double)pl.limit;
    if (!rc)
        rc = lm__explain_line(r, "rows", "about %.0f", est);
    return rc;
}
