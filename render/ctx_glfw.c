/* ctx_glfw.c - window backend: GLFW 3.3 window with a GL 3.3 core context and input. */
#define GLFW_INCLUDE_NONE
#include <GLFW/glfw3.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "ctx_backend.h"
#include "error.h"

/* GLFW reports errors through a process-wide callback: keep the last one for lm_error.
 * One window at a time (context.h invariant 3). */
static char last_glfw_error[256];

static void on_error(int code, const char *text)
{
    snprintf(last_glfw_error, sizeof last_glfw_error, "%s (0x%x)", text, code);
}

static int map_key(int key)
{
    if ((key >= GLFW_KEY_A && key <= GLFW_KEY_Z) || (key >= GLFW_KEY_0 && key <= GLFW_KEY_9))
        return key; /* GLFW uses ASCII for these */
    switch (key) {
    case GLFW_KEY_SPACE: return ' ';
    case GLFW_KEY_EQUAL: return '=';
    case GLFW_KEY_MINUS: return '-';
    case GLFW_KEY_KP_ADD: return '+';
    case GLFW_KEY_KP_SUBTRACT: return '-';
    case GLFW_KEY_LEFT_BRACKET: return '[';
    case GLFW_KEY_RIGHT_BRACKET: return ']';
    case GLFW_KEY_ESCAPE: return LM_KEY_ESCAPE;
    case GLFW_KEY_TAB: return LM_KEY_TAB;
    case GLFW_KEY_ENTER: return LM_KEY_ENTER;
    case GLFW_KEY_BACKSPACE: return LM_KEY_BACKSPACE;
    case GLFW_KEY_LEFT: return LM_KEY_LEFT;
    case GLFW_KEY_RIGHT: return LM_KEY_RIGHT;
    case GLFW_KEY_UP: return LM_KEY_UP;
    case GLFW_KEY_DOWN: return LM_KEY_DOWN;
    case GLFW_KEY_PAGE_UP: return LM_KEY_PAGE_UP;
    case GLFW_KEY_PAGE_DOWN: return LM_KEY_PAGE_DOWN;
    case GLFW_KEY_HOME: return LM_KEY_HOME;
    case GLFW_KEY_END: return LM_KEY_END;
    case GLFW_KEY_F1: return LM_KEY_F1;
    case GLFW_KEY_F2: return LM_KEY_F2;
    case GLFW_KEY_F3: return LM_KEY_F3;
    case GLFW_KEY_F4: return LM_KEY_F4;
    case GLFW_KEY_F5: return LM_KEY_F5;
    case GLFW_KEY_LEFT_SHIFT: case GLFW_KEY_RIGHT_SHIFT: return LM_KEY_SHIFT;
    case GLFW_KEY_LEFT_CONTROL: case GLFW_KEY_RIGHT_CONTROL: return LM_KEY_CTRL;
    case GLFW_KEY_LEFT_ALT: case GLFW_KEY_RIGHT_ALT: return LM_KEY_ALT;
    default: return -1;
    }
}

struct glfw_state {
    GLFWwindow *win;
    double last_x, last_y;
    bool have_cursor;
};

static void on_key(GLFWwindow *w, int key, int scancode, int action, int mods)
{
    (void)scancode;
    (void)mods;
    lm_render_ctx *c = glfwGetWindowUserPointer(w);
    int k = map_key(key);
    if (k < 0)
        return;
    c->in.down[k] = action != GLFW_RELEASE;
    if (action != GLFW_RELEASE && c->in.n_pressed < LM_RENDER_MAX_PRESSES)
        c->in.pressed[c->in.n_pressed++] = k;
}

static void on_cursor(GLFWwindow *w, double x, double y)
{
    lm_render_ctx *c = glfwGetWindowUserPointer(w);
    struct glfw_state *s = c->impl;
    if (s->have_cursor) {
        c->in.dx += x - s->last_x;
        c->in.dy += y - s->last_y;
    }
    s->last_x = x;
    s->last_y = y;
    s->have_cursor = true;
}

static void on_button(GLFWwindow *w, int button, int action, int mods)
{
    (void)mods;
    lm_render_ctx *c = glfwGetWindowUserPointer(w);
    static const int order[3] = {GLFW_MOUSE_BUTTON_LEFT, GLFW_MOUSE_BUTTON_RIGHT,
                                 GLFW_MOUSE_BUTTON_MIDDLE};
    for (int i = 0; i < 3; i++)
        if (button == order[i])
            c->in.button[i] = action == GLFW_PRESS;
}

static void on_scroll(GLFWwindow *w, double xoff, double yoff)
{
    (void)xoff;
    lm_render_ctx *c = glfwGetWindowUserPointer(w);
    c->in.scroll += yoff;
}

static void on_refresh(GLFWwindow *w)
{
    lm_render_ctx *c = glfwGetWindowUserPointer(w);
    c->in.refresh = true;
}

static void glfw_close(lm_render_ctx *c)
{
    struct glfw_state *s = c->impl;
    if (!s)
        return;
    if (s->win)
        glfwDestroyWindow(s->win);
    glfwTerminate();
    lm_free(s);
    c->impl = NULL;
}

static int glfw_open(lm_render_ctx *c, const struct lm_render_ctx_opts *o, struct lm_error *err)
{
    last_glfw_error[0] = 0;
    glfwSetErrorCallback(on_error);
    if (!glfwInit())
        return lm__fail(err, LM_ENODEVICE, "window: cannot start GLFW: %s",
                        last_glfw_error[0] ? last_glfw_error : "no display?");
    struct glfw_state *s = lm_calloc(1, sizeof *s);
    if (!s) {
        glfwTerminate();
        return lm__fail(err, -ENOMEM, "out of memory opening a window");
    }
    c->impl = s;
    glfwWindowHint(GLFW_CONTEXT_VERSION_MAJOR, 3);
    glfwWindowHint(GLFW_CONTEXT_VERSION_MINOR, 3);
    glfwWindowHint(GLFW_OPENGL_PROFILE, GLFW_OPENGL_CORE_PROFILE);
    glfwWindowHint(GLFW_OPENGL_FORWARD_COMPAT, GLFW_TRUE);
    glfwWindowHint(GLFW_DEPTH_BITS, 24);
    s->win = glfwCreateWindow(o->width, o->height, o->title ? o->title : "lumadb", NULL, NULL);
    if (!s->win) {
        int rc = lm__fail(err, LM_ENODEVICE, "window: cannot create a GL 3.3 core window: %s",
                          last_glfw_error);
        glfw_close(c);
        return rc;
    }
    glfwSetWindowUserPointer(s->win, c);
    glfwMakeContextCurrent(s->win);
    if (!gladLoadGL((GLADloadfunc)glfwGetProcAddress)) {
        glfw_close(c);
        return lm__fail(err, LM_ENODEVICE, "window: loading GL 3.3 core entry points failed");
    }
    glfwSwapInterval(o->vsync ? 1 : 0);
    glfwSetKeyCallback(s->win, on_key);
    glfwSetCursorPosCallback(s->win, on_cursor);
    glfwSetMouseButtonCallback(s->win, on_button);
    glfwSetScrollCallback(s->win, on_scroll);
    glfwSetWindowRefreshCallback(s->win, on_refresh);
    glfwGetFramebufferSize(s->win, &c->width, &c->height);
    c->fbo = 0;
    return 0;
}

static void glfw_update_size(lm_render_ctx *c)
{
    struct glfw_state *s = c->impl;
    glfwGetFramebufferSize(s->win, &c->width, &c->height);
}

static int glfw_present(lm_render_ctx *c, struct lm_error *err)
{
    struct glfw_state *s = c->impl;
    glfwSwapBuffers(s->win);
    return lm_gl_check("presenting a frame", err);
}

static void glfw_poll(lm_render_ctx *c, double wait_s)
{
    struct glfw_state *s = c->impl;
    if (wait_s > 0)
        glfwWaitEventsTimeout(wait_s);
    else
        glfwPollEvents();
    c->in.close = glfwWindowShouldClose(s->win);
}

const struct lm__ctx_backend lm__ctx_glfw = {
    .name = "glfw",
    .open = glfw_open,
    .close = glfw_close,
    .update_size = glfw_update_size,
    .present = glfw_present,
    .poll = glfw_poll,
};
