/* query.c - read queries over a field. */
#include "query.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "device.h"
#include "kdtree.h"
#include "region.h"
#include "scan.h"
#include "sh.h"

/* ---------------------------------------------------------------- rows */

/* A result lives in one allocation: the struct, then every column at 8-byte aligned
 * offsets. Growing copies into a block twice the size; freeing is one lm_free. */
struct rows_buf {
    struct lm_rows *r;
    size_t cap;
    bool distance;
    uint32_t user_size[LM_MAX_USER_COLUMNS];
};

static size_t align8(size_t v) { return (v + 7) & ~(size_t)7; }

static size_t rows_block_size(const struct rows_buf *b, size_t cap)
{
    size_t bytes = align8(sizeof(struct lm_rows)) + align8(cap * 8) + 10 * align8(cap * 4) +
                   (b->distance ? align8(cap * 4) : 0);
    for (uint32_t u = 0; u < b->r->n_user; u++)
        bytes += align8(cap * b->user_size[u]);
    return bytes;
}

static int rows_begin(struct rows_buf *b, const struct lm_schema *s, bool with_distance)
{
    memset(b, 0, sizeof *b);
    b->distance = with_distance;
    b->r = lm_calloc(1, sizeof *b->r);
    if (!b->r)
        return -ENOMEM;
    b->r->n_user = s->n_user;
    for (uint32_t u = 0; u < s->n_user; u++) {
        b->r->user_type[u] = s->user_type[u];
        b->user_size[u] = (uint32_t)lm__type_size(s->user_type[u]);
    }
    return 0;
}

static int rows_reserve(struct rows_buf *b, size_t extra)
{
    struct lm_rows *old = b->r;
    if (old->n + extra <= b->cap && b->cap)
        return 0;
    size_t cap = b->cap ? b->cap * 2 : 16;
    while (cap < old->n + extra)
        cap *= 2;
    uint8_t *blk = lm_alloc(rows_block_size(b, cap));
    if (!blk)
        return -ENOMEM;
    struct lm_rows *r = (struct lm_rows *)blk;
    *r = *old;
    uint8_t *p = blk + align8(sizeof *r);
    size_t n = old->n;
#define PLACE(field, size)                                                       \
    do {                                                                         \
        void *dst = p;                                                           \
        if (n)                                                                   \
            memcpy(dst, old->field, n * (size));                                 \
        memcpy(&r->field, &dst, sizeof dst);                                     \
        p += align8(cap * (size));                                               \
    } while (0)
    PLACE(t, 8);
    PLACE(x, 4);
    PLACE(y, 4);
    PLACE(z, 4);
    PLACE(dx, 4);
    PLACE(dy, 4);
    PLACE(dz, 4);
    PLACE(r, 4);
    PLACE(g, 4);
    PLACE(b, 4);
    PLACE(intensity, 4);
    if (b->distance)
        PLACE(distance, 4);
    for (uint32_t u = 0; u < r->n_user; u++)
        PLACE(user[u], b->user_size[u]);
#undef PLACE
    lm_free(old);
    b->r = r;
    b->cap = cap;
    return 0;
}

/* Appends row i of chunk c; room must be reserved. */
static void rows_put(struct rows_buf *b, const struct lm_chunk *c, uint32_t i, float dist)
{
    struct lm_rows *r = b->r;
    size_t o = r->n++;
    float d[3];
    lm_dir_decode(&c->dir[2 * i], d);
    r->x[o] = c->x[i];
    r->y[o] = c->y[i];
    r->z[o] = c->z[i];
    r->dx[o] = d[0];
    r->dy[o] = d[1];
    r->dz[o] = d[2];
    r->r[o] = (float)c->r[i] * (1.0f / 255.0f);
    r->g[o] = (float)c->g[i] * (1.0f / 255.0f);
    r->b[o] = (float)c->b[i] * (1.0f / 255.0f);
    r->intensity[o] = c->intensity[i];
    r->t[o] = c->t[i];
    for (uint32_t u = 0; u < r->n_user; u++)
        memcpy((uint8_t *)r->user[u] + o * b->user_size[u],
               (const uint8_t *)c->user[u] + (size_t)i * b->user_size[u], b->user_size[u]);
    if (r->distance)
        r->distance[o] = dist;
}

/* Starts the loads of row i's columns other than x, y, z (which the search just read):
 * rows picked by a search sit far apart, and each column of each row is a cache miss
 * that rows_put would otherwise wait for one after another. */
static void rows_prefetch(const struct lm_chunk *c, uint32_t i)
{
    __builtin_prefetch(&c->dir[2 * (size_t)i]);
    __builtin_prefetch(&c->r[i]);
    __builtin_prefetch(&c->g[i]);
    __builtin_prefetch(&c->b[i]);
    __builtin_prefetch(&c->intensity[i]);
    __builtin_prefetch(&c->t[i]);
}

void lm_rows_free(struct lm_rows *r)
{
    lm_free(r); /* one block: see struct rows_buf */
}

double lm_rows_value(const struct lm_rows *r, int column, size_t i)
{
    if (!r || i >= r->n)
        return 0.0;
    switch (column) {
    case LM_COL_X: return r->x[i];
    case LM_COL_Y: return r->y[i];
    case LM_COL_Z: return r->z[i];
    case LM_COL_DX: return r->dx[i];
    case LM_COL_DY: return r->dy[i];
    case LM_COL_DZ: return r->dz[i];
    case LM_COL_R: return r->r[i];
    case LM_COL_G: return r->g[i];
    case LM_COL_B: return r->b[i];
    case LM_COL_INTENSITY: return r->intensity[i];
    case LM_COL_T: return (double)r->t[i];
    default: break;
    }
    uint32_t u = (uint32_t)(column - LM_COL_USER);
    if (column < LM_COL_USER || u >= r->n_user)
        return 0.0;
    switch (r->user_type[u]) {
    case LM_TYPE_F32: return ((const float *)r->user[u])[i];
    case LM_TYPE_I32: return ((const int32_t *)r->user[u])[i];
    case LM_TYPE_U8: return ((const uint8_t *)r->user[u])[i];
    }
    return 0.0;
}

/* ---------------------------------------------------------------- select */

struct select_ctx {
    const struct lm_field *f;
    const struct lm_selection *sel;
    struct rows_buf buf;
    uint32_t *idx;
    uint32_t idx_cap;
    size_t limit;
};

/* Grows the shared row-index scratch to hold a chunk. */
static int scratch(uint32_t **idx, uint32_t *cap, uint32_t n)
{
    if (n <= *cap)
        return 0;
    uint32_t *p = lm_realloc(*idx, (size_t)n * sizeof *p);
    if (!p)
        return -ENOMEM;
    *idx = p;
    *cap = n;
    return 0;
}

static int select_leaf(struct lm__onode *leaf, int overlap, void *ctx)
{
    struct select_ctx *q = ctx;
    const struct lm_chunk *c = leaf->chunk;
    if (scratch(&q->idx, &q->idx_cap, c->n))
        return -ENOMEM;
    uint32_t m = lm__chunk_select(c, &q->f->schema, q->sel, overlap, q->idx);
    if (q->limit && q->buf.r->n + m > q->limit)
        m = (uint32_t)(q->limit - q->buf.r->n);
    if (rows_reserve(&q->buf, m))
        return -ENOMEM;
    for (uint32_t j = 0; j < m; j++)
        rows_put(&q->buf, c, q->idx[j], 0.0f);
    return q->limit && q->buf.r->n >= q->limit ? 1 : 0;
}

int lm__query_select(const struct lm_field *f, const struct lm_selection *sel, size_t limit,
                     struct lm_rows **out)
{
    struct select_ctx q = {.f = f, .sel = sel, .limit = limit};
    int rc = rows_begin(&q.buf, &f->schema, false);
    if (!rc)
        rc = lm__field_walk(f, sel ? &sel->region : NULL, select_leaf, &q);
    lm_free(q.idx);
    if (rc < 0) {
        lm_rows_free(q.buf.r);
        return rc;
    }
    *out = q.buf.r;
    return 0;
}

/* ---------------------------------------------------------------- nearest */

struct pq_item {
    float d2;
    struct lm__onode *node;
};

struct pq {
    struct pq_item *v;
    size_t n, cap;
    bool on_stack;
};

static int pq_push(struct pq *q, float d2, struct lm__onode *node)
{
    if (q->n == q->cap) {
        /* starts in the caller's stack array (on_stack), moves to the heap if it grows */
        size_t cap = q->cap * 2;
        struct pq_item *v = lm_alloc(cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        memcpy(v, q->v, q->n * sizeof *v);
        if (!q->on_stack)
            lm_free(q->v);
        q->on_stack = false;
        q->v = v;
        q->cap = cap;
    }
    size_t i = q->n++;
    while (i && q->v[(i - 1) / 2].d2 > d2) {
        q->v[i] = q->v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    q->v[i] = (struct pq_item){d2, node};
    return 0;
}

static struct pq_item pq_pop(struct pq *q)
{
    struct pq_item top = q->v[0], last = q->v[--q->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= q->n)
            break;
        if (c + 1 < q->n && q->v[c + 1].d2 < q->v[c].d2)
            c++;
        if (q->v[c].d2 >= last.d2)
            break;
        q->v[i] = q->v[c];
        i = c;
    }
    if (q->n)
        q->v[i] = last;
    return top;
}

struct accept_ctx {
    const struct lm_chunk *c;
    const struct lm_schema *s;
    const struct lm_selection *sel;
};

static bool accept_row(void *ctx, uint32_t i)
{
    const struct accept_ctx *a = ctx;
    return lm__row_passes_filters(a->c, a->s, a->sel, i);
}

int lm__query_nearest(const struct lm_field *f, const float p[3], size_t k, float max_dist,
                      const struct lm_selection *filters, struct lm_rows **out)
{
    struct rows_buf buf;
    struct pq_item pq_stack[64];
    struct pq pq = {pq_stack, 0, 64, true};
    /* small k (the common case) needs no allocation for the heap */
    float heap_d2[64];
    uint64_t heap_id[64];
    struct lm_knn_heap heap = {0};
    bool heap_on_stack = false;
    const struct lm_chunk *visited_stack[64];
    const struct lm_chunk **visited = visited_stack;
    size_t n_visited = 0, visited_cap = 64;
    bool filtered = filters && filters->n_filters;
    float max_d2 = max_dist > 0.0f ? max_dist * max_dist : INFINITY;
    int rc = rows_begin(&buf, &f->schema, true);
    if (rc)
        return rc;
    if (k == 0 || !f->tree.root)
        goto done;
    if (k > UINT32_MAX / 2)
        k = UINT32_MAX / 2;
    if (k <= 64) {
        heap = (struct lm_knn_heap){(uint32_t)k, 0, heap_d2, heap_id};
        heap_on_stack = true;
    } else if ((rc = lm_knn_heap_init(&heap, (uint32_t)k))) {
        goto done;
    }
    if ((rc = pq_push(&pq, lm__box_dist2(p, f->tree.root->bmin, f->tree.root->bmax),
                      f->tree.root)))
        goto done;
    /* Best-first over octree nodes by box distance; stop when the nearest box left is
     * farther than the k-th best so far. */
    while (pq.n) {
        struct pq_item it = pq_pop(&pq);
        float bound = lm_knn_heap_bound(&heap);
        if (it.d2 > bound || it.d2 > max_d2)
            break;
        struct lm__onode *n = it.node;
        if (!n->chunk) {
            for (int i = 0; i < 8; i++) {
                struct lm__onode *ch = n->child[i];
                if (!ch)
                    continue;
                float d2 = lm__box_dist2(p, ch->bmin, ch->bmax);
                if (d2 <= bound && d2 <= max_d2 && (rc = pq_push(&pq, d2, ch)))
                    goto done;
            }
            continue;
        }
        const struct lm_chunk *c = n->chunk;
        if (n_visited == visited_cap) {
            size_t cap = visited_cap * 2;
            const struct lm_chunk **v = lm_alloc(cap * sizeof *v);
            if (!v) {
                rc = -ENOMEM;
                goto done;
            }
            memcpy(v, visited, n_visited * sizeof *v);
            if (visited != visited_stack)
                lm_free(visited);
            visited = v;
            visited_cap = cap;
        }
        uint64_t tag = (uint64_t)n_visited << 32;
        visited[n_visited++] = c;
        struct accept_ctx ac = {c, &f->schema, filters};
        const lm_kdtree *kd = lm__chunk_index(c);
        if (kd)
            lm_kdtree_knn(kd, c->x, c->y, c->z, p, tag, max_d2, filtered ? accept_row : NULL,
                          &ac, &heap);
        for (uint32_t i = kd ? c->n_sorted : 0; i < c->n; i++) {
            float dx = c->x[i] - p[0], dy = c->y[i] - p[1], dz = c->z[i] - p[2];
            float d2 = dx * dx + dy * dy + dz * dz;
            if (d2 > max_d2 || d2 > lm_knn_heap_bound(&heap))
                continue;
            if (filtered && !accept_row(&ac, i))
                continue;
            lm_knn_heap_push(&heap, d2, tag | i);
        }
    }
    lm_knn_heap_sort(&heap);
    for (uint32_t j = 0; j < heap.n; j++)
        rows_prefetch(visited[heap.id[j] >> 32], (uint32_t)heap.id[j]);
    if ((rc = rows_reserve(&buf, heap.n)))
        goto done;
    for (uint32_t j = 0; j < heap.n; j++)
        rows_put(&buf, visited[heap.id[j] >> 32], (uint32_t)heap.id[j], sqrtf(heap.d2[j]));
done:
    if (!heap_on_stack)
        lm_knn_heap_free(&heap);
    if (!pq.on_stack)
        lm_free(pq.v);
    if (visited != visited_stack)
        lm_free(visited);
    if (rc) {
        lm_rows_free(buf.r);
        return rc;
    }
    *out = buf.r;
    return 0;
}

/* ---------------------------------------------------------------- aggregate */

struct agg_ctx {
    const struct lm_field *f;
    const struct lm_selection *sel;
    int column;
    uint32_t *idx;
    uint32_t idx_cap;
    struct lm_aggregate a;
};

/* The column as the scan kernels see it, when they can aggregate it exactly. */
static bool scan_column(const struct lm_chunk *c, const struct lm_schema *s, int column,
                        const void **col, enum lm_scan_type *type)
{
    *type = LM_SCAN_F32;
    switch (column) {
    case LM_COL_X: *col = c->x; return true;
    case LM_COL_Y: *col = c->y; return true;
    case LM_COL_Z: *col = c->z; return true;
    case LM_COL_INTENSITY: *col = c->intensity; return true;
    case LM_COL_T: *col = c->t; *type = LM_SCAN_I64; return true;
    default:
        if (column < LM_COL_USER)
            return false;
        *col = c->user[column - LM_COL_USER];
        *type = (enum lm_scan_type)s->user_type[column - LM_COL_USER];
        return true;
    }
}

static int agg_leaf(struct lm__onode *leaf, int overlap, void *ctx)
{
    struct agg_ctx *q = ctx;
    const struct lm_chunk *c = leaf->chunk;
    const struct lm_schema *s = &q->f->schema;
    struct lm_scan_plan plan;
    const void *col;
    enum lm_scan_type type;
    /* Whole chunks and large overlaps stream through the SIMD kernels. */
    if ((overlap == LM__INSIDE || !q->sel || q->sel->region.kind == LM_REGION_ALL ||
         q->sel->region.kind != LM_REGION_FRUSTUM) &&
        scan_column(c, s, q->column, &col, &type) &&
        lm__chunk_scan_plan(c, s, q->sel, overlap, &plan)) {
        struct lm_scan_agg a;
        lm_scan_aggregate(lm_device_scan_table(c->n), &plan, col, type, &a);
        if (a.count) {
            if (!q->a.count || a.min < q->a.min)
                q->a.min = a.min;
            if (!q->a.count || a.max > q->a.max)
                q->a.max = a.max;
            q->a.sum += a.sum;
            q->a.count += a.count;
        }
        return 0;
    }
    if (scratch(&q->idx, &q->idx_cap, c->n))
        return -ENOMEM;
    uint32_t m = lm__chunk_select(c, &q->f->schema, q->sel, overlap, q->idx);
    for (uint32_t j = 0; j < m; j++) {
        double v = lm__chunk_value(c, &q->f->schema, q->column, q->idx[j]);
        if (!q->a.count || v < q->a.min)
            q->a.min = v;
        if (!q->a.count || v > q->a.max)
            q->a.max = v;
        q->a.sum += v;
        q->a.count++;
    }
    return 0;
}

int lm__query_aggregate(const struct lm_field *f, const struct lm_selection *sel, int column,
                        struct lm_aggregate *out)
{
    struct agg_ctx q = {.f = f, .sel = sel, .column = column};
    int rc = lm__field_walk(f, sel ? &sel->region : NULL, agg_leaf, &q);
    lm_free(q.idx);
    if (rc)
        return rc;
    if (q.a.count)
        q.a.avg = q.a.sum / (double)q.a.count;
    *out = q.a;
    return 0;
}

const char *lm_kernel_paths(void) { return lm_device_trace_take(); }

/* ---------------------------------------------------------------- voxels and LOD */

struct vox_buf {
    struct lm_voxels *v;
    size_t cap;
};

static struct lm_voxel *vox_push(struct vox_buf *b)
{
    if (b->v->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        struct lm_voxel *p = lm_realloc(b->v->v, cap * sizeof *p);
        if (!p)
            return NULL;
        b->v->v = p;
        b->cap = cap;
    }
    struct lm_voxel *o = &b->v->v[b->v->n++];
    memset(o, 0, sizeof *o);
    return o;
}

static void voxel_from_agg(struct lm_voxel *o, const struct lm__voxel_agg *a)
{
    o->count = a->count;
    float inv = a->count ? 1.0f / (float)a->count : 0.0f;
    o->mean_r = a->sum_r * inv;
    o->mean_g = a->sum_g * inv;
    o->mean_b = a->sum_b * inv;
    o->sum_intensity = a->sum_i;
    memcpy(o->sh, a->sh, sizeof o->sh);
}

/* Does the cell [coord, coord+1) * size meet the region? */
static bool cell_meets(const struct lm_region *r, const int32_t coord[3], float size)
{
    float lo[3], hi[3];
    for (int a = 0; a < 3; a++) {
        lo[a] = (float)((double)coord[a] * size);
        hi[a] = (float)(((double)coord[a] + 1.0) * size);
    }
    return lm__region_classify(r, lo, hi) != LM__OUTSIDE;
}

struct voxq {
    const struct lm_field *f;
    const struct lm_region *region;
    uint32_t level;
    struct vox_buf out;
    struct lm__voxel_agg *cells; /* dense per-chunk scratch for 0 < level <= log2 edge */
    size_t cells_cap;
};

static int voxels_leaf(struct lm__onode *leaf, int overlap, void *ctx)
{
    (void)overlap;
    struct voxq *q = ctx;
    const struct lm_chunk *c = leaf->chunk;
    const struct lm_schema *s = &q->f->schema;
    uint32_t side = s->edge >> q->level, L = q->level;
    float cell = s->voxel_size * (float)(1u << L);
    size_t ncell = (size_t)side * side * side;
    if (L && ncell > q->cells_cap) {
        struct lm__voxel_agg *p = lm_realloc(q->cells, ncell * sizeof *p);
        if (!p)
            return -ENOMEM;
        q->cells = p;
        q->cells_cap = ncell;
    }
    if (L)
        memset(q->cells, 0, ncell * sizeof *q->cells);
    for (uint32_t bi = 0, nb = lm__chunk_n_bricks(s); bi < nb; bi++)
    for (uint32_t j = 0; c->bricks[bi] && j < c->bricks[bi]->n; j++) {
        const struct lm__voxel_agg *a = &c->bricks[bi]->agg[j];
        uint32_t k = a->key - 1, lx = k & 255, ly = (k >> 8) & 255, lz = k >> 16;
        if (!L) {
            int32_t coord[3] = {c->coord[0] * (int32_t)s->edge + (int32_t)lx,
                                c->coord[1] * (int32_t)s->edge + (int32_t)ly,
                                c->coord[2] * (int32_t)s->edge + (int32_t)lz};
            if (!cell_meets(q->region, coord, cell))
                continue;
            struct lm_voxel *o = vox_push(&q->out);
            if (!o)
                return -ENOMEM;
            memcpy(o->coord, coord, sizeof coord);
            voxel_from_agg(o, a);
            continue;
        }
        struct lm__voxel_agg *d =
            &q->cells[((size_t)(lz >> L) * side + (ly >> L)) * side + (lx >> L)];
        d->count += a->count;
        d->sum_r += a->sum_r;
        d->sum_g += a->sum_g;
        d->sum_b += a->sum_b;
        d->sum_i += a->sum_i;
        for (int ch = 0; ch < 3; ch++)
            for (int k2 = 0; k2 < 4; k2++)
                d->sh[ch][k2] += a->sh[ch][k2];
    }
    for (size_t j = 0; L && j < ncell; j++) {
        if (!q->cells[j].count)
            continue;
        int32_t coord[3] = {c->coord[0] * (int32_t)side + (int32_t)(j % side),
                            c->coord[1] * (int32_t)side + (int32_t)(j / side % side),
                            c->coord[2] * (int32_t)side + (int32_t)(j / side / side)};
        if (!cell_meets(q->region, coord, cell))
            continue;
        struct lm_voxel *o = vox_push(&q->out);
        if (!o)
            return -ENOMEM;
        memcpy(o->coord, coord, sizeof coord);
        voxel_from_agg(o, &q->cells[j]);
    }
    return 0;
}

/* Cells above the chunk level are octree nodes. */
static int voxels_nodes(struct voxq *q, const struct lm__onode *n, uint32_t node_level)
{
    if (!n->count || lm__region_classify(q->region, n->bmin, n->bmax) == LM__OUTSIDE)
        return 0;
    if (n->level > node_level) {
        for (int i = 0; i < 8; i++)
            if (n->child[i]) {
                int rc = voxels_nodes(q, n->child[i], node_level);
                if (rc)
                    return rc;
            }
        return 0;
    }
    struct lm_voxel *o = vox_push(&q->out);
    if (!o)
        return -ENOMEM;
    lm__onode_coord(n, o->coord);
    o->count = (uint32_t)(n->count > UINT32_MAX ? UINT32_MAX : n->count);
    double inv = 1.0 / (double)n->count;
    o->mean_r = (float)(n->sum_r * inv);
    o->mean_g = (float)(n->sum_g * inv);
    o->mean_b = (float)(n->sum_b * inv);
    o->sum_intensity = (float)n->sum_i;
    for (int ch = 0; ch < 3; ch++)
        for (int j = 0; j < 4; j++)
            o->sh[ch][j] = (float)n->sh[ch][j];
    return 0;
}

static int cmp_voxel(const void *pa, const void *pb)
{
    const struct lm_voxel *a = pa, *b = pb;
    for (int k = 2; k >= 0; k--)
        if (a->coord[k] != b->coord[k])
            return a->coord[k] < b->coord[k] ? -1 : 1;
    return 0;
}

int lm__query_voxels(const struct lm_field *f, const struct lm_region *region, uint32_t level,
                     struct lm_voxels **out)
{
    static const struct lm_region all = {.kind = LM_REGION_ALL};
    struct voxq q = {.f = f, .region = region ? region : &all, .level = level};
    q.out.v = lm_calloc(1, sizeof *q.out.v);
    if (!q.out.v)
        return -ENOMEM;
    q.out.v->level = level;
    q.out.v->cell_size = f->schema.voxel_size * (float)ldexp(1.0, (int)level);
    int rc = 0;
    if (level <= f->schema.log2_edge)
        rc = lm__field_walk(f, q.region, voxels_leaf, &q);
    else if (f->tree.root)
        rc = voxels_nodes(&q, f->tree.root, level - f->schema.log2_edge);
    lm_free(q.cells);
    if (rc) {
        lm_voxels_free(q.out.v);
        return rc;
    }
    if (q.out.v->n)
        qsort(q.out.v->v, q.out.v->n, sizeof *q.out.v->v, cmp_voxel);
    *out = q.out.v;
    return 0;
}

void lm_voxels_free(struct lm_voxels *v)
{
    if (!v)
        return;
    lm_free(v->v);
    lm_free(v);
}

const struct lm__voxel_agg *lm__voxel_seek(struct lm__voxel_seek *k, const int32_t coord[3])
{
    const struct lm_schema *s = &k->f->schema;
    int32_t cc[3] = {coord[0] >> s->log2_edge, coord[1] >> s->log2_edge,
                     coord[2] >> s->log2_edge};
    /* Neighbouring lookups share a brick: keep the last one (bricks are LM_BRICK wide
     * whenever the chunk is at least that big). */
    if (s->edge >= LM_BRICK && k->brick_valid && (coord[0] >> 3) == k->brick_key[0] &&
        (coord[1] >> 3) == k->brick_key[1] && (coord[2] >> 3) == k->brick_key[2]) {
        if (!k->brick)
            return NULL;
        uint16_t slot = k->brick->slot[(coord[0] & 7) | (coord[1] & 7) << 3 | (coord[2] & 7) << 6];
        return slot ? &k->brick->agg[slot - 1] : NULL;
    }
    if (!k->valid || cc[0] != k->last[0] || cc[1] != k->last[1] || cc[2] != k->last[2]) {
        const struct lm__onode *leaf = lm__octree_find(&k->f->tree, cc);
        k->chunk = leaf ? leaf->chunk : NULL;
        memcpy(k->last, cc, sizeof cc);
        k->valid = true;
    }
    k->brick_valid = false;
    if (!k->chunk)
        return NULL;
    uint32_t mask = s->edge - 1;
    if (s->edge >= LM_BRICK) {
        uint32_t nb = k->chunk->bricks_side;
        uint32_t bi = ((uint32_t)coord[0] & mask) / LM_BRICK +
                      (((uint32_t)coord[1] & mask) / LM_BRICK +
                       ((uint32_t)coord[2] & mask) / LM_BRICK * nb) * nb;
        k->brick = k->chunk->bricks[bi];
        k->brick_key[0] = coord[0] >> 3;
        k->brick_key[1] = coord[1] >> 3;
        k->brick_key[2] = coord[2] >> 3;
        k->brick_valid = true;
    }
    return lm__chunk_voxel(k->chunk, (uint32_t)coord[0] & mask, (uint32_t)coord[1] & mask,
                           (uint32_t)coord[2] & mask);
}

void lm__voxel_fill(struct lm_voxel *out, const int32_t coord[3], const struct lm__voxel_agg *a)
{
    memcpy(out->coord, coord, sizeof out->coord);
    voxel_from_agg(out, a);
}

static const struct lm__voxel_agg *find_voxel(const struct lm_field *f, const int64_t v[3])
{
    const struct lm_schema *s = &f->schema;
    int32_t cc[3];
    uint32_t local[3];
    for (int a = 0; a < 3; a++) {
        if (v[a] < -((int64_t)1 << 62) || v[a] > ((int64_t)1 << 62))
            return NULL;
        int64_t ch = v[a] >> s->log2_edge;
        if (ch < INT32_MIN || ch > INT32_MAX)
            return NULL;
        cc[a] = (int32_t)ch;
        local[a] = (uint32_t)(v[a] - (ch * (int64_t)s->edge));
    }
    const struct lm__onode *leaf = lm__octree_find(&f->tree, cc);
    return leaf ? lm__chunk_voxel(leaf->chunk, local[0], local[1], local[2]) : NULL;
}

int lm__query_voxel_get(const struct lm_field *f, const int32_t coord[3], struct lm_voxel *out)
{
    const int64_t v[3] = {coord[0], coord[1], coord[2]};
    const struct lm__voxel_agg *a = find_voxel(f, v);
    if (!a)
        return LM_ENOTFOUND;
    memset(out, 0, sizeof *out);
    memcpy(out->coord, coord, sizeof out->coord);
    voxel_from_agg(out, a);
    return 0;
}

/* ---------------------------------------------------------------- radiance */

static void agg_radiance(const struct lm__voxel_agg *a, const float d[3], float rgb[3])
{
    for (int ch = 0; ch < 3; ch++)
        rgb[ch] = lm_sh_eval(a->sh[ch], a->count, d);
}

int lm__query_radiance(const struct lm_field *f, const float p[3], const float dir[3],
                       float rgb[3], float *weight)
{
    /* Voxel centres sit at (v + 0.5) * size: interpolate between the 8 around p. */
    double u[3], fr[3];
    int64_t base[3];
    for (int a = 0; a < 3; a++) {
        u[a] = (double)p[a] * f->schema.inv_voxel - 0.5;
        base[a] = (int64_t)floor(u[a]);
        fr[a] = u[a] - (double)base[a];
    }
    double acc[3] = {0, 0, 0}, wsum = 0;
    for (int corner = 0; corner < 8; corner++) {
        int64_t v[3];
        double w = 1.0;
        for (int a = 0; a < 3; a++) {
            int bit = (corner >> a) & 1;
            v[a] = base[a] + bit;
            w *= bit ? fr[a] : 1.0 - fr[a];
        }
        if (w <= 0.0)
            continue;
        const struct lm__voxel_agg *agg = find_voxel(f, v);
        if (!agg)
            continue;
        float l[3];
        agg_radiance(agg, dir, l);
        for (int ch = 0; ch < 3; ch++)
            acc[ch] += w * l[ch];
        wsum += w;
    }
    if (wsum <= 0.0)
        return LM_ENOTFOUND;
    for (int ch = 0; ch < 3; ch++)
        rgb[ch] = (float)(acc[ch] / wsum);
    if (weight)
        *weight = (float)wsum;
    return 0;
}

/* ---------------------------------------------------------------- ray cast */

/* Amanatides-Woo stepping through cells of `size` from distance t0. Positions are
 * computed in double so that long rays do not drift. */
struct dda {
    int64_t cell[3];
    int step[3];
    double t_next[3], t_delta[3];
    double t; /* distance at which the current cell was entered */
};

static void dda_init(struct dda *d, const double o[3], const double dir[3], double size,
                     double t0, const int64_t *lo, const int64_t *hi)
{
    d->t = t0;
    for (int a = 0; a < 3; a++) {
        double pos = (o[a] + dir[a] * t0) / size;
        d->cell[a] = (int64_t)floor(pos);
        /* An entry point on a cell boundary may round into the neighbour: clamp it to
         * the cells the caller knows the ray is in, before deriving the crossings. */
        if (lo && d->cell[a] < lo[a])
            d->cell[a] = lo[a];
        if (hi && d->cell[a] > hi[a])
            d->cell[a] = hi[a];
        if (dir[a] > 0) {
            d->step[a] = 1;
            d->t_delta[a] = size / dir[a];
            d->t_next[a] = ((double)(d->cell[a] + 1) * size - o[a]) / dir[a];
        } else if (dir[a] < 0) {
            d->step[a] = -1;
            d->t_delta[a] = -size / dir[a];
            d->t_next[a] = ((double)d->cell[a] * size - o[a]) / dir[a];
        } else {
            d->step[a] = 0;
            d->t_delta[a] = INFINITY;
            d->t_next[a] = INFINITY;
        }
        if (d->t_next[a] < t0) /* rounding at a boundary */
            d->t_next[a] = t0;
    }
}

/* Distance at which the current cell is left. */
static double dda_exit(const struct dda *d)
{
    double m = d->t_next[0];
    if (d->t_next[1] < m)
        m = d->t_next[1];
    if (d->t_next[2] < m)
        m = d->t_next[2];
    return m;
}

static void dda_step(struct dda *d)
{
    int a = 0;
    if (d->t_next[1] < d->t_next[a])
        a = 1;
    if (d->t_next[2] < d->t_next[a])
        a = 2;
    d->t = d->t_next[a];
    d->cell[a] += d->step[a];
    d->t_next[a] += d->t_delta[a];
}

struct hit_buf {
    struct lm_ray_hit *v;
    const struct lm_chunk **chunk;
    size_t n, cap;
};

static int hit_push(struct hit_buf *b, const struct lm_ray_hit *h, const struct lm_chunk *c)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        struct lm_ray_hit *v = lm_realloc(b->v, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        b->v = v;
        const struct lm_chunk **cv = lm_realloc(b->chunk, cap * sizeof *cv);
        if (!cv)
            return -ENOMEM;
        b->chunk = cv;
        b->cap = cap;
    }
    b->v[b->n] = *h;
    b->chunk[b->n++] = c;
    return 0;
}

struct ray_row {
    float along;
    const struct lm_chunk *c;
    uint32_t i;
};

static int cmp_ray_row(const void *pa, const void *pb)
{
    const struct ray_row *a = pa, *b = pb;
    if (a->along != b->along)
        return a->along < b->along ? -1 : 1;
    if (a->c != b->c)
        return a->c < b->c ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

/* Samples of the hit voxels, ordered by their projection on the ray. */
static int ray_samples(const struct lm_field *f, const float o[3], const float d[3],
                       const struct hit_buf *hits, struct lm_rows **out)
{
    const struct lm_schema *s = &f->schema;
    struct ray_row *rows = NULL;
    size_t n = 0, cap = 0;
    struct rows_buf buf;
    int rc = rows_begin(&buf, s, true);
    if (rc)
        return rc;
    for (size_t h = 0; h < hits->n && !rc; h++) {
        const struct lm_chunk *c = hits->chunk[h];
        bool seen = false; /* scan each chunk once, for all of its hit voxels */
        for (size_t e = 0; e < h; e++)
            seen = seen || hits->chunk[e] == c;
        if (seen)
            continue;
        for (uint32_t i = 0; i < c->n; i++) {
            int64_t v[3] = {(int64_t)floor((double)c->x[i] * s->inv_voxel),
                            (int64_t)floor((double)c->y[i] * s->inv_voxel),
                            (int64_t)floor((double)c->z[i] * s->inv_voxel)};
            bool in = false;
            for (size_t e = h; e < hits->n && !in; e++)
                in = hits->chunk[e] == c && v[0] == hits->v[e].voxel[0] &&
                     v[1] == hits->v[e].voxel[1] && v[2] == hits->v[e].voxel[2];
            if (!in)
                continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                struct ray_row *p = lm_realloc(rows, cap * sizeof *p);
                if (!p) {
                    rc = -ENOMEM;
                    break;
                }
                rows = p;
            }
            float along = (c->x[i] - o[0]) * d[0] + (c->y[i] - o[1]) * d[1] +
                          (c->z[i] - o[2]) * d[2];
            rows[n++] = (struct ray_row){along, c, i};
        }
    }
    if (!rc) {
        if (n)
            qsort(rows, n, sizeof *rows, cmp_ray_row);
        rc = rows_reserve(&buf, n);
    }
    for (size_t j = 0; !rc && j < n; j++)
        rows_put(&buf, rows[j].c, rows[j].i, rows[j].along);
    lm_free(rows);
    if (rc) {
        lm_rows_free(buf.r);
        return rc;
    }
    *out = buf.r;
    return 0;
}

int lm__query_raycast(const struct lm_field *f, const float origin[3], const float dir[3],
                      float max_dist, enum lm_ray_mode mode, struct lm_ray_result **out)
{
    const struct lm_schema *s = &f->schema;
    struct lm_ray_result *res = lm_calloc(1, sizeof *res);
    struct hit_buf hits = {0};
    if (!res)
        return -ENOMEM;
    int rc = 0;
    const double o[3] = {origin[0], origin[1], origin[2]};
    const double d[3] = {dir[0], dir[1], dir[2]};
    const float back[3] = {-dir[0], -dir[1], -dir[2]};
    double chunk_size = (double)s->voxel_size * (double)s->edge;
    bool done = false;
    /* Clip the ray to the field's bounds so the walk never wanders through empty
     * space beyond them. */
    double t_lo = 0.0, t_hi = max_dist;
    if (!f->tree.root)
        t_hi = -1.0;
    for (int a = 0; a < 3 && t_lo <= t_hi; a++) {
        /* bounds of the occupied voxels, not just of the sample positions */
        double vs = s->voxel_size;
        double lo = floor((double)f->tree.root->bmin[a] * s->inv_voxel) * vs;
        double hi = (floor((double)f->tree.root->bmax[a] * s->inv_voxel) + 1.0) * vs;
        if (d[a] == 0.0) {
            if (o[a] < lo || o[a] > hi)
                t_hi = -1.0;
            continue;
        }
        double t1 = (lo - o[a]) / d[a], t2 = (hi - o[a]) / d[a];
        if (t1 > t2) {
            double tmp = t1;
            t1 = t2;
            t2 = tmp;
        }
        if (t1 > t_lo)
            t_lo = t1;
        if (t2 < t_hi)
            t_hi = t2;
    }
    /* Outer walk over chunk cells; empty chunks are skipped whole (hierarchical DDA). */
    struct dda outer;
    dda_init(&outer, o, d, chunk_size, t_lo, NULL, NULL);
    while (!done && t_lo <= t_hi && outer.t <= t_hi) {
        double t_out = dda_exit(&outer);
        int64_t cc64[3] = {outer.cell[0], outer.cell[1], outer.cell[2]};
        bool in_range = true;
        for (int a = 0; a < 3; a++)
            in_range = in_range && cc64[a] >= INT32_MIN && cc64[a] <= INT32_MAX;
        const struct lm__onode *leaf = NULL;
        if (in_range) {
            const int32_t cc[3] = {(int32_t)cc64[0], (int32_t)cc64[1], (int32_t)cc64[2]};
            leaf = lm__octree_find(&f->tree, cc);
        }
        if (leaf) {
            const struct lm_chunk *c = leaf->chunk;
            struct dda inner;
            int64_t lo[3], hi[3];
            for (int a = 0; a < 3; a++) {
                lo[a] = (int64_t)c->coord[a] * (int64_t)s->edge;
                hi[a] = lo[a] + (int64_t)s->edge - 1;
            }
            dda_init(&inner, o, d, (double)s->voxel_size, outer.t, lo, hi);
            while (inner.t < t_out && inner.t <= max_dist) {
                bool inside = true;
                for (int a = 0; a < 3; a++)
                    inside = inside && inner.cell[a] >= lo[a] && inner.cell[a] <= hi[a];
                if (!inside)
                    break;
                const struct lm__voxel_agg *a = lm__chunk_voxel(
                    c, (uint32_t)(inner.cell[0] - lo[0]), (uint32_t)(inner.cell[1] - lo[1]),
                    (uint32_t)(inner.cell[2] - lo[2]));
                if (a) {
                    struct lm_ray_hit h = {0};
                    for (int k = 0; k < 3; k++)
                        h.voxel[k] = (int32_t)inner.cell[k];
                    h.t_enter = (float)inner.t;
                    double te = dda_exit(&inner);
                    h.t_exit = (float)(te < max_dist ? te : max_dist);
                    memcpy(h.agg.coord, h.voxel, sizeof h.voxel);
                    voxel_from_agg(&h.agg, a);
                    float l[3];
                    agg_radiance(a, back, l);
                    for (int k = 0; k < 3; k++)
                        res->radiance[k] += l[k];
                    if ((rc = hit_push(&hits, &h, c)))
                        goto fail;
                    if (mode == LM_RAY_FIRST) {
                        done = true;
                        break;
                    }
                }
                dda_step(&inner);
            }
        }
        dda_step(&outer);
    }
    if (hits.n) {
        if ((rc = ray_samples(f, origin, dir, &hits, &res->samples)))
            goto fail;
    } else {
        struct rows_buf empty;
        if ((rc = rows_begin(&empty, s, true)))
            goto fail;
        res->samples = empty.r;
    }
    res->hits = hits.v;
    res->n_hits = hits.n;
    lm_free(hits.chunk);
    *out = res;
    return 0;
fail:
    lm_free(hits.v);
    lm_free(hits.chunk);
    lm_ray_result_free(res);
    return rc;
}

void lm_ray_result_free(struct lm_ray_result *res)
{
    if (!res)
        return;
    lm_free(res->hits);
    lm_rows_free(res->samples);
    lm_free(res);
}

/* ---------------------------------------------------------------- chunks */

struct chunks_ctx {
    const struct lm_field *f;
    uint64_t since;
    lm_chunk_fn fn;
    void *user;
};

static int chunk_leaf(struct lm__onode *leaf, int overlap, void *ctx)
{
    (void)overlap;
    struct chunks_ctx *q = ctx;
    const struct lm_chunk *c = leaf->chunk;
    if (c->lsn <= q->since)
        return 0;
    struct lm_chunk_view v = {
        .lsn = c->lsn, .n = c->n, .n_voxels = c->vox_n,
        .x = c->x, .y = c->y, .z = c->z, .dir_oct = c->dir,
        .r = c->r, .g = c->g, .b = c->b, .intensity = c->intensity, .t = c->t};
    memcpy(v.coord, c->coord, sizeof v.coord);
    memcpy(v.bounds_min, c->bmin, sizeof v.bounds_min);
    memcpy(v.bounds_max, c->bmax, sizeof v.bounds_max);
    for (uint32_t u = 0; u < q->f->schema.n_user; u++)
        v.user[u] = c->user[u];
    return q->fn(&v, q->user);
}

int lm__query_chunks(const struct lm_field *f, const struct lm_region *region,
                     uint64_t since_lsn, lm_chunk_fn fn, void *user)
{
    struct chunks_ctx q = {f, since_lsn, fn, user};
    return lm__field_walk(f, region, chunk_leaf, &q);
}
