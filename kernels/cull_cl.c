/* cull_cl.c - node classification on the shared OpenCL device (kernels/cull.cl). */
#include <string.h>

#include "cull.h"
#include "device.h"

static int cl_classify(const struct lm_cull_input *in, uint8_t *visible, float *sse,
                       float *sse_parent)
{
    static atomic_flag once = ATOMIC_FLAG_INIT;
    lm_cl *cl = lm_device_cl();
    if (!cl)
        return -1;
    struct lm_cl_call c;
    size_t n = in->n, fb = n * sizeof(float);
    cl_uint nn = (cl_uint)n;
    cl_float16 pa;
    cl_float8 pb;
    cl_float4 eye_k = {{in->eye[0], in->eye[1], in->eye[2], in->k}};
    memcpy(pa.s, in->planes[0], sizeof pa.s);
    memcpy(pb.s, in->planes[4], sizeof pb.s);
    lm_cl_call_begin(&c, cl, "cull.cl");
    cl_mem col[6] = {
        lm_cl_call_host(&c, in->min_x, fb, false), lm_cl_call_host(&c, in->min_y, fb, false),
        lm_cl_call_host(&c, in->min_z, fb, false), lm_cl_call_host(&c, in->max_x, fb, false),
        lm_cl_call_host(&c, in->max_y, fb, false), lm_cl_call_host(&c, in->max_z, fb, false)};
    cl_mem level = lm_cl_call_host(&c, in->level, n, false);
    cl_mem parent = lm_cl_call_host(&c, in->parent, n * sizeof(int32_t), false);
    cl_mem vis = lm_cl_call_host(&c, visible, n, true);
    cl_mem s = lm_cl_call_host(&c, sse, fb, true);
    cl_mem sp = lm_cl_call_host(&c, sse_parent, fb, true);
    cl_kernel k = lm_cl_call_kernel(&c, "cull_classify");
    lm_cl_call_args(&c, k, 0, 14, LM_CL_V(col[0]), LM_CL_V(col[1]), LM_CL_V(col[2]),
                    LM_CL_V(col[3]), LM_CL_V(col[4]), LM_CL_V(col[5]), LM_CL_V(level),
                    LM_CL_V(nn), LM_CL_V(pa), LM_CL_V(pb), LM_CL_V(eye_k),
                    LM_CL_V(in->error0), LM_CL_V(vis), LM_CL_V(s));
    lm_cl_call_range(&c, k, 14, n);
    cl_kernel kp = lm_cl_call_kernel(&c, "cull_parents");
    lm_cl_call_args(&c, kp, 0, 4, LM_CL_V(parent), LM_CL_V(s), LM_CL_V(nn), LM_CL_V(sp));
    lm_cl_call_range(&c, kp, 4, n);
    lm_cl_call_read(&c, vis, visible, n);
    lm_cl_call_read(&c, s, sse, fb);
    lm_cl_call_read(&c, sp, sse_parent, fb);
    return lm_device_call_end(&c, &once, "cull");
}

const struct lm_cull_table lm__cull_cl_table = {
    .name = "opencl",
    .classify = cl_classify,
};

const struct lm_cull_table *lm_cull_opencl(void)
{
    return lm_device_cl() ? &lm__cull_cl_table : NULL;
}
