/* gl.h - the GL layer under the viewer: GL 3.3 core through the glad loader generated at
 * build time, GL errors translated into LumaDB codes, shader programs built from the
 * named sources of shaders/ (embedded, or read from $LUMADB_SHADER_DIR).
 *
 * Owns: nothing; GL objects are returned to the caller as plain ids.
 * Invariants: (1) every function needs a current GL 3.3 core context whose entry points
 *   were loaded (the context backends of context.c do both);
 *   (2) compile errors name the shader file and line as "PATH:LINE:COL: message", with
 *   err->line/column set; link errors name both files.
 * Threading: the thread that holds the context. Called by: render.c, tiles.c, hud.c,
 *   context backends. */
#ifndef LM_RENDER_GL_H
#define LM_RENDER_GL_H

#include <glad/gl.h>
#include <stddef.h>

#include "lumadb.h"

/* Drains glGetError. 0 when there was none, else -ENOMEM for GL_OUT_OF_MEMORY and
 * LM_EINTERNAL for the others; err names `what` and the GL error. */
int lm_gl_check(const char *what, struct lm_error *err);

/* Name of a GL error code ("GL_INVALID_ENUM", ...). Never NULL. */
const char *lm_gl_error_name(GLenum e);

/* Source of shader file `name` (e.g. "voxel.vert"): $LUMADB_SHADER_DIR/name when that
 * variable is set and not empty, else the copy embedded at build time. *text is a
 * NUL-terminated copy owned by the caller (lm_free); `path` receives the name to use in
 * messages (the file read, or "shaders/NAME"). Errors: LM_ENOTFOUND (no such embedded
 * shader), -errno (reading the file). */
int lm_gl_shader_source(const char *name, char **text, char *path, size_t path_cap,
                        struct lm_error *err);

/* Compiles and links shaders/vert + shaders/frag into a program; *out is set on
 * success only (release with glDeleteProgram). Errors: LM_ESYNTAX for compile and link
 * errors (invariant 2), errors of lm_gl_shader_source. */
int lm_gl_program(const char *vert, const char *frag, GLuint *out, struct lm_error *err);

/* Reads the RGB pixels of the bound framebuffer into rgb (w*h*3 bytes), bottom row
 * first (GL window coordinates). */
int lm_gl_read_rgb(int w, int h, unsigned char *rgb, struct lm_error *err);

#endif
