/* lod_pyramid.cl - the parent-level build of the LOD pyramid: the OpenCL twin of
 * lod_scalar.c (order of lod_pyramid.h invariant (2); FP_CONTRACT off). Each work-item
 * builds the parent rows [gid*per, (gid+1)*per) (row = Y + dim.y * Z), one channel at a
 * time over them: contiguous ranges on a CPU device, one row on a GPU. */
#pragma OPENCL FP_CONTRACT OFF
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wpsabi" /* see scan.cl */
#endif

#define SUMS 16

__kernel void lod_parent(__global const uint *ccount, __global const float *csums,
                         int4 cdim, __global uint *pcount, __global float *psums, int4 pdim,
                         uint per)
{
    size_t cc = (size_t)cdim.x * cdim.y * cdim.z, pc = (size_t)pdim.x * pdim.y * pdim.z;
    uint rows = (uint)(pdim.y * pdim.z);
    uint r0 = get_global_id(0) * per, r1 = min(rows, r0 + per);
    for (int ch = -1; ch < SUMS; ch++)
        for (uint row = r0; row < r1; row++) {
            int y = (int)(row % (uint)pdim.y), z = (int)(row / (uint)pdim.y);
            long base[4]; /* first cell of child row (j, k), -1 past the edge */
            for (int r = 0; r < 4; r++) {
                int cy = 2 * y + (r & 1), cz = 2 * z + (r >> 1);
                base[r] = cy < cdim.y && cz < cdim.z ? ((long)cz * cdim.y + cy) * cdim.x : -1;
            }
            __global const float *s = csums + (size_t)max(ch, 0) * cc;
            /* 8 parents at a time where all 16 children of each child row exist: the
             * even and odd children added as the scalar pairs are */
            int full = cdim.x / 16;
            for (int g = 0; g < full; g++) {
                size_t at = (size_t)row * pdim.x + 8 * g;
                if (ch < 0) {
                    uint8 n[4];
                    for (int r = 0; r < 4; r++) {
                        uint16 c = base[r] < 0 ? (uint16)0 : vload16(0, ccount + base[r] + 16 * g);
                        n[r] = c.even + c.odd;
                    }
                    vstore8(((n[0] + n[1]) + n[2]) + n[3], 0, pcount + at);
                    continue;
                }
                float8 v[4];
                for (int r = 0; r < 4; r++) {
                    float16 c = base[r] < 0 ? (float16)0.0f : vload16(0, s + base[r] + 16 * g);
                    v[r] = c.even + c.odd;
                }
                vstore8(((v[0] + v[1]) + v[2]) + v[3], 0, psums + (size_t)ch * pc + at);
            }
            for (int x = 8 * full; x < pdim.x; x++) {
                size_t at = (size_t)row * pdim.x + x;
                bool two = 2 * x + 1 < cdim.x; /* the second child of the pair exists */
                if (ch < 0) {
                    uint n[4];
                    for (int r = 0; r < 4; r++) {
                        __global const uint *c = ccount + max(base[r], 0l) + 2 * x;
                        n[r] = base[r] < 0 ? 0u : c[0] + (two ? c[1] : 0u);
                    }
                    pcount[at] = ((n[0] + n[1]) + n[2]) + n[3];
                    continue;
                }
                float v[4];
                for (int r = 0; r < 4; r++) {
                    __global const float *c = s + max(base[r], 0l) + 2 * x;
                    v[r] = base[r] < 0 ? 0.0f + 0.0f : c[0] + (two ? c[1] : 0.0f);
                }
                psums[(size_t)ch * pc + at] = ((v[0] + v[1]) + v[2]) + v[3];
            }
        }
}
