/* knn.cl - batched brute-force k nearest: the OpenCL twin of knn_scalar.c (knn.h
 * invariants; FP_CONTRACT off). CPU shape: each work-item takes the queries
 * [gid*per, (gid+1)*per) and reads the points 16 at a time; GPU shape: one query per
 * work-item, the points staged through local memory a tile at a time. */
#pragma OPENCL FP_CONTRACT OFF
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wpsabi" /* see scan.cl */
#endif

#define MAX_K 32

/* The list of knn.h: lm__knn_offer, operation for operation. */
inline void offer(float *bd, uint *bi, uint *bn, uint k, float d2, uint i, float max_d2)
{
    bool full = *bn == k;
    if (!(d2 <= max_d2) || (full && !(d2 < bd[k - 1])))
        return;
    uint j = full ? k - 1 : (*bn)++;
    for (; j > 0 && bd[j - 1] > d2; j--) {
        bd[j] = bd[j - 1];
        bi[j] = bi[j - 1];
    }
    bd[j] = d2;
    bi[j] = i;
}

inline float bound_of(const float *bd, uint bn, uint k, float max_d2)
{
    return bn < k ? max_d2 : bd[k - 1];
}

inline void store(const float *bd, const uint *bi, uint bn, uint k, size_t q,
                  __global uint *idx, __global float *d2, __global uint *found)
{
    for (uint j = 0; j < k; j++) {
        idx[q * k + j] = j < bn ? bi[j] : 0xffffffffu;
        d2[q * k + j] = j < bn ? bd[j] : INFINITY;
    }
    found[q] = bn;
}

inline float dist2(float px, float py, float pz, float qx, float qy, float qz)
{
    float dx = px - qx, dy = py - qy, dz = pz - qz;
    return (dx * dx + dy * dy) + dz * dz;
}

#if !LM_GPU_SHAPE

__kernel void knn(__global const float *x, __global const float *y, __global const float *z,
                  uint n, __global const float *qxs, __global const float *qys,
                  __global const float *qzs, uint m, uint k, float max_d2,
                  __global uint *idx, __global float *d2, __global uint *found, uint per)
{
    uint q0 = get_global_id(0) * per, q1 = min(m, q0 + per);
    uint full = n & ~15u;
    for (uint q = q0; q < q1; q++) {
        float bd[MAX_K], dv[16];
        uint bi[MAX_K], bn = 0;
        float qx = qxs[q], qy = qys[q], qz = qzs[q];
        float bound = max_d2;
        for (uint i = 0; i < full; i += 16) {
            float16 dx = vload16(i / 16, x) - qx, dy = vload16(i / 16, y) - qy,
                    dz = vload16(i / 16, z) - qz;
            float16 d = (dx * dx + dy * dy) + dz * dz;
            if (!any(d <= bound))
                continue;
            vstore16(d, 0, dv);
            for (uint l = 0; l < 16; l++)
                if (dv[l] <= bound)
                    offer(bd, bi, &bn, k, dv[l], i + l, max_d2);
            bound = bound_of(bd, bn, k, max_d2);
        }
        for (uint i = full; i < n; i++)
            offer(bd, bi, &bn, k, dist2(x[i], y[i], z[i], qx, qy, qz), i, max_d2);
        store(bd, bi, bn, k, q, idx, d2, found);
    }
}

#else /* LM_GPU_SHAPE */

#define TILE 128

/* Work-groups of TILE items; items past the last query still load tiles. */
__kernel void knn(__global const float *x, __global const float *y, __global const float *z,
                  uint n, __global const float *qxs, __global const float *qys,
                  __global const float *qzs, uint m, uint k, float max_d2,
                  __global uint *idx, __global float *d2, __global uint *found, uint per)
{
    __local float tx[TILE], ty[TILE], tz[TILE];
    size_t q = get_global_id(0);
    uint lid = get_local_id(0);
    bool live = q < m;
    float qx = live ? qxs[q] : 0.0f, qy = live ? qys[q] : 0.0f, qz = live ? qzs[q] : 0.0f;
    float bd[MAX_K];
    uint bi[MAX_K], bn = 0;
    for (uint t0 = 0; t0 < n; t0 += TILE) {
        uint cnt = min((uint)TILE, n - t0);
        if (lid < cnt) {
            tx[lid] = x[t0 + lid];
            ty[lid] = y[t0 + lid];
            tz[lid] = z[t0 + lid];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (uint j = 0; live && j < cnt; j++)
            offer(bd, bi, &bn, k, dist2(tx[j], ty[j], tz[j], qx, qy, qz), t0 + j, max_d2);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (live)
        store(bd, bi, bn, k, q, idx, d2, found);
}

#endif /* LM_GPU_SHAPE */
