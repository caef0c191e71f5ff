/* lql_int.h - internals shared by the LQL lexer, parser and printer; not public.
 * Owns: nothing. The lexer reads the caller's text in place and allocates nothing.
 * Invariants: (1) a token's [start, start + len) lies inside the text.
 *   (2) lx->line/column always describe lx->pos.
 * Threading: a lexer is used by one thread. Called by: lql_parse.c, lql_print.c. */
#ifndef LM_LQL_INT_H
#define LM_LQL_INT_H

#include "lql.h"

/* X(id, spelling, reserved). Sorted by spelling (lm_lql_keywords and the lookup rely
 * on it). Reserved words need quotes to be used as names; the others are keywords only
 * where the grammar expects them. */
#define LM__LQL_KEYWORDS(X)            \
    X(ALL, "ALL", 0)                   \
    X(AND, "AND", 1)                   \
    X(AS, "AS", 1)                     \
    X(ASC, "ASC", 1)                   \
    X(ASPECT, "ASPECT", 0)             \
    X(AT, "AT", 1)                     \
    X(AVG, "AVG", 0)                   \
    X(BETWEEN, "BETWEEN", 1)           \
    X(BOX, "BOX", 1)                   \
    X(BY, "BY", 1)                     \
    X(CHUNK, "CHUNK", 1)               \
    X(COUNT, "COUNT", 0)               \
    X(CREATE, "CREATE", 1)             \
    X(DELETE, "DELETE", 1)             \
    X(DESC, "DESC", 1)                 \
    X(DESCRIBE, "DESCRIBE", 1)         \
    X(DIR, "DIR", 1)                   \
    X(DROP, "DROP", 1)                 \
    X(EXPLAIN, "EXPLAIN", 1)           \
    X(EYE, "EYE", 0)                   \
    X(F32, "F32", 0)                   \
    X(FAR, "FAR", 0)                   \
    X(FIELD, "FIELD", 1)               \
    X(FIELDS, "FIELDS", 1)             \
    X(FIRST, "FIRST", 0)               \
    X(FOV, "FOV", 0)                   \
    X(FROM, "FROM", 1)                 \
    X(FRUSTUM, "FRUSTUM", 1)           \
    X(GROUP, "GROUP", 1)               \
    X(I32, "I32", 0)                   \
    X(IN, "IN", 1)                     \
    X(INSERT, "INSERT", 1)             \
    X(INSIDE, "INSIDE", 1)             \
    X(INTO, "INTO", 1)                 \
    X(LIMIT, "LIMIT", 1)               \
    X(LOD, "LOD", 1)                   \
    X(MAX, "MAX", 0)                   \
    X(MIN, "MIN", 0)                   \
    X(NEAR, "NEAR", 0)                 \
    X(NEAREST, "NEAREST", 1)           \
    X(NOT, "NOT", 1)                   \
    X(OF, "OF", 1)                     \
    X(OR, "OR", 1)                     \
    X(ORDER, "ORDER", 1)               \
    X(RADIANCE, "RADIANCE", 1)         \
    X(RAYCAST, "RAYCAST", 1)           \
    X(RETURN, "RETURN", 1)             \
    X(SELECT, "SELECT", 1)             \
    X(SET, "SET", 1)                   \
    X(SHOW, "SHOW", 1)                 \
    X(SUM, "SUM", 0)                   \
    X(TARGET, "TARGET", 0)             \
    X(TO, "TO", 1)                     \
    X(TOWARD, "TOWARD", 1)             \
    X(TRUE, "TRUE", 1)                 \
    X(U8, "U8", 0)                     \
    X(UP, "UP", 0)                     \
    X(UPDATE, "UPDATE", 1)             \
    X(VALUES, "VALUES", 1)             \
    X(VOXEL, "VOXEL", 1)               \
    X(WHERE, "WHERE", 1)               \
    X(WITHIN, "WITHIN", 1)

enum lm__lql_kw {
    LM__KW_NONE = 0,
#define LM__LQL_KW_ENUM(id, spelling, reserved) LM__KW_##id,
    LM__LQL_KEYWORDS(LM__LQL_KW_ENUM)
#undef LM__LQL_KW_ENUM
    LM__KW_COUNT_
};

enum lm__lql_tok {
    LM__TOK_EOF = 0,
    LM__TOK_IDENT,      /* a word; kw set when it spells a keyword */
    LM__TOK_QIDENT,     /* "quoted identifier", quotes included in the token's text */
    LM__TOK_NUMBER,     /* number holds the value */
    LM__TOK_PARAM,      /* ? */
    LM__TOK_LPAREN, LM__TOK_RPAREN, LM__TOK_COMMA, LM__TOK_SEMI, LM__TOK_STAR,
    LM__TOK_MINUS,
    LM__TOK_LT, LM__TOK_LE, LM__TOK_GT, LM__TOK_GE, LM__TOK_EQ, LM__TOK_NE
};

struct lm__lql_token {
    enum lm__lql_tok kind;
    enum lm__lql_kw kw;
    size_t start, len;
    struct lm_lql_pos pos;
    double number;
};

struct lm__lql_lexer {
    const char *text;
    size_t len, pos;
    uint32_t line, column;
    bool unterminated;  /* the last error was an unfinished comment or quoted name */
};

/* Starts lexing text[0, len) at cur (NULL: the start). */
void lm__lql_lex_init(struct lm__lql_lexer *lx, const char *text, size_t len,
                      const struct lm_lql_cursor *cur);

/* Reads the next token (EOF at the end, repeatedly). Errors: LM_ESYNTAX, LM_ELIMIT with
 * err at the offending text; lx is then left past it (at the end, with `unterminated`
 * set, for an unfinished comment or quoted identifier), so lexing can go on. */
int lm__lql_lex_next(struct lm__lql_lexer *lx, struct lm__lql_token *tok,
                     struct lm_error *err);

/* Spelling of a keyword; whether it is reserved. */
const char *lm__lql_kw_text(enum lm__lql_kw kw);
bool lm__lql_kw_reserved(enum lm__lql_kw kw);
/* Keyword spelled by s[0, n) in any case, or LM__KW_NONE. */
enum lm__lql_kw lm__lql_kw_find(const char *s, size_t n);

/* Whether s[0, n) can be written unquoted: a word that is not a reserved keyword. */
bool lm__lql_is_plain_name(const char *s, size_t n);

#endif
