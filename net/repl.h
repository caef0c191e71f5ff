/* repl.h - replication of a LumaDB database over Raft (libraft 0.15, libuv TCP).
 *
 * Owns: one Raft server (its raft_uv log and snapshot directory, TCP transport, timers)
 *   on a loop the caller supplies; the apply thread; the replicated state that lives
 *   beside the database (results of recent requests per client, client-port addresses
 *   of members); writes and read fences in flight.
 * Borrows: the loop and a replica database handle (lm__db_open_replica); both must
 *   outlive the lm_repl.
 *
 * Invariants:
 *  (1) A write is one Raft entry: a 24-byte header (kind, client id, request id, record
 *      type, length), the engine's mutation record payload (record.h) and padding to a
 *      multiple of 8 bytes (raft_uv 0.15 needs it, see repl.c). The entry at log
 *      index i is applied with sequence number i (lm__db_apply_record) by the apply
 *      thread, in log order, on every node: the same code that applies live writes and
 *      replays the engine's own log.
 *  (2) A write's callback reports success only once its entry is committed and applied
 *      on this node, so a read on this node afterwards sees it.
 *  (3) Apply is deterministic: an entry whose record no longer fits the state (a field
 *      dropped or changed since the leader checked it) is rejected on every node alike
 *      and changes nothing; its writer gets that verdict.
 *  (4) An entry carrying a (client id, request id) already applied is not applied again;
 *      it answers with the first result. These results are replicated state: snapshots
 *      carry them, so a retried write is idempotent across failovers.
 *  (5) A snapshot holds the state at exactly the index Raft names for it: the apply thread
 *      writes the checkpoint when it reaches that index, and Raft's loop is never held
 *      up meanwhile (snapshot_async).
 *  (6) A new leader accepts writes (and checks them against its state) only after a
 *      barrier of its own term is committed and applied locally.
 * Memory: entry and snapshot buffers handed to Raft come from raft_malloc (Raft frees
 *   the entries) or are freed by snapshot_finalize; everything else goes through lm_alloc.
 * Threading: every lm_repl_* function and every callback runs on the loop thread. The
 *   apply thread only touches the database, its own tables and the queues between
 *   them; libuv's thread pool waits for snapshots there. Raft is never called off the
 *   loop.
 * Called by: tools/cmd_node.c (`lumadb node`) and net/repl_port.c (the client port);
 *   a host such as `lumadb serve` opens it on its own loop the same way.
 * Formats: the entry and snapshot byte tables are above entry_header() and
 *   snapshot_write() in repl.c and in docs/REPLICATION.md.
 */
#ifndef LM_REPL_H
#define LM_REPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "lumadb.h"

typedef struct lm_repl lm_repl; /* opaque */

#define LM_REPL_ADDR_MAX 64       /* "host:port" and its terminating zero */
#define LM_REPL_MAX_MEMBERS 16
#define LM_REPL_MAX_ENTRY (64u << 20) /* bytes of one record */

struct lm_repl_member {
    uint64_t id;                    /* > 0 */
    char address[LM_REPL_ADDR_MAX]; /* Raft address "host:port" */
    char client[LM_REPL_ADDR_MAX];  /* client port "host:port"; "" when unknown */
};

struct lm_repl_opts {
    uint64_t id;                          /* this node's id, > 0 */
    const char *dir;                      /* Raft's log and snapshots (created) */
    lm_db *db;                            /* replica handle; borrowed */
    const struct lm_repl_member *members; /* the initial voters, this node included; */
    size_t n_members;                     /* same list on every node */
    bool join;                            /* don't bootstrap: a leader adds this node */
    unsigned election_ms;                 /* election timeout; 0 = 200 */
    unsigned heartbeat_ms;                /* heartbeat interval; 0 = 20 */
    unsigned snapshot_threshold;          /* entries between snapshots; 0 = 1024 */
    unsigned snapshot_trailing;           /* entries kept behind a snapshot; 0 = 128 */
    size_t max_batch_bytes;               /* writes gathered into one raft_apply; 0 = 8 MiB */
    /* Called on the loop once when the apply thread hits an error no other node has
     * (out of memory, storage): this node stops acknowledging anything and should be
     * restarted (it then rebuilds from its Raft log). May be NULL. */
    void (*on_failure)(void *data, const char *why);
    /* Called on the loop after entries (or a restored snapshot) took effect in the
     * database, with the highest log index applied: a host tells its subscribers here.
     * Receives `data`. May be NULL. */
    void (*on_applied)(void *data, uint64_t db_index);
    void *data;
};

/* Opens the Raft directory, starts the apply thread and Raft on `loop` (bootstrapping
 * the initial configuration on first start unless o->join). Errors: LM_EBADARG (no id,
 * dir, db or members, this node missing from them, an address that does not fit);
 * LM_ENOTFOUND when Raft's directory cannot be used; -errno; -ENOMEM; LM_EINTERNAL for
 * another Raft failure (err carries Raft's message). On success *out is owned by the
 * caller: lm_repl_close it. */
int lm_repl_open(uv_loop_t *loop, const struct lm_repl_opts *o, lm_repl **out,
                 struct lm_error *err);

/* Stops Raft, the timers and the apply thread. Writes and fences still in flight get
 * LM_ECANCELED. cb(data) runs on the loop once every handle is closed and `r` is freed
 * (the loop must keep running until then). NULL r is a no-op (cb is not called). */
void lm_repl_close(lm_repl *r, void (*cb)(void *data), void *data);

/* ---------------------------------------------------------------- writes */

struct lm_repl_result {
    int rc;              /* 0; a record's verdict (invariant 3); LM_ENOTLEADER (this node
                            lost leadership before the entry committed: outcome unknown,
                            send it again with the same request id); LM_ECANCELED;
                            LM_EFAILED */
    uint64_t index;      /* log index of the entry that carried it (the first one for a
                            retried request) */
    uint64_t count;      /* samples inserted, deleted or updated */
    char message[256];   /* for people, when rc != 0 */
};
typedef void (*lm_repl_write_cb)(void *data, const struct lm_repl_result *res);

/* Proposes one mutation: `payload` (n bytes, copied) is a record of `type` as record.h
 * encodes it. client_id 0 means no deduplication; otherwise (client_id, request_id)
 * names the request (invariant 4). Writes arriving in one loop iteration are batched
 * into one raft_apply. Returns 0 and later calls cb exactly once; or an error and cb is
 * never called: LM_ENOTLEADER (see lm_repl_leader), the verdict of
 * lm__db_check_record with err filled, LM_ELIMIT (over LM_REPL_MAX_ENTRY), LM_EFAILED,
 * LM_ECANCELED (closing), -ENOMEM. The early check runs only when the apply thread is
 * not writing (the loop never waits for it); otherwise the same verdict comes through
 * cb once the entry is applied (invariant 3). */
int lm_repl_write(lm_repl *r, uint64_t client_id, uint64_t request_id, uint16_t type,
                  const void *payload, size_t n, lm_repl_write_cb cb, void *data,
                  struct lm_error *err);

/* The leader this node knows of: its id and client address ("" when unknown). Returns
 * 0, or LM_ENOTFOUND when there is none (an election is under way). */
int lm_repl_leader(lm_repl *r, uint64_t *id, char client[LM_REPL_ADDR_MAX]);

/* ---------------------------------------------------------------- reads */

/* rc 0 or an error; why (never NULL, "" on success) says more, valid during the call. */
typedef void (*lm_repl_done_cb)(void *data, int rc, const char *why);

/* Linearizable read fence (leader only): cb(data, 0, "") runs once the local database holds
 * every write acknowledged anywhere before this call (a Raft barrier committed, then
 * applied here); a read made in cb is linearizable. cb(data, LM_ENOTLEADER) when
 * leadership was lost meanwhile, LM_ECANCELED when closing. Returns 0, or LM_ENOTLEADER /
 * -ENOMEM / LM_ECANCELED and cb is never called. Local reads without a fence see a
 * prefix of the committed log that only grows (see docs/REPLICATION.md). */
int lm_repl_fence(lm_repl *r, lm_repl_done_cb cb, void *data);

/* Waits until the database holds the effect of log entry `index` (db_index >= index):
 * cb(data, 0, "") then, at once when it already does (before this returns). With an
 * index a leader's fence returned (LM_WIRE_FENCE), a follower serves linearizable reads
 * itself (read-index). cb gets -ETIMEDOUT when timeout_ms passed first (checked every
 * 10 ms), LM_ECANCELED when closing, LM_EFAILED when the node failed meanwhile. Returns
 * 0, or LM_ECANCELED / LM_EFAILED / -ENOMEM and cb is never called. */
int lm_repl_wait_index(lm_repl *r, uint64_t index, unsigned timeout_ms, lm_repl_done_cb cb,
                       void *data);

/* The highest log index whose effect is in the database. */
uint64_t lm_repl_db_index(lm_repl *r);

/* ---------------------------------------------------------------- membership */

/* Leader only. add: records m's client address in the replicated state, adds m as a
 * spare, then promotes it to voter once it has caught up; remove: takes `id` out of the
 * configuration (a leader removing itself steps down once that commits). cb(data, rc)
 * with rc 0, LM_ENOTLEADER, LM_EBADARG (Raft refused: unknown or duplicate id, a change
 * already under way; why has Raft's reason) or LM_ECANCELED. Returns 0, or an error and cb is never called. */
int lm_repl_add(lm_repl *r, const struct lm_repl_member *m, lm_repl_done_cb cb, void *data);
int lm_repl_remove(lm_repl *r, uint64_t id, lm_repl_done_cb cb, void *data);

/* ---------------------------------------------------------------- status */

enum lm_repl_role { LM_REPL_UNAVAILABLE = 0, LM_REPL_FOLLOWER, LM_REPL_CANDIDATE,
                    LM_REPL_LEADER };
enum lm_repl_voting { LM_REPL_STANDBY = 0, LM_REPL_VOTER = 1, LM_REPL_SPARE = 2 };

struct lm_repl_status {
    uint64_t id;
    enum lm_repl_role role;
    bool ready;               /* leader that accepts writes (invariant 6) */
    bool failed;              /* see lm_repl_opts.on_failure */
    uint64_t term;
    uint64_t leader_id;       /* 0 = none known */
    char leader_client[LM_REPL_ADDR_MAX];
    uint64_t last_index;      /* last entry in this node's log */
    uint64_t commit_index;    /* highest entry known committed */
    uint64_t applied_index;   /* highest entry Raft handed to the state machine */
    uint64_t db_index;        /* highest entry whose effect is in the database */
    uint64_t snapshot_index;  /* last snapshot taken or installed */
    uint64_t backlog;         /* entries handed over and not yet applied */
    uint64_t snapshots_taken, snapshots_restored;
    size_t n_members;
    struct {
        struct lm_repl_member m;
        enum lm_repl_voting voting;
    } members[LM_REPL_MAX_MEMBERS];
    char failure[256];
};
void lm_repl_status(lm_repl *r, struct lm_repl_status *out);

const char *lm_repl_role_name(enum lm_repl_role role);

/* Parses "1=127.0.0.1:7001/127.0.0.1:8001,2=..." (the part after '/' is the client
 * address, optional; a bare port means the Raft address's host) into out[cap].
 * Returns the member count, or LM_EBADARG with err saying what is wrong. */
int lm_repl_parse_members(const char *spec, struct lm_repl_member *out, size_t cap,
                          struct lm_error *err);

#endif
