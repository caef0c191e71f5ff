/* field.h - a named light field: schema, chunks, octree; its mutations.
 *
 * Owns: its chunks (through the octree's leaves) and the octree.
 * Invariants:
 *  (1) Every chunk in the octree is non-empty; n_samples is the sum of their rows.
 *  (2) A mutation is atomic: on any error (bad input, out of memory before the first
 *      change) the field is unchanged. Input is fully validated before any change.
 *  (3) lsn is the highest change sequence number applied to the field; every chunk
 *      changed by a mutation gets that mutation's lsn.
 * Threading: none inside; db.c holds its write lock around mutations and its read lock
 * around queries. Called by: db.c, query.c, storage (replay). */
#ifndef LM_FIELD_H
#define LM_FIELD_H

#include "chunk.h"
#include "octree.h"

struct lm_field {
    char name[LM_NAME_MAX + 1];
    struct lm_field_opts opts;
    struct lm_schema schema;
    struct lm__octree tree;
    uint64_t n_samples;
    uint64_t lsn;
};

/* Validates name and options, fills defaults (chunk edge 32). */
int lm__field_validate(const char *name, const struct lm_field_opts *opts,
                       struct lm_field_opts *normalized, struct lm_error *err);
int lm__field_new(const char *name, const struct lm_field_opts *opts, struct lm_field **out,
                  struct lm_error *err);
void lm__field_free(struct lm_field *f);

/* Checks a batch against the schema and value rules (lumadb.h lm_batch). */
int lm__field_check_batch(const struct lm_field *f, const struct lm_batch *b,
                          struct lm_error *err);
/* Checks a selection (region numbers, filter columns/ops). */
int lm__field_check_selection(const struct lm_field *f, const struct lm_selection *sel,
                              struct lm_error *err);

/* Inserting in two steps lets the caller log the batch between them: prepare does
 * every allocation (no visible change; -ENOMEM changes nothing), commit cannot fail,
 * abort undoes a prepare. */
struct lm__insert_plan;
int lm__field_insert_prepare(struct lm_field *f, const struct lm_batch *b,
                             struct lm__insert_plan **out, struct lm_error *err);
void lm__field_insert_commit(struct lm__insert_plan *p, uint64_t lsn);
void lm__field_insert_abort(struct lm__insert_plan *p);

/* Applies a checked batch with sequence number lsn (prepare + commit). */
int lm__field_insert(struct lm_field *f, const struct lm_batch *b, uint64_t lsn,
                     struct lm_error *err);
int lm__field_delete(struct lm_field *f, const struct lm_selection *sel, uint64_t lsn,
                     uint64_t *n_deleted, struct lm_error *err);
/* Checks that `value` may be written to `column` (before logging an update). */
int lm__field_check_update(const struct lm_field *f, int column, double value,
                           struct lm_error *err);
int lm__field_update(struct lm_field *f, const struct lm_selection *sel, int column,
                     double value, uint64_t lsn, uint64_t *n_updated, struct lm_error *err);

/* Sorts every chunk's tail into its index (after bulk loads, before benchmarks). */
int lm__field_compact(struct lm_field *f);

void lm__field_info(const struct lm_field *f, struct lm_field_info *out);
/* The constant-time part of lm__field_info: n_voxels and memory_bytes are left 0. */
void lm__field_stat(const struct lm_field *f, struct lm_field_info *out);

/* Does row i of chunk c pass the selection's filters (not its region)? */
bool lm__row_passes_filters(const struct lm_chunk *c, const struct lm_schema *s,
                            const struct lm_selection *sel, uint32_t i);

/* Calls fn for every leaf in Morton order whose bounds may meet the region, with
 * the overlap class (INSIDE means every row is in the region). */
typedef int (*lm__leaf_fn)(struct lm__onode *leaf, int overlap, void *ctx);
int lm__field_walk(const struct lm_field *f, const struct lm_region *region,
                   lm__leaf_fn fn, void *ctx);

struct lm_scan_plan;
/* Compiles the selection (region unless overlap is INSIDE, and filters) into a scan
 * plan over all rows of c; false when a filter's column needs the row-by-row path. */
bool lm__chunk_scan_plan(const struct lm_chunk *c, const struct lm_schema *s,
                         const struct lm_selection *sel, int overlap,
                         struct lm_scan_plan *plan);

/* Row indices of chunk c inside the selection (region and filters), ascending.
 * out must hold c->n entries. Returns the count. */
uint32_t lm__chunk_select(const struct lm_chunk *c, const struct lm_schema *s,
                          const struct lm_selection *sel, int overlap, uint32_t *out);

#endif
