/* lod_pyramid.c - levels of the LOD pyramid, argument checks, the pyramid loop, and
 * the choice between implementations. */
#include "lod_pyramid.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "alloc.h"
#include "cpu_features.h"
#include "device.h"

int lm_lod_level_new(const uint32_t dim[3], struct lm_lod_level *out)
{
    if (!dim || !out || !dim[0] || !dim[1] || !dim[2])
        return LM_EBADARG;
    size_t cells = (size_t)dim[0] * dim[1] * dim[2];
    if (cells > ((size_t)1 << 31))
        return LM_ELIMIT;
    struct lm_lod_level l = {{dim[0], dim[1], dim[2]}};
    l.count = lm_calloc(cells, sizeof *l.count);
    l.sums = lm_calloc(cells * LM_LOD_SUMS, sizeof *l.sums);
    if (!l.count || !l.sums) {
        lm_lod_level_free(&l);
        return -ENOMEM;
    }
    *out = l;
    return 0;
}

void lm_lod_level_free(struct lm_lod_level *l)
{
    if (!l)
        return;
    lm_free(l->count);
    lm_free(l->sums);
    l->count = NULL;
    l->sums = NULL;
}

void lm_lod_level_from_voxels(struct lm_lod_level *l, const int32_t base[3],
                              const struct lm_voxel *vox, size_t n)
{
    size_t cells = lm_lod_cells(l);
    for (size_t i = 0; i < n; i++) {
        const struct lm_voxel *v = &vox[i];
        int64_t c[3];
        bool in = true;
        for (int a = 0; a < 3; a++) {
            c[a] = (int64_t)v->coord[a] - base[a];
            in = in && c[a] >= 0 && c[a] < l->dim[a];
        }
        if (!in)
            continue;
        size_t at = ((size_t)c[2] * l->dim[1] + (size_t)c[1]) * l->dim[0] + (size_t)c[0];
        float cnt = (float)v->count;
        const float s[LM_LOD_SUMS] = {v->mean_r * cnt, v->mean_g * cnt, v->mean_b * cnt,
                                      v->sum_intensity, v->sh[0][0], v->sh[0][1], v->sh[0][2],
                                      v->sh[0][3], v->sh[1][0], v->sh[1][1], v->sh[1][2],
                                      v->sh[1][3], v->sh[2][0], v->sh[2][1], v->sh[2][2],
                                      v->sh[2][3]};
        l->count[at] = v->count;
        for (uint32_t ch = 0; ch < LM_LOD_SUMS; ch++)
            l->sums[ch * cells + at] = s[ch];
    }
}

/* ---------------------------------------------------------------- tables */

const struct lm_lod_table *lm_lod_scalar(void) { return &lm__lod_scalar_table; }

const struct lm_lod_table *lm_lod_avx2(void)
{
#if defined(__x86_64__)
    if (lm_cpu_has_avx2())
        return &lm__lod_avx2_table;
#endif
    return NULL;
}

const struct lm_lod_table *lm_lod_best(void)
{
    const struct lm_lod_table *t = lm_lod_avx2();
    return t ? t : lm_lod_scalar();
}

int lm_lod_parent(const struct lm_lod_table *t, const struct lm_lod_level *child,
                  struct lm_lod_level *parent)
{
    if (!t || !child || !parent || !child->count || !child->sums || !parent->count ||
        !parent->sums)
        return LM_EBADARG;
    for (int a = 0; a < 3; a++)
        if (!child->dim[a] || parent->dim[a] != (child->dim[a] + 1) / 2)
            return LM_EBADARG;
    if (t->build(child, parent)) { /* the device could not run it */
        lm_lod_best()->build(child, parent);
        lm_device_trace(lm_lod_best()->name);
    }
    return 0;
}

int lm_lod_pyramid(const struct lm_lod_table *t, struct lm_lod_level *levels,
                   size_t *n_levels)
{
    if (!t || !levels || !n_levels)
        return LM_EBADARG;
    size_t n = 1;
    int rc = 0;
    while (!rc && (levels[n - 1].dim[0] > 1 || levels[n - 1].dim[1] > 1 ||
                   levels[n - 1].dim[2] > 1)) {
        const uint32_t *c = levels[n - 1].dim;
        const uint32_t dim[3] = {(c[0] + 1) / 2, (c[1] + 1) / 2, (c[2] + 1) / 2};
        if (!(rc = lm_lod_level_new(dim, &levels[n])) &&
            (rc = lm_lod_parent(t, &levels[n - 1], &levels[n])))
            lm_lod_level_free(&levels[n]);
        n += !rc;
    }
    if (rc) {
        while (n > 1)
            lm_lod_level_free(&levels[--n]);
        return rc;
    }
    *n_levels = n;
    return 0;
}
