/* hud.c - text overlay (hud.h). */
#include "hud.h"

#include <errno.h>
#include <string.h>

#include <stb_easy_font.h>

#include "alloc.h"
#include "error.h"

#define VERTEX_BYTES 16 /* stb_easy_font: x, y, z (f32) and rgba8 */

int lm__hud_init(struct lm__hud *h, GLuint program, struct lm_error *err)
{
    memset(h, 0, sizeof *h);
    h->program = program;
    glGenVertexArrays(1, &h->vao);
    glGenBuffers(1, &h->vbo);
    glGenBuffers(1, &h->ebo);
    glBindVertexArray(h->vao);
    glBindBuffer(GL_ARRAY_BUFFER, h->vbo);
    glEnableVertexAttribArray(0);
    glVertexAttribPointer(0, 2, GL_FLOAT, GL_FALSE, VERTEX_BYTES, (void *)0);
    glEnableVertexAttribArray(1);
    glVertexAttribPointer(1, 4, GL_UNSIGNED_BYTE, GL_TRUE, VERTEX_BYTES, (void *)12);
    glBindBuffer(GL_ELEMENT_ARRAY_BUFFER, h->ebo);
    glBindVertexArray(0);
    glBindBuffer(GL_ARRAY_BUFFER, 0);
    return lm_gl_check("creating the HUD", err);
}

void lm__hud_free(struct lm__hud *h)
{
    if (h->program)
        glDeleteProgram(h->program);
    if (h->vao)
        glDeleteVertexArrays(1, &h->vao);
    if (h->vbo)
        glDeleteBuffers(1, &h->vbo);
    if (h->ebo)
        glDeleteBuffers(1, &h->ebo);
    lm_free(h->verts);
    memset(h, 0, sizeof *h);
}

void lm__hud_set_program(struct lm__hud *h, GLuint program)
{
    glDeleteProgram(h->program);
    h->program = program;
}

/* Quads -> triangles: 0 1 2, 0 2 3 per quad, for at least `quads` quads. */
static int ensure_indices(struct lm__hud *h, unsigned quads, struct lm_error *err)
{
    if (quads <= h->quads_cap)
        return 0;
    unsigned cap = h->quads_cap ? h->quads_cap : 256;
    while (cap < quads)
        cap *= 2;
    GLuint *idx = lm_alloc((size_t)cap * 6 * sizeof *idx);
    if (!idx)
        return lm__fail(err, -ENOMEM, "out of memory for HUD text");
    for (unsigned q = 0; q < cap; q++) {
        static const GLuint pattern[6] = {0, 1, 2, 0, 2, 3};
        for (int k = 0; k < 6; k++)
            idx[q * 6 + k] = q * 4 + pattern[k];
    }
    glBindVertexArray(h->vao);
    glBufferData(GL_ELEMENT_ARRAY_BUFFER, (GLsizeiptr)((size_t)cap * 6 * sizeof *idx), idx,
                 GL_STATIC_DRAW);
    glBindVertexArray(0);
    lm_free(idx);
    h->quads_cap = cap;
    return 0;
}

int lm__hud_draw(struct lm__hud *h, const char *text, float x, float y, float scale,
                 int width, int height, struct lm_error *err)
{
    size_t len = strlen(text);
    if (!len)
        return 0;
    size_t need = len * 300 + 1024; /* stb_easy_font: at most ~270 bytes per character */
    if (need > h->verts_cap) {
        char *v = lm_realloc(h->verts, need);
        if (!v)
            return lm__fail(err, -ENOMEM, "out of memory for HUD text");
        h->verts = v;
        h->verts_cap = need;
    }
    char *copy = lm_strdup(text); /* stb_easy_font takes a mutable string */
    if (!copy)
        return lm__fail(err, -ENOMEM, "out of memory for HUD text");
    unsigned char white[4] = {235, 240, 245, 255};
    int quads = stb_easy_font_print(0, 0, copy, white, h->verts, (int)h->verts_cap);
    lm_free(copy);
    int rc = ensure_indices(h, (unsigned)quads, err);
    if (rc || quads <= 0)
        return rc;
    glDisable(GL_DEPTH_TEST);
    glDisable(GL_CULL_FACE);
    glUseProgram(h->program);
    glBindVertexArray(h->vao);
    glBindBuffer(GL_ARRAY_BUFFER, h->vbo);
    glBufferData(GL_ARRAY_BUFFER, (GLsizeiptr)quads * 4 * VERTEX_BYTES, h->verts,
                 GL_STREAM_DRAW);
    glUniform2f(glGetUniformLocation(h->program, "u_screen"), (float)width, (float)height);
    glUniform1f(glGetUniformLocation(h->program, "u_scale"), scale);
    GLint off = glGetUniformLocation(h->program, "u_offset");
    GLint dim = glGetUniformLocation(h->program, "u_dim");
    for (int pass = 0; pass < 2; pass++) { /* shadow, then text */
        glUniform2f(off, x + (pass ? 0.0f : 1.0f), y + (pass ? 0.0f : 1.0f));
        glUniform1f(dim, pass ? 1.0f : 0.0f);
        glDrawElements(GL_TRIANGLES, quads * 6, GL_UNSIGNED_INT, (void *)0);
    }
    glBindVertexArray(0);
    glBindBuffer(GL_ARRAY_BUFFER, 0);
    return lm_gl_check("drawing the HUD", err);
}
