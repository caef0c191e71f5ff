/* scan.cl - filter + aggregate over chunk columns: the OpenCL twin of scan_scalar.c,
 * driven by scan_cl.c. Rules (comparison, region arithmetic, sum order) are those of
 * kernels/scan.h; FP_CONTRACT is off so that no multiply-add is fused.
 *
 * Rows go in blocks of 64; each block's matches are one ulong of a mask buffer.
 *  scan_filter   writes the mask of the region test and up to four predicates;
 *  scan_bound_*  ANDs one more compiled predicate into it;
 *  scan_count    counts the matches of each unit (a range of `per` blocks),
 *  scan_emit     writes their row indices from each unit's offset;
 *  scan_agg_*    aggregates one column over the matches (or over every row).
 * CPU shape (LM_GPU_SHAPE 0): few work-items, each over a contiguous range of `per`
 * blocks with 16-wide vectors; f32 and i64 sums keep scan.h's 16 lanes, split between
 * the work-items (lanes [w*16/W, (w+1)*16/W) on work-item w), so sums are bit for bit
 * those of the CPU. GPU shape: one work-item per row, masks gathered with local
 * atomics, sums reduced in local memory per work-group (order differs: scan.h (1)).
 */
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#pragma OPENCL FP_CONTRACT OFF
#if defined(__clang__)
/* 16-wide vectors cross calls into the builtin library (PoCL on x86 without AVX-512):
 * the ABI note clang gives for that is about linking separate objects, not this one. */
#pragma clang diagnostic ignored "-Wpsabi"
#endif

#define REGION_ALL 0
#define REGION_BOX 1
#define REGION_SPHERE 2
#define REGION_FRUSTUM 3

#define TYPE_F32 1 /* enum lm_scan_type */
#define TYPE_I32 2
#define TYPE_U8 3
#define TYPE_I64 4

/* Region parameters: BOX pa.s012 = min, pa.s345 = max; SPHERE pa.s012 = centre,
 * pa.s3 = r*r; FRUSTUM planes 0-3 in pa, 4-5 in pb, four coefficients each. */

/* ---------------------------------------------------------------- one row */

inline bool plane_row(float4 p, float x, float y, float z)
{
    float s = ((p.x * x + p.y * y) + p.z * z) + p.w;
    return s >= 0.0f;
}

inline bool region_row(int kind, float16 pa, float8 pb, float x, float y, float z)
{
    if (kind == REGION_BOX)
        return x >= pa.s0 && x <= pa.s3 && y >= pa.s1 && y <= pa.s4 && z >= pa.s2 &&
               z <= pa.s5;
    if (kind == REGION_SPHERE) {
        float dx = x - pa.s0, dy = y - pa.s1, dz = z - pa.s2;
        float d2 = (dx * dx + dy * dy) + dz * dz;
        return d2 <= pa.s3;
    }
    if (kind == REGION_FRUSTUM)
        return plane_row(pa.s0123, x, y, z) && plane_row(pa.s4567, x, y, z) &&
               plane_row(pa.s89ab, x, y, z) && plane_row(pa.scdef, x, y, z) &&
               plane_row(pb.s0123, x, y, z) && plane_row(pb.s4567, x, y, z);
    return true;
}

/* Bits 0..rows-1 set. */
inline ulong valid_bits(uint rows) { return rows >= 64 ? ~0ul : (1ul << rows) - 1; }

#if !LM_GPU_SHAPE

/* ---------------------------------------------------------------- 16 rows (CPU shape) */

/* Helpers take vectors through pointers: a 16-wide vector passed by value changes the
 * calling convention on x86 without AVX-512, which the compiler warns about. */

/* Lane masks (-1 / 0) to bits. */
inline ulong bits16(const int16 *m)
{
    uint16 b = as_uint16(*m) & (uint16)(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048,
                                        4096, 8192, 16384, 32768);
    uint8 c = b.lo | b.hi;
    uint4 d = c.lo | c.hi;
    uint2 e = d.lo | d.hi;
    return (ulong)(e.x | e.y);
}

inline ulong bits16c(const char16 *m)
{
    int16 w = convert_int16(*m);
    return bits16(&w);
}

inline ulong bits8l(const long8 *m)
{
    ulong8 b = as_ulong8(*m) & (ulong8)(1, 2, 4, 8, 16, 32, 64, 128);
    ulong4 c = b.lo | b.hi;
    ulong2 d = c.lo | c.hi;
    return d.x | d.y;
}

/* Plane test of 16 rows: ((a*x + b*y) + c*z) + d >= 0, each operation rounded. */
#define PLANE16(p, x, y, z) (((((p).x * (x) + (p).y * (y)) + (p).z * (z)) + (p).w) >= 0.0f)

/* The region test of the 64 rows from row r (all inside the columns), as bits. */
inline ulong region_bits64(int kind, const float16 *pa, const float8 *pb,
                           __global const float *xs, __global const float *ys,
                           __global const float *zs, size_t r)
{
    ulong m = 0;
    for (uint g = 0; g < 4; g++) {
        size_t i = r / 16 + g;
        float16 x = vload16(i, xs), y = vload16(i, ys), z = vload16(i, zs);
        int16 in;
        if (kind == REGION_BOX) {
            in = (x >= pa->s0) & (x <= pa->s3) & (y >= pa->s1) & (y <= pa->s4) &
                 (z >= pa->s2) & (z <= pa->s5);
        } else if (kind == REGION_SPHERE) {
            float16 dx = x - pa->s0, dy = y - pa->s1, dz = z - pa->s2;
            float16 d2 = (dx * dx + dy * dy) + dz * dz;
            in = d2 <= pa->s3;
        } else {
            in = PLANE16(pa->s0123, x, y, z) & PLANE16(pa->s4567, x, y, z) &
                 PLANE16(pa->s89ab, x, y, z) & PLANE16(pa->scdef, x, y, z) &
                 PLANE16(pb->s0123, x, y, z) & PLANE16(pb->s4567, x, y, z);
        }
        m |= bits16(&in) << (16 * g);
    }
    return m;
}

/* Blocks [b0, b1) of work-item `gid`, per blocks each. */
#define UNIT_BLOCKS(nb, per)                                                              \
    uint b0 = get_global_id(0) * (per), b1 = min((uint)(nb), b0 + (per))

/* The bits of one predicate lo <= v <= hi over the rows [r, r + rows) of a block
 * (rows <= 64, all inside the column). V loads GROUP values, whose compare gives lane
 * masks of type M, turned into bits by VEC_BITS; a full block takes GROUPS loads. */
#define BOUND_BITS(NAME, T, M, VEC_BITS, VLOAD, GROUP, GROUPS)                             \
    inline ulong NAME(__global const T *col, size_t r, uint rows, T lo, T hi)              \
    {                                                                                      \
        ulong in = 0;                                                                      \
        if (rows < 64) {                                                                   \
            for (uint j = 0; j < rows; j++)                                                \
                in |= (ulong)(col[r + j] >= lo && col[r + j] <= hi) << j;                  \
            return in;                                                                     \
        }                                                                                  \
        for (uint g = 0; g < GROUPS; g++) {                                                \
            size_t i = r / GROUP + g;                                                      \
            M t = (VLOAD(i, col) >= lo) & (VLOAD(i, col) <= hi);                           \
            in |= VEC_BITS(&t) << (GROUP * g);                                             \
        }                                                                                  \
        return in;                                                                         \
    }

BOUND_BITS(bits_f32, float, int16, bits16, vload16, 16, 4)
BOUND_BITS(bits_i32, int, int16, bits16, vload16, 16, 4)
BOUND_BITS(bits_u8, uchar, char16, bits16c, vload16, 16, 4)
BOUND_BITS(bits_i64, long, long8, bits8l, vload8, 8, 8)

/* Predicate j of a block as bits (types as enum lm_scan_type; bounds as long bits). */
inline ulong pred_bits(int type, __global const uchar *col, long lo, long hi, size_t r,
                       uint rows)
{
    switch (type) {
    case TYPE_F32:
        return bits_f32((__global const float *)col, r, rows, as_float((int)lo),
                        as_float((int)hi));
    case TYPE_I32: return bits_i32((__global const int *)col, r, rows, (int)lo, (int)hi);
    case TYPE_U8: return bits_u8(col, r, rows, (uchar)lo, (uchar)hi);
    }
    return bits_i64((__global const long *)col, r, rows, lo, hi);
}

/* The mask of the region (kind ALL: every row) and up to four predicates: column
 * c[j] of type ptype[j] (0: none), negated when pneg[j], bounds plo[j], phi[j]. A block
 * stops reading predicate columns once its mask is empty. */
__kernel void scan_filter(__global const float *x, __global const float *y,
                          __global const float *z, uint n, int kind, float16 pa, float8 pb,
                          __global const uchar *c0, __global const uchar *c1,
                          __global const uchar *c2, __global const uchar *c3, int4 ptype,
                          int4 pneg, long4 plo, long4 phi, __global ulong *mask, uint per)
{
    __global const uchar *col[4] = {c0, c1, c2, c3};
    const int type[4] = {ptype.x, ptype.y, ptype.z, ptype.w};
    const int neg[4] = {pneg.x, pneg.y, pneg.z, pneg.w};
    const long lo[4] = {plo.x, plo.y, plo.z, plo.w}, hi[4] = {phi.x, phi.y, phi.z, phi.w};
    uint nb = (n + 63) / 64;
    UNIT_BLOCKS(nb, per);
    for (uint b = b0; b < b1; b++) {
        size_t r = (size_t)b * 64;
        uint rows = min(64u, n - (uint)r);
        ulong m = 0;
        if (kind == REGION_ALL) {
            m = valid_bits(rows);
        } else if (rows == 64) {
            m = region_bits64(kind, &pa, &pb, x, y, z, r);
        } else {
            for (uint j = 0; j < rows; j++)
                m |= (ulong)region_row(kind, pa, pb, x[r + j], y[r + j], z[r + j]) << j;
        }
        for (int j = 0; j < 4 && type[j] && m; j++) {
            ulong in = pred_bits(type[j], col[j], lo[j], hi[j], r, rows);
            m &= neg[j] ? ~in : in;
        }
        mask[b] = m;
    }
}

/* One more predicate (past the first four) ANDed into the mask. */
#define SCAN_BOUND(NAME, T, BITS)                                                          \
    __kernel void NAME(__global const T *col, uint n, T lo, T hi, int negate,              \
                       __global ulong *mask, uint per)                                    \
    {                                                                                      \
        uint nb = (n + 63) / 64;                                                           \
        UNIT_BLOCKS(nb, per);                                                              \
        for (uint b = b0; b < b1; b++) {                                                   \
            ulong m = mask[b];                                                             \
            if (!m)                                                                        \
                continue;                                                                  \
            ulong in = BITS(col, (size_t)b * 64, min(64u, n - b * 64), lo, hi);            \
            mask[b] = m & (negate ? ~in : in);                                             \
        }                                                                                  \
    }

SCAN_BOUND(scan_bound_f32, float, bits_f32)
SCAN_BOUND(scan_bound_i32, int, bits_i32)
SCAN_BOUND(scan_bound_u8, uchar, bits_u8)
SCAN_BOUND(scan_bound_i64, long, bits_i64)

#else /* LM_GPU_SHAPE */

/* ---------------------------------------------------------------- one row per item (GPU) */

/* Work-groups of 64 items: one block. Each item sets its bit in local words. */
inline ulong gather_bits(bool in, __local uint *words)
{
    uint lid = get_local_id(0);
    if (lid < 2)
        words[lid] = 0;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (in)
        atomic_or(&words[lid / 32], 1u << (lid % 32));
    barrier(CLK_LOCAL_MEM_FENCE);
    return (ulong)words[0] | (ulong)words[1] << 32;
}

inline bool pred_row(int type, __global const uchar *col, long lo, long hi, size_t i)
{
    switch (type) {
    case TYPE_F32: {
        float v = ((__global const float *)col)[i];
        return v >= as_float((int)lo) && v <= as_float((int)hi);
    }
    case TYPE_I32: {
        int v = ((__global const int *)col)[i];
        return v >= (int)lo && v <= (int)hi;
    }
    case TYPE_U8: return col[i] >= (uchar)lo && col[i] <= (uchar)hi;
    }
    long v = ((__global const long *)col)[i];
    return v >= lo && v <= hi;
}

/* One item per row; items past the last row read the last row (the compiler may load
 * before it tests the index) and drop the result. */
__kernel void scan_filter(__global const float *x, __global const float *y,
                          __global const float *z, uint n, int kind, float16 pa, float8 pb,
                          __global const uchar *c0, __global const uchar *c1,
                          __global const uchar *c2, __global const uchar *c3, int4 ptype,
                          int4 pneg, long4 plo, long4 phi, __global ulong *mask, uint per)
{
    __local uint words[2];
    __global const uchar *col[4] = {c0, c1, c2, c3};
    const int type[4] = {ptype.x, ptype.y, ptype.z, ptype.w};
    const int neg[4] = {pneg.x, pneg.y, pneg.z, pneg.w};
    const long lo[4] = {plo.x, plo.y, plo.z, plo.w}, hi[4] = {phi.x, phi.y, phi.z, phi.w};
    size_t i = get_global_id(0), j = min(i, (size_t)n - 1), jr = kind == REGION_ALL ? 0 : j;
    bool in = kind == REGION_ALL || region_row(kind, pa, pb, x[jr], y[jr], z[jr]);
    for (int k = 0; k < 4 && type[k]; k++)
        in = in && pred_row(type[k], col[k], lo[k], hi[k], j) != neg[k];
    ulong m = gather_bits(in && i < n, words);
    if (get_local_id(0) == 0)
        mask[get_group_id(0)] = m;
}

#define SCAN_BOUND(NAME, T)                                                                \
    __kernel void NAME(__global const T *col, uint n, T lo, T hi, int negate,              \
                       __global ulong *mask, uint per)                                    \
    {                                                                                      \
        __local uint words[2];                                                             \
        size_t i = get_global_id(0), j = min(i, (size_t)n - 1);                            \
        T v = col[j];                                                                      \
        bool in = v >= lo && v <= hi && i < n;                                             \
        ulong m = gather_bits(in, words);                                                  \
        if (get_local_id(0) == 0)                                                          \
            mask[get_group_id(0)] &= negate ? ~m : m;                                      \
    }

SCAN_BOUND(scan_bound_f32, float)
SCAN_BOUND(scan_bound_i32, int)
SCAN_BOUND(scan_bound_u8, uchar)
SCAN_BOUND(scan_bound_i64, long)

#define UNIT_BLOCKS(nb, per)                                                              \
    uint b0 = get_global_id(0) * (per), b1 = min((uint)(nb), b0 + (per))

#endif /* LM_GPU_SHAPE */

/* ---------------------------------------------------------------- both shapes */

/* Matches of each unit (blocks [u*per, (u+1)*per)). */
__kernel void scan_count(__global const ulong *mask, uint nb, uint per,
                         __global uint *counts)
{
    UNIT_BLOCKS(nb, per);
    uint c = 0;
    for (uint b = b0; b < b1; b++)
        c += (uint)popcount(mask[b]);
    if (b0 < nb)
        counts[get_global_id(0)] = c;
}

/* Row indices of each unit's matches, from offsets[unit], ascending. */
__kernel void scan_emit(__global const ulong *mask, uint nb, uint per,
                        __global const uint *offsets, __global uint *sel)
{
    UNIT_BLOCKS(nb, per);
    if (b0 >= nb)
        return;
    uint k = offsets[get_global_id(0)];
    for (uint b = b0; b < b1; b++)
        for (ulong m = mask[b]; m; m &= m - 1)
            sel[k++] = b * 64 + (uint)(63 - clz(m & -m));
}

/* ---------------------------------------------------------------- aggregate */

/* Each work-item's record in `out` (AGG_SLOTS ulongs): slots 0..15 its sum lanes (double
 * bits; i32 and u8: slot 0 holds the exact long sum), 16 the count, 17 and 18 min and
 * max (double bits; i64: long). */
#define AGG_SLOTS 19

#if !LM_GPU_SHAPE

/* Work-item w of W (W = 1, 2 or 4) owns lanes [w*L, (w+1)*L), L = 16/W: rows 16g + w*L + l
 * for every group g of 16 rows. Full groups go 16-wide, unowned and unselected lanes
 * adding +0 (which changes no lane: lanes never hold -0) and leaving min/max alone.
 * V is the working vector type of the column (u8 widened to int), M its lane mask,
 * ACC the sum lanes (double16, or long16 for the exact integer sums). */
#define SCAN_AGG(NAME, T, V, S, LOAD, M, TO_M, ACC, TO_ACC, LANES, LONG_SUM, WIDE, LO0,  \
                 HI0, VLO0, VHI0, BITS)                                                         \
    __kernel void NAME(__global const T *col, uint n, __global const ulong *mask,          \
                       int masked, __global ulong *out)                                    \
    {                                                                                      \
        uint w = get_global_id(0), L = 16 / get_global_size(0), lane0 = w * L;             \
        uint own = ((1u << L) - 1) << lane0;                                               \
        const int16 lane_bit = (int16)(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048,  \
                                       4096, 8192, 16384, 32768);                          \
        ACC acc = (ACC)0;                                                                  \
        V vlo = (V)VLO0, vhi = (V)VHI0;                                                    \
        ulong count = 0;                                                                   \
        size_t full = n & ~(size_t)15;                                                     \
        if (!masked && own == 0xffffu) { /* every row: no lane masks */                    \
            for (size_t r0 = 0; r0 < full; r0 += 16) {                                     \
                V v = LOAD(r0 / 16, col);                                                  \
                acc += TO_ACC(v);                                                          \
                vlo = select(vlo, v, TO_M(v < vlo));                                       \
                vhi = select(vhi, v, TO_M(v > vhi));                                       \
            }                                                                              \
            count = full;                                                                  \
        }                                                                                  \
        for (size_t r0 = 0; r0 < full && (masked || own != 0xffffu); r0 += 16) {           \
            uint bits = (masked ? (uint)(mask[r0 / 64] >> (r0 % 64)) : 0xffffu) & own;    \
            if (!bits)                                                                     \
                continue;                                                                  \
            count += popcount(bits);                                                       \
            M m = TO_M(((int16)((int)bits) & lane_bit) != 0);                              \
            V v = LOAD(r0 / 16, col);                                                      \
            acc += TO_ACC(select((V)0, v, m));                                             \
            vlo = select(vlo, v, (v < vlo) & m);                                           \
            vhi = select(vhi, v, (v > vhi) & m);                                           \
        }                                                                                  \
        double lanes[16];                                                                  \
        S los[16], his[16];                                                                \
        vstore16(LANES(acc), 0, lanes);                                                    \
        vstore16(vlo, 0, los);                                                             \
        vstore16(vhi, 0, his);                                                             \
        WIDE lo = LO0, hi = HI0;                                                           \
        for (uint l = 0; l < 16; l++) {                                                    \
            lo = (WIDE)los[l] < lo ? (WIDE)los[l] : lo;                                    \
            hi = (WIDE)his[l] > hi ? (WIDE)his[l] : hi;                                    \
        }                                                                                  \
        uint tail = (uint)(n - full);                                                      \
        uint bits = tail ? (masked ? (uint)(mask[full / 64] >> (full % 64)) : 0xffffu) &  \
                               (uint)valid_bits(tail) & own : 0;                           \
        count += popcount(bits);                                                           \
        for (uint l = 0; l < 16; l++) {                                                    \
            if (!((bits >> l) & 1))                                                        \
                continue;                                                                  \
            T v = col[full + l];                                                           \
            if (LONG_SUM)                                                                  \
                lanes[0] = as_double(as_long(lanes[0]) + (long)v);                         \
            else                                                                           \
                lanes[l] += (double)v;                                                     \
            lo = (WIDE)v < lo ? (WIDE)v : lo;                                              \
            hi = (WIDE)v > hi ? (WIDE)v : hi;                                              \
        }                                                                                  \
        __global ulong *o = out + (size_t)w * AGG_SLOTS;                                   \
        for (uint l = 0; l < 16; l++)                                                      \
            o[l] = as_ulong(lanes[l]);                                                     \
        o[16] = count;                                                                     \
        o[17] = BITS(lo);                                                                  \
        o[18] = BITS(hi);                                                                  \
    }

/* The exact integer sums add their 16 long lanes into lane 0's bits (order-free). */
#define fold_long16(a) fold_long16p(&(a))
inline double16 fold_long16p(const long16 *a)
{
    long8 b = a->lo + a->hi;
    long4 c = b.lo + b.hi;
    long2 d = c.lo + c.hi;
    long s = d.x + d.y;
    return as_double16((long16)(s, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0));
}

#else /* LM_GPU_SHAPE */

/* A grid-stride loop per item, then a tree over the work-group in local memory (256
 * items); one record per work-group. Sums are in a different order than the CPU's. */
#define SCAN_AGG(NAME, T, V, S, LOAD, M, TO_M, ACC, TO_ACC, LANES, LONG_SUM, WIDE, LO0,  \
                 HI0, VLO0, VHI0, SLOT_BITS)                                                     \
    __kernel void NAME(__global const T *col, uint n, __global const ulong *mask,          \
                       int masked, __global ulong *out)                                    \
    {                                                                                      \
        __local double s_sum[256];                                                         \
        __local long s_isum[256];                                                          \
        __local ulong s_count[256];                                                        \
        __local WIDE s_lo[256], s_hi[256];                                                 \
        uint lid = get_local_id(0);                                                        \
        double sum = 0.0;                                                                  \
        long isum = 0;                                                                     \
        ulong count = 0;                                                                   \
        WIDE lo = LO0, hi = HI0;                                                           \
        for (size_t i = get_global_id(0); i < n; i += get_global_size(0)) {                \
            if (masked && !((mask[i / 64] >> (i % 64)) & 1))                               \
                continue;                                                                  \
            T v = col[i];                                                                  \
            if (LONG_SUM)                                                                  \
                isum += (long)v;                                                           \
            else                                                                           \
                sum += (double)v;                                                          \
            WIDE wv = (WIDE)v;                                                             \
            lo = wv < lo ? wv : lo;                                                        \
            hi = wv > hi ? wv : hi;                                                        \
            count++;                                                                       \
        }                                                                                  \
        s_sum[lid] = sum;                                                                  \
        s_isum[lid] = isum;                                                                \
        s_count[lid] = count;                                                              \
        s_lo[lid] = lo;                                                                    \
        s_hi[lid] = hi;                                                                    \
        for (uint w = get_local_size(0) / 2; w; w /= 2) {                                  \
            barrier(CLK_LOCAL_MEM_FENCE);                                                  \
            if (lid < w) {                                                                 \
                s_sum[lid] += s_sum[lid + w];                                              \
                s_isum[lid] += s_isum[lid + w];                                            \
                s_count[lid] += s_count[lid + w];                                          \
                s_lo[lid] = s_lo[lid + w] < s_lo[lid] ? s_lo[lid + w] : s_lo[lid];         \
                s_hi[lid] = s_hi[lid + w] > s_hi[lid] ? s_hi[lid + w] : s_hi[lid];         \
            }                                                                              \
        }                                                                                  \
        if (lid == 0) {                                                                    \
            __global ulong *o = out + get_group_id(0) * AGG_SLOTS;                         \
            for (uint l = 0; l < 16; l++)                                                  \
                o[l] = 0;                                                                  \
            o[0] = LONG_SUM ? as_ulong(s_isum[0]) : as_ulong(s_sum[0]);                   \
            o[16] = s_count[0];                                                            \
            o[17] = SLOT_BITS(s_lo[0]);                                                    \
            o[18] = SLOT_BITS(s_hi[0]);                                                    \
        }                                                                                  \
    }

#endif /* LM_GPU_SHAPE */

#define BITS(v) as_ulong(v)
#define SAME(v) (v)
#define LOAD_U8(i, p) convert_int16(vload16(i, p))

SCAN_AGG(scan_agg_f32, float, float16, float, vload16, int16, SAME, double16,
         convert_double16, SAME, 0, double, INFINITY, -INFINITY, INFINITY, -INFINITY, BITS)
SCAN_AGG(scan_agg_i32, int, int16, int, vload16, int16, SAME, long16, convert_long16,
         fold_long16, 1, double, INFINITY, -INFINITY, INT_MAX, INT_MIN, BITS)
SCAN_AGG(scan_agg_u8, uchar, int16, int, LOAD_U8, int16, SAME, long16, convert_long16,
         fold_long16, 1, double, INFINITY, -INFINITY, INT_MAX, INT_MIN, BITS)
SCAN_AGG(scan_agg_i64, long, long16, long, vload16, long16, convert_long16, double16,
         convert_double16, SAME, 0, long, LONG_MAX, LONG_MIN, LONG_MAX, LONG_MIN, BITS)
