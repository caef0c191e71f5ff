/* exec_int.h - internals shared by the executor's files; not public.
 *
 * Owns: nothing by itself. A run (struct lm__exec) owns a scratch arena that holds its
 * compiled predicates and plans and is freed when the run ends; results are built in
 * their own store (struct lm__exec_store) that the caller frees with the result.
 *
 * Files: exec.c (entry points, names, results, DDL, RAYCAST, RADIANCE, prepared
 * statements), exec_where.c (predicates: compile, evaluate, push down, disjunctive
 * terms), exec_select.c (SELECT), exec_write.c (INSERT, UPDATE, DELETE),
 * exec_explain.c (EXPLAIN).
 *
 * Invariants:
 *  (1) A compiled predicate holds regions as the engine tests them (float corners,
 *      frusta from lm_frustum_from_camera) and comparisons as struct lm_filter, so
 *      evaluating it per sample and pushing it into a selection agree exactly.
 *  (2) lm__row_value returns what lm_rows_value returns for the same sample, whether
 *      the sample is read from rows or from a chunk view.
 * Threading: a run is one thread. Called by: the exec_*.c files only.
 */
#ifndef LM_EXEC_INT_H
#define LM_EXEC_INT_H

#include "exec.h"

/* ---------------------------------------------------------------- arena */

struct lm__arena {
    struct lm__arena_block *head;
};
/* Zeroed memory that lives until lm__arena_free; NULL when out of memory. */
void *lm__arena_alloc(struct lm__arena *a, size_t n);
char *lm__arena_strdup(struct lm__arena *a, const char *s);
void lm__arena_free(struct lm__arena *a);

/* ---------------------------------------------------------------- a run */

struct lm__exec {
    lm_db *db;
    const struct lm_exec_opts *opts;
    struct lm_error *err;
    struct lm__arena tmp;        /* predicates, plans: freed at the end of the run */
    const struct lm_lql_stmt *stmt;
    bool plan_only;              /* lm_exec_check and EXPLAIN: resolve, never touch data */
};

/* Fails with err at pos: returns code. */
int lm__exec_fail(struct lm__exec *ex, int code, struct lm_lql_pos pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Gives an engine error without a position the statement's position; returns rc. */
int lm__exec_engine(struct lm__exec *ex, int rc);
/* LM_ECANCELED when the cancel flag is up, else 0. */
int lm__exec_canceled(struct lm__exec *ex);

/* ---------------------------------------------------------------- names */

#define LM__MAX_COLUMNS (LM_COL_USER + LM_MAX_USER_COLUMNS)

/* A field resolved for one run. */
struct lm__xfield {
    const char *name;
    struct lm_field_info info;
    int n_cols;
    const char *cols[LM__MAX_COLUMNS];
    double inv_voxel;            /* as the engine computes voxel coordinates */
    uint32_t log2_edge;
};

/* Looks the field up; LM_ENOFIELD at the name, with a suggestion, when missing. */
int lm__exec_field(struct lm__exec *ex, const struct lm_lql_name *name,
                   struct lm__xfield *out);
/* Column index of a name; LM_ENOCOLUMN at the name, with a suggestion, when missing. */
int lm__exec_column(struct lm__exec *ex, const struct lm__xfield *f,
                    const struct lm_lql_name *name, int *out);
/* Output type of a column. */
enum lm_exec_type lm__column_type(const struct lm__xfield *f, int col);
/* Numbers and points as floats; LM_EBADVALUE at a value out of float range. */
int lm__exec_float(struct lm__exec *ex, const struct lm_lql_value *v, float *out);
int lm__exec_point(struct lm__exec *ex, const struct lm_lql_value v[3], float out[3]);
/* A unit direction from v (normalised; zero or non-finite is an error at v). */
int lm__exec_direction(struct lm__exec *ex, const struct lm_lql_value v[3], float out[3]);

/* ---------------------------------------------------------------- results */

struct lm__exec_store {
    struct lm__arena arena;      /* names, texts, columns */
    size_t cap_rows;
};
/* A new empty result of kind with its store. */
int lm__result_new(enum lm_lql_kind kind, struct lm_exec_result **out);
/* Adds a column (name copied); -ENOMEM. */
int lm__result_column(struct lm_exec_result *r, const char *name, enum lm_exec_type type);
/* Appends a row of n_columns NULL values and returns it; NULL when out of memory. */
struct lm_exec_value *lm__result_row(struct lm_exec_result *r);
/* A copy of s in the result's store; NULL when out of memory. */
const char *lm__result_text(struct lm_exec_result *r, const char *s);
/* printf into r->message. */
void lm__result_message(struct lm_exec_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---------------------------------------------------------------- predicates */

enum lm__pred_kind {
    LM__P_TRUE = 1, LM__P_FALSE, LM__P_AND, LM__P_OR, LM__P_NOT, LM__P_CMP, LM__P_REGION
};

struct lm__pred {
    enum lm__pred_kind kind;
    struct lm_lql_pos pos;
    size_t n;                    /* AND, OR: n >= 1 args; NOT: args[0] */
    struct lm__pred **args;
    struct lm_filter cmp;        /* CMP */
    struct lm_region region;     /* REGION: BOX, SPHERE or FRUSTUM */
};

/* Compiles a WHERE expression (NULL: TRUE) against the field: names resolved, regions
 * built and checked. Errors at the offending node. The tree lives in ex->tmp. */
int lm__pred_compile(struct lm__exec *ex, const struct lm__xfield *f,
                     const struct lm_lql_expr *e, struct lm__pred **out);

/* One sample, read from rows (rows != NULL) or from a chunk view. */
struct lm__row {
    const struct lm__xfield *f;
    const struct lm_rows *rows;
    const struct lm_chunk_view *view;
    size_t i;
};
double lm__row_value(const struct lm__row *r, int col);
bool lm__pred_eval(const struct lm__pred *p, const struct lm__row *r);

/* What of a predicate the engine can take. sel holds conditions every matching sample
 * meets (its region a bounding box of the rest where it has none); exact when sel is
 * the whole predicate; nothing when no sample can match. -ENOMEM only. */
struct lm__push {
    bool exact, nothing;
    struct lm_selection sel;
};
int lm__pred_push(struct lm__exec *ex, const struct lm__pred *p, struct lm__push *out);

/* The predicate as a union of selections (its disjunctive form); *ok false when some
 * term is no selection or there would be more than `max_terms`. Terms that match
 * nothing are left out (n may be 0). */
struct lm__terms {
    size_t n;
    struct lm_selection *sel;
};
int lm__pred_terms(struct lm__exec *ex, const struct lm__pred *p, size_t max_terms,
                   struct lm__terms *out, bool *ok);

/* Marks the columns the predicate reads (x, y, z for regions). */
void lm__pred_columns(const struct lm__pred *p, bool used[LM__MAX_COLUMNS]);

/* "BOX (0, 0, 0) TO (1, 1, 1) AND intensity > 0.5" into buf (truncated to cap). */
void lm__selection_text(const struct lm__xfield *f, const struct lm_selection *sel,
                        char *buf, size_t cap);

/* ---------------------------------------------------------------- statements */

/* Runs (or with ex->plan_only, only checks) any statement; *out may stay NULL. */
int lm__exec_dispatch(struct lm__exec *ex, const struct lm_lql_stmt *s,
                      struct lm_exec_result **out);

int lm__exec_select(struct lm__exec *ex, const struct lm_lql_stmt *s,
                    struct lm_exec_result **out);
int lm__exec_select_each(struct lm__exec *ex, const struct lm_lql_stmt *s,
                         lm_exec_columns_fn columns, lm_exec_row_fn fn, void *user);
int lm__exec_insert(struct lm__exec *ex, const struct lm_lql_stmt *s,
                    struct lm_exec_result **out);
int lm__exec_delete(struct lm__exec *ex, const struct lm_lql_stmt *s,
                    struct lm_exec_result **out);
int lm__exec_update(struct lm__exec *ex, const struct lm_lql_stmt *s,
                    struct lm_exec_result **out);
int lm__exec_explain(struct lm__exec *ex, const struct lm_lql_stmt *s,
                     struct lm_exec_result **out);

/* Plans, for EXPLAIN: lines of (step, detail) added to r. */
int lm__explain_select(struct lm__exec *ex, const struct lm_lql_stmt *s,
                       struct lm_exec_result *r);
int lm__explain_write(struct lm__exec *ex, const struct lm_lql_stmt *s,
                      struct lm_exec_result *r);
/* Adds a (step, detail) row with a printf detail. */
int lm__explain_line(struct lm_exec_result *r, const char *step, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Octree walk and sampled estimate for a selection, as plan lines. `pred` (optional)
 * is evaluated on the sampled samples; *est receives the estimated matches. */
int lm__explain_access(struct lm__exec *ex, const struct lm__xfield *f,
                       const struct lm_selection *sel, const struct lm__pred *pred,
                       struct lm_exec_result *r, double *est);

#endif
