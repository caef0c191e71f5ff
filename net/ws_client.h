/* ws_client.h - one client WebSocket connection speaking lumadb.v1, serviced on its own
 * thread: connects, hands each whole received message to a callback, sends queued
 * messages.
 *
 * Owns: a libwebsockets context (its default poll loop, no listening port), the thread
 *   that services it, the queue of messages waiting to be sent and the buffer that
 *   reassembles received fragments.
 * Invariants:
 *   (1) Callbacks run on the client's thread, one at a time, in the order events
 *       happen; on_close runs at most once, and never after lm_ws_client_close began.
 *   (2) A message reaches on_message whole (every fragment joined) and only if it is
 *       binary and at most max_message bytes; anything else ends the connection with
 *       on_close saying why.
 *   (3) Messages are sent whole, in the order lm_ws_client_send queued them.
 * Threading: lm_ws_client_send may be called from any thread, the callbacks included;
 *   open and close from the owner's thread. libwebsockets objects never leave the
 *   client's thread (only lws_cancel_service crosses, which lws allows).
 * Called by: mirror.c, tests. */
#ifndef LM_NET_WS_CLIENT_H
#define LM_NET_WS_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "lumadb.h"

typedef struct lm_ws_client lm_ws_client;

struct lm_ws_client_opts {
    const char *host;        /* name or address to connect to */
    int port;                /* 1..65535 */
    const char *path;        /* request path; NULL = "/" */
    const char *protocol;    /* WebSocket subprotocol; NULL = LM_WS_PROTOCOL */
    size_t max_message;      /* largest message accepted; 0 = 64 MiB */
    /* The WebSocket is open: the place to queue the first messages (through c, since
     * this may run before lm_ws_client_open has returned). */
    void (*on_open)(void *user, lm_ws_client *c);
    /* One whole message; p is valid during the call only. */
    void (*on_message)(void *user, const uint8_t *p, size_t n);
    /* The connection failed or ended; `why` says what happened, in words. rc: the
     * connect error (-ECONNREFUSED, -ETIMEDOUT, -EHOSTUNREACH for an unknown host, ...),
     * -EPROTO (no lumadb.v1 WebSocket there, or a text message), -ECONNRESET (closed),
     * -EMSGSIZE or -ENOMEM (a message too large to take). */
    void (*on_close)(void *user, int rc, const char *why);
    void *user;
};

/* Starts the thread and begins connecting (failures to connect come through on_close).
 * The strings in opts are copied. Errors: LM_EBADARG (no host, port out of range),
 * LM_EINTERNAL when libwebsockets cannot start (err says why), -ENOMEM, or the error of
 * pthread_create. */
int lm_ws_client_open(const struct lm_ws_client_opts *opts, lm_ws_client **out,
                      struct lm_error *err);

/* Queues one binary message (copies it) and wakes the client's thread. Messages queued
 * before the connection opens wait for it. Errors: -ENOMEM, -ENOTCONN once the
 * connection has closed. */
int lm_ws_client_send(lm_ws_client *c, const void *p, size_t n);

/* Closes the connection, stops and joins the thread, frees everything. No callback runs
 * after it returns (invariant 1). NULL is a no-op. */
void lm_ws_client_close(lm_ws_client *c);

#endif
