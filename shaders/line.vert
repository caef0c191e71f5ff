#version 330 core
// line.vert - world-space lines: tile bounding boxes, axes, field bounds.

layout(location = 0) in vec3 a_pos;
layout(location = 1) in vec3 a_color;

uniform mat4 u_view_proj;

out vec3 v_color;

void main()
{
    gl_Position = u_view_proj * vec4(a_pos, 1.0);
    v_color = a_color;
}
