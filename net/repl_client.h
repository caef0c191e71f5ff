/* repl_client.h - a blocking client of the cluster's client port (repl_port.h): writes
 * that follow the leader and survive failovers, local and linearizable reads, status,
 * digests, membership.
 *
 * Owns: one TCP connection per known node (opened on first use), the node list (it
 *   grows with the addresses redirects name), the client id and its request counter.
 * Invariants:
 *  (1) A write keeps its request id through every retry and redirect, so the cluster
 *      applies it at most once (repl.h invariant 4); it returns 0 only on an
 *      acknowledgement (committed and applied on the leader).
 *  (2) A write that fails with LM_ETIMEDOUT-like errors (-ETIMEDOUT here) may still have
 *      been applied; one that fails with a verdict (LM_ESCHEMA, ...) was not.
 *  (3) Each call waits at most its deadline (opts.deadline_ms), each try at most
 *      opts.try_ms: every loop is bounded.
 * Threading: one thread per client; open several clients for concurrency.
 * Called by: tools/cmd_cluster.c, tests/test_cluster*.c, bench/bench_cluster.c.
 */
#ifndef LM_REPL_CLIENT_H
#define LM_REPL_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lumadb.h"
#include "repl.h"
#include "repl_wire.h"

typedef struct lm_repl_client lm_repl_client; /* opaque */

struct lm_repl_client_opts {
    const char *const *nodes; /* client port addresses "host:port" */
    size_t n_nodes;
    uint64_t client_id;       /* 0 = a random one */
    unsigned try_ms;          /* one request to one node; 0 = 2000 */
    unsigned deadline_ms;     /* a whole call, retries included; 0 = 15000 */
};

/* Errors: LM_EBADARG (no nodes, more than LM_REPL_MAX_MEMBERS), -ENOMEM. Connects
 * lazily: a node that is down is not an error here. */
int lm_repl_client_open(const struct lm_repl_client_opts *o, lm_repl_client **out,
                        struct lm_error *err);
void lm_repl_client_close(lm_repl_client *c); /* NULL is a no-op */
uint64_t lm_repl_client_id(const lm_repl_client *c);

/* One request to node `node` (index in the node list) and its reply, no retries. The
 * reply's body points into *frame (lm_alloc'ed, the caller frees it). rq->client_id 0
 * is replaced by the client's; rq->request_id 0 by a new one. Errors: -ETIMEDOUT,
 * -ECONNREFUSED and other -errno of the connection (closed afterwards), LM_ECORRUPT for
 * a malformed reply, LM_EBADARG for a node out of range. */
int lm_repl_client_call(lm_repl_client *c, size_t node, const struct lm_wire_request *rq,
                        struct lm_wire_reply *rp, uint8_t **frame, struct lm_error *err);

/* A mutation record (record.h) of `type`: sent to the leader, following redirects and
 * trying the other nodes, with one request id, until acknowledged or the deadline
 * (invariant 1). *index / *count (optional): the log index and the samples touched.
 * Errors: a verdict (LM_ENOFIELD, LM_ESCHEMA, LM_EBADVALUE, ...), -ETIMEDOUT when no
 * leader acknowledged it in time (outcome unknown), -ENOMEM. */
int lm_repl_client_write(lm_repl_client *c, uint16_t type, const void *payload, size_t n,
                         uint64_t *index, uint64_t *count, struct lm_error *err);

/* The same on behalf of another client (a server forwarding its own clients' writes):
 * (client_id, request_id) name the request for deduplication; 0 picks this client's. */
int lm_repl_client_write_as(lm_repl_client *c, uint64_t client_id, uint64_t request_id,
                            uint16_t type, const void *payload, size_t n, uint64_t *index,
                            uint64_t *count, struct lm_error *err);

/* Read-index: asks the leader (following redirects) to fence, and returns in *index the
 * log index its database had reached then. A node whose database reaches *index holds
 * every write acknowledged before this call (lm_repl_wait_index). */
int lm_repl_client_fence(lm_repl_client *c, uint64_t *index, struct lm_error *err);

/* The same with the record encoded here. user_sizes: byte size of each of the field's
 * user columns (1 for u8, 4 otherwise; NULL when it has none). */
int lm_repl_client_create_field(lm_repl_client *c, const char *name,
                                const struct lm_field_opts *opts, struct lm_error *err);
int lm_repl_client_drop_field(lm_repl_client *c, const char *name, struct lm_error *err);
int lm_repl_client_insert(lm_repl_client *c, const char *field, const struct lm_batch *b,
                          const uint32_t *user_sizes, uint64_t *index, struct lm_error *err);
int lm_repl_client_delete(lm_repl_client *c, const char *field,
                          const struct lm_selection *sel, uint64_t *count,
                          struct lm_error *err);
int lm_repl_client_update(lm_repl_client *c, const char *field,
                          const struct lm_selection *sel, int column, double value,
                          uint64_t *count, struct lm_error *err);

/* Rows of `field` in the selection (NULL = all), at most limit (0 = all). node >= 0
 * reads that node's local state (no retries); node < 0 asks any node and follows
 * redirects. linearizable: the read runs on the leader after a fence (repl.h).
 * *out is owned by the caller: lm_rows_free. */
int lm_repl_client_select(lm_repl_client *c, int node, const char *field,
                          const struct lm_selection *sel, size_t limit, bool linearizable,
                          struct lm_rows **out, struct lm_error *err);

/* Node `node`'s digest of its local state. *out: lm_wire_digest_free. */
int lm_repl_client_digest(lm_repl_client *c, size_t node, struct lm_wire_digest **out,
                          struct lm_error *err);

/* Node `node`'s status text (repl_port.h); *text is lm_alloc'ed, zero-terminated. */
int lm_repl_client_status(lm_repl_client *c, size_t node, char **text, struct lm_error *err);

/* One "key value" of a status text as a number (0 when missing). */
uint64_t lm_repl_client_status_value(const char *text, const char *key);

/* Membership, sent to the leader (following redirects). */
int lm_repl_client_add(lm_repl_client *c, const struct lm_repl_member *m, struct lm_error *err);
int lm_repl_client_remove(lm_repl_client *c, uint64_t id, struct lm_error *err);

#endif
