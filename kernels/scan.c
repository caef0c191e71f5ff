/* scan.c - scan plans (checking, and compiling predicates into typed bounds), the
 * choice between implementations, and the pieces every implementation shares.
 * The implementations live in scan_scalar.c and scan_avx2.c. */
#include "scan.h"

#include <float.h>
#include <math.h>

#include "cpu_features.h"

/* ---------------------------------------------------------------- predicate bounds */

/* A predicate is compiled as a conjunction of at most two one-sided constraints on
 * the real value v, each turned into an inclusive bound in the column's type. */
enum side { SIDE_GE, SIDE_GT, SIDE_LE, SIDE_LT };

struct constraint {
    enum side side;
    double v;
};

/* The constraints of `v op a [b]`: EQ and NE both give a <= v <= a (NE is negated by
 * the caller). Returns how many, or -1 for an unknown op. */
static int op_constraints(enum lm_cmp op, double a, double b, struct constraint c[2])
{
    switch (op) {
    case LM_CMP_LT: c[0] = (struct constraint){SIDE_LT, a}; return 1;
    case LM_CMP_LE: c[0] = (struct constraint){SIDE_LE, a}; return 1;
    case LM_CMP_GT: c[0] = (struct constraint){SIDE_GT, a}; return 1;
    case LM_CMP_GE: c[0] = (struct constraint){SIDE_GE, a}; return 1;
    case LM_CMP_EQ:
    case LM_CMP_NE: b = a; /* fall through */
    case LM_CMP_BETWEEN:
        c[0] = (struct constraint){SIDE_GE, a};
        c[1] = (struct constraint){SIDE_LE, b};
        return 2;
    }
    return -1;
}

/* Largest f32 <= a (a not NaN); -inf when a is below every finite f32. */
static float f32_down(double a)
{
    if (a == INFINITY)
        return INFINITY;
    if (a > FLT_MAX)
        return FLT_MAX;
    if (a < -FLT_MAX)
        return -INFINITY;
    float f = (float)a; /* in range, so defined: one of the two neighbours */
    if ((double)f > a)
        f = nextafterf(f, -INFINITY);
    return f;
}

/* Smallest f32 >= a (a not NaN). */
static float f32_up(double a) { return -f32_down(-a); }

struct f32_range {
    float lo, hi;
    bool none;
};

static void f32_constrain(struct f32_range *r, struct constraint c)
{
    float v;
    switch (c.side) {
    case SIDE_GE:
        v = f32_up(c.v);
        r->lo = v > r->lo ? v : r->lo;
        break;
    case SIDE_GT: /* smallest f32 > a */
        if (c.v == INFINITY) {
            r->none = true;
            return;
        }
        v = nextafterf(f32_down(c.v), INFINITY);
        r->lo = v > r->lo ? v : r->lo;
        break;
    case SIDE_LE:
        v = f32_down(c.v);
        r->hi = v < r->hi ? v : r->hi;
        break;
    case SIDE_LT: /* largest f32 < a */
        if (c.v == -INFINITY) {
            r->none = true;
            return;
        }
        v = nextafterf(f32_up(c.v), -INFINITY);
        r->hi = v < r->hi ? v : r->hi;
        break;
    }
}

struct int_range {
    int64_t lo, hi; /* starts as the type's full range */
    bool none;
};

/* An integral or infinite double as int64. *beyond is -1 below INT64_MIN, +1 above
 * INT64_MAX (the value is then saturated), else 0. */
static int64_t i64_saturate(double d, int *beyond)
{
    *beyond = d >= 0x1p63 ? 1 : d < -0x1p63 ? -1 : 0;
    return *beyond > 0 ? INT64_MAX : *beyond < 0 ? INT64_MIN : (int64_t)d;
}

static void int_constrain(struct int_range *r, struct constraint c)
{
    int beyond;
    int64_t v;
    switch (c.side) {
    case SIDE_GE: /* v >= ceil(a) */
        v = i64_saturate(ceil(c.v), &beyond);
        if (beyond > 0)
            r->none = true;
        else if (!beyond && v > r->lo)
            r->lo = v;
        break;
    case SIDE_GT: /* v >= floor(a) + 1 */
        v = i64_saturate(floor(c.v), &beyond);
        if (beyond > 0 || (!beyond && v == INT64_MAX))
            r->none = true;
        else if (!beyond && v + 1 > r->lo)
            r->lo = v + 1;
        break;
    case SIDE_LE: /* v <= floor(a) */
        v = i64_saturate(floor(c.v), &beyond);
        if (beyond < 0)
            r->none = true;
        else if (!beyond && v < r->hi)
            r->hi = v;
        break;
    case SIDE_LT: /* v <= ceil(a) - 1 */
        v = i64_saturate(ceil(c.v), &beyond);
        if (beyond < 0 || (!beyond && v == INT64_MIN))
            r->none = true;
        else if (!beyond && v - 1 < r->hi)
            r->hi = v - 1;
        break;
    }
}

/* Full range of an integer column type. */
static struct int_range int_type_range(enum lm_scan_type t)
{
    switch (t) {
    case LM_SCAN_I32: return (struct int_range){INT32_MIN, INT32_MAX, false};
    case LM_SCAN_U8: return (struct int_range){0, UINT8_MAX, false};
    default: return (struct int_range){INT64_MIN, INT64_MAX, false};
    }
}

/* What a compiled predicate does to the plan. */
enum bound_effect { BOUND_KEEP, BOUND_ALWAYS, BOUND_NEVER };

/* Compiles one checked predicate into *b. */
static enum bound_effect compile_pred(const struct lm_scan_pred *pr, struct lm_scan_bound *b)
{
    struct constraint c[2];
    int nc = op_constraints(pr->op, pr->a, pr->b, c);
    bool none, full;

    b->col = pr->col;
    b->type = pr->type;
    b->negate = pr->op == LM_CMP_NE;
    if (pr->type == LM_SCAN_F32) {
        struct f32_range r = {-INFINITY, INFINITY, false};
        for (int i = 0; i < nc; i++)
            f32_constrain(&r, c[i]);
        none = r.none || r.lo > r.hi;
        full = false; /* [-inf, inf] still rejects NaN */
        b->range.f32[0] = r.lo;
        b->range.f32[1] = r.hi;
    } else {
        struct int_range t = int_type_range(pr->type), r = t;
        for (int i = 0; i < nc; i++)
            int_constrain(&r, c[i]);
        none = r.none || r.lo > r.hi;
        full = !none && r.lo == t.lo && r.hi == t.hi;
        if (pr->type == LM_SCAN_I32) {
            b->range.i32[0] = (int32_t)r.lo;
            b->range.i32[1] = (int32_t)r.hi;
        } else if (pr->type == LM_SCAN_U8) {
            b->range.u8[0] = (uint8_t)r.lo;
            b->range.u8[1] = (uint8_t)r.hi;
        } else {
            b->range.i64[0] = r.lo;
            b->range.i64[1] = r.hi;
        }
    }
    if (none)
        return b->negate ? BOUND_ALWAYS : BOUND_NEVER;
    if (full)
        return b->negate ? BOUND_NEVER : BOUND_ALWAYS;
    return BOUND_KEEP;
}

/* ---------------------------------------------------------------- plans */

static bool type_ok(enum lm_scan_type t)
{
    return t == LM_SCAN_F32 || t == LM_SCAN_I32 || t == LM_SCAN_U8 || t == LM_SCAN_I64;
}

static bool any_nan(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (isnan(v[i]))
            return true;
    return false;
}

static int region_check(const struct lm_region *r)
{
    switch (r->kind) {
    case LM_REGION_ALL: return 0;
    case LM_REGION_BOX:
        return any_nan(r->min, 3) || any_nan(r->max, 3) ? LM_EBADARG : 0;
    case LM_REGION_SPHERE:
        return any_nan(r->center, 3) || !(r->radius >= 0) ? LM_EBADARG : 0;
    case LM_REGION_FRUSTUM:
        return any_nan(&r->planes[0][0], 24) ? LM_EBADARG : 0;
    }
    return LM_EBADARG;
}

int lm_scan_plan_init(struct lm_scan_plan *out, size_t n, const float *x, const float *y,
                      const float *z, const struct lm_region *region,
                      const struct lm_scan_pred *preds, uint32_t n_preds)
{
    struct lm_scan_plan p = {.n = n};

    if (!out || n_preds > LM_SCAN_MAX_PREDS || (n_preds && !preds))
        return LM_EBADARG;
    if (n > LM_SCAN_MAX_ROWS)
        return LM_ELIMIT;
    if (region) {
        int rc = region_check(region);
        if (rc)
            return rc;
        p.region = *region;
    }
    if (p.region.kind != LM_REGION_ALL) {
        if (n && (!x || !y || !z))
            return LM_EBADARG;
        p.x = x;
        p.y = y;
        p.z = z;
        p.r2 = p.region.radius * p.region.radius;
    }
    for (uint32_t i = 0; i < n_preds; i++) {
        const struct lm_scan_pred *pr = &preds[i];
        struct constraint c[2];
        if (!type_ok(pr->type) || op_constraints(pr->op, 0, 0, c) < 0 ||
            isnan(pr->a) || (pr->op == LM_CMP_BETWEEN && isnan(pr->b)) || (n && !pr->col))
            return LM_EBADARG;
        switch (compile_pred(pr, &p.bounds[p.n_bounds])) {
        case BOUND_KEEP: p.n_bounds++; break;
        case BOUND_ALWAYS: break;
        case BOUND_NEVER: p.none = true; break;
        }
    }
    *out = p;
    return 0;
}

/* ---------------------------------------------------------------- implementations */

const struct lm_scan_table *lm_scan_scalar(void) { return &lm__scan_scalar_table; }

const struct lm_scan_table *lm_scan_avx2(void)
{
#if defined(__x86_64__)
    /* Every AVX2 CPU has POPCNT, which -mavx2 lets the compiler use; checked anyway. */
    if (lm_cpu_has_avx2() && __builtin_cpu_supports("popcnt"))
        return &lm__scan_avx2_table;
#endif
    return NULL;
}

const struct lm_scan_table *lm_scan_best(void)
{
    const struct lm_scan_table *t = lm_scan_avx2();
    return t ? t : lm_scan_scalar();
}

/* ---------------------------------------------------------------- entry points */

int lm_scan_select(const struct lm_scan_table *impl, const struct lm_scan_plan *plan,
                   uint32_t *sel, size_t *n_sel)
{
    if (!impl || !plan || !n_sel || (plan->n && !sel))
        return LM_EBADARG;
    *n_sel = impl->select(plan, sel);
    return 0;
}

int lm_scan_aggregate(const struct lm_scan_table *impl, const struct lm_scan_plan *plan,
                      const void *col, enum lm_scan_type type, struct lm_scan_agg *out)
{
    if (!impl || !plan || !out || !type_ok(type) || (plan->n && !col))
        return LM_EBADARG;
    impl->aggregate(plan, col, type, out);
    return 0;
}

void lm_scan_agg_merge(struct lm_scan_agg *into, const struct lm_scan_agg *from)
{
    if (!from->count)
        return;
    into->count += from->count;
    into->sum += from->sum;
    into->min = from->min < into->min ? from->min : into->min;
    into->max = from->max > into->max ? from->max : into->max;
}

/* ---------------------------------------------------------------- shared pieces */

double lm__scan_fold_lanes(double lanes[LM__SCAN_LANES])
{
    for (int w = LM__SCAN_LANES / 2; w; w /= 2)
        for (int j = 0; j < w; j++)
            lanes[j] += lanes[j + w];
    return lanes[0];
}

void lm__scan_agg_finish(struct lm_scan_agg *out, uint64_t count, double sum, double min,
                         double max)
{
    out->count = count;
    out->sum = count ? sum : 0;
    /* + 0.0 turns -0 into +0; implementations may find either zero first. */
    out->min = count ? min + 0.0 : INFINITY;
    out->max = count ? max + 0.0 : -INFINITY;
}
