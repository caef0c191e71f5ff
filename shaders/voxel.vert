#version 330 core
// voxel.vert - one voxel as a screen-aligned splat (a point) or an instanced cube.
// Inputs follow render/tiles.h invariant 4 (struct lm__instance).
// Colour modes (u_mode): 0 radiance toward the eye from the voxel's L1 SH,
// 1 stored mean colour, 2 mean intensity on a ramp, 3 mean time on a ramp.

layout(location = 0) in vec3 a_corner;   // cube corner in [-0.5, 0.5]^3 (cubes only)
layout(location = 1) in vec3 a_center;   // cell centre, world units
layout(location = 2) in vec4 a_color;    // mean colour
layout(location = 3) in vec2 a_attr;     // mean intensity, mean time (s since t_base)
layout(location = 4) in vec4 a_sh_r;     // SH sums / count, (Y00, Y1-1, Y10, Y11)
layout(location = 5) in vec4 a_sh_g;
layout(location = 6) in vec4 a_sh_b;

uniform mat4 u_view_proj;
uniform vec3 u_eye;
uniform float u_cell;         // cell edge in world units
uniform float u_point_scale;  // proj[1][1] * viewport height / 2
uniform int u_mode;
uniform int u_cubes;
uniform float u_exposure;
uniform vec2 u_range;         // attribute range mapped onto the ramp

flat out vec3 v_color;

const float SH_C0 = 0.28209479177387814;  // 1 / (2 sqrt(pi))
const float SH_C1 = 0.4886025119029199;   // sqrt(3) / (2 sqrt(pi))
const float FOUR_PI = 12.566370614359172;

// L(d) = 4 pi (s0 Y0(d) + 1/3 sum_k s_k Y_k(d)) with s the per-sample mean SH sums
// (engine/sh.h invariant 2): mean(f) + mean(f w).d, never negative.
vec3 sh_radiance(vec3 d)
{
    vec4 y = vec4(SH_C0, SH_C1 * d.y, SH_C1 * d.z, SH_C1 * d.x);
    vec4 w = FOUR_PI * y * vec4(1.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0);
    return max(vec3(dot(a_sh_r, w), dot(a_sh_g, w), dot(a_sh_b, w)), 0.0);
}

// Five-stop ramp: deep blue, azure, green, yellow, red.
vec3 ramp(float t)
{
    const vec3 c0 = vec3(0.10, 0.10, 0.45);
    const vec3 c1 = vec3(0.00, 0.55, 0.90);
    const vec3 c2 = vec3(0.25, 0.80, 0.30);
    const vec3 c3 = vec3(0.95, 0.85, 0.10);
    const vec3 c4 = vec3(0.85, 0.15, 0.10);
    float x = clamp(t, 0.0, 1.0) * 4.0;
    if (x < 1.0) return mix(c0, c1, x);
    if (x < 2.0) return mix(c1, c2, x - 1.0);
    if (x < 3.0) return mix(c2, c3, x - 2.0);
    return mix(c3, c4, x - 3.0);
}

void main()
{
    vec3 p = a_center + (u_cubes != 0 ? a_corner * u_cell : vec3(0.0));
    gl_Position = u_view_proj * vec4(p, 1.0);
    if (u_cubes == 0)
        gl_PointSize = max(1.0, u_cell * u_point_scale / max(gl_Position.w, 1e-6));

    vec3 c;
    if (u_mode == 0) {
        c = sh_radiance(normalize(u_eye - a_center)) * u_exposure;
    } else if (u_mode == 1) {
        c = a_color.rgb;
    } else {
        float v = u_mode == 2 ? a_attr.x : a_attr.y;
        float span = u_range.y - u_range.x;
        c = ramp(span > 0.0 ? (v - u_range.x) / span : 0.5);
    }
    v_color = clamp(c, 0.0, 1.0);
}
