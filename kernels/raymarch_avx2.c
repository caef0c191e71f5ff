/* raymarch_avx2.c - the ray march 8 rays at a time (compiled with -mavx2 -mfma; reached
 * only through lm_ray_avx2()). Each lane holds one ray; every round each lane either
 * crosses an empty brick or checks its voxel and steps to the next one, and a lane
 * whose ray ends takes the next ray at once, so lanes stay busy however long rays run.
 *
 * Bits: the set-up and the hits go through raymarch_scalar.c; the steps use the same
 * operations as the scalar code (separate multiply and add, the same tie rule). The
 * scalar code keeps t_next values between voxel steps; here they are recomputed from
 * the cell each round, which gives the same values (raymarch.h rule (2)). */
#include "raymarch.h"

#if defined(__x86_64__)

#include <immintrin.h>
#include <math.h>

#define LANES 8

/* The rays in the lanes, as columns; on[l] is -1 for a lane with a ray, 0 when idle. */
struct lanes {
    float p[3][LANES], d[3][LANES], inv[3][LANES];
    int32_t step[3][LANES], cell[3][LANES], on[LANES];
    float t[LANES], tfar[LANES];
    size_t ray[LANES];
};

struct feed {
    const struct lm_ray_grid *g;
    const struct lm_ray *rays;
    size_t n, next;
    uint32_t max_hits;
    struct lm_ray_out *out;
};

/* Gives lane l the next ray that meets the grid (rays that miss are answered on the
 * way); returns whether it got one. */
static bool refill(struct lanes *L, int l, struct feed *f)
{
    while (f->next < f->n) {
        size_t i = f->next++;
        struct lm__ray_state s;
        f->out[i] = lm__ray_none;
        if (!lm__ray_setup(f->g, &f->rays[i], &s))
            continue;
        for (int a = 0; a < 3; a++) {
            L->p[a][l] = s.p[a];
            L->d[a][l] = s.d[a];
            L->inv[a][l] = s.inv[a];
            L->step[a][l] = s.step[a];
            L->cell[a][l] = s.cell[a];
        }
        L->t[l] = s.t;
        L->tfar[l] = s.tfar;
        L->ray[l] = i;
        L->on[l] = -1;
        return true;
    }
    L->on[l] = 0;
    return false;
}

/* Rule (4) for lane l at its cell; true when the ray has all its hits. */
static bool lane_hit(const struct lanes *L, int l, uint32_t slot, struct feed *f)
{
    struct lm__ray_state s = {.t = L->t[l]};
    for (int a = 0; a < 3; a++) {
        s.d[a] = L->d[a][l];
        s.cell[a] = L->cell[a][l];
    }
    return lm__ray_hit(f->g, &s, slot, f->max_hits, &f->out[L->ray[l]]);
}

/* floor(q) clamped to [lo, hi], NaN to lo: the scalar cell_of. */
static inline __m256i cell_of8(__m256 q, __m256i lo, __m256i hi)
{
    __m256 ge_lo = _mm256_cmp_ps(q, _mm256_cvtepi32_ps(lo), _CMP_GE_OQ);
    __m256 ge_hi = _mm256_cmp_ps(q, _mm256_cvtepi32_ps(hi), _CMP_GE_OQ);
    __m256i c = _mm256_blendv_epi8(_mm256_cvttps_epi32(q), hi, _mm256_castps_si256(ge_hi));
    return _mm256_blendv_epi8(lo, c, _mm256_castps_si256(ge_lo));
}

static int avx2_march(const struct lm_ray_grid *g, const struct lm_ray *rays, size_t n,
                      uint32_t max_hits, struct lm_ray_out *out)
{
    struct lanes L __attribute__((aligned(32)));
    struct feed f = {g, rays, n, 0, max_hits, out};
    int live = 0;
    for (int l = 0; l < LANES; l++)
        live += refill(&L, l, &f);

    const __m256i zero = _mm256_setzero_si256(), one = _mm256_set1_epi32(1),
                  seven = _mm256_set1_epi32(7), eight = _mm256_set1_epi32(8);
    const __m256i nb0 = _mm256_set1_epi32((int)g->bricks[0]),
                  nb1 = _mm256_set1_epi32((int)g->bricks[1]);
    const __m256 inf = _mm256_set1_ps(INFINITY);
    __m256i dim[3];
    for (int a = 0; a < 3; a++)
        dim[a] = _mm256_set1_epi32((int)(g->bricks[a] * LM_RAY_BRICK));

    while (live) {
        __m256 active = _mm256_load_ps((const float *)L.on);
        __m256i cell[3], step[3], b[3];
        __m256 p[3], d[3], inv[3];
        for (int a = 0; a < 3; a++) {
            cell[a] = _mm256_load_si256((const __m256i *)L.cell[a]);
            step[a] = _mm256_load_si256((const __m256i *)L.step[a]);
            p[a] = _mm256_load_ps(L.p[a]);
            d[a] = _mm256_load_ps(L.d[a]);
            inv[a] = _mm256_load_ps(L.inv[a]);
            b[a] = _mm256_srai_epi32(cell[a], 3);
        }
        __m256 tfar = _mm256_load_ps(L.tfar);

        /* the brick of each lane, and in occupied ones the voxel's slot */
        __m256i bidx = _mm256_add_epi32(
            _mm256_mullo_epi32(_mm256_add_epi32(_mm256_mullo_epi32(b[2], nb1), b[1]), nb0), b[0]);
        __m256i bi = _mm256_mask_i32gather_epi32(_mm256_set1_epi32(-1), g->brick_index, bidx,
                                                 _mm256_castps_si256(active), 4);
        __m256i empty = _mm256_cmpgt_epi32(zero, bi);
        __m256i occ = _mm256_andnot_si256(empty, _mm256_castps_si256(active));
        unsigned ended = 0;
        if (_mm256_movemask_ps(_mm256_castsi256_ps(occ))) {
            __m256i local = _mm256_add_epi32(
                _mm256_slli_epi32(_mm256_add_epi32(_mm256_slli_epi32(_mm256_and_si256(cell[2], seven), 3),
                                                   _mm256_and_si256(cell[1], seven)), 3),
                _mm256_and_si256(cell[0], seven));
            __m256i sidx = _mm256_add_epi32(_mm256_slli_epi32(bi, 9), local);
            __m256i s = _mm256_mask_i32gather_epi32(zero, (const int *)g->slot, sidx, occ, 4);
            __m256i hit = _mm256_andnot_si256(_mm256_cmpeq_epi32(s, zero), occ);
            unsigned hm = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(hit));
            if (hm) {
                uint32_t sv[LANES];
                _mm256_storeu_si256((__m256i *)sv, s);
                for (; hm; hm &= hm - 1) {
                    int l = __builtin_ctz(hm);
                    if (lane_hit(&L, l, sv[l], &f))
                        ended |= 1u << l;
                }
            }
        }

        /* the next crossing: of the brick (empty) or of the voxel */
        __m256 tn[3];
        for (int a = 0; a < 3; a++) {
            __m256i up = _mm256_cmpgt_epi32(step[a], zero);
            __m256i base_v = _mm256_add_epi32(cell[a], _mm256_and_si256(up, one));
            __m256i base_b = _mm256_add_epi32(_mm256_slli_epi32(b[a], 3), _mm256_and_si256(up, eight));
            __m256i base = _mm256_blendv_epi8(base_v, base_b, empty);
            tn[a] = _mm256_mul_ps(_mm256_sub_ps(_mm256_cvtepi32_ps(base), p[a]), inv[a]);
            tn[a] = _mm256_blendv_ps(tn[a], inf,
                                     _mm256_castsi256_ps(_mm256_cmpeq_epi32(step[a], zero)));
        }
        __m256 m1 = _mm256_cmp_ps(tn[1], tn[0], _CMP_LT_OQ);
        __m256 tmin = _mm256_blendv_ps(tn[0], tn[1], m1);
        __m256 m2 = _mm256_cmp_ps(tn[2], tmin, _CMP_LT_OQ);
        tmin = _mm256_blendv_ps(tmin, tn[2], m2);
        __m256i ax[3] = {_mm256_castps_si256(_mm256_andnot_ps(m2, _mm256_andnot_ps(m1, active))),
                         _mm256_castps_si256(_mm256_andnot_ps(m2, m1)),
                         _mm256_castps_si256(m2)};

        /* the step: the crossing axis moves one cell (voxel) or one brick, whose
         * entry cell the other axes take from the position at the crossing */
        __m256 out_of = _mm256_cmp_ps(tmin, tfar, _CMP_GT_OQ);
        for (int a = 0; a < 3; a++) {
            __m256i mv = _mm256_and_si256(ax[a], step[a]);
            __m256i cv = _mm256_add_epi32(cell[a], mv);
            __m256i nb = _mm256_add_epi32(b[a], mv), lo = _mm256_slli_epi32(nb, 3);
            __m256i first = _mm256_blendv_epi8(_mm256_add_epi32(lo, seven), lo,
                                               _mm256_cmpgt_epi32(step[a], zero));
            __m256 q = _mm256_add_ps(p[a], _mm256_mul_ps(d[a], tmin));
            __m256i cb = _mm256_blendv_epi8(cell_of8(q, lo, _mm256_add_epi32(lo, seven)), first, ax[a]);
            __m256i c = _mm256_blendv_epi8(cv, cb, empty);
            __m256i outside = _mm256_or_si256(_mm256_cmpgt_epi32(zero, c),
                                              _mm256_cmpgt_epi32(_mm256_add_epi32(c, one), dim[a]));
            out_of = _mm256_or_ps(out_of, _mm256_castsi256_ps(_mm256_and_si256(outside, ax[a])));
            _mm256_store_si256((__m256i *)L.cell[a], c);
        }
        _mm256_store_ps(L.t, tmin);
        ended |= (unsigned)_mm256_movemask_ps(_mm256_and_ps(out_of, active));
        for (; ended; ended &= ended - 1)
            live -= !refill(&L, __builtin_ctz(ended), &f);
    }
    return 0;
}

const struct lm_ray_table lm__ray_avx2_table = {
    .name = "avx2",
    .march = avx2_march,
};

#endif /* __x86_64__ */
