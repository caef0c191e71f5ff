/* api.h - the JSON API of the server, independent of sockets: field list and creation,
 * batch insert, queries. HTTP (server.c) and WebSocket frames call the same handlers.
 * Owns: nothing; handlers borrow the database and append JSON to the caller's buffer.
 * Invariants: (1) every handler returns an HTTP status and leaves exactly one JSON value
 *   in `out` (a result, or {"error": {...}} for status >= 400).
 *   (2) an insert is acknowledged only after lm_insert has returned; a rejected batch
 *   changes nothing (the engine's guarantee).
 *   (3) errors in request text carry 1-based line:column positions.
 * Threading: one call at a time per buffer; the engine serialises writers.
 * Called by: server.c, tests/test_net_api.c, and a query language plugged in through
 *   lm_net_query_fn. */
#ifndef LM_NET_API_H
#define LM_NET_API_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "lumadb.h"

/* A query language executor: runs `text` (len bytes, not NUL-terminated) against db and
 * appends one JSON value to `out` (use lm_api_rows_json for rows). Returns 0, or a
 * negative LM_E* code with err filled (line/column for syntax errors). The server calls
 * it for POST /v1/query bodies that are not JSON objects and for WebSocket QUERY frames
 * likewise. */
typedef int (*lm_net_query_fn)(void *user, lm_db *db, const char *text, size_t len,
                               struct lm_net_buf *out, struct lm_error *err);

#define LM_API_DEFAULT_LIMIT 10000
#define LM_API_MAX_LIMIT 1000000

/* HTTP status for an engine error code. */
int lm_api_status(int lm_code);
/* Appends {"error":{"code":NAME,"errno":C,"message":...,"line":L,"column":C}}; err may be
 * NULL. Returns lm_api_status(code) so handlers can `return lm_api_error(...)`. */
int lm_api_error(struct lm_net_buf *out, int code, const struct lm_error *err);
/* Same with an explicit HTTP status and message (no engine error). */
int lm_api_error_msg(struct lm_net_buf *out, int status, const char *code_name,
                     const char *message);

/* GET /v1/fields: {"fields":[{name, voxel_size, chunk_edge, samples, chunks, voxels, lsn,
 * bounds, columns}]}. */
int lm_api_fields(lm_db *db, struct lm_net_buf *out);
/* A write decoded and checked but not applied, for a replicated server: the mutation
 * record (engine/record.h) of `type`, payload lm_alloc'ed and owned by the caller, and
 * the samples it inserts. The handlers below fill it instead of writing when given one,
 * and then return 0 with nothing in `out`; the caller answers once the write settled,
 * with lm_api_created_json / lm_api_inserted_json or lm_api_error. */
struct lm_api_record {
    uint16_t type;
    void *payload;
    size_t n;
    size_t samples;
};

/* PUT /v1/fields/NAME with {"voxel_size":V, "chunk_edge":E, "user_columns":[{"name":..,
 * "type":"f32|i32|u8"}]}: 201 {"created": NAME}. */
int lm_api_field_create(lm_db *db, const char *name, const char *json, size_t len,
                        struct lm_net_buf *out, struct lm_api_record *defer);
void lm_api_created_json(struct lm_net_buf *out, const char *name);
/* POST /v1/fields/NAME/samples with columns {"x":[..],...} or rows ([{..}] or
 * {"rows":[{..}]}): 200 {"inserted":N,"lsn":L}. *lsn and *n are set on success. */
int lm_api_insert(lm_db *db, const char *name, const char *json, size_t len,
                  struct lm_net_buf *out, uint64_t *lsn, size_t *n, struct lm_api_record *defer);
void lm_api_inserted_json(struct lm_net_buf *out, size_t n, uint64_t lsn);
/* POST /v1/query: a JSON object (see docs/PROTOCOL.md) mapped onto the C API, or other
 * text handed to `lang` (NULL: 501 with a message saying so). */
int lm_api_query(lm_db *db, const char *text, size_t len, lm_net_query_fn lang, void *lang_user,
                 struct lm_net_buf *out);

/* Appends rows as {"n":N,"x":[...],...,"<user column>":[...],"distance":[...]}. */
void lm_api_rows_json(struct lm_net_buf *out, const struct lm_rows *rows,
                      const struct lm_field_opts *opts);

#endif
