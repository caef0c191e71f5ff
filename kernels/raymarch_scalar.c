/* raymarch_scalar.c - the reference ray march, one ray at a time, exactly the rules of
 * raymarch.h (1)-(3); its set-up and hit steps also serve the AVX2 twin. */
#include "raymarch.h"

#include <math.h>

#include "sh.h"

/* floor(q) as a cell in [lo, hi] (NaN: lo). */
static inline int32_t cell_of(float q, int32_t lo, int32_t hi)
{
    if (!(q >= (float)lo))
        return lo;
    if (q >= (float)hi)
        return hi;
    return (int32_t)q;
}

bool lm__ray_setup(const struct lm_ray_grid *g, const struct lm_ray *r, struct lm__ray_state *s)
{
    float tnear = 0.0f, tfar = r->tmax * g->inv_voxel;
    for (int a = 0; a < 3; a++) {
        s->p[a] = (r->o[a] - g->origin[a]) * g->inv_voxel;
        s->d[a] = r->d[a];
        s->inv[a] = 0.0f;
        s->dim[a] = (int32_t)(g->bricks[a] * LM_RAY_BRICK);
        s->step[a] = s->d[a] > 0.0f ? 1 : s->d[a] < 0.0f ? -1 : 0;
        if (!s->step[a]) {
            if (!(s->p[a] >= 0.0f && s->p[a] <= (float)s->dim[a]))
                return false;
            continue;
        }
        s->inv[a] = 1.0f / s->d[a];
        float t1 = (0.0f - s->p[a]) * s->inv[a], t2 = ((float)s->dim[a] - s->p[a]) * s->inv[a];
        float lo = t1 < t2 ? t1 : t2, hi = t1 < t2 ? t2 : t1;
        tnear = lo > tnear ? lo : tnear;
        tfar = hi < tfar ? hi : tfar;
    }
    if (!(tnear <= tfar))
        return false;
    s->t = tnear;
    s->tfar = tfar;
    for (int a = 0; a < 3; a++)
        s->cell[a] = cell_of(s->p[a] + s->d[a] * s->t, 0, s->dim[a] - 1);
    return true;
}

void lm__ray_shade(const struct lm_ray_grid *g, uint32_t v, const float y[4], float rgb[3])
{
    /* lm_sh_eval (engine/sh.c) per channel, operation for operation, with the one
     * division its three calls would each make done once */
    const float *s = &g->sh[(size_t)v * 12];
    const float scale = 12.566370614359172f / (float)g->count[v];
    for (int ch = 0; ch < 3; ch++, s += 4) {
        float l = s[0] * y[0] + (s[1] * y[1] + s[2] * y[2] + s[3] * y[3]) * (1.0f / 3.0f);
        l *= scale;
        rgb[ch] += l > 0.0f ? l : 0.0f;
    }
}

bool lm__ray_hit(const struct lm_ray_grid *g, const struct lm__ray_state *s, uint32_t slot,
                 uint32_t max_hits, struct lm_ray_out *o)
{
    const float back[3] = {-s->d[0], -s->d[1], -s->d[2]};
    float y[4];
    if (!o->hits) {
        for (int a = 0; a < 3; a++)
            o->voxel[a] = s->cell[a];
        o->t_hit = s->t * g->voxel_size;
    }
    lm_sh_basis(back, y);
    lm__ray_shade(g, slot - 1, y, o->radiance);
    return ++o->hits == max_hits;
}

const struct lm_ray_out lm__ray_none = {{-1, -1, -1}, INFINITY, {0, 0, 0}, 0};

/* Rule (2): one step out of the empty cube of edge S = 1 << shift (8 or 32) holding
 * the cell. Returns false when the march ends. */
static bool step(struct lm__ray_state *s, int shift)
{
    int32_t S = 1 << shift, lo[3];
    float tn[3];
    for (int a = 0; a < 3; a++) {
        lo[a] = s->cell[a] >> shift << shift;
        tn[a] = s->step[a] ? ((float)(lo[a] + (s->step[a] > 0 ? S : 0)) - s->p[a]) * s->inv[a]
                           : INFINITY;
    }
    int ax = tn[1] < tn[0] ? 1 : 0;
    ax = tn[2] < tn[ax] ? 2 : ax;
    s->t = tn[ax];
    lo[ax] += s->step[ax] * S;
    for (int a = 0; a < 3; a++) {
        int32_t hi = lo[a] + S - 1 < s->dim[a] - 1 ? lo[a] + S - 1 : s->dim[a] - 1;
        s->cell[a] = a == ax ? (s->step[a] > 0 ? lo[a] : hi)
                             : cell_of(s->p[a] + s->d[a] * s->t, lo[a], hi);
    }
    return !(s->t > s->tfar) && s->cell[ax] >= 0 && s->cell[ax] < s->dim[ax];
}

/* The entry of a cell's 32-cell (shift 5, dims coarse_dim) or brick (3, bricks) in
 * its table. */
static inline size_t table_at(const int32_t c[3], int shift, const uint32_t dims[3])
{
    return ((size_t)(c[2] >> shift) * dims[1] + (size_t)(c[1] >> shift)) * dims[0] +
           (size_t)(c[0] >> shift);
}

/* Voxel steps (rule (2) with S = 1) through the occupied brick bi holding the cell,
 * with hits; returns 1 when the ray leaves the brick, 0 when the march ends. The
 * crossing times of the axes that did not step stay as they were computed, which is
 * what recomputing them from their unchanged cells would give. */
static int brick_walk(const struct lm_ray_grid *g, struct lm__ray_state *s, int32_t bi,
                      uint32_t max_hits, struct lm_ray_out *out)
{
    const uint32_t *occ = g->occ + (size_t)bi * 16,
                   *slot = g->slot + (size_t)bi * LM_RAY_BRICK_VOXELS;
    int32_t *c = s->cell, b[3] = {c[0] >> 3, c[1] >> 3, c[2] >> 3};
    float tn[3];
    for (int a = 0; a < 3; a++)
        tn[a] = s->step[a] ? ((float)(c[a] + (s->step[a] > 0)) - s->p[a]) * s->inv[a] : INFINITY;
    for (;;) {
        uint32_t l = (uint32_t)(((c[2] & 7) * 8 + (c[1] & 7)) * 8 + (c[0] & 7));
        if ((occ[l / 32] >> (l % 32) & 1) && lm__ray_hit(g, s, slot[l], max_hits, out))
            return 0;
        int ax = tn[1] < tn[0] ? 1 : 0;
        ax = tn[2] < tn[ax] ? 2 : ax;
        s->t = tn[ax];
        c[ax] += s->step[ax];
        if (s->t > s->tfar || c[ax] < 0 || c[ax] >= s->dim[ax])
            return 0;
        if (c[ax] >> 3 != b[ax])
            return 1;
        tn[ax] = ((float)(c[ax] + (s->step[ax] > 0)) - s->p[ax]) * s->inv[ax];
    }
}

void lm__ray_one(const struct lm_ray_grid *g, const struct lm_ray *r, uint32_t max_hits,
                 struct lm_ray_out *out)
{
    struct lm__ray_state s;
    const int32_t *c = s.cell;
    *out = lm__ray_none;
    if (!lm__ray_setup(g, r, &s))
        return;
    for (;;) {
        int shift = 5;
        if (g->coarse[table_at(c, 5, g->coarse_dim)]) {
            int32_t bi = g->brick_index[table_at(c, 3, g->bricks)];
            if (bi >= 0) {
                if (!brick_walk(g, &s, bi, max_hits, out))
                    return;
                continue;
            }
            shift = 3;
        }
        if (!step(&s, shift))
            return;
    }
}

static int scalar_march(const struct lm_ray_grid *g, const struct lm_ray *rays, size_t n,
                        uint32_t max_hits, struct lm_ray_out *out)
{
    for (size_t i = 0; i < n; i++)
        lm__ray_one(g, &rays[i], max_hits, &out[i]);
    return 0;
}

const struct lm_ray_table lm__ray_scalar_table = {
    .name = "scalar",
    .march = scalar_march,
};
