/* known_scene.h - the render tests' known voxels and where a camera puts them on
 * screen, computed with cglm independently of the renderer. Header-only.
 * Called by: tests/test_render.c, tests/test_view_remote.c. */
#ifndef LM_TEST_KNOWN_SCENE_H
#define LM_TEST_KNOWN_SCENE_H

#include <cglm/cglm.h>
#include <math.h>

#include "render.h"

struct known {
    int v[3];        /* level-0 voxel, voxel size 1 */
    float rgb[3];
    const char *name;
};

static const struct known scene[] = {
    {{0, 0, 0}, {1, 0, 0}, "red voxel"},
    {{6, 0, 0}, {0, 1, 0}, "green voxel"},
    {{0, 6, 0}, {0, 0, 1}, "blue voxel"},
    {{0, 0, 6}, {1, 1, 0}, "yellow voxel"},
    {{-6, -3, 2}, {0.8f, 0.4f, 1.0f}, "violet voxel (another chunk, negative coordinates)"},
};
#define N_SCENE (sizeof scene / sizeof *scene)

/* Window position (GL convention: origin bottom left) of world point p in a w x h
 * frame; *visible is false behind the eye. */
static inline void known_scene_project(const struct lm_render_camera *c, int w, int h,
                                       const float p[3], int *px, int *py, bool *visible)
{
    mat4 view, proj, vp;
    glm_lookat((float *)c->eye, (float *)c->target, (float *)c->up, view);
    glm_perspective(glm_rad(c->fov_y_deg), (float)w / (float)h, 0.1f, 1000.0f, proj);
    glm_mat4_mul(proj, view, vp);
    vec4 q = {p[0], p[1], p[2], 1.0f}, clip;
    glm_mat4_mulv(vp, q, clip);
    *visible = clip[3] > 0;
    *px = (int)floorf((clip[0] / clip[3] * 0.5f + 0.5f) * (float)w);
    *py = (int)floorf((clip[1] / clip[3] * 0.5f + 0.5f) * (float)h);
}

#endif
