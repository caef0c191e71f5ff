/* scan_avx2.c - the AVX2 scan implementation (compiled with -mavx2 -mfma; reached only
 * through lm_scan_avx2(), which checks the CPU first).
 *
 * Rows go in blocks of 64: the region test and every predicate each give a 64-bit
 * mask (8-wide f32 compares, 8-wide i32, 32-wide u8, 4-wide i64, then movemask),
 * ANDed together; a block stops reading predicate columns once its mask is empty.
 * The mask is then compressed into indices (a nibble table, 8 indices per store) or
 * expanded back into lane masks for the aggregate. A short last block is copied into
 * zero-padded 64-row buffers so that no load reads past a column and one code path
 * serves every n. Rules and sum order: scan.h invariants (2)-(5); the arithmetic
 * below uses separate multiply and add (no FMA) so it rounds as the scalar code does.
 */
#include "scan.h"

#if defined(__x86_64__)

#include <immintrin.h>
#include <math.h>
#include <string.h>

#define BLOCK LM__SCAN_BLOCK

/* ---------------------------------------------------------------- region masks */

static uint64_t box_mask(const struct lm_scan_plan *p, size_t off)
{
    const struct lm_region *r = &p->region;
    const __m256 x0 = _mm256_set1_ps(r->min[0]), x1 = _mm256_set1_ps(r->max[0]);
    const __m256 y0 = _mm256_set1_ps(r->min[1]), y1 = _mm256_set1_ps(r->max[1]);
    const __m256 z0 = _mm256_set1_ps(r->min[2]), z1 = _mm256_set1_ps(r->max[2]);
    uint64_t m = 0;

    for (int g = 0; g < BLOCK / 8; g++) {
        __m256 x = _mm256_loadu_ps(p->x + off + 8 * g);
        __m256 y = _mm256_loadu_ps(p->y + off + 8 * g);
        __m256 z = _mm256_loadu_ps(p->z + off + 8 * g);
        __m256 in = _mm256_and_ps(_mm256_cmp_ps(x, x0, _CMP_GE_OQ),
                                  _mm256_cmp_ps(x, x1, _CMP_LE_OQ));
        in = _mm256_and_ps(in, _mm256_and_ps(_mm256_cmp_ps(y, y0, _CMP_GE_OQ),
                                             _mm256_cmp_ps(y, y1, _CMP_LE_OQ)));
        in = _mm256_and_ps(in, _mm256_and_ps(_mm256_cmp_ps(z, z0, _CMP_GE_OQ),
                                             _mm256_cmp_ps(z, z1, _CMP_LE_OQ)));
        m |= (uint64_t)(unsigned)_mm256_movemask_ps(in) << (8 * g);
    }
    return m;
}

static uint64_t sphere_mask(const struct lm_scan_plan *p, size_t off)
{
    const struct lm_region *r = &p->region;
    const __m256 cx = _mm256_set1_ps(r->center[0]), cy = _mm256_set1_ps(r->center[1]);
    const __m256 cz = _mm256_set1_ps(r->center[2]), r2 = _mm256_set1_ps(p->r2);
    uint64_t m = 0;

    for (int g = 0; g < BLOCK / 8; g++) {
        __m256 dx = _mm256_sub_ps(_mm256_loadu_ps(p->x + off + 8 * g), cx);
        __m256 dy = _mm256_sub_ps(_mm256_loadu_ps(p->y + off + 8 * g), cy);
        __m256 dz = _mm256_sub_ps(_mm256_loadu_ps(p->z + off + 8 * g), cz);
        __m256 d2 = _mm256_add_ps(_mm256_mul_ps(dx, dx), _mm256_mul_ps(dy, dy));
        d2 = _mm256_add_ps(d2, _mm256_mul_ps(dz, dz));
        m |= (uint64_t)(unsigned)_mm256_movemask_ps(_mm256_cmp_ps(d2, r2, _CMP_LE_OQ))
             << (8 * g);
    }
    return m;
}

static uint64_t frustum_mask(const struct lm_scan_plan *p, size_t off)
{
    const float(*pl)[4] = p->region.planes;
    const __m256 zero = _mm256_setzero_ps();
    uint64_t m = 0;

    for (int g = 0; g < BLOCK / 8; g++) {
        __m256 x = _mm256_loadu_ps(p->x + off + 8 * g);
        __m256 y = _mm256_loadu_ps(p->y + off + 8 * g);
        __m256 z = _mm256_loadu_ps(p->z + off + 8 * g);
        __m256 in = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
        for (int k = 0; k < 6; k++) {
            __m256 s = _mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(pl[k][0]), x),
                                     _mm256_mul_ps(_mm256_set1_ps(pl[k][1]), y));
            s = _mm256_add_ps(s, _mm256_mul_ps(_mm256_set1_ps(pl[k][2]), z));
            s = _mm256_add_ps(s, _mm256_set1_ps(pl[k][3]));
            in = _mm256_and_ps(in, _mm256_cmp_ps(s, zero, _CMP_GE_OQ));
        }
        m |= (uint64_t)(unsigned)_mm256_movemask_ps(in) << (8 * g);
    }
    return m;
}

/* ---------------------------------------------------------------- predicate masks */

static uint64_t f32_mask(const struct lm_scan_bound *b, size_t off)
{
    const float *c = (const float *)b->col + off;
    const __m256 lo = _mm256_set1_ps(b->range.f32[0]), hi = _mm256_set1_ps(b->range.f32[1]);
    uint64_t m = 0;
    for (int g = 0; g < BLOCK / 8; g++) {
        __m256 v = _mm256_loadu_ps(c + 8 * g);
        __m256 in = _mm256_and_ps(_mm256_cmp_ps(v, lo, _CMP_GE_OQ),
                                  _mm256_cmp_ps(v, hi, _CMP_LE_OQ));
        m |= (uint64_t)(unsigned)_mm256_movemask_ps(in) << (8 * g);
    }
    return m;
}

static uint64_t i32_mask(const struct lm_scan_bound *b, size_t off)
{
    const int32_t *c = (const int32_t *)b->col + off;
    const __m256i lo = _mm256_set1_epi32(b->range.i32[0]);
    const __m256i hi = _mm256_set1_epi32(b->range.i32[1]);
    uint64_t out = 0; /* rows outside [lo, hi] */
    for (int g = 0; g < BLOCK / 8; g++) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(c + 8 * g));
        __m256i o = _mm256_or_si256(_mm256_cmpgt_epi32(lo, v), _mm256_cmpgt_epi32(v, hi));
        out |= (uint64_t)(unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(o)) << (8 * g);
    }
    return ~out;
}

static uint64_t u8_mask(const struct lm_scan_bound *b, size_t off)
{
    /* Bytes compare 32 at a time: v is in [lo, hi] when max(v, lo) == v == min(v, hi). */
    const uint8_t *c = (const uint8_t *)b->col + off;
    const __m256i lo = _mm256_set1_epi8((char)b->range.u8[0]);
    const __m256i hi = _mm256_set1_epi8((char)b->range.u8[1]);
    uint64_t m = 0;
    for (int g = 0; g < BLOCK / 32; g++) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(c + 32 * g));
        __m256i in = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_max_epu8(v, lo), v),
                                      _mm256_cmpeq_epi8(_mm256_min_epu8(v, hi), v));
        m |= (uint64_t)(uint32_t)_mm256_movemask_epi8(in) << (32 * g);
    }
    return m;
}

static uint64_t i64_mask(const struct lm_scan_bound *b, size_t off)
{
    const int64_t *c = (const int64_t *)b->col + off;
    const __m256i lo = _mm256_set1_epi64x(b->range.i64[0]);
    const __m256i hi = _mm256_set1_epi64x(b->range.i64[1]);
    uint64_t out = 0; /* rows outside [lo, hi] */
    for (int g = 0; g < BLOCK / 4; g++) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(c + 4 * g));
        __m256i o = _mm256_or_si256(_mm256_cmpgt_epi64(lo, v), _mm256_cmpgt_epi64(v, hi));
        out |= (uint64_t)(unsigned)_mm256_movemask_pd(_mm256_castsi256_pd(o)) << (4 * g);
    }
    return ~out;
}

/* Matches among the 64 rows starting at row `off` of the plan's columns. */
static uint64_t block_mask(const struct lm_scan_plan *p, size_t off)
{
    uint64_t m = ~0ull;
    switch (p->region.kind) {
    case LM_REGION_BOX: m = box_mask(p, off); break;
    case LM_REGION_SPHERE: m = sphere_mask(p, off); break;
    case LM_REGION_FRUSTUM: m = frustum_mask(p, off); break;
    case LM_REGION_ALL: break;
    }
    for (uint32_t j = 0; j < p->n_bounds && m; j++) {
        const struct lm_scan_bound *b = &p->bounds[j];
        uint64_t in = 0;
        switch (b->type) {
        case LM_SCAN_F32: in = f32_mask(b, off); break;
        case LM_SCAN_I32: in = i32_mask(b, off); break;
        case LM_SCAN_U8: in = u8_mask(b, off); break;
        case LM_SCAN_I64: in = i64_mask(b, off); break;
        }
        m &= b->negate ? ~in : in;
    }
    return m;
}

/* ---------------------------------------------------------------- the short last block */

static size_t type_size(enum lm_scan_type t)
{
    switch (t) {
    case LM_SCAN_U8: return 1;
    case LM_SCAN_F32:
    case LM_SCAN_I32: return 4;
    case LM_SCAN_I64: return 8;
    }
    return 8;
}

/* Zero-padded copies of rows [base, base + rows) of every column a plan reads, and
 * a plan that reads them instead (at offset 0). */
struct tail {
    struct lm_scan_plan plan;
    float x[BLOCK], y[BLOCK], z[BLOCK];
    int64_t col[LM_SCAN_MAX_PREDS][BLOCK]; /* room for BLOCK values of any type */
    int64_t agg[BLOCK];
};

static const void *pad(void *dst, const void *src, size_t base, size_t rows, size_t size)
{
    memset(dst, 0, BLOCK * size);
    memcpy(dst, (const char *)src + base * size, rows * size);
    return dst;
}

/* Fills t for rows [base, p->n) (fewer than BLOCK, more than 0); also pads the
 * aggregated column when col is not NULL. Returns the mask of valid rows. */
static uint64_t tail_init(struct tail *t, const struct lm_scan_plan *p, size_t base,
                          const void *col, enum lm_scan_type type)
{
    size_t rows = p->n - base;
    t->plan = *p;
    if (p->region.kind != LM_REGION_ALL) {
        t->plan.x = pad(t->x, p->x, base, rows, sizeof(float));
        t->plan.y = pad(t->y, p->y, base, rows, sizeof(float));
        t->plan.z = pad(t->z, p->z, base, rows, sizeof(float));
    }
    for (uint32_t j = 0; j < p->n_bounds; j++)
        t->plan.bounds[j].col = pad(t->col[j], p->bounds[j].col, base, rows,
                                    type_size(p->bounds[j].type));
    if (col)
        pad(t->agg, col, base, rows, type_size(type));
    return (1ull << rows) - 1;
}

/* ---------------------------------------------------------------- select */

/* Row offsets of the set bits of a nibble, one per byte, lowest first. */
static const uint32_t nibble_rows[16] = {
    0x0,     0x0,     0x1,      0x100,     0x2,      0x200,     0x201,     0x20100,
    0x3,     0x300,   0x301,    0x30100,   0x302,    0x30200,   0x30201,   0x3020100,
};

/* Appends base + i for each set bit i of m. Stores 8 indices for every byte of m,
 * empty or not (no branch on the data), so rows [base, base + 64) must all exist:
 * invariant (6) then keeps every store below n. */
static size_t emit_block(uint32_t *sel, size_t k, uint64_t m, uint32_t base)
{
    for (uint32_t at = base; at < base + BLOCK; m >>= 8, at += 8) {
        unsigned b = (unsigned)m & 0xff, lo = b & 15, hi = b >> 4;
        unsigned nlo = (unsigned)__builtin_popcount(lo);
        uint64_t packed = nibble_rows[lo] |
                          (uint64_t)(nibble_rows[hi] + 0x04040404u) << (8 * nlo);
        __m256i idx = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)packed));
        idx = _mm256_add_epi32(idx, _mm256_set1_epi32((int)at));
        _mm256_storeu_si256((__m256i *)(sel + k), idx);
        k += nlo + (unsigned)__builtin_popcount(hi);
    }
    return k;
}

static size_t avx2_select(const struct lm_scan_plan *p, uint32_t *sel)
{
    size_t k = 0, full = p->n - p->n % BLOCK;
    if (p->none)
        return 0;
    for (size_t base = 0; base < full; base += BLOCK) {
        uint64_t m = block_mask(p, base);
        if (m)
            k = emit_block(sel, k, m, (uint32_t)base);
    }
    if (full < p->n) {
        struct tail t;
        uint64_t m = tail_init(&t, p, full, NULL, LM_SCAN_F32) & block_mask(&t.plan, 0);
        for (; m; m &= m - 1)
            sel[k++] = (uint32_t)(full + (size_t)__builtin_ctzll(m));
    }
    return k;
}

/* ---------------------------------------------------------------- aggregate */

/* Accumulators. f32 and i64 sums: s[q] holds lanes 4q..4q+3 (row mod 16). */
struct acc {
    __m256d s[4];
    __m256i isum[2];       /* i32, u8: exact int64 sums */
    __m256 fmin, fmax;     /* f32 */
    __m256i imin, imax;    /* i32, u8 */
    __m256i lmin, lmax;    /* i64 */
    uint64_t count;
};

/* All-ones lanes for the set bits of an 8-bit (32-bit lanes) or 4-bit (64-bit) mask. */
static inline __m256i lanes8(unsigned b)
{
    const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32((int)b), bit), bit);
}

static inline __m256i lanes4(unsigned b)
{
    const __m256i bit = _mm256_setr_epi64x(1, 2, 4, 8);
    return _mm256_cmpeq_epi64(_mm256_and_si256(_mm256_set1_epi64x(b), bit), bit);
}

/* 16 f32 rows; b holds their 16 mask bits. Unselected rows add +0.0 to the sum lanes,
 * which leaves them unchanged (they never hold -0.0), and +-inf to min/max. */
static inline void f32_rows16(struct acc *a, const float *c, unsigned b)
{
    __m256 v[2] = {_mm256_loadu_ps(c), _mm256_loadu_ps(c + 8)};
    for (int h = 0; h < 2; h++) {
        __m256 lo = v[h], hi = v[h];
        if (b != 0xffff) {
            __m256 m = _mm256_castsi256_ps(lanes8((b >> (8 * h)) & 0xff));
            lo = _mm256_blendv_ps(_mm256_set1_ps(INFINITY), v[h], m);
            hi = _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), v[h], m);
            v[h] = _mm256_and_ps(v[h], m);
        }
        a->fmin = _mm256_min_ps(a->fmin, lo);
        a->fmax = _mm256_max_ps(a->fmax, hi);
        a->s[2 * h] = _mm256_add_pd(a->s[2 * h], _mm256_cvtps_pd(_mm256_castps256_ps128(v[h])));
        a->s[2 * h + 1] = _mm256_add_pd(a->s[2 * h + 1],
                                        _mm256_cvtps_pd(_mm256_extractf128_ps(v[h], 1)));
    }
}

/* 8 rows of i32 (or widened u8) values. */
static inline void i32_rows8(struct acc *a, __m256i v, unsigned b)
{
    __m256i lo = v, hi = v;
    if (b != 0xff) {
        __m256i m = lanes8(b);
        lo = _mm256_blendv_epi8(_mm256_set1_epi32(INT32_MAX), v, m);
        hi = _mm256_blendv_epi8(_mm256_set1_epi32(INT32_MIN), v, m);
        v = _mm256_and_si256(v, m);
    }
    a->imin = _mm256_min_epi32(a->imin, lo);
    a->imax = _mm256_max_epi32(a->imax, hi);
    a->isum[0] = _mm256_add_epi64(a->isum[0], _mm256_cvtepi32_epi64(_mm256_castsi256_si128(v)));
    a->isum[1] = _mm256_add_epi64(a->isum[1],
                                  _mm256_cvtepi32_epi64(_mm256_extracti128_si256(v, 1)));
}

/* int64 to double, rounded once as a C cast rounds: hi * 2^32 and the unsigned low
 * half are both exact, so their sum is the one rounding. */
static inline __m256d i64_to_f64(__m256i v)
{
    const __m256d two52 = _mm256_set1_pd(0x1p52);
    __m256i lo = _mm256_blend_epi32(v, _mm256_castpd_si256(two52), 0xaa); /* 2^52 + low */
    __m256i odd = _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(1, 3, 5, 7, 1, 3, 5, 7));
    __m256d hi = _mm256_cvtepi32_pd(_mm256_castsi256_si128(odd));
    return _mm256_add_pd(_mm256_mul_pd(hi, _mm256_set1_pd(0x1p32)),
                         _mm256_sub_pd(_mm256_castsi256_pd(lo), two52));
}

/* 4 i64 rows; returns what they add to their sum lanes. */
static inline __m256d i64_rows4(struct acc *a, __m256i v, unsigned b)
{
    __m256i lo = v, hi = v, m = _mm256_set1_epi64x(-1);
    if (b != 0xf) {
        m = lanes4(b);
        lo = _mm256_blendv_epi8(_mm256_set1_epi64x(INT64_MAX), v, m);
        hi = _mm256_blendv_epi8(_mm256_set1_epi64x(INT64_MIN), v, m);
    }
    a->lmin = _mm256_blendv_epi8(a->lmin, lo, _mm256_cmpgt_epi64(a->lmin, lo));
    a->lmax = _mm256_blendv_epi8(a->lmax, hi, _mm256_cmpgt_epi64(hi, a->lmax));
    return _mm256_and_pd(i64_to_f64(v), _mm256_castsi256_pd(m));
}

/* One 64-row block of each column type; c points at the block's first row. */
static inline __attribute__((always_inline)) void
f32_block(struct acc *a, const void *c, uint64_t m)
{
    for (int q = 0; q < 4; q++, m >>= 16)
        if (m & 0xffff)
            f32_rows16(a, (const float *)c + 16 * q, (unsigned)m & 0xffff);
}

static inline __attribute__((always_inline)) void
i32_block(struct acc *a, const void *c, uint64_t m)
{
    for (int g = 0; g < 8; g++, m >>= 8)
        if (m & 0xff)
            i32_rows8(a, _mm256_loadu_si256((const __m256i *)((const int32_t *)c + 8 * g)),
                      (unsigned)m & 0xff);
}

static inline __attribute__((always_inline)) void
u8_block(struct acc *a, const void *c, uint64_t m)
{
    for (int g = 0; g < 8; g++, m >>= 8)
        if (m & 0xff) {
            __m128i v = _mm_loadl_epi64((const __m128i *)((const uint8_t *)c + 8 * g));
            i32_rows8(a, _mm256_cvtepu8_epi32(v), (unsigned)m & 0xff);
        }
}

static inline __attribute__((always_inline)) void
i64_block(struct acc *a, const void *c, uint64_t m)
{
    for (int g = 0; g < 16; g++, m >>= 4)
        if (m & 0xf) {
            __m256i v = _mm256_loadu_si256((const __m256i *)((const int64_t *)c + 4 * g));
            a->s[g % 4] = _mm256_add_pd(a->s[g % 4], i64_rows4(a, v, (unsigned)m & 0xf));
        }
}

typedef void (*block_fn)(struct acc *a, const void *c, uint64_t m);

#define BATCH 4 /* blocks whose masks are built before their rows are aggregated */

/* Runs fn over every block; inlined once per type, so fn is inlined too and the
 * accumulators can live in registers. */
static inline __attribute__((always_inline)) void
agg_rows(const struct lm_scan_plan *p, const void *col, enum lm_scan_type type,
         struct acc *a, block_fn fn)
{
    size_t n = p->none ? 0 : p->n, full = n - n % BLOCK, size = type_size(type);
    const char *c = col;

    if (p->region.kind == LM_REGION_ALL && !p->n_bounds) {
        /* No filter: one pass at memory speed. */
        for (size_t base = 0; base < full; base += BLOCK)
            fn(a, c + base * size, ~0ull);
        a->count += full;
    } else {
        /* The masks of BATCH blocks first, then their rows: the accumulators are
         * saved around the block_mask calls once per batch, not once per block. */
        for (size_t base = 0; base < full; base += BATCH * BLOCK) {
            uint64_t m[BATCH] = {0};
            for (size_t j = 0; j < BATCH && base + j * BLOCK < full; j++)
                m[j] = block_mask(p, base + j * BLOCK);
            for (size_t j = 0; j < BATCH; j++)
                if (m[j]) {
                    a->count += (uint64_t)__builtin_popcountll(m[j]);
                    fn(a, c + (base + j * BLOCK) * size, m[j]);
                }
        }
    }
    if (full < n) {
        struct tail t;
        uint64_t m = tail_init(&t, p, full, col, type) & block_mask(&t.plan, 0);
        a->count += (uint64_t)__builtin_popcountll(m);
        fn(a, t.agg, m);
    }
}

static double hmin_pd(__m256d v)
{
    double l[4];
    _mm256_storeu_pd(l, v);
    return fmin(fmin(l[0], l[1]), fmin(l[2], l[3]));
}

static double hmax_pd(__m256d v)
{
    double l[4];
    _mm256_storeu_pd(l, v);
    return fmax(fmax(l[0], l[1]), fmax(l[2], l[3]));
}

static void avx2_aggregate(const struct lm_scan_plan *p, const void *col,
                           enum lm_scan_type type, struct lm_scan_agg *out)
{
    struct acc a = {
        .fmin = _mm256_set1_ps(INFINITY), .fmax = _mm256_set1_ps(-INFINITY),
        .imin = _mm256_set1_epi32(INT32_MAX), .imax = _mm256_set1_epi32(INT32_MIN),
        .lmin = _mm256_set1_epi64x(INT64_MAX), .lmax = _mm256_set1_epi64x(INT64_MIN),
    };
    double lanes[LM__SCAN_LANES], sum = 0, min = INFINITY, max = -INFINITY;
    for (int q = 0; q < 4; q++)
        a.s[q] = _mm256_setzero_pd();
    a.isum[0] = a.isum[1] = _mm256_setzero_si256();

    switch (type) {
    case LM_SCAN_F32: {
        agg_rows(p, col, type, &a, f32_block);
        __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(a.fmin));
        __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(a.fmin, 1));
        min = hmin_pd(_mm256_min_pd(lo, hi));
        lo = _mm256_cvtps_pd(_mm256_castps256_ps128(a.fmax));
        hi = _mm256_cvtps_pd(_mm256_extractf128_ps(a.fmax, 1));
        max = hmax_pd(_mm256_max_pd(lo, hi));
        break;
    }
    case LM_SCAN_I64: {
        agg_rows(p, col, type, &a, i64_block);
        int64_t l[4], h[4];
        _mm256_storeu_si256((__m256i *)l, a.lmin);
        _mm256_storeu_si256((__m256i *)h, a.lmax);
        for (int j = 0; j < 4; j++) {
            min = (double)l[j] < min ? (double)l[j] : min;
            max = (double)h[j] > max ? (double)h[j] : max;
        }
        break;
    }
    case LM_SCAN_I32:
    case LM_SCAN_U8: {
        if (type == LM_SCAN_I32)
            agg_rows(p, col, type, &a, i32_block);
        else
            agg_rows(p, col, type, &a, u8_block);
        int32_t l[8], h[8];
        int64_t s[4];
        _mm256_storeu_si256((__m256i *)l, a.imin);
        _mm256_storeu_si256((__m256i *)h, a.imax);
        _mm256_storeu_si256((__m256i *)s, _mm256_add_epi64(a.isum[0], a.isum[1]));
        for (int j = 0; j < 8; j++) {
            min = l[j] < min ? l[j] : min;
            max = h[j] > max ? h[j] : max;
        }
        sum = (double)(s[0] + s[1] + s[2] + s[3]);
        break;
    }
    }
    if (type == LM_SCAN_F32 || type == LM_SCAN_I64) {
        for (int q = 0; q < 4; q++)
            _mm256_storeu_pd(lanes + 4 * q, a.s[q]);
        sum = lm__scan_fold_lanes(lanes);
    }
    lm__scan_agg_finish(out, a.count, sum, min, max);
}

const struct lm_scan_table lm__scan_avx2_table = {
    .name = "avx2",
    .select = avx2_select,
    .aggregate = avx2_aggregate,
};

#endif /* __x86_64__ */
