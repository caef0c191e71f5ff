/* cmd_import.c - `lumadb import [DIR] FIELD FILE`: PLY (ascii, binary little-endian), CSV
 * and XYZ point files into a field, in batches through lm_insert (the normal write path).
 *
 * A batch is parsed and checked whole before it is inserted, so a bad line or value
 * stops the import with nothing of its batch written; the batches before it stay.
 * Errors name the line (text) or byte offset (binary). The field is created when
 * missing (--voxel, default 0.1; --chunk), with a user column for every file column
 * that is no built-in one. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

#define DEFAULT_BATCH 65536
#define MAX_SRC 64  /* columns of one file */

static int usage(FILE *to)
{
    fprintf(to,
            "usage: lumadb import [DIR] FIELD FILE [--format ply|csv|xyz] [--voxel S]\n"
            "                     [--chunk N] [--batch N]\n"
            "\n"
            "Loads the points of FILE into FIELD of the database in DIR (default\n" LM_CLI_DEFAULT_DIR
            "), creating the field when it is missing (voxel size S, default 0.1;\n"
            "chunk edge N, default 32) with a user column for each extra file column.\n"
            "\n"
            "formats (by --format, else the extension, else the content):\n"
            "  PLY  ascii or binary little-endian; vertex properties x, y, z; nx, ny, nz\n"
            "       (direction); red, green, blue (uchar 0-255 or float 0-1); intensity;\n"
            "       t; any other property by name (a user column)\n"
            "  CSV  a header naming the columns (x, y, z, dx, dy, dz, r, g, b in [0, 1],\n"
            "       red, green, blue in 0-255, intensity, t, user columns; 'name:u8'\n"
            "       gives a new column its type: f32, i32 or u8)\n"
            "  XYZ  whitespace-separated x y z, x y z i, x y z r g b or x y z i r g b\n"
            "       (colours 0-255); '#' starts a comment\n"
            "\n"
            "Samples go in batches of N (default %d) through lm_insert. A bad line or\n"
            "value stops the import: nothing of its batch is written, the batches\n"
            "before it are (the message says how many).\n",
            DEFAULT_BATCH);
    return to == stderr ? 2 : 0;
}

/* ---------------------------------------------------------------- columns */

enum fmt { FMT_PLY = 1, FMT_CSV, FMT_XYZ };

enum ptype { P_I8 = 1, P_U8, P_I16, P_U16, P_I32, P_U32, P_F32, P_F64 };

/* One column of the file and where it goes. */
struct src {
    char name[LM_NAME_MAX + 1];
    enum ptype type;        /* PLY property type (CSV/XYZ: F64) */
    bool list;              /* PLY list property: skipped */
    enum ptype count_type;  /* of a list */
    int target;             /* field column, or -1 to skip */
    double scale;           /* colours given as 0-255 integers: 1/255 */
    enum lm_type new_type;  /* for a field created from the file */
};

struct input {
    FILE *f;
    const char *path;
    enum fmt fmt;
    bool binary;            /* PLY binary little-endian */
    struct src src[MAX_SRC];
    int n_src;
    uint64_t n_vertices;    /* PLY */
    uint64_t line;          /* text: line of the last row read */
    uint64_t offset;        /* bytes consumed */
    uint64_t size;          /* file size (progress), 0 if unknown */
    uint64_t done;          /* PLY vertices read */
    char *buf;              /* text line */
    size_t cap;
    bool pushed_back;       /* XYZ: the first data line is read again */
};

static int input_fail(const struct input *in, struct lm_error *e, bool at_byte, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int input_fail(const struct input *in, struct lm_error *e, bool at_byte, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    e->code = LM_EBADVALUE;
    e->line = at_byte ? 0 : (uint32_t)in->line;
    e->column = 0;
    e->offset = at_byte ? (int64_t)in->offset : -1;
    return LM_EBADVALUE;
}

/* Built-in target of a column name (aliases included) and its colour scale. */
static int builtin_target(const char *name, enum ptype type, bool csv, double *scale)
{
    static const struct { const char *name; int col; } alias[] = {
        {"nx", LM_COL_DX},         {"ny", LM_COL_DY},         {"nz", LM_COL_DZ},
        {"red", LM_COL_R},         {"green", LM_COL_G},       {"blue", LM_COL_B},
        {"diffuse_red", LM_COL_R}, {"diffuse_green", LM_COL_G}, {"diffuse_blue", LM_COL_B},
        {"scalar_intensity", LM_COL_INTENSITY}, {"time", LM_COL_T}};
    *scale = 1.0;
    int col = lm_column_find(name, NULL);
    bool named_rgb = false;
    for (size_t i = 0; col < 0 && i < sizeof alias / sizeof alias[0]; i++)
        if (!strcasecmp(name, alias[i].name)) {
            col = alias[i].col;
            named_rgb = col >= LM_COL_R && col <= LM_COL_B;
        }
    if (col >= LM_COL_R && col <= LM_COL_B) {
        if (csv ? named_rgb : type != P_F32 && type != P_F64)
            *scale = type == P_U16 || type == P_I16 ? 1.0 / 65535.0 : 1.0 / 255.0;
    }
    return col;
}

/* ---------------------------------------------------------------- text lines */

/* Reads the next line (without its end) into in->buf; false at the end of the file. */
static bool next_line(struct input *in)
{
    ssize_t n = getline(&in->buf, &in->cap, in->f);
    if (n < 0)
        return false;
    in->offset += (uint64_t)n;
    in->line++;
    while (n > 0 && (in->buf[n - 1] == '\n' || in->buf[n - 1] == '\r'))
        in->buf[--n] = '\0';
    return true;
}

static bool blank(const char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    return !*s;
}

/* A number at *s (after spaces); advances past it. */
static bool read_number(char **s, double *out)
{
    char *p = *s, *end;
    while (*p == ' ' || *p == '\t')
        p++;
    errno = 0;
    *out = strtod(p, &end);
    if (end == p || errno == ERANGE || !isfinite(*out))
        return false;
    *s = end;
    return true;
}

/* ---------------------------------------------------------------- PLY */

static enum ptype ply_type(const char *t)
{
    static const struct { const char *name; enum ptype type; } types[] = {
        {"char", P_I8},   {"int8", P_I8},     {"uchar", P_U8},    {"uint8", P_U8},
        {"short", P_I16}, {"int16", P_I16},   {"ushort", P_U16},  {"uint16", P_U16},
        {"int", P_I32},   {"int32", P_I32},   {"uint", P_U32},    {"uint32", P_U32},
        {"float", P_F32}, {"float32", P_F32}, {"double", P_F64},  {"float64", P_F64}};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (!strcmp(t, types[i].name))
            return types[i].type;
    return 0;
}

static size_t ptype_size(enum ptype t)
{
    static const size_t s[] = {0, 1, 1, 2, 2, 4, 4, 4, 8};
    return s[t];
}

struct ply_element {
    char name[64];
    uint64_t count;
    struct src props[MAX_SRC];
    int n;
};

/* Skips the records of an element before the vertices. */
static int ply_skip(struct input *in, const struct ply_element *el, struct lm_error *e);

static int ply_header(struct input *in, struct lm_error *e)
{
    struct ply_element els[8];
    int n_el = 0, vertex = -1;
    if (!next_line(in) || strcmp(in->buf, "ply"))
        return input_fail(in, e, false, "not a PLY file: the first line must be 'ply'");
    for (;;) {
        if (!next_line(in))
            return input_fail(in, e, false, "the PLY header has no end_header line");
        char w[4][64] = {{0}};
        int nw = sscanf(in->buf, "%63s %63s %63s %63s", w[0], w[1], w[2], w[3]);
        if (nw <= 0 || !strcmp(w[0], "comment") || !strcmp(w[0], "obj_info"))
            continue;
        if (!strcmp(w[0], "end_header"))
            break;
        if (!strcmp(w[0], "format")) {
            if (!strcmp(w[1], "ascii"))
                in->binary = false;
            else if (!strcmp(w[1], "binary_little_endian"))
                in->binary = true;
            else
                return input_fail(in, e, false, "PLY format '%s' is not supported (ascii or "
                                                "binary_little_endian)", w[1]);
        } else if (!strcmp(w[0], "element") && nw == 3) {
            if (n_el == 8)
                return input_fail(in, e, false, "more than 8 PLY elements");
            struct ply_element *el = &els[n_el++];
            memset(el, 0, sizeof *el);
            snprintf(el->name, sizeof el->name, "%s", w[1]);
            el->count = strtoull(w[2], NULL, 10);
            if (!strcmp(w[1], "vertex"))
                vertex = n_el - 1;
        } else if (!strcmp(w[0], "property") && n_el) {
            struct ply_element *el = &els[n_el - 1];
            if (el->n == MAX_SRC)
                return input_fail(in, e, false, "more than %d properties", MAX_SRC);
            struct src *p = &el->props[el->n++];
            memset(p, 0, sizeof *p);
            p->list = !strcmp(w[1], "list");
            p->type = ply_type(p->list ? w[3] : w[1]);
            p->count_type = p->list ? ply_type(w[2]) : 0;
            char list_name[64] = "";
            if (p->list && nw == 4)
                sscanf(in->buf, "%*s %*s %*s %*s %63s", list_name);
            const char *name = p->list ? list_name : w[2];
            if (!p->type || (p->list && !p->count_type))
                return input_fail(in, e, false, "unknown PLY property type in '%s'", in->buf);
            snprintf(p->name, sizeof p->name, "%s", name);
        } else {
            return input_fail(in, e, false, "unexpected PLY header line '%s'", in->buf);
        }
    }
    if (vertex < 0)
        return input_fail(in, e, false, "the PLY file has no vertex element");
    for (int i = 0; i < vertex; i++) {
        int rc = ply_skip(in, &els[i], e);
        if (rc)
            return rc;
    }
    in->n_src = els[vertex].n;
    memcpy(in->src, els[vertex].props, sizeof els[vertex].props);
    in->n_vertices = els[vertex].count;
    for (int i = 0; i < in->n_src; i++) {
        struct src *p = &in->src[i];
        p->target = p->list ? -1 : builtin_target(p->name, p->type, false, &p->scale);
        p->new_type = p->type == P_U8 ? LM_TYPE_U8
                      : p->type == P_F32 || p->type == P_F64 ? LM_TYPE_F32 : LM_TYPE_I32;
    }
    return 0;
}

/* Reads one binary value; false at a short read. */
static bool bin_value(struct input *in, enum ptype t, double *out)
{
    unsigned char b[8];
    size_t n = ptype_size(t);
    if (fread(b, 1, n, in->f) != n)
        return false;
    in->offset += n;
    union { uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32;
            float f; double d; } v;
    memcpy(&v, b, n); /* little-endian host (x86-64, arm64) */
    switch (t) {
    case P_I8: *out = v.i8; break;
    case P_U8: *out = v.u8; break;
    case P_I16: *out = v.i16; break;
    case P_U16: *out = v.u16; break;
    case P_I32: *out = v.i32; break;
    case P_U32: *out = v.u32; break;
    case P_F32: *out = v.f; break;
    case P_F64: *out = v.d; break;
    }
    return true;
}

/* One record of properties into vals (lists skipped); text or binary. */
static int ply_record(struct input *in, const struct src *props, int n, double *vals,
                      struct lm_error *e)
{
    if (!in->binary) {
        if (!next_line(in))
            return input_fail(in, e, false, "the file ends before its last element");
        char *s = in->buf;
        for (int i = 0; i < n; i++) {
            double v;
            if (!read_number(&s, &v))
                return input_fail(in, e, false, "property %d ('%s') is not a number", i + 1,
                                  props[i].name);
            for (uint64_t k = 0, m = props[i].list ? (uint64_t)v : 0; k < m; k++)
                if (!read_number(&s, &v))
                    return input_fail(in, e, false, "list '%s' is shorter than its count",
                                      props[i].name);
            vals[i] = v;
        }
        if (!blank(s))
            return input_fail(in, e, false, "more values than the %d properties", n);
        return 0;
    }
    for (int i = 0; i < n; i++) {
        uint64_t at = in->offset;
        double v;
        if (!bin_value(in, props[i].list ? props[i].count_type : props[i].type, &v)) {
            in->offset = at;
            return input_fail(in, e, true, "the file ends inside a record");
        }
        if (props[i].list) {
            for (uint64_t k = 0; k < (uint64_t)v; k++) {
                double x;
                if (!bin_value(in, props[i].type, &x))
                    return input_fail(in, e, true, "the file ends inside a list");
            }
        }
        if (!isfinite(v)) {
            in->offset = at;
            return input_fail(in, e, true, "property '%s' is not a finite number",
                              props[i].name);
        }
        vals[i] = v;
    }
    return 0;
}

static int ply_skip(struct input *in, const struct ply_element *el, struct lm_error *e)
{
    double vals[MAX_SRC];
    for (uint64_t r = 0; r < el->count; r++) {
        int rc = ply_record(in, el->props, el->n, vals, e);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---------------------------------------------------------------- CSV and XYZ */

/* Splits a CSV line in place; fields trimmed, quotes removed. Returns the count. */
static int csv_split(char *s, char **field, int max)
{
    int n = 0;
    for (;;) {
        while (*s == ' ' || *s == '\t')
            s++;
        char *start = s, *w = s;
        if (*s == '"') {
            start = w = ++s;
            while (*s && !(*s == '"' && s[1] != '"'))
                *w++ = *s == '"' ? (s++, '"') : *s, s++;
            if (*s == '"')
                s++;
            while (*s && *s != ',')
                s++;
        } else {
            while (*s && *s != ',')
                *w++ = *s++;
            while (w > start && (w[-1] == ' ' || w[-1] == '\t'))
                w--;
        }
        bool more = *s == ',';
        *w = '\0';
        if (n < max)
            field[n] = start;
        n++;
        if (!more)
            return n;
        s++;
    }
}

static int csv_header(struct input *in, struct lm_error *e)
{
    do {
        if (!next_line(in))
            return input_fail(in, e, false, "the CSV file is empty: it needs a header line");
    } while (blank(in->buf));
    char *f[MAX_SRC + 1];
    int n = csv_split(in->buf, f, MAX_SRC + 1);
    if (n > MAX_SRC)
        return input_fail(in, e, false, "more than %d columns", MAX_SRC);
    in->n_src = n;
    for (int i = 0; i < n; i++) {
        struct src *p = &in->src[i];
        memset(p, 0, sizeof *p);
        p->type = P_F64;
        p->new_type = LM_TYPE_F32;
        char *colon = strchr(f[i], ':');
        if (colon) {
            *colon = '\0';
            const char *t = colon + 1;
            p->new_type = !strcasecmp(t, "u8") ? LM_TYPE_U8 : !strcasecmp(t, "i32") ? LM_TYPE_I32
                          : !strcasecmp(t, "f32") ? LM_TYPE_F32 : 0;
            if (!p->new_type)
                return input_fail(in, e, false, "column '%s': type '%s' is not f32, i32 or u8",
                                  f[i], t);
        }
        if (!f[i][0] || strlen(f[i]) > LM_NAME_MAX)
            return input_fail(in, e, false, "column %d of the header has no usable name",
                              i + 1);
        snprintf(p->name, sizeof p->name, "%s", f[i]);
        p->target = builtin_target(p->name, P_F64, true, &p->scale);
    }
    return 0;
}

static bool xyz_comment(const char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    return !*s || *s == '#' || (s[0] == '/' && s[1] == '/');
}

/* The first data line decides the columns. */
static int xyz_header(struct input *in, struct lm_error *e)
{
    do {
        if (!next_line(in)) {
            in->n_src = 3;
            break;
        }
    } while (xyz_comment(in->buf));
    int n = 0;
    char *s = in->buf;
    double v;
    while (n < 8 && read_number(&s, &v))
        n++;
    static const char *const layouts[8][7] = {
        [3] = {"x", "y", "z"}, [4] = {"x", "y", "z", "intensity"},
        [6] = {"x", "y", "z", "red", "green", "blue"},
        [7] = {"x", "y", "z", "intensity", "red", "green", "blue"}};
    if (in->buf && in->n_src != 3 && (n > 7 || !layouts[n][0]))
        return input_fail(in, e, false, "an XYZ line holds 3, 4, 6 or 7 numbers (x y z, "
                                        "x y z i, x y z r g b, x y z i r g b), not %d", n);
    if (in->n_src == 3 && !n)
        n = 3;
    in->n_src = n;
    for (int i = 0; i < n; i++) {
        struct src *p = &in->src[i];
        memset(p, 0, sizeof *p);
        snprintf(p->name, sizeof p->name, "%s", layouts[n][i]);
        p->type = P_F64;
        p->target = builtin_target(p->name, P_F64, true, &p->scale);
    }
    in->pushed_back = true; /* the line just read is data */
    return 0;
}

/* One data row into vals; 0 at the end (*got false). */
static int text_record(struct input *in, double *vals, bool *got, struct lm_error *e)
{
    *got = false;
    for (;;) {
        if (in->pushed_back)
            in->pushed_back = false;
        else if (!in->buf || !next_line(in))
            return 0;
        if (in->fmt == FMT_XYZ ? xyz_comment(in->buf) : blank(in->buf))
            continue;
        break;
    }
    if (in->fmt == FMT_CSV) {
        char *f[MAX_SRC + 1];
        int n = csv_split(in->buf, f, MAX_SRC + 1);
        if (n != in->n_src)
            return input_fail(in, e, false, "%d values where the header names %d columns", n,
                              in->n_src);
        for (int i = 0; i < n; i++) {
            char *s = f[i];
            if (!read_number(&s, &vals[i]) || !blank(s))
                return input_fail(in, e, false, "column '%s': '%s' is not a number",
                                  in->src[i].name, f[i]);
        }
    } else {
        char *s = in->buf;
        for (int i = 0; i < in->n_src; i++)
            if (!read_number(&s, &vals[i]))
                return input_fail(in, e, false, "expected %d numbers (x y z ...), found %d",
                                  in->n_src, i);
        if (!blank(s))
            return input_fail(in, e, false, "more than the %d numbers of the first line",
                              in->n_src);
    }
    *got = true;
    return 0;
}

/* ---------------------------------------------------------------- batches */

struct batch {
    size_t cap, n;
    float *f32[LM_COL_T];       /* x .. intensity */
    int64_t *t;
    void *user[LM_MAX_USER_COLUMNS];
    uint64_t *where;            /* line or byte offset of each sample */
    bool given[LM_COL_USER + LM_MAX_USER_COLUMNS];
};

static int batch_alloc(struct batch *b, size_t cap, uint32_t n_user)
{
    b->cap = cap;
    for (int c = 0; c < LM_COL_T; c++)
        if (!(b->f32[c] = malloc(cap * sizeof(float))))
            return -ENOMEM;
    if (!(b->t = malloc(cap * sizeof *b->t)) || !(b->where = malloc(cap * sizeof *b->where)))
        return -ENOMEM;
    for (uint32_t u = 0; u < n_user; u++)
        if (!(b->user[u] = malloc(cap * 4)))
            return -ENOMEM;
    return 0;
}

static void batch_free(struct batch *b)
{
    for (int c = 0; c < LM_COL_T; c++)
        free(b->f32[c]);
    free(b->t);
    free(b->where);
    for (int u = 0; u < LM_MAX_USER_COLUMNS; u++)
        free(b->user[u]);
}

static const float DEFAULTS[LM_COL_T] = {0, 0, 0, 0, 0, 1, 1, 1, 1, 1};

/* Stores one record's values as sample b->n after checking them as lm_insert would. */
static int batch_put(struct batch *b, const struct input *in, const struct lm_field_info *fi,
                     const double *vals, struct lm_error *e)
{
    size_t i = b->n;
    for (int c = 0; c < LM_COL_T; c++)
        b->f32[c][i] = DEFAULTS[c];
    b->t[i] = 0;
    for (uint32_t u = 0; u < fi->opts.n_user_columns; u++)
        memset((char *)b->user[u] + i * 4, 0, 4);
    for (int k = 0; k < in->n_src; k++) {
        const struct src *p = &in->src[k];
        int c = p->target;
        if (c < 0)
            continue;
        double v = vals[k] * p->scale;
        const char *name = lm_column_name(c, &fi->opts);
        if (c < LM_COL_T) {
            if (!(fabs(v) <= 3.4028234663852886e38))
                return input_fail(in, e, in->binary, "%s = %g is out of the "
                                  "range of a 32-bit float", name, v);
            b->f32[c][i] = (float)v;
            if (c >= LM_COL_R && c <= LM_COL_B && !(v >= 0 && v <= 1))
                return input_fail(in, e, in->binary,
                                  "colour %s = %g is outside [0, 1]%s", p->name, vals[k],
                                  p->scale != 1.0 ? " after scaling" : "");
            if (c == LM_COL_INTENSITY && !(v >= 0))
                return input_fail(in, e, in->binary,
                                  "intensity = %g must be >= 0", v);
        } else if (c == LM_COL_T) {
            if (v != floor(v) || fabs(v) > 9.2e18)
                return input_fail(in, e, in->binary,
                                  "t = %g is not a whole number of microseconds", v);
            b->t[i] = (int64_t)v;
        } else {
            enum lm_type t = fi->opts.user_columns[c - LM_COL_USER].type;
            void *col = b->user[c - LM_COL_USER];
            if (t == LM_TYPE_F32) {
                ((float *)col)[i] = (float)v;
            } else if (v != floor(v) || v < (t == LM_TYPE_U8 ? 0 : INT32_MIN) ||
                       v > (t == LM_TYPE_U8 ? 255 : INT32_MAX)) {
                return input_fail(in, e, in->binary,
                                  "%s = %g does not fit its column type %s", name, v,
                                  t == LM_TYPE_U8 ? "u8" : "i32");
            } else if (t == LM_TYPE_I32) {
                ((int32_t *)col)[i] = (int32_t)v;
            } else {
                ((uint8_t *)col)[i] = (uint8_t)v;
            }
        }
    }
    if (b->given[LM_COL_DX] || b->given[LM_COL_DY] || b->given[LM_COL_DZ]) {
        float *d[3] = {&b->f32[LM_COL_DX][i], &b->f32[LM_COL_DY][i], &b->f32[LM_COL_DZ][i]};
        double len = sqrt((double)*d[0] * *d[0] + (double)*d[1] * *d[1] + (double)*d[2] * *d[2]);
        if (!(len > 1e-12) || !isfinite(len))
            return input_fail(in, e, in->binary,
                              "direction (%g, %g, %g) has no length", (double)*d[0],
                              (double)*d[1], (double)*d[2]);
        if (fabs(len - 1.0) > 1e-3) /* normals need not be unit; within 1e-3 the engine
                                       normalises them itself */
            for (int a = 0; a < 3; a++)
                *d[a] = (float)(*d[a] / len);
    }
    b->where[i] = in->binary ? in->offset : in->line;
    b->n++;
    return 0;
}

static int batch_insert(lm_db *db, const char *field, struct batch *b, uint32_t n_user,
                        struct lm_error *e)
{
    bool any_user = false;
    for (uint32_t u = 0; u < n_user; u++)
        any_user |= b->given[LM_COL_USER + u];
    bool dir = b->given[LM_COL_DX] || b->given[LM_COL_DY] || b->given[LM_COL_DZ];
    bool rgb = b->given[LM_COL_R] || b->given[LM_COL_G] || b->given[LM_COL_B];
    struct lm_batch lb = {
        .n = b->n, .x = b->f32[LM_COL_X], .y = b->f32[LM_COL_Y], .z = b->f32[LM_COL_Z],
        .dx = dir ? b->f32[LM_COL_DX] : NULL, .dy = dir ? b->f32[LM_COL_DY] : NULL,
        .dz = dir ? b->f32[LM_COL_DZ] : NULL, .r = rgb ? b->f32[LM_COL_R] : NULL,
        .g = rgb ? b->f32[LM_COL_G] : NULL, .b = rgb ? b->f32[LM_COL_B] : NULL,
        .intensity = b->given[LM_COL_INTENSITY] ? b->f32[LM_COL_INTENSITY] : NULL,
        .t = b->given[LM_COL_T] ? b->t : NULL, .n_user = any_user ? n_user : 0};
    for (uint32_t u = 0; any_user && u < n_user; u++)
        lb.user[u] = b->user[u];
    return lm_insert(db, field, &lb, NULL, e);
}

/* ---------------------------------------------------------------- progress */

static void progress(const struct input *in, uint64_t samples, double t0, bool final)
{
    double dt = lm_cli_now() - t0, rate = dt > 0 ? (double)samples / dt : 0;
    double frac = in->size ? (double)in->offset / (double)in->size : 0;
    if (frac > 1)
        frac = 1;
    char bar[31];
    int fill = (int)(frac * 30);
    for (int i = 0; i < 30; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[30] = '\0';
    double eta = frac > 0 ? dt * (1 - frac) / frac : 0;
    fprintf(stderr, "\r%3.0f%% [%s] %llu samples, %.0f/s, ETA %.0f s   %s", frac * 100, bar,
            (unsigned long long)samples, rate, final ? 0.0 : eta, final ? "\n" : "");
    fflush(stderr);
}

/* ---------------------------------------------------------------- the command */

static enum fmt sniff(const char *path, FILE *f)
{
    const char *dot = strrchr(path, '.');
    if (dot && !strcasecmp(dot, ".ply"))
        return FMT_PLY;
    if (dot && !strcasecmp(dot, ".csv"))
        return FMT_CSV;
    if (dot && (!strcasecmp(dot, ".xyz") || !strcasecmp(dot, ".pts") ||
                !strcasecmp(dot, ".txt") || !strcasecmp(dot, ".asc")))
        return FMT_XYZ;
    char head[256] = "";
    size_t n = fread(head, 1, sizeof head - 1, f);
    head[n] = '\0';
    rewind(f);
    if (!strncmp(head, "ply", 3) && (head[3] == '\n' || head[3] == '\r'))
        return FMT_PLY;
    char *nl = strchr(head, '\n');
    if (nl)
        *nl = '\0';
    for (char *p = head; *p; p++)
        if (isalpha((unsigned char)*p) && *p != 'e' && *p != 'E')
            return strchr(head, ',') ? FMT_CSV : FMT_XYZ;
    return strchr(head, ',') ? FMT_CSV : FMT_XYZ;
}

/* Creates the field from the file's columns when it is missing; maps user columns. */
static int prepare_field(lm_db *db, const char *field, struct input *in, float voxel,
                         uint32_t chunk, struct lm_field_info *fi, bool *created)
{
    struct lm_error e = {0};
    *created = false;
    if (lm_field_info(db, field, fi, NULL) != 0) {
        struct lm_field_opts o = {.voxel_size = voxel, .chunk_edge = chunk};
        for (int i = 0; i < in->n_src; i++) {
            struct src *p = &in->src[i];
            if (p->target >= 0 || p->list || o.n_user_columns == LM_MAX_USER_COLUMNS)
                continue;
            struct lm_column_def *d = &o.user_columns[o.n_user_columns++];
            snprintf(d->name, sizeof d->name, "%s", p->name);
            d->type = p->new_type;
        }
        int rc = lm_field_create(db, field, &o, &e);
        if (rc) {
            fprintf(stderr, "lumadb import: cannot create field '%s': %s\n", field,
                    e.message[0] ? e.message : lm_strerror(rc));
            return 1;
        }
        *created = true;
        lm_field_info(db, field, fi, NULL);
    }
    char ignored[1024] = "";
    size_t len = 0;
    for (int i = 0; i < in->n_src; i++) {
        struct src *p = &in->src[i];
        if (p->target < 0 && !p->list)
            p->target = lm_column_find(p->name, &fi->opts);
        if (p->target < 0 && len < sizeof ignored)
            len += (size_t)snprintf(ignored + len, sizeof ignored - len, "%s%s", len ? ", " : "",
                                    p->list ? "(a list)" : p->name);
    }
    bool pos[3] = {false};
    for (int i = 0; i < in->n_src; i++)
        if (in->src[i].target >= LM_COL_X && in->src[i].target <= LM_COL_Z)
            pos[in->src[i].target] = true;
    if (!pos[0] || !pos[1] || !pos[2]) {
        fprintf(stderr, "lumadb import: %s has no %s column: x, y and z are needed\n",
                in->path, !pos[0] ? "x" : !pos[1] ? "y" : "z");
        return 1;
    }
    if (ignored[0])
        fprintf(stderr, "lumadb import: note: field '%s' has no column for %s; skipped\n",
                field, ignored);
    return 0;
}

static void report_error(const struct input *in, const struct lm_error *e, uint64_t batches,
                         uint64_t samples, size_t batch_size)
{
    if (e->offset >= 0)
        fprintf(stderr, "lumadb import: %s: byte offset %lld: %s\n", in->path,
                (long long)e->offset, e->message);
    else if (e->line)
        fprintf(stderr, "lumadb import: %s:%u: %s\n", in->path, e->line, e->message);
    else
        fprintf(stderr, "lumadb import: %s: %s\n", in->path, e->message);
    fprintf(stderr,
            "lumadb import: nothing of batch %llu (samples %llu to %llu) was imported; the "
            "%llu batch%s before it (%llu samples) were\n",
            (unsigned long long)batches + 1, (unsigned long long)samples + 1,
            (unsigned long long)(samples + batch_size), (unsigned long long)batches,
            batches == 1 ? "" : "es", (unsigned long long)samples);
}

int lm_cmd_import(int argc, char **argv)
{
    static const char *const opts[] = {"--format", "--voxel", "--chunk", "--batch", NULL};
    static const char *const flags[] = {"--help", "-h", NULL};
    const char *pos[3];
    int np, rc = lm_cli_args(argc, argv, "lumadb import", opts, flags, usage, pos, 2, 3, &np);
    if (rc >= 0)
        return rc;
    const char *dir = np == 3 ? pos[0] : LM_CLI_DEFAULT_DIR;
    const char *field = pos[np - 2], *path = pos[np - 1];
    const char *fv = lm_cli_option(argc, argv, "--voxel");
    const char *fc = lm_cli_option(argc, argv, "--chunk");
    const char *fb = lm_cli_option(argc, argv, "--batch");
    const char *ff = lm_cli_option(argc, argv, "--format");
    float voxel = fv ? strtof(fv, NULL) : 0.1f;
    uint32_t chunk = fc ? (uint32_t)strtoul(fc, NULL, 10) : 0;
    size_t batch_size = fb ? (size_t)strtoull(fb, NULL, 10) : DEFAULT_BATCH;
    if (!(voxel > 0) || batch_size < 1 || batch_size > (1u << 26)) {
        fprintf(stderr, "lumadb import: --voxel must be > 0 and --batch in [1, 2^26]\n");
        return 2;
    }
    struct input in = {.path = path};
    if (ff) {
        in.fmt = !strcasecmp(ff, "ply") ? FMT_PLY : !strcasecmp(ff, "csv") ? FMT_CSV
                 : !strcasecmp(ff, "xyz") ? FMT_XYZ : 0;
        if (!in.fmt) {
            fprintf(stderr, "lumadb import: --format must be ply, csv or xyz\n");
            return 2;
        }
    }
    if (!(in.f = fopen(path, "rb"))) {
        fprintf(stderr, "lumadb import: cannot open %s: %s\n", path, strerror(errno));
        return 1;
    }
    struct stat st;
    if (fstat(fileno(in.f), &st) == 0 && S_ISREG(st.st_mode))
        in.size = (uint64_t)st.st_size;
    if (!in.fmt)
        in.fmt = sniff(path, in.f);
    struct lm_error e = {0};
    rc = in.fmt == FMT_PLY ? ply_header(&in, &e)
             : in.fmt == FMT_CSV ? csv_header(&in, &e) : xyz_header(&in, &e);
    if (rc) {
        report_error(&in, &e, 0, 0, batch_size);
        fclose(in.f);
        free(in.buf);
        return 1;
    }
    lm_db *db;
    if ((rc = lm_cli_open("lumadb import", dir, true, &db))) {
        fclose(in.f);
        free(in.buf);
        return rc;
    }
    struct lm_field_info fi;
    bool created;
    struct batch b = {0};
    uint64_t samples = 0, batches = 0;
    double t0 = lm_cli_now(), last = t0;
    bool tty = isatty(2);
    int status = prepare_field(db, field, &in, voxel, chunk, &fi, &created);
    if (status)
        goto done;
    if (batch_alloc(&b, batch_size, fi.opts.n_user_columns)) {
        fprintf(stderr, "lumadb import: out of memory for a batch of %zu samples\n",
                batch_size);
        status = 1;
        goto done;
    }
    for (int i = 0; i < in.n_src; i++)
        if (in.src[i].target >= 0)
            b.given[in.src[i].target] = true;
    status = 1;
    for (bool end = false; !end;) {
        b.n = 0;
        double vals[MAX_SRC];
        while (b.n < b.cap) {
            bool got = true;
            if (in.fmt == FMT_PLY) {
                if (in.done == in.n_vertices) {
                    got = false;
                } else {
                    uint64_t at = in.offset;
                    if (!(rc = ply_record(&in, in.src, in.n_src, vals, &e))) {
                        uint64_t after = in.offset;
                        in.done++;
                        if (in.binary)
                            in.offset = at; /* a bad value: the offset of its record */
                        rc = batch_put(&b, &in, &fi, vals, &e);
                        in.offset = after;
                    }
                }
            } else {
                rc = text_record(&in, vals, &got, &e);
                if (!rc && got)
                    rc = batch_put(&b, &in, &fi, vals, &e);
            }
            if (rc) {
                report_error(&in, &e, batches, samples, b.cap);
                goto done;
            }
            if (!got) {
                end = true;
                break;
            }
        }
        if (!b.n)
            break;
        if ((rc = batch_insert(db, field, &b, fi.opts.n_user_columns, &e))) {
            if (tty)
                fputc('\n', stderr);
            fprintf(stderr, "lumadb import: %s: the batch of %s %llu to %llu was refused: %s\n",
                    path, in.binary ? "bytes" : "lines", (unsigned long long)b.where[0],
                    (unsigned long long)b.where[b.n - 1], e.message[0] ? e.message
                                                                       : lm_strerror(rc));
            report_error(&in, &(struct lm_error){.message = "refused", .offset = -1}, batches,
                         samples, b.n);
            goto done;
        }
        samples += b.n;
        batches++;
        double now = lm_cli_now();
        if (tty && now - last > 0.2) {
            progress(&in, samples, t0, false);
            last = now;
        }
    }
    status = 0;
    double dt = lm_cli_now() - t0;
    if (tty)
        progress(&in, samples, t0, true);
    printf("imported %llu samples into %s%s in %.2f s (%.0f samples/s, %llu batch%s)\n",
           (unsigned long long)samples, field, created ? " (created)" : "", dt,
           dt > 0 ? (double)samples / dt : 0.0, (unsigned long long)batches,
           batches == 1 ? "" : "es");
done:
    batch_free(&b);
    lm_db_close(db);
    fclose(in.f);
    free(in.buf);
    return status;
}
