/* region.c - region validation, box classification and camera frusta. */
#include "region.h"

#include <math.h>

#include "error.h"

static bool finite3(const float v[3])
{
    return isfinite(v[0]) && isfinite(v[1]) && isfinite(v[2]);
}

int lm__region_validate(const struct lm_region *r, struct lm_error *err)
{
    switch (r->kind) {
    case LM_REGION_ALL:
        return 0;
    case LM_REGION_BOX:
        if (!finite3(r->min) || !finite3(r->max))
            return lm__fail(err, LM_EBADARG, "box corners must be finite numbers");
        for (int i = 0; i < 3; i++)
            if (r->min[i] > r->max[i])
                return lm__fail(err, LM_EBADARG,
                                "box min %c = %g is greater than max %c = %g",
                                "xyz"[i], (double)r->min[i], "xyz"[i], (double)r->max[i]);
        return 0;
    case LM_REGION_SPHERE:
        if (!finite3(r->center) || !isfinite(r->radius) || r->radius < 0.0f)
            return lm__fail(err, LM_EBADARG,
                            "sphere needs a finite centre and a radius >= 0 (radius %g)",
                            (double)r->radius);
        return 0;
    case LM_REGION_FRUSTUM:
        for (int i = 0; i < 6; i++)
            for (int j = 0; j < 4; j++)
                if (!isfinite(r->planes[i][j]))
                    return lm__fail(err, LM_EBADARG, "frustum plane %d is not finite", i);
        return 0;
    }
    return lm__fail(err, LM_EBADARG, "unknown region kind %d", (int)r->kind);
}

enum lm__overlap lm__region_classify(const struct lm_region *r, const float bmin[3],
                                     const float bmax[3])
{
    switch (r->kind) {
    case LM_REGION_ALL:
        return LM__INSIDE;
    case LM_REGION_BOX:
        for (int i = 0; i < 3; i++)
            if (bmax[i] < r->min[i] || bmin[i] > r->max[i])
                return LM__OUTSIDE;
        for (int i = 0; i < 3; i++)
            if (bmin[i] < r->min[i] || bmax[i] > r->max[i])
                return LM__PARTIAL;
        return LM__INSIDE;
    case LM_REGION_SPHERE: {
        float rr = r->radius * r->radius;
        if (lm__box_dist2(r->center, bmin, bmax) > rr)
            return LM__OUTSIDE;
        float far2 = 0.0f; /* farthest corner */
        for (int i = 0; i < 3; i++) {
            float a = fabsf(r->center[i] - bmin[i]), b = fabsf(r->center[i] - bmax[i]);
            float d = a > b ? a : b;
            far2 += d * d;
        }
        return far2 <= rr ? LM__INSIDE : LM__PARTIAL;
    }
    case LM_REGION_FRUSTUM: {
        bool all_in = true;
        for (int i = 0; i < 6; i++) {
            const float *pl = r->planes[i];
            /* corner farthest along the normal (p-vertex) and nearest (n-vertex) */
            float px = pl[0] >= 0 ? bmax[0] : bmin[0], nx = pl[0] >= 0 ? bmin[0] : bmax[0];
            float py = pl[1] >= 0 ? bmax[1] : bmin[1], ny = pl[1] >= 0 ? bmin[1] : bmax[1];
            float pz = pl[2] >= 0 ? bmax[2] : bmin[2], nz = pl[2] >= 0 ? bmin[2] : bmax[2];
            if (pl[0] * px + pl[1] * py + pl[2] * pz + pl[3] < 0.0f)
                return LM__OUTSIDE;
            if (pl[0] * nx + pl[1] * ny + pl[2] * nz + pl[3] < 0.0f)
                all_in = false;
        }
        return all_in ? LM__INSIDE : LM__PARTIAL;
    }
    }
    return LM__PARTIAL;
}

static void normalize3(float v[3])
{
    float l = sqrtf(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
    if (l > 0) {
        v[0] /= l;
        v[1] /= l;
        v[2] /= l;
    }
}

static void cross3(const float a[3], const float b[3], float o[3])
{
    o[0] = a[1] * b[2] - a[2] * b[1];
    o[1] = a[2] * b[0] - a[0] * b[2];
    o[2] = a[0] * b[1] - a[1] * b[0];
}

static void set_plane(float pl[4], const float n[3], const float p[3])
{
    pl[0] = n[0];
    pl[1] = n[1];
    pl[2] = n[2];
    pl[3] = -(n[0] * p[0] + n[1] * p[1] + n[2] * p[2]);
}

int lm_frustum_from_camera(const float eye[3], const float target[3], const float up[3],
                           float fov_y_deg, float aspect, float near_d, float far_d,
                           struct lm_region *out)
{
    if (!finite3(eye) || !finite3(target) || !finite3(up) || !(fov_y_deg > 0.0f) ||
        !(fov_y_deg < 180.0f) || !(aspect > 0.0f) || !(near_d > 0.0f) || !(far_d > near_d) ||
        !isfinite(far_d))
        return LM_EBADARG;
    float f[3] = {target[0] - eye[0], target[1] - eye[1], target[2] - eye[2]};
    normalize3(f);
    float s[3], u[3];
    cross3(f, up, s);
    if (s[0] == 0 && s[1] == 0 && s[2] == 0)
        return LM_EBADARG; /* up parallel to the view direction */
    normalize3(s);
    cross3(s, f, u);
    float th = tanf(fov_y_deg * 0.5f * 3.14159265358979f / 180.0f), tw = th * aspect;
    struct lm_region r = {.kind = LM_REGION_FRUSTUM};
    float pn[3] = {eye[0] + f[0] * near_d, eye[1] + f[1] * near_d, eye[2] + f[2] * near_d};
    float pf[3] = {eye[0] + f[0] * far_d, eye[1] + f[1] * far_d, eye[2] + f[2] * far_d};
    float nf[3] = {-f[0], -f[1], -f[2]};
    set_plane(r.planes[0], f, pn);  /* near: in front of it */
    set_plane(r.planes[1], nf, pf); /* far: behind it */
    /* side planes through the eye; inward normals */
    float n[3];
    for (int side = 0; side < 4; side++) {
        const float *axis = side < 2 ? s : u;
        float t = side < 2 ? tw : th, sign = (side & 1) ? -1.0f : 1.0f;
        /* edge direction: f + sign * t * axis; normal = inward, perpendicular to it */
        for (int i = 0; i < 3; i++)
            n[i] = f[i] * t - sign * axis[i];
        normalize3(n);
        set_plane(r.planes[2 + side], n, eye);
    }
    *out = r;
    return 0;
}
