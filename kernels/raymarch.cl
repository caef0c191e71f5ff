/* raymarch.cl - the ray march: the OpenCL twin of raymarch_scalar.c (rules (1)-(3) of
 * raymarch.h; FP_CONTRACT off, correctly rounded divide). Each work-item marches the
 * rays [gid*per, (gid+1)*per): a contiguous range on a CPU device, one ray on a GPU. */
#pragma OPENCL FP_CONTRACT OFF

#define SH_C0 0.28209479177387814f
#define SH_C1 0.4886025119029199f

struct ray_out {
    int voxel[3];
    float t_hit;
    float radiance[3];
    uint hits;
};

/* lm_sh_eval of engine/sh.c toward (dx, dy, dz), operation for operation; scale is its
 * 4 pi / count. */
inline float sh_eval(__global const float *s, float scale, float dx, float dy, float dz)
{
    float y1 = SH_C1 * dy, y2 = SH_C1 * dz, y3 = SH_C1 * dx;
    float v = s[0] * SH_C0 + ((s[1] * y1 + s[2] * y2) + s[3] * y3) * (1.0f / 3.0f);
    v *= scale;
    return v > 0.0f ? v : 0.0f;
}

inline int cell_of(float q, int lo, int hi)
{
    if (!(q >= (float)lo))
        return lo;
    if (q >= (float)hi)
        return hi;
    return (int)q;
}

/* origin_inv = (origin x, y, z, inv_voxel); bricks and coarse = (x, y, z, 0). */
__kernel void ray_march(__global const float *rays, uint n, float4 origin_inv,
                        float voxel_size, int4 bricks, int4 coarse_dim,
                        __global const uchar *coarse, __global const int *brick_index,
                        __global const uint *occ, __global const uint *slot,
                        __global const uint *count, __global const float *sh, uint max_hits,
                        __global struct ray_out *out, uint per)
{
    uint i0 = get_global_id(0) * per, i1 = min(n, i0 + per);
    for (uint i = i0; i < i1; i++) {
        float8 r = vload8(i, rays);
        float o[3] = {r.s0, r.s1, r.s2}, d[3] = {r.s4, r.s5, r.s6};
        float org[3] = {origin_inv.x, origin_inv.y, origin_inv.z};
        int nb[3] = {bricks.x, bricks.y, bricks.z};
        float p[3], inv[3] = {0.0f, 0.0f, 0.0f};
        int step[3], dim[3], cell[3];
        float tnear = 0.0f, tfar = r.s3 * origin_inv.w;
        struct ray_out res = {{-1, -1, -1}, INFINITY, {0.0f, 0.0f, 0.0f}, 0};
        bool done = false;
        /* (1) */
        for (int a = 0; a < 3; a++) {
            p[a] = (o[a] - org[a]) * origin_inv.w;
            dim[a] = nb[a] * 8;
            step[a] = d[a] > 0.0f ? 1 : d[a] < 0.0f ? -1 : 0;
            if (!step[a]) {
                done = done || !(p[a] >= 0.0f && p[a] <= (float)dim[a]);
                continue;
            }
            inv[a] = 1.0f / d[a];
            float t1 = (0.0f - p[a]) * inv[a], t2 = ((float)dim[a] - p[a]) * inv[a];
            float lo = t1 < t2 ? t1 : t2, hi = t1 < t2 ? t2 : t1;
            tnear = lo > tnear ? lo : tnear;
            tfar = hi < tfar ? hi : tfar;
        }
        done = done || !(tnear <= tfar);
        float t = tnear;
        for (int a = 0; a < 3; a++)
            cell[a] = cell_of(p[a] + d[a] * t, 0, dim[a] - 1);
        while (!done) {
            /* the level to cross: 32-cell, brick, or voxel (checked for a hit first) */
            int shift = 0;
            size_t ci = ((size_t)(cell[2] >> 5) * coarse_dim.y + (cell[1] >> 5)) * coarse_dim.x +
                        (cell[0] >> 5);
            if (!coarse[ci]) {
                shift = 5;
            } else {
                int bi = brick_index[((size_t)(cell[2] >> 3) * nb[1] + (cell[1] >> 3)) * nb[0] +
                                     (cell[0] >> 3)];
                if (bi < 0) {
                    shift = 3;
                } else {
                    uint l = (uint)(((cell[2] & 7) * 8 + (cell[1] & 7)) * 8 + (cell[0] & 7));
                    if ((occ[(size_t)bi * 16 + l / 32] >> (l % 32)) & 1) {
                        uint v = slot[(size_t)bi * 512 + l] - 1;
                        if (!res.hits) {
                            for (int a = 0; a < 3; a++)
                                res.voxel[a] = cell[a];
                            res.t_hit = t * voxel_size;
                        }
                        float scale = 12.566370614359172f / (float)count[v];
                        for (int ch = 0; ch < 3; ch++)
                            res.radiance[ch] += sh_eval(sh + (size_t)v * 12 + ch * 4, scale,
                                                        -d[0], -d[1], -d[2]);
                        if (++res.hits == max_hits)
                            break;
                    }
                }
            }
            /* (2) the step */
            int S = 1 << shift, lo[3];
            float tn[3];
            for (int a = 0; a < 3; a++) {
                lo[a] = cell[a] >> shift << shift;
                tn[a] = step[a] ? ((float)(lo[a] + (step[a] > 0 ? S : 0)) - p[a]) * inv[a]
                                : INFINITY;
            }
            int ax = tn[1] < tn[0] ? 1 : 0;
            ax = tn[2] < tn[ax] ? 2 : ax;
            t = tn[ax];
            lo[ax] += step[ax] * S;
            for (int a = 0; a < 3; a++) {
                int hi = min(lo[a] + S - 1, dim[a] - 1);
                cell[a] = a == ax ? (step[a] > 0 ? lo[a] : hi)
                                  : cell_of(p[a] + d[a] * t, lo[a], hi);
            }
            done = t > tfar || cell[ax] < 0 || cell[ax] >= dim[ax];
        }
        out[i] = res;
    }
}
