/* shader.h - the shader sources embedded at build time.
 * Owns: nothing; the table is generated into the build directory by
 *   render/embed_shaders.cmake from the .vert and .frag files of shaders/.
 * Invariants: (1) sorted by name; (2) each text is NUL-terminated, `size` excludes it.
 * Threading: read-only data. Called by: gl.c (lm_gl_shader_source). */
#ifndef LM_RENDER_SHADER_H
#define LM_RENDER_SHADER_H

#include <stddef.h>

struct lm__shader_file {
    const char *name;
    const char *text;
    size_t size;
};

extern const struct lm__shader_file lm__shader_files[];
extern const size_t lm__n_shader_files;

#endif
