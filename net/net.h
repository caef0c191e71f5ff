/* net.h - the LumaDB network server: HTTP (static WebGL client, JSON API, /metrics,
 * /healthz) and the lumadb.v1 WebSocket protocol (chunk streaming, live deltas,
 * queries, inserts) on one port, on one libuv loop shared with the caller.
 *
 * Owns: a libwebsockets context on the caller's loop (foreign loop), two uv timers,
 *   every client connection, their subscriptions and bounded send queues.
 * Invariants:
 *   (1) Everything runs on the loop thread; the server never blocks on a client.
 *   (2) A client's queued bytes stay below opts.send_queue plus one frame: chunk frames
 *       are built only when its queue has drained, and its reads are paused while
 *       replies it asked for fill the queue.
 *   (3) A changed chunk is pending at most once per subscription, and is sent in its
 *       newest version when its turn comes (deltas coalesce; no backlog of versions).
 *   (4) Writes need the bearer token; reads need it only with opts.read_token.
 *   (5) A malformed, oversized or wrong-version frame gets an ERROR frame; the
 *       connection stays open and other connections are unaffected.
 * Threading: all calls on the loop thread.
 * Called by: tools/cmd_serve.c (`lumadb serve`), tests, bench.
 * Wire format: net/wire.c and docs/PROTOCOL.md. */
#ifndef LM_NET_H
#define LM_NET_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "api.h"
#include "lumadb.h"
#include "metrics.h"

typedef struct lm_net_server lm_net_server;

/* Replication hook. A server over a replicated database does not write to its lm_db:
 * each write is checked and encoded as a mutation record (engine/record.h) and handed
 * to the host, which commits it through the cluster's log; the client is answered when
 * `done` reports the outcome. All calls and callbacks on the loop thread. */
typedef void (*lm_net_write_done_fn)(void *ctx, int rc, uint64_t index, uint64_t count,
                                     const char *message);
typedef void (*lm_net_ready_fn)(void *ctx, int rc, const char *message);
struct lm_net_writer {
    /* Proposes the record (payload borrowed for the call). (client_id, request_id) name
     * it for deduplication. Returns 0 and later calls done exactly once; or an error
     * with err filled, and done is never called. */
    int (*write)(void *user, uint64_t client_id, uint64_t request_id, uint16_t type,
                 const void *payload, size_t n, lm_net_write_done_fn done, void *ctx,
                 struct lm_error *err);
    /* Linearizable reads: ready(ctx, 0, "") once a read of the local database reflects
     * every write acknowledged anywhere before this call. Same return rules. */
    int (*fence)(void *user, lm_net_ready_fn ready, void *ctx, struct lm_error *err);
    /* Appends one JSON object describing the cluster (GET /v1/cluster), and the local
     * per-chunk digests (GET /v1/cluster/digest). */
    void (*status_json)(void *user, struct lm_net_buf *out);
    int (*digest_json)(void *user, struct lm_net_buf *out, struct lm_error *err);
    void *user;
};

/* Receives one log line (no trailing newline) for each event that matters. */
typedef void (*lm_net_log_fn)(void *user, const char *line);

struct lm_net_opts {
    lm_db *db;                 /* borrowed; outlives the server */
    uv_loop_t *loop;           /* borrowed; must be running for the server to work */
    const char *bind;          /* listen address; NULL = "127.0.0.1" */
    int port;                  /* 0 = a free port (lm_net_server_port tells which) */
    const char *web_root;      /* directory served at "/"; NULL = none */
    const char *token;         /* bearer token for writes; required, 8..256 chars */
    bool read_token;           /* reads need the token too */
    double rate, burst;        /* writes + queries per second per address; 0 = no limit */
    uint32_t max_frame;        /* largest WebSocket frame either way; 0 = 1 MiB */
    uint32_t send_queue;       /* bytes queued per client before it is throttled; 0 = 4 MiB */
    uint32_t max_body;         /* largest HTTP request body; 0 = 64 MiB */
    uint32_t max_clients;      /* WebSocket clients; 0 = 1024 */
    uint32_t max_subs;         /* subscriptions per client; 0 = 16 */
    uint16_t ping_s;           /* idle seconds before a ping; 0 = 20 */
    uint16_t timeout_s;        /* idle seconds before hanging up; 0 = 60 */
    lm_net_query_fn query_fn;  /* query language for non-JSON queries; NULL = none */
    void *query_user;
    const struct lm_net_writer *writer; /* NULL = write to db directly (single node) */
    lm_net_log_fn log;         /* NULL = silent */
    void *log_user;
};

/* Starts listening. Errors: LM_EBADARG (missing db/loop/token), -EADDRINUSE or
 * LM_EINTERNAL when libwebsockets cannot listen (err says why), -ENOMEM. */
int lm_net_server_open(const struct lm_net_opts *opts, lm_net_server **out,
                       struct lm_error *err);
/* The port actually listened on. */
int lm_net_server_port(const lm_net_server *s);
/* Tells the server the database changed (writes made elsewhere, e.g. replication):
 * subscribers get the changed chunks. Writes made through the server call it already. */
void lm_net_server_notify(lm_net_server *s);
/* Begins a clean shutdown: clients get BYE and a 1001 close, then the context and the
 * server's handles close; `done` runs on the loop when they have, after which the loop
 * has nothing of the server's left and lm_net_server_free may be called. */
void lm_net_server_shutdown(lm_net_server *s, void (*done)(void *user), void *user);
/* Frees the server after shutdown's `done` (or if the loop never ran), and, with a
 * writer, after every writer callback ran (close the writer first: lumadb serve closes
 * replication, then lets the loop finish). NULL is a no-op. */
void lm_net_server_free(lm_net_server *s);
/* Counters, for tests and the bench. */
const struct lm_net_metrics *lm_net_server_metrics(const lm_net_server *s);

#endif
