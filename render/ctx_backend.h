/* ctx_backend.h - the table each context backend (ctx_glfw.c, ctx_egl.c) implements.
 * Owns: nothing. Invariants: open leaves the context current with GL loaded and fills
 *   width/height/fbo; fbo is 0 for a window. Threading: as context.h.
 * Called by: context.c only. */
#ifndef LM_RENDER_CTX_BACKEND_H
#define LM_RENDER_CTX_BACKEND_H

#include "context.h"
#include "gl.h"

struct lm_render_ctx {
    const struct lm__ctx_backend *be;
    void *impl;             /* backend state */
    int width, height;      /* framebuffer size */
    GLuint fbo;             /* framebuffer drawn into (0 = the window's) */
    struct lm_render_input in; /* filled by the backend's callbacks between polls */
};

struct lm__ctx_backend {
    const char *name;
    int (*open)(lm_render_ctx *c, const struct lm_render_ctx_opts *o, struct lm_error *err);
    void (*close)(lm_render_ctx *c);
    void (*update_size)(lm_render_ctx *c);   /* refresh width/height (window resizes) */
    int (*present)(lm_render_ctx *c, struct lm_error *err);
    void (*poll)(lm_render_ctx *c, double wait_s); /* pump events into c->in */
};

extern const struct lm__ctx_backend lm__ctx_glfw;
extern const struct lm__ctx_backend lm__ctx_egl;

#endif
