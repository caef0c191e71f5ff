/* raymarch_avx2.c - the ray march 8 rays at a time (compiled with -mavx2 -mfma; reached
 * only through lm_ray_avx2()). Each lane holds one ray; every round each lane finds the
 * level it crosses (empty 32-cell, empty brick, or its voxel, checked for a hit), takes
 * that step, and a lane whose ray ends takes the next ray at once, so lanes stay busy
 * however long rays run. Bits: the set-up and the hits go through raymarch_scalar.c;
 * the steps use its operations (separate multiply and add, the same tie rule). */
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

static inline __m256i as_i(__m256 v) { return _mm256_castps_si256(v); }
static inline __m256 as_f(__m256i v) { return _mm256_castsi256_ps(v); }

/* (z * ny + y) * nx + x */
static inline __m256i index3(__m256i x, __m256i y, __m256i z, __m256i nx, __m256i ny)
{
    return _mm256_add_epi32(
        _mm256_mullo_epi32(_mm256_add_epi32(_mm256_mullo_epi32(z, ny), y), nx), x);
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
                  seven = _mm256_set1_epi32(7), ff = _mm256_set1_epi32(0xff);
    const __m256i nb0 = _mm256_set1_epi32((int)g->bricks[0]),
                  nb1 = _mm256_set1_epi32((int)g->bricks[1]),
                  nc0 = _mm256_set1_epi32((int)g->coarse_dim[0]),
                  nc1 = _mm256_set1_epi32((int)g->coarse_dim[1]);
    const __m256 inf = _mm256_set1_ps(INFINITY);
    __m256i dim[3];
    for (int a = 0; a < 3; a++)
        dim[a] = _mm256_set1_epi32((int)(g->bricks[a] * LM_RAY_BRICK));

    while (live) {
        __m256i active = _mm256_load_si256((const __m256i *)L.on);
        __m256i cell[3], step[3];
        __m256 p[3], d[3], inv[3];
        for (int a = 0; a < 3; a++) {
            cell[a] = _mm256_load_si256((const __m256i *)L.cell[a]);
            step[a] = _mm256_load_si256((const __m256i *)L.step[a]);
            p[a] = _mm256_load_ps(L.p[a]);
            d[a] = _mm256_load_ps(L.d[a]);
            inv[a] = _mm256_load_ps(L.inv[a]);
        }

        /* the level each lane crosses (rule (2)): 32-cell (5), brick (3), voxel (0) */
        __m256i ci = index3(_mm256_srai_epi32(cell[0], 5), _mm256_srai_epi32(cell[1], 5),
                            _mm256_srai_epi32(cell[2], 5), nc0, nc1);
        __m256i co = _mm256_and_si256(
            _mm256_mask_i32gather_epi32(zero, (const int *)g->coarse, ci, active, 1), ff);
        __m256i in_coarse = _mm256_andnot_si256(_mm256_cmpeq_epi32(co, zero), active);
        __m256i bidx = index3(_mm256_srai_epi32(cell[0], 3), _mm256_srai_epi32(cell[1], 3),
                              _mm256_srai_epi32(cell[2], 3), nb0, nb1);
        __m256i bi = _mm256_mask_i32gather_epi32(_mm256_set1_epi32(-1), g->brick_index, bidx,
                                                 in_coarse, 4);
        __m256i in_brick = _mm256_andnot_si256(_mm256_cmpgt_epi32(zero, bi), in_coarse);
        __m256i shift = _mm256_blendv_epi8(_mm256_set1_epi32(5),
                                           _mm256_andnot_si256(in_brick, _mm256_set1_epi32(3)),
                                           in_coarse);
        unsigned ended = 0;
        if (_mm256_movemask_ps(as_f(in_brick))) { /* rule (3) at occupied voxels */
            __m256i l = _mm256_add_epi32(
                _mm256_slli_epi32(
                    _mm256_add_epi32(_mm256_slli_epi32(_mm256_and_si256(cell[2], seven), 3),
                                     _mm256_and_si256(cell[1], seven)),
                    3),
                _mm256_and_si256(cell[0], seven));
            __m256i widx = _mm256_add_epi32(_mm256_slli_epi32(bi, 4), _mm256_srli_epi32(l, 5));
            __m256i w = _mm256_mask_i32gather_epi32(zero, (const int *)g->occ, widx, in_brick, 4);
            __m256i bit = _mm256_and_si256(
                _mm256_srlv_epi32(w, _mm256_and_si256(l, _mm256_set1_epi32(31))), one);
            unsigned hm = (unsigned)_mm256_movemask_ps(as_f(_mm256_cmpeq_epi32(bit, one))) &
                          (unsigned)_mm256_movemask_ps(as_f(in_brick));
            if (hm) {
                uint32_t bv[LANES], lv[LANES];
                _mm256_storeu_si256((__m256i *)bv, bi);
                _mm256_storeu_si256((__m256i *)lv, l);
                for (; hm; hm &= hm - 1) {
                    int k = __builtin_ctz(hm);
                    uint32_t slot = g->slot[(size_t)bv[k] * LM_RAY_BRICK_VOXELS + lv[k]];
                    if (lane_hit(&L, k, slot, &f))
                        ended |= 1u << k;
                }
            }
        }

        /* rule (2): the step out of the cube of edge S = 1 << shift */
        __m256i S = _mm256_sllv_epi32(one, shift), lo[3];
        __m256 tn[3];
        for (int a = 0; a < 3; a++) {
            lo[a] = _mm256_sllv_epi32(_mm256_srav_epi32(cell[a], shift), shift);
            __m256i up = _mm256_cmpgt_epi32(step[a], zero);
            __m256i plane = _mm256_add_epi32(lo[a], _mm256_and_si256(up, S));
            tn[a] = _mm256_mul_ps(_mm256_sub_ps(_mm256_cvtepi32_ps(plane), p[a]), inv[a]);
            tn[a] = _mm256_blendv_ps(tn[a], inf, as_f(_mm256_cmpeq_epi32(step[a], zero)));
        }
        __m256 m1 = _mm256_cmp_ps(tn[1], tn[0], _CMP_LT_OQ);
        __m256 t = _mm256_blendv_ps(tn[0], tn[1], m1);
        __m256 m2 = _mm256_cmp_ps(tn[2], t, _CMP_LT_OQ);
        t = _mm256_blendv_ps(t, tn[2], m2);
        __m256i ax[3] = {as_i(_mm256_andnot_ps(m2, _mm256_andnot_ps(m1, as_f(active)))),
                         as_i(_mm256_andnot_ps(m2, m1)), as_i(m2)};
        __m256 end = _mm256_cmp_ps(t, _mm256_load_ps(L.tfar), _CMP_GT_OQ);
        for (int a = 0; a < 3; a++) {
            lo[a] =
                _mm256_add_epi32(lo[a], _mm256_and_si256(ax[a], _mm256_sign_epi32(S, step[a])));
            __m256i hi = _mm256_min_epi32(_mm256_sub_epi32(_mm256_add_epi32(lo[a], S), one),
                                          _mm256_sub_epi32(dim[a], one));
            __m256i first = _mm256_blendv_epi8(hi, lo[a], _mm256_cmpgt_epi32(step[a], zero));
            __m256 q = _mm256_add_ps(p[a], _mm256_mul_ps(d[a], t));
            __m256i c = _mm256_blendv_epi8(cell_of8(q, lo[a], hi), first, ax[a]);
            __m256i outside =
                _mm256_or_si256(_mm256_cmpgt_epi32(zero, c),
                                _mm256_cmpgt_epi32(_mm256_add_epi32(c, one), dim[a]));
            end = _mm256_or_ps(end, as_f(_mm256_and_si256(outside, ax[a])));
            _mm256_store_si256((__m256i *)L.cell[a], c);
        }
        _mm256_store_ps(L.t, t);
        ended |= (unsigned)_mm256_movemask_ps(_mm256_and_ps(end, as_f(active)));
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
