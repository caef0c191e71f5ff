/* scan_cl.c - the OpenCL scan implementation: runs kernels/scan.cl on the shared
 * device (device.h) for a compiled plan. Columns are wrapped, not copied, on a device
 * that shares host memory (PoCL); elsewhere they are copied for the call.
 *
 * A filtered scan first builds the plan's match mask on the device (one ulong per 64
 * rows: the region kernel, then one kernel per predicate), then either compacts it
 * into row indices (count per unit, offsets on the host, emit) or aggregates a column
 * over it. Launch shapes: see the comment at the top of scan.cl. Any OpenCL failure
 * answers through lm_scan_best() (logged once) so a scan never fails here. */
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "alloc.h"
#include "device.h"
#include "scan.h"

#define FILE_CL "scan.cl"
#define AGG_SLOTS 19  /* scan.cl: ulongs per aggregate record */
#define GPU_GROUP 256 /* scan.cl: work-group of the GPU-shaped aggregate */

/* One call on the device: its buffers and launch geometry. */
struct job {
    lm_cl *cl;
    const struct lm_scan_plan *p;
    bool gpu;
    cl_uint n, nb;        /* rows, 64-row blocks */
    cl_uint units, per;   /* CPU shape: work-items, and blocks per work-item */
    cl_mem held[LM_SCAN_MAX_PREDS + 12];
    int n_held;
    cl_mem mask;
};

static cl_int buffer(struct job *j, const void *host, size_t bytes, bool write, cl_mem *out)
{
    if (j->n_held == (int)(sizeof j->held / sizeof j->held[0]))
        return CL_OUT_OF_RESOURCES;
    int rc = lm_cl_host_buffer(j->cl, (void *)host, bytes, write, out);
    if (rc)
        return CL_OUT_OF_RESOURCES;
    j->held[j->n_held++] = *out;
    return CL_SUCCESS;
}

static void job_release(struct job *j)
{
    for (int i = 0; i < j->n_held; i++)
        clReleaseMemObject(j->held[i]);
    j->n_held = 0;
}

static size_t type_size(enum lm_scan_type t)
{
    return t == LM_SCAN_U8 ? 1 : t == LM_SCAN_I64 ? 8 : 4;
}

static cl_int kernel(struct job *j, const char *name, cl_kernel *k)
{
    return lm_cl_kernel(j->cl, FILE_CL, name, k, NULL) ? CL_BUILD_PROGRAM_FAILURE : CL_SUCCESS;
}

static cl_int launch(struct job *j, cl_kernel k, size_t global, size_t local)
{
    return clEnqueueNDRangeKernel(lm_cl_queue(j->cl), k, 1, NULL, &global,
                                  local ? &local : NULL, 0, NULL, NULL);
}

static cl_int read_back(struct job *j, cl_mem m, void *host, size_t bytes)
{
    return lm_cl_host_buffer_read(j->cl, m, host, bytes) ? CL_OUT_OF_RESOURCES : CL_SUCCESS;
}

#define ARG(k, i, v) clSetKernelArg(k, i, sizeof(v), &(v))

/* Launches a per-block kernel: CPU shape over `units` work-items of `per` blocks,
 * GPU shape one work-item per row in work-groups of one block. */
static cl_int launch_blocks(struct job *j, cl_kernel k)
{
    return j->gpu ? launch(j, k, (size_t)j->nb * 64, 64) : launch(j, k, j->units, 1);
}

/* ---------------------------------------------------------------- the match mask */

static cl_int run_region(struct job *j)
{
    const struct lm_scan_plan *p = j->p;
    const struct lm_region *r = &p->region;
    cl_float16 pa = {{0}};
    cl_float8 pb = {{0}};
    cl_int kind = (cl_int)r->kind;
    cl_mem x, y, z;
    cl_kernel k;
    cl_int st;
    size_t bytes = (size_t)j->n * sizeof(float);

    if (kind == LM_REGION_ALL) {
        cl_uint units = j->gpu ? j->nb : j->units, per = j->gpu ? 1 : j->per;
        if ((st = kernel(j, "scan_all", &k)))
            return st;
        st = ARG(k, 0, j->n) | ARG(k, 1, j->mask) | ARG(k, 2, per);
        return st ? st : launch(j, k, units, j->gpu ? 0 : 1);
    }
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
    if ((st = buffer(j, p->x, bytes, false, &x)) || (st = buffer(j, p->y, bytes, false, &y)) ||
        (st = buffer(j, p->z, bytes, false, &z)) ||
        (st = kernel(j, "scan_region", &k)))
        return st;
    st = ARG(k, 0, x) | ARG(k, 1, y) | ARG(k, 2, z) | ARG(k, 3, j->n) | ARG(k, 4, kind) |
         ARG(k, 5, pa) | ARG(k, 6, pb) | ARG(k, 7, j->mask) | ARG(k, 8, j->per);
    return st ? st : launch_blocks(j, k);
}

static cl_int run_bound(struct job *j, const struct lm_scan_bound *b)
{
    static const char *const names[] = {
        [LM_SCAN_F32] = "scan_bound_f32", [LM_SCAN_I32] = "scan_bound_i32",
        [LM_SCAN_U8] = "scan_bound_u8", [LM_SCAN_I64] = "scan_bound_i64"};
    cl_mem col;
    cl_kernel k;
    cl_int neg = b->negate, st;
    if ((st = buffer(j, b->col, (size_t)j->n * type_size(b->type), false, &col)) ||
        (st = kernel(j, names[b->type], &k)))
        return st;
    st = ARG(k, 0, col) | ARG(k, 1, j->n) | ARG(k, 4, neg) | ARG(k, 5, j->mask) |
         ARG(k, 6, j->per);
    switch (b->type) {
    case LM_SCAN_F32: st |= ARG(k, 2, b->range.f32[0]) | ARG(k, 3, b->range.f32[1]); break;
    case LM_SCAN_I32: st |= ARG(k, 2, b->range.i32[0]) | ARG(k, 3, b->range.i32[1]); break;
    case LM_SCAN_U8: st |= ARG(k, 2, b->range.u8[0]) | ARG(k, 3, b->range.u8[1]); break;
    case LM_SCAN_I64: st |= ARG(k, 2, b->range.i64[0]) | ARG(k, 3, b->range.i64[1]); break;
    }
    return st ? st : launch_blocks(j, k);
}

/* Builds j->mask: the region, then every predicate. */
static cl_int run_filter(struct job *j)
{
    cl_int st = CL_SUCCESS;
    cl_mem m = clCreateBuffer(lm_cl_context(j->cl), CL_MEM_READ_WRITE,
                              (size_t)j->nb * sizeof(cl_ulong), NULL, &st);
    if (!m)
        return st;
    j->held[j->n_held++] = m;
    j->mask = m;
    st = run_region(j);
    for (uint32_t i = 0; i < j->p->n_bounds && !st; i++)
        st = run_bound(j, &j->p->bounds[i]);
    return st;
}

/* ---------------------------------------------------------------- calls */

static bool job_start(struct job *j, const struct lm_scan_plan *p)
{
    memset(j, 0, sizeof *j);
    if (!(j->cl = lm_device_cl()))
        return false;
    j->p = p;
    j->gpu = lm_cl_shape(j->cl) == LM_CL_SHAPE_GPU;
    j->n = (cl_uint)p->n;
    j->nb = (cl_uint)((p->n + 63) / 64);
    cl_uint want = lm_cl_info(j->cl)->compute_units * 4;
    j->units = j->nb < want ? j->nb : want;
    j->per = j->units ? (j->nb + j->units - 1) / j->units : 1;
    j->units = j->per ? (j->nb + j->per - 1) / j->per : 0;
    lm_cl_lock(j->cl);
    return true;
}

static void job_end(struct job *j)
{
    job_release(j);
    lm_cl_unlock(j->cl);
}

static void fell_back(atomic_flag *once, const char *what, cl_int st)
{
    lm_device_failed(once, what, st);
    lm_device_trace(lm_scan_best()->name);
}

static cl_int select_on_device(struct job *j, uint32_t *sel, size_t *k)
{
    cl_uint units = j->gpu ? j->nb : j->units, per = j->gpu ? 1 : j->per;
    cl_uint *counts = lm_alloc((size_t)units * sizeof *counts);
    cl_mem cbuf, obuf, sbuf;
    cl_kernel kc, ke;
    cl_int st = counts ? run_filter(j) : CL_OUT_OF_HOST_MEMORY;
    if (st || (st = buffer(j, counts, (size_t)units * sizeof *counts, true, &cbuf)) ||
        (st = kernel(j, "scan_count", &kc)) || (st = kernel(j, "scan_emit", &ke)))
        goto out;
    st = ARG(kc, 0, j->mask) | ARG(kc, 1, j->nb) | ARG(kc, 2, per) | ARG(kc, 3, cbuf);
    if (st || (st = launch(j, kc, units, j->gpu ? 0 : 1)) ||
        (st = read_back(j, cbuf, counts, (size_t)units * sizeof *counts)))
        goto out;
    size_t total = 0;
    for (cl_uint u = 0; u < units; u++) {
        cl_uint c = counts[u];
        counts[u] = (cl_uint)total; /* exclusive prefix: each unit's first slot */
        total += c;
    }
    *k = total;
    if (!total)
        goto out;
    if ((st = buffer(j, counts, (size_t)units * sizeof *counts, false, &obuf)) ||
        (st = buffer(j, sel, total * sizeof *sel, true, &sbuf)))
        goto out;
    st = ARG(ke, 0, j->mask) | ARG(ke, 1, j->nb) | ARG(ke, 2, per) | ARG(ke, 3, obuf) |
         ARG(ke, 4, sbuf);
    if (!st && !(st = launch(j, ke, units, j->gpu ? 0 : 1)))
        st = read_back(j, sbuf, sel, total * sizeof *sel);
out:
    lm_free(counts);
    return st;
}

static size_t cl_select(const struct lm_scan_plan *p, uint32_t *sel)
{
    static atomic_flag once = ATOMIC_FLAG_INIT;
    struct job j;
    if (p->none || !p->n) {
        lm_device_trace("opencl");
        return 0;
    }
    if (!job_start(&j, p))
        return lm_scan_best()->select(p, sel);
    size_t k = 0;
    cl_int st = select_on_device(&j, sel, &k);
    job_end(&j);
    if (!st) {
        lm_device_trace("opencl");
        return k;
    }
    fell_back(&once, "scan select", st);
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

static cl_int aggregate_on_device(struct job *j, const void *col, enum lm_scan_type type,
                                  struct lm_scan_agg *out)
{
    static const char *const names[] = {
        [LM_SCAN_F32] = "scan_agg_f32", [LM_SCAN_I32] = "scan_agg_i32",
        [LM_SCAN_U8] = "scan_agg_u8", [LM_SCAN_I64] = "scan_agg_i64"};
    const struct lm_scan_plan *p = j->p;
    cl_int masked = p->region.kind != LM_REGION_ALL || p->n_bounds, st = CL_SUCCESS;
    /* CPU shape: one work-item keeps all 16 lanes (a second one would read every
     * cache line again); GPU shape: a few work-groups per compute unit. */
    cl_uint groups = (j->n + GPU_GROUP - 1) / GPU_GROUP, cap = lm_cl_info(j->cl)->compute_units * 8;
    cl_uint n_rec = j->gpu ? (groups < cap ? groups : cap) : 1;
    cl_ulong *rec = lm_alloc((size_t)n_rec * AGG_SLOTS * sizeof *rec);
    cl_mem cbuf, rbuf, mask;
    cl_kernel k;
    if (!rec)
        return CL_OUT_OF_HOST_MEMORY;
    if ((masked && (st = run_filter(j))) ||
        (!masked && (st = buffer(j, NULL, 0, false, &j->mask))) ||
        (st = buffer(j, col, (size_t)j->n * type_size(type), false, &cbuf)) ||
        (st = buffer(j, rec, (size_t)n_rec * AGG_SLOTS * sizeof *rec, true, &rbuf)) ||
        (st = kernel(j, names[type], &k)))
        goto out;
    mask = j->mask;
    st = ARG(k, 0, cbuf) | ARG(k, 1, j->n) | ARG(k, 2, mask) | ARG(k, 3, masked) |
         ARG(k, 4, rbuf);
    if (!st)
        st = j->gpu ? launch(j, k, (size_t)n_rec * GPU_GROUP, GPU_GROUP)
                    : launch(j, k, n_rec, 1);
    if (!st)
        st = read_back(j, rbuf, rec, (size_t)n_rec * AGG_SLOTS * sizeof *rec);
    if (!st)
        combine(rec, n_rec, j->gpu, type, out);
out:
    lm_free(rec);
    return st;
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
    if (!job_start(&j, p)) {
        lm_scan_best()->aggregate(p, col, type, out);
        return;
    }
    cl_int st = aggregate_on_device(&j, col, type, out);
    job_end(&j);
    if (!st) {
        lm_device_trace("opencl");
        return;
    }
    fell_back(&once, "scan aggregate", st);
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
    int rc = lm_cl_kernel(cl, FILE_CL, "scan_region", &k, NULL);
    lm_cl_unlock(cl);
    atomic_store(&usable, rc ? -1 : 1);
    return rc ? NULL : &lm__scan_cl_table;
}
