/* lql_parse.c - LQL parser: statements and expressions into a tree in one arena.
 *
 * Recursive descent with one token of look-ahead; docs/LQL.md is the grammar, and the
 * functions below follow its productions in the same order. Errors name what was
 * expected, where, and the token found; positions of "found end of input" point just
 * past the last token so the caret lands on the line that is unfinished. */
#include "lql_int.h"

#include <errno.h>
#include <math.h>
#include <stdalign.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "error.h"

/* ---------------------------------------------------------------- arena */

struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    max_align_t data[];
};

/* Small allocations are carved from `head` blocks; an array that outgrows ARENA_BIG
 * bytes gets a block of its own on the `big` list, resized in place as it grows (a
 * bulk INSERT's values neither get copied at every doubling nor leave copies behind). */
struct lm__lql_arena {
    struct arena_block *head;
    struct arena_block *big;
    size_t next_cap;
};

#define ARENA_FIRST 1024
#define ARENA_MAX_STEP (64 * 1024)
#define ARENA_BIG (64 * 1024)

static struct lm__lql_arena *arena_new(void)
{
    struct lm__lql_arena *a = lm_alloc(sizeof *a);
    if (a) {
        a->head = a->big = NULL;
        a->next_cap = ARENA_FIRST;
    }
    return a;
}

static void free_blocks(struct arena_block *b)
{
    for (struct arena_block *next; b; b = next) {
        next = b->next;
        lm_free(b);
    }
}

static void arena_free(struct lm__lql_arena *a)
{
    if (!a)
        return;
    free_blocks(a->head);
    free_blocks(a->big);
    lm_free(a);
}

/* Resizes the big array `old` (NULL for a new one) of old_n bytes to n > old_n bytes,
 * keeping its bytes and zeroing the rest; NULL (old untouched) when out of memory. */
static void *arena_big(struct lm__lql_arena *a, void *old, size_t old_n, size_t n)
{
    struct arena_block **link = &a->big;
    while (old && (void *)(*link)->data != old)
        link = &(*link)->next;
    if (n > SIZE_MAX - sizeof **link)
        return NULL;
    struct arena_block *b = lm_realloc(old ? *link : NULL, sizeof *b + n);
    if (!b)
        return NULL;
    if (old) {
        *link = b;
    } else {
        b->next = a->big;
        a->big = b;
    }
    b->used = b->cap = n;
    memset((unsigned char *)b->data + old_n, 0, n - old_n);
    return b->data;
}

/* Zeroed memory aligned for any type, or NULL. */
static void *arena_alloc(struct lm__lql_arena *a, size_t n)
{
    const size_t align = alignof(max_align_t);
    if (n > SIZE_MAX / 2)
        return NULL;
    n = (n + align - 1) & ~(align - 1);
    struct arena_block *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > a->next_cap ? n : a->next_cap;
        b = lm_alloc(sizeof *b + cap);
        if (!b)
            return NULL;
        b->used = 0;
        b->cap = cap;
        b->next = a->head;
        a->head = b;
        if (a->next_cap < ARENA_MAX_STEP)
            a->next_cap *= 2;
    }
    void *p = (unsigned char *)b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

/* ---------------------------------------------------------------- parser state */

struct parser {
    struct lm__lql_lexer lx;
    struct lm__lql_token tok;     /* current token */
    int lex_rc;                   /* < 0: tok is stale, the lexer reported this error */
    struct lm_lql_pos end;        /* just past the previous token */
    size_t end_offset;
    struct lm__lql_arena *arena;
    struct lm_error *err;
    uint32_t n_params;
    unsigned depth;
    /* What may still follow the statement parsed so far (NULL-terminated), and after
     * what: used for the error when the statement does not end where it should. */
    const char *const *tail;
    const char *tail_after;
};

static int advance(struct parser *p)
{
    p->end = (struct lm_lql_pos){p->lx.line, p->lx.column};
    p->end_offset = p->lx.pos;
    p->lex_rc = lm__lql_lex_next(&p->lx, &p->tok, p->err);
    return p->lex_rc;
}

static bool is_tok(const struct parser *p, enum lm__lql_tok kind) { return p->tok.kind == kind; }

static bool is_kw(const struct parser *p, enum lm__lql_kw kw)
{
    return p->tok.kind == LM__TOK_IDENT && p->tok.kw == kw;
}

static bool is_name(const struct parser *p)
{
    return p->tok.kind == LM__TOK_QIDENT ||
           (p->tok.kind == LM__TOK_IDENT && !lm__lql_kw_reserved(p->tok.kw));
}

static int oom(struct parser *p)
{
    return lm__fail_at(p->err, -ENOMEM, p->tok.pos.line, p->tok.pos.column, -1,
                       "out of memory");
}

static void *alloc(struct parser *p, size_t n)
{
    return arena_alloc(p->arena, n);
}

/* An arena array of n elements with room for at least one more: `array` itself, or
 * one twice as large holding the same elements (a small old one stays in the arena
 * until the tree is freed; a big one is resized in place). NULL when out of memory.
 * Arrays of more than ARENA_BIG bytes of capacity always live in big blocks. */
static void *grow(struct parser *p, void *array, size_t n, size_t *cap, size_t elem)
{
    if (n < *cap)
        return array;
    size_t new_cap = *cap ? *cap * 2 : 4;
    if (new_cap > SIZE_MAX / elem)
        return NULL;
    size_t old_bytes = *cap * elem, bytes = new_cap * elem;
    void *fresh;
    if (old_bytes > ARENA_BIG)
        fresh = arena_big(p->arena, array, old_bytes, bytes);
    else if (bytes > ARENA_BIG)
        fresh = arena_big(p->arena, NULL, 0, bytes);
    else
        fresh = alloc(p, bytes);
    if (fresh && old_bytes <= ARENA_BIG && n)
        memcpy(fresh, array, n * elem);
    if (fresh)
        *cap = new_cap;
    return fresh;
}

#define GROW(p, arr, n, cap) \
    (((arr) = grow((p), (arr), (n), &(cap), sizeof *(arr))) ? 0 : oom(p))

/* ---------------------------------------------------------------- errors */

/* 'token text' for messages: at most 40 characters, odd bytes as \xNN. */
static void describe_token(const struct parser *p, char *buf, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    if (p->tok.kind == LM__TOK_EOF) {
        snprintf(buf, cap, "end of input");
        return;
    }
    size_t o = 0, n = p->tok.len > 40 ? 40 : p->tok.len;
    const unsigned char *s = (const unsigned char *)p->lx.text + p->tok.start;
    buf[o++] = '\'';
    for (size_t i = 0; i < n && o + 8 < cap; i++) {
        if (s[i] >= 0x20 && s[i] < 0x7f) {
            buf[o++] = (char)s[i];
        } else {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[s[i] >> 4];
            buf[o++] = hex[s[i] & 15];
        }
    }
    if (n < p->tok.len) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '\'';
    buf[o] = '\0';
}

static struct lm_lql_pos found_pos(const struct parser *p)
{
    return p->tok.kind == LM__TOK_EOF ? p->end : p->tok.pos;
}

/* Among opts (NULL-terminated, may be NULL), the one whose first word the current
 * token nearly spells; NULL when the token is not a word or none is close. */
static const char *suggest_option(const struct parser *p, const char *const *opts)
{
    if (!opts || p->tok.kind != LM__TOK_IDENT || lm__lql_kw_reserved(p->tok.kw))
        return NULL;
    char word[LM_NAME_MAX + 1], firsts[16][16];
    const char *cands[16];
    size_t n = 0;
    memcpy(word, p->lx.text + p->tok.start, p->tok.len);
    word[p->tok.len] = '\0';
    for (; opts[n] && n < 16; n++) {
        size_t k = strcspn(opts[n], " ");
        k = k < 15 ? k : 15;
        memcpy(firsts[n], opts[n], k);
        firsts[n][k] = '\0';
        cands[n] = firsts[n];
    }
    const char *best = lm_lql_suggest(word, cands, n);
    return best ? opts[(size_t)(best - &firsts[0][0]) / sizeof firsts[0]] : NULL;
}

/* "expected <what>[ after <after>], found <token>[ <note>][; did you mean <hint>?]". */
static int fail_found(struct parser *p, const char *what, const char *after,
                      const char *note, const char *hint)
{
    if (p->lex_rc < 0) /* the lexer has reported the real problem */
        return p->lex_rc;
    char found[192];
    describe_token(p, found, sizeof found);
    struct lm_lql_pos at = found_pos(p);
    return lm__fail_at(p->err, LM_ESYNTAX, at.line, at.column, -1,
                       "expected %s%s%s, found %s%s%s%s%s%s", what, after ? " after " : "",
                       after ? after : "", found, note ? " " : "", note ? note : "",
                       hint ? "; did you mean " : "", hint ? hint : "", hint ? "?" : "");
}

/* The same, suggesting the option of opts (NULL-terminated, or NULL) that the found
 * word nearly spells. */
static int fail_expected(struct parser *p, const char *what, const char *after,
                         const char *const *opts)
{
    return fail_found(p, what, after, NULL, suggest_option(p, opts));
}

/* ---------------------------------------------------------------- terminals */

/* Requires the current token to be `kind` and steps over it. */
static int expect(struct parser *p, enum lm__lql_tok kind, const char *what,
                  const char *after)
{
    if (!is_tok(p, kind))
        return fail_expected(p, what, after, NULL);
    return advance(p);
}

static int expect_kw(struct parser *p, enum lm__lql_kw kw, const char *after)
{
    if (!is_kw(p, kw))
        return fail_expected(p, lm__lql_kw_text(kw), after, NULL);
    return advance(p);
}

/* A name: a word that is not reserved, or a quoted identifier (unescaped). */
static int parse_name(struct parser *p, struct lm_lql_name *out, const char *what,
                      const char *after)
{
    if (!is_name(p)) {
        char note[96];
        if (p->tok.kind != LM__TOK_IDENT) /* a reserved word gets a note on quoting */
            return fail_expected(p, what, after, NULL);
        snprintf(note, sizeof note, "(%s is a keyword; write \"%.*s\" to use it as a name)",
                 lm__lql_kw_text(p->tok.kw), (int)p->tok.len, p->lx.text + p->tok.start);
        return fail_found(p, what, after, note, NULL);
    }
    const char *s = p->lx.text + p->tok.start;
    size_t n = p->tok.len;
    char *text = alloc(p, n + 1);
    if (!text)
        return oom(p);
    out->pos = p->tok.pos;
    out->quoted = p->tok.kind == LM__TOK_QIDENT;
    if (out->quoted) {
        size_t o = 0;
        for (size_t i = 1; i + 1 < n; i++) {
            text[o++] = s[i];
            if (s[i] == '"')
                i++; /* "" stands for one quote */
        }
        text[o] = '\0';
    } else {
        memcpy(text, s, n);
        text[n] = '\0';
    }
    out->text = text;
    return advance(p);
}

/* After an item of a comma-separated list: steps over the ',' and points *after at it
 * for the next item's errors; *more says whether another item follows. */
static int list_next(struct parser *p, const char **after, bool *more)
{
    *more = is_tok(p, LM__TOK_COMMA);
    if (!*more)
        return 0;
    *after = "','";
    return advance(p);
}

/* value = [ "-" ] ( number | "?" ) */
static int parse_value(struct parser *p, struct lm_lql_value *v, const char *after)
{
    bool minus = false;
    v->pos = p->tok.pos;
    if (is_tok(p, LM__TOK_MINUS)) {
        minus = true;
        int rc = advance(p);
        if (rc < 0)
            return rc;
    }
    if (is_tok(p, LM__TOK_NUMBER)) {
        v->number = minus ? -p->tok.number : p->tok.number;
        v->bound = true;
    } else if (is_tok(p, LM__TOK_PARAM)) {
        v->param = ++p->n_params;
        v->negated = minus;
    } else {
        return fail_expected(p, "a number", minus ? "'-'" : after, NULL);
    }
    return advance(p);
}

static bool is_count(double v)
{
    return v >= 0 && v <= 9007199254740992.0 && (double)(uint64_t)v == v;
}

/* count = integer | "?"   (an integer in [0, 2^53]) */
static int parse_count(struct parser *p, struct lm_lql_value *v, const char *after)
{
    v->pos = p->tok.pos;
    v->integer = true;
    if (is_tok(p, LM__TOK_NUMBER) && is_count(p->tok.number)) {
        v->number = p->tok.number;
        v->bound = true;
    } else if (is_tok(p, LM__TOK_PARAM)) {
        v->param = ++p->n_params;
    } else {
        return fail_expected(p, "a non-negative integer", after, NULL);
    }
    return advance(p);
}

/* point = "(" value "," value "," value ")" */
static int parse_point(struct parser *p, struct lm_lql_value v[3], const char *after)
{
    static const char *const nth[3] = {"the first coordinate", "the second coordinate",
                                       "the third coordinate"};
    int rc = expect(p, LM__TOK_LPAREN, "a point (x, y, z)", after);
    for (int i = 0; i < 3 && rc == 0; i++) {
        rc = parse_value(p, &v[i], i ? "','" : "'('");
        if (rc == 0)
            rc = expect(p, i < 2 ? LM__TOK_COMMA : LM__TOK_RPAREN, i < 2 ? "','" : "')'",
                        nth[i]);
    }
    return rc;
}

/* ---------------------------------------------------------------- expressions */

static int parse_or(struct parser *p, struct lm_lql_expr **out, const char *after);

static struct lm_lql_expr *new_expr(struct parser *p, enum lm_lql_expr_kind kind,
                                    struct lm_lql_pos pos)
{
    struct lm_lql_expr *e = alloc(p, sizeof *e);
    if (e) {
        e->kind = kind;
        e->pos = pos;
    }
    return e;
}

static int enter(struct parser *p)
{
    if (++p->depth > LM_LQL_MAX_DEPTH)
        return lm__fail_at(p->err, LM_ELIMIT, p->tok.pos.line, p->tok.pos.column, -1,
                           "expression nested more than %d levels deep", LM_LQL_MAX_DEPTH);
    return 0;
}

/* region = "INSIDE" "BOX" point "TO" point | "WITHIN" value "OF" point
 *        | "IN" "FRUSTUM" "(" "EYE" point "," "TARGET" point "," "UP" point ","
 *          "FOV" value "," "ASPECT" value "," "NEAR" value "," "FAR" value ")" */
static int parse_region(struct parser *p, struct lm_lql_region *r)
{
    int rc;
    if (is_kw(p, LM__KW_INSIDE)) {
        r->kind = LM_REGION_BOX;
        if ((rc = advance(p)) < 0 || (rc = expect_kw(p, LM__KW_BOX, "INSIDE")) < 0 ||
            (rc = parse_point(p, r->box.min, "BOX")) < 0 ||
            (rc = expect_kw(p, LM__KW_TO, "the first corner of the box")) < 0)
            return rc;
        return parse_point(p, r->box.max, "TO");
    }
    if (is_kw(p, LM__KW_WITHIN)) {
        r->kind = LM_REGION_SPHERE;
        if ((rc = advance(p)) < 0 || (rc = parse_value(p, &r->sphere.radius, "WITHIN")) < 0 ||
            (rc = expect_kw(p, LM__KW_OF, "the radius")) < 0)
            return rc;
        return parse_point(p, r->sphere.center, "OF");
    }
    static const struct {
        enum lm__lql_kw kw;
        const char *after;
    } parts[7] = {{LM__KW_EYE, "'('"},    {LM__KW_TARGET, "the eye point"},
                  {LM__KW_UP, "the target point"}, {LM__KW_FOV, "the up vector"},
                  {LM__KW_ASPECT, "the field of view"}, {LM__KW_NEAR, "the aspect ratio"},
                  {LM__KW_FAR, "the near distance"}};
    struct lm_lql_value *slot[7] = {r->frustum.eye, r->frustum.target, r->frustum.up,
                                    &r->frustum.fov_y, &r->frustum.aspect,
                                    &r->frustum.near_d, &r->frustum.far_d};
    r->kind = LM_REGION_FRUSTUM;
    if ((rc = advance(p)) < 0 || (rc = expect_kw(p, LM__KW_FRUSTUM, "IN")) < 0 ||
        (rc = expect(p, LM__TOK_LPAREN, "'('", "FRUSTUM")) < 0)
        return rc;
    for (int i = 0; i < 7; i++) {
        const char *word = lm__lql_kw_text(parts[i].kw);
        if (i > 0 && (rc = expect(p, LM__TOK_COMMA, "','", parts[i].after)) < 0)
            return rc;
        if ((rc = expect_kw(p, parts[i].kw, i > 0 ? "','" : "'('")) < 0)
            return rc;
        rc = i < 3 ? parse_point(p, slot[i], word) : parse_value(p, slot[i], word);
        if (rc < 0)
            return rc;
    }
    return expect(p, LM__TOK_RPAREN, "')'", "the far distance");
}

/* The keyword of words[0, n) that an unquoted name nearly spells, or NULL. */
static const char *misspelt_keyword(const struct lm_lql_name *name, const char *const *words,
                                    size_t n)
{
    return name->quoted ? NULL : lm_lql_suggest(name->text, words, n);
}

/* comparison = name ( op value | "BETWEEN" value "AND" value ) */
static int parse_comparison(struct parser *p, struct lm_lql_expr *e)
{
    static const char *const misspelt[] = {"INSIDE", "WITHIN", "IN", "NOT", "TRUE"};
    int rc = parse_name(p, &e->cmp.column, "a condition", NULL);
    if (rc < 0)
        return rc;
    enum lm_cmp op;
    switch (p->tok.kind) {
    case LM__TOK_LT: op = LM_CMP_LT; break;
    case LM__TOK_LE: op = LM_CMP_LE; break;
    case LM__TOK_GT: op = LM_CMP_GT; break;
    case LM__TOK_GE: op = LM_CMP_GE; break;
    case LM__TOK_EQ: op = LM_CMP_EQ; break;
    case LM__TOK_NE: op = LM_CMP_NE; break;
    default:
        if (is_kw(p, LM__KW_BETWEEN)) {
            op = LM_CMP_BETWEEN;
            break;
        }
        {
            /* A misspelt INSIDE, WITHIN, ... reads as a column: say so. */
            char after[LM_NAME_MAX + 16];
            snprintf(after, sizeof after, "column '%s'", e->cmp.column.text);
            return fail_found(p, "a comparison operator or BETWEEN", after, NULL,
                              misspelt_keyword(&e->cmp.column, misspelt, 5));
        }
    }
    char op_text[8];
    snprintf(op_text, sizeof op_text, "'%.*s'", (int)p->tok.len, p->lx.text + p->tok.start);
    e->cmp.op = op;
    if ((rc = advance(p)) < 0)
        return rc;
    if (op != LM_CMP_BETWEEN)
        return parse_value(p, &e->cmp.a, op_text);
    if ((rc = parse_value(p, &e->cmp.a, "BETWEEN")) < 0 ||
        (rc = expect_kw(p, LM__KW_AND, "the lower bound of BETWEEN")) < 0)
        return rc;
    return parse_value(p, &e->cmp.b, "AND");
}

/* primary = "(" expr ")" | "TRUE" | region | comparison */
static int parse_primary(struct parser *p, struct lm_lql_expr **out, const char *after)
{
    struct lm_lql_pos pos = p->tok.pos;
    int rc;
    if (is_tok(p, LM__TOK_LPAREN)) {
        char close[64];
        snprintf(close, sizeof close, "expression (to close '(' at %u:%u)", pos.line,
                 pos.column);
        if ((rc = enter(p)) < 0 || (rc = advance(p)) < 0 || (rc = parse_or(p, out, "'('")) < 0 ||
            (rc = expect(p, LM__TOK_RPAREN, "')'", close)) < 0)
            return rc;
        p->depth--;
        return 0;
    }
    if (is_kw(p, LM__KW_TRUE)) {
        if (!(*out = new_expr(p, LM_LQL_EXPR_TRUE, pos)))
            return oom(p);
        return advance(p);
    }
    bool region = is_kw(p, LM__KW_INSIDE) || is_kw(p, LM__KW_WITHIN) || is_kw(p, LM__KW_IN);
    if (!region && !is_name(p))
        return fail_expected(p, "a condition", after, NULL);
    struct lm_lql_expr *e = new_expr(p, region ? LM_LQL_EXPR_REGION : LM_LQL_EXPR_CMP, pos);
    if (!e)
        return oom(p);
    rc = region ? parse_region(p, &e->region) : parse_comparison(p, e);
    if (rc == 0)
        *out = e;
    return rc;
}

/* not = "NOT" not | primary */
static int parse_not(struct parser *p, struct lm_lql_expr **out, const char *after)
{
    if (!is_kw(p, LM__KW_NOT))
        return parse_primary(p, out, after);
    struct lm_lql_expr *e = new_expr(p, LM_LQL_EXPR_NOT, p->tok.pos);
    if (!e)
        return oom(p);
    int rc;
    if ((rc = enter(p)) < 0 || (rc = advance(p)) < 0 || (rc = parse_not(p, &e->operand, "NOT")) < 0)
        return rc;
    p->depth--;
    *out = e;
    return 0;
}

typedef int (*operand_fn)(struct parser *p, struct lm_lql_expr **out, const char *after);

/* A chain `a OP b OP c` of one operator into one node (or `a` alone). */
static int parse_chain(struct parser *p, struct lm_lql_expr **out, const char *after,
                       enum lm__lql_kw op, enum lm_lql_expr_kind kind, operand_fn operand)
{
    struct lm_lql_expr *first;
    int rc = operand(p, &first, after);
    if (rc < 0 || !is_kw(p, op)) {
        if (rc == 0)
            *out = first;
        return rc;
    }
    struct lm_lql_expr *e = new_expr(p, kind, first->pos);
    size_t cap = 0;
    if (!e)
        return oom(p);
    while (rc == 0 && is_kw(p, op)) {
        if ((rc = GROW(p, e->list.args, e->list.n, cap)) < 0 || (rc = advance(p)) < 0)
            return rc;
        e->list.args[e->list.n++] = first;
        rc = operand(p, &first, lm__lql_kw_text(op));
    }
    if (rc == 0 && (rc = GROW(p, e->list.args, e->list.n, cap)) == 0) {
        e->list.args[e->list.n++] = first;
        *out = e;
    }
    return rc;
}

static int parse_and(struct parser *p, struct lm_lql_expr **out, const char *after)
{
    return parse_chain(p, out, after, LM__KW_AND, LM_LQL_EXPR_AND, parse_not);
}

/* expr = and { "OR" and } ; and = not { "AND" not } */
static int parse_or(struct parser *p, struct lm_lql_expr **out, const char *after)
{
    return parse_chain(p, out, after, LM__KW_OR, LM_LQL_EXPR_OR, parse_and);
}

/* ---------------------------------------------------------------- statements */

static const char *const tail_none[] = {NULL};
static const char *const tail_more_rows[] = {"','", NULL};
static const char *const tail_expr[] = {"AND", "OR", NULL};
static const char *const tail_sel_from[] = {"NEAREST", "WHERE", "GROUP BY", "ORDER BY",
                                            "LIMIT", NULL};
static const char *const tail_sel_nearest[] = {"WHERE", "GROUP BY", "ORDER BY", "LIMIT",
                                               NULL};
static const char *const tail_sel_where[] = {"AND", "OR", "GROUP BY", "ORDER BY", "LIMIT",
                                             NULL};
static const char *const tail_sel_group[] = {"ORDER BY", "LIMIT", NULL};
static const char *const tail_sel_order[] = {"ASC", "DESC", "','", "LIMIT", NULL};
static const char *const tail_sel_order_dir[] = {"','", "LIMIT", NULL};
static const char *const tail_ray_dir[] = {"MAX", "RETURN", NULL};
static const char *const tail_ray_max[] = {"RETURN", NULL};

static void set_tail(struct parser *p, const char *const *opts, const char *after)
{
    p->tail = opts;
    p->tail_after = after;
}

/* CREATE FIELD name "(" item { "," item } ")"
 * item = "VOXEL" value | "CHUNK" count | name type */
static int parse_create(struct parser *p, struct lm_lql_stmt *s)
{
    static const char *const types[] = {"f32", "i32", "u8", NULL};
    static const char *const items[] = {"VOXEL", "CHUNK"};
    struct lm_lql_create *c = &s->create;
    size_t cap = 0;
    bool has_voxel = false;
    const char *after = "'('";
    int rc;
    if ((rc = expect_kw(p, LM__KW_FIELD, "CREATE")) < 0 ||
        (rc = parse_name(p, &s->field, "a field name", "CREATE FIELD")) < 0 ||
        (rc = expect(p, LM__TOK_LPAREN, "'('", "the field name")) < 0)
        return rc;
    for (;;) {
        struct lm_lql_pos at = p->tok.pos;
        if (is_kw(p, LM__KW_VOXEL) || is_kw(p, LM__KW_CHUNK)) {
            bool voxel = is_kw(p, LM__KW_VOXEL);
            bool *seen = voxel ? &has_voxel : &c->has_chunk;
            if (*seen)
                return lm__fail_at(p->err, LM_ESYNTAX, at.line, at.column, -1,
                                   "duplicate %s in the field definition",
                                   voxel ? "VOXEL" : "CHUNK");
            *seen = true;
            if ((rc = advance(p)) < 0)
                return rc;
            rc = voxel ? parse_value(p, &c->voxel, "VOXEL") : parse_count(p, &c->chunk, "CHUNK");
            after = voxel ? "the voxel size" : "the chunk edge";
        } else if (is_name(p)) {
            if ((rc = GROW(p, c->columns, c->n_columns, cap)) < 0)
                return rc;
            struct lm_lql_column_def *d = &c->columns[c->n_columns++];
            if ((rc = parse_name(p, &d->name, "a column name", after)) < 0)
                return rc;
            if (is_kw(p, LM__KW_F32) || is_kw(p, LM__KW_I32) || is_kw(p, LM__KW_U8)) {
                d->type = is_kw(p, LM__KW_F32) ? LM_TYPE_F32
                          : is_kw(p, LM__KW_I32) ? LM_TYPE_I32 : LM_TYPE_U8;
                rc = advance(p);
            } else if (p->tok.kind == LM__TOK_IDENT) {
                rc = fail_expected(p, "a column type (f32, i32 or u8)", "the column name",
                                   types);
            } else { /* `VOXL 1` reads as a column named VOXL */
                rc = fail_found(p, "a column type (f32, i32 or u8)", "the column name", NULL,
                                misspelt_keyword(&d->name, items, 2));
            }
            after = "the column definition";
        } else {
            return fail_expected(p, "VOXEL, CHUNK or a column definition", after, NULL);
        }
        if (rc < 0)
            return rc;
        if (is_tok(p, LM__TOK_RPAREN))
            break;
        if ((rc = expect(p, LM__TOK_COMMA, "',' or ')'", after)) < 0)
            return rc;
        after = "','";
    }
    if (!has_voxel)
        return fail_expected(p, "VOXEL <size> in the field definition", NULL, NULL);
    set_tail(p, tail_none, "the field definition");
    return advance(p);
}

/* INSERT INTO name [ "(" name { "," name } ")" ] VALUES row { "," row }
 * row = "(" value { "," value } ")" */
static int parse_insert(struct parser *p, struct lm_lql_stmt *s)
{
    struct lm_lql_insert *in = &s->insert;
    size_t cap = 0;
    int rc;
    if ((rc = expect_kw(p, LM__KW_INTO, "INSERT")) < 0 ||
        (rc = parse_name(p, &s->field, "a field name", "INSERT INTO")) < 0)
        return rc;
    if (is_tok(p, LM__TOK_LPAREN)) {
        const char *after = "'('";
        if ((rc = advance(p)) < 0)
            return rc;
        for (bool more = true; more;)
            if ((rc = GROW(p, in->columns, in->n_columns, cap)) < 0 ||
                (rc = parse_name(p, &in->columns[in->n_columns++], "a column name", after)) < 0 ||
                (rc = list_next(p, &after, &more)) < 0)
                return rc;
        if ((rc = expect(p, LM__TOK_RPAREN, "',' or ')'", "the column name")) < 0 ||
            (rc = expect_kw(p, LM__KW_VALUES, "the column list")) < 0)
            return rc;
    } else if (!is_kw(p, LM__KW_VALUES)) {
        return fail_expected(p, "'(' or VALUES", "the field name", NULL);
    } else if ((rc = advance(p)) < 0) {
        return rc;
    }
    cap = 0;
    size_t n_values = 0;
    const char *after_row = "VALUES";
    for (bool more_rows = true; more_rows;) {
        struct lm_lql_pos row_pos = p->tok.pos;
        const char *after = "'('";
        size_t width = 0;
        if ((rc = expect(p, LM__TOK_LPAREN, "'('", after_row)) < 0)
            return rc;
        for (bool more = true; more; width++)
            if ((rc = GROW(p, in->values, n_values, cap)) < 0 ||
                (rc = parse_value(p, &in->values[n_values++], after)) < 0 ||
                (rc = list_next(p, &after, &more)) < 0)
                return rc;
        if ((rc = expect(p, LM__TOK_RPAREN, "',' or ')'", "the value")) < 0)
            return rc;
        in->n_rows++;
        size_t want = in->n_columns ? in->n_columns : in->n_rows > 1 ? in->width : width;
        if (width != want)
            return lm__fail_at(p->err, LM_ESYNTAX, row_pos.line, row_pos.column, -1,
                               "row %zu has %zu value%s but %s %zu", in->n_rows, width,
                               width == 1 ? "" : "s",
                               in->n_columns ? "the column list names" : "row 1 has", want);
        in->width = width;
        if ((rc = list_next(p, &after_row, &more_rows)) < 0)
            return rc;
    }
    set_tail(p, tail_more_rows, "the row");
    return 0;
}

/* aggregate = ( COUNT | SUM | AVG | MIN | MAX ) "(" name ")" | COUNT "(" "*" ")", with
 * the function's name already read into it->column and the current token its '('. */
static int parse_aggregate(struct parser *p, struct lm_lql_select_item *it,
                           enum lm__lql_kw kw)
{
    static const enum lm_lql_agg aggs[] = {
        [LM__KW_COUNT] = LM_LQL_AGG_COUNT, [LM__KW_SUM] = LM_LQL_AGG_SUM,
        [LM__KW_AVG] = LM_LQL_AGG_AVG,     [LM__KW_MIN] = LM_LQL_AGG_MIN,
        [LM__KW_MAX] = LM_LQL_AGG_MAX};
    if (kw >= sizeof aggs / sizeof aggs[0] || aggs[kw] == LM_LQL_AGG_NONE)
        return lm__fail_at(p->err, LM_ESYNTAX, it->pos.line, it->pos.column, -1,
                           "unknown function '%s' (aggregates are count, sum, avg, min "
                           "and max)", it->column.text);
    char after[16];
    snprintf(after, sizeof after, "'%s('", it->column.text);
    it->agg = aggs[kw];
    it->column = (struct lm_lql_name){0};
    int rc = advance(p);
    if (rc < 0)
        return rc;
    if (it->agg == LM_LQL_AGG_COUNT && is_tok(p, LM__TOK_STAR))
        rc = advance(p);
    else
        rc = parse_name(p, &it->column,
                        it->agg == LM_LQL_AGG_COUNT ? "'*' or a column name" : "a column name",
                        after);
    return rc < 0 ? rc : expect(p, LM__TOK_RPAREN, "')'", "the aggregated column");
}

/* item = ( name | aggregate ) [ AS name ] */
static int parse_select_item(struct parser *p, struct lm_lql_select_item *it,
                             const char *after)
{
    it->pos = p->tok.pos;
    if (!is_name(p))
        return fail_expected(p, "'*', a column or an aggregate", after, NULL);
    enum lm__lql_kw kw = p->tok.kind == LM__TOK_IDENT ? p->tok.kw : LM__KW_NONE;
    int rc = parse_name(p, &it->column, "a column", after);
    if (rc == 0 && is_tok(p, LM__TOK_LPAREN))
        rc = parse_aggregate(p, it, kw);
    if (rc == 0 && is_kw(p, LM__KW_AS) && (rc = advance(p)) == 0)
        rc = parse_name(p, &it->alias, "an alias", "AS");
    return rc;
}

/* SELECT ( "*" | item { "," item } ) FROM name [ NEAREST count TO point ]
 *   [ WHERE expr ] [ GROUP BY ( VOXEL | CHUNK | LOD count ) ]
 *   [ ORDER BY name [ ASC | DESC ] { "," name [ ASC | DESC ] } ] [ LIMIT count ] */
static int parse_select(struct parser *p, struct lm_lql_stmt *s)
{
    static const char *const groups[] = {"VOXEL", "CHUNK", "LOD", NULL};
    struct lm_lql_select *sel = &s->select;
    size_t cap = 0;
    int rc;
    if (is_tok(p, LM__TOK_STAR)) {
        sel->star = true;
        if ((rc = advance(p)) < 0)
            return rc;
    } else {
        const char *after = "SELECT";
        for (bool more = true; more;)
            if ((rc = GROW(p, sel->items, sel->n_items, cap)) < 0 ||
                (rc = parse_select_item(p, &sel->items[sel->n_items++], after)) < 0 ||
                (rc = list_next(p, &after, &more)) < 0)
                return rc;
    }
    if ((rc = expect_kw(p, LM__KW_FROM, "select list")) < 0 ||
        (rc = parse_name(p, &s->field, "a field name", "FROM")) < 0)
        return rc;
    set_tail(p, tail_sel_from, "FROM clause");
    if (is_kw(p, LM__KW_NEAREST)) {
        sel->has_nearest = true;
        if ((rc = advance(p)) < 0 || (rc = parse_count(p, &sel->nearest_k, "NEAREST")) < 0 ||
            (rc = expect_kw(p, LM__KW_TO, "the neighbour count")) < 0 ||
            (rc = parse_point(p, sel->nearest_point, "TO")) < 0)
            return rc;
        set_tail(p, tail_sel_nearest, "NEAREST clause");
    }
    if (is_kw(p, LM__KW_WHERE)) {
        if ((rc = advance(p)) < 0 || (rc = parse_or(p, &sel->where, "WHERE")) < 0)
            return rc;
        set_tail(p, tail_sel_where, "WHERE clause");
    }
    if (is_kw(p, LM__KW_GROUP)) {
        sel->group_pos = p->tok.pos;
        if ((rc = advance(p)) < 0 || (rc = expect_kw(p, LM__KW_BY, "GROUP")) < 0)
            return rc;
        if (is_kw(p, LM__KW_VOXEL) || is_kw(p, LM__KW_CHUNK)) {
            sel->group = is_kw(p, LM__KW_VOXEL) ? LM_LQL_GROUP_VOXEL : LM_LQL_GROUP_CHUNK;
            rc = advance(p);
        } else if (is_kw(p, LM__KW_LOD)) {
            sel->group = LM_LQL_GROUP_LOD;
            if ((rc = advance(p)) == 0)
                rc = parse_count(p, &sel->lod, "LOD");
        } else {
            rc = fail_expected(p, "VOXEL, CHUNK or LOD", "GROUP BY", groups);
        }
        if (rc < 0)
            return rc;
        set_tail(p, tail_sel_group, "GROUP BY clause");
    }
    if (is_kw(p, LM__KW_ORDER)) {
        const char *after = "ORDER BY";
        cap = 0;
        if ((rc = advance(p)) < 0 || (rc = expect_kw(p, LM__KW_BY, "ORDER")) < 0)
            return rc;
        for (bool more = true; more;) {
            if ((rc = GROW(p, sel->order, sel->n_order, cap)) < 0)
                return rc;
            struct lm_lql_order *o = &sel->order[sel->n_order++];
            if ((rc = parse_name(p, &o->column, "a column name", after)) < 0)
                return rc;
            set_tail(p, tail_sel_order, "ORDER BY clause");
            if (is_kw(p, LM__KW_ASC) || is_kw(p, LM__KW_DESC)) {
                o->desc = is_kw(p, LM__KW_DESC);
                if ((rc = advance(p)) < 0)
                    return rc;
                set_tail(p, tail_sel_order_dir, "ORDER BY clause");
            }
            if ((rc = list_next(p, &after, &more)) < 0)
                return rc;
        }
    }
    if (is_kw(p, LM__KW_LIMIT)) {
        sel->has_limit = true;
        if ((rc = advance(p)) < 0 || (rc = parse_count(p, &sel->limit, "LIMIT")) < 0)
            return rc;
        set_tail(p, tail_none, "LIMIT clause");
    }
    return 0;
}

/* RAYCAST name FROM point DIR point [ MAX value ] [ RETURN ( FIRST | ALL ) ] */
static int parse_raycast(struct parser *p, struct lm_lql_stmt *s)
{
    static const char *const modes[] = {"FIRST", "ALL", NULL};
    struct lm_lql_raycast *r = &s->raycast;
    int rc;
    if ((rc = parse_name(p, &s->field, "a field name", "RAYCAST")) < 0 ||
        (rc = expect_kw(p, LM__KW_FROM, "the field name")) < 0 ||
        (rc = parse_point(p, r->origin, "FROM")) < 0 ||
        (rc = expect_kw(p, LM__KW_DIR, "the ray origin")) < 0 ||
        (rc = parse_point(p, r->dir, "DIR")) < 0)
        return rc;
    set_tail(p, tail_ray_dir, "the ray direction");
    if (is_kw(p, LM__KW_MAX)) {
        r->has_max = true;
        if ((rc = advance(p)) < 0 || (rc = parse_value(p, &r->max_dist, "MAX")) < 0)
            return rc;
        set_tail(p, tail_ray_max, "MAX distance");
    }
    if (is_kw(p, LM__KW_RETURN)) {
        if ((rc = advance(p)) < 0)
            return rc;
        if (!is_kw(p, LM__KW_FIRST) && !is_kw(p, LM__KW_ALL))
            return fail_expected(p, "FIRST or ALL", "RETURN", modes);
        r->mode = is_kw(p, LM__KW_ALL) ? LM_RAY_ALL : LM_RAY_FIRST;
        set_tail(p, tail_none, "RETURN clause");
        return advance(p);
    }
    return 0;
}

/* RADIANCE name AT point TOWARD point */
static int parse_radiance(struct parser *p, struct lm_lql_stmt *s)
{
    int rc;
    if ((rc = parse_name(p, &s->field, "a field name", "RADIANCE")) < 0 ||
        (rc = expect_kw(p, LM__KW_AT, "the field name")) < 0 ||
        (rc = parse_point(p, s->radiance.at, "AT")) < 0 ||
        (rc = expect_kw(p, LM__KW_TOWARD, "the point")) < 0 ||
        (rc = parse_point(p, s->radiance.toward, "TOWARD")) < 0)
        return rc;
    set_tail(p, tail_none, "the direction");
    return 0;
}

/* WHERE expr, required by DELETE and UPDATE (WHERE TRUE for every sample). */
static int parse_required_where(struct parser *p, struct lm_lql_expr **out,
                                const char *what, const char *after, const char *note)
{
    int rc;
    if (!is_kw(p, LM__KW_WHERE))
        return fail_found(p, what, after, note, NULL);
    if ((rc = advance(p)) < 0 || (rc = parse_or(p, out, "WHERE")) < 0)
        return rc;
    set_tail(p, tail_expr, "WHERE clause");
    return 0;
}

/* DELETE FROM name WHERE expr */
static int parse_delete(struct parser *p, struct lm_lql_stmt *s)
{
    int rc;
    if ((rc = expect_kw(p, LM__KW_FROM, "DELETE")) < 0 ||
        (rc = parse_name(p, &s->field, "a field name", "DELETE FROM")) < 0)
        return rc;
    return parse_required_where(p, &s->delete_where, "WHERE", "the field name",
                                "(write WHERE TRUE to delete every sample)");
}

/* UPDATE name SET name "=" value { "," name "=" value } WHERE expr */
static int parse_update(struct parser *p, struct lm_lql_stmt *s)
{
    struct lm_lql_update *u = &s->update;
    size_t cap = 0;
    const char *after = "SET";
    int rc;
    if ((rc = parse_name(p, &s->field, "a field name", "UPDATE")) < 0 ||
        (rc = expect_kw(p, LM__KW_SET, "the field name")) < 0)
        return rc;
    for (bool more = true; more;) {
        if ((rc = GROW(p, u->sets, u->n_sets, cap)) < 0)
            return rc;
        struct lm_lql_set *set = &u->sets[u->n_sets++];
        if ((rc = parse_name(p, &set->column, "a column name", after)) < 0 ||
            (rc = expect(p, LM__TOK_EQ, "'='", "the column name")) < 0 ||
            (rc = parse_value(p, &set->value, "'='")) < 0 ||
            (rc = list_next(p, &after, &more)) < 0)
            return rc;
    }
    return parse_required_where(p, &u->where, "',' or WHERE", "the assignment",
                                "(write WHERE TRUE to update every sample)");
}

static const char *const statement_words[] = {
    "SELECT", "INSERT", "CREATE", "DROP",  "SHOW",    "DESCRIBE",
    "DELETE", "UPDATE", "RAYCAST", "RADIANCE", "EXPLAIN", NULL};

static int parse_statement(struct parser *p, struct lm_lql_stmt *s, bool top)
{
    s->pos = p->tok.pos;
    s->offset = p->tok.start;
    enum lm__lql_kw kw = p->tok.kind == LM__TOK_IDENT ? p->tok.kw : LM__KW_NONE;
    int rc;
    switch (kw) {
    case LM__KW_CREATE: s->kind = LM_LQL_CREATE_FIELD; break;
    case LM__KW_DROP: s->kind = LM_LQL_DROP_FIELD; break;
    case LM__KW_SHOW: s->kind = LM_LQL_SHOW_FIELDS; break;
    case LM__KW_DESCRIBE: s->kind = LM_LQL_DESCRIBE; break;
    case LM__KW_INSERT: s->kind = LM_LQL_INSERT; break;
    case LM__KW_SELECT: s->kind = LM_LQL_SELECT; break;
    case LM__KW_RAYCAST: s->kind = LM_LQL_RAYCAST; break;
    case LM__KW_RADIANCE: s->kind = LM_LQL_RADIANCE; break;
    case LM__KW_DELETE: s->kind = LM_LQL_DELETE; break;
    case LM__KW_UPDATE: s->kind = LM_LQL_UPDATE; break;
    case LM__KW_EXPLAIN:
        if (top) {
            s->kind = LM_LQL_EXPLAIN;
            break;
        }
        /* fall through */
    default:
        return fail_expected(p,
                             "a statement (SELECT, INSERT, CREATE, DROP, SHOW, DESCRIBE, "
                             "DELETE, UPDATE, RAYCAST, RADIANCE or EXPLAIN)",
                             top ? NULL : "EXPLAIN", statement_words);
    }
    if ((rc = advance(p)) < 0)
        return rc;
    switch (s->kind) {
    case LM_LQL_CREATE_FIELD: rc = parse_create(p, s); break;
    case LM_LQL_DROP_FIELD:
        if ((rc = expect_kw(p, LM__KW_FIELD, "DROP")) == 0)
            rc = parse_name(p, &s->field, "a field name", "DROP FIELD");
        set_tail(p, tail_none, "the field name");
        break;
    case LM_LQL_SHOW_FIELDS:
        rc = expect_kw(p, LM__KW_FIELDS, "SHOW");
        set_tail(p, tail_none, "SHOW FIELDS");
        break;
    case LM_LQL_DESCRIBE:
        rc = parse_name(p, &s->field, "a field name", "DESCRIBE");
        set_tail(p, tail_none, "the field name");
        break;
    case LM_LQL_INSERT: rc = parse_insert(p, s); break;
    case LM_LQL_SELECT: rc = parse_select(p, s); break;
    case LM_LQL_RAYCAST: rc = parse_raycast(p, s); break;
    case LM_LQL_RADIANCE: rc = parse_radiance(p, s); break;
    case LM_LQL_DELETE: rc = parse_delete(p, s); break;
    case LM_LQL_UPDATE: rc = parse_update(p, s); break;
    case LM_LQL_EXPLAIN:
        if (!(s->explain = alloc(p, sizeof *s->explain)))
            return oom(p);
        rc = parse_statement(p, s->explain, false);
        break;
    }
    s->length = p->end_offset - s->offset;
    return rc;
}

/* ---------------------------------------------------------------- parameters */

static void note_values(struct lm_lql_value *v, size_t n, struct lm_lql_value **params)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].param)
            params[v[i].param - 1] = &v[i];
}

static void note_expr(struct lm_lql_expr *e, struct lm_lql_value **params)
{
    switch (e->kind) {
    case LM_LQL_EXPR_AND:
    case LM_LQL_EXPR_OR:
        for (size_t i = 0; i < e->list.n; i++)
            note_expr(e->list.args[i], params);
        break;
    case LM_LQL_EXPR_NOT: note_expr(e->operand, params); break;
    case LM_LQL_EXPR_CMP:
        note_values(&e->cmp.a, 1, params);
        note_values(&e->cmp.b, 1, params);
        break;
    case LM_LQL_EXPR_REGION:
        if (e->region.kind == LM_REGION_BOX) {
            note_values(e->region.box.min, 3, params);
            note_values(e->region.box.max, 3, params);
        } else if (e->region.kind == LM_REGION_SPHERE) {
            note_values(&e->region.sphere.radius, 1, params);
            note_values(e->region.sphere.center, 3, params);
        } else {
            note_values(e->region.frustum.eye, 3, params);
            note_values(e->region.frustum.target, 3, params);
            note_values(e->region.frustum.up, 3, params);
            note_values(&e->region.frustum.fov_y, 1, params);
            note_values(&e->region.frustum.aspect, 1, params);
            note_values(&e->region.frustum.near_d, 1, params);
            note_values(&e->region.frustum.far_d, 1, params);
        }
        break;
    case LM_LQL_EXPR_TRUE: break;
    }
}

/* Points params[k - 1] at the slot of parameter k, wherever it sits in the tree. */
static void note_params(struct lm_lql_stmt *s, struct lm_lql_value **params)
{
    switch (s->kind) {
    case LM_LQL_CREATE_FIELD:
        note_values(&s->create.voxel, 1, params);
        note_values(&s->create.chunk, 1, params);
        break;
    case LM_LQL_INSERT:
        note_values(s->insert.values, s->insert.n_rows * s->insert.width, params);
        break;
    case LM_LQL_SELECT:
        note_values(&s->select.nearest_k, 1, params);
        note_values(s->select.nearest_point, 3, params);
        if (s->select.where)
            note_expr(s->select.where, params);
        note_values(&s->select.lod, 1, params);
        note_values(&s->select.limit, 1, params);
        break;
    case LM_LQL_RAYCAST:
        note_values(s->raycast.origin, 3, params);
        note_values(s->raycast.dir, 3, params);
        note_values(&s->raycast.max_dist, 1, params);
        break;
    case LM_LQL_RADIANCE:
        note_values(s->radiance.at, 3, params);
        note_values(s->radiance.toward, 3, params);
        break;
    case LM_LQL_DELETE: note_expr(s->delete_where, params); break;
    case LM_LQL_UPDATE:
        for (size_t i = 0; i < s->update.n_sets; i++)
            note_values(&s->update.sets[i].value, 1, params);
        note_expr(s->update.where, params);
        break;
    case LM_LQL_EXPLAIN: note_params(s->explain, params); break;
    case LM_LQL_DROP_FIELD:
    case LM_LQL_SHOW_FIELDS:
    case LM_LQL_DESCRIBE: break;
    }
}

/* ---------------------------------------------------------------- API */

/* Moves the cursor past the failed statement: its ';' at the top level, or the end. */
static void recover(struct parser *p, struct lm_lql_cursor *cur)
{
    bool at_stop = p->lex_rc == 0 &&
                   (p->tok.kind == LM__TOK_SEMI || p->tok.kind == LM__TOK_EOF);
    while (!at_stop) {
        struct lm__lql_token t;
        if (lm__lql_lex_next(&p->lx, &t, NULL) < 0)
            at_stop = p->lx.unterminated;
        else
            at_stop = t.kind == LM__TOK_SEMI || t.kind == LM__TOK_EOF;
    }
    *cur = (struct lm_lql_cursor){p->lx.pos, p->lx.line, p->lx.column};
}

static int finish(struct parser *p, struct lm_lql_stmt *s)
{
    if (!is_tok(p, LM__TOK_SEMI) && !is_tok(p, LM__TOK_EOF)) {
        char what[160] = "";
        size_t o = 0;
        for (const char *const *t = p->tail; t && *t; t++)
            o += (size_t)snprintf(what + o, sizeof what - o, "%s, ", *t);
        snprintf(what + o, sizeof what - o, "';' or end of input");
        return fail_expected(p, what, p->tail_after, p->tail);
    }
    s->n_params = p->n_params;
    if (p->n_params) {
        if (!(s->params = alloc(p, (size_t)p->n_params * sizeof *s->params)))
            return oom(p);
        note_params(s, s->params);
    }
    if (s->kind == LM_LQL_EXPLAIN) {
        s->explain->n_params = s->n_params;
        s->explain->params = s->params;
    }
    return 0;
}

int lm_lql_parse_next(const char *text, size_t len, struct lm_lql_cursor *cur,
                      struct lm_lql_stmt **out, struct lm_error *err)
{
    if ((!text && len) || !cur || !out)
        return lm__fail(err, LM_EBADARG, "lm_lql_parse_next: missing text, cursor or out");
    struct parser p;
    memset(&p, 0, sizeof p);
    p.err = err;
    lm__lql_lex_init(&p.lx, text ? text : "", len, cur);
    int rc;
    do
        rc = advance(&p);
    while (rc == 0 && is_tok(&p, LM__TOK_SEMI));
    if (rc < 0) {
        recover(&p, cur);
        return rc;
    }
    if (is_tok(&p, LM__TOK_EOF)) {
        *cur = (struct lm_lql_cursor){p.lx.pos, p.lx.line, p.lx.column};
        *out = NULL;
        return 0;
    }
    struct lm_lql_stmt *s = NULL;
    if (!(p.arena = arena_new()) || !(s = alloc(&p, sizeof *s))) {
        rc = oom(&p);
    } else if ((rc = parse_statement(&p, s, true)) == 0) {
        rc = finish(&p, s);
    }
    if (rc < 0) {
        arena_free(p.arena);
        recover(&p, cur);
        return rc;
    }
    s->arena = p.arena;
    *cur = (struct lm_lql_cursor){p.lx.pos, p.lx.line, p.lx.column};
    *out = s;
    return 0;
}

int lm_lql_parse(const char *text, size_t len, struct lm_lql_stmt **out,
                 struct lm_error *err)
{
    struct lm_lql_cursor cur = {0};
    struct lm_lql_stmt *s;
    if (!out)
        return lm__fail(err, LM_EBADARG, "lm_lql_parse: out is NULL");
    int rc = lm_lql_parse_next(text, len, &cur, &s, err);
    if (rc < 0)
        return rc;
    if (!s)
        return lm__fail_at(err, LM_ESYNTAX, 1, 1, -1,
                           "expected a statement, found end of input");
    struct lm__lql_lexer lx;
    struct lm__lql_token t;
    lm__lql_lex_init(&lx, text, len, &cur);
    do
        rc = lm__lql_lex_next(&lx, &t, err);
    while (rc == 0 && t.kind == LM__TOK_SEMI);
    if (rc == 0 && t.kind != LM__TOK_EOF)
        rc = lm__fail_at(err, LM_ESYNTAX, t.pos.line, t.pos.column, -1,
                         "expected end of input after the statement, found a second "
                         "statement (use lm_lql_parse_next for scripts)");
    if (rc < 0) {
        lm_lql_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void lm_lql_free(struct lm_lql_stmt *stmt)
{
    if (stmt)
        arena_free(stmt->arena);
}

int lm_lql_bind_number(struct lm_lql_stmt *stmt, uint32_t index, double value)
{
    if (!stmt || index == 0 || index > stmt->n_params || !isfinite(value))
        return LM_EBADARG;
    struct lm_lql_value *v = stmt->params[index - 1];
    if (v->integer && !is_count(value))
        return LM_EBADARG;
    v->number = v->negated ? -value : value;
    v->bound = true;
    return 0;
}

int lm_lql_check_bound(const struct lm_lql_stmt *stmt, struct lm_error *err)
{
    if (!stmt)
        return lm__fail(err, LM_EBADARG, "no statement");
    for (uint32_t i = 0; i < stmt->n_params; i++) {
        const struct lm_lql_value *v = stmt->params[i];
        if (!v->bound)
            return lm__fail_at(err, LM_EBADARG, v->pos.line, v->pos.column, -1,
                               "parameter %u is not bound", i + 1);
    }
    return 0;
}

const char *lm_lql_kind_name(enum lm_lql_kind kind)
{
    switch (kind) {
    case LM_LQL_CREATE_FIELD: return "CREATE FIELD";
    case LM_LQL_DROP_FIELD: return "DROP FIELD";
    case LM_LQL_SHOW_FIELDS: return "SHOW FIELDS";
    case LM_LQL_DESCRIBE: return "DESCRIBE";
    case LM_LQL_INSERT: return "INSERT";
    case LM_LQL_SELECT: return "SELECT";
    case LM_LQL_RAYCAST: return "RAYCAST";
    case LM_LQL_RADIANCE: return "RADIANCE";
    case LM_LQL_DELETE: return "DELETE";
    case LM_LQL_UPDATE: return "UPDATE";
    case LM_LQL_EXPLAIN: return "EXPLAIN";
    }
    return "?";
}
