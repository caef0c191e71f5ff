/* context.h - where the viewer draws: a GLFW window (interactive) or an EGL surfaceless
 * context rendering into its own framebuffer object (snapshots, tests, benchmarks).
 * The renderer (render.h) draws into either through the same code.
 *
 * Owns: the window or EGL display/context, and for offscreen contexts the FBO with its
 *   colour and depth renderbuffers.
 * Invariants: (1) after a successful open the context is current on the calling thread
 *   and GL 3.3 core entry points are loaded (glad);
 *   (2) lm_render_ctx_begin binds the framebuffer to draw into (0 for a window, the FBO
 *   offscreen) and sets the viewport to its size;
 *   (3) one context is open at a time per process (GL entry points are process-wide).
 * Threading: all calls on the thread that opened it.
 * Called by: tools/cmd_view.c (view, snapshot), tests, bench. */
#ifndef LM_RENDER_CONTEXT_H
#define LM_RENDER_CONTEXT_H

#include <stdbool.h>
#include <stdint.h>

#include "lumadb.h"

typedef struct lm_render_ctx lm_render_ctx;

enum lm_render_ctx_kind {
    LM_RENDER_CTX_WINDOW = 0,    /* GLFW; needs a display (X11, or Xvfb) */
    LM_RENDER_CTX_OFFSCREEN = 1, /* EGL_PLATFORM_SURFACELESS_MESA; no display needed */
};

struct lm_render_ctx_opts {
    enum lm_render_ctx_kind kind;
    int width, height;  /* framebuffer size in pixels, 1..16384 */
    const char *title;  /* window title (NULL = "lumadb") */
    bool vsync;         /* window: wait for vertical blank on present */
};

/* Keys outside printable ASCII. Letters are reported upper case ('A'), digits as '0'..'9'. */
enum {
    LM_KEY_ESCAPE = 256, LM_KEY_TAB, LM_KEY_ENTER, LM_KEY_BACKSPACE,
    LM_KEY_LEFT, LM_KEY_RIGHT, LM_KEY_UP, LM_KEY_DOWN,
    LM_KEY_PAGE_UP, LM_KEY_PAGE_DOWN, LM_KEY_HOME, LM_KEY_END,
    LM_KEY_F1, LM_KEY_F2, LM_KEY_F3, LM_KEY_F4, LM_KEY_F5,
    LM_KEY_SHIFT, LM_KEY_CTRL, LM_KEY_ALT,
    LM_KEY_LIMIT
};

#define LM_RENDER_MAX_PRESSES 32

/* Input gathered by one lm_render_ctx_poll. */
struct lm_render_input {
    int pressed[LM_RENDER_MAX_PRESSES]; /* keys pressed (or repeated) since the last poll */
    int n_pressed;
    bool down[LM_KEY_LIMIT];            /* keys held now */
    double dx, dy;                      /* cursor motion in pixels since the last poll */
    double scroll;                      /* wheel steps since the last poll (up > 0) */
    bool button[3];                     /* left, right, middle held */
    bool close;                         /* the window was asked to close */
    bool refresh;                       /* the window's contents need drawing again */
};

/* Opens a context and makes it current. Errors: LM_EBADARG (sizes), LM_ENODEVICE (no
 * display, no EGL device, no GL 3.3 core: err says which step failed), -ENOMEM. */
int lm_render_ctx_open(const struct lm_render_ctx_opts *o, lm_render_ctx **out,
                       struct lm_error *err);
/* Destroys the context (and window). NULL is a no-op. */
void lm_render_ctx_close(lm_render_ctx *c);

/* Binds the framebuffer to draw into and reports its size (invariant 2). */
void lm_render_ctx_begin(lm_render_ctx *c, int *width, int *height);
/* Shows the frame (window: swap buffers; offscreen: waits for GL to finish). */
int lm_render_ctx_present(lm_render_ctx *c, struct lm_error *err);
/* Processes window events into *in (offscreen: clears *in). With wait_s > 0 a window
 * first sleeps until an event arrives or wait_s seconds pass (an idle viewer). */
void lm_render_ctx_poll(lm_render_ctx *c, struct lm_render_input *in, double wait_s);
/* Reads the framebuffer drawn by the last frame: w*h*3 bytes RGB, bottom row first. */
int lm_render_ctx_read_rgb(lm_render_ctx *c, unsigned char *rgb, struct lm_error *err);
/* Writes the framebuffer to a PNG file (top row first). Errors: -ENOMEM, -EIO. */
int lm_render_ctx_write_png(lm_render_ctx *c, const char *path, struct lm_error *err);
/* Renderer name of the context ("llvmpipe (LLVM 15.0.6, 256 bits)"). */
const char *lm_render_ctx_renderer(lm_render_ctx *c);

#endif
