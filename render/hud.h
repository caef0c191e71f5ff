/* hud.h - text overlay drawn with stb_easy_font (libstb-dev) glyph quads.
 * Owns: the HUD program, its vertex array, vertex and index buffers, a CPU vertex buffer.
 * Invariants: (1) text is drawn in pixels from the top-left corner, scaled by `scale`,
 *   with a one-pixel drop shadow; (2) drawing leaves depth testing disabled.
 * Threading: the GL thread. Called by: render.c. */
#ifndef LM_RENDER_HUD_H
#define LM_RENDER_HUD_H

#include "gl.h"

struct lm__hud {
    GLuint program, vao, vbo, ebo;
    char *verts;             /* stb_easy_font output */
    size_t verts_cap;
    unsigned quads_cap;      /* quads the index buffer covers */
};

/* Builds the buffers around `program` (hud.vert + hud.frag), which the HUD then owns,
 * also on failure. Errors: GL errors. */
int lm__hud_init(struct lm__hud *h, GLuint program, struct lm_error *err);
void lm__hud_free(struct lm__hud *h);
/* Swaps in a new program (hot reload); the old one is deleted. */
void lm__hud_set_program(struct lm__hud *h, GLuint program);
/* Draws text (lines separated by '\n') at pixel (x, y) on a width x height target. */
int lm__hud_draw(struct lm__hud *h, const char *text, float x, float y, float scale,
                 int width, int height, struct lm_error *err);

#endif
