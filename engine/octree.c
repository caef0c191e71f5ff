/* octree.c - sparse octree over chunks and the chunk hash map. */
#include "octree.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "alloc.h"

#define ROOT_LEVEL 32u
#define BIAS 0x80000000u

static void biased(const int32_t c[3], uint32_t out[3])
{
    for (int a = 0; a < 3; a++)
        out[a] = (uint32_t)c[a] + BIAS;
}

static uint32_t map_hash(const int32_t c[3], uint32_t cap)
{
    uint64_t h = (uint64_t)(uint32_t)c[0] * 0x9e3779b97f4a7c15ull;
    h ^= (uint64_t)(uint32_t)c[1] * 0xc2b2ae3d27d4eb4full;
    h ^= (uint64_t)(uint32_t)c[2] * 0x165667b19e3779f9ull;
    h ^= h >> 29;
    return (uint32_t)(h & (cap - 1));
}

static bool same_coord(const struct lm_chunk *c, const int32_t k[3])
{
    return c->coord[0] == k[0] && c->coord[1] == k[1] && c->coord[2] == k[2];
}

static void reset_aggregate(struct lm__onode *n)
{
    n->count = 0;
    n->lsn = 0;
    n->sum_r = n->sum_g = n->sum_b = n->sum_i = 0;
    memset(n->sh, 0, sizeof n->sh);
    for (int a = 0; a < 3; a++) {
        n->bmin[a] = INFINITY;
        n->bmax[a] = -INFINITY;
    }
}

void lm__octree_init(struct lm__octree *t)
{
    memset(t, 0, sizeof *t);
}

static void free_subtree(struct lm__onode *n)
{
    if (!n)
        return;
    for (int i = 0; i < 8; i++)
        free_subtree(n->child[i]);
    lm_free(n);
}

void lm__octree_destroy(struct lm__octree *t)
{
    free_subtree(t->root);
    lm_free(t->map);
    memset(t, 0, sizeof *t);
}

struct lm__onode *lm__octree_find(const struct lm__octree *t, const int32_t coord[3])
{
    if (!t->map_cap)
        return NULL;
    for (uint32_t h = map_hash(coord, t->map_cap);; h = (h + 1) & (t->map_cap - 1)) {
        struct lm__onode *n = t->map[h];
        if (!n)
            return NULL;
        if (same_coord(n->chunk, coord))
            return n;
    }
}

static void map_put(struct lm__onode **map, uint32_t cap, struct lm__onode *leaf)
{
    uint32_t h = map_hash(leaf->chunk->coord, cap);
    while (map[h])
        h = (h + 1) & (cap - 1);
    map[h] = leaf;
}

static int map_grow(struct lm__octree *t)
{
    if ((uint64_t)(t->n_chunks + 1) * 2 <= t->map_cap)
        return 0;
    uint32_t cap = t->map_cap ? t->map_cap * 2 : 64;
    struct lm__onode **map = lm_calloc(cap, sizeof *map);
    if (!map)
        return -ENOMEM;
    for (uint32_t i = 0; i < t->map_cap; i++)
        if (t->map[i])
            map_put(map, cap, t->map[i]);
    lm_free(t->map);
    t->map = map;
    t->map_cap = cap;
    return 0;
}

/* Linear-probing removal with backward shift: no tombstones. */
static void map_del(struct lm__octree *t, struct lm__onode *leaf)
{
    uint32_t mask = t->map_cap - 1, i = map_hash(leaf->chunk->coord, t->map_cap);
    while (t->map[i] != leaf)
        i = (i + 1) & mask;
    for (uint32_t j = (i + 1) & mask; t->map[j]; j = (j + 1) & mask) {
        uint32_t home = map_hash(t->map[j]->chunk->coord, t->map_cap);
        /* move j into the hole at i if its home is not in (i, j] cyclically */
        bool in_range = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_range) {
            t->map[i] = t->map[j];
            i = j;
        }
    }
    t->map[i] = NULL;
}

static int child_index(const uint32_t key[3], uint32_t level)
{
    uint32_t b = level - 1;
    return (int)(((key[0] >> b) & 1) | ((key[1] >> b) & 1) << 1 | ((key[2] >> b) & 1) << 2);
}

static struct lm__onode *node_new(uint32_t level, const uint32_t bkey[3])
{
    struct lm__onode *n = lm_calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->level = level;
    for (int a = 0; a < 3; a++)
        n->key[a] = level >= 32 ? 0 : bkey[a] >> level;
    reset_aggregate(n);
    return n;
}

int lm__octree_add(struct lm__octree *t, struct lm_chunk *chunk, struct lm__onode **leaf)
{
    uint32_t bkey[3];
    biased(chunk->coord, bkey);
    /* Allocate every missing node first so that failure changes nothing. */
    struct lm__onode *fresh[ROOT_LEVEL + 1];
    uint32_t n_fresh = 0;
    struct lm__onode *at = t->root;
    uint32_t level = ROOT_LEVEL;
    while (at && level > 0) {
        struct lm__onode *next = at->child[child_index(bkey, level)];
        if (!next)
            break;
        at = next;
        level--;
    }
    uint32_t first_missing = at ? level - 1 : ROOT_LEVEL;
    if (at && level == 0)
        return -EEXIST;
    for (int64_t l = first_missing; l >= 0; l--) {
        struct lm__onode *n = node_new((uint32_t)l, bkey);
        if (!n)
            goto nomem;
        fresh[n_fresh++] = n;
    }
    if (map_grow(t))
        goto nomem;
    /* link: fresh[0] is the highest new node */
    for (uint32_t i = 0; i < n_fresh; i++) {
        struct lm__onode *parent = i ? fresh[i - 1] : at;
        if (parent) {
            parent->child[child_index(bkey, parent->level)] = fresh[i];
            fresh[i]->parent = parent;
        } else {
            t->root = fresh[i];
        }
    }
    struct lm__onode *lf = fresh[n_fresh - 1];
    lf->chunk = chunk;
    map_put(t->map, t->map_cap, lf);
    t->n_chunks++;
    lm__octree_refresh(t, lf);
    *leaf = lf;
    return 0;
nomem:
    for (uint32_t i = 0; i < n_fresh; i++)
        lm_free(fresh[i]);
    return -ENOMEM;
}

static void add_child_aggregate(struct lm__onode *n, const struct lm__onode *c)
{
    n->count += c->count;
    if (c->lsn > n->lsn)
        n->lsn = c->lsn;
    for (int a = 0; a < 3; a++) {
        if (c->bmin[a] < n->bmin[a])
            n->bmin[a] = c->bmin[a];
        if (c->bmax[a] > n->bmax[a])
            n->bmax[a] = c->bmax[a];
    }
    n->sum_r += c->sum_r;
    n->sum_g += c->sum_g;
    n->sum_b += c->sum_b;
    n->sum_i += c->sum_i;
    for (int ch = 0; ch < 3; ch++)
        for (int k = 0; k < 4; k++)
            n->sh[ch][k] += c->sh[ch][k];
}

static void leaf_aggregate(struct lm__onode *n)
{
    const struct lm_chunk *c = n->chunk;
    reset_aggregate(n);
    n->count = c->n;
    n->lsn = c->lsn;
    memcpy(n->bmin, c->bmin, sizeof n->bmin);
    memcpy(n->bmax, c->bmax, sizeof n->bmax);
    n->sum_r = c->sum_r;
    n->sum_g = c->sum_g;
    n->sum_b = c->sum_b;
    n->sum_i = c->sum_i;
    memcpy(n->sh, c->sh, sizeof n->sh);
}

/* Recomputes inner node n and all of its ancestors from their children. */
static void refresh_up(struct lm__onode *n)
{
    for (; n; n = n->parent) {
        reset_aggregate(n);
        for (int i = 0; i < 8; i++)
            if (n->child[i])
                add_child_aggregate(n, n->child[i]);
    }
}

void lm__octree_refresh(struct lm__octree *t, struct lm__onode *leaf)
{
    (void)t;
    leaf_aggregate(leaf);
    refresh_up(leaf->parent);
}

void lm__octree_remove(struct lm__octree *t, struct lm__onode *leaf)
{
    map_del(t, leaf);
    t->n_chunks--;
    struct lm__onode *n = leaf;
    for (;;) {
        struct lm__onode *p = n->parent;
        if (p)
            for (int i = 0; i < 8; i++)
                if (p->child[i] == n)
                    p->child[i] = NULL;
        lm_free(n);
        if (!p) {
            t->root = NULL;
            return;
        }
        bool empty = true;
        for (int i = 0; i < 8; i++)
            empty = empty && !p->child[i];
        if (!empty) {
            refresh_up(p);
            return;
        }
        n = p;
    }
}

void lm__onode_coord(const struct lm__onode *n, int32_t out[3])
{
    for (int a = 0; a < 3; a++) {
        if (n->level >= 32)
            out[a] = 0;
        else
            out[a] = (int32_t)(n->key[a] - (BIAS >> n->level));
    }
}
