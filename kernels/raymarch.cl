/* raymarch.cl - the ray march: the OpenCL twin of raymarch_scalar.c (rules (1)-(4) of
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

/* lm_sh_eval of engine/sh.c, operation for operation. */
inline float sh_eval(__global const float *s, uint count, float3 d)
{
    float y1 = SH_C1 * d.y, y2 = SH_C1 * d.z, y3 = SH_C1 * d.x;
    const float four_pi = 12.566370614359172f;
    float v = s[0] * SH_C0 + ((s[1] * y1 + s[2] * y2) + s[3] * y3) * (1.0f / 3.0f);
    v *= four_pi / (float)count;
    return v > 0.0f ? v : 0.0f;
}

inline int argmin3(float t0, float t1, float t2)
{
    int a = t1 < t0 ? 1 : 0;
    float m = a ? t1 : t0;
    return t2 < m ? 2 : a;
}

inline int cell_of(float q, int lo, int hi)
{
    if (!(q >= (float)lo))
        return lo;
    if (q >= (float)hi)
        return hi;
    return (int)q;
}

/* origin_inv = (origin x, y, z, inv_voxel); bricks = (x, y, z, 0). */
__kernel void ray_march(__global const float *rays, uint n, float4 origin_inv,
                        float voxel_size, int4 bricks, __global const int *brick_index,
                        __global const uint *slot, __global const uint *count,
                        __global const float *sh, uint max_hits,
                        __global struct ray_out *out, uint per)
{
    uint i0 = get_global_id(0) * per, i1 = min(n, i0 + per);
    for (uint i = i0; i < i1; i++) {
        float8 r = vload8(i, rays);
        float o[3] = {r.s0, r.s1, r.s2}, d[3] = {r.s4, r.s5, r.s6};
        float org[3] = {origin_inv.x, origin_inv.y, origin_inv.z};
        int nb[3] = {bricks.x, bricks.y, bricks.z};
        float p[3], inv[3] = {0.0f, 0.0f, 0.0f};
        int step[3], dim[3], cell[3], b[3];
        float tnear = 0.0f, tfar = r.s3 * origin_inv.w;
        float3 back = (float3)(-d[0], -d[1], -d[2]);
        struct ray_out res = {{-1, -1, -1}, INFINITY, {0.0f, 0.0f, 0.0f}, 0};
        bool miss = false;
        for (int a = 0; a < 3; a++) {
            p[a] = (o[a] - org[a]) * origin_inv.w;
            dim[a] = nb[a] * 8;
            step[a] = d[a] > 0.0f ? 1 : d[a] < 0.0f ? -1 : 0;
            if (!step[a]) {
                miss = miss || !(p[a] >= 0.0f && p[a] <= (float)dim[a]);
                continue;
            }
            inv[a] = 1.0f / d[a];
            float t1 = (0.0f - p[a]) * inv[a], t2 = ((float)dim[a] - p[a]) * inv[a];
            float lo = t1 < t2 ? t1 : t2, hi = t1 < t2 ? t2 : t1;
            tnear = lo > tnear ? lo : tnear;
            tfar = hi < tfar ? hi : tfar;
        }
        bool done = miss || !(tnear <= tfar);
        float t = tnear;
        for (int a = 0; a < 3; a++)
            cell[a] = cell_of(p[a] + d[a] * t, 0, dim[a] - 1);
        while (!done) {
            for (int a = 0; a < 3; a++)
                b[a] = cell[a] >> 3;
            int bi = brick_index[((size_t)b[2] * nb[1] + b[1]) * nb[0] + b[0]];
            float tn[3];
            if (bi < 0) {
                for (int a = 0; a < 3; a++)
                    tn[a] = step[a] ? ((float)(b[a] * 8 + (step[a] > 0 ? 8 : 0)) - p[a]) * inv[a]
                                    : INFINITY;
                int ax = argmin3(tn[0], tn[1], tn[2]);
                t = tn[ax];
                b[ax] += step[ax];
                if (t > tfar || b[ax] < 0 || b[ax] >= nb[ax])
                    break;
                for (int a = 0; a < 3; a++)
                    cell[a] = a == ax ? (step[a] > 0 ? b[a] * 8 : b[a] * 8 + 7)
                                      : cell_of(p[a] + d[a] * t, b[a] * 8, b[a] * 8 + 7);
                continue;
            }
            __global const uint *slots = slot + (size_t)bi * 512;
            for (int a = 0; a < 3; a++)
                tn[a] = step[a] ? ((float)(cell[a] + (step[a] > 0)) - p[a]) * inv[a] : INFINITY;
            for (;;) {
                uint s = slots[((cell[2] & 7) * 8 + (cell[1] & 7)) * 8 + (cell[0] & 7)];
                if (s) {
                    uint v = s - 1;
                    if (!res.hits) {
                        for (int a = 0; a < 3; a++)
                            res.voxel[a] = cell[a];
                        res.t_hit = t * voxel_size;
                    }
                    for (int ch = 0; ch < 3; ch++)
                        res.radiance[ch] += sh_eval(sh + (size_t)v * 12 + ch * 4, count[v], back);
                    if (++res.hits == max_hits) {
                        done = true;
                        break;
                    }
                }
                int ax = argmin3(tn[0], tn[1], tn[2]);
                t = tn[ax];
                cell[ax] += step[ax];
                if (t > tfar || cell[ax] < 0 || cell[ax] >= dim[ax]) {
                    done = true;
                    break;
                }
                tn[ax] = ((float)(cell[ax] + (step[ax] > 0)) - p[ax]) * inv[ax];
                if (cell[ax] >> 3 != b[ax])
                    break;
            }
        }
        out[i] = res;
    }
}
