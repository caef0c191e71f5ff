/* knn_cl.c - batched kNN on the shared OpenCL device (kernels/knn.cl). Points named by
 * an id stay resident on the device across calls. */
#include "device.h"
#include "knn.h"

#define GPU_TILE 128 /* knn.cl: work-group of the GPU-shaped kernel */

static cl_mem point_column(struct lm_cl_call *c, const struct lm_knn_input *in, unsigned which,
                           const float *col)
{
    size_t bytes = in->n * sizeof(float);
    if (in->id)
        return lm_cl_call_resident(c, in->id << 2 | which, in->version, col, bytes);
    return lm_cl_call_host(c, col, bytes, false);
}

static int cl_run(const struct lm_knn_input *in, uint32_t *idx, float *d2, uint32_t *found)
{
    static atomic_flag once = ATOMIC_FLAG_INIT;
    lm_cl *cl = lm_device_cl();
    if (!cl)
        return -1;
    struct lm_cl_call c;
    size_t m = in->m, qb = m * sizeof(float), ob = m * in->k;
    cl_uint n = (cl_uint)in->n, mm = (cl_uint)m, k = in->k;
    lm_cl_call_begin(&c, cl, "knn.cl");
    cl_mem x = point_column(&c, in, 0, in->x), y = point_column(&c, in, 1, in->y),
           z = point_column(&c, in, 2, in->z);
    cl_mem qx = lm_cl_call_host(&c, in->qx, qb, false),
           qy = lm_cl_call_host(&c, in->qy, qb, false),
           qz = lm_cl_call_host(&c, in->qz, qb, false);
    cl_mem oi = lm_cl_call_host(&c, idx, ob * sizeof *idx, true);
    cl_mem od = lm_cl_call_host(&c, d2, ob * sizeof *d2, true);
    cl_mem of = lm_cl_call_host(&c, found, m * sizeof *found, true);
    cl_kernel kn = lm_cl_call_kernel(&c, "knn");
    lm_cl_call_args(&c, kn, 0, 13, LM_CL_V(x), LM_CL_V(y), LM_CL_V(z), LM_CL_V(n),
                    LM_CL_V(qx), LM_CL_V(qy), LM_CL_V(qz), LM_CL_V(mm), LM_CL_V(k),
                    LM_CL_V(in->max_d2), LM_CL_V(oi), LM_CL_V(od), LM_CL_V(of));
    if (lm_cl_shape(cl) == LM_CL_SHAPE_GPU) { /* one query per item, tiles in groups */
        cl_uint one = 1;
        LM_CL_ARG(&c, kn, 13, one);
        lm_cl_call_run(&c, kn, (m + GPU_TILE - 1) / GPU_TILE * GPU_TILE, GPU_TILE);
    } else {
        lm_cl_call_range(&c, kn, 13, m);
    }
    lm_cl_call_read(&c, oi, idx, ob * sizeof *idx);
    lm_cl_call_read(&c, od, d2, ob * sizeof *d2);
    lm_cl_call_read(&c, of, found, m * sizeof *found);
    return lm_device_call_end(&c, &once, "kNN");
}

const struct lm_knn_table lm__knn_cl_table = {
    .name = "opencl",
    .run = cl_run,
};

const struct lm_knn_table *lm_knn_opencl(void)
{
    return lm_device_cl() ? &lm__knn_cl_table : NULL;
}
