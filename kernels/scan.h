/* scan.h - filter + aggregate scans over one chunk's column arrays.
 *
 * Owns: nothing. A scan reads caller-owned columns for rows [0, n) and writes only
 * into caller-owned outputs (a selection vector or a struct lm_scan_agg).
 *
 * A scan is: a region test on x, y, z (struct lm_region from lumadb.h), AND up to
 * LM_SCAN_MAX_PREDS predicates `column <op> a [b]`, then either the indices of the
 * matching rows or an aggregate (count, sum, min, max) of one column over them.
 * lm_scan_plan_init() checks and compiles the scan once; an implementation (a
 * struct lm_scan_table: scalar, AVX2, OpenCL) runs the compiled plan.
 *
 * Invariants:
 *  (1) Every implementation returns the same selection vector, count, min and max,
 *      bit for bit, for the same plan. CPU implementations also return the same sum
 *      bit for bit (see (4)); a device implementation may differ in the sum only, by
 *      at most 1e-5 relative to the sum of |values|.
 *  (2) Comparison rule. A predicate holds exactly when it holds for the real numbers
 *      v and a (and b): nothing is rounded. lm_scan_plan_init turns the double
 *      constants into inclusive bounds [lo, hi] in the column's own type (smallest f32
 *      >= a, largest f32 <= a, ceil/floor for integers, saturated to the type's
 *      range; EQ with an unrepresentable a matches nothing, NE with one matches all),
 *      so every implementation compares f32 with f32, i32 with i32, u8 with u8 and
 *      i64 with i64, and never sees a double constant. An i64 constant beyond 2^53 is
 *      whatever integral double the caller passed.
 *  (3) Region rule, in f32 with every operation rounded separately (no fused
 *      multiply-add; this file set is compiled as ISO C, where GCC does not contract):
 *      BOX min[k] <= p[k] <= max[k] for k = x, y, z; SPHERE
 *      ((dx*dx + dy*dy) + dz*dz) <= r*r with d = p - center; FRUSTUM, for each of the
 *      six planes, ((a*x + b*y) + c*z) + d >= 0. A NaN coordinate or column value
 *      never passes a region or range test (so it passes NE).
 *  (4) Sum order: each matching value is converted exactly to double and added into
 *      lane (row mod 16) of 16 double accumulators, rows in ascending order; then the
 *      lanes are folded by lm__scan_fold_lanes(). i32 and u8 sums are exact in int64
 *      and converted once at the end.
 *  (5) Aggregate of no rows: count 0, sum 0, min +inf, max -inf (so aggregates merge
 *      with lm_scan_agg_merge); a zero min or max is reported as +0.
 *  (6) A selection vector holds indices in ascending order. `sel` must have room for
 *      n entries: an implementation may write scratch values at positions at or past
 *      the returned count, but never at or past n.
 *
 * Threading: plans and tables are immutable; any number of threads may scan at once.
 * Called by: the query engine behind lm_select / lm_aggregate / lm_delete / lm_update,
 * one plan per chunk; the tests compare the implementations on random data.
 */
#ifndef LM_SCAN_H
#define LM_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lumadb.h"

#define LM_SCAN_MAX_PREDS 16
#define LM_SCAN_MAX_ROWS ((size_t)UINT32_MAX) /* selection indices are uint32 */

/* Column types. The first three equal enum lm_type, so a user column's type passes
 * straight through. */
enum lm_scan_type {
    LM_SCAN_F32 = LM_TYPE_F32,
    LM_SCAN_I32 = LM_TYPE_I32,
    LM_SCAN_U8 = LM_TYPE_U8,
    LM_SCAN_I64 = 4
};

/* `*col <op> a` (BETWEEN: a <= *col <= b); col points at row 0 of the column. The
 * operators are those of the public API (enum lm_cmp). */
struct lm_scan_pred {
    const void *col;
    enum lm_scan_type type;
    enum lm_cmp op;
    double a, b;
};

/* ---------------------------------------------------------------- compiled plan */

/* One compiled predicate: lo <= v <= hi, or the negation of that when `negate`.
 * Bounds are inclusive and in the column's type (invariant (2)). */
struct lm_scan_bound {
    const void *col;
    enum lm_scan_type type;
    bool negate;
    union {
        float f32[2];
        int32_t i32[2];
        uint8_t u8[2];
        int64_t i64[2];
    } range; /* [0] = lo, [1] = hi */
};

/* Read by implementations; built only by lm_scan_plan_init. */
struct lm_scan_plan {
    size_t n;                   /* rows [0, n) */
    bool none;                  /* some predicate can never hold: no row matches */
    struct lm_region region;    /* kind LM_REGION_ALL when there is no region */
    float r2;                   /* SPHERE: radius * radius in f32 */
    const float *x, *y, *z;     /* NULL when region.kind is LM_REGION_ALL */
    uint32_t n_bounds;          /* predicates that can fail (always-true ones dropped) */
    struct lm_scan_bound bounds[LM_SCAN_MAX_PREDS];
};

/* Checks and compiles a scan of rows [0, n). region NULL means no region test; x, y, z
 * are read only when there is one. preds[0..n_preds) are copied (not kept); their
 * column pointers, like x, y, z, are kept in the plan and must stay valid while it is
 * used. Columns may be unaligned.
 * Errors (*out untouched): LM_EBADARG for n_preds > LM_SCAN_MAX_PREDS, an unknown
 * type, op or region kind, a NaN constant, region bound or plane coefficient, a
 * negative or NaN radius, or a NULL column when n > 0; LM_ELIMIT for
 * n > LM_SCAN_MAX_ROWS. */
int lm_scan_plan_init(struct lm_scan_plan *out, size_t n, const float *x, const float *y,
                      const float *z, const struct lm_region *region,
                      const struct lm_scan_pred *preds, uint32_t n_preds);

/* ---------------------------------------------------------------- implementations */

/* count, sum, min, max of one column over the matching rows; see invariants (4), (5). */
struct lm_scan_agg {
    uint64_t count;
    double sum, min, max;
};

/* One implementation. The functions trust their arguments: use lm_scan_select and
 * lm_scan_aggregate, which check them. A new implementation adds a table and a getter
 * below and joins the comparison in tests/test_kernels_scan.c. */
struct lm_scan_table {
    const char *name; /* "scalar", "avx2", "opencl" */
    /* Writes the indices of matching rows into sel (room for p->n, invariant (6));
     * returns their number. */
    size_t (*select)(const struct lm_scan_plan *p, uint32_t *sel);
    /* Aggregates column `col` of type `type` (rows [0, p->n)) over matching rows. */
    void (*aggregate)(const struct lm_scan_plan *p, const void *col,
                      enum lm_scan_type type, struct lm_scan_agg *out);
};

/* The reference implementation; never NULL. */
const struct lm_scan_table *lm_scan_scalar(void);
/* The AVX2 implementation, or NULL when this CPU lacks AVX2 + FMA. */
const struct lm_scan_table *lm_scan_avx2(void);
/* The fastest implementation this CPU runs (AVX2, else scalar); never NULL. Call once
 * (at database open) and keep the pointer. */
const struct lm_scan_table *lm_scan_best(void);
/* The OpenCL implementation (scan_cl.c, kernels/scan.cl) on the shared device of
 * device.h, or NULL when there is none, it lacks fp64, or scan.cl does not build. On
 * a device run with CPU-shaped kernels its sums are those of the CPU bit for bit; with
 * GPU-shaped ones they may differ as invariant (1) allows. A call that fails on the
 * device answers through lm_scan_best(). Which table a query uses is chosen by
 * lm_device_scan_table() (device.h). */
const struct lm_scan_table *lm_scan_opencl(void);

/* ---------------------------------------------------------------- entry points */

/* Runs impl->select. sel must have room for plan->n indices; *n_sel receives the
 * count. Errors: LM_EBADARG for a NULL impl, plan, n_sel, or NULL sel when n > 0. */
int lm_scan_select(const struct lm_scan_table *impl, const struct lm_scan_plan *plan,
                   uint32_t *sel, size_t *n_sel);

/* Runs impl->aggregate over column col (rows [0, plan->n)) of type `type`.
 * Errors (*out untouched): LM_EBADARG for a NULL impl, plan or out, an unknown type,
 * or a NULL col when n > 0. */
int lm_scan_aggregate(const struct lm_scan_table *impl, const struct lm_scan_plan *plan,
                      const void *col, enum lm_scan_type type, struct lm_scan_agg *out);

/* Adds `from` into `into` (count and sum add, min and max combine). */
void lm_scan_agg_merge(struct lm_scan_agg *into, const struct lm_scan_agg *from);

/* ---------------------------------------------------------------- for implementations */

#define LM__SCAN_BLOCK 64 /* rows per bitmask block (one uint64_t) */
#define LM__SCAN_LANES 16 /* double accumulators of a sum, invariant (4) */

/* Folds sum lanes in a fixed order: lane[j] += lane[j + w] for w = 8, 4, 2, 1 (j < w);
 * returns lane[0]. Overwrites lanes. */
double lm__scan_fold_lanes(double lanes[LM__SCAN_LANES]);
/* Fills out from finished accumulators, applying invariant (5). */
void lm__scan_agg_finish(struct lm_scan_agg *out, uint64_t count, double sum, double min,
                         double max);

extern const struct lm_scan_table lm__scan_scalar_table;
extern const struct lm_scan_table lm__scan_avx2_table; /* only on x86 */
extern const struct lm_scan_table lm__scan_cl_table;

#endif
