/* cull.cl - node classification for frustum culling and LOD selection: the OpenCL twin
 * of cull_scalar.c (rule: cull.h invariant (1); FP_CONTRACT off, and the runtime builds
 * with correctly rounded divide and sqrt). Each work-item classifies the nodes
 * [gid*per, (gid+1)*per): a contiguous range on a CPU device, one node on a GPU. */
#pragma OPENCL FP_CONTRACT OFF

inline bool plane_in(float4 p, float lx, float ly, float lz, float hx, float hy, float hz)
{
    float px = p.x >= 0.0f ? hx : lx, py = p.y >= 0.0f ? hy : ly, pz = p.z >= 0.0f ? hz : lz;
    float s = ((p.x * px + p.y * py) + p.z * pz) + p.w;
    return s >= 0.0f;
}

/* Planes 0-3 in pa, 4-5 in pb; eye_k = (eye x, y, z, k). */
__kernel void cull_classify(__global const float *min_x, __global const float *min_y,
                            __global const float *min_z, __global const float *max_x,
                            __global const float *max_y, __global const float *max_z,
                            __global const uchar *level, uint n, float16 pa, float8 pb,
                            float4 eye_k, float error0, __global uchar *visible,
                            __global float *sse, uint per)
{
    uint i0 = get_global_id(0) * per, i1 = min(n, i0 + per);
    for (uint i = i0; i < i1; i++) {
        float lx = min_x[i], ly = min_y[i], lz = min_z[i];
        float hx = max_x[i], hy = max_y[i], hz = max_z[i];
        bool vis = plane_in(pa.s0123, lx, ly, lz, hx, hy, hz) &&
                   plane_in(pa.s4567, lx, ly, lz, hx, hy, hz) &&
                   plane_in(pa.s89ab, lx, ly, lz, hx, hy, hz) &&
                   plane_in(pa.scdef, lx, ly, lz, hx, hy, hz) &&
                   plane_in(pb.s0123, lx, ly, lz, hx, hy, hz) &&
                   plane_in(pb.s4567, lx, ly, lz, hx, hy, hz);
        float dx = fmax(fmax(lx - eye_k.x, eye_k.x - hx), 0.0f);
        float dy = fmax(fmax(ly - eye_k.y, eye_k.y - hy), 0.0f);
        float dz = fmax(fmax(lz - eye_k.z, eye_k.z - hz), 0.0f);
        float d2 = (dx * dx + dy * dy) + dz * dz;
        uint lv = level[i];
        float e = lv ? ldexp(error0, (int)lv) : 0.0f;
        visible[i] = vis;
        sse[i] = d2 > 0.0f ? (e * eye_k.w) / sqrt(d2) : (e > 0.0f ? INFINITY : 0.0f);
    }
}

/* sse_parent[i] = sse[parent[i]], +inf for a root. */
__kernel void cull_parents(__global const int *parent, __global const float *sse, uint n,
                           __global float *sse_parent, uint per)
{
    uint i0 = get_global_id(0) * per, i1 = min(n, i0 + per);
    for (uint i = i0; i < i1; i++)
        sse_parent[i] = parent[i] < 0 ? INFINITY : sse[parent[i]];
}
