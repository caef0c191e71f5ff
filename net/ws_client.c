/* ws_client.c - one lumadb.v1 client connection on its own thread (see ws_client.h). */
#include "ws_client.h"

#include <errno.h>
#include <fcntl.h>
#include <libwebsockets.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "error.h"
#include "wire.h"

#define DEFAULT_MAX_MESSAGE (64u << 20)

struct out_msg {
    struct out_msg *next;
    size_t n;
    uint8_t bytes[]; /* LWS_PRE bytes of head room for lws_write, then the message */
};

struct lm_ws_client {
    struct lm_ws_client_opts o;
    char *host, *path, *protocol;      /* copies behind o's pointers */
    struct lws_protocols protocols[2];
    struct lws_context *ctx;
    pthread_t thread;
    bool thread_started;
    atomic_bool stop;                  /* close began: no more callbacks, the thread ends */

    /* client thread only */
    struct lws *wsi;                   /* the open connection, or NULL */
    bool reported;                     /* on_close has run */
    bool rx_mid;                       /* a message is being reassembled */
    struct lm_net_buf rx;
    char peer_reason[128];             /* the server's close frame, if it sent one */

    pthread_mutex_t mu;                /* guards the send queue and `ended` */
    struct out_msg *head, *tail;
    bool ended;                        /* the connection is over: sends fail */
};

/* ---------------------------------------------------------------- events to the owner */

static void report_close(lm_ws_client *c, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void report_close(lm_ws_client *c, int rc, const char *fmt, ...)
{
    pthread_mutex_lock(&c->mu);
    c->ended = true;
    pthread_mutex_unlock(&c->mu);
    if (c->reported || atomic_load(&c->stop))
        return;
    c->reported = true;
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (c->o.on_close)
        c->o.on_close(c->o.user, rc, why);
}

/* 0 when a TCP connection to the address opens within 3 s, else -errno. */
static int try_connect(const struct addrinfo *ai)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
    if (fd < 0)
        return -errno;
    int rc = connect(fd, ai->ai_addr, ai->ai_addrlen) ? -errno : 0;
    if (rc == -EINPROGRESS) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int e = 0;
        socklen_t len = sizeof e;
        rc = poll(&p, 1, 3000) <= 0 ? -ETIMEDOUT
             : getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) ? -errno : -e;
    }
    close(fd);
    return rc;
}

/* libwebsockets says why a connection failed in loose words ("Unable to connect", or
 * nothing): the host and the port are tried again here, once, to name the cause (an
 * unknown host, ECONNREFUSED, ...). A port that accepts means the WebSocket handshake
 * failed (no lumadb.v1 there): -EPROTO with lws' text. */
static void report_connect_failure(lm_ws_client *c, const char *lws_text)
{
    char port[8];
    snprintf(port, sizeof port, "%d", c->o.port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    int gai = getaddrinfo(c->host, port, &hints, &ai);
    if (gai) {
        report_close(c, -EHOSTUNREACH, "cannot connect to %s:%d: unknown host (%s)", c->host,
                     c->o.port, gai_strerror(gai));
        return;
    }
    int rc = try_connect(ai);
    freeaddrinfo(ai);
    if (rc)
        report_close(c, rc, "cannot connect to %s:%d: %s", c->host, c->o.port, strerror(-rc));
    else
        report_close(c, -EPROTO, "cannot open a %s WebSocket at %s:%d%s: %s", c->protocol,
                     c->host, c->o.port, c->path, lws_text);
}

/* ---------------------------------------------------------------- receiving */

/* Joins fragments; a whole binary message goes to on_message. -1 closes the connection. */
static int on_receive(lm_ws_client *c, struct lws *wsi, const void *in, size_t len)
{
    if (!c->rx_mid) {
        c->rx_mid = true;
        lm_net_buf_clear(&c->rx);
    }
    if (c->rx.len + len > c->o.max_message) {
        report_close(c, -EMSGSIZE, "the server sent a message larger than %zu bytes",
                     c->o.max_message);
        return -1;
    }
    lm_net_buf_put(&c->rx, in, len);
    if (c->rx.oom) {
        report_close(c, -ENOMEM, "out of memory for a %zu-byte message", c->rx.len + len);
        return -1;
    }
    if (!lws_is_final_fragment(wsi))
        return 0;
    c->rx_mid = false;
    if (!lws_frame_is_binary(wsi)) {
        report_close(c, -EPROTO, "the server sent a text message (%s frames are binary)",
                     c->protocol);
        return -1;
    }
    if (c->o.on_message && !atomic_load(&c->stop))
        c->o.on_message(c->o.user, c->rx.p, c->rx.len);
    return 0;
}

/* ---------------------------------------------------------------- sending */

/* Writes the oldest queued message; asks for another turn while more wait. */
static int on_writeable(lm_ws_client *c, struct lws *wsi)
{
    pthread_mutex_lock(&c->mu);
    struct out_msg *m = c->head;
    if (m && !(c->head = m->next))
        c->tail = NULL;
    bool more = c->head != NULL;
    pthread_mutex_unlock(&c->mu);
    if (!m)
        return 0;
    int wrote = lws_write(wsi, m->bytes + LWS_PRE, m->n, LWS_WRITE_BINARY);
    size_t n = m->n;
    lm_free(m);
    if (wrote < (int)n) {
        report_close(c, -ECONNRESET, "sending a %zu-byte message failed", n);
        return -1;
    }
    if (more)
        lws_callback_on_writable(wsi);
    return 0;
}

int lm_ws_client_send(lm_ws_client *c, const void *p, size_t n)
{
    struct out_msg *m = lm_alloc(sizeof *m + LWS_PRE + n);
    if (!m)
        return -ENOMEM;
    m->next = NULL;
    m->n = n;
    memcpy(m->bytes + LWS_PRE, p, n);
    pthread_mutex_lock(&c->mu);
    if (c->ended) {
        pthread_mutex_unlock(&c->mu);
        lm_free(m);
        return -ENOTCONN;
    }
    if (c->tail)
        c->tail->next = m;
    else
        c->head = m;
    c->tail = m;
    pthread_mutex_unlock(&c->mu);
    /* the only lws call that is safe from another thread; the client's thread then asks
     * for a writable callback (EVENT_WAIT_CANCELLED below) */
    lws_cancel_service(c->ctx);
    return 0;
}

/* ---------------------------------------------------------------- the lws callback */

static int client_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len)
{
    lm_ws_client *c = lws_context_user(lws_get_context(wsi));
    switch (reason) {
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        c->wsi = NULL;
        if (!c->reported && !atomic_load(&c->stop))
            report_connect_failure(c, in ? (const char *)in : "no reason given");
        return 0;
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        c->wsi = wsi;
        if (c->o.on_open && !atomic_load(&c->stop))
            c->o.on_open(c->o.user, c);
        lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        return on_receive(c, wsi, in, len);
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        return on_writeable(c, wsi);
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED: {
        pthread_mutex_lock(&c->mu);
        bool queued = c->head != NULL;
        pthread_mutex_unlock(&c->mu);
        if (c->wsi && queued)
            lws_callback_on_writable(c->wsi);
        return 0;
    }
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE: {
        const uint8_t *p = in;
        if (len >= 2)
            snprintf(c->peer_reason, sizeof c->peer_reason, "close code %u%s%.*s",
                     (unsigned)(p[0] << 8 | p[1]), len > 2 ? ": " : "", (int)(len - 2),
                     (const char *)p + 2);
        return 0;
    }
    case LWS_CALLBACK_CLIENT_CLOSED:
        c->wsi = NULL;
        report_close(c, -ECONNRESET, "connection to %s:%d closed%s%s%s", c->host, c->o.port,
                     c->peer_reason[0] ? " (" : "", c->peer_reason,
                     c->peer_reason[0] ? ")" : "");
        return 0;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* ---------------------------------------------------------------- the thread */

static void *client_main(void *arg)
{
    lm_ws_client *c = arg;
    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof ci);
    ci.context = c->ctx;
    ci.address = c->host;
    ci.port = c->o.port;
    ci.path = c->path;
    ci.host = c->host;
    ci.origin = c->host;
    ci.protocol = c->protocol;
    ci.ietf_version_or_minus_one = -1;
    if (!lws_client_connect_via_info(&ci) && !c->reported)
        report_connect_failure(c, "libwebsockets could not start the connection");
    while (!atomic_load(&c->stop))
        lws_service(c->ctx, 0);
    /* here, on the thread that serviced it: closing runs lws callbacks (ignored now) */
    lws_context_destroy(c->ctx);
    c->ctx = NULL;
    return NULL;
}

/* libwebsockets logs to stderr by default; failures come back through on_close instead.
 * LUMADB_LWS_LOG=<level bits> shows its log (as for the server). */
static void quiet_lws_log(int level, const char *line)
{
    (void)level;
    (void)line;
}

static char *copy_string(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = lm_alloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

int lm_ws_client_open(const struct lm_ws_client_opts *opts, lm_ws_client **out,
                      struct lm_error *err)
{
    if (!opts || !opts->host || !opts->host[0] || opts->port < 1 || opts->port > 65535)
        return lm__fail(err, LM_EBADARG, "a WebSocket client needs a host and a port in 1..65535");
    lm_ws_client *c = lm_calloc(1, sizeof *c);
    if (!c)
        return lm__fail(err, -ENOMEM, "out of memory");
    pthread_mutex_init(&c->mu, NULL);
    c->o = *opts;
    if (!c->o.max_message)
        c->o.max_message = DEFAULT_MAX_MESSAGE;
    c->host = copy_string(opts->host);
    c->path = copy_string(opts->path ? opts->path : "/");
    c->protocol = copy_string(opts->protocol ? opts->protocol : LM_WS_PROTOCOL);
    if (!c->host || !c->path || !c->protocol) {
        lm_ws_client_close(c);
        return lm__fail(err, -ENOMEM, "out of memory");
    }
    c->protocols[0] = (struct lws_protocols){.name = c->protocol, .callback = client_cb,
                                             .rx_buffer_size = 65536};
    const char *level = getenv("LUMADB_LWS_LOG");
    lws_set_log_level(level ? atoi(level) : LLL_ERR, level ? NULL : quiet_lws_log);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = c->protocols;
    info.user = c;
    info.timeout_secs = 10; /* connecting and the handshake */
    info.gid = -1;
    info.uid = -1;
    c->ctx = lws_create_context(&info);
    if (!c->ctx) {
        lm_ws_client_close(c);
        return lm__fail(err, LM_EINTERNAL, "libwebsockets could not create a client context");
    }
    int rc = pthread_create(&c->thread, NULL, client_main, c);
    if (rc) {
        lm_ws_client_close(c);
        return lm__fail(err, -rc, "cannot start the WebSocket client thread: %s", strerror(rc));
    }
    c->thread_started = true;
    *out = c;
    return 0;
}

void lm_ws_client_close(lm_ws_client *c)
{
    if (!c)
        return;
    atomic_store(&c->stop, true);
    if (c->thread_started) {
        lws_cancel_service(c->ctx);
        pthread_join(c->thread, NULL);
    } else if (c->ctx) {
        lws_context_destroy(c->ctx);
    }
    for (struct out_msg *m = c->head, *next; m; m = next) {
        next = m->next;
        lm_free(m);
    }
    lm_net_buf_free(&c->rx);
    lm_free(c->host);
    lm_free(c->path);
    lm_free(c->protocol);
    pthread_mutex_destroy(&c->mu);
    lm_free(c);
}
