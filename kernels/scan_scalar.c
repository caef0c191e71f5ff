/* scan_scalar.c - the reference scan implementation: one row at a time, in blocks of
 * LM__SCAN_BLOCK rows whose matches are collected in a bitmask, as the vector
 * implementations do. Rules and sum order: scan.h invariants (2)-(5). */
#include "scan.h"

#include <math.h>

/* ---------------------------------------------------------------- one row */

static bool region_row(const struct lm_scan_plan *p, size_t i)
{
    const struct lm_region *r = &p->region;
    float x = p->x[i], y = p->y[i], z = p->z[i];

    switch (r->kind) {
    case LM_REGION_BOX: /* & rather than &&: no branch on the data */
        return (x >= r->min[0]) & (x <= r->max[0]) & (y >= r->min[1]) & (y <= r->max[1]) &
               (z >= r->min[2]) & (z <= r->max[2]);
    case LM_REGION_SPHERE: {
        float dx = x - r->center[0], dy = y - r->center[1], dz = z - r->center[2];
        float d2 = (dx * dx + dy * dy) + dz * dz;
        return d2 <= p->r2;
    }
    case LM_REGION_FRUSTUM:
        for (int k = 0; k < 6; k++) {
            const float *pl = r->planes[k];
            float s = ((pl[0] * x + pl[1] * y) + pl[2] * z) + pl[3];
            if (!(s >= 0.0f))
                return false;
        }
        return true;
    case LM_REGION_ALL:
        break;
    }
    return true;
}

static bool bound_row(const struct lm_scan_bound *b, size_t i)
{
    bool in = false;
    switch (b->type) {
    case LM_SCAN_F32: {
        float v = ((const float *)b->col)[i];
        in = v >= b->range.f32[0] && v <= b->range.f32[1];
        break;
    }
    case LM_SCAN_I32: {
        int32_t v = ((const int32_t *)b->col)[i];
        in = v >= b->range.i32[0] && v <= b->range.i32[1];
        break;
    }
    case LM_SCAN_U8: {
        uint8_t v = ((const uint8_t *)b->col)[i];
        in = v >= b->range.u8[0] && v <= b->range.u8[1];
        break;
    }
    case LM_SCAN_I64: {
        int64_t v = ((const int64_t *)b->col)[i];
        in = v >= b->range.i64[0] && v <= b->range.i64[1];
        break;
    }
    }
    return in != b->negate;
}

/* Matches among rows [base, base + rows), rows <= LM__SCAN_BLOCK, as bits. */
static uint64_t block_mask(const struct lm_scan_plan *p, size_t base, size_t rows)
{
    uint64_t m = rows == LM__SCAN_BLOCK ? ~0ull : (1ull << rows) - 1;

    if (p->region.kind != LM_REGION_ALL) {
        uint64_t r = 0;
        for (size_t i = 0; i < rows; i++)
            r |= (uint64_t)region_row(p, base + i) << i;
        m &= r;
    }
    for (uint32_t j = 0; j < p->n_bounds && m; j++) {
        uint64_t r = 0;
        for (size_t i = 0; i < rows; i++)
            r |= (uint64_t)bound_row(&p->bounds[j], base + i) << i;
        m &= r;
    }
    return m;
}

/* ---------------------------------------------------------------- table functions */

static size_t scalar_select(const struct lm_scan_plan *p, uint32_t *sel)
{
    size_t k = 0;
    if (p->none)
        return 0;
    for (size_t base = 0; base < p->n; base += LM__SCAN_BLOCK) {
        size_t rows = p->n - base < LM__SCAN_BLOCK ? p->n - base : LM__SCAN_BLOCK;
        for (uint64_t m = block_mask(p, base, rows); m; m &= m - 1)
            sel[k++] = (uint32_t)(base + (size_t)__builtin_ctzll(m));
    }
    return k;
}

static double value_at(const void *col, enum lm_scan_type type, size_t i)
{
    switch (type) {
    case LM_SCAN_F32: return ((const float *)col)[i];
    case LM_SCAN_I32: return ((const int32_t *)col)[i];
    case LM_SCAN_U8: return ((const uint8_t *)col)[i];
    case LM_SCAN_I64: return (double)((const int64_t *)col)[i];
    }
    return 0;
}

static void scalar_aggregate(const struct lm_scan_plan *p, const void *col,
                             enum lm_scan_type type, struct lm_scan_agg *out)
{
    /* i32 and u8 sum exactly in int64; f32 and i64 in the 16 double lanes. */
    bool exact = type == LM_SCAN_I32 || type == LM_SCAN_U8;
    double lanes[LM__SCAN_LANES] = {0};
    double min = INFINITY, max = -INFINITY;
    int64_t isum = 0;
    uint64_t count = 0;
    size_t n = p->none ? 0 : p->n;

    for (size_t base = 0; base < n; base += LM__SCAN_BLOCK) {
        size_t rows = n - base < LM__SCAN_BLOCK ? n - base : LM__SCAN_BLOCK;
        for (uint64_t m = block_mask(p, base, rows); m; m &= m - 1) {
            size_t i = base + (size_t)__builtin_ctzll(m);
            double v = value_at(col, type, i);
            if (exact)
                isum += (int64_t)v;
            else
                lanes[i % LM__SCAN_LANES] += v;
            min = v < min ? v : min;
            max = v > max ? v : max;
            count++;
        }
    }
    lm__scan_agg_finish(out, count, exact ? (double)isum : lm__scan_fold_lanes(lanes),
                        min, max);
}

const struct lm_scan_table lm__scan_scalar_table = {
    .name = "scalar",
    .select = scalar_select,
    .aggregate = scalar_aggregate,
};
