/* test_render_camera.c - the viewer's camera controls (render/camera.h): orbit keeps
 * the target and distance and never flips over the pole, pan moves eye and target
 * together, zoom scales the distance, fly moves and looks around the eye, framing puts
 * every corner of a box in view, the tour returns to where it started. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <cglm/cglm.h>
#include <math.h>
#include <string.h>

#include "camera.h"

static float dist(const float a[3], const float b[3])
{
    float d = 0;
    for (int k = 0; k < 3; k++)
        d += (a[k] - b[k]) * (a[k] - b[k]);
    return sqrtf(d);
}

static void near3(const float a[3], const float b[3], float tol)
{
    if (dist(a, b) > tol)
        fail_msg("(%g, %g, %g) != (%g, %g, %g)", (double)a[0], (double)a[1], (double)a[2],
                 (double)b[0], (double)b[1], (double)b[2]);
}

static struct lm_render_camera start(void)
{
    return (struct lm_render_camera){{10, -20, 15}, {1, 2, 3}, {0, 0, 1}, 50.0f};
}

/* Angle between the view direction and up, degrees. */
static float pitch_from_up(const struct lm_render_camera *c)
{
    vec3 f;
    glm_vec3_sub((float *)c->target, (float *)c->eye, f);
    glm_vec3_normalize(f);
    return glm_deg(acosf(glm_vec3_dot(f, (float *)c->up)));
}

static void orbit_keeps_target_and_distance_and_stops_at_the_poles(void **state)
{
    (void)state;
    struct lm_render_camera c = start();
    float d0 = dist(c.eye, c.target), z0 = c.eye[2];
    lm_render_camera_orbit(&c, 0.7f, 0.0f);
    near3(c.target, start().target, 1e-5f);
    assert_float_equal(dist(c.eye, c.target), d0, 1e-3);
    assert_float_equal(c.eye[2], z0, 1e-3); /* yaw turns about up */
    lm_render_camera_orbit(&c, 0.0f, 0.2f);
    assert_true(c.eye[2] > z0); /* +pitch raises the eye */
    for (int i = 0; i < 50; i++)
        lm_render_camera_orbit(&c, 0.0f, 0.3f);
    float p = pitch_from_up(&c);
    if (!(p >= 180.0f - LM_CAMERA_MIN_PITCH_DEG - 0.1f && p < 180.0f))
        fail_msg("looking down from above: %g degrees from up", (double)p);
    assert_float_equal(dist(c.eye, c.target), d0, 1e-2);
    for (int i = 0; i < 100; i++)
        lm_render_camera_orbit(&c, 0.1f, -0.3f);
    p = pitch_from_up(&c);
    assert_true(p > 0 && p <= LM_CAMERA_MIN_PITCH_DEG + 0.1f);
}

static void pan_zoom_move_and_look(void **state)
{
    (void)state;
    struct lm_render_camera c = start(), o = start();
    float d0 = dist(c.eye, c.target);
    lm_render_camera_pan(&c, 0.1f, -0.05f);
    float de[3], dt[3];
    for (int k = 0; k < 3; k++)
        de[k] = c.eye[k] - o.eye[k], dt[k] = c.target[k] - o.target[k];
    near3(de, dt, 1e-4f); /* both moved alike */
    assert_float_equal(dist(de, (float[3]){0, 0, 0}), d0 * sqrtf(0.01f + 0.0025f), 1e-3);
    c = start();
    lm_render_camera_zoom(&c, 0.5f);
    near3(c.target, o.target, 1e-6f);
    assert_float_equal(dist(c.eye, c.target), d0 * 0.5f, 1e-3);
    c = start();
    lm_render_camera_move(&c, 2.0f, 0.0f, 1.0f);
    vec3 f;
    glm_vec3_sub(o.target, o.eye, f);
    glm_vec3_normalize(f);
    float want[3] = {o.eye[0] + 2 * f[0], o.eye[1] + 2 * f[1], o.eye[2] + 2 * f[2] + 1};
    near3(c.eye, want, 1e-4f);
    assert_float_equal(dist(c.eye, c.target), d0, 1e-3);
    c = start();
    lm_render_camera_look(&c, 0.4f, 0.1f);
    near3(c.eye, o.eye, 1e-6f);
    assert_float_equal(dist(c.eye, c.target), d0, 1e-3);
    assert_true(dist(c.target, o.target) > 1.0f);
}

static void framing_puts_every_corner_in_view(void **state)
{
    (void)state;
    const float bmin[3] = {-128, -128, -27}, bmax[3] = {128, 128, 28};
    const float from[3] = {-0.55f, -0.8f, 0.65f}, up[3] = {0, 0, 1};
    for (int shape = 0; shape < 3; shape++) {
        float aspect = shape == 0 ? 16.0f / 9.0f : shape == 1 ? 1.0f : 0.5f;
        struct lm_render_camera c;
        lm_render_camera_frame(&c, bmin, bmax, from, up, 50.0f, aspect);
        float view[16], proj[16];
        lm_render_camera_matrices(&c, aspect, 1.0f, 2000.0f, view, proj);
        mat4 vp;
        glm_mat4_mul((vec4 *)proj, (vec4 *)view, vp);
        float widest = 0;
        for (int i = 0; i < 8; i++) {
            vec4 p = {(i & 1) ? bmax[0] : bmin[0], (i & 2) ? bmax[1] : bmin[1],
                      (i & 4) ? bmax[2] : bmin[2], 1}, q;
            glm_mat4_mulv(vp, p, q);
            float x = q[0] / q[3], y = q[1] / q[3];
            assert_true(fabsf(x) <= 1.0f && fabsf(y) <= 1.0f);
            widest = fmaxf(widest, fmaxf(fabsf(x), fabsf(y)));
        }
        assert_true(widest > 0.85f); /* and tightly: the box fills the view */
    }
}

static void the_tour_comes_back_to_its_start(void **state)
{
    (void)state;
    struct lm_render_camera home = start(), a, b, mid;
    lm_render_camera_tour(&home, 0.0f, &a);
    lm_render_camera_tour(&home, 1.0f, &b);
    lm_render_camera_tour(&home, 0.5f, &mid);
    near3(a.eye, home.eye, 1e-3f);
    near3(b.eye, home.eye, 1e-2f);
    assert_float_equal(dist(mid.eye, mid.target), 0.35f * dist(home.eye, home.target), 1e-2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(orbit_keeps_target_and_distance_and_stops_at_the_poles),
        cmocka_unit_test(pan_zoom_move_and_look),
        cmocka_unit_test(framing_puts_every_corner_in_view),
        cmocka_unit_test(the_tour_comes_back_to_its_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
