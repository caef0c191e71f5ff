/* lod_cl.c - the parent-level build on the shared OpenCL device (kernels/lod_pyramid.cl). */
#include "device.h"
#include "lod_pyramid.h"

static int cl_build(const struct lm_lod_level *child, struct lm_lod_level *parent)
{
    static atomic_flag once = ATOMIC_FLAG_INIT;
    lm_cl *cl = lm_device_cl();
    if (!cl)
        return -1;
    struct lm_cl_call c;
    size_t cc = lm_lod_cells(child), pc = lm_lod_cells(parent);
    cl_int4 cdim = {{(cl_int)child->dim[0], (cl_int)child->dim[1], (cl_int)child->dim[2], 0}};
    cl_int4 pdim = {{(cl_int)parent->dim[0], (cl_int)parent->dim[1], (cl_int)parent->dim[2], 0}};
    lm_cl_call_begin(&c, cl, "lod_pyramid.cl");
    cl_mem cn = lm_cl_call_host(&c, child->count, cc * sizeof(uint32_t), false);
    cl_mem cs = lm_cl_call_host(&c, child->sums, cc * LM_LOD_SUMS * sizeof(float), false);
    cl_mem pn = lm_cl_call_host(&c, parent->count, pc * sizeof(uint32_t), true);
    cl_mem ps = lm_cl_call_host(&c, parent->sums, pc * LM_LOD_SUMS * sizeof(float), true);
    cl_kernel k = lm_cl_call_kernel(&c, "lod_parent");
    lm_cl_call_args(&c, k, 0, 6, LM_CL_V(cn), LM_CL_V(cs), LM_CL_V(cdim), LM_CL_V(pn),
                    LM_CL_V(ps), LM_CL_V(pdim));
    lm_cl_call_range(&c, k, 6, (size_t)parent->dim[1] * parent->dim[2]);
    lm_cl_call_read(&c, pn, parent->count, pc * sizeof(uint32_t));
    lm_cl_call_read(&c, ps, parent->sums, pc * LM_LOD_SUMS * sizeof(float));
    return lm_device_call_end(&c, &once, "LOD build");
}

const struct lm_lod_table lm__lod_cl_table = {
    .name = "opencl",
    .build = cl_build,
};

const struct lm_lod_table *lm_lod_opencl(void)
{
    return lm_device_cl() ? &lm__lod_cl_table : NULL;
}
