/* exec.h - the LQL executor: runs parsed statements against a database and returns
 * result tables.
 *
 * Owns: each result (struct lm_exec_result) and each prepared statement (lm_exec_stmt)
 * it returns; the caller frees them with lm_exec_result_free / lm_exec_stmt_free. The
 * executor keeps nothing between calls: every run resolves names afresh, so a prepared
 * statement sees fields created or dropped since it was prepared.
 *
 * Semantics (docs/LQL.md, "Execution"):
 *  - WHERE is pushed down to the engine where the C API can express it: one region
 *    and AND-ed comparisons become one struct lm_selection (lm_select, lm_aggregate,
 *    lm_delete, lm_update). Anything else (OR, NOT, several regions, more than
 *    LM_MAX_FILTERS comparisons) is evaluated per sample on candidates found through a
 *    bounding selection, with the engine's own rules: values compared as doubles, the
 *    region tests of region.h in single precision.
 *  - DELETE and UPDATE whose WHERE is not one selection run as one engine call per
 *    term of the WHERE's disjunctive form, or, where a term cannot be a selection
 *    (NOT WITHIN, two spheres, ...), one call per distinct matching sample. Each call
 *    is atomic; the statement as a whole is then not.
 *  - Aggregates of no samples are NULL (count is 0). Grouped rows begin with the cell
 *    coordinates cx, cy, cz and come sorted by (cz, cy, cx).
 *
 * Invariants:
 *  (1) A run returns 0 with *out set, or an error with *out untouched and nothing
 *      allocated. A failed DDL or INSERT changes nothing.
 *  (2) Every error about the statement's meaning carries the line:column of the node
 *      it is about (an unknown column: that name; a bad value: that number), and an
 *      unknown name is followed by "; did you mean 'x'?" when one is close
 *      (lm_lql_suggest). Errors from the engine without a position get the statement's.
 *  (3) Results depend only on the data and the statement, never on the path chosen:
 *      rows come in storage order (NEAREST: nearest first) unless ORDER BY says
 *      otherwise, and ORDER BY is stable. (Sums and averages may differ in the last
 *      bits between paths, which add in different orders.)
 *
 * Errors: LM_ENOFIELD / LM_ENOCOLUMN for unknown names, LM_EBADARG for statements that
 * make no sense (an aggregate beside a plain column, ORDER BY an unknown output
 * column), LM_EBADVALUE for values a column cannot hold, LM_ECANCELED when the cancel
 * flag was raised, anything the engine returns, -ENOMEM.
 *
 * Threading: a run uses only its arguments; runs on one lm_db may go on in several
 * threads (the database serialises them). A prepared statement is used by one thread
 * at a time. The cancel flag may be raised from a signal handler.
 *
 * Called by: tools/ (lumadb shell, query, export, demo), bench/, the server.
 */
#ifndef LM_EXEC_H
#define LM_EXEC_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lql.h"
#include "lumadb.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- results */

enum lm_exec_type {
    LM_EXEC_NULL = 0,  /* no value (an aggregate of no samples) */
    LM_EXEC_INT,       /* i: counts, t, i32 and u8 columns, cell coordinates */
    LM_EXEC_F32,       /* d: a single-precision value (positions, colours, f32 columns) */
    LM_EXEC_F64,       /* d: a double (sums, averages, voxel sizes) */
    LM_EXEC_TEXT       /* s: names and plan lines */
};

struct lm_exec_value {
    enum lm_exec_type type;  /* the column's type, or LM_EXEC_NULL */
    union {
        int64_t i;
        double d;
        const char *s;       /* owned by the result */
    };
};

struct lm_exec_column {
    const char *name;        /* as the statement spelled it, or the alias; owned by the result */
    enum lm_exec_type type;
};

/* A table, possibly empty, and/or a message. Rows are row-major: the value of column c
 * in row r is rows[r * n_columns + c]. */
struct lm_exec_result {
    enum lm_lql_kind kind;           /* the statement that produced it */
    size_t n_columns;
    struct lm_exec_column *columns;
    size_t n_rows;
    struct lm_exec_value *rows;
    uint64_t affected;               /* samples inserted/deleted/updated, else 0 */
    char message[256];               /* "deleted 12 samples"; "" when there is none */
    struct lm_exec_result *next;     /* a further table (RAYCAST: the hit samples), or NULL */
    struct lm__exec_store *store;    /* private: the memory of names, texts and rows */
};

/* Frees a result and the tables chained after it. NULL is a no-op. */
void lm_exec_result_free(struct lm_exec_result *res);

/* ---------------------------------------------------------------- running */

struct lm_exec_opts {
    /* When not NULL and raised (non-zero) while a statement runs, the run stops at the
     * next check (between chunks, engine calls or a few thousand samples) with
     * LM_ECANCELED. A write already acknowledged by the engine stays done. */
    const volatile sig_atomic_t *cancel;
};

/* Runs one parsed statement (every parameter bound). opts may be NULL. On success
 * *out is a new result. Errors as at the top of this file; err (optional) receives the
 * message and position. The tree is not modified and not retained. */
int lm_exec(lm_db *db, const struct lm_lql_stmt *stmt, const struct lm_exec_opts *opts,
            struct lm_exec_result **out, struct lm_error *err);

/* Parses text[0, len) (one statement, as lm_lql_parse) and runs it. */
int lm_exec_text(lm_db *db, const char *text, size_t len, const struct lm_exec_opts *opts,
                 struct lm_exec_result **out, struct lm_error *err);

/* Resolves and plans a statement without running it (what lm_exec checks before it
 * touches data): 0 when it would run, else the error lm_exec would report first,
 * short of errors only the data can raise. */
int lm_exec_check(lm_db *db, const struct lm_lql_stmt *stmt, struct lm_error *err);

/* Runs a SELECT without aggregates and hands each output row to fn (n_columns values,
 * valid during the call) instead of building a table; `columns` (optional) receives
 * the column descriptions first. fn returning non-zero stops the run with that value.
 * For exports of many rows: samples are read from the engine in chunks. Errors as
 * lm_exec; LM_EBADARG for another kind of statement. */
typedef int (*lm_exec_row_fn)(const struct lm_exec_value *row, size_t n_columns, void *user);
typedef int (*lm_exec_columns_fn)(const struct lm_exec_column *columns, size_t n, void *user);
int lm_exec_each(lm_db *db, const struct lm_lql_stmt *stmt, const struct lm_exec_opts *opts,
                 lm_exec_columns_fn columns, lm_exec_row_fn fn, void *user,
                 struct lm_error *err);

/* ---------------------------------------------------------------- prepared statements */

/* A parsed statement kept with its text, for running again with new `?` values. */
typedef struct lm_exec_stmt lm_exec_stmt;

/* Parses text[0, len) (copied). Errors as lm_lql_parse. */
int lm_exec_prepare(lm_db *db, const char *text, size_t len, lm_exec_stmt **out,
                    struct lm_error *err);
/* Number of `?` in the statement. */
uint32_t lm_exec_param_count(const lm_exec_stmt *st);
/* Binds parameter index (1-based); binding again overwrites. Errors: LM_EBADARG (index
 * out of range, value not finite, not an integer in [0, 2^53] where one is needed),
 * with err at the parameter. */
int lm_exec_bind(lm_exec_stmt *st, uint32_t index, double value, struct lm_error *err);
/* Runs the statement with the values bound so far (all must be bound: LM_EBADARG at the
 * first unbound one). May be called any number of times. */
int lm_exec_run(lm_exec_stmt *st, const struct lm_exec_opts *opts,
                struct lm_exec_result **out, struct lm_error *err);
/* The parsed tree and the text it was parsed from (NUL-terminated), for messages. */
const struct lm_lql_stmt *lm_exec_tree(const lm_exec_stmt *st);
const char *lm_exec_stmt_text(const lm_exec_stmt *st);
void lm_exec_stmt_free(lm_exec_stmt *st); /* NULL is a no-op */

#ifdef __cplusplus
}
#endif
#endif /* LM_EXEC_H */
