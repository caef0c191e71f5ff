/* chunk.c - columns, voxel aggregates, Morton ordering and the search index of a chunk.
 *
 * Inserts go to an unsorted tail (cheap appends, one column at a time); when the tail
 * outgrows a quarter of the sorted rows it is radix-sorted by Morton code and merged
 * into the sorted rows in place, and the kd-tree is rebuilt. The merge moves only the
 * sorted rows behind the first insertion point and computes Morton codes only for the
 * sorted rows it has to compare. Each row is thus moved O(log n) times over its life,
 * while queries see at most a bounded tail to scan linearly. */
#include "chunk.h"

#include <errno.h>
#include <stdatomic.h>
#include <math.h>
#include <string.h>

#include "alloc.h"
#include "kdtree.h"
#include "morton.h"
#include "octdir.h"
#include "sh.h"

#define TAIL_MIN 256u        /* a tail this small is never worth sorting */

/* ---------------------------------------------------------------- helpers */

size_t lm__type_size(enum lm_type t)
{
    return t == LM_TYPE_U8 ? 1 : 4;
}

static float colour_decode(uint8_t v) { return (float)v * (1.0f / 255.0f); }

/* lrintf(v * 255) for v in [0, 1] (validated) without a libm call: adding and taking
 * away 2^23 rounds to the nearest integer, ties to even, like lrintf. */
static uint8_t colour_encode(float v)
{
    float q = v * 255.0f;
    return (uint8_t)(int32_t)((q + 8388608.0f) - 8388608.0f);
}

/* Local voxel key of a row of this chunk (invariant 3 makes the low bits the local
 * voxel). */
static uint32_t row_vkey(const struct lm_schema *s, float x, float y, float z)
{
    return lm__vkey(lm_voxel_of(x, s->inv_voxel), lm_voxel_of(y, s->inv_voxel),
                    lm_voxel_of(z, s->inv_voxel), s->log2_edge);
}

/* One axis of a row's Morton position (morton.h invariant 2): the local voxel
 * floor(u) - k above sub_bits bits of the position inside the voxel. floor comes from
 * rounding by adding and taking away 2^52 (|u| < 2^39 for stored rows), so a loop of
 * these vectorises; the value is the same as with floor(). */
static inline uint32_t axis_code(float p, double inv_voxel, double k, double scale,
                                 int32_t frac_max, uint32_t sub_bits)
{
    double u = (double)p * inv_voxel;
    double m = copysign(0x1p52, u);
    double r = (u + m) - m;
    double v = r - (r > u ? 1.0 : 0.0);
    int32_t local = (int32_t)(v - k);
    int32_t frac = (int32_t)((u - v) * scale);
    frac = frac > frac_max ? frac_max : frac;
    return (uint32_t)local << sub_bits | (uint32_t)frac;
}

/* Morton codes of rows [first, first + count) into out. */
static void codes_of(const struct lm_chunk *c, const struct lm_schema *s, uint32_t first,
                     uint32_t count, uint64_t *restrict out)
{
    uint32_t sub_bits = LM_MORTON_BITS - s->log2_edge;
    double scale = (double)(1u << sub_bits), inv = s->inv_voxel, k[3];
    int32_t frac_max = (int32_t)(1u << sub_bits) - 1;
    for (int a = 0; a < 3; a++)
        k[a] = (double)((int64_t)c->coord[a] * (int64_t)s->edge);
    const float *restrict x = c->x + first, *restrict y = c->y + first,
                          *restrict z = c->z + first;
    for (uint32_t i = 0; i < count; i++)
        out[i] = lm_morton_spread(axis_code(x[i], inv, k[0], scale, frac_max, sub_bits)) |
                 lm_morton_spread(axis_code(y[i], inv, k[1], scale, frac_max, sub_bits)) << 1 |
                 lm_morton_spread(axis_code(z[i], inv, k[2], scale, frac_max, sub_bits)) << 2;
}

static uint64_t row_code(const struct lm_chunk *c, const struct lm_schema *s, uint32_t i)
{
    uint64_t code;
    codes_of(c, s, i, 1, &code);
    return code;
}

/* ---------------------------------------------------------------- bricks */

/* Brick number of a local voxel key: v / be + (v / be + (v / be) * nb) * nb per axis,
 * in shifts (brick edge and bricks per side are powers of two). */
static uint32_t brick_of(const struct lm_schema *s, uint32_t key)
{
    uint32_t lb = s->log2_edge < 3 ? s->log2_edge : 3, lnb = s->log2_edge - lb;
    return (key & 0xff) >> lb | ((key >> 8 & 0xff) >> lb) << lnb |
           ((key >> 16) >> lb) << 2 * lnb;
}

/* Slot of a local voxel key in its brick: v % be + (v % be + (v % be) * be) * be. */
static uint32_t slot_of(const struct lm_schema *s, uint32_t key)
{
    uint32_t lb = s->log2_edge < 3 ? s->log2_edge : 3, m = (1u << lb) - 1;
    return (key & m) | (key >> 8 & m) << lb | (key >> 16 & m) << 2 * lb;
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

#define KEY_RUN 256u /* rows are handed to vox_add_rows in runs of at most this many */
#define PREFETCH 16u /* rows ahead whose slot table or aggregate is prefetched */

/* Adds `count` (<= KEY_RUN) rows to their voxels and to the chunk totals: the k-th is
 * row first + rows[k] (first + k if rows is NULL) with local voxel key key[k]; their
 * bricks have room (reserved). Sums are taken row by row in that order. Each voxel is
 * usually cold (one sample per voxel is common), so the run is done in two passes:
 * find (or create) every row's aggregate with the slot tables prefetched ahead, then
 * add the rows with their aggregates prefetched ahead. */
static void vox_add_rows(struct lm_chunk *c, const struct lm_schema *s, uint32_t first,
                         const uint32_t *rows, uint32_t count, const uint32_t *key)
{
    struct lm__voxel_agg *agg[KEY_RUN];
    for (uint32_t k = 0; k < count; k++) {
        if (k + PREFETCH < count) {
            uint32_t kk = key[k + PREFETCH];
            __builtin_prefetch(&c->bricks[brick_of(s, kk)]->slot[slot_of(s, kk)], 1);
        }
        uint32_t slot = slot_of(s, key[k]);
        struct lm__brick *br = c->bricks[brick_of(s, key[k])];
        if (br->slot[slot]) {
            agg[k] = &br->agg[br->slot[slot] - 1];
        } else {
            struct lm__voxel_agg *a = agg[k] = &br->agg[br->n++];
            memset(a, 0, sizeof *a);
            a->key = key[k] + 1;
            br->slot[slot] = (uint16_t)br->n;
            c->vox_n++;
        }
    }
    /* the rows' directions, decoded in a loop of their own (it vectorises) */
    uint16_t du[2][KEY_RUN];
    float dv[3][KEY_RUN];
    for (uint32_t k = 0; k < count; k++) {
        uint32_t i = first + (rows ? rows[k] : k);
        du[0][k] = c->dir[2 * i];
        du[1][k] = c->dir[2 * i + 1];
    }
    for (uint32_t k = 0; k < count; k++) {
        const uint16_t in[2] = {du[0][k], du[1][k]};
        float d[3];
        lm__oct_decode(in, d);
        dv[0][k] = d[0];
        dv[1][k] = d[1];
        dv[2][k] = d[2];
    }
    double tot[4] = {c->sum_r, c->sum_g, c->sum_b, c->sum_i}, tsh[3][4];
    memcpy(tsh, c->sh, sizeof tsh);
    for (uint32_t k = 0; k < count; k++) {
        if (k + PREFETCH < count) {
            const char *pa = (const char *)agg[k + PREFETCH];
            __builtin_prefetch(pa, 1);
            __builtin_prefetch(pa + sizeof(struct lm__voxel_agg) - 1, 1);
        }
        uint32_t i = first + (rows ? rows[k] : k);
        struct lm__voxel_agg *a = agg[k];
        float col[3] = {colour_decode(c->r[i]), colour_decode(c->g[i]),
                        colour_decode(c->b[i])};
        float d[3] = {dv[0][k], dv[1][k], dv[2][k]}, y[4];
        lm_sh_basis(d, y);
        float in = c->intensity[i];
        a->count++;
        a->sum_r += col[0];
        a->sum_g += col[1];
        a->sum_b += col[2];
        a->sum_i += in;
        tot[0] += col[0];
        tot[1] += col[1];
        tot[2] += col[2];
        tot[3] += in;
        for (int ch = 0; ch < 3; ch++) {
            float f = col[ch] * in;
            for (int q = 0; q < 4; q++) {
                a->sh[ch][q] += f * y[q];
                tsh[ch][q] += f * y[q];
            }
        }
    }
    c->sum_r = tot[0];
    c->sum_g = tot[1];
    c->sum_b = tot[2];
    c->sum_i = tot[3];
    memcpy(c->sh, tsh, sizeof tsh);
}

/* Widens the bounds by rows [first, first + count). */
static void bounds_add_rows(struct lm_chunk *c, uint32_t first, uint32_t count)
{
    const float *p[3] = {c->x, c->y, c->z};
    for (int a = 0; a < 3; a++) {
        float lo = c->bmin[a], hi = c->bmax[a];
        for (uint32_t i = first; i < first + count; i++) {
            lo = p[a][i] < lo ? p[a][i] : lo;
            hi = p[a][i] > hi ? p[a][i] : hi;
        }
        c->bmin[a] = lo;
        c->bmax[a] = hi;
    }
}

/* Adds rows [first, first + count) to voxels, totals and bounds, computing their voxel
 * keys from the positions. */
static void rows_add(struct lm_chunk *c, const struct lm_schema *s, uint32_t first,
                     uint32_t count)
{
    uint32_t key[KEY_RUN];
    for (uint32_t i0 = first; i0 < first + count; i0 += KEY_RUN) {
        uint32_t m = first + count - i0 < KEY_RUN ? first + count - i0 : KEY_RUN;
        for (uint32_t k = 0; k < m; k++)
            key[k] = row_vkey(s, c->x[i0 + k], c->y[i0 + k], c->z[i0 + k]);
        vox_add_rows(c, s, i0, NULL, m, key);
    }
    bounds_add_rows(c, first, count);
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
    for (uint32_t i = 0; i < c->n; i++)
        per[brick_of(s, row_vkey(s, c->x[i], c->y[i], c->z[i]))]++;
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
 * effort: a failed shrink keeps the larger (valid) array. While a chunk grows (not
 * tight) only room beyond what growth by doubling leaves is given back: shrinking
 * to fit after every merge would regrow (copy) the arrays on the next insert. */
static void bricks_fit(struct lm_chunk *c, const struct lm_schema *s, bool tight)
{
    for (uint32_t i = 0, nb = lm__chunk_n_bricks(s); i < nb; i++) {
        struct lm__brick *br = c->bricks[i];
        if (!br || br->cap <= br->n + (tight ? br->n / 8 : br->n + 64))
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
    rows_add(c, s, 0, c->n);
    bricks_fit(c, s, true);
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

int lm__chunk_reserve(struct lm_chunk *c, const struct lm_schema *s,
                      const struct lm__staged *st, const uint32_t *idx, uint32_t count)
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
    for (uint32_t k = 0; k < count; k++)
        per[brick_of(s, st->vkey[idx[k]])]++;
    int rc = 0;
    for (uint32_t bi = 0; bi < nb && !rc; bi++)
        if (per[bi])
            rc = brick_reserve(c, bi, per[bi]);
    lm_free(per);
    return rc;
}

/* ---------------------------------------------------------------- writes */

void lm__chunk_order_rows(const struct lm_schema *s, const uint32_t *vkey,
                          const uint32_t *batch_row, uint32_t *by_brick, uint32_t count,
                          uint32_t *scratch)
{
    uint32_t nb = lm__chunk_n_bricks(s), *start = scratch + count;
    memset(start, 0, (nb + 1) * sizeof *start);
    /* counting sort by brick: scratch[r] holds row r's brick first */
    for (uint32_t r = 0; r < count; r++) {
        uint32_t bi = brick_of(s, vkey[batch_row[r]]);
        scratch[r] = bi;
        start[bi + 1]++;
    }
    for (uint32_t i = 0; i < nb; i++)
        start[i + 1] += start[i];
    for (uint32_t r = 0; r < count; r++)
        by_brick[start[scratch[r]]++] = r;
}

/* dst[k] = src[idx[k]] for an element size of 1, 4 or 8 bytes. */
static void gather_rows(void *dst, const void *src, size_t size, const uint32_t *idx,
                        uint32_t count)
{
    switch (size) {
    case 1:
        for (uint32_t k = 0; k < count; k++)
            ((uint8_t *)dst)[k] = ((const uint8_t *)src)[idx[k]];
        break;
    case 4:
        for (uint32_t k = 0; k < count; k++)
            ((uint32_t *)dst)[k] = ((const uint32_t *)src)[idx[k]];
        break;
    default:
        for (uint32_t k = 0; k < count; k++)
            ((uint64_t *)dst)[k] = ((const uint64_t *)src)[idx[k]];
        break;
    }
}

/* Column k (lm__chunk_columns order) of every chunk, at its first new row. */
static void column_bases(struct lm_chunk *const *chunk, uint32_t n_chunks,
                         const struct lm_schema *s, uint32_t k, void **base)
{
    for (uint32_t g = 0; g < n_chunks; g++) {
        struct lm__column_ref cols[LM__MAX_COLUMNS];
        lm__chunk_columns(chunk[g], s, cols);
        base[g] = (uint8_t *)*cols[k].ptr + (size_t)chunk[g]->n * cols[k].size;
    }
}

/* base[group[j]][rank[j]] = src[j] (or a constant when src is NULL) for every batch
 * row j: one sequential read, as many sequential write streams as chunks. Colour
 * columns (colour true) are quantised on the way. */
static void scatter_column(void **base, const struct lm__staged *st, const void *src,
                           size_t size, bool colour, uint64_t fill)
{
    const uint32_t *g = st->group, *r = st->rank;
    size_t n = st->b->n;
    if (colour) {
        for (size_t j = 0; j < n; j++)
            ((uint8_t *)base[g[j]])[r[j]] = src ? colour_encode(((const float *)src)[j]) : 255;
        return;
    }
    switch (size) {
    case 1:
        for (size_t j = 0; j < n; j++)
            ((uint8_t *)base[g[j]])[r[j]] = src ? ((const uint8_t *)src)[j] : (uint8_t)fill;
        break;
    case 4:
        for (size_t j = 0; j < n; j++)
            ((uint32_t *)base[g[j]])[r[j]] = src ? ((const uint32_t *)src)[j] : (uint32_t)fill;
        break;
    default:
        for (size_t j = 0; j < n; j++)
            ((uint64_t *)base[g[j]])[r[j]] = src ? ((const uint64_t *)src)[j] : fill;
        break;
    }
}

void lm__chunk_append(struct lm_chunk *const *chunk, uint32_t n_chunks,
                      const struct lm_schema *s, const struct lm__staged *st,
                      const struct lm__chunk_rows *rows, void **base)
{
    const struct lm_batch *b = st->b;
    uint16_t up[2];
    uint32_t up32, one;
    float one_f = 1.0f;
    lm__oct_encode((const float[3]){0.0f, 0.0f, 1.0f}, up);
    memcpy(&up32, up, sizeof up32);
    memcpy(&one, &one_f, sizeof one);
    /* the columns in lm__chunk_columns order, with their sources */
    const void *src[LM__MAX_COLUMNS] = {b->x, b->y, b->z, st->dir, b->r, b->g, b->b,
                                        b->intensity, b->t};
    const uint64_t fill[9] = {0, 0, 0, up32, 255, 255, 255, one, 0};
    struct lm__column_ref cols[LM__MAX_COLUMNS];
    uint32_t nc = lm__chunk_columns(chunk[0], s, cols);
    for (uint32_t k = 0; k < nc; k++) {
        column_bases(chunk, n_chunks, s, k, base);
        bool user = k >= 9;
        scatter_column(base, st, user ? b->user[k - 9] : src[k], cols[k].size,
                       k >= 4 && k <= 6, user ? 0 : fill[k]);
    }
    uint32_t key[KEY_RUN], at[KEY_RUN];
    for (uint32_t g = 0; g < n_chunks; g++) {
        struct lm_chunk *c = chunk[g];
        const struct lm__chunk_rows *cr = &rows[g];
        uint32_t first = c->n;
        c->n += cr->count;
        for (uint32_t k0 = 0; k0 < cr->count; k0 += KEY_RUN) {
            uint32_t m = cr->count - k0 < KEY_RUN ? cr->count - k0 : KEY_RUN;
            for (uint32_t k = 0; k < m; k++) {
                at[k] = cr->by_brick[k0 + k];
                key[k] = st->vkey[cr->batch_row[at[k]]];
            }
            vox_add_rows(c, s, first, at, m, key);
        }
        bounds_add_rows(c, first, cr->count);
    }
}

/* Stable LSD radix sort of (code, index) pairs by the low `bits` bits of code. The digit
 * width suits n (a 2^16 histogram per pass would dwarf a small tail); all histograms
 * come from one read; passes whose digit is the same for every key are skipped. */
static int radix_sort(uint64_t *code, uint32_t *idx, uint32_t n, uint32_t bits)
{
    uint32_t w = 6, passes;
    double best = 1e300;
    for (uint32_t d = 6; d <= 16; d++) {
        uint32_t p = (bits + d - 1) / d;
        double cost = (double)p * (3.0 * n + (double)(1u << d));
        if (cost < best) {
            best = cost;
            w = d;
        }
    }
    passes = (bits + w - 1) / w;
    uint32_t radix = 1u << w, mask = radix - 1;
    uint64_t *code2 = lm_alloc((size_t)n * sizeof *code2);
    uint32_t *idx2 = lm_alloc((size_t)n * sizeof *idx2);
    uint32_t *count = lm_calloc((size_t)passes << w, sizeof *count);
    if (!code2 || !idx2 || !count) {
        lm_free(code2);
        lm_free(idx2);
        lm_free(count);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t p = 0; p < passes; p++)
            count[(p << w) + (code[i] >> (p * w) & mask)]++;
    uint64_t *src_c = code, *dst_c = code2;
    uint32_t *src_i = idx, *dst_i = idx2;
    for (uint32_t p = 0; p < passes; p++) {
        uint32_t *cnt = count + (p << w), shift = p * w;
        if (n && cnt[code[0] >> shift & mask] == n)
            continue;
        uint32_t sum = 0;
        for (uint32_t d = 0; d < radix; d++) {
            uint32_t t = cnt[d];
            cnt[d] = sum;
            sum += t;
        }
        for (uint32_t i = 0; i < n; i++) {
            uint32_t pos = cnt[src_c[i] >> shift & mask]++;
            dst_c[pos] = src_c[i];
            dst_i[pos] = src_i[i];
        }
        uint64_t *tc = src_c;
        src_c = dst_c;
        dst_c = tc;
        uint32_t *ti = src_i;
        src_i = dst_i;
        dst_i = ti;
    }
    if (src_c != code) {
        memcpy(code, src_c, (size_t)n * sizeof *code);
        memcpy(idx, src_i, (size_t)n * sizeof *idx);
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
    for (uint32_t k = 0; k < nc; k++)
        gather_rows(fresh[k], *cols[k].ptr, cols[k].size, perm, n_new);
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

/* ins[b] = the number of sorted rows whose code is <= tcode[b] (tcode ascending): where
 * tail row b lands among them. Sorted rows are coded a block at a time, only as far
 * as the last landing point; a block wholly below the next tail code is skipped
 * uncoded (a tail clustered in a few voxels then costs little). */
static void landing_points(const struct lm_chunk *c, const struct lm_schema *s,
                           const uint64_t *tcode, uint32_t m, uint32_t *ins)
{
    enum { BLOCK = 256 };
    uint64_t h[BLOCK];
    uint32_t end = c->n_sorted, a = 0, lo = 0, hi = 0; /* h: codes of rows [lo, hi) */
    for (uint32_t b = 0; b < m; b++) {
        uint64_t t = tcode[b];
        for (;;) {
            if (a == hi) {
                if (a == end)
                    break;
                while (end - a > BLOCK && row_code(c, s, a + BLOCK - 1) <= t)
                    a += BLOCK;
                lo = a;
                hi = end - a < BLOCK ? end : a + BLOCK;
                codes_of(c, s, lo, hi - lo, h);
            }
            while (a < hi && h[a - lo] <= t)
                a++;
            if (a < hi)
                break;
        }
        ins[b] = a;
    }
}

/* Gives the columns back their unused capacity (after a forced compaction, so that
 * bulk-loaded chunks hold no slack). Best effort: an array that cannot shrink stays
 * larger, which is valid. */
static void columns_fit(struct lm_chunk *c, const struct lm_schema *s)
{
    if (c->cap <= c->n || !c->n)
        return;
    struct lm__column_ref cols[LM__MAX_COLUMNS];
    uint32_t nc = lm__chunk_columns(c, s, cols);
    for (uint32_t k = 0; k < nc; k++) {
        void *p = lm_realloc(*cols[k].ptr, (size_t)c->n * cols[k].size);
        if (p)
            *cols[k].ptr = p;
    }
    c->cap = c->n; /* every array holds at least n rows either way */
}

int lm__chunk_compact(struct lm_chunk *c, const struct lm_schema *s, bool force)
{
    uint32_t n_sorted = c->n_sorted, m = c->n - n_sorted;
    if (!force && (m <= TAIL_MIN || m <= n_sorted / 4))
        return 0;
    if (m == 0) {
        if (force) {
            bricks_fit(c, s, true);
            columns_fit(c, s);
        }
        return 0;
    }
    /* everything that can fail comes first; the chunk changes only after it */
    uint64_t *code = lm_alloc((size_t)m * sizeof *code);
    uint32_t *tidx = lm_alloc((size_t)m * sizeof *tidx);
    uint32_t *ins = lm_alloc((size_t)m * sizeof *ins), *perm = NULL;
    void *tmp = NULL;
    int rc = -ENOMEM;
    if (!code || !tidx || !ins)
        goto out;
    codes_of(c, s, n_sorted, m, code);
    for (uint32_t k = 0; k < m; k++)
        tidx[k] = k;
    if ((rc = radix_sort(code, tidx, m, 3 * LM_MORTON_BITS)))
        goto out;
    /* Landing points: sorted rows win ties, which keeps equal codes in insertion
     * order (invariant 1). Rows before the first landing point stay where they are. */
    landing_points(c, s, code, m, ins);
    uint32_t first = ins[0], span = c->n - first;
    perm = lm_alloc((size_t)span * sizeof *perm);
    tmp = lm_alloc((size_t)span * 8);
    rc = -ENOMEM;
    if (!perm || !tmp)
        goto out;
    /* perm[o]: where output row first + o comes from, counted from `first`; tail row b
     * lands at ins[b] + b, the sorted rows fill the other places in order (no
     * data-dependent branches: landing gaps are random) */
    for (uint32_t o = 0; o < span; o++)
        perm[o] = UINT32_MAX;
    for (uint32_t b = 0; b < m; b++)
        perm[ins[b] + b - first] = n_sorted - first + tidx[b];
    for (uint32_t o = 0, h = 0; o < span; o++) {
        bool from_tail = perm[o] != UINT32_MAX;
        perm[o] = from_tail ? perm[o] : h;
        h += !from_tail;
    }
    struct lm__column_ref cols[LM__MAX_COLUMNS];
    uint32_t nc = lm__chunk_columns(c, s, cols);
    for (uint32_t k = 0; k < nc; k++) {
        uint8_t *col = (uint8_t *)*cols[k].ptr + (size_t)first * cols[k].size;
        memcpy(tmp, col, (size_t)span * cols[k].size);
        gather_rows(col, tmp, cols[k].size, perm, span);
    }
    c->n_sorted = c->n;
    bricks_fit(c, s, force);
    if (force)
        columns_fit(c, s);
    drop_index(c);
    rc = 0;
out:
    lm_free(code);
    lm_free(tidx);
    lm_free(ins);
    lm_free(perm);
    lm_free(tmp);
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
