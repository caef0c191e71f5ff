/* net_int.h - internals shared by server.c (context, HTTP, lifecycle) and ws.c
 * (WebSocket sessions). Not part of the library's interface.
 * Owns: the definition of struct lm_net_server and of a WebSocket session.
 * Invariants: see net.h. Threading: loop thread only. */
#ifndef LM_NET_INT_H
#define LM_NET_INT_H

#include <libwebsockets.h>

#include "coordset.h"
#include "framecache.h"
#include "net.h"
#include "ratelimit.h"
#include "wire.h"

struct lm__ws_frame {
    struct lm__ws_frame *next;
    struct lm_net_buf b;        /* LWS_PRE bytes of head room, then the frame */
};

/* A write or linearizable read handed to opts.writer, waiting for its outcome. The
 * session that asked may close meanwhile: it then sets `owner` to NULL and the outcome
 * is dropped when it comes (the pending op is freed by its callback, always). */
struct lm__net_pending {
    lm_net_server *s;
    void *owner;                /* struct http_sess or struct lm__ws_sess; NULL once gone */
    struct lm__net_pending *next; /* in a WebSocket session's list */
    struct lm__net_pending *all_prev, *all_next; /* in the server's list of all */
    uint32_t ws_id;             /* the WebSocket request's id */
    uint16_t type;              /* record type of a write */
    size_t samples;             /* samples an insert carries */
    double t0;
    char *text;                 /* a linearizable read's query, or an insert's JSON
                                   while it waits to be checked again (lm_alloc'ed) */
    size_t text_len;
    char field[LM_NAME_MAX + 1]; /* the field of such an insert */
};

/* One subscription of a session. */
struct lm__ws_sub {
    struct lm__ws_sub *next;
    uint32_t id;
    char field[LM_NAME_MAX + 1];
    struct lm_region region;
    struct lm_field_opts opts;
    uint32_t budget, columns;
    uint8_t mode, level;        /* mode 0 samples, 1 voxels at `level` */
    uint64_t seen_lsn;          /* changes up to here are pending or sent */
    bool synced_owed;           /* send SYNCED when pending drains */
    bool snapshot_done;         /* the first SYNCED went out: later chunks are deltas */
    struct lm_net_coordset pending;
    uint32_t chunks_sent;
    uint64_t items_sent;
};

/* One WebSocket connection (lws per-session data; zeroed by lws). */
struct lm__ws_sess {
    struct lws *wsi;
    lm_net_server *srv;
    struct lm__ws_sess *prev, *next;
    char addr[64];
    bool hello, can_write, closing, rx_paused, rx_skip, rx_mid, linked, close_sent;
    struct lm__ws_frame *head, *tail;
    size_t queued;
    struct lm_net_buf rx;
    struct lm__ws_sub *subs, *rr;
    uint32_t n_subs;
    uint64_t client_id, request_seq; /* names its writes for deduplication */
    struct lm__net_pending *pending; /* writes and reads waiting on opts.writer */
};

struct lm_net_server {
    struct lm_net_opts o;
    char bind[64], token[LM_WS_TOKEN_MAX + 1];
    char *web_root;
    struct lws_context *ctx;
    struct lws_vhost *vhost;
    int port;
    lm_net_ratelimit *rl;
    struct lm_net_metrics m;
    struct lm__ws_sess *sessions;
    uv_timer_t notify_timer, stop_timer;
    uint64_t client_id, request_seq; /* names HTTP writes for deduplication */
    struct lm__net_pending *pending; /* every op waiting on opts.writer */
    int handles_open, stop_ticks;
    bool stopping, destroyed;
    void (*done)(void *);
    void *done_user;
    struct lm_net_buf scratch;  /* raw columns before compression */
    struct lm_net_buf records;  /* frames of one chunk version being built */
    lm_net_framecache *cache;   /* encoded chunk versions shared by subscribers */
    lws_retry_bo_t retry;
    struct lws_http_mount mounts[4];
    struct lws_protocol_vhost_options mimes[8];
};

double lm__net_now(void);
void lm__net_log(lm_net_server *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Constant-time check of a presented token. */
bool lm__net_token_ok(const lm_net_server *s, const char *tok, size_t n);

/* A random 64-bit client id for write deduplication (never 0). */
uint64_t lm__net_random_id(void);
/* A pending op for opts.writer; NULL when out of memory. */
struct lm__net_pending *lm__net_pending_new(lm_net_server *s, void *owner);
void lm__net_pending_free(struct lm__net_pending *p);
/* Fills err from a writer's outcome. */
void lm__net_outcome_error(struct lm_error *err, int rc, const char *message);

/* ws.c */
int lm__ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len);
void lm__ws_scan_all(lm_net_server *s);     /* after writes: find changed chunks */
void lm__ws_goodbye_all(lm_net_server *s);  /* shutdown: BYE + close every client */

#endif
