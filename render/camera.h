/* camera.h - the viewer's perspective camera and its controls: orbit, pan, zoom about a
 * target; fly (move eye and target together, look around); frame a bounding box.
 *
 * Owns: nothing; a camera is plain data.
 * Invariants: (1) eye != target and the view direction is never parallel to `up`:
 *   every control keeps the angle between them in [LM_CAMERA_MIN_PITCH_DEG,
 *   180 - LM_CAMERA_MIN_PITCH_DEG]; (2) `up` is unit length and is not changed by the
 *   controls (z-up for the demo terrain); (3) matrices are column-major (cglm / GL).
 * Threading: pure functions. Called by: render.c, tools/cmd_view.c, tests. */
#ifndef LM_RENDER_CAMERA_H
#define LM_RENDER_CAMERA_H

#define LM_CAMERA_MIN_PITCH_DEG 2.0f

struct lm_render_camera {
    float eye[3], target[3], up[3];
    float fov_y_deg; /* vertical field of view, (0, 180) */
};

/* A camera looking at the centre of the box [bmin, bmax] from direction `from`
 * (eye - target, need not be unit), just far enough for every corner of the box to be
 * in view at the given aspect (width / height). up must be unit. */
void lm_render_camera_frame(struct lm_render_camera *c, const float bmin[3],
                            const float bmax[3], const float from[3], const float up[3],
                            float fov_y_deg, float aspect);
/* Turns the eye about the target: yaw about `up`, pitch about the camera's right axis
 * (radians; positive pitch raises the eye). */
void lm_render_camera_orbit(struct lm_render_camera *c, float yaw, float pitch);
/* Moves eye and target in the view plane by (dx, dy) times the target distance. */
void lm_render_camera_pan(struct lm_render_camera *c, float dx, float dy);
/* Multiplies the eye-target distance by factor (> 0; < 1 moves closer); a factor that
 * would bring the eye (almost) onto the target is ignored. */
void lm_render_camera_zoom(struct lm_render_camera *c, float factor);
/* Fly: moves eye and target along the view direction, the right axis and `up`
 * (world units). */
void lm_render_camera_move(struct lm_render_camera *c, float forward, float right, float up);
/* Fly: turns the view direction about the eye (radians), keeping the target distance. */
void lm_render_camera_look(struct lm_render_camera *c, float yaw, float pitch);
/* The built-in tour (view --frames, benchmarks) at u in [0, 1]: one turn about the
 * target of `home`, closing in to a third of its distance halfway and back out, so that
 * every LOD level is visited. */
void lm_render_camera_tour(const struct lm_render_camera *home, float u,
                           struct lm_render_camera *out);
/* View and projection matrices (column-major 4x4). */
void lm_render_camera_matrices(const struct lm_render_camera *c, float aspect, float near_d,
                               float far_d, float view[16], float proj[16]);

#endif
