/* cull_scalar.c - the reference node classification: one node at a time, exactly the
 * arithmetic of cull.h invariant (1). Its one-node rule also serves the other tables'
 * leftover nodes. */
#include "cull.h"

#include <math.h>

static float node_sse(const struct lm_cull_input *in, size_t i)
{
    float ex = in->eye[0], ey = in->eye[1], ez = in->eye[2];
    float dx = fmaxf(fmaxf(in->min_x[i] - ex, ex - in->max_x[i]), 0.0f);
    float dy = fmaxf(fmaxf(in->min_y[i] - ey, ey - in->max_y[i]), 0.0f);
    float dz = fmaxf(fmaxf(in->min_z[i] - ez, ez - in->max_z[i]), 0.0f);
    float d2 = (dx * dx + dy * dy) + dz * dz;
    float e = lm__cull_error(in->error0, in->level[i]);
    if (d2 > 0.0f)
        return (e * in->k) / sqrtf(d2);
    return e > 0.0f ? INFINITY : 0.0f;
}

static int node_visible(const struct lm_cull_input *in, size_t i)
{
    for (int p = 0; p < 6; p++) {
        const float *pl = in->planes[p];
        float px = pl[0] >= 0.0f ? in->max_x[i] : in->min_x[i];
        float py = pl[1] >= 0.0f ? in->max_y[i] : in->min_y[i];
        float pz = pl[2] >= 0.0f ? in->max_z[i] : in->min_z[i];
        float s = ((pl[0] * px + pl[1] * py) + pl[2] * pz) + pl[3];
        if (!(s >= 0.0f))
            return 0;
    }
    return 1;
}

void lm__cull_node(const struct lm_cull_input *in, size_t i, uint8_t *visible, float *sse)
{
    *visible = (uint8_t)node_visible(in, i);
    *sse = node_sse(in, i);
}

void lm__cull_parents(const struct lm_cull_input *in, const float *sse, float *sse_parent)
{
    for (size_t i = 0; i < in->n; i++)
        sse_parent[i] = in->parent[i] < 0 ? INFINITY : sse[in->parent[i]];
}

static int scalar_classify(const struct lm_cull_input *in, uint8_t *visible, float *sse,
                           float *sse_parent)
{
    for (size_t i = 0; i < in->n; i++)
        lm__cull_node(in, i, &visible[i], &sse[i]);
    lm__cull_parents(in, sse, sse_parent);
    return 0;
}

const struct lm_cull_table lm__cull_scalar_table = {
    .name = "scalar",
    .classify = scalar_classify,
};
