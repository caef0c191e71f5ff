/* repl_port.h - the cluster's client port: a TCP listener on a libuv loop that speaks
 * the frames of repl_wire.h, serving writes through lm_repl and reads from the local
 * replica.
 *
 * Owns: the listening socket, its connections and their buffers, read jobs on libuv's
 *   thread pool.
 * Borrows: the loop, the lm_repl and the replica lm_db (all three outlive the port;
 *   close the port first or together with the lm_repl).
 * Invariants:
 *  (1) Every request gets exactly one reply frame carrying its request id, unless its
 *      connection closes first (the reply is then dropped, the work still done).
 *  (2) A write, fence or membership change sent to a follower is answered REDIRECT with
 *      the leader's id and client address ("" while unknown); the client sends it again
 *      there with the same request id (a write's outcome is never guessed).
 *  (3) Reads (SELECT, DIGEST, FIELDS) run on libuv's thread pool, at most two at once,
 *      never on the loop (Raft's heartbeats run there). With LM_WIRE_LINEARIZABLE they
 *      run after an lm_repl_fence (leader only).
 *  (4) A connection that sends a malformed or oversized frame is closed.
 * Threading: the loop thread; read jobs only read the database.
 * Called by: tools/cmd_node.c (`lumadb node`); a server hosting replication opens it
 *   on its own loop beside its other listeners.
 */
#ifndef LM_REPL_PORT_H
#define LM_REPL_PORT_H

#include <uv.h>

#include "lumadb.h"
#include "repl.h"

typedef struct lm_repl_port lm_repl_port; /* opaque */

/* Listens on `address` ("host:port", IPv4). Errors: LM_EBADARG for an address that does
 * not parse; -errno of bind/listen (-EADDRINUSE); -ENOMEM. On success *out is owned by
 * the caller: lm_repl_port_close it. */
int lm_repl_port_open(uv_loop_t *loop, lm_repl *repl, lm_db *db, const char *address,
                      lm_repl_port **out, struct lm_error *err);

/* Stops listening and closes every connection; cb(data) runs on the loop once the
 * port is freed, which waits for the requests still out (writes finish or are canceled
 * when the lm_repl closes). NULL p is a no-op (cb is not called). */
void lm_repl_port_close(lm_repl_port *p, void (*cb)(void *data), void *data);

/* Formats lm_repl_status as the text of a STATUS reply ("key value" lines, then one
 * "member ID VOTING RAFT-ADDRESS CLIENT-ADDRESS" line per member; docs/REPLICATION.md).
 * Returns the length written (truncated to cap - 1). */
size_t lm_repl_port_status_text(const struct lm_repl_status *s, char *out, size_t cap);

#endif
