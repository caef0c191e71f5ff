/* camera.c - camera controls with cglm (camera.h). */
#include "camera.h"

#include <cglm/cglm.h>
#include <math.h>
#include <string.h>

/* Keeps direction `d` (unit) at least the minimum pitch away from +-up. */
static void clamp_pitch(vec3 d, const vec3 up)
{
    float lim = cosf(glm_rad(LM_CAMERA_MIN_PITCH_DEG));
    float along = glm_vec3_dot(d, (float *)up);
    if (fabsf(along) <= lim)
        return;
    vec3 flat;
    glm_vec3_scale((float *)up, along, flat);
    glm_vec3_sub(d, flat, flat);
    if (glm_vec3_norm(flat) < 1e-6f)
        glm_vec3_ortho((float *)up, flat);
    glm_vec3_normalize(flat);
    float s = along > 0 ? 1.0f : -1.0f;
    float side = sqrtf(1.0f - lim * lim);
    for (int a = 0; a < 3; a++)
        d[a] = flat[a] * side + up[a] * lim * s;
}

/* Rotates unit direction d by yaw about up and pitch about the right axis. */
static void turn(vec3 d, const vec3 up, float yaw, float pitch)
{
    clamp_pitch(d, up);
    /* +pitch turns d toward up; limit it so that d never passes over a pole */
    float lim = glm_rad(LM_CAMERA_MIN_PITCH_DEG);
    float from_up = acosf(glm_clamp(glm_vec3_dot(d, (float *)up), -1.0f, 1.0f));
    pitch = from_up - glm_clamp(from_up - pitch, lim, GLM_PIf - lim);
    vec3 right;
    glm_vec3_cross(d, (float *)up, right);
    glm_vec3_normalize(right);
    glm_vec3_rotate(d, pitch, right);
    glm_vec3_rotate(d, yaw, (float *)up);
    glm_vec3_normalize(d);
    clamp_pitch(d, up);
}

void lm_render_camera_frame(struct lm_render_camera *c, const float bmin[3],
                            const float bmax[3], const float from[3], const float up[3],
                            float fov_y_deg, float aspect)
{
    vec3 center, dir = {from[0], from[1], from[2]}, right, upv;
    for (int a = 0; a < 3; a++)
        center[a] = 0.5f * (bmin[a] + bmax[a]);
    glm_vec3_normalize(dir);
    memcpy(c->up, up, sizeof c->up);
    clamp_pitch(dir, c->up);
    glm_vec3_cross(c->up, dir, right); /* the camera looks along -dir */
    glm_vec3_normalize(right);
    glm_vec3_cross(dir, right, upv);
    float tv = tanf(glm_rad(fov_y_deg) * 0.5f), th = tv * (aspect > 0 ? aspect : 1.0f);
    /* the least distance from the centre at which every corner is inside the view */
    float dist = 1e-3f;
    for (int i = 0; i < 8; i++) {
        vec3 q;
        for (int a = 0; a < 3; a++)
            q[a] = ((i >> a & 1) ? bmax[a] : bmin[a]) - center[a];
        float along = glm_vec3_dot(q, dir);
        dist = fmaxf(dist, along + fabsf(glm_vec3_dot(q, right)) / th);
        dist = fmaxf(dist, along + fabsf(glm_vec3_dot(q, upv)) / tv);
    }
    dist *= 1.05f;
    for (int a = 0; a < 3; a++) {
        c->target[a] = center[a];
        c->eye[a] = center[a] + dir[a] * dist;
    }
    c->fov_y_deg = fov_y_deg;
}

/* Turns `moving` about `pivot`, keeping their distance. */
static void swing(const float pivot[3], float moving[3], const vec3 up, float yaw, float pitch)
{
    vec3 d;
    glm_vec3_sub(moving, (float *)pivot, d);
    float dist = glm_vec3_norm(d);
    glm_vec3_normalize(d);
    turn(d, up, yaw, pitch);
    for (int a = 0; a < 3; a++)
        moving[a] = pivot[a] + d[a] * dist;
}

void lm_render_camera_orbit(struct lm_render_camera *c, float yaw, float pitch)
{
    /* the turned direction points from target to eye: +pitch about its right axis
     * raises the eye */
    swing(c->target, c->eye, c->up, yaw, pitch);
}

void lm_render_camera_pan(struct lm_render_camera *c, float dx, float dy)
{
    vec3 fwd, right, upv;
    glm_vec3_sub(c->target, c->eye, fwd);
    float dist = glm_vec3_norm(fwd);
    glm_vec3_normalize(fwd);
    glm_vec3_cross(fwd, c->up, right);
    glm_vec3_normalize(right);
    glm_vec3_cross(right, fwd, upv);
    for (int a = 0; a < 3; a++) {
        float m = (right[a] * dx + upv[a] * dy) * dist;
        c->eye[a] += m;
        c->target[a] += m;
    }
}

void lm_render_camera_zoom(struct lm_render_camera *c, float factor)
{
    float d = glm_vec3_distance(c->eye, c->target);
    if (!(factor > 0) || !(d * factor > 1e-4f * fmaxf(1.0f, glm_vec3_norm(c->target))))
        return; /* invariant 1: the eye never reaches the target */
    for (int a = 0; a < 3; a++)
        c->eye[a] = c->target[a] + (c->eye[a] - c->target[a]) * factor;
}

void lm_render_camera_move(struct lm_render_camera *c, float forward, float right, float up)
{
    vec3 fwd, r;
    glm_vec3_sub(c->target, c->eye, fwd);
    glm_vec3_normalize(fwd);
    glm_vec3_cross(fwd, c->up, r);
    glm_vec3_normalize(r);
    for (int a = 0; a < 3; a++) {
        float m = fwd[a] * forward + r[a] * right + c->up[a] * up;
        c->eye[a] += m;
        c->target[a] += m;
    }
}

void lm_render_camera_look(struct lm_render_camera *c, float yaw, float pitch)
{
    swing(c->eye, c->target, c->up, yaw, pitch);
}

void lm_render_camera_tour(const struct lm_render_camera *home, float u,
                           struct lm_render_camera *out)
{
    *out = *home;
    lm_render_camera_orbit(out, 2.0f * GLM_PIf * u, 0.0f);
    lm_render_camera_zoom(out, 1.0f - 0.65f * sinf(GLM_PIf * u));
}

void lm_render_camera_matrices(const struct lm_render_camera *c, float aspect, float near_d,
                               float far_d, float view[16], float proj[16])
{
    mat4 v, p;
    glm_lookat((float *)c->eye, (float *)c->target, (float *)c->up, v);
    glm_perspective(glm_rad(c->fov_y_deg), aspect, near_d, far_d, p);
    memcpy(view, v, sizeof v);
    memcpy(proj, p, sizeof p);
}
