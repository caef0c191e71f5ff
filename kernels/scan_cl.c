/* scan_cl.c - the OpenCL scan implementation: runs kernels/scan.cl on the shared device
 * (device.h) for a compiled plan. Columns are wrapped, not copied, on a device that
 * shares host memory (PoCL); elsewhere they are copied for the call.
 *
 * A filtered scan first builds the plan's match mask on the device (one ulong per 64
 * rows: the region and up to four predicates in one pass, then one pass per further
 * predicate), then either compacts it
 * into row indices (count per unit, offsets on the host, emit) or aggregates a column
 * over it. Launch shapes: see the comment at the top of scan.cl. Any OpenCL failure
 * answers through lm_scan_best() (logged once) so a scan never fails here. */
#include <math.h>
#include <string.h>

#include "alloc.h"
#include "device.h"
#include "scan.h"

#define AGG_SLOTS 19  /* scan.cl: ulongs per aggregate record */
#define GPU_GROUP 256 /* scan.cl: work-group of the GPU-shaped aggregate */

/* One call on the device and its launch geometry. */
struct job {
    struct lm_cl_call c;
    const struct lm_scan_plan *p;
    bool gpu;
    cl_uint n, nb;        /* rows, 64-row blocks */
    cl_uint units, per;   /* per-block kernels: work-items, and blocks per work-item */
    cl_mem mask;
};

static size_t type_size(enum lm_scan_type t)
{
    return t == LM_SCAN_U8 ? 1 : t == LM_SCAN_I64 ? 8 : 4;
}

/* Runs a per-block kernel: CPU shape over `units` work-items of `per` blocks, GPU shape
 * one work-item per row in work-groups of one block (region and predicates) or one
 * per block (the rest: rows = false). */
static void run_blocks(struct job *j, cl_kernel k, bool rows)
{
    if (!j->gpu)
        lm_cl_call_run(&j->c, k, j->units, 1);
    else
        lm_cl_call_run(&j->c, k, rows ? (size_t)j->nb * 64 : j->nb, rows ? 64 : 0);
}

/* ---------------------------------------------------------------- the match mask */

#define FUSED_PREDS 4 /* scan.cl: predicates scan_filter takes along with the region */

/* lo and hi of a compiled predicate as the bits of a long, as scan.cl reads them. */
static void bound_bits(const struct lm_scan_bound *b, cl_long *lo, cl_long *hi)
{
    switch (b->type) {
    case LM_SCAN_F32: {
        int32_t l, h;
        memcpy(&l, &b->range.f32[0], 4);
        memcpy(&h, &b->range.f32[1], 4);
        *lo = l;
        *hi = h;
        return;
    }
    case LM_SCAN_I32: *lo = b->range.i32[0], *hi = b->range.i32[1]; return;
    case LM_SCAN_U8: *lo = b->range.u8[0], *hi = b->range.u8[1]; return;
    case LM_SCAN_I64: *lo = b->range.i64[0], *hi = b->range.i64[1]; return;
    }
}

/* One predicate past the first FUSED_PREDS, ANDed into the mask. */
static void run_bound(struct job *j, const struct lm_scan_bound *b)
{
    static const char *const names[] = {
        [LM_SCAN_F32] = "scan_bound_f32", [LM_SCAN_I32] = "scan_bound_i32",
        [LM_SCAN_U8] = "scan_bound_u8", [LM_SCAN_I64] = "scan_bound_i64"};
    cl_int neg = b->negate;
    cl_mem col = lm_cl_call_host(&j->c, b->col, (size_t)j->n * type_size(b->type), false);
    cl_kernel k = lm_cl_call_kernel(&j->c, names[b->type]);
    lm_cl_call_args(&j->c, k, 0, 2, LM_CL_V(col), LM_CL_V(j->n));
    lm_cl_call_args(&j->c, k, 4, 3, LM_CL_V(neg), LM_CL_V(j->mask), LM_CL_V(j->per));
    size_t size = type_size(b->type); /* lo and hi in the column's type */
    lm_cl_call_args(&j->c, k, 2, 2, size, (const void *)&b->range.i64[0],
                    size, (const void *)((const char *)&b->range + size));
    run_blocks(j, k, true);
}

/* Builds j->mask: the region and the first predicates in one pass, then the rest. */
static void run_filter(struct job *j)
{
    const struct lm_scan_plan *p = j->p;
    const struct lm_region *r = &p->region;
    cl_float16 pa = {{0}};
    cl_float8 pb = {{0}};
    cl_int kind = (cl_int)r->kind;
    cl_int4 type = {{0}}, neg = {{0}};
    cl_long4 lo = {{0}}, hi = {{0}};
    size_t bytes = kind == LM_REGION_ALL ? 0 : (size_t)j->n * sizeof(float);

    j->mask = lm_cl_call_device(&j->c, NULL, (size_t)j->nb * sizeof(cl_ulong));
    if (kind == LM_REGION_BOX) {
        memcpy(&pa.s[0], r->min, sizeof r->min);
        memcpy(&pa.s[3], r->max, sizeof r->max);
    } else if (kind == LM_REGION_SPHERE) {
        memcpy(&pa.s[0], r->center, sizeof r->center);
        pa.s[3] = p->r2;
    } else if (kind == LM_REGION_FRUSTUM) {
        memcpy(&pa.s[0], r->planes[0], 16 * sizeof(float));
        memcpy(&pb.s[0], r->planes[4], 8 * sizeof(float));
    }
    cl_mem x = lm_cl_call_host(&j->c, bytes ? p->x : NULL, bytes, false);
    cl_mem y = lm_cl_call_host(&j->c, bytes ? p->y : NULL, bytes, false);
    cl_mem z = lm_cl_call_host(&j->c, bytes ? p->z : NULL, bytes, false);
    cl_mem col[FUSED_PREDS];
    for (uint32_t i = 0; i < FUSED_PREDS; i++) {
        const struct lm_scan_bound *b = &p->bounds[i];
        bool used = i < p->n_bounds;
        col[i] = lm_cl_call_host(&j->c, used ? b->col : NULL,
                                 used ? (size_t)j->n * type_size(b->type) : 0, false);
        if (used) {
            type.s[i] = (cl_int)b->type;
            neg.s[i] = b->negate;
            bound_bits(b, &lo.s[i], &hi.s[i]);
        }
    }
    cl_kernel k = lm_cl_call_kernel(&j->c, "scan_filter");
    lm_cl_call_args(&j->c, k, 0, 17, LM_CL_V(x), LM_CL_V(y), LM_CL_V(z), LM_CL_V(j->n),
                    LM_CL_V(kind), LM_CL_V(pa), LM_CL_V(pb), LM_CL_V(col[0]), LM_CL_V(col[1]),
                    LM_CL_V(col[2]), LM_CL_V(col[3]), LM_CL_V(type), LM_CL_V(neg), LM_CL_V(lo),
                    LM_CL_V(hi), LM_CL_V(j->mask), LM_CL_V(j->per));
    run_blocks(j, k, true);
    for (uint32_t i = FUSED_PREDS; i < p->n_bounds; i++)
        run_bound(j, &p->bounds[i]);
}

/* ---------------------------------------------------------------- calls */

static bool job_start(struct job *j, const struct lm_scan_plan *p)
{
    lm_cl *cl = lm_device_cl();
    if (!cl)
        return false;
    memset(j, 0, sizeof *j);
    j->p = p;
    j->gpu = lm_cl_shape(cl) == LM_CL_SHAPE_GPU;
    j->n = (cl_uint)p->n;
    j->nb = (cl_uint)((p->n + 63) / 64);
    if (j->gpu) {
        j->units = j->nb;
        j->per = 1;
    } else {
        cl_uint want = lm_cl_info(cl)->compute_units * 4;
        j->units = j->nb < want ? j->nb : want;
        j->per = (j->nb + j->units - 1) / j->units;
        j->units = (j->nb + j->per - 1) / j->per;
    }
    lm_cl_call_begin(&j->c, cl, "scan.cl");
    return true;
}

static void select_on_device(struct job *j, uint32_t *sel, size_t *k)
{
    size_t cbytes = (size_t)j->units * sizeof(cl_uint);
    cl_uint *counts = lm_alloc(cbytes);
    if (!counts) {
        j->c.st = CL_OUT_OF_HOST_MEMORY;
        return;
    }
    run_filter(j);
    cl_mem cbuf = lm_cl_call_host(&j->c, counts, cbytes, true);
    cl_kernel kc = lm_cl_call_kernel(&j->c, "scan_count");
    lm_cl_call_args(&j->c, kc, 0, 4, LM_CL_V(j->mask), LM_CL_V(j->nb), LM_CL_V(j->per),
                    LM_CL_V(cbuf));
    run_blocks(j, kc, false);
    lm_cl_call_read(&j->c, cbuf, counts, cbytes);
    size_t total = 0;
    for (cl_uint u = 0; !j->c.st && u < j->units; u++) {
        cl_uint c = counts[u];
        counts[u] = (cl_uint)total; /* exclusive prefix: each unit's first slot */
        total += c;
    }
    if (!j->c.st && total) {
        cl_mem obuf = lm_cl_call_device(&j->c, counts, cbytes);
        cl_mem sbuf = lm_cl_call_host(&j->c, sel, total * sizeof *sel, true);
        cl_kernel ke = lm_cl_call_kernel(&j->c, "scan_emit");
        lm_cl_call_args(&j->c, ke, 0, 5, LM_CL_V(j->mask), LM_CL_V(j->nb), LM_CL_V(j->per),
                        LM_CL_V(obuf), LM_CL_V(sbuf));
        run_blocks(j, ke, false);
        lm_cl_call_read(&j->c, sbuf, sel, total * sizeof *sel);
    }
    *k = total;
    lm_free(counts);
}

static size_t cl_select(const struct lm_scan_plan *p, uint32_t *sel)
{
    static atomic_flag once = ATOMIC_FLAG_INIT;
    struct job j;
    size_t k = 0;
    if (p->none || !p->n) {
        lm_device_trace("opencl");
        return 0;
    }
    if (job_start(&j, p)) {
        select_on_device(&j, sel, &k);
        if (!lm_device_call_end(&j.c, &once, "scan select"))
            return k;
    }
    lm_device_trace(lm_scan_best()->name);
    return lm_scan_best()->select(p, sel);
}

/* Merges the work-items' (CPU shape: lanes split between them, scan.cl) or
 * work-groups' (GPU shape) records into out. */
static void combine(const cl_ulong *rec, cl_uint n_rec, bool gpu, enum lm_scan_type type,
                    struct lm_scan_agg *out)
{
    bool exact = type == LM_SCAN_I32 || type == LM_SCAN_U8, wide = type == LM_SCAN_I64;
    double lanes[LM__SCAN_LANES] = {0}, sum = 0, min = INFINITY, max = -INFINITY;
    int64_t isum = 0, lmin = INT64_MAX, lmax = INT64_MIN;
    uint64_t count = 0;
    for (cl_uint w = 0; w < n_rec; w++) {
        const cl_ulong *r = rec + (size_t)w * AGG_SLOTS;
        double d;
        int64_t l;
        count += r[16];
        if (exact) {
            memcpy(&l, &r[0], 8);
            isum += l;
        } else if (gpu) {
            memcpy(&d, &r[0], 8);
            sum += d;
        } else {
            cl_uint lanes_per = LM__SCAN_LANES / n_rec;
            for (cl_uint i = 0; i < lanes_per; i++)
                memcpy(&lanes[w * lanes_per + i], &r[w * lanes_per + i], 8);
        }
        if (!r[16])
            continue;
        if (wide) {
            int64_t lo, hi;
            memcpy(&lo, &r[17], 8);
            memcpy(&hi, &r[18], 8);
            lmin = lo < lmin ? lo : lmin;
            lmax = hi > lmax ? hi : lmax;
        } else {
            double lo, hi;
            memcpy(&lo, &r[17], 8);
            memcpy(&hi, &r[18], 8);
            min = lo < min ? lo : min;
            max = hi > max ? hi : max;
        }
    }
    if (exact)
        sum = (double)isum;
    else if (!gpu)
        sum = lm__scan_fold_lanes(lanes);
    if (wide) {
        min = (double)lmin;
        max = (double)lmax;
    }
    lm__scan_agg_finish(out, count, sum, min, max);
}

static void aggregate_on_device(struct job *j, const void *col, enum lm_scan_type type,
                                struct lm_scan_agg *out)
{
    static const char *const names[] = {
        [LM_SCAN_F32] = "scan_agg_f32", [LM_SCAN_I32] = "scan_agg_i32",
        [LM_SCAN_U8] = "scan_agg_u8", [LM_SCAN_I64] = "scan_agg_i64"};
    const struct lm_scan_plan *p = j->p;
    cl_int masked = p->region.kind != LM_REGION_ALL || p->n_bounds;
    /* CPU shape: one work-item keeps all 16 lanes (a second one would read every
     * cache line again); GPU shape: a few work-groups per compute unit. */
    cl_uint groups = (j->n + GPU_GROUP - 1) / GPU_GROUP;
    cl_uint cap = lm_cl_info(j->c.cl)->compute_units * 8;
    cl_uint n_rec = j->gpu ? (groups < cap ? groups : cap) : 1;
    size_t rbytes = (size_t)n_rec * AGG_SLOTS * sizeof(cl_ulong);
    cl_ulong *rec = lm_alloc(rbytes);
    if (!rec) {
        j->c.st = CL_OUT_OF_HOST_MEMORY;
        return;
    }
    if (masked)
        run_filter(j);
    else
        j->mask = lm_cl_call_device(&j->c, NULL, sizeof(cl_ulong)); /* unread */
    cl_mem cbuf = lm_cl_call_host(&j->c, col, (size_t)j->n * type_size(type), false);
    cl_mem rbuf = lm_cl_call_host(&j->c, rec, rbytes, true);
    cl_kernel k = lm_cl_call_kernel(&j->c, names[type]);
    lm_cl_call_args(&j->c, k, 0, 5, LM_CL_V(cbuf), LM_CL_V(j->n), LM_CL_V(j->mask),
                    LM_CL_V(masked), LM_CL_V(rbuf));
    lm_cl_call_run(&j->c, k, j->gpu ? (size_t)n_rec * GPU_GROUP : n_rec, j->gpu ? GPU_GROUP : 1);
    lm_cl_call_read(&j->c, rbuf, rec, rbytes);
    if (!j->c.st)
        combine(rec, n_rec, j->gpu, type, out);
    lm_free(rec);
}

static void cl_aggregate(const struct lm_scan_plan *p, const void *col,
                         enum lm_scan_type type, struct lm_scan_agg *out)
{
    static atomic_flag once = ATOMIC_FLAG_INIT;
    struct job j;
    if (p->none || !p->n) {
        lm__scan_agg_finish(out, 0, 0, INFINITY, -INFINITY);
        lm_device_trace("opencl");
        return;
    }
    if (job_start(&j, p)) {
        aggregate_on_device(&j, col, type, out);
        if (!lm_device_call_end(&j.c, &once, "scan aggregate"))
            return;
    }
    lm_device_trace(lm_scan_best()->name);
    lm_scan_best()->aggregate(p, col, type, out);
}

const struct lm_scan_table lm__scan_cl_table = {
    .name = "opencl",
    .select = cl_select,
    .aggregate = cl_aggregate,
};

const struct lm_scan_table *lm_scan_opencl(void)
{
    /* 0 not tried, 1 usable, -1 not: decided on the first call with a device. */
    static _Atomic int usable;
    int u = atomic_load(&usable);
    if (u)
        return u > 0 ? &lm__scan_cl_table : NULL;
    lm_cl *cl = lm_device_cl();
    if (!cl)
        return NULL;
    cl_kernel k;
    lm_cl_lock(cl);
    int rc = lm_cl_kernel(cl, "scan.cl", "scan_filter", &k, NULL);
    lm_cl_unlock(cl);
    atomic_store(&usable, rc ? -1 : 1);
    return rc ? NULL : &lm__scan_cl_table;
}
