/* chunk.c - columns, voxel aggregates, Morton ordering and the search index of a chunk.
 *
 * Inserts go to an unsorted tail (cheap appends); when the tail outgrows a quarter of
 * the sorted rows it is radix-sorted by Morton code and merged in, and the kd-tree is
 * rebuilt. Each row is thus moved O(log n) times over its life, while queries see at
 * most a bounded tail to scan linearly. */
#include "chunk.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "alloc.h"
#include "kdtree.h"
#include "morton.h"
#include "sh.h"

#define TAIL_MIN 256u        /* a tail this small is never worth sorting */
#define VOX_LOAD_NUM 7u      /* voxel table load factor <= 7/10 */
#define VOX_LOAD_DEN 10u

/* ---------------------------------------------------------------- helpers */

size_t lm__type_size(enum lm_type t)
{
    return t == LM_TYPE_U8 ? 1 : 4;
}

static float colour_decode(uint8_t v) { return (float)v * (1.0f / 255.0f); }

static uint8_t colour_encode(float v) { return (uint8_t)lrintf(v * 255.0f); }

static uint32_t vox_hash(uint32_t key, uint32_t cap)
{
    return (key * 0x9e3779b1u) >> (32 - __builtin_ctz(cap));
}

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

/* ---------------------------------------------------------------- voxel table */

static struct lm__voxel_agg *vox_slot(struct lm__voxel_agg *tab, uint32_t cap, uint32_t key)
{
    uint32_t h = vox_hash(key, cap);
    while (tab[h].key && tab[h].key != key)
        h = (h + 1) & (cap - 1);
    return &tab[h];
}

const struct lm__voxel_agg *lm__chunk_voxel(const struct lm_chunk *c, uint32_t lx,
                                            uint32_t ly, uint32_t lz)
{
    if (!c->vox_cap)
        return NULL;
    uint32_t key = (lx | ly << 8 | lz << 16) + 1;
    const struct lm__voxel_agg *v = vox_slot(c->vox, c->vox_cap, key);
    return v->key ? v : NULL;
}

static uint32_t vox_cap_for(uint32_t n)
{
    uint32_t cap = 16;
    while ((uint64_t)cap * VOX_LOAD_NUM < (uint64_t)n * VOX_LOAD_DEN)
        cap <<= 1;
    return cap;
}

/* Re-hashes into a table of `cap` slots. */
static int vox_rehash(struct lm_chunk *c, uint32_t cap)
{
    struct lm__voxel_agg *tab = lm_calloc(cap, sizeof *tab);
    if (!tab)
        return -ENOMEM;
    for (uint32_t i = 0; i < c->vox_cap; i++)
        if (c->vox[i].key)
            *vox_slot(tab, cap, c->vox[i].key) = c->vox[i];
    lm_free(c->vox);
    c->vox = tab;
    c->vox_cap = cap;
    return 0;
}

/* Grows the table to hold `want` voxels. */
static int vox_resize(struct lm_chunk *c, uint32_t want)
{
    uint32_t cap = vox_cap_for(want);
    return cap <= c->vox_cap ? 0 : vox_rehash(c, cap);
}

/* Inserts reserve room for the worst case (every row a new voxel); give back what was
 * not used. Best effort: a larger table is still correct. */
static void vox_fit(struct lm_chunk *c)
{
    uint32_t cap = vox_cap_for(c->vox_n);
    if (cap < c->vox_cap)
        vox_rehash(c, cap);
}

/* Adds row i to its voxel; the table has room (reserved). */
static void vox_add_row(struct lm_chunk *c, const struct lm_schema *s, uint32_t i)
{
    uint32_t v[3];
    local_voxel(c, s, c->x[i], c->y[i], c->z[i], v);
    uint32_t key = (v[0] | v[1] << 8 | v[2] << 16) + 1;
    struct lm__voxel_agg *a = vox_slot(c->vox, c->vox_cap, key);
    if (!a->key) {
        a->key = key;
        c->vox_n++;
    }
    float col[3] = {colour_decode(c->r[i]), colour_decode(c->g[i]), colour_decode(c->b[i])};
    float d[3], y[4];
    lm_dir_decode(&c->dir[2 * i], d);
    lm_sh_basis(d, y);
    a->count++;
    a->sum_r += col[0];
    a->sum_g += col[1];
    a->sum_b += col[2];
    a->sum_i += c->intensity[i];
    for (int ch = 0; ch < 3; ch++) {
        float f = col[ch] * c->intensity[i];
        for (int k = 0; k < 4; k++)
            a->sh[ch][k] += f * y[k];
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

static void bounds_reset(struct lm_chunk *c)
{
    for (int a = 0; a < 3; a++) {
        c->bmin[a] = INFINITY;
        c->bmax[a] = -INFINITY;
    }
}

/* Refills the (empty, large enough) voxel table and the bounds from the rows. */
static void fill_voxels(struct lm_chunk *c, const struct lm_schema *s)
{
    c->vox_n = 0;
    bounds_reset(c);
    for (uint32_t i = 0; i < c->n; i++) {
        vox_add_row(c, s, i);
        bounds_add(c, i);
    }
}

int lm__chunk_recompute(struct lm_chunk *c, const struct lm_schema *s)
{
    uint32_t vox_max = s->edge * s->edge * s->edge;
    uint32_t cap = vox_cap_for(c->n < vox_max ? c->n : vox_max);
    struct lm__voxel_agg *tab = lm_calloc(cap, sizeof *tab);
    if (!tab)
        return -ENOMEM;
    lm_free(c->vox);
    c->vox = tab;
    c->vox_cap = cap;
    fill_voxels(c, s);
    return 0;
}

/* ---------------------------------------------------------------- lifetime */

struct lm_chunk *lm__chunk_new(const int32_t coord[3])
{
    struct lm_chunk *c = lm_calloc(1, sizeof *c);
    if (!c)
        return NULL;
    memcpy(c->coord, coord, sizeof c->coord);
    bounds_reset(c);
    return c;
}

/* Pointers to every column array with its element size, for bulk operations. */
struct column_ref {
    void **ptr;
    size_t size;
};

static uint32_t column_refs(struct lm_chunk *c, const struct lm_schema *s,
                            struct column_ref out[11 + LM_MAX_USER_COLUMNS])
{
    uint32_t n = 0;
    out[n++] = (struct column_ref){(void **)&c->x, 4};
    out[n++] = (struct column_ref){(void **)&c->y, 4};
    out[n++] = (struct column_ref){(void **)&c->z, 4};
    out[n++] = (struct column_ref){(void **)&c->dir, 4};
    out[n++] = (struct column_ref){(void **)&c->r, 1};
    out[n++] = (struct column_ref){(void **)&c->g, 1};
    out[n++] = (struct column_ref){(void **)&c->b, 1};
    out[n++] = (struct column_ref){(void **)&c->intensity, 4};
    out[n++] = (struct column_ref){(void **)&c->t, 8};
    for (uint32_t u = 0; u < s->n_user; u++)
        out[n++] = (struct column_ref){&c->user[u], lm__type_size(s->user_type[u])};
    return n;
}

void lm__chunk_free(struct lm_chunk *c, const struct lm_schema *s)
{
    if (!c)
        return;
    struct column_ref cols[11 + LM_MAX_USER_COLUMNS];
    uint32_t nc = column_refs(c, s, cols);
    for (uint32_t k = 0; k < nc; k++)
        lm_free(*cols[k].ptr);
    lm_free(c->vox);
    lm_kdtree_free(c->kd);
    lm_free(c);
}

size_t lm__chunk_memory(const struct lm_chunk *c, const struct lm_schema *s)
{
    size_t row = 4 * 3 + 4 + 3 + 4 + 8;
    for (uint32_t u = 0; u < s->n_user; u++)
        row += lm__type_size(s->user_type[u]);
    return sizeof *c + (size_t)c->cap * row + (size_t)c->vox_cap * sizeof(struct lm__voxel_agg) +
           lm_kdtree_memory_bytes(c->kd);
}

int lm__chunk_reserve(struct lm_chunk *c, const struct lm_schema *s, uint32_t extra)
{
    uint64_t need = (uint64_t)c->n + extra;
    if (need > UINT32_MAX / 2)
        return -ENOMEM;
    if (need > c->cap) {
        uint32_t cap = c->cap + c->cap / 2;
        if (cap < need)
            cap = (uint32_t)need;
        if (cap < 64)
            cap = 64;
        struct column_ref cols[11 + LM_MAX_USER_COLUMNS];
        uint32_t nc = column_refs(c, s, cols);
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
    uint64_t vox_max = (uint64_t)s->edge * s->edge * s->edge;
    uint64_t vox_want = (uint64_t)c->vox_n + extra;
    return vox_resize(c, (uint32_t)(vox_want < vox_max ? vox_want : vox_max));
}

/* ---------------------------------------------------------------- writes */

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
    vox_fit(c);
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

/* Replaces every column by its rows perm[0..n_new) (a permutation or a subset),
 * allocating exact-size arrays. All or nothing. */
static int gather_columns(struct lm_chunk *c, const struct lm_schema *s,
                          const uint32_t *perm, uint32_t n_new)
{
    struct column_ref cols[11 + LM_MAX_USER_COLUMNS];
    uint32_t nc = column_refs(c, s, cols);
    void *fresh[11 + LM_MAX_USER_COLUMNS] = {0};
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
        size_t sz = cols[k].size;
        switch (sz) {
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
        lm_free(*cols[k].ptr);
        *cols[k].ptr = fresh[k];
    }
    c->cap = cap;
    c->n = n_new;
    return 0;
}

/* Rebuilds the kd-tree over the sorted rows; on failure the chunk goes without one
 * and queries scan (chunk.h invariant 2 allows a missing index). */
static void rebuild_index(struct lm_chunk *c)
{
    lm_kdtree_free(c->kd);
    c->kd = NULL;
    if (c->n_sorted)
        lm_kdtree_build(c->x, c->y, c->z, c->n_sorted, &c->kd);
}

int lm__chunk_compact(struct lm_chunk *c, const struct lm_schema *s, bool force)
{
    uint32_t tail = c->n - c->n_sorted;
    if (!force && (tail <= TAIL_MIN || tail <= c->n_sorted / 4))
        return 0;
    if (tail == 0) {
        if (!c->kd && c->n_sorted)
            rebuild_index(c);
        return 0;
    }
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
    rc = gather_columns(c, s, perm, n);
    if (rc)
        goto out;
    c->n_sorted = n;
    rebuild_index(c);
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
    uint32_t vox_max = s->edge * s->edge * s->edge;
    uint32_t cap = vox_cap_for(m < vox_max ? m : vox_max);
    struct lm__voxel_agg *tab = lm_calloc(cap, sizeof *tab);
    /* Everything that can fail happens before the chunk changes. */
    if (!perm || !tab) {
        lm_free(perm);
        lm_free(tab);
        return -ENOMEM;
    }
    m = 0;
    for (uint32_t i = 0; i < c->n; i++)
        if (keep[i])
            perm[m++] = i;
    int rc = gather_columns(c, s, perm, m);
    lm_free(perm);
    if (rc) {
        lm_free(tab);
        return rc;
    }
    lm_free(c->vox);
    c->vox = tab;
    c->vox_cap = cap;
    c->n_sorted = sorted_kept;
    fill_voxels(c, s);
    rebuild_index(c);
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
