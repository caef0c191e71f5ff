/* server.c - the libwebsockets context on the caller's libuv loop, the HTTP side (JSON
 * API, /metrics, /healthz, static client) and the server's lifecycle (see net.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "net_int.h"
#include "record.h"

#define HTTP_CHUNK 16384

double lm__net_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void lm__net_log(lm_net_server *s, const char *fmt, ...)
{
    if (!s->o.log)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    s->o.log(s->o.log_user, line);
}

bool lm__net_token_ok(const lm_net_server *s, const char *tok, size_t n)
{
    size_t want = strlen(s->token);
    unsigned diff = (unsigned)(n ^ want);
    for (size_t i = 0; i < want; i++)
        diff |= (unsigned char)s->token[i] ^ (unsigned char)(i < n ? tok[i] : 0);
    return diff == 0;
}

uint64_t lm__net_random_id(void)
{
    uint64_t id = 0;
    if (getrandom(&id, sizeof id, 0) != (ssize_t)sizeof id || !id)
        id = ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid() ^ (uint64_t)(uintptr_t)&id;
    return id ? id : 1;
}

struct lm__net_pending *lm__net_pending_new(lm_net_server *s, void *owner)
{
    struct lm__net_pending *p = lm_calloc(1, sizeof *p);
    if (p) {
        p->s = s;
        p->owner = owner;
        p->t0 = lm__net_now();
        p->all_next = s->pending;
        if (s->pending)
            s->pending->all_prev = p;
        s->pending = p;
    }
    return p;
}

void lm__net_pending_free(struct lm__net_pending *p)
{
    if (!p)
        return;
    if (p->all_prev)
        p->all_prev->all_next = p->all_next;
    else
        p->s->pending = p->all_next;
    if (p->all_next)
        p->all_next->all_prev = p->all_prev;
    lm_free(p->text);
    lm_free(p);
}

void lm__net_outcome_error(struct lm_error *err, int rc, const char *message)
{
    *err = (struct lm_error){.code = rc, .offset = -1};
    snprintf(err->message, sizeof err->message, "%s",
             message && message[0] ? message : lm_strerror(rc));
}

/* ---------------------------------------------------------------- HTTP sessions */

enum method { M_OTHER, M_GET, M_POST, M_PUT };

#define IDEMPOTENCY_KEY_MAX 128

struct http_sess {
    struct lws *wsi;
    char idem_key[IDEMPOTENCY_KEY_MAX + 1]; /* Idempotency-Key header; "" when none */
    bool idem_too_long;
    struct lm__net_pending *pending; /* a write or read waiting on opts.writer */
    enum method method;
    enum lm_net_route route;
    char path[256];
    char field[LM_NAME_MAX + 1];
    char addr[64];
    bool authed, too_large, api;
    double t0;
    struct lm_net_buf body, resp;
    size_t sent;
    int status;
    unsigned retry_after;
    const char *ctype;
};

static void http_reset(struct http_sess *h)
{
    if (h->pending)
        h->pending->owner = NULL; /* its outcome comes after the connection went */
    lm_net_buf_free(&h->body);
    lm_net_buf_free(&h->resp);
    memset(h, 0, sizeof *h);
}

/* Bearer token from the Authorization header. */
static bool http_authed(lm_net_server *s, struct lws *wsi)
{
    char v[LM_WS_TOKEN_MAX + 16];
    int n = lws_hdr_copy(wsi, v, sizeof v, WSI_TOKEN_HTTP_AUTHORIZATION);
    if (n <= 7 || strncasecmp(v, "Bearer ", 7))
        return false;
    return lm__net_token_ok(s, v + 7, (size_t)n - 7);
}

/* Starts the response held in h->resp with h->status. */
static int http_respond(struct lws *wsi, lm_net_server *s, struct http_sess *h)
{
    uint8_t hdr[LWS_PRE + 1024], *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof hdr - 1;
    if (h->resp.oom)
        h->status = lm_api_error(&h->resp, -ENOMEM, NULL);
    if (lws_add_http_common_headers(wsi, (unsigned)h->status, h->ctype ? h->ctype : "application/json",
                                    h->resp.len, &p, end))
        return 1;
    if (h->status == 401 &&
        lws_add_http_header_by_name(wsi, (const uint8_t *)"www-authenticate:",
                                    (const uint8_t *)"Bearer", 6, &p, end))
        return 1;
    if (h->retry_after) {
        char ra[16];
        int n = snprintf(ra, sizeof ra, "%u", h->retry_after);
        if (lws_add_http_header_by_name(wsi, (const uint8_t *)"retry-after:", (uint8_t *)ra, n,
                                        &p, end))
            return 1;
    }
    if (lws_add_http_header_by_name(wsi, (const uint8_t *)"cache-control:",
                                    (const uint8_t *)"no-store", 8, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return 1;
    h->sent = 0;
    lm_net_metrics_observe(&s->m, h->route, h->status, lm__net_now() - h->t0);
    if (h->status >= 400 && h->route != LM_ROUTE_OTHER)
        lm__net_log(s, "http %s %s -> %d", h->method == M_GET ? "GET" : h->method == M_POST ? "POST"
                                           : "PUT", h->path, h->status);
    lws_callback_on_writable(wsi);
    return 0;
}

static int http_error(struct lws *wsi, lm_net_server *s, struct http_sess *h, int status,
                      const char *code, const char *msg)
{
    h->status = lm_api_error_msg(&h->resp, status, code, msg);
    return http_respond(wsi, s, h);
}

/* Rate limit for writes and queries; false (and a 429 started) when refused. */
static bool http_rate_ok(struct lws *wsi, lm_net_server *s, struct http_sess *h)
{
    double ra = 0;
    if (lm_net_ratelimit_take(s->rl, h->addr, lm__net_now(), &ra))
        return true;
    s->m.rate_limited++;
    h->retry_after = (unsigned)(ra + 0.999);
    if (!h->retry_after)
        h->retry_after = 1;
    char msg[160];
    snprintf(msg, sizeof msg, "rate limit of %g requests/s per address exceeded; retry in %.2f s",
             s->o.rate, ra);
    http_error(wsi, s, h, 429, "ERATE", msg);
    return false;
}

/* Splits the request path into a route; for field routes copies the name. */
static void http_route(struct http_sess *h)
{
    const char *p = h->path;
    h->route = LM_ROUTE_OTHER;
    h->api = true;
    if (!strcmp(p, "/metrics"))
        h->route = LM_ROUTE_METRICS;
    else if (!strcmp(p, "/healthz"))
        h->route = LM_ROUTE_HEALTHZ;
    else if (!strcmp(p, "/v1/fields") || !strcmp(p, "/v1/fields/"))
        h->route = LM_ROUTE_FIELDS;
    else if (!strcmp(p, "/v1/query"))
        h->route = LM_ROUTE_QUERY;
    else if (!strcmp(p, "/v1/cluster") || !strcmp(p, "/v1/cluster/digest"))
        h->route = LM_ROUTE_CLUSTER;
    else if (!strncmp(p, "/v1/fields/", 11)) {
        const char *name = p + 11, *slash = strchr(name, '/');
        size_t n = slash ? (size_t)(slash - name) : strlen(name);
        if (n == 0 || n > LM_NAME_MAX)
            return;
        memcpy(h->field, name, n);
        h->field[n] = 0;
        if (!slash)
            h->route = LM_ROUTE_FIELD;
        else if (!strcmp(slash, "/samples"))
            h->route = LM_ROUTE_SAMPLES;
    }
}

static bool needs_body(const struct http_sess *h)
{
    return h->method == M_POST || h->method == M_PUT;
}

/* ------------------------------------------------ writes and reads through opts.writer */

/* The writer's failure as the JSON error answer. */
static void http_outcome_error(struct http_sess *h, int rc, const char *msg)
{
    struct lm_error e;
    lm__net_outcome_error(&e, rc, msg);
    h->status = lm_api_error(&h->resp, rc, &e);
}

/* After a writer call started (rc 0): the request waits on p for its callback. Else
 * the error is answered now. */
static int http_park(struct lws *wsi, lm_net_server *s, struct http_sess *h,
                     struct lm__net_pending *p, int rc, const struct lm_error *err)
{
    if (rc) {
        lm__net_pending_free(p);
        h->status = lm_api_error(&h->resp, rc, err);
        return http_respond(wsi, s, h);
    }
    h->pending = p;
    return 0;
}

static void http_write_done(void *ctx, int rc, uint64_t index, uint64_t count, const char *msg)
{
    struct lm__net_pending *p = ctx;
    struct http_sess *h = p->owner;
    lm_net_server *s = p->s;
    if (h) {
        h->pending = NULL;
        if (rc)
            http_outcome_error(h, rc, msg); else if (p->type == LM_REC_FIELD_CREATE) {
            lm_api_created_json(&h->resp, h->field);
            h->status = 201;
            lm__net_log(s, "field %s created (log index %llu)", h->field,
                        (unsigned long long)index);
        } else {
            lm_api_inserted_json(&h->resp, (size_t)count, index);
            h->status = 200;
            s->m.inserts++;
            s->m.samples_inserted += count;
        }
        http_respond(h->wsi, s, h);
    }
    if (!rc)
        lm_net_server_notify(s);
    lm__net_pending_free(p);
}

static int http_replicate(struct lws *wsi, lm_net_server *s, struct http_sess *h,
                          const char *body, size_t blen, bool caught_up);

/* The client id of an idempotency key: FNV-1a of the key, never 0. The replicated
 * request table remembers the outcomes of the last 2048 clients, so of as many keys. */
static uint64_t idempotency_client(const char *key)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char *k = "lumadb idempotency key:"; *k; k++)
        h = (h ^ (uint8_t)*k) * 0x100000001b3ull;
    for (; *key; key++)
        h = (h ^ (uint8_t)*key) * 0x100000001b3ull;
    return h ? h : 1;
}

static void http_caught_up(void *ctx, int rc, const char *msg)
{
    struct lm__net_pending *p = ctx;
    struct http_sess *h = p->owner;
    lm_net_server *s = p->s;
    lm__net_pending_free(p);
    if (!h)
        return;
    h->pending = NULL;
    if (rc) {
        http_outcome_error(h, rc, msg);
        http_respond(h->wsi, s, h);
        return;
    }
    lm_net_buf_clear(&h->resp);
    http_replicate(h->wsi, s, h, (const char *)h->body.p, h->body.len, true);
}

/* A write on a replicated server: checked and encoded here, committed by the writer,
 * answered when it settles. A node that has not yet applied a field another node just
 * created (or dropped) would refuse the write wrongly: on such a verdict it first
 * catches up with the leader (a read fence), then checks once more. */
static int http_replicate(struct lws *wsi, lm_net_server *s, struct http_sess *h,
                          const char *body, size_t blen, bool caught_up)
{
    struct lm_api_record rec = {0};
    uint64_t lsn = 0;
    size_t n = 0;
    h->status = h->route == LM_ROUTE_FIELD
                    ? lm_api_field_create(s->o.db, h->field, body ? body : "{}", body ? blen : 2,
                                          &h->resp, &rec)
                    : lm_api_insert(s->o.db, h->field, body ? body : "", blen, &h->resp, &lsn, &n,
                                    &rec);
    struct lm_error err = {0};
    if ((h->status == 404 || h->status == 409) && !caught_up) {
        struct lm__net_pending *p = lm__net_pending_new(s, h);
        if (p && !s->o.writer->fence(s->o.writer->user, http_caught_up, p, &err)) {
            h->pending = p;
            return 0;
        }
        lm__net_pending_free(p); /* no fence: the local verdict stands */
    }
    if (h->status)
        return http_respond(wsi, s, h);
    struct lm__net_pending *p = lm__net_pending_new(s, h);
    int rc = p ? 0 : -ENOMEM;
    if (p) {
        p->type = rec.type;
        p->samples = rec.samples;
        /* With an Idempotency-Key the key names the request: a retry carrying it, to any
         * node, gets the first outcome instead of writing again. */
        uint64_t client = h->idem_key[0] ? idempotency_client(h->idem_key) : s->client_id;
        uint64_t request = h->idem_key[0] ? 1 : ++s->request_seq;
        rc = s->o.writer->write(s->o.writer->user, client, request, rec.type, rec.payload,
                                rec.n, http_write_done, p, &err);
    }
    lm_free(rec.payload);
    return http_park(wsi, s, h, p, rc, &err);
}

static void http_read_ready(void *ctx, int rc, const char *msg)
{
    struct lm__net_pending *p = ctx;
    struct http_sess *h = p->owner;
    lm_net_server *s = p->s;
    if (h) {
        h->pending = NULL;
        if (rc)
            http_outcome_error(h, rc, msg);
        else
            h->status = lm_api_query(s->o.db, p->text, p->text_len, s->o.query_fn,
                                     s->o.query_user, &h->resp);
        http_respond(h->wsi, s, h);
    }
    lm__net_pending_free(p);
}

/* POST /v1/query?consistency=linearizable on a replicated server: the query runs once
 * the writer's fence says the local database holds every acknowledged write. */
static int http_linearizable_query(struct lws *wsi, lm_net_server *s, struct http_sess *h,
                                   const char *body, size_t blen)
{
    struct lm_error err = {0};
    struct lm__net_pending *p = lm__net_pending_new(s, h);
    int rc = p && (p->text = lm_alloc(blen + 1)) ? 0 : -ENOMEM;
    if (!rc) {
        if (blen)
            memcpy(p->text, body, blen);
        p->text[blen] = 0;
        p->text_len = blen;
        rc = s->o.writer->fence(s->o.writer->user, http_read_ready, p, &err);
    }
    return http_park(wsi, s, h, p, rc, &err);
}

/* The consistency a query asks for: URL argument consistency=linearizable|local. */
static int http_consistency(struct lws *wsi, bool *linearizable)
{
    char buf[64];
    *linearizable = false;
    const char *v = lws_get_urlarg_by_name(wsi, "consistency=", buf, (int)sizeof buf);
    if (!v)
        return 0;
    if (!strcmp(v, "linearizable"))
        *linearizable = true;
    else if (strcmp(v, "local"))
        return -1;
    return 0;
}

static int http_cluster(struct lws *wsi, lm_net_server *s, struct http_sess *h)
{
    if (!s->o.writer)
        return http_error(wsi, s, h, 404, "ENOTFOUND",
                          "this server is a single node (start it with --node-id and --peers)");
    if (!strcmp(h->path, "/v1/cluster")) {
        s->o.writer->status_json(s->o.writer->user, &h->resp);
        h->status = 200;
    } else {
        struct lm_error err = {0};
        int rc = s->o.writer->digest_json(s->o.writer->user, &h->resp, &err);
        h->status = rc ? lm_api_error(&h->resp, rc, &err) : 200;
    }
    return http_respond(wsi, s, h);
}

/* Handles a request whose body (if any) has arrived. */
static int http_handle(struct lws *wsi, lm_net_server *s, struct http_sess *h)
{
    bool write = h->route == LM_ROUTE_SAMPLES || h->route == LM_ROUTE_FIELD;
    enum method want = h->route == LM_ROUTE_SAMPLES || h->route == LM_ROUTE_QUERY ? M_POST
                     : h->route == LM_ROUTE_FIELD ? M_PUT : M_GET;
    if (h->route == LM_ROUTE_OTHER)
        return http_error(wsi, s, h, 404, "ENOTFOUND", "no such endpoint");
    if (h->method != want)
        return http_error(wsi, s, h, 405, "EMETHOD", "method not allowed on this endpoint");
    if (h->idem_too_long)
        return http_error(wsi, s, h, 400, "EBADARG", "Idempotency-Key is longer than 128 bytes");
    if (h->too_large) {
        char msg[96];
        snprintf(msg, sizeof msg, "request body exceeds %u bytes", s->o.max_body);
        return http_error(wsi, s, h, 413, "ETOOLARGE", msg);
    }
    bool need_token = write || (s->o.read_token && h->route != LM_ROUTE_HEALTHZ);
    if (need_token && !h->authed) {
        s->m.unauthorized++;
        return http_error(wsi, s, h, 401, "EUNAUTHORIZED",
                          write ? "writes need 'Authorization: Bearer <token>'"
                                : "this server requires 'Authorization: Bearer <token>'");
    }
    if ((write || h->route == LM_ROUTE_QUERY) && !http_rate_ok(wsi, s, h))
        return 0;
    const char *body = (const char *)h->body.p;
    size_t blen = h->body.len;
    lm_net_buf_clear(&h->resp);
    if (s->o.writer && write)
        return http_replicate(wsi, s, h, body, blen, false);
    if (h->route == LM_ROUTE_CLUSTER)
        return http_cluster(wsi, s, h);
    if (h->route == LM_ROUTE_QUERY) {
        bool linearizable;
        if (http_consistency(wsi, &linearizable))
            return http_error(wsi, s, h, 400, "EBADARG",
                              "consistency must be 'local' or 'linearizable'");
        /* a single node's reads are linearizable already */
        if (linearizable && s->o.writer)
            return http_linearizable_query(wsi, s, h, body ? body : "", blen);
    }
    switch (h->route) {
    case LM_ROUTE_HEALTHZ:
        lm_net_buf_printf(&h->resp, "{\"status\":\"ok\",\"lsn\":%llu,\"clients\":%llu}",
                          (unsigned long long)lm_db_lsn(s->o.db),
                          (unsigned long long)s->m.ws_clients);
        h->status = 200;
        break;
    case LM_ROUTE_METRICS:
        lm_net_metrics_render(&s->m, s->o.db, &h->resp);
        h->ctype = "text/plain; version=0.0.4";
        h->status = 200;
        break;
    case LM_ROUTE_FIELDS:
        h->status = lm_api_fields(s->o.db, &h->resp);
        break;
    case LM_ROUTE_FIELD:
        h->status = lm_api_field_create(s->o.db, h->field, body ? body : "{}", body ? blen : 2,
                                        &h->resp, NULL);
        if (h->status == 201)
            lm__net_log(s, "field %s created", h->field);
        break;
    case LM_ROUTE_QUERY:
        h->status = lm_api_query(s->o.db, body ? body : "", blen, s->o.query_fn, s->o.query_user,
                                 &h->resp);
        break;
    case LM_ROUTE_SAMPLES: {
        uint64_t lsn = 0;
        size_t n = 0;
        h->status = lm_api_insert(s->o.db, h->field, body ? body : "", blen, &h->resp, &lsn, &n,
                                  NULL);
        if (h->status == 200) {
            s->m.inserts++;
            s->m.samples_inserted += n;
            lm_net_server_notify(s);
        }
        break;
    }
    default:
        break;
    }
    return http_respond(wsi, s, h);
}

static int http_writeable(struct lws *wsi, struct http_sess *h)
{
    uint8_t buf[LWS_PRE + HTTP_CHUNK];
    size_t n = h->resp.len - h->sent;
    if (n > HTTP_CHUNK)
        n = HTTP_CHUNK;
    bool last = h->sent + n == h->resp.len;
    if (n)
        memcpy(buf + LWS_PRE, h->resp.p + h->sent, n);
    if (lws_write(wsi, buf + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int)n)
        return -1;
    h->sent += n;
    if (!last) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    lm_net_buf_free(&h->resp);
    lm_net_buf_free(&h->body);
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                         void *in, size_t len)
{
    struct http_sess *h = user;
    lm_net_server *s = lws_context_user(lws_get_context(wsi));
    switch (reason) {
    case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED: {
        /* responses go out as header + body writes: without this, Nagle holds the body
         * back until the peer acknowledges the header (milliseconds per request) */
        int fd = (int)lws_get_socket_fd(wsi), one = 1;
        if (fd >= 0)
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        break;
    }
    case LWS_CALLBACK_HTTP: {
        http_reset(h);
        h->wsi = wsi;
        h->t0 = lm__net_now();
        static const struct { enum lws_token_indexes tok; enum method m; } methods[] = {
            {WSI_TOKEN_GET_URI, M_GET}, {WSI_TOKEN_POST_URI, M_POST}, {WSI_TOKEN_PUT_URI, M_PUT}};
        for (size_t i = 0; i < 3 && !h->method; i++)
            if (lws_hdr_total_length(wsi, methods[i].tok) > 0 &&
                lws_hdr_copy(wsi, h->path, sizeof h->path, methods[i].tok) > 0)
                h->method = methods[i].m;
        lws_get_peer_simple(wsi, h->addr, sizeof h->addr);
        h->authed = http_authed(s, wsi);
        if (lws_hdr_custom_length(wsi, "idempotency-key:", 16) > IDEMPOTENCY_KEY_MAX)
            h->idem_too_long = true;
        else if (lws_hdr_custom_copy(wsi, h->idem_key, sizeof h->idem_key, "idempotency-key:",
                                     16) < 0)
            h->idem_key[0] = 0;
        http_route(h);
        if (s->stopping)
            return http_error(wsi, s, h, 503, "ESTOPPING", "the server is shutting down");
        if (needs_body(h))
            return 0; /* wait for LWS_CALLBACK_HTTP_BODY_COMPLETION */
        return http_handle(wsi, s, h) ? -1 : 0;
    }
    case LWS_CALLBACK_HTTP_BODY:
        if (!h->api)
            break;
        if (h->body.len + len > s->o.max_body) {
            h->too_large = true;
            lm_net_buf_free(&h->body);
        } else if (!h->too_large) {
            lm_net_buf_put(&h->body, in, len);
        }
        return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (!h->api)
            break;
        lm_net_buf_u8(&h->body, 0); /* NUL after the text for parsers; not counted */
        if (h->body.len)
            h->body.len--;
        return http_handle(wsi, s, h) ? -1 : 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (!h->api || !h->status)
            break;
        return http_writeable(wsi, h);
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        if (h && h->api)
            http_reset(h);
        break;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* ---------------------------------------------------------------- lifecycle */

static void log_emit(int level, const char *line)
{
    (void)level;
    (void)line; /* libwebsockets' own log is off; the server logs its events itself */
}

/* Checks that addr:port can be bound, so that a taken port or a bad address is an error
 * here: libwebsockets only logs a failed listen and goes on without one. 0 or -errno. */
static int probe_bind(const char *addr, int port)
{
    struct sockaddr_storage ss = {0};
    socklen_t len;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, addr, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        len = sizeof *v4;
    } else if (inet_pton(AF_INET6, addr, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        len = sizeof *v6;
    } else {
        return -EINVAL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, rc = 0;
    if (fd < 0)
        return -errno;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 1))
        rc = -errno;
    close(fd);
    return rc;
}

static void notify_cb(uv_timer_t *t)
{
    lm__ws_scan_all(t->data);
}

int lm_net_server_open(const struct lm_net_opts *opts, lm_net_server **out,
                       struct lm_error *err)
{
    if (!opts || !opts->db || !opts->loop || !opts->token || strlen(opts->token) < 8 ||
        strlen(opts->token) > LM_WS_TOKEN_MAX) {
        if (err)
            *err = (struct lm_error){.code = LM_EBADARG, .offset = -1,
                                     .message = "server needs a db, a loop and a token of 8..256 characters"};
        return LM_EBADARG;
    }
    lm_net_server *s = lm_calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->o = *opts;
    snprintf(s->bind, sizeof s->bind, "%s", opts->bind ? opts->bind : "127.0.0.1");
    snprintf(s->token, sizeof s->token, "%s", opts->token);
    s->o.bind = s->bind;
    s->o.token = s->token;
    s->o.max_frame = opts->max_frame ? opts->max_frame : 1u << 20;
    if (s->o.max_frame < 4096)
        s->o.max_frame = 4096;
    s->o.send_queue = opts->send_queue ? opts->send_queue : 4u << 20;
    s->o.max_body = opts->max_body ? opts->max_body : 64u << 20;
    s->o.max_clients = opts->max_clients ? opts->max_clients : 1024;
    s->o.max_subs = opts->max_subs ? opts->max_subs : 16;
    s->o.ping_s = opts->ping_s ? opts->ping_s : 20;
    s->o.timeout_s = opts->timeout_s ? opts->timeout_s : 60;
    s->web_root = opts->web_root ? lm_strdup(opts->web_root) : NULL;
    s->client_id = lm__net_random_id();
    s->rl = lm_net_ratelimit_new(opts->rate, opts->burst > 0 ? opts->burst : opts->rate * 2, 0);
    s->cache = lm_net_framecache_new(64u << 20, 8192);
    if ((opts->web_root && !s->web_root) || !s->rl || !s->cache) {
        lm_net_server_free(s);
        return -ENOMEM;
    }

    static const struct lws_protocols protocols[] = {
        {"http", http_callback, sizeof(struct http_sess), 0, 0, NULL, 0},
        {LM_WS_PROTOCOL, lm__ws_callback, sizeof(struct lm__ws_sess), 65536, 0, NULL, 0},
        {NULL, NULL, 0, 0, 0, NULL, 0}};
    static const char *const exts[][2] = {{".mjs", "text/javascript"}, {".json", "application/json"},
                                          {".map", "application/json"}, {".wasm", "application/wasm"},
                                          {".bin", "application/octet-stream"}, {".svg", "image/svg+xml"},
                                          {".md", "text/markdown"}, {".ts", "text/plain"}};
    for (int i = 0; i < 8; i++) {
        s->mimes[i].next = i + 1 < 8 ? &s->mimes[i + 1] : NULL;
        s->mimes[i].name = exts[i][0];
        s->mimes[i].value = exts[i][1];
    }
    static const char *const api_points[3] = {"/v1", "/metrics", "/healthz"};
    for (int i = 0; i < 3; i++) {
        struct lws_http_mount *m = &s->mounts[i];
        m->mount_next = &s->mounts[i + 1];
        m->mountpoint = api_points[i];
        m->mountpoint_len = (unsigned char)strlen(api_points[i]);
        m->origin = "http";
        m->protocol = "http";
        m->origin_protocol = LWSMPRO_CALLBACK;
    }
    struct lws_http_mount *files = &s->mounts[3];
    files->mountpoint = "/";
    files->mountpoint_len = 1;
    files->origin = s->web_root;
    files->def = "index.html";
    files->origin_protocol = LWSMPRO_FILE;
    files->extra_mimetypes = s->mimes;
    if (!s->web_root)
        s->mounts[2].mount_next = NULL;

    s->retry.secs_since_valid_ping = s->o.ping_s;
    s->retry.secs_since_valid_hangup = s->o.timeout_s;

    int prc = probe_bind(s->bind, opts->port);
    if (prc) {
        if (err) {
            *err = (struct lm_error){.code = prc == -EINVAL ? LM_EBADARG : prc, .offset = -1};
            snprintf(err->message, sizeof err->message, "cannot listen on %s:%d: %s", s->bind,
                     opts->port, prc == -EINVAL ? "not an IP address" : strerror(-prc));
        }
        lm_net_server_free(s);
        return prc == -EINVAL ? LM_EBADARG : prc;
    }
    lws_set_log_level(getenv("LUMADB_LWS_LOG") ? atoi(getenv("LUMADB_LWS_LOG")) : LLL_ERR, getenv("LUMADB_LWS_LOG") ? NULL : log_emit);
    void *loops[1] = {opts->loop};
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_VALIDATE_UTF8;
    info.foreign_loops = loops;
    info.port = opts->port;
    info.iface = s->bind;
    info.protocols = protocols;
    info.mounts = s->mounts;
    info.user = s;
    info.retry_and_idle_policy = &s->retry;
    info.timeout_secs = 30;
    info.pt_serv_buf_size = 65536;
    info.pcontext = &s->ctx;
    s->ctx = lws_create_context(&info);
    if (!s->ctx) {
        if (err)
            *err = (struct lm_error){.code = LM_EINTERNAL, .offset = -1};
        if (err)
            snprintf(err->message, sizeof err->message,
                     "cannot listen on %s:%d (address in use, or a bad address)", s->bind,
                     opts->port);
        lm_net_server_free(s);
        return -EADDRINUSE;
    }
    s->vhost = lws_get_vhost_by_name(s->ctx, "default");
    s->port = s->vhost ? lws_get_vhost_listen_port(s->vhost) : -1;
    if (s->port <= 0) { /* lost a race for the port after the probe */
        lws_context_destroy(s->ctx);
        for (int i = 0; i < 100 && s->ctx && uv_run(opts->loop, UV_RUN_NOWAIT); i++)
            ;
        if (err) {
            *err = (struct lm_error){.code = -EADDRINUSE, .offset = -1};
            snprintf(err->message, sizeof err->message, "cannot listen on %s:%d", s->bind, opts->port);
        }
        lm_net_server_free(s);
        return -EADDRINUSE;
    }
    uv_timer_init(opts->loop, &s->notify_timer);
    uv_timer_init(opts->loop, &s->stop_timer);
    s->notify_timer.data = s->stop_timer.data = s;
    s->handles_open = 2;
    lm__net_log(s, "listening on http://%s:%d (WebSocket protocol %s)", s->bind, s->port,
                LM_WS_PROTOCOL);
    *out = s;
    return 0;
}

int lm_net_server_port(const lm_net_server *s) { return s->port; }

const struct lm_net_metrics *lm_net_server_metrics(const lm_net_server *s) { return &s->m; }

void lm_net_server_notify(lm_net_server *s)
{
    if (!s->stopping && !uv_is_active((uv_handle_t *)&s->notify_timer))
        uv_timer_start(&s->notify_timer, notify_cb, 2, 0);
}

static void handle_closed(uv_handle_t *h)
{
    lm_net_server *s = h->data;
    if (--s->handles_open == 0 && s->done)
        s->done(s->done_user);
}

/* Destroys the context (from a uv callback, as the foreign-loop rules want) and
 * closes the server's timers. */
static void finish(lm_net_server *s)
{
    if (s->destroyed)
        return;
    s->destroyed = true;
    /* every session goes with the context: outcomes still to come have no one to
     * answer (the sessions orphan their own ops as they close; this covers any that
     * lws would free without a close callback) */
    for (struct lm__net_pending *p = s->pending; p; p = p->all_next)
        p->owner = NULL;
    lws_context_destroy(s->ctx); /* completes on the loop; then lws sets s->ctx NULL */
    uv_close((uv_handle_t *)&s->notify_timer, handle_closed);
    uv_close((uv_handle_t *)&s->stop_timer, handle_closed);
}

static void stop_tick(uv_timer_t *t)
{
    lm_net_server *s = t->data;
    /* 40 ticks of 25 ms: clients get a second to read BYE and close */
    ++s->stop_ticks;
    if ((!s->sessions && s->stop_ticks >= 2) || s->stop_ticks >= 40)
        finish(s);
}

void lm_net_server_shutdown(lm_net_server *s, void (*done)(void *user), void *user)
{
    if (s->stopping)
        return;
    s->stopping = true;
    s->done = done;
    s->done_user = user;
    uv_timer_stop(&s->notify_timer);
    lm__net_log(s, "shutting down: telling %llu client(s)", (unsigned long long)s->m.ws_clients);
    lm__ws_goodbye_all(s);
    uv_timer_start(&s->stop_timer, stop_tick, 25, 25);
}

void lm_net_server_free(lm_net_server *s)
{
    if (!s)
        return;
    if (s->ctx) /* never shut down, or its destruction still needs this last call */
        lws_context_destroy(s->ctx);
    lm_net_ratelimit_free(s->rl);
    lm_net_buf_free(&s->scratch);
    lm_net_buf_free(&s->records);
    lm_net_framecache_free(s->cache);
    lm_free(s->web_root);
    lm_free(s);
}
