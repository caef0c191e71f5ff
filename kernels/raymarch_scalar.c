/* raymarch_scalar.c - the reference ray march, one ray at a time, exactly the rules of
 * raymarch.h (1)-(4); its set-up and hit steps also serve the AVX2 twin. */
#include "raymarch.h"

#include <math.h>

#include "sh.h"

/* The axis of the smallest of three distances; ties go to the lower axis. */
static inline int argmin3(const float t[3])
{
    int a = t[1] < t[0] ? 1 : 0;
    return t[2] < t[a] ? 2 : a;
}

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

bool lm__ray_hit(const struct lm_ray_grid *g, const struct lm__ray_state *s, uint32_t slot,
                 uint32_t max_hits, struct lm_ray_out *o)
{
    const float back[3] = {-s->d[0], -s->d[1], -s->d[2]};
    uint32_t v = slot - 1;
    if (!o->hits) {
        for (int a = 0; a < 3; a++)
            o->voxel[a] = s->cell[a];
        o->t_hit = s->t * g->voxel_size;
    }
    for (int ch = 0; ch < 3; ch++)
        o->radiance[ch] += lm_sh_eval(&g->sh[(size_t)v * 12 + (size_t)ch * 4], g->count[v], back);
    return ++o->hits == max_hits;
}

const struct lm_ray_out lm__ray_none = {{-1, -1, -1}, INFINITY, {0, 0, 0}, 0};

void lm__ray_one(const struct lm_ray_grid *g, const struct lm_ray *r, uint32_t max_hits,
                 struct lm_ray_out *out)
{
    struct lm__ray_state s;
    int32_t b[3];
    *out = lm__ray_none;
    if (!lm__ray_setup(g, r, &s))
        return;
    for (;;) {
        for (int a = 0; a < 3; a++)
            b[a] = s.cell[a] >> 3;
        int32_t bi = g->brick_index[((size_t)b[2] * g->bricks[1] + (size_t)b[1]) *
                                        g->bricks[0] + (size_t)b[0]];
        float tn[3];
        if (bi < 0) {
            /* (3) an empty brick in one step */
            for (int a = 0; a < 3; a++)
                tn[a] = s.step[a] ? ((float)(b[a] * 8 + (s.step[a] > 0 ? 8 : 0)) - s.p[a]) *
                                        s.inv[a]
                                  : INFINITY;
            int ax = argmin3(tn);
            s.t = tn[ax];
            b[ax] += s.step[ax];
            if (s.t > s.tfar || b[ax] < 0 || b[ax] >= s.dim[ax] / 8)
                return;
            for (int a = 0; a < 3; a++)
                s.cell[a] = a == ax ? (s.step[a] > 0 ? b[a] * 8 : b[a] * 8 + 7)
                                    : cell_of(s.p[a] + s.d[a] * s.t, b[a] * 8, b[a] * 8 + 7);
            continue;
        }
        /* (2), (4) the voxels of an occupied brick */
        const uint32_t *slots = g->slot + (size_t)bi * LM_RAY_BRICK_VOXELS;
        for (int a = 0; a < 3; a++)
            tn[a] = s.step[a] ? ((float)(s.cell[a] + (s.step[a] > 0)) - s.p[a]) * s.inv[a]
                              : INFINITY;
        for (;;) {
            uint32_t sl = slots[((s.cell[2] & 7) * 8 + (s.cell[1] & 7)) * 8 + (s.cell[0] & 7)];
            if (sl && lm__ray_hit(g, &s, sl, max_hits, out))
                return;
            int ax = argmin3(tn);
            s.t = tn[ax];
            s.cell[ax] += s.step[ax];
            if (s.t > s.tfar || s.cell[ax] < 0 || s.cell[ax] >= s.dim[ax])
                return;
            tn[ax] = ((float)(s.cell[ax] + (s.step[ax] > 0)) - s.p[ax]) * s.inv[ax];
            if (s.cell[ax] >> 3 != b[ax])
                break; /* into the next brick */
        }
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
