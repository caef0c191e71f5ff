/* gl.c - GL error translation, shader sources and programs (gl.h). */
#include "gl.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "shader.h"

/* ---------------------------------------------------------------- errors */

const char *lm_gl_error_name(GLenum e)
{
    switch (e) {
    case GL_NO_ERROR: return "GL_NO_ERROR";
    case GL_INVALID_ENUM: return "GL_INVALID_ENUM";
    case GL_INVALID_VALUE: return "GL_INVALID_VALUE";
    case GL_INVALID_OPERATION: return "GL_INVALID_OPERATION";
    case GL_INVALID_FRAMEBUFFER_OPERATION: return "GL_INVALID_FRAMEBUFFER_OPERATION";
    case GL_OUT_OF_MEMORY: return "GL_OUT_OF_MEMORY";
    default: return "unknown GL error";
    }
}

int lm_gl_check(const char *what, struct lm_error *err)
{
    GLenum first = glGetError(), e = first;
    if (first == GL_NO_ERROR)
        return 0;
    int guard = 0;
    while (e != GL_NO_ERROR && guard++ < 32) /* GL keeps one flag per kind */
        e = glGetError();
    int code = first == GL_OUT_OF_MEMORY ? -ENOMEM : LM_EINTERNAL;
    return lm__fail(err, code, "%s: %s (0x%04x)", what, lm_gl_error_name(first), first);
}

/* ---------------------------------------------------------------- sources */

static int read_file(const char *path, char **text, struct lm_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return lm__fail(err, -errno, "cannot open shader '%s': %s", path, strerror(errno));
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (cap - n < 4096) {
            char *p = lm_realloc(buf, cap + 65536);
            if (!p) {
                lm_free(buf);
                fclose(f);
                return lm__fail(err, -ENOMEM, "out of memory reading '%s'", path);
            }
            buf = p;
            cap += 65536;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        lm_free(buf);
        return lm__fail(err, -EIO, "cannot read shader '%s'", path);
    }
    buf[n] = 0;
    *text = buf;
    return 0;
}

int lm_gl_shader_source(const char *name, char **text, char *path, size_t path_cap,
                        struct lm_error *err)
{
    const char *dir = getenv("LUMADB_SHADER_DIR");
    if (dir && *dir) {
        snprintf(path, path_cap, "%s/%s", dir, name);
        return read_file(path, text, err);
    }
    snprintf(path, path_cap, "shaders/%s", name);
    for (size_t i = 0; i < lm__n_shader_files; i++) {
        if (strcmp(lm__shader_files[i].name, name))
            continue;
        char *copy = lm_alloc(lm__shader_files[i].size + 1);
        if (!copy)
            return lm__fail(err, -ENOMEM, "out of memory loading '%s'", path);
        memcpy(copy, lm__shader_files[i].text, lm__shader_files[i].size + 1);
        *text = copy;
        return 0;
    }
    return lm__fail(err, LM_ENOTFOUND, "no shader named '%s' was embedded", name);
}

/* ---------------------------------------------------------------- programs */

static long parse_num(const char **s)
{
    char *end;
    long v = strtol(*s, &end, 10);
    if (end == *s)
        return -1;
    *s = end;
    return v;
}

/* Turns the first error of a driver log into "PATH:LINE:COL: message". Understands
 * Mesa "0:12(5): error: ...", "ERROR: 0:12: ..." and "0(12) : error ...". */
static int log_error(struct lm_error *err, const char *path, const char *log)
{
    const char *line_start = log;
    for (const char *l = log; *l; l += strcspn(l, "\n") + (l[strcspn(l, "\n")] != 0)) {
        size_t len = strcspn(l, "\n");
        if (memmem(l, len, "error", 5) || memmem(l, len, "ERROR", 5)) {
            line_start = l;
            break;
        }
    }
    const char *s = line_start;
    if (!strncmp(s, "ERROR: ", 7))
        s += 7;
    long line = 0, col = 0, first = parse_num(&s);
    if (first >= 0 && *s == ':') {
        s++;
        line = parse_num(&s);
        if (*s == '(') {
            s++;
            col = parse_num(&s);
            if (*s == ')')
                s++;
        }
    } else if (first >= 0 && *s == '(') {
        s++;
        line = parse_num(&s);
        if (*s == ')')
            s++;
    }
    if (line <= 0) { /* unknown format: keep the whole first line */
        line = 0;
        s = line_start;
    }
    while (*s == ':' || *s == ' ')
        s++;
    size_t len = strcspn(s, "\n");
    while (len && isspace((unsigned char)s[len - 1]))
        len--;
    return lm__fail_at(err, LM_ESYNTAX, (uint32_t)line, (uint32_t)(col > 0 ? col : 0), -1,
                       "%s:%ld:%ld: %.*s", path, line, col > 0 ? col : 0, (int)len, s);
}

static int compile(GLenum kind, const char *name, GLuint *out, struct lm_error *err)
{
    char path[1024], *text = NULL;
    int rc = lm_gl_shader_source(name, &text, path, sizeof path, err);
    if (rc)
        return rc;
    GLuint sh = glCreateShader(kind);
    if (!sh) {
        lm_free(text);
        rc = lm_gl_check(path, err);
        return rc ? rc : lm__fail(err, LM_EINTERNAL, "%s: glCreateShader failed", path);
    }
    const GLchar *src = text;
    glShaderSource(sh, 1, &src, NULL);
    glCompileShader(sh);
    lm_free(text);
    GLint ok = 0;
    glGetShaderiv(sh, GL_COMPILE_STATUS, &ok);
    if (!ok) {
        char log[2048] = "";
        glGetShaderInfoLog(sh, sizeof log, NULL, log);
        glDeleteShader(sh);
        return log_error(err, path, log);
    }
    *out = sh;
    return 0;
}

int lm_gl_program(const char *vert, const char *frag, GLuint *out, struct lm_error *err)
{
    GLuint vs = 0, fs = 0;
    int rc = compile(GL_VERTEX_SHADER, vert, &vs, err);
    if (rc)
        return rc;
    if ((rc = compile(GL_FRAGMENT_SHADER, frag, &fs, err))) {
        glDeleteShader(vs);
        return rc;
    }
    GLuint p = glCreateProgram();
    glAttachShader(p, vs);
    glAttachShader(p, fs);
    glLinkProgram(p);
    glDeleteShader(vs); /* flagged; freed with the program */
    glDeleteShader(fs);
    GLint ok = 0;
    glGetProgramiv(p, GL_LINK_STATUS, &ok);
    if (!ok) {
        char log[2048] = "";
        glGetProgramInfoLog(p, sizeof log, NULL, log);
        glDeleteProgram(p);
        size_t len = strcspn(log, "\n");
        return lm__fail(err, LM_ESYNTAX, "shaders/%s + shaders/%s: link: %.*s", vert, frag,
                        (int)len, log);
    }
    if ((rc = lm_gl_check("linking shaders", err))) {
        glDeleteProgram(p);
        return rc;
    }
    *out = p;
    return 0;
}

int lm_gl_read_rgb(int w, int h, unsigned char *rgb, struct lm_error *err)
{
    glPixelStorei(GL_PACK_ALIGNMENT, 1);
    glReadPixels(0, 0, w, h, GL_RGB, GL_UNSIGNED_BYTE, rgb);
    return lm_gl_check("reading pixels", err);
}
