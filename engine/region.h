/* region.h - geometry of query regions: point tests, box classification, distances.
 * Owns: nothing; pure functions over struct lm_region (lumadb.h).
 * Invariants: (1) BOX bounds are inclusive; SPHERE includes its surface; a FRUSTUM
 *   contains points with every plane value >= 0. (2) lm__region_classify never says
 *   INSIDE or OUTSIDE wrongly; it may say PARTIAL when unsure (frustum corners).
 * Threading: pure. Called by: query.c, field.c, render/, net/. */
#ifndef LM_REGION_H
#define LM_REGION_H

#include <stdbool.h>

#include "lumadb.h"

enum lm__overlap { LM__OUTSIDE = 0, LM__PARTIAL = 1, LM__INSIDE = 2 };

/* Checks a region for finite numbers, min <= max, radius >= 0. */
int lm__region_validate(const struct lm_region *r, struct lm_error *err);

static inline bool lm__region_contains(const struct lm_region *r, float x, float y, float z)
{
    switch (r->kind) {
    case LM_REGION_ALL:
        return true;
    case LM_REGION_BOX:
        return x >= r->min[0] && x <= r->max[0] && y >= r->min[1] && y <= r->max[1] &&
               z >= r->min[2] && z <= r->max[2];
    case LM_REGION_SPHERE: {
        float dx = x - r->center[0], dy = y - r->center[1], dz = z - r->center[2];
        return dx * dx + dy * dy + dz * dz <= r->radius * r->radius;
    }
    case LM_REGION_FRUSTUM:
        for (int i = 0; i < 6; i++)
            if (r->planes[i][0] * x + r->planes[i][1] * y + r->planes[i][2] * z +
                    r->planes[i][3] < 0.0f)
                return false;
        return true;
    }
    return false;
}

/* Does value v pass the filter? Values compare as doubles (lumadb.h struct lm_filter);
 * the selection paths and the query executor's per-sample path share this test. */
static inline bool lm__filter_holds(double v, const struct lm_filter *f)
{
    switch (f->cmp) {
    case LM_CMP_LT: return v < f->a;
    case LM_CMP_LE: return v <= f->a;
    case LM_CMP_GT: return v > f->a;
    case LM_CMP_GE: return v >= f->a;
    case LM_CMP_EQ: return v == f->a;
    case LM_CMP_NE: return v != f->a;
    case LM_CMP_BETWEEN: return v >= f->a && v <= f->b;
    }
    return false;
}

/* How the box [bmin, bmax] (inclusive) relates to the region. */
enum lm__overlap lm__region_classify(const struct lm_region *r, const float bmin[3],
                                     const float bmax[3]);

/* Squared distance from p to the box (0 inside). */
static inline float lm__box_dist2(const float p[3], const float bmin[3], const float bmax[3])
{
    float d2 = 0.0f;
    for (int i = 0; i < 3; i++) {
        float d = p[i] < bmin[i] ? bmin[i] - p[i] : (p[i] > bmax[i] ? p[i] - bmax[i] : 0.0f);
        d2 += d * d;
    }
    return d2;
}

#endif
