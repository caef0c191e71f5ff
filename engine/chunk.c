/* chunk.c - columns, voxel aggregates, Morton ordering and the search index of a chunk.
 *
 * Inserts go to an unsorted tail (cheap appends); when the tail outgrows a quarter of
 * the sorted rows it is radix-sorted by Morton code and merged in, and the kd-tree is
 * rebuilt. Each row is thus moved O(log n) times over its life, while queries see at
 * most a bounded tail to scan linearly. */
#include "chunk.h"

#include <errno.h>
#include <stdatomic.h>
#include <math.h>
#include <string.h>

#include "alloc.h"
#include "kdtree.h"
#include "morton.h"
#include "sh.h"

#define TAIL_MIN 256u        /* a tail this small is never worth sorting */

/* ---------------------------------------------------------------- helpers */

size_t lm__type_size(enum lm_type t)
{
    return t == LM_TYPE_U8 ? 1 : 4;
}

static float colour_decode(uint8_t v) { return (float)v * (1.0f / 255.0f); }

static uint8_t colour_encode(float v) { return (uint8_t)lrintf(v * 255.0f); }

/* Local voxel and Morton sub-voxel position of a row (morton.h invariant 2). */
static void local_voxel(const struct lm_chunk *c, const struct lm_schema *s, float x,
                        float y, float z, uint32_t v[3])
{
    const float p[3] = {x, y, z};
    for (int a = 0; a < 3; a++)
        v[a] = (uint32_t)(lm_voxel_of(p[a], s->inv_voxel) -
                          ((int64_t)c->coord[a] * (int64_t)s->edge));
}

static uint64_t row_code(const struct lm_chunk *c, const struct lm_schema *s, uint32_t i)
{
    const float p[3] = {c->x[i], c->y[i], c->z[i]};
    uint32_t sub_bits = LM_MORTON_BITS - s->log2_edge, q[3];
    for (int a = 0; a < 3; a++) {
        double u = (double)p[a] * s->inv_voxel;
        double v = floor(u);
        uint32_t local = (uint32_t)((int64_t)v - ((int64_t)c->coord[a] * (int64_t)s->edge));
        uint32_t frac = (uint32_t)((u - v) * (double)(1u << sub_bits));
        if (frac >= (1u << sub_bits))
            frac = (1u << sub_bits) - 1;
        q[a] = local << sub_bits | frac;
    }
    return lm_morton_encode(q[0], q[1], q[2]);
}

/* ---------------------------------------------------------------- bricks */

/* Brick number and slot of a local voxel. */
static void brick_pos(const struct lm_schema *s, const uint32_t v[3], uint32_t *bi,
                      uint32_t *slot)
{
    uint32_t be = lm__brick_edge(s), nb = s->edge / be;
    *bi = v[0] / be + (v[1] / be + (v[2] / be) * nb) * nb;
    *slot = v[0] % be + (v[1] % be + (v[2] % be) * be) * be;
}

const struct lm__voxel_agg *lm__chunk_voxel(const struct lm_chunk *c, uint32_t lx,
                                            uint32_t ly, uint32_t lz)
{
    /* the chunk's edge is not stored here: bricks are LM_BRICK wide unless the chunk
     * is smaller, in which case there is one brick and lx, ly, lz < edge */
    if (!c->bricks)
        return NULL;
    uint32_t nb = c->bricks_side, be = nb > 1 ? LM_BRICK : c->brick_edge;
    uint32_t bi = lx / be + (ly / be + (lz / be) * nb) * nb;
    const struct lm__brick *br = c->bricks[bi];
    if (!br)
        return NULL;
    uint16_t k = br->slot[lx % be + (ly % be + (lz % be) * be) * be];
    return k ? &br->agg[k - 1] : NULL;
}

/* Ensures a brick exists with room for `extra` more aggregates. */
static int brick_reserve(struct lm_chunk *c, uint32_t bi, uint32_t extra)
{
    struct lm__brick *br = c->bricks[bi];
    if (!br) {
        br = lm_calloc(1, sizeof *br);
        if (!br)
            return -ENOMEM;
        c->bricks[bi] = br;
    }
    uint32_t want = br->n + extra, max = LM_BRICK * LM_BRICK * LM_BRICK;
    if (want > max)
        want = max;
    if (want <= br->cap)
        return 0;
    uint32_t cap = br->cap ? br->cap * 2 : 8;
    while (cap < want)
        cap *= 2;
    if (cap > max)
        cap = max;
    struct lm__voxel_agg *agg = lm_realloc(br->agg, cap * sizeof *agg);
    if (!agg)
        return -ENOMEM;
    br->agg = agg;
    br->cap = cap;
    return 0;
}

static void brick_array_free(struct lm__brick **bricks, const struct lm_schema *s)
{
    if (!bricks)
        return;
    for (uint32_t i = 0, nb = lm__chunk_n_bricks(s); i < nb; i++) {
        if (bricks[i]) {
            lm_free(bricks[i]->agg);
            lm_free(bricks[i]);
        }
    }
    lm_free(bricks);
}

/* Adds row i to its voxel; its brick has room (reserved). */
static void vox_add_row(struct lm_chunk *c, const struct lm_schema *s, uint32_t i)
{
    uint32_t v[3], bi, slot;
    local_voxel(c, s, c->x[i], c->y[i], c->z[i], v);
    brick_pos(s, v, &bi, &slot);
    struct lm__brick *br = c->bricks[bi];
    struct lm__voxel_agg *a;
    if (br->slot[slot]) {
        a = &br->agg[br->slot[slot] - 1];
    } else {
        a = &br->agg[br->n++];
        memset(a, 0, sizeof *a);
        a->key = (v[0] | v[1] << 8 | v[2] << 16) + 1;
        br->slot[slot] = (uint16_t)br->n;
        c->vox_n++;
    }
    float col[3] = {colour_decode(c->r[i]), colour_decode(c->g[i]), colour_decode(c->b[i])};
    float d[3], y[4];
    lm_dir_decode(&c->dir[2 * i], d);
    lm_sh_basis(d, y);
    float in = c->intensity[i];
    a->count++;
    a->sum_r += col[0];
    a->sum_g += col[1];
    a->sum_b += col[2];
    a->sum_i += in;
    c->sum_r += col[0];
    c->sum_g += col[1];
    c->sum_b += col[2];
    c->sum_i += in;
    for (int ch = 0; ch < 3; ch++) {
        float f = col[ch] * in;
        for (int k = 0; k < 4; k++) {
            a->sh[ch][k] += f * y[k];
            c->sh[ch][k] += f * y[k];
        }
    }
}

static void bounds_add(struct lm_chunk *c, uint32_t i)
{
    const float p[3] = {c->x[i], c->y[i], c->z[i]};
    for (int a = 0; a < 3; a++) {
        if (p[a] < c->bmin[a])
            c->bmin[a] = p[a];
        if (p[a] > c->bmax[a])
            c->bmax[a] = p[a];
    }
}

static void totals_reset(struct lm_chunk *c)
{
    for (int a = 0; a < 3; a++) {
        c->bmin[a] = INFINITY;
        c->bmax[a] = -INFINITY;
    }
    c->sum_r = c->sum_g = c->sum_b = c->sum_i = 0;
    memset(c->sh, 0, sizeof c->sh);
}

/* Builds fresh bricks from the rows into `fresh` (a zeroed brick pointer array):
 * counts rows per brick first so every brick gets its room in one allocation. */
static int bricks_build(struct lm_chunk *c, const struct lm_schema *s,
                        struct lm__brick **fresh)
{
    uint32_t nb = lm__chunk_n_bricks(s);
    uint32_t *per = lm_calloc(nb, sizeof *per);
    if (!per)
        return -ENOMEM;
    for (uint32_t i = 0; i < c->n; i++) {
        uint32_t v[3], bi, slot;
        local_voxel(c, s, c->x[i], c->y[i], c->z[i], v);
        brick_pos(s, v, &bi, &slot);
        per[bi]++;
    }
    struct lm__brick **old = c->bricks;
    c->bricks = fresh;
    int rc = 0;
    for (uint32_t bi = 0; bi < nb && !rc; bi++)
        if (per[bi])
            rc = brick_reserve(c, bi, per[bi]);
    lm_free(per);
    c->bricks = old;
    if (rc) {
        brick_array_free(fresh, s);
        return rc;
    }
    return 0;
}

/* Gives back brick room reserved for rows that turned out to share voxels. Best
 * effort: a failed shrink keeps the larger (valid) array. */
static void bricks_fit(struct lm_chunk *c, const struct lm_schema *s)
{
    for (uint32_t i = 0, nb = lm__chunk_n_bricks(s); i < nb; i++) {
        struct lm__brick *br = c->bricks[i];
        if (!br || br->cap <= br->n + br->n / 8)
            continue;
        struct lm__voxel_agg *agg = lm_realloc(br->agg, (br->n ? br->n : 1) * sizeof *agg);
        if (agg) {
            br->agg = agg;
            br->cap = br->n ? br->n : 1;
        }
    }
}

/* Replaces the bricks by `fresh` (from bricks_build) and refills them and the totals. */
static void bricks_fill(struct lm_chunk *c, const struct lm_schema *s, struct lm__brick **fresh)
{
    brick_array_free(c->bricks, s);
    c->bricks = fresh;
    c->vox_n = 0;
    totals_reset(c);
    for (uint32_t i = 0; i < c->n; i++) {
        vox_add_row(c, s, i);
        bounds_add(c, i);
    }
    bricks_fit(c, s);
}

int lm__chunk_recompute(struct lm_chunk *c, const struct lm_schema *s)
{
    struct lm__brick **fresh = lm_calloc(lm__chunk_n_bricks(s), sizeof *fresh);
    if (!fresh)
        return -ENOMEM;
    int rc = bricks_build(c, s, fresh);
    if (rc)
        return rc;
    bricks_fill(c, s, fresh);
    return 0;
}

/* ---------------------------------------------------------------- lifetime */

struct lm_chunk *lm__chunk_new(const int32_t coord[3], const struct lm_schema *s)
{
    struct lm_chunk *c = lm_calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->bricks = lm_calloc(lm__chunk_n_bricks(s), sizeof *c->bricks);
    if (!c->bricks) {
        lm_free(c);
        return NULL;
    }
    memcpy(c->coord, coord, sizeof c->coord);
    c->brick_edge = lm__brick_edge(s);
    c->bricks_side = s->edge / c->brick_edge;
    totals_reset(c);
    pthread_mutex_init(&c->kd_lock, NULL);
    return c;
}

uint32_t lm__chunk_columns(struct lm_chunk *c, const struct lm_schema *s,
                           struct lm__column_ref out[LM__MAX_COLUMNS])
{
    uint32_t n = 0;
    out[n++] = (struct lm__column_ref){(void **)&c->x, 4};
    out[n++] = (struct lm__column_ref){(void **)&c->y, 4};
    out[n++] = (struct lm__column_ref){(void **)&c->z, 4};
    out[n++] = (struct lm__column_ref){(void **)&c->dir, 4};
    out[n++] = (struct lm__column_ref){(void **)&c->r, 1};
    out[n++] = (struct lm__column_ref){(void **)&c->g, 1};
    out[n++] = (struct lm__column_ref){(void **)&c->b, 1};
    out[n++] = (struct lm__column_ref){(void **)&c->intensity, 4};
    out[n++] = (struct lm__column_ref){(void **)&c->t, 8};
    for (uint32_t u = 0; u < s->n_user; u++)
        out[n++] = (struct lm__column_ref){&c->user[u], lm__type_size(s->user_type[u])};
    return n;
}

void lm__chunk_free(struct lm_chunk *c, const struct lm_schema *s)
{
    if (!c)
        return;
    struct lm__column_ref cols[LM__MAX_COLUMNS];
    uint32_t nc = lm__chunk_columns(c, s, cols);
    for (uint32_t k = 0; k < nc; k++)
        lm_free(*cols[k].ptr);
    brick_array_free(c->bricks, s);
    lm_kdtree_free(atomic_load(&c->kd));
    pthread_mutex_destroy(&c->kd_lock);
    lm_free(c);
}

size_t lm__chunk_memory(const struct lm_chunk *c, const struct lm_schema *s)
{
    size_t row = 4 * 3 + 4 + 3 + 4 + 8;
    for (uint32_t u = 0; u < s->n_user; u++)
        row += lm__type_size(s->user_type[u]);
    size_t bytes = sizeof *c + (size_t)c->cap * row + lm__chunk_n_bricks(s) * sizeof(void *);
    for (uint32_t i = 0, nb = lm__chunk_n_bricks(s); i < nb; i++)
        if (c->bricks[i])
            bytes += sizeof *c->bricks[i] + c->bricks[i]->cap * sizeof(struct lm__voxel_agg);
    return bytes + lm_kdtree_memory_bytes(atomic_load(&c->kd));
}

int lm__chunk_reserve(struct lm_chunk *c, const struct lm_schema *s, const struct lm_batch *b,
                      const uint32_t *idx, uint32_t count)
{
    uint64_t need = (uint64_t)c->n + count;
    if (need > UINT32_MAX / 2)
        return -ENOMEM;
    if (need > c->cap) {
        uint32_t cap = c->cap + c->cap / 2;
        if (cap < need)
            cap = (uint32_t)need;
        if (cap < 64)
            cap = 64;
        struct lm__column_ref cols[LM__MAX_COLUMNS];
        uint32_t nc = lm__chunk_columns(c, s, cols);
        for (uint32_t k = 0; k < nc; k++) {
            /* Growing one array at a time is safe: content and cap stay valid if a
             * later array fails (earlier ones are merely larger). */
            void *p = lm_realloc(*cols[k].ptr, (size_t)cap * cols[k].size);
            if (!p)
                return -ENOMEM;
            *cols[k].ptr = p;
        }
        c->cap = cap;
    }
    /* Room in every brick the rows fall into, counting each row as a possible new
     * voxel. */
    uint32_t nb = lm__chunk_n_bricks(s);
    uint32_t *per = lm_calloc(nb, sizeof *per);
    if (!per)
        return -ENOMEM;
    for (uint32_t k = 0; k < count; k++) {
        uint32_t v[3], bi, slot;
        local_voxel(c, s, b->x[idx[k]], b->y[idx[k]], b->z[idx[k]], v);
        brick_pos(s, v, &bi, &slot);
        per[bi]++;
    }
    int rc = 0;
    for (uint32_t bi = 0; bi < nb && !rc; bi++)
        if (per[bi])
            rc = brick_reserve(c, bi, per[bi]);
    lm_free(per);
    return rc;
}

/* ---------------------------------------------------------------- writes */

void lm__chunk_order_rows(const int32_t coord[3], const struct lm_schema *s,
                          const struct lm_batch *b, uint32_t *idx, uint32_t count,
                          uint32_t *scratch)
{
    uint32_t nb = lm__chunk_n_bricks(s), *start = scratch + count;
    struct lm_chunk probe;
    memcpy(probe.coord, coord, sizeof probe.coord);
    memset(start, 0, (nb + 1) * sizeof *start);
    /* counting sort by brick: scratch[k] holds row k's brick first */
    for (uint32_t k = 0; k < count; k++) {
        uint32_t v[3], bi, slot;
        local_voxel(&probe, s, b->x[idx[k]], b->y[idx[k]], b->z[idx[k]], v);
        brick_pos(s, v, &bi, &slot);
        scratch[k] = bi;
        start[bi + 1]++;
    }
    for (uint32_t i = 0; i < nb; i++)
        start[i + 1] += start[i];
    /* brick number -> destination of row k (stable) */
    for (uint32_t k = 0; k < count; k++)
        scratch[k] = start[scratch[k]]++;
    /* apply the permutation dest[] to idx in place by cycles */
    for (uint32_t k = 0; k < count; k++) {
        while (scratch[k] != k) {
            uint32_t d = scratch[k];
            uint32_t ti = idx[d], td = scratch[d];
            idx[d] = idx[k];
            scratch[d] = d;
            idx[k] = ti;
            scratch[k] = td;
        }
    }
}

void lm__chunk_append(struct lm_chunk *c, const struct lm_schema *s,
                      const struct lm_batch *b, const float *dir_norm,
                      const uint32_t *idx, uint32_t count)
{
    static const float default_dir[3] = {0.0f, 0.0f, 1.0f};
    for (uint32_t k = 0; k < count; k++) {
        uint32_t j = idx[k], i = c->n++;
        c->x[i] = b->x[j];
        c->y[i] = b->y[j];
        c->z[i] = b->z[j];
        lm_dir_encode(dir_norm ? &dir_norm[3 * j] : default_dir, &c->dir[2 * i]);
        c->r[i] = b->r ? colour_encode(b->r[j]) : 255;
        c->g[i] = b->g ? colour_encode(b->g[j]) : 255;
        c->b[i] = b->b ? colour_encode(b->b[j]) : 255;
        c->intensity[i] = b->intensity ? b->intensity[j] : 1.0f;
        c->t[i] = b->t ? b->t[j] : 0;
        for (uint32_t u = 0; u < s->n_user; u++) {
            size_t sz = lm__type_size(s->user_type[u]);
            uint8_t *dst = (uint8_t *)c->user[u] + (size_t)i * sz;
            if (b->user[u])
                memcpy(dst, (const uint8_t *)b->user[u] + (size_t)j * sz, sz);
            else
                memset(dst, 0, sz);
        }
        vox_add_row(c, s, i);
        bounds_add(c, i);
    }
}

/* Stable LSD radix sort of (code, index) pairs by code, 16 bits a pass; passes whose
 * digit is the same for every key are skipped. */
static int radix_sort(uint64_t *code, uint32_t *idx, uint32_t n)
{
    uint64_t *code2 = lm_alloc((size_t)n * sizeof *code2);
    uint32_t *idx2 = lm_alloc((size_t)n * sizeof *idx2);
    uint32_t *count = lm_alloc(65536 * sizeof *count);
    if (!code2 || !idx2 || !count) {
        lm_free(code2);
        lm_free(idx2);
        lm_free(count);
        return -ENOMEM;
    }
    for (int shift = 0; shift < 64; shift += 16) {
        memset(count, 0, 65536 * sizeof *count);
        for (uint32_t i = 0; i < n; i++)
            count[(code[i] >> shift) & 0xffff]++;
        if (n && count[(code[0] >> shift) & 0xffff] == n)
            continue;
        uint32_t sum = 0;
        for (uint32_t d = 0; d < 65536; d++) {
            uint32_t t = count[d];
            count[d] = sum;
            sum += t;
        }
        for (uint32_t i = 0; i < n; i++) {
            uint32_t pos = count[(code[i] >> shift) & 0xffff]++;
            code2[pos] = code[i];
            idx2[pos] = idx[i];
        }
        memcpy(code, code2, (size_t)n * sizeof *code);
        memcpy(idx, idx2, (size_t)n * sizeof *idx);
    }
    lm_free(code2);
    lm_free(idx2);
    lm_free(count);
    return 0;
}

/* Copies rows perm[0..n_new) of every column into fresh exact-size arrays (fresh[k]
 * in column_refs order). The chunk is not changed. All or nothing. */
static int gather(struct lm_chunk *c, const struct lm_schema *s, const uint32_t *perm,
                  uint32_t n_new, void *fresh[LM__MAX_COLUMNS])
{
    struct lm__column_ref cols[LM__MAX_COLUMNS];
    uint32_t nc = lm__chunk_columns(c, s, cols);
    uint32_t cap = n_new ? n_new : 1;
    for (uint32_t k = 0; k < nc; k++) {
        fresh[k] = lm_alloc((size_t)cap * cols[k].size);
        if (!fresh[k]) {
            for (uint32_t j = 0; j < k; j++)
                lm_free(fresh[j]);
            return -ENOMEM;
        }
    }
    for (uint32_t k = 0; k < nc; k++) {
        const uint8_t *src = *cols[k].ptr;
        uint8_t *dst = fresh[k];
        switch (cols[k].size) {
        case 1:
            for (uint32_t i = 0; i < n_new; i++)
                dst[i] = src[perm[i]];
            break;
        case 4:
            for (uint32_t i = 0; i < n_new; i++)
                ((uint32_t *)dst)[i] = ((const uint32_t *)src)[perm[i]];
            break;
        default:
            for (uint32_t i = 0; i < n_new; i++)
                ((uint64_t *)dst)[i] = ((const uint64_t *)src)[perm[i]];
            break;
        }
    }
    return 0;
}

static void free_arrays(void **arr, uint32_t n)
{
    for (uint32_t k = 0; k < n; k++)
        lm_free(arr[k]);
}

/* Installs arrays from gather() as the chunk's columns, freeing the old ones. */
static void install(struct lm_chunk *c, const struct lm_schema *s,
                    void *fresh[LM__MAX_COLUMNS], uint32_t n_new)
{
    struct lm__column_ref cols[LM__MAX_COLUMNS];
    uint32_t nc = lm__chunk_columns(c, s, cols);
    for (uint32_t k = 0; k < nc; k++) {
        lm_free(*cols[k].ptr);
        *cols[k].ptr = fresh[k];
    }
    c->n = n_new;
    c->cap = n_new ? n_new : 1;
}

/* Drops the kd-tree; the next query rebuilds it over the new sorted rows (chunk.h
 * invariant 2). Writers hold the database write lock, so no reader holds it. */
static void drop_index(struct lm_chunk *c)
{
    lm_kdtree_free(atomic_exchange(&c->kd, NULL));
}

const lm_kdtree *lm__chunk_index(const struct lm_chunk *cc)
{
    struct lm_chunk *c = (struct lm_chunk *)cc; /* the index is a cache: mutable */
    lm_kdtree *t = atomic_load_explicit(&c->kd, memory_order_acquire);
    if (t || !c->n_sorted)
        return t;
    pthread_mutex_lock(&c->kd_lock);
    t = atomic_load_explicit(&c->kd, memory_order_acquire);
    if (!t && lm_kdtree_build(c->x, c->y, c->z, c->n_sorted, &t) == 0)
        atomic_store_explicit(&c->kd, t, memory_order_release);
    pthread_mutex_unlock(&c->kd_lock);
    return t;
}

int lm__chunk_compact(struct lm_chunk *c, const struct lm_schema *s, bool force)
{
    uint32_t tail = c->n - c->n_sorted;
    if (!force && (tail <= TAIL_MIN || tail <= c->n_sorted / 4))
        return 0;
    if (tail == 0)
        return 0;
    uint32_t n = c->n;
    uint64_t *code = lm_alloc((size_t)n * sizeof *code);
    uint32_t *perm = lm_alloc((size_t)n * sizeof *perm);
    int rc = -ENOMEM;
    if (!code || !perm)
        goto out;
    for (uint32_t i = 0; i < n; i++) {
        code[i] = row_code(c, s, i);
        perm[i] = i;
    }
    /* Sort the tail, then merge it with the sorted head; head wins ties, which keeps
     * equal codes in insertion order. */
    rc = radix_sort(code + c->n_sorted, perm + c->n_sorted, tail);
    if (rc)
        goto out;
    if (c->n_sorted) {
        uint64_t *mcode = lm_alloc((size_t)n * sizeof *mcode);
        uint32_t *mperm = lm_alloc((size_t)n * sizeof *mperm);
        if (!mcode || !mperm) {
            lm_free(mcode);
            lm_free(mperm);
            rc = -ENOMEM;
            goto out;
        }
        uint32_t a = 0, b = c->n_sorted, o = 0;
        while (a < c->n_sorted && b < n) {
            if (code[b] < code[a]) {
                mcode[o] = code[b];
                mperm[o++] = perm[b++];
            } else {
                mcode[o] = code[a];
                mperm[o++] = perm[a++];
            }
        }
        while (a < c->n_sorted) {
            mcode[o] = code[a];
            mperm[o++] = perm[a++];
        }
        while (b < n) {
            mcode[o] = code[b];
            mperm[o++] = perm[b++];
        }
        lm_free(code);
        lm_free(perm);
        code = mcode;
        perm = mperm;
    }
    void *fresh[LM__MAX_COLUMNS];
    rc = gather(c, s, perm, n, fresh);
    if (rc)
        goto out;
    install(c, s, fresh, n);
    c->n_sorted = n;
    bricks_fit(c, s);
    drop_index(c);
out:
    lm_free(code);
    lm_free(perm);
    return rc;
}

int lm__chunk_retain(struct lm_chunk *c, const struct lm_schema *s, const bool *keep)
{
    uint32_t m = 0, sorted_kept = 0;
    for (uint32_t i = 0; i < c->n; i++) {
        m += keep[i];
        sorted_kept += keep[i] && i < c->n_sorted;
    }
    uint32_t *perm = lm_alloc((size_t)(m ? m : 1) * sizeof *perm);
    struct lm__brick **fresh = lm_calloc(lm__chunk_n_bricks(s), sizeof *fresh);
    /* Everything that can fail happens before the chunk changes. */
    if (!perm || !fresh) {
        lm_free(perm);
        lm_free(fresh);
        return -ENOMEM;
    }
    m = 0;
    for (uint32_t i = 0; i < c->n; i++)
        if (keep[i])
            perm[m++] = i;
    void *cols[LM__MAX_COLUMNS];
    int rc = gather(c, s, perm, m, cols);
    lm_free(perm);
    if (rc) {
        lm_free(fresh);
        return rc;
    }
    /* size the new bricks from the kept rows, seen through a copy of the chunk */
    struct lm_chunk kept = *c;
    struct lm__column_ref refs[LM__MAX_COLUMNS];
    uint32_t nc = lm__chunk_columns(&kept, s, refs);
    for (uint32_t k = 0; k < nc; k++)
        *refs[k].ptr = cols[k];
    kept.n = m;
    rc = bricks_build(&kept, s, fresh);
    if (rc) {
        free_arrays(cols, nc);
        return rc;
    }
    install(c, s, cols, m);
    c->n_sorted = sorted_kept;
    bricks_fill(c, s, fresh);
    drop_index(c);
    return 0;
}

/* ---------------------------------------------------------------- reads */

double lm__chunk_value(const struct lm_chunk *c, const struct lm_schema *s, int column,
                       uint32_t i)
{
    switch (column) {
    case LM_COL_X: return c->x[i];
    case LM_COL_Y: return c->y[i];
    case LM_COL_Z: return c->z[i];
    case LM_COL_DX:
    case LM_COL_DY:
    case LM_COL_DZ: {
        float d[3];
        lm_dir_decode(&c->dir[2 * i], d);
        return d[column - LM_COL_DX];
    }
    case LM_COL_R: return colour_decode(c->r[i]);
    case LM_COL_G: return colour_decode(c->g[i]);
    case LM_COL_B: return colour_decode(c->b[i]);
    case LM_COL_INTENSITY: return c->intensity[i];
    case LM_COL_T: return (double)c->t[i];
    default: break;
    }
    uint32_t u = (uint32_t)(column - LM_COL_USER);
    if (u >= s->n_user)
        return 0.0;
    switch (s->user_type[u]) {
    case LM_TYPE_F32: return ((const float *)c->user[u])[i];
    case LM_TYPE_I32: return ((const int32_t *)c->user[u])[i];
    case LM_TYPE_U8: return ((const uint8_t *)c->user[u])[i];
    }
    return 0.0;
}
