/* ctx_egl.c - offscreen backend: EGL surfaceless on Mesa, drawing into an FBO.
 * Steps (docs/VIEWER.md): surfaceless platform display, a config with the pbuffer bit
 * (a window config yields zero configs), the desktop GL API, a 3.3 core context made
 * current with no surface, GL loaded through eglGetProcAddress, then our own FBO. */
#include <EGL/egl.h>
#include <EGL/eglext.h>
#include <errno.h>

#include "alloc.h"
#include "ctx_backend.h"
#include "error.h"

struct egl_state {
    EGLDisplay dpy;
    EGLContext ctx;
    GLuint color_rb, depth_rb;
};

static const char *egl_error_name(EGLint e)
{
    switch (e) {
    case EGL_SUCCESS: return "EGL_SUCCESS";
    case EGL_NOT_INITIALIZED: return "EGL_NOT_INITIALIZED";
    case EGL_BAD_ACCESS: return "EGL_BAD_ACCESS";
    case EGL_BAD_ALLOC: return "EGL_BAD_ALLOC";
    case EGL_BAD_ATTRIBUTE: return "EGL_BAD_ATTRIBUTE";
    case EGL_BAD_CONFIG: return "EGL_BAD_CONFIG";
    case EGL_BAD_CONTEXT: return "EGL_BAD_CONTEXT";
    case EGL_BAD_DISPLAY: return "EGL_BAD_DISPLAY";
    case EGL_BAD_MATCH: return "EGL_BAD_MATCH";
    case EGL_BAD_PARAMETER: return "EGL_BAD_PARAMETER";
    default: return "EGL error";
    }
}

static int egl_fail(struct lm_error *err, const char *step)
{
    EGLint e = eglGetError();
    return lm__fail(err, e == EGL_BAD_ALLOC ? -ENOMEM : LM_ENODEVICE,
                    "offscreen GL: %s failed: %s (0x%04x)", step, egl_error_name(e), e);
}

static void egl_close(lm_render_ctx *c)
{
    struct egl_state *s = c->impl;
    if (!s)
        return;
    if (s->ctx != EGL_NO_CONTEXT) {
        if (c->fbo)
            glDeleteFramebuffers(1, &c->fbo);
        if (s->color_rb)
            glDeleteRenderbuffers(1, &s->color_rb);
        if (s->depth_rb)
            glDeleteRenderbuffers(1, &s->depth_rb);
        eglMakeCurrent(s->dpy, EGL_NO_SURFACE, EGL_NO_SURFACE, EGL_NO_CONTEXT);
        eglDestroyContext(s->dpy, s->ctx);
    }
    /* The display is not terminated: it is process-wide, the next open reuses it, and
     * terminating makes Mesa unload its driver while still holding a few allocations
     * that leak checkers can then no longer attribute. */
    eglReleaseThread();
    lm_free(s);
    c->impl = NULL;
}

static int make_fbo(lm_render_ctx *c, struct egl_state *s, struct lm_error *err)
{
    glGenRenderbuffers(1, &s->color_rb);
    glBindRenderbuffer(GL_RENDERBUFFER, s->color_rb);
    glRenderbufferStorage(GL_RENDERBUFFER, GL_RGBA8, c->width, c->height);
    glGenRenderbuffers(1, &s->depth_rb);
    glBindRenderbuffer(GL_RENDERBUFFER, s->depth_rb);
    glRenderbufferStorage(GL_RENDERBUFFER, GL_DEPTH_COMPONENT24, c->width, c->height);
    glGenFramebuffers(1, &c->fbo);
    glBindFramebuffer(GL_FRAMEBUFFER, c->fbo);
    glFramebufferRenderbuffer(GL_FRAMEBUFFER, GL_COLOR_ATTACHMENT0, GL_RENDERBUFFER,
                              s->color_rb);
    glFramebufferRenderbuffer(GL_FRAMEBUFFER, GL_DEPTH_ATTACHMENT, GL_RENDERBUFFER,
                              s->depth_rb);
    int rc = lm_gl_check("creating the offscreen framebuffer", err);
    if (rc)
        return rc;
    GLenum st = glCheckFramebufferStatus(GL_FRAMEBUFFER);
    if (st != GL_FRAMEBUFFER_COMPLETE)
        return lm__fail(err, LM_ENODEVICE, "offscreen GL: framebuffer incomplete (0x%04x)", st);
    return 0;
}

static int egl_open(lm_render_ctx *c, const struct lm_render_ctx_opts *o, struct lm_error *err)
{
    struct egl_state *s = lm_calloc(1, sizeof *s);
    if (!s)
        return lm__fail(err, -ENOMEM, "out of memory opening EGL");
    s->dpy = EGL_NO_DISPLAY;
    s->ctx = EGL_NO_CONTEXT;
    c->impl = s;
    c->width = o->width;
    c->height = o->height;
    int rc;
    PFNEGLGETPLATFORMDISPLAYEXTPROC get_display =
        (PFNEGLGETPLATFORMDISPLAYEXTPROC)eglGetProcAddress("eglGetPlatformDisplayEXT");
    if (!get_display) {
        rc = lm__fail(err, LM_ENODEVICE, "offscreen GL: EGL lacks eglGetPlatformDisplayEXT");
        goto fail;
    }
    s->dpy = get_display(EGL_PLATFORM_SURFACELESS_MESA, EGL_DEFAULT_DISPLAY, NULL);
    EGLint major, minor, n = 0;
    if (s->dpy == EGL_NO_DISPLAY || !eglInitialize(s->dpy, &major, &minor)) {
        rc = egl_fail(err, "eglInitialize (surfaceless platform)");
        s->dpy = EGL_NO_DISPLAY;
        goto fail;
    }
    static const EGLint cfg_attr[] = {EGL_SURFACE_TYPE, EGL_PBUFFER_BIT,
                                      EGL_RENDERABLE_TYPE, EGL_OPENGL_BIT,
                                      EGL_RED_SIZE, 8, EGL_GREEN_SIZE, 8, EGL_BLUE_SIZE, 8,
                                      EGL_DEPTH_SIZE, 24, EGL_NONE};
    EGLConfig cfg;
    if (!eglChooseConfig(s->dpy, cfg_attr, &cfg, 1, &n) || n < 1) {
        rc = n < 1 ? lm__fail(err, LM_ENODEVICE, "offscreen GL: no EGL config for desktop GL")
                   : egl_fail(err, "eglChooseConfig");
        goto fail;
    }
    if (!eglBindAPI(EGL_OPENGL_API)) {
        rc = egl_fail(err, "eglBindAPI(EGL_OPENGL_API)");
        goto fail;
    }
    static const EGLint ctx_attr[] = {EGL_CONTEXT_MAJOR_VERSION, 3, EGL_CONTEXT_MINOR_VERSION, 3,
                                      EGL_CONTEXT_OPENGL_PROFILE_MASK,
                                      EGL_CONTEXT_OPENGL_CORE_PROFILE_BIT, EGL_NONE};
    s->ctx = eglCreateContext(s->dpy, cfg, EGL_NO_CONTEXT, ctx_attr);
    if (s->ctx == EGL_NO_CONTEXT) {
        rc = egl_fail(err, "eglCreateContext (GL 3.3 core)");
        goto fail;
    }
    if (!eglMakeCurrent(s->dpy, EGL_NO_SURFACE, EGL_NO_SURFACE, s->ctx)) {
        rc = egl_fail(err, "eglMakeCurrent (no surface)");
        goto fail;
    }
    if (!gladLoadGL((GLADloadfunc)eglGetProcAddress)) {
        rc = lm__fail(err, LM_ENODEVICE, "offscreen GL: loading GL 3.3 core entry points failed");
        goto fail;
    }
    if ((rc = make_fbo(c, s, err)))
        goto fail;
    return 0;
fail:
    egl_close(c);
    return rc;
}

static void egl_update_size(lm_render_ctx *c)
{
    (void)c; /* fixed size */
}

static int egl_present(lm_render_ctx *c, struct lm_error *err)
{
    (void)c;
    glFinish();
    return lm_gl_check("finishing an offscreen frame", err);
}

static void egl_poll(lm_render_ctx *c, double wait_s)
{
    (void)c, (void)wait_s; /* no input offscreen */
}

const struct lm__ctx_backend lm__ctx_egl = {
    .name = "egl-surfaceless",
    .open = egl_open,
    .close = egl_close,
    .update_size = egl_update_size,
    .present = egl_present,
    .poll = egl_poll,
};
