/* format.c - result tables as aligned text, CSV and JSON. */
#include "format.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int lm_fmt_mode_parse(const char *s, enum lm_fmt_mode *out)
{
    static const char *const names[] = {"table", "csv", "json"};
    for (int m = 0; m < 3; m++)
        if (s && !strcasecmp(s, names[m])) {
            *out = (enum lm_fmt_mode)m;
            return 0;
        }
    return -1;
}

const char *lm_fmt_mode_name(enum lm_fmt_mode mode)
{
    return mode == LM_FMT_CSV ? "csv" : mode == LM_FMT_JSON ? "json" : "table";
}

/* Shortest %.*g that reads back to the same float (f32) or double. */
static size_t shortest(char *buf, size_t cap, double v, bool f32, int max_digits)
{
    char tmp[48];
    int n = 0;
    for (int p = 1; p <= max_digits; p++) {
        n = snprintf(tmp, sizeof tmp, "%.*g", p, v);
        if (f32 ? strtof(tmp, NULL) == (float)v : strtod(tmp, NULL) == v)
            break;
    }
    snprintf(buf, cap, "%s", tmp);
    return (size_t)n;
}

size_t lm_fmt_value(char *buf, size_t cap, const struct lm_exec_value *v, bool table,
                    const char *null_text)
{
    switch (v->type) {
    case LM_EXEC_NULL: return (size_t)snprintf(buf, cap, "%s", null_text);
    case LM_EXEC_INT: return (size_t)snprintf(buf, cap, "%" PRId64, v->i);
    case LM_EXEC_F32: return shortest(buf, cap, v->d, true, 9);
    case LM_EXEC_F64: return shortest(buf, cap, v->d, false, table ? 10 : 17);
    case LM_EXEC_TEXT: return (size_t)snprintf(buf, cap, "%s", v->s);
    }
    return (size_t)snprintf(buf, cap, "?");
}

/* ---------------------------------------------------------------- table */

static size_t utf8_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        w += ((unsigned char)*s & 0xC0) != 0x80;
    return w;
}

static void pad(FILE *out, size_t n)
{
    while (n--)
        fputc(' ', out);
}

static void table(FILE *out, const struct lm_exec_result *r)
{
    size_t w = r->n_columns, n = r->n_rows;
    size_t *width = calloc(w, sizeof *width);
    size_t n_cells = n * w;
    char **cell = calloc(n_cells ? n_cells : 1, sizeof *cell);
    if (!width || !cell) {
        free(width);
        free(cell);
        fprintf(out, "(out of memory formatting %zu rows)\n", n);
        return;
    }
    for (size_t c = 0; c < w; c++)
        width[c] = utf8_width(r->columns[c].name);
    for (size_t i = 0; i < n * w; i++) {
        char buf[512];
        lm_fmt_value(buf, sizeof buf, &r->rows[i], true, "NULL");
        cell[i] = strdup(buf);
        size_t cw = cell[i] ? utf8_width(cell[i]) : 0;
        if (cw > width[i % w])
            width[i % w] = cw;
    }
    for (size_t c = 0; c < w; c++) {
        fprintf(out, "%s %s", c ? " |" : "", r->columns[c].name);
        if (c + 1 < w)
            pad(out, width[c] - utf8_width(r->columns[c].name));
    }
    fputc('\n', out);
    for (size_t c = 0; c < w; c++) {
        if (c)
            fputc('+', out);
        for (size_t k = 0; k < width[c] + 2; k++)
            fputc('-', out);
    }
    fputc('\n', out);
    for (size_t i = 0; i < n; i++) {
        for (size_t c = 0; c < w; c++) {
            const char *s = cell[i * w + c] ? cell[i * w + c] : "?";
            size_t gap = width[c] - utf8_width(s);
            bool right = r->columns[c].type != LM_EXEC_TEXT;
            fputs(c ? " | " : " ", out);
            if (right)
                pad(out, gap);
            fputs(s, out);
            if (!right && c + 1 < w)
                pad(out, gap);
        }
        fputc('\n', out);
    }
    fprintf(out, "(%zu row%s)\n", n, n == 1 ? "" : "s");
    for (size_t i = 0; i < n * w; i++)
        free(cell[i]);
    free(cell);
    free(width);
}

/* ---------------------------------------------------------------- CSV */

static void csv_text(FILE *out, const char *s)
{
    if (!strpbrk(s, ",\"\r\n") && s[0] != ' ' && (!s[0] || s[strlen(s) - 1] != ' ')) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

static void csv(FILE *out, const struct lm_exec_result *r)
{
    for (size_t c = 0; c < r->n_columns; c++) {
        if (c)
            fputc(',', out);
        csv_text(out, r->columns[c].name);
    }
    fputc('\n', out);
    for (size_t i = 0; i < r->n_rows; i++) {
        for (size_t c = 0; c < r->n_columns; c++) {
            const struct lm_exec_value *v = &r->rows[i * r->n_columns + c];
            char buf[512];
            if (c)
                fputc(',', out);
            if (v->type == LM_EXEC_TEXT) {
                csv_text(out, v->s);
                continue;
            }
            lm_fmt_value(buf, sizeof buf, v, false, "");
            fputs(buf, out);
        }
        fputc('\n', out);
    }
}

/* ---------------------------------------------------------------- JSON */

static void json_text(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(out, "\\%c", ch);
        else if (ch == '\n')
            fputs("\\n", out);
        else if (ch == '\t')
            fputs("\\t", out);
        else if (ch < 0x20)
            fprintf(out, "\\u%04x", ch);
        else
            fputc(ch, out);
    }
    fputc('"', out);
}

static void json(FILE *out, const struct lm_exec_result *r)
{
    fputc('[', out);
    for (size_t i = 0; i < r->n_rows; i++) {
        fputs(i ? ",\n {" : "{", out);
        for (size_t c = 0; c < r->n_columns; c++) {
            const struct lm_exec_value *v = &r->rows[i * r->n_columns + c];
            if (c)
                fputs(", ", out);
            json_text(out, r->columns[c].name);
            fputs(": ", out);
            if (v->type == LM_EXEC_TEXT) {
                json_text(out, v->s);
            } else {
                char buf[512];
                lm_fmt_value(buf, sizeof buf, v, false, "null");
                fputs(buf, out);
            }
        }
        fputc('}', out);
    }
    fputs("]\n", out);
}

void lm_fmt_result(FILE *out, FILE *msg, const struct lm_exec_result *res,
                   enum lm_fmt_mode mode)
{
    for (const struct lm_exec_result *r = res; r; r = r->next) {
        bool has_table = r->n_columns > 0;
        if (r != res && mode == LM_FMT_TABLE)
            fputc('\n', out);
        if (has_table) {
            if (mode == LM_FMT_TABLE)
                table(out, r);
            else if (mode == LM_FMT_CSV)
                csv(out, r);
            else
                json(out, r);
        }
        if (!r->message[0])
            continue;
        if (mode == LM_FMT_TABLE) {
            fprintf(out, "%s\n", r->message);
        } else if (mode == LM_FMT_JSON && !has_table) {
            fputs("{\"message\": ", out);
            json_text(out, r->message);
            fprintf(out, ", \"affected\": %llu}\n", (unsigned long long)r->affected);
        } else if (msg) {
            fprintf(msg, "%s\n", r->message);
        }
    }
}
