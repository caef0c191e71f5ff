/* lql_lex.c - LQL tokens: keywords, the lexer, and the statement-completeness check. */
#include "lql_int.h"

#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/* ---------------------------------------------------------------- keywords */

static const char *const kw_spelling[LM__KW_COUNT_ + 1] = {
    NULL,
#define LM__LQL_KW_TEXT(id, spelling, reserved) spelling,
    LM__LQL_KEYWORDS(LM__LQL_KW_TEXT)
#undef LM__LQL_KW_TEXT
    NULL
};

static const bool kw_is_reserved[LM__KW_COUNT_] = {
    false,
#define LM__LQL_KW_RES(id, spelling, reserved) reserved,
    LM__LQL_KEYWORDS(LM__LQL_KW_RES)
#undef LM__LQL_KW_RES
};

#define KW_LONGEST 8 /* DESCRIBE, RADIANCE */

const char *const *lm_lql_keywords(size_t *n)
{
    if (n)
        *n = LM__KW_COUNT_ - 1;
    return kw_spelling + 1;
}

const char *lm__lql_kw_text(enum lm__lql_kw kw)
{
    return kw > LM__KW_NONE && kw < LM__KW_COUNT_ ? kw_spelling[kw] : "";
}

bool lm__lql_kw_reserved(enum lm__lql_kw kw)
{
    return kw > LM__KW_NONE && kw < LM__KW_COUNT_ && kw_is_reserved[kw];
}

static int upper(int c) { return c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c; }

/* Compares s[0, n) in upper case with the NUL-terminated upper-case word w. */
static int cmp_upper(const char *s, size_t n, const char *w)
{
    for (size_t i = 0; i < n; i++) {
        int a = upper((unsigned char)s[i]), b = (unsigned char)w[i];
        if (a != b)
            return a - b; /* b == 0 (w shorter) sorts w first */
    }
    return w[n] ? -1 : 0;
}

enum lm__lql_kw lm__lql_kw_find(const char *s, size_t n)
{
    if (n == 0 || n > KW_LONGEST)
        return LM__KW_NONE;
    size_t lo = 1, hi = LM__KW_COUNT_;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_upper(s, n, kw_spelling[mid]);
        if (c == 0)
            return (enum lm__lql_kw)mid;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return LM__KW_NONE;
}

static bool is_word_start(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static bool is_digit(int c) { return c >= '0' && c <= '9'; }
static bool is_word(int c) { return is_word_start(c) || is_digit(c); }

bool lm__lql_is_plain_name(const char *s, size_t n)
{
    if (n == 0 || !is_word_start((unsigned char)s[0]))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!is_word((unsigned char)s[i]))
            return false;
    return !lm__lql_kw_reserved(lm__lql_kw_find(s, n));
}

/* ---------------------------------------------------------------- lexer */

void lm__lql_lex_init(struct lm__lql_lexer *lx, const char *text, size_t len,
                      const struct lm_lql_cursor *cur)
{
    lx->text = text;
    lx->len = len;
    lx->pos = 0;
    lx->line = 1;
    lx->column = 1;
    lx->unterminated = false;
    if (cur && cur->line) {
        lx->pos = cur->offset < len ? cur->offset : len;
        lx->line = cur->line;
        lx->column = cur->column;
    }
}

static int peek(const struct lm__lql_lexer *lx, size_t ahead)
{
    return lx->pos + ahead < lx->len ? (unsigned char)lx->text[lx->pos + ahead] : -1;
}

/* Steps over one byte; UTF-8 continuation bytes do not move the column. */
static void step(struct lm__lql_lexer *lx)
{
    unsigned char c = (unsigned char)lx->text[lx->pos++];
    if (c == '\n') {
        lx->line++;
        lx->column = 1;
    } else if ((c & 0xC0) != 0x80) {
        lx->column++;
    }
}

static int fail_at(struct lm_error *err, int code, struct lm_lql_pos at, const char *msg)
{
    return lm__fail_at(err, code, at.line, at.column, -1, "%s", msg);
}

static struct lm_lql_pos here(const struct lm__lql_lexer *lx)
{
    return (struct lm_lql_pos){lx->line, lx->column};
}

/* Skips whitespace and comments. Error: an unfinished block comment. */
static int skip_blank(struct lm__lql_lexer *lx, struct lm_error *err)
{
    for (;;) {
        int c = peek(lx, 0);
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
            step(lx);
        } else if (c == '-' && peek(lx, 1) == '-') {
            while (lx->pos < lx->len && lx->text[lx->pos] != '\n')
                step(lx);
        } else if (c == '/' && peek(lx, 1) == '*') {
            struct lm_lql_pos open = here(lx);
            step(lx);
            step(lx);
            while (!(peek(lx, 0) == '*' && peek(lx, 1) == '/')) {
                if (lx->pos >= lx->len) {
                    lx->unterminated = true;
                    return fail_at(err, LM_ESYNTAX, open, "unterminated block comment");
                }
                step(lx);
            }
            step(lx);
            step(lx);
        } else {
            return 0;
        }
    }
}

/* Describes an unexpected byte for a message. */
static void describe_char(int c, char *buf, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    if (c == '\'')
        snprintf(buf, cap, "\"'\" (LQL has no string literals; \"...\" quotes an identifier)");
    else if (c >= 0x20 && c < 0x7f)
        snprintf(buf, cap, "'%c'", c);
    else
        snprintf(buf, cap, "'\\x%c%c'", hex[(c >> 4) & 15], hex[c & 15]);
}

static int lex_quoted(struct lm__lql_lexer *lx, struct lm__lql_token *tok,
                      struct lm_error *err)
{
    size_t n = 0;
    step(lx); /* opening quote */
    for (;;) {
        int c = peek(lx, 0);
        if (c < 0) {
            lx->unterminated = true;
            return fail_at(err, LM_ESYNTAX, tok->pos, "unterminated quoted identifier");
        }
        if (c == '"') {
            step(lx);
            if (peek(lx, 0) != '"')
                break;
        } else if (c == 0) {
            struct lm_lql_pos at = here(lx);
            step(lx);
            return fail_at(err, LM_ESYNTAX, at, "quoted identifier holds a NUL byte");
        }
        step(lx);
        n++;
    }
    if (n == 0)
        return fail_at(err, LM_ESYNTAX, tok->pos, "empty quoted identifier");
    if (n > LM_NAME_MAX)
        return lm__fail_at(err, LM_ELIMIT, tok->pos.line, tok->pos.column, -1,
                           "identifier is longer than %d characters", LM_NAME_MAX);
    tok->kind = LM__TOK_QIDENT;
    return 0;
}

/* The exact value of a validated literal with at most 15 significant digits and a
 * decimal scale within +-22: the digits and the power of ten are both exact doubles, so
 * one multiplication or division rounds correctly, as strtod would. False for others. */
static bool small_decimal(const char *s, size_t n, double *out)
{
    static const double pow10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    uint64_t m = 0;
    int digits = 0, scale = 0, exp = 0, exp_sign = 1;
    bool fraction = false;
    size_t i = 0;
    for (; i < n && (is_digit((unsigned char)s[i]) || s[i] == '.'); i++) {
        if (s[i] == '.') {
            fraction = true;
            continue;
        }
        if ((m || s[i] != '0') && ++digits > 15)
            return false;
        m = m * 10 + (uint64_t)(s[i] - '0');
        scale -= fraction;
    }
    if (i < n) { /* e or E, sign, digits */
        i++;
        if (s[i] == '+' || s[i] == '-')
            exp_sign = s[i++] == '-' ? -1 : 1;
        for (; i < n; i++)
            if (exp < 10000)
                exp = exp * 10 + (s[i] - '0');
    }
    scale += exp_sign * exp;
    if (m == 0) {
        *out = 0;
        return true;
    }
    if (scale < -22 || scale > 22)
        return false;
    *out = scale < 0 ? (double)m / pow10[-scale] : (double)m * pow10[scale];
    return true;
}

/* Converts the validated literal text[start, start + n): small_decimal, else strtod
 * with the locale's decimal point written for '.'. */
static double to_double(const char *s, size_t n)
{
    double v;
    if (small_decimal(s, n, &v))
        return v;
    char buf[LM_LQL_MAX_NUMBER + 8];
    const char *dp = localeconv()->decimal_point;
    size_t dpn = dp ? strlen(dp) : 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.' && dpn > 0 && dpn < 8) {
            memcpy(buf + o, dp, dpn);
            o += dpn;
        } else {
            buf[o++] = s[i];
        }
    }
    buf[o] = '\0';
    return strtod(buf, NULL);
}

static int lex_number(struct lm__lql_lexer *lx, struct lm__lql_token *tok,
                      struct lm_error *err)
{
    bool ok = true;
    while (is_digit(peek(lx, 0)))
        step(lx);
    if (peek(lx, 0) == '.') {
        step(lx);
        while (is_digit(peek(lx, 0)))
            step(lx);
    }
    if (peek(lx, 0) == 'e' || peek(lx, 0) == 'E') {
        step(lx);
        if (peek(lx, 0) == '+' || peek(lx, 0) == '-')
            step(lx);
        ok = is_digit(peek(lx, 0));
        while (is_digit(peek(lx, 0)))
            step(lx);
    }
    int c = peek(lx, 0);
    if (!ok || is_word(c) || c == '.') {
        while (is_word(peek(lx, 0)) || peek(lx, 0) == '.')
            step(lx);
        size_t n = lx->pos - tok->start;
        return lm__fail_at(err, LM_ESYNTAX, tok->pos.line, tok->pos.column, -1,
                           "malformed number '%.*s%s'", n > 40 ? 40 : (int)n,
                           lx->text + tok->start, n > 40 ? "..." : "");
    }
    size_t n = lx->pos - tok->start;
    if (n > LM_LQL_MAX_NUMBER)
        return lm__fail_at(err, LM_ELIMIT, tok->pos.line, tok->pos.column, -1,
                           "number is longer than %d characters", LM_LQL_MAX_NUMBER);
    tok->number = to_double(lx->text + tok->start, n);
    if (isinf(tok->number))
        return lm__fail_at(err, LM_ESYNTAX, tok->pos.line, tok->pos.column, -1,
                           "number '%.*s%s' is out of range", n > 40 ? 40 : (int)n,
                           lx->text + tok->start, n > 40 ? "..." : "");
    tok->kind = LM__TOK_NUMBER;
    return 0;
}

int lm__lql_lex_next(struct lm__lql_lexer *lx, struct lm__lql_token *tok,
                     struct lm_error *err)
{
    int rc = skip_blank(lx, err);
    if (rc < 0)
        return rc;
    memset(tok, 0, sizeof *tok);
    tok->start = lx->pos;
    tok->pos = here(lx);
    int c = peek(lx, 0);
    if (c < 0) {
        tok->kind = LM__TOK_EOF;
        return 0;
    }
    if (is_word_start(c)) {
        while (is_word(peek(lx, 0)))
            step(lx);
        tok->len = lx->pos - tok->start;
        if (tok->len > LM_NAME_MAX)
            return lm__fail_at(err, LM_ELIMIT, tok->pos.line, tok->pos.column, -1,
                               "identifier is longer than %d characters", LM_NAME_MAX);
        tok->kind = LM__TOK_IDENT;
        tok->kw = lm__lql_kw_find(lx->text + tok->start, tok->len);
        return 0;
    }
    if (is_digit(c) || (c == '.' && is_digit(peek(lx, 1)))) {
        rc = lex_number(lx, tok, err);
        tok->len = lx->pos - tok->start;
        return rc;
    }
    if (c == '"') {
        rc = lex_quoted(lx, tok, err);
        tok->len = lx->pos - tok->start;
        return rc;
    }
    enum lm__lql_tok kind;
    size_t n = 1;
    int c1 = peek(lx, 1);
    switch (c) {
    case '(': kind = LM__TOK_LPAREN; break;
    case ')': kind = LM__TOK_RPAREN; break;
    case ',': kind = LM__TOK_COMMA; break;
    case ';': kind = LM__TOK_SEMI; break;
    case '*': kind = LM__TOK_STAR; break;
    case '?': kind = LM__TOK_PARAM; break;
    case '-': kind = LM__TOK_MINUS; break;
    case '=': kind = LM__TOK_EQ; break;
    case '<':
        kind = c1 == '=' ? LM__TOK_LE : c1 == '>' ? LM__TOK_NE : LM__TOK_LT;
        n = kind == LM__TOK_LT ? 1 : 2;
        break;
    case '>':
        kind = c1 == '=' ? LM__TOK_GE : LM__TOK_GT;
        n = kind == LM__TOK_GE ? 2 : 1;
        break;
    case '!':
        if (c1 == '=') {
            kind = LM__TOK_NE;
            n = 2;
            break;
        }
        /* fall through */
    default: {
        char what[96];
        describe_char(c, what, sizeof what);
        step(lx);
        return lm__fail_at(err, LM_ESYNTAX, tok->pos.line, tok->pos.column, -1,
                           "unexpected character %s", what);
    }
    }
    for (size_t i = 0; i < n; i++)
        step(lx);
    tok->kind = kind;
    tok->len = n;
    return 0;
}

/* ---------------------------------------------------------------- completeness */

bool lm_lql_complete(const char *text, size_t len)
{
    struct lm__lql_lexer lx;
    struct lm__lql_token tok;
    bool last_semi = false;
    if (!text)
        return false;
    lm__lql_lex_init(&lx, text, len, NULL);
    for (;;) {
        if (lm__lql_lex_next(&lx, &tok, NULL) < 0)
            return !lx.unterminated;
        if (tok.kind == LM__TOK_EOF)
            return last_semi;
        last_semi = tok.kind == LM__TOK_SEMI;
    }
}
