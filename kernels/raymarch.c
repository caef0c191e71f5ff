/* raymarch.c - grids for the ray march (built from level-0 voxels), argument checks,
 * and the choice between implementations. The march itself: raymarch_scalar.c,
 * raymarch_avx2.c, raymarch_cl.c + raymarch.cl. */
#include "raymarch.h"

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "alloc.h"
#include "cpu_features.h"
#include "device.h"

/* ---------------------------------------------------------------- grids */

static _Atomic uint64_t next_grid_id = 1;

static int64_t floor_div8(int64_t v) { return v >= 0 ? v / 8 : -((-v + 7) / 8); }

int lm_ray_grid_build(const struct lm_voxel *vox, size_t n, float voxel_size,
                      struct lm_ray_grid *out)
{
    if (!out || (n && !vox) || !(voxel_size > 0) || !isfinite(voxel_size))
        return LM_EBADARG;
    if (n >= UINT32_MAX)
        return LM_ELIMIT;
    struct lm_ray_grid g = {.voxel_size = voxel_size, .inv_voxel = 1.0f / voxel_size};
    int64_t lo[3] = {INT64_MAX, INT64_MAX, INT64_MAX}, hi[3] = {INT64_MIN, INT64_MIN, INT64_MIN};
    for (size_t i = 0; i < n; i++)
        for (int a = 0; vox[i].count && a < 3; a++) {
            lo[a] = vox[i].coord[a] < lo[a] ? vox[i].coord[a] : lo[a];
            hi[a] = vox[i].coord[a] > hi[a] ? vox[i].coord[a] : hi[a];
        }
    size_t n_table = 1;
    for (int a = 0; a < 3; a++) {
        if (lo[a] > hi[a]) /* no voxels: one empty brick at 0 */
            lo[a] = hi[a] = 0;
        lo[a] = floor_div8(lo[a]);
        uint64_t span = (uint64_t)(floor_div8(hi[a]) - lo[a] + 1);
        if (span * LM_RAY_BRICK > LM_RAY_MAX_VOXELS_PER_AXIS)
            return LM_ELIMIT;
        g.bricks[a] = (uint32_t)span;
        g.origin[a] = (float)((double)lo[a] * LM_RAY_BRICK * voxel_size);
        g.coarse_dim[a] = (g.bricks[a] + LM_RAY_COARSE - 1) / LM_RAY_COARSE;
        n_table *= span;
    }
    size_t n_coarse = (size_t)g.coarse_dim[0] * g.coarse_dim[1] * g.coarse_dim[2];
    if (n_table > LM_RAY_MAX_BRICKS)
        return LM_ELIMIT;
    int rc = -ENOMEM;
    g.brick_index = lm_alloc(n_table * sizeof *g.brick_index);
    g.coarse = lm_calloc(n_coarse + 3, 1); /* +3: 4-byte gathers of the last cells */
    g.count = lm_alloc((n ? n : 1) * sizeof *g.count);
    g.sh = lm_alloc((n ? n : 1) * 12 * sizeof *g.sh);
    if (!g.brick_index || !g.coarse || !g.count || !g.sh)
        goto fail;
    memset(g.brick_index, 0xff, n_table * sizeof *g.brick_index); /* -1: empty */
    /* Bricks in the order voxels first touch them, then the voxels into their slots. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            if (!vox[i].count)
                continue;
            int64_t c[3], b[3];
            for (int a = 0; a < 3; a++) {
                c[a] = vox[i].coord[a] - lo[a] * LM_RAY_BRICK;
                b[a] = c[a] / LM_RAY_BRICK;
            }
            size_t bt = ((size_t)b[2] * g.bricks[1] + (size_t)b[1]) * g.bricks[0] + (size_t)b[0];
            if (pass == 0) {
                if (g.brick_index[bt] < 0)
                    g.brick_index[bt] = (int32_t)g.n_bricks++;
                g.coarse[((size_t)(b[2] / LM_RAY_COARSE) * g.coarse_dim[1] +
                          (size_t)(b[1] / LM_RAY_COARSE)) * g.coarse_dim[0] +
                         (size_t)(b[0] / LM_RAY_COARSE)] = 1;
                continue;
            }
            size_t bi = (size_t)g.brick_index[bt];
            uint32_t l = (uint32_t)((c[2] % 8 * 8 + c[1] % 8) * 8 + c[0] % 8);
            uint32_t *s = &g.slot[bi * LM_RAY_BRICK_VOXELS + l];
            if (*s) {
                rc = LM_EBADARG; /* the same voxel twice */
                goto fail;
            }
            *s = (uint32_t)i + 1; /* the input voxel, numbered below */
            g.occ[bi * 16 + l / 32] |= 1u << (l % 32);
        }
        if (pass == 0 && g.n_bricks > LM_RAY_MAX_BRICKS / LM_RAY_BRICK_VOXELS) {
            rc = LM_ELIMIT; /* slot indices must fit an int32 (AVX2 gathers) */
            goto fail;
        }
        size_t pool = g.n_bricks ? g.n_bricks : 1;
        if (pass == 0 && (!(g.slot = lm_calloc(pool * LM_RAY_BRICK_VOXELS, sizeof *g.slot)) ||
                          !(g.occ = lm_calloc(pool * 16, sizeof *g.occ))))
            goto fail;
    }
    /* Voxels numbered brick by brick, so that a ray crossing a brick reads its voxels'
     * aggregates from nearby memory. */
    for (size_t s = 0; s < (size_t)g.n_bricks * LM_RAY_BRICK_VOXELS; s++) {
        if (!g.slot[s])
            continue;
        const struct lm_voxel *in = &vox[g.slot[s] - 1];
        uint32_t v = g.n_voxels++;
        g.slot[s] = v + 1;
        g.count[v] = in->count;
        memcpy(&g.sh[(size_t)v * 12], in->sh, 12 * sizeof(float));
    }
    g.id = atomic_fetch_add(&next_grid_id, 1);
    g.version = 1;
    *out = g;
    return 0;
fail:
    lm_ray_grid_free(&g);
    return rc;
}

void lm_ray_grid_free(struct lm_ray_grid *g)
{
    if (!g)
        return;
    lm_free(g->coarse);
    lm_free(g->brick_index);
    lm_free(g->occ);
    lm_free(g->slot);
    lm_free(g->count);
    lm_free(g->sh);
    g->coarse = NULL;
    g->brick_index = NULL;
    g->occ = g->slot = g->count = NULL;
    g->sh = NULL;
}

/* ---------------------------------------------------------------- tables */

const struct lm_ray_table *lm_ray_scalar(void) { return &lm__ray_scalar_table; }

const struct lm_ray_table *lm_ray_avx2(void)
{
#if defined(__x86_64__)
    if (lm_cpu_has_avx2())
        return &lm__ray_avx2_table;
#endif
    return NULL;
}

const struct lm_ray_table *lm_ray_best(void)
{
    const struct lm_ray_table *t = lm_ray_avx2();
    return t ? t : lm_ray_scalar();
}

static bool grid_ok(const struct lm_ray_grid *g)
{
    if (!(g->voxel_size > 0) || !isfinite(g->voxel_size) || !(g->inv_voxel > 0) ||
        !isfinite(g->inv_voxel) || !g->coarse || !g->brick_index || !g->occ || !g->slot ||
        !g->count || !g->sh)
        return false;
    for (int a = 0; a < 3; a++)
        if (!isfinite(g->origin[a]) || !g->bricks[a] ||
            g->bricks[a] > LM_RAY_MAX_VOXELS_PER_AXIS / LM_RAY_BRICK ||
            g->coarse_dim[a] != (g->bricks[a] + LM_RAY_COARSE - 1) / LM_RAY_COARSE)
            return false;
    return true;
}

static bool ray_ok(const struct lm_ray *r)
{
    bool dir = false;
    for (int a = 0; a < 3; a++) {
        if (!isfinite(r->o[a]) || !isfinite(r->d[a]))
            return false;
        dir = dir || r->d[a] != 0;
    }
    return dir && r->tmax >= 0;
}

int lm_ray_march(const struct lm_ray_table *t, const struct lm_ray_grid *g,
                 const struct lm_ray *rays, size_t n, uint32_t max_hits,
                 struct lm_ray_out *out)
{
    if (!t || !g || (n && (!rays || !out)) || !grid_ok(g))
        return LM_EBADARG;
    for (size_t i = 0; i < n; i++)
        if (!ray_ok(&rays[i]))
            return LM_EBADARG;
    if (n && t->march(g, rays, n, max_hits, out)) { /* the device could not run it */
        lm_ray_best()->march(g, rays, n, max_hits, out);
        lm_device_trace(lm_ray_best()->name);
    }
    return 0;
}
