/* lql.h - LQL, LumaDB's query language: lexer, parser, syntax tree, error rendering.
 *
 * The grammar, with an example of every statement, is docs/LQL.md. This module turns
 * text into a tree; it never touches a database. The executor resolves names (fields,
 * columns, aliases) and maps the tree onto lm_select / lm_nearest / lm_aggregate /
 * lm_raycast / lm_radiance / lm_delete / lm_update; the tree is shaped for that: a
 * comparison carries an `enum lm_cmp`, a spatial predicate an `enum lm_region_kind`.
 *
 * Owns: each parsed statement owns one arena holding the whole tree (every node, name
 * and array). lm_lql_free releases the arena, so nothing inside a tree is freed on its
 * own and no pointer into a tree outlives lm_lql_free.
 *
 * Invariants:
 *  (1) A parse either returns 0 with a complete tree in *out, or an error code with *out
 *      untouched and nothing allocated.
 *  (2) Every node carries the 1-based line:column of its first token (a parenthesised
 *      expression keeps its inner node's position). Columns count UTF-8 characters, a
 *      tab counting as one. Positions are relative to the start of the text handed to
 *      the parser, also for the second and later statements of a script.
 *  (3) Names are NUL-terminated, 1..LM_NAME_MAX bytes, as written: unquoted names keep
 *      their case, quoted names are unescaped ("a""b" is a"b) and never hold a NUL.
 *  (4) A number is a double: literals are finite (overflow is a syntax error); unary
 *      minus is folded into literals and kept as a flag on parameters.
 *  (5) `?` parameters are numbered 1, 2, ... in order of appearance within one
 *      statement (EXPLAIN included); stmt->params[i] is the slot of parameter i + 1.
 *  (6) Slots marked `integer` (LIMIT, NEAREST k, CHUNK, LOD) hold integers in
 *      [0, 2^53], whether literal or bound.
 *  (7) AND and OR nodes have at least two operands; a chain `a AND b AND c` is one node
 *      with three, a parenthesised AND inside an AND stays its own node. Expressions
 *      nest at most LM_LQL_MAX_DEPTH levels, so recursive walks are bounded.
 *
 * Errors: syntax errors are LM_ESYNTAX; an identifier or number over its length limit
 * and nesting over LM_LQL_MAX_DEPTH are LM_ELIMIT; an allocation failure is -ENOMEM.
 * All three fill `err` (if given) with line:column and a message; parser messages read
 * "expected <what> after <where>, found '<token>'", with "; did you mean <WORD>?" where
 * the token nearly spells a keyword that fits; lexer messages name the bad token
 * ("unterminated quoted identifier", "malformed number '1e+'").
 *
 * Use:
 *     struct lm_lql_stmt *s;
 *     if (lm_lql_parse(text, len, &s, &err) < 0) { lm_lql_format_error(text, &err, ...); }
 *     lm_lql_bind_number(s, 1, 2.5);             // each `?`, then
 *     lm_lql_check_bound(s, &err);               // before executing s
 *     lm_lql_free(s);
 *
 * Threading: every function is reentrant; a tree may be read by many threads at once,
 * and bound (lm_lql_bind_number) by one thread while no other uses it. Numbers are
 * converted with strtod under the locale's decimal point, so no thread may change the
 * locale while another parses or formats.
 *
 * Called by: the query executor, the shell (lm_lql_complete, lm_lql_keywords,
 * lm_lql_format_error) and `lumadb query -` (lm_lql_parse_next).
 */
#ifndef LM_LQL_H
#define LM_LQL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lumadb.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LM_LQL_MAX_DEPTH 64       /* nesting of NOT and parentheses in one expression */
#define LM_LQL_MAX_NUMBER 256     /* characters in one numeric literal */

/* ---------------------------------------------------------------- tree */

struct lm_lql_pos {
    uint32_t line, column; /* 1-based */
};

/* A name as written: field, column, alias. */
struct lm_lql_name {
    const char *text;      /* NULL where the grammar allows leaving it out */
    struct lm_lql_pos pos;
    bool quoted;
};

/* A number in the text: a literal, or a `?` parameter filled by lm_lql_bind_number. */
struct lm_lql_value {
    double number;         /* the literal; for a parameter the bound value (0 until bound),
                              already negated when written `-?` */
    struct lm_lql_pos pos; /* of the '-' when there is one */
    uint32_t param;        /* 0: literal; k > 0: parameter k */
    bool negated;          /* parameter written `-?` */
    bool integer;          /* the grammar wants an integer in [0, 2^53] here */
    bool bound;            /* a literal, or a bound parameter */
};

enum lm_lql_expr_kind {
    LM_LQL_EXPR_AND = 1,   /* list */
    LM_LQL_EXPR_OR,        /* list */
    LM_LQL_EXPR_NOT,       /* operand */
    LM_LQL_EXPR_CMP,       /* cmp: column op a, or column BETWEEN a AND b */
    LM_LQL_EXPR_REGION,    /* region: INSIDE BOX, WITHIN, IN FRUSTUM */
    LM_LQL_EXPR_TRUE       /* TRUE */
};

/* A spatial predicate on a sample's position; kind is BOX, SPHERE or FRUSTUM. */
struct lm_lql_region {
    enum lm_region_kind kind;
    union {
        struct { struct lm_lql_value min[3], max[3]; } box;       /* INSIDE BOX a TO b */
        struct { struct lm_lql_value center[3], radius; } sphere; /* WITHIN r OF c */
        struct {                                                  /* IN FRUSTUM (...) */
            struct lm_lql_value eye[3], target[3], up[3];
            struct lm_lql_value fov_y, aspect, near_d, far_d;     /* fov_y in degrees */
        } frustum;
    };
};

struct lm_lql_expr {
    enum lm_lql_expr_kind kind;
    struct lm_lql_pos pos;
    union {
        struct { size_t n; struct lm_lql_expr **args; } list; /* AND, OR: n >= 2 */
        struct lm_lql_expr *operand;                          /* NOT */
        struct {
            struct lm_lql_name column;
            enum lm_cmp op;                                   /* LT..NE, or BETWEEN */
            struct lm_lql_value a, b;                         /* b: BETWEEN only */
        } cmp;
        struct lm_lql_region region;
    };
};

enum lm_lql_kind {
    LM_LQL_CREATE_FIELD = 1,
    LM_LQL_DROP_FIELD,
    LM_LQL_SHOW_FIELDS,
    LM_LQL_DESCRIBE,
    LM_LQL_INSERT,
    LM_LQL_SELECT,
    LM_LQL_RAYCAST,
    LM_LQL_RADIANCE,
    LM_LQL_DELETE,
    LM_LQL_UPDATE,
    LM_LQL_EXPLAIN
};

struct lm_lql_column_def {
    struct lm_lql_name name;
    enum lm_type type;
};

struct lm_lql_create {
    struct lm_lql_value voxel;           /* VOXEL size, always present */
    bool has_chunk;
    struct lm_lql_value chunk;           /* CHUNK edge (integer) when has_chunk */
    size_t n_columns;
    struct lm_lql_column_def *columns;   /* user columns in order of appearance */
};

struct lm_lql_insert {
    size_t n_columns;                    /* 0: no column list (schema order) */
    struct lm_lql_name *columns;
    size_t n_rows, width;                /* width: values per row, the same for all rows */
    struct lm_lql_value *values;         /* n_rows * width, row after row */
};

enum lm_lql_agg {
    LM_LQL_AGG_NONE = 0,                 /* a plain column */
    LM_LQL_AGG_COUNT, LM_LQL_AGG_SUM, LM_LQL_AGG_AVG, LM_LQL_AGG_MIN, LM_LQL_AGG_MAX
};

struct lm_lql_select_item {
    struct lm_lql_pos pos;
    enum lm_lql_agg agg;
    struct lm_lql_name column;           /* text NULL for count(*) */
    struct lm_lql_name alias;            /* text NULL without AS */
};

enum lm_lql_group { LM_LQL_GROUP_NONE = 0, LM_LQL_GROUP_VOXEL, LM_LQL_GROUP_CHUNK,
                    LM_LQL_GROUP_LOD };

struct lm_lql_order {
    struct lm_lql_name column;           /* a column or an alias of the select list */
    bool desc;
};

struct lm_lql_select {
    bool star;                           /* SELECT *: n_items is 0 */
    size_t n_items;
    struct lm_lql_select_item *items;
    bool has_nearest;                    /* NEAREST k TO (x, y, z) */
    struct lm_lql_value nearest_k;       /* integer */
    struct lm_lql_value nearest_point[3];
    struct lm_lql_expr *where;           /* NULL: no WHERE */
    enum lm_lql_group group;
    struct lm_lql_pos group_pos;         /* of GROUP when group != NONE */
    struct lm_lql_value lod;             /* integer, GROUP BY LOD only */
    size_t n_order;
    struct lm_lql_order *order;
    bool has_limit;
    struct lm_lql_value limit;           /* integer */
};

struct lm_lql_raycast {
    struct lm_lql_value origin[3], dir[3];
    bool has_max;                        /* MAX d; without it the executor picks a length */
    struct lm_lql_value max_dist;
    enum lm_ray_mode mode;               /* RETURN FIRST (default) or ALL */
};

struct lm_lql_radiance {
    struct lm_lql_value at[3], toward[3];
};

struct lm_lql_set {
    struct lm_lql_name column;
    struct lm_lql_value value;
};

struct lm_lql_update {
    size_t n_sets;
    struct lm_lql_set *sets;
    struct lm_lql_expr *where;           /* never NULL (WHERE TRUE for every sample) */
};

struct lm__lql_arena;

struct lm_lql_stmt {
    enum lm_lql_kind kind;
    struct lm_lql_pos pos;               /* of the first token */
    size_t offset, length;               /* the statement's bytes in the text (no ';') */
    struct lm_lql_name field;            /* text NULL for SHOW FIELDS and EXPLAIN */
    uint32_t n_params;
    struct lm_lql_value **params;        /* params[i]: slot of parameter i + 1 */
    union {
        struct lm_lql_create create;     /* CREATE FIELD */
        struct lm_lql_insert insert;     /* INSERT */
        struct lm_lql_select select;     /* SELECT */
        struct lm_lql_raycast raycast;   /* RAYCAST */
        struct lm_lql_radiance radiance; /* RADIANCE */
        struct lm_lql_expr *delete_where;/* DELETE: never NULL */
        struct lm_lql_update update;     /* UPDATE */
        struct lm_lql_stmt *explain;     /* EXPLAIN: the explained statement, which shares
                                            this tree's arena and parameter slots */
    };
    struct lm__lql_arena *arena;         /* private: the tree's memory */
};

/* ---------------------------------------------------------------- parsing */

/* Where lm_lql_parse_next goes on in a buffer. Zero-initialise before the first call
 * and leave it to lm_lql_parse_next afterwards: line 0 means the start of the text (its
 * offset is then ignored), otherwise line:column must be the position of offset. */
struct lm_lql_cursor {
    size_t offset;                       /* byte offset of the rest */
    uint32_t line, column;               /* 1-based position of offset */
};

/* Parses the one statement in text[0, len), which may end with ';' and may be followed
 * by whitespace and comments only. On success *out is a new tree the caller frees with
 * lm_lql_free. Errors: LM_ESYNTAX (also for empty input and for a second statement),
 * LM_ELIMIT, -ENOMEM. The text need not be NUL-terminated and is not retained. */
int lm_lql_parse(const char *text, size_t len, struct lm_lql_stmt **out,
                 struct lm_error *err);

/* Parses the next statement of a script text[0, len) from *cur: skips whitespace,
 * comments and empty statements, parses one statement up to ';' or the end, and moves
 * *cur past the ';'. At the end of the input returns 0 with *out = NULL. On an error
 * *out is untouched and *cur still moves past the failed statement (its ';' at the top
 * level, or the end), so a caller may go on with the rest or stop. Errors as
 * lm_lql_parse; positions count from text[0]. */
int lm_lql_parse_next(const char *text, size_t len, struct lm_lql_cursor *cur,
                      struct lm_lql_stmt **out, struct lm_error *err);

/* Whether text[0, len) can be run: it ends, after whitespace and comments, in a ';'
 * that is not inside a comment or a quoted identifier. False for an unfinished block
 * comment or quoted identifier. A buffer holding a character LQL cannot lex counts as
 * complete (running it reports the error). */
bool lm_lql_complete(const char *text, size_t len); /* NULL text: false */

/* Frees a tree from lm_lql_parse/_next. NULL, and an EXPLAIN's inner statement, are
 * no-ops. */
void lm_lql_free(struct lm_lql_stmt *stmt);

/* Binds parameter `index` (1-based) of stmt to value (negated for `-?`); binding again
 * overwrites. Errors: LM_EBADARG for an index outside 1..n_params, a value that is not
 * finite, or a value that is not an integer in [0, 2^53] for an integer slot. */
int lm_lql_bind_number(struct lm_lql_stmt *stmt, uint32_t index, double value);

/* 0 when every parameter is bound, else LM_EBADARG with err at the first unbound one. */
int lm_lql_check_bound(const struct lm_lql_stmt *stmt, struct lm_error *err);

/* ---------------------------------------------------------------- text */

/* Renders err for people into buf (NUL-terminated when cap > 0, truncated to fit):
 *     3:14: expected FROM after select list, found 'FORM'
 *     SELECT x FORM f
 *              ^
 * The source line and caret are left out when err has no line or text is NULL or has
 * fewer lines. text is the NUL-terminated text that was parsed. Returns the length the
 * whole rendering needs (excluding the NUL), like snprintf. */
size_t lm_lql_format_error(const char *text, const struct lm_error *err, char *buf,
                           size_t cap);

/* Writes stmt as canonical LQL (keywords upper case, single spaces, parameters as `?`,
 * numbers that read back to the same double, names quoted where needed, CREATE FIELD
 * items as VOXEL, CHUNK, columns) into buf, as lm_lql_format_error. Parsing the result
 * gives an equal tree, apart from positions and, where CREATE FIELD items were written
 * in another order, the numbering of their parameters. */
size_t lm_lql_format_stmt(const struct lm_lql_stmt *stmt, char *buf, size_t cap);

/* The candidate nearest to name by edit distance (case-insensitive; a swap of two
 * neighbouring letters counts as one edit), or NULL when none is close: at most one
 * edit per three characters of the longer name. Ties go to a candidate with the same
 * first letter, then to the earlier one. Returns one of the candidates' pointers; NULL
 * candidates are skipped. */
const char *lm_lql_suggest(const char *name, const char *const *candidates, size_t n);

/* Every LQL keyword in upper case, sorted, NULL-terminated; static storage. *n (if not
 * NULL) receives the count. Includes the words that are keywords only in place
 * (COUNT, EYE, F32, FIRST, ...), which stay usable as names. */
const char *const *lm_lql_keywords(size_t *n);

/* "SELECT", "CREATE FIELD", ... for a statement kind; "?" for others. */
const char *lm_lql_kind_name(enum lm_lql_kind kind);

#ifdef __cplusplus
}
#endif
#endif /* LM_LQL_H */
