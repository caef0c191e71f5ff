/* context.c - context handle and dispatch to the window / offscreen backends. */
#include "context.h"

#include <errno.h>
#include <string.h>

#include <stb_image_write.h> /* the implementation is in Debian's libstb */

#include "alloc.h"
#include "ctx_backend.h"
#include "error.h"

int lm_render_ctx_open(const struct lm_render_ctx_opts *o, lm_render_ctx **out,
                       struct lm_error *err)
{
    if (!o || !out || o->width < 1 || o->height < 1 || o->width > 16384 || o->height > 16384)
        return lm__fail(err, LM_EBADARG, "context size must be 1..16384 pixels per side");
    const struct lm__ctx_backend *be;
    switch (o->kind) {
    case LM_RENDER_CTX_WINDOW: be = &lm__ctx_glfw; break;
    case LM_RENDER_CTX_OFFSCREEN: be = &lm__ctx_egl; break;
    default: return lm__fail(err, LM_EBADARG, "unknown context kind %d", (int)o->kind);
    }
    lm_render_ctx *c = lm_calloc(1, sizeof *c);
    if (!c)
        return lm__fail(err, -ENOMEM, "out of memory opening a GL context");
    c->be = be;
    int rc = be->open(c, o, err);
    if (rc) {
        lm_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void lm_render_ctx_close(lm_render_ctx *c)
{
    if (!c)
        return;
    c->be->close(c);
    lm_free(c);
}

void lm_render_ctx_begin(lm_render_ctx *c, int *width, int *height)
{
    c->be->update_size(c);
    glBindFramebuffer(GL_FRAMEBUFFER, c->fbo);
    glViewport(0, 0, c->width, c->height);
    *width = c->width;
    *height = c->height;
}

int lm_render_ctx_present(lm_render_ctx *c, struct lm_error *err)
{
    return c->be->present(c, err);
}

void lm_render_ctx_poll(lm_render_ctx *c, struct lm_render_input *in, double wait_s)
{
    c->in.n_pressed = 0;
    c->in.dx = c->in.dy = c->in.scroll = 0;
    c->in.refresh = false;
    c->be->poll(c, wait_s);
    *in = c->in;
}

int lm_render_ctx_read_rgb(lm_render_ctx *c, unsigned char *rgb, struct lm_error *err)
{
    glBindFramebuffer(GL_READ_FRAMEBUFFER, c->fbo);
    return lm_gl_read_rgb(c->width, c->height, rgb, err);
}

int lm_render_ctx_write_png(lm_render_ctx *c, const char *path, struct lm_error *err)
{
    size_t stride = (size_t)c->width * 3;
    unsigned char *rgb = lm_alloc(stride * (size_t)c->height);
    if (!rgb)
        return lm__fail(err, -ENOMEM, "out of memory reading %dx%d pixels", c->width,
                        c->height);
    int rc = lm_render_ctx_read_rgb(c, rgb, err);
    if (!rc) {
        stbi_flip_vertically_on_write(1); /* GL rows run bottom-up, PNG rows top-down */
        if (!stbi_write_png(path, c->width, c->height, 3, rgb, (int)stride))
            rc = lm__fail(err, -EIO, "cannot write PNG '%s'", path);
        stbi_flip_vertically_on_write(0);
    }
    lm_free(rgb);
    return rc;
}

const char *lm_render_ctx_renderer(lm_render_ctx *c)
{
    (void)c;
    const GLubyte *s = glGetString(GL_RENDERER);
    return s ? (const char *)s : "unknown";
}
