/* lod_scalar.c - the reference parent-level build in the order of lod_pyramid.h invariant (2),
 * one channel at a time over the whole level (four child rows stream per parent row).
 * Its row function also finishes the AVX2 twin's rows. */
#include "lod_pyramid.h"

/* First cell of child row (j, k) = r (r = j + 2k) under parent row `row`; -1 when the
 * row lies past the child level's edge. */
static int64_t child_row(const struct lm_lod_level *child, const struct lm_lod_level *parent,
                         size_t row, int r)
{
    const uint32_t *cd = child->dim;
    uint32_t y = (uint32_t)(row % parent->dim[1]), z = (uint32_t)(row / parent->dim[1]);
    uint32_t cy = 2 * y + (uint32_t)(r & 1), cz = 2 * z + (uint32_t)(r >> 1);
    return cy < cd[1] && cz < cd[2] ? (int64_t)(((size_t)cz * cd[1] + cy) * cd[0]) : -1;
}

void lm__lod_row(const struct lm_lod_level *child, struct lm_lod_level *parent, int ch,
                 size_t row, uint32_t x0)
{
    const uint32_t cw = child->dim[0], pw = parent->dim[0];
    int64_t base[4];
    for (int r = 0; r < 4; r++)
        base[r] = child_row(child, parent, row, r);
    if (ch < 0) {
        for (uint32_t x = x0; x < pw; x++) {
            uint32_t n[4];
            for (int r = 0; r < 4; r++) {
                const uint32_t *c = child->count + base[r];
                n[r] = base[r] < 0 ? 0 : c[2 * x] + (2 * x + 1 < cw ? c[2 * x + 1] : 0);
            }
            parent->count[row * pw + x] = ((n[0] + n[1]) + n[2]) + n[3];
        }
        return;
    }
    const float *s = child->sums + (size_t)ch * lm_lod_cells(child);
    float *o = parent->sums + (size_t)ch * lm_lod_cells(parent) + row * pw;
    for (uint32_t x = x0; x < pw; x++) {
        float v[4];
        for (int r = 0; r < 4; r++) {
            const float *c = s + (base[r] < 0 ? 0 : base[r]) + 2 * x;
            v[r] = base[r] < 0 ? 0.0f + 0.0f : c[0] + (2 * x + 1 < cw ? c[1] : 0.0f);
        }
        o[x] = ((v[0] + v[1]) + v[2]) + v[3];
    }
}

static int scalar_build(const struct lm_lod_level *child, struct lm_lod_level *parent)
{
    size_t rows = (size_t)parent->dim[1] * parent->dim[2];
    for (int ch = -1; ch < (int)LM_LOD_SUMS; ch++)
        for (size_t row = 0; row < rows; row++)
            lm__lod_row(child, parent, ch, row, 0);
    return 0;
}

const struct lm_lod_table lm__lod_scalar_table = {
    .name = "scalar",
    .build = scalar_build,
};
