/* mirror.h - a live local copy of one field of a lumadb.v1 server: subscribes to the
 * field (ws_client.h) and writes every chunk version it receives into a local database,
 * so that code that reads databases (the viewer's renderer, its LOD and its per-chunk
 * GPU cache) shows a remote field unchanged.
 *
 * Owns: the WebSocket client, the chunk version being gathered, the connection's state
 *   and error. Borrows: the database it writes, which the caller opened writable
 *   (usually on a temporary directory with LM_SYNC_NONE) and closes after the mirror.
 * Invariants:
 *   (1) The mirror subscribes to the whole field as samples (positions, directions,
 *       colours, intensity, time; user columns are not copied). It creates the field
 *       with the server's voxel size and chunk edge, so a sample lands in the chunk of
 *       the same coordinates as on the server.
 *   (2) A chunk version is applied whole: its parts are gathered first, then the
 *       chunk's old samples are deleted and the new ones inserted under the apply lock.
 *       A reader holding the lock (lm_mirror_lock) sees every chunk in one version.
 *   (3) Once the server's SYNCED with lsn L has been applied, every chunk holds the
 *       samples the server's chunk held at a version >= its version at L.
 *   (4) A failure before the first SYNCED (no connection, an ERROR frame, a closed
 *       connection) makes the mirror failed: lm_mirror_wait returns it. A connection
 *       lost later leaves the last state in place; it is logged, never fatal.
 * Threading: frames are applied on the client's thread; every function here may be
 *   called from any thread but open and close, which belong to the owner.
 * Called by: tools/cmd_view.c (`lumadb view ws://...`, `lumadb snapshot ws://...`),
 *   tests/test_net_mirror.c, tests/test_view_remote.c.
 * Wire format: docs/PROTOCOL.md (net/wire.h). */
#ifndef LM_NET_MIRROR_H
#define LM_NET_MIRROR_H

#include <stdint.h>

#include "lumadb.h"

typedef struct lm_mirror lm_mirror;

/* ws://HOST[:PORT]/FIELD, split. HOST may be a name, an IPv4 address or [IPv6]. */
struct lm_mirror_url {
    char host[256];
    int port;                      /* 8080 when the URL names none (lumadb serve's) */
    char field[LM_NAME_MAX + 1];
};

/* Parses a mirror URL. Errors: LM_EBADARG with err saying what is wrong with it (another
 * scheme than ws://, no host, a bad port, no field or a bad field name). */
int lm_mirror_parse_url(const char *url, struct lm_mirror_url *out, struct lm_error *err);

/* Receives one log line (no trailing newline) for each event that matters after the
 * first SYNCED: a BYE, a lost connection, a frame it could not apply. */
typedef void (*lm_mirror_log_fn)(void *user, const char *line);

struct lm_mirror_opts {
    lm_db *db;                     /* borrowed, writable; outlives the mirror */
    const char *url;               /* ws://HOST[:PORT]/FIELD */
    const char *token;             /* sent in HELLO (reads may need it); NULL = none */
    lm_mirror_log_fn log;          /* NULL = silent; called on the client's thread */
    void *log_user;
};

/* Starts connecting and returns; lm_mirror_wait tells how it goes. Errors: LM_EBADARG
 * (no db, a bad URL, a token over 256 bytes: err says which), and lm_ws_client_open's.
 * Strings in opts are copied. */
int lm_mirror_open(const struct lm_mirror_opts *opts, lm_mirror **out, struct lm_error *err);

/* Waits until a SYNCED frame with lsn >= server_lsn has been applied (0: the first
 * one, i.e. the whole field as it was when subscribing). timeout_ms < 0 waits as long
 * as it takes. Returns 0; -ETIMEDOUT (nothing is wrong, just not there yet); or the
 * failure (invariant 4): -ECONNREFUSED / -ECONNRESET / -EPROTO from the connection, the
 * engine's code of a server ERROR frame (LM_ENOFIELD, ...), or -EACCES for a refused
 * token; err then says what, where and why, with the server's own text. */
int lm_mirror_wait(lm_mirror *m, uint64_t server_lsn, int timeout_ms, struct lm_error *err);

/* The apply lock (invariant 2): while held, the mirror writes nothing. Hold it briefly
 * (one rendered frame): the client's thread waits meanwhile, and so does the server's
 * stream to it. */
void lm_mirror_lock(lm_mirror *m);
void lm_mirror_unlock(lm_mirror *m);

enum lm_mirror_state {
    LM_MIRROR_CONNECTING = 0,      /* until SUBSCRIBED */
    LM_MIRROR_LOADING,             /* receiving the field, before the first SYNCED */
    LM_MIRROR_LIVE,                /* in sync; deltas are applied as they come */
    LM_MIRROR_CLOSED,              /* the connection ended after the first SYNCED */
    LM_MIRROR_FAILED,              /* it ended before (invariant 4) */
};

struct lm_mirror_stats {
    enum lm_mirror_state state;
    uint64_t server_lsn;           /* lsn of the last SYNCED applied */
    uint32_t field_chunks;         /* SUBSCRIBED: chunks of the field then */
    uint64_t field_samples;        /* SUBSCRIBED: samples then */
    uint64_t chunks_applied;       /* chunk versions written, removals included */
    uint64_t samples_applied;      /* samples inserted */
    uint64_t bytes_received;       /* message bytes */
};
void lm_mirror_stats(lm_mirror *m, struct lm_mirror_stats *out);
/* "connecting", "loading", "live", "closed", "failed". */
const char *lm_mirror_state_name(enum lm_mirror_state s);

/* Disconnects and frees; the database keeps what was applied. NULL is a no-op. */
void lm_mirror_close(lm_mirror *m);

#endif
