/* lod_scalar.c - the reference parent-level build, one cell at a time, in the order of
 * lod.h invariant (2). Its row function also finishes the AVX2 twin's rows. */
#include "lod.h"

void lm__lod_rows(const struct lm_lod_level *child, struct lm_lod_level *parent,
                  size_t row0, size_t row1, uint32_t x0)
{
    const uint32_t *cd = child->dim, *pd = parent->dim;
    size_t cc = lm_lod_cells(child), pc = lm_lod_cells(parent);
    for (size_t row = row0; row < row1; row++) {
        uint32_t y = (uint32_t)(row % pd[1]), z = (uint32_t)(row / pd[1]);
        for (uint32_t x = x0; x < pd[0]; x++) {
            size_t at = (size_t)row * pd[0] + x;
            /* child cells of the four rows (j, k), -1 where past the edge */
            int64_t c[4][2];
            for (int r = 0; r < 4; r++) {
                uint32_t cy = 2 * y + (uint32_t)(r & 1), cz = 2 * z + (uint32_t)(r >> 1);
                for (int i = 0; i < 2; i++) {
                    uint32_t cx = 2 * x + (uint32_t)i;
                    c[r][i] = cx < cd[0] && cy < cd[1] && cz < cd[2]
                                  ? (int64_t)(((size_t)cz * cd[1] + cy) * cd[0] + cx)
                                  : -1;
                }
            }
            uint32_t rc[4];
            for (int r = 0; r < 4; r++)
                rc[r] = (c[r][0] < 0 ? 0 : child->count[c[r][0]]) +
                        (c[r][1] < 0 ? 0 : child->count[c[r][1]]);
            parent->count[at] = ((rc[0] + rc[1]) + rc[2]) + rc[3];
            for (uint32_t ch = 0; ch < LM_LOD_SUMS; ch++) {
                const float *s = child->sums + (size_t)ch * cc;
                float rs[4];
                for (int r = 0; r < 4; r++)
                    rs[r] = (c[r][0] < 0 ? 0.0f : s[c[r][0]]) + (c[r][1] < 0 ? 0.0f : s[c[r][1]]);
                parent->sums[(size_t)ch * pc + at] = ((rs[0] + rs[1]) + rs[2]) + rs[3];
            }
        }
    }
}

static int scalar_build(const struct lm_lod_level *child, struct lm_lod_level *parent)
{
    lm__lod_rows(child, parent, 0, (size_t)parent->dim[1] * parent->dim[2], 0);
    return 0;
}

const struct lm_lod_table lm__lod_scalar_table = {
    .name = "scalar",
    .build = scalar_build,
};
