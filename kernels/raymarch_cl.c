/* raymarch_cl.c - the ray march on the shared OpenCL device (kernels/raymarch.cl). The
 * grid's arrays stay resident on the device under the grid's (id, version) when it has
 * an id, so that frames marching the same grid upload it once. */
#include "device.h"
#include "raymarch.h"

/* A grid array: resident when the grid is named, else wrapped for this call. Each array
 * gets its own id from the grid's (the low bits name the array). */
static cl_mem grid_array(struct lm_cl_call *c, const struct lm_ray_grid *g, unsigned which,
                         const void *host, size_t bytes)
{
    if (g->id)
        return lm_cl_call_resident(c, g->id << 3 | which, g->version, host, bytes);
    return lm_cl_call_host(c, host, bytes, false);
}

static int cl_march(const struct lm_ray_grid *g, const struct lm_ray *rays, size_t n,
                    uint32_t max_hits, struct lm_ray_out *out)
{
    static atomic_flag once = ATOMIC_FLAG_INIT;
    lm_cl *cl = lm_device_cl();
    if (!cl)
        return -1;
    struct lm_cl_call c;
    size_t n_table = (size_t)g->bricks[0] * g->bricks[1] * g->bricks[2];
    size_t n_coarse = (size_t)g->coarse_dim[0] * g->coarse_dim[1] * g->coarse_dim[2];
    cl_uint nn = (cl_uint)n, mh = max_hits;
    cl_float4 origin_inv = {{g->origin[0], g->origin[1], g->origin[2], g->inv_voxel}};
    cl_int4 bricks = {{(cl_int)g->bricks[0], (cl_int)g->bricks[1], (cl_int)g->bricks[2], 0}};
    cl_int4 coarse_dim = {{(cl_int)g->coarse_dim[0], (cl_int)g->coarse_dim[1],
                           (cl_int)g->coarse_dim[2], 0}};
    lm_cl_call_begin(&c, cl, "raymarch.cl");
    size_t pool = g->n_bricks ? g->n_bricks : 1;
    cl_mem co = grid_array(&c, g, 0, g->coarse, n_coarse);
    cl_mem bi = grid_array(&c, g, 1, g->brick_index, n_table * sizeof(int32_t));
    cl_mem oc = grid_array(&c, g, 2, g->occ, pool * 16 * sizeof(uint32_t));
    cl_mem sl = grid_array(&c, g, 3, g->slot, pool * LM_RAY_BRICK_VOXELS * sizeof(uint32_t));
    cl_mem cn = grid_array(&c, g, 4, g->count, (size_t)g->n_voxels * sizeof(uint32_t));
    cl_mem sh = grid_array(&c, g, 5, g->sh, (size_t)g->n_voxels * 12 * sizeof(float));
    cl_mem rb = lm_cl_call_host(&c, rays, n * sizeof *rays, false);
    cl_mem ob = lm_cl_call_host(&c, out, n * sizeof *out, true);
    cl_kernel k = lm_cl_call_kernel(&c, "ray_march");
    lm_cl_call_args(&c, k, 0, 14, LM_CL_V(rb), LM_CL_V(nn), LM_CL_V(origin_inv),
                    LM_CL_V(g->voxel_size), LM_CL_V(bricks), LM_CL_V(coarse_dim), LM_CL_V(co),
                    LM_CL_V(bi), LM_CL_V(oc), LM_CL_V(sl), LM_CL_V(cn), LM_CL_V(sh),
                    LM_CL_V(mh), LM_CL_V(ob));
    lm_cl_call_range(&c, k, 14, n);
    lm_cl_call_read(&c, ob, out, n * sizeof *out);
    return lm_device_call_end(&c, &once, "ray march");
}

const struct lm_ray_table lm__ray_cl_table = {
    .name = "opencl",
    .march = cl_march,
};

const struct lm_ray_table *lm_ray_opencl(void)
{
    return lm_device_cl() ? &lm__ray_cl_table : NULL;
}
