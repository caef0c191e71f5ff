/* lod.c - chunk directory, tile tree and screen-space-error selection (lod.h). */
#include "lod.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "error.h"

void lm__lod_init(struct lm__lod *l)
{
    memset(l, 0, sizeof *l);
}

void lm__lod_free(struct lm__lod *l)
{
    lm_free(l->chunks);
    lm_free(l->nodes);
    lm__keymap_free(&l->chunk_map);
    lm__keymap_free(&l->node_map);
    memset(l, 0, sizeof *l);
}

static int grow(void **p, uint32_t *cap, uint32_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    uint32_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    void *q = lm_realloc(*p, (size_t)c * size);
    if (!q)
        return -ENOMEM;
    *p = q;
    *cap = c;
    return 0;
}

/* ---------------------------------------------------------------- directory */

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A chunk's share of the signatures of the nodes above it (invariant 3). */
static uint64_t chunk_sig(const struct lm__lchunk *c)
{
    uint64_t h = mix64((uint64_t)(uint32_t)c->c[0] ^ (uint64_t)(uint32_t)c->c[1] << 32);
    h = mix64(h ^ (uint64_t)(uint32_t)c->c[2] ^ c->lsn << 32 ^ c->lsn >> 32);
    return h;
}

struct collect {
    const struct lm__lod *old;
    struct lm__lchunk *v;
    uint32_t n, cap;
    int rc;
};

static int collect_chunk(const struct lm_chunk_view *cv, void *user)
{
    struct collect *w = user;
    if (grow((void **)&w->v, &w->cap, w->n + 1, sizeof *w->v))
        return w->rc = -ENOMEM;
    struct lm__lchunk *c = &w->v[w->n++];
    memcpy(c->c, cv->coord, sizeof c->c);
    c->lsn = cv->lsn;
    c->n = cv->n;
    c->n_voxels = cv->n_voxels;
    memcpy(c->bmin, cv->bounds_min, sizeof c->bmin);
    memcpy(c->bmax, cv->bounds_max, sizeof c->bmax);
    struct lm__tkey key = {0, {cv->coord[0], cv->coord[1], cv->coord[2]}};
    uint32_t at = lm__keymap_get(&w->old->chunk_map, &key);
    if (at != UINT32_MAX && w->old->chunks[at].lsn == cv->lsn) {
        const struct lm__lchunk *o = &w->old->chunks[at];
        c->i_min = o->i_min;
        c->i_max = o->i_max;
        c->t_min = o->t_min;
        c->t_max = o->t_max;
        return 0;
    }
    /* changed or new: scan its value columns for the colour ramps */
    c->i_min = INFINITY;
    c->i_max = -INFINITY;
    c->t_min = INT64_MAX;
    c->t_max = INT64_MIN;
    for (size_t i = 0; i < cv->n; i++) {
        float in = cv->intensity[i];
        int64_t t = cv->t[i];
        c->i_min = in < c->i_min ? in : c->i_min;
        c->i_max = in > c->i_max ? in : c->i_max;
        c->t_min = t < c->t_min ? t : c->t_min;
        c->t_max = t > c->t_max ? t : c->t_max;
    }
    return 0;
}

static uint32_t top_level(const struct lm__lod *l)
{
    float ext = 0;
    for (int a = 0; a < 3; a++)
        ext = fmaxf(ext, l->bmax[a] - l->bmin[a]);
    uint32_t k = 0;
    while (k < LM__LOD_MAX_LEVEL && ldexp((double)l->edge * l->voxel_size, (int)k) < ext)
        k++;
    return k;
}

/* Rebuilds the nodes of every level from the chunk directory. */
static int build_nodes(struct lm__lod *l)
{
    l->n_nodes = 0;
    l->top = top_level(l);
    uint64_t expect = (uint64_t)l->n_chunks * 2 + 16;
    int rc = lm__keymap_reset(&l->node_map, (uint32_t)(expect > (1u << 30) ? 1u << 30 : expect));
    if (rc)
        return rc;
    for (uint32_t i = 0; i < l->n_chunks; i++) {
        const struct lm__lchunk *c = &l->chunks[i];
        uint64_t sig = chunk_sig(c);
        for (uint32_t k = 0; k <= l->top; k++) {
            struct lm__tkey key = {(int32_t)k, {c->c[0] >> k, c->c[1] >> k, c->c[2] >> k}};
            uint32_t at = lm__keymap_get(&l->node_map, &key);
            if (at == UINT32_MAX) {
                if ((rc = grow((void **)&l->nodes, &l->cap_nodes, l->n_nodes + 1,
                               sizeof *l->nodes)) ||
                    (rc = lm__keymap_put(&l->node_map, &key, l->n_nodes)))
                    return rc;
                at = l->n_nodes++;
                struct lm__lnode *n = &l->nodes[at];
                memset(n, 0, sizeof *n);
                n->key = key;
                memcpy(n->bmin, c->bmin, sizeof n->bmin);
                memcpy(n->bmax, c->bmax, sizeof n->bmax);
            }
            struct lm__lnode *n = &l->nodes[at];
            for (int a = 0; a < 3; a++) {
                n->bmin[a] = fminf(n->bmin[a], c->bmin[a]);
                n->bmax[a] = fmaxf(n->bmax[a], c->bmax[a]);
            }
            n->lsn = c->lsn > n->lsn ? c->lsn : n->lsn;
            n->sig += sig;
            n->n_samples += c->n;
            n->n_voxels0 += c->n_voxels;
        }
    }
    return 0;
}

static void field_ranges(struct lm__lod *l)
{
    for (int a = 0; a < 3; a++) {
        l->bmin[a] = l->n_chunks ? INFINITY : 0;
        l->bmax[a] = l->n_chunks ? -INFINITY : 0;
    }
    l->i_min = l->n_chunks ? INFINITY : 0;
    l->i_max = l->n_chunks ? -INFINITY : 0;
    l->t_min = l->n_chunks ? INT64_MAX : 0;
    l->t_max = l->n_chunks ? INT64_MIN : 0;
    for (uint32_t i = 0; i < l->n_chunks; i++) {
        const struct lm__lchunk *c = &l->chunks[i];
        for (int a = 0; a < 3; a++) {
            l->bmin[a] = fminf(l->bmin[a], c->bmin[a]);
            l->bmax[a] = fmaxf(l->bmax[a], c->bmax[a]);
        }
        l->i_min = fminf(l->i_min, c->i_min);
        l->i_max = fmaxf(l->i_max, c->i_max);
        l->t_min = c->t_min < l->t_min ? c->t_min : l->t_min;
        l->t_max = c->t_max > l->t_max ? c->t_max : l->t_max;
    }
}

static int rebuild(struct lm__lod *l)
{
    int rc = lm__keymap_reset(&l->chunk_map, l->n_chunks);
    for (uint32_t i = 0; i < l->n_chunks && !rc; i++) {
        struct lm__tkey key = {0, {l->chunks[i].c[0], l->chunks[i].c[1], l->chunks[i].c[2]}};
        rc = lm__keymap_put(&l->chunk_map, &key, i);
    }
    field_ranges(l);
    return rc ? rc : build_nodes(l);
}

static void clear(struct lm__lod *l)
{
    l->n_chunks = l->n_nodes = 0;
    lm__keymap_reset(&l->chunk_map, 0);
    lm__keymap_reset(&l->node_map, 0);
    l->have_field = false;
    field_ranges(l);
}

int lm__lod_sync(struct lm__lod *l, lm_db *db, const char *field, bool *changed,
                 struct lm_error *err)
{
    if (changed)
        *changed = false;
    uint64_t db_lsn = lm_db_lsn(db);
    if (l->syncs && db_lsn == l->db_lsn)
        return 0;
    struct lm_field_info info;
    int rc = lm_field_info(db, field, &info, NULL);
    if (rc == LM_ENOFIELD) {
        bool had = l->have_field || !l->syncs;
        clear(l);
        l->db_lsn = db_lsn;
        l->syncs += had;
        if (changed)
            *changed = had;
        return 0;
    }
    if (rc)
        return lm__fail(err, rc, "reading field '%s': %s", field, lm_strerror(rc));
    if (l->have_field && info.lsn == l->field_lsn) {
        l->db_lsn = db_lsn;
        return 0;
    }
    struct collect w = {.old = l};
    rc = lm_chunks_each(db, field, NULL, 0, collect_chunk, &w, err);
    if (rc == LM_ENOFIELD) { /* dropped between the two calls: next sync sees it */
        lm_free(w.v);
        return 0;
    }
    if (rc) {
        lm_free(w.v);
        return w.rc ? lm__fail(err, w.rc, "out of memory reading the chunks of '%s'", field)
                    : rc;
    }
    lm_free(l->chunks);
    l->chunks = w.v;
    l->n_chunks = w.n;
    l->cap_chunks = w.cap;
    l->voxel_size = info.opts.voxel_size;
    l->edge = info.opts.chunk_edge ? info.opts.chunk_edge : 32;
    for (l->log2_edge = 0; (1u << l->log2_edge) < l->edge; l->log2_edge++)
        ;
    if ((rc = rebuild(l))) {
        clear(l);
        l->syncs++;
        return lm__fail(err, rc, "out of memory indexing the chunks of '%s'", field);
    }
    l->have_field = true;
    l->field_lsn = info.lsn;
    l->db_lsn = db_lsn;
    l->syncs++;
    if (changed)
        *changed = true;
    return 0;
}

const struct lm__lnode *lm__lod_node(const struct lm__lod *l, const struct lm__tkey *key)
{
    uint32_t at = lm__keymap_get(&l->node_map, key);
    return at == UINT32_MAX ? NULL : &l->nodes[at];
}

void lm__lod_cell_box(const struct lm__lod *l, const struct lm__tkey *key, double lo[3],
                      double hi[3])
{
    double size = ldexp((double)l->edge * l->voxel_size, key->k);
    for (int a = 0; a < 3; a++) {
        lo[a] = key->c[a] * size;
        hi[a] = (key->c[a] + 1.0) * size;
    }
}

/* ---------------------------------------------------------------- selection */

static bool in_view(const struct lm__lod_view *v, const float bmin[3], const float bmax[3])
{
    for (int p = 0; p < 6; p++) {
        const float *pl = v->planes[p];
        float d = pl[3];
        for (int a = 0; a < 3; a++)
            d += pl[a] * (pl[a] >= 0 ? bmax[a] : bmin[a]);
        if (d < 0)
            return false;
    }
    return true;
}

static float node_error(const struct lm__lod *l, const struct lm__lod_view *v,
                        const struct lm__lnode *n)
{
    float d2 = 0;
    for (int a = 0; a < 3; a++) {
        float e = v->eye[a];
        float g = e < n->bmin[a] ? n->bmin[a] - e : (e > n->bmax[a] ? e - n->bmax[a] : 0);
        d2 += g * g;
    }
    float cell = ldexpf(l->voxel_size, n->key.k);
    return cell * v->focal_px / fmaxf(sqrtf(d2), 1e-6f);
}

/* Voxels a tile not yet loaded will hold: a surface has about 4x fewer cells per level. */
static uint32_t estimate(const struct lm__lnode *n)
{
    uint64_t e = n->n_voxels0 >> (2 * n->key.k);
    return (uint32_t)(e < 1 ? 1 : (e > UINT32_MAX ? UINT32_MAX : e));
}

static int push(struct lm__lod_pick **v, uint32_t *n, uint32_t *cap, struct lm__lod_pick p)
{
    if (grow((void **)v, cap, *n + 1, sizeof **v))
        return -ENOMEM;
    (*v)[(*n)++] = p;
    return 0;
}

static int heap_push(struct lm__lod_plan *pl, uint32_t *n, struct lm__lod_pick p)
{
    if (grow((void **)&pl->heap, &pl->cap_heap, *n + 1, sizeof *pl->heap))
        return -ENOMEM;
    uint32_t i = (*n)++;
    while (i && pl->heap[(i - 1) / 2].error < p.error) {
        pl->heap[i] = pl->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    pl->heap[i] = p;
    return 0;
}

static struct lm__lod_pick heap_pop(struct lm__lod_plan *pl, uint32_t *n)
{
    struct lm__lod_pick top = pl->heap[0], last = pl->heap[--*n];
    uint32_t i = 0;
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= *n)
            break;
        if (c + 1 < *n && pl->heap[c + 1].error > pl->heap[c].error)
            c++;
        if (pl->heap[c].error <= last.error)
            break;
        pl->heap[i] = pl->heap[c];
        i = c;
    }
    if (*n)
        pl->heap[i] = last;
    return top;
}

static int draw(struct lm__lod_plan *pl, struct lm__lod_pick p)
{
    uint32_t k = (uint32_t)p.node->key.k;
    if (!pl->n_draw || k < pl->level_min)
        pl->level_min = k;
    if (!pl->n_draw || k > pl->level_max)
        pl->level_max = k;
    pl->voxels += p.n_voxels;
    return push(&pl->draw, &pl->n_draw, &pl->cap_draw, p);
}

static int urgency(const struct lm__lod_pick *p)
{
    return p->required ? 0 : (p->state == LM__TILE_ABSENT ? 1 : 2);
}

static int cmp_load(const void *pa, const void *pb)
{
    const struct lm__lod_pick *a = pa, *b = pb;
    int ua = urgency(a), ub = urgency(b);
    if (ua != ub)
        return ua < ub ? -1 : 1;
    return a->error < b->error ? 1 : (a->error > b->error ? -1 : 0);
}

int lm__lod_select(const struct lm__lod *l, const struct lm__lod_view *v,
                   lm__lod_probe probe, void *ctx, struct lm__lod_plan *pl)
{
    pl->n_draw = pl->n_load = 0;
    pl->voxels = 0;
    pl->level_min = pl->level_max = 0;
    uint32_t nh = 0;
    uint64_t total = 0;
    int rc = 0;
    for (uint32_t i = 0; i < l->n_nodes && !rc; i++) {
        const struct lm__lnode *n = &l->nodes[i];
        if ((uint32_t)n->key.k != l->top || !in_view(v, n->bmin, n->bmax))
            continue;
        uint32_t count = 0;
        enum lm__tile_state st = probe(ctx, n, &count);
        struct lm__lod_pick p = {n, node_error(l, v, n), count, st, false};
        if (st != LM__TILE_FRESH)
            rc = push(&pl->load, &pl->n_load, &pl->cap_load,
                      (struct lm__lod_pick){n, p.error,
                                            st == LM__TILE_ABSENT ? estimate(n) : count, st,
                                            st == LM__TILE_ABSENT});
        if (!rc && st != LM__TILE_ABSENT) {
            total += count;
            rc = heap_push(pl, &nh, p);
        }
    }
    while (nh && !rc) {
        struct lm__lod_pick p = heap_pop(pl, &nh);
        const struct lm__lnode *n = p.node;
        if (p.error <= v->pixel_error || n->key.k == 0) {
            rc = draw(pl, p);
            continue;
        }
        /* children in view, their state and cost */
        struct lm__lod_pick kids[8];
        enum lm__tile_state kst[8];
        int nk = 0, missing = 0;
        uint64_t cost = 0;
        for (int i = 0; i < 8; i++) {
            struct lm__tkey ck = {n->key.k - 1, {n->key.c[0] * 2 + (i & 1),
                                                 n->key.c[1] * 2 + (i >> 1 & 1),
                                                 n->key.c[2] * 2 + (i >> 2 & 1)}};
            const struct lm__lnode *c = lm__lod_node(l, &ck);
            if (!c || !in_view(v, c->bmin, c->bmax))
                continue;
            uint32_t count = 0;
            kst[nk] = probe(ctx, c, &count);
            kids[nk] = (struct lm__lod_pick){c, node_error(l, v, c),
                                             kst[nk] == LM__TILE_ABSENT ? estimate(c) : count,
                                             kst[nk], false};
            missing += kst[nk] == LM__TILE_ABSENT;
            cost += kids[nk].n_voxels;
            nk++;
        }
        if (!nk) { /* the bounds met the view, no child's does: nothing to see */
            total -= p.n_voxels;
            continue;
        }
        if (total - p.n_voxels + cost > v->budget) {
            rc = draw(pl, p);
            continue;
        }
        if (missing) { /* keep drawing the parent until every child can replace it */
            for (int i = 0; i < nk && !rc; i++)
                if (kst[i] == LM__TILE_ABSENT)
                    rc = push(&pl->load, &pl->n_load, &pl->cap_load, kids[i]);
            if (!rc)
                rc = draw(pl, p);
            continue;
        }
        total += cost - p.n_voxels;
        for (int i = 0; i < nk && !rc; i++) {
            rc = heap_push(pl, &nh, kids[i]);
            if (!rc && kst[i] == LM__TILE_STALE)
                rc = push(&pl->load, &pl->n_load, &pl->cap_load, kids[i]);
        }
    }
    if (rc)
        return rc;
    if (pl->n_load > 1)
        qsort(pl->load, pl->n_load, sizeof *pl->load, cmp_load);
    return 0;
}

void lm__lod_plan_free(struct lm__lod_plan *pl)
{
    lm_free(pl->draw);
    lm_free(pl->load);
    lm_free(pl->heap);
    memset(pl, 0, sizeof *pl);
}
