/* repl_host.h - replication hosted in the network server (`lumadb serve --node-id
 * --peers`): the lm_net_writer that sends the server's writes and linearizable reads
 * through Raft, from whichever node the client reached.
 *
 * Owns: the writes and fences in flight, and forwarding threads of its own (not libuv's
 *   pool, where raft_uv writes to disk), each with a blocking cluster client
 *   (repl_client.h), that send them to the leader.
 * Borrows: the loop, the lm_repl and its replica database; all outlive the host.
 *
 * Invariants:
 *  (1) On the leader a write goes to lm_repl_write directly. On a follower, or when the
 *      leader loses its leadership before the write committed (outcome unknown), it is
 *      forwarded to the leader's client port with the same (client id, request id), so
 *      the cluster applies it at most once and the client gets one answer.
 *  (2) A write's `done` reports success only once the entry is committed and applied
 *      on the leader (repl.h invariant 2); this node's database may apply it a moment
 *      later, and lm_net_server_notify then streams it to this node's subscribers.
 *  (3) A linearizable read on the leader runs after lm_repl_fence; on a follower, after
 *      the leader's fence index (LM_WIRE_FENCE) has been applied here (read-index).
 * Threading: loop thread, except the forwarding threads, which touch only their jobs,
 *   their clients and the queues between them and the loop (under a mutex).
 * Called by: tools/cmd_serve.c.
 */
#ifndef LM_REPL_HOST_H
#define LM_REPL_HOST_H

#include <stddef.h>
#include <uv.h>

#include "lumadb.h"
#include "net.h"
#include "repl.h"

typedef struct lm_repl_host lm_repl_host; /* opaque */

struct lm_repl_host_opts {
    uv_loop_t *loop;
    lm_repl *repl;
    lm_db *db;                            /* the replica lm_repl applies to */
    const struct lm_repl_member *members; /* client port addresses to forward to */
    size_t n_members;
    unsigned forward_deadline_ms;         /* one forwarded request, retries included;
                                             0 = 10000 */
};

/* Errors: LM_EBADARG (missing loop, repl, db or members), -ENOMEM. */
int lm_repl_host_open(const struct lm_repl_host_opts *o, lm_repl_host **out,
                      struct lm_error *err);
/* The writer to put in lm_net_opts.writer; valid while the host is. */
const struct lm_net_writer *lm_repl_host_writer(lm_repl_host *h);
/* Begins shutdown: new writes and reads are refused (LM_ECANCELED), and nothing in
 * flight touches the lm_repl any more, which may then be closed. */
void lm_repl_host_close(lm_repl_host *h);
/* Frees the host once its handle closed (after uv_run returned), joining the forwarding
 * threads. NULL is a no-op. */
void lm_repl_host_free(lm_repl_host *h);

#endif
