#version 330 core
// hud.vert - text quads from stb_easy_font in pixels (origin top left, y down).

layout(location = 0) in vec2 a_pos;
layout(location = 1) in vec4 a_color;

uniform vec2 u_screen;   // framebuffer size in pixels
uniform vec2 u_offset;   // pixels added to every vertex (drop shadow)
uniform float u_scale;   // glyph scale
uniform float u_dim;     // colour multiplier (0 for the shadow)

out vec4 v_color;

void main()
{
    vec2 p = a_pos * u_scale + u_offset;
    gl_Position = vec4(p.x / u_screen.x * 2.0 - 1.0, 1.0 - p.y / u_screen.y * 2.0, 0.0, 1.0);
    v_color = vec4(a_color.rgb * u_dim, a_color.a);
}
