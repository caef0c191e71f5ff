/* repl_port.c - the cluster's client port (repl_port.h). */
#include "repl_port.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "record.h"
#include "repl_wire.h"

#define MAX_READS 2
#define READ_CHUNK (64u << 10)

struct conn {
    uv_tcp_t tcp;
    lm_repl_port *port;
    uint8_t *buf;             /* received bytes not yet parsed */
    size_t n, cap;
    int pending;              /* requests not yet answered */
    bool closed;              /* the handle is closing or closed */
    bool handle_gone;         /* its close callback ran */
    struct conn *prev, *next;
};

/* One request being served. */
struct req {
    struct conn *c;
    uint8_t op, flags;
    uint64_t request_id;
    uint8_t *body;            /* reads: a copy of the request body */
    size_t n;
    uv_work_t work;
    struct lm_wire_buf out;   /* reads: the reply body */
    int rc;
    struct lm_error err;
    struct req *next;         /* waiting for a read slot */
};

struct lm_repl_port {
    uv_loop_t *loop;
    lm_repl *repl;
    lm_db *db;
    uv_tcp_t listener;
    bool listener_open;
    struct conn *conns;
    int reads_running;
    struct req *reads_head, *reads_tail;
    int jobs;                 /* read jobs queued on the thread pool */
    bool closing;
    void (*close_cb)(void *data);
    void *close_data;
};

struct write_req {
    uv_write_t w;
    struct lm_wire_buf frame;
};

/* ---------------------------------------------------------------- lifetime */

static void port_maybe_free(lm_repl_port *p)
{
    if (!p->closing || p->listener_open || p->conns || p->jobs)
        return;
    void (*cb)(void *) = p->close_cb;
    void *data = p->close_data;
    lm_free(p);
    if (cb)
        cb(data);
}

static void conn_maybe_free(struct conn *c)
{
    if (!c->handle_gone || c->pending)
        return;
    lm_repl_port *p = c->port;
    if (c->prev)
        c->prev->next = c->next;
    else
        p->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    lm_free(c->buf);
    lm_free(c);
    port_maybe_free(p);
}

static void conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    c->handle_gone = true;
    conn_maybe_free(c);
}

static void conn_close(struct conn *c)
{
    if (c->closed)
        return;
    c->closed = true;
    uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

static void req_free(struct req *q)
{
    struct conn *c = q->c;
    lm_free(q->body);
    lm_wire_buf_free(&q->out);
    lm_free(q);
    c->pending--;
    conn_maybe_free(c);
}

/* ---------------------------------------------------------------- replies */

static void write_done(uv_write_t *w, int status)
{
    (void)status; /* a peer that went away: its connection's read sees it too */
    struct write_req *wr = w->data;
    lm_wire_buf_free(&wr->frame);
    lm_free(wr);
}

static void send_frame(struct conn *c, uint8_t status, int rc, uint64_t request_id,
                       const void *body, size_t n)
{
    if (c->closed)
        return;
    struct write_req *wr = lm_calloc(1, sizeof *wr);
    if (!wr) {
        conn_close(c); /* cannot answer: the client sees the connection go and retries */
        return;
    }
    struct lm_wire_reply rp = {status, rc, request_id, body, n};
    lm_wire_reply(&wr->frame, &rp);
    if (wr->frame.oom) {
        lm_wire_buf_free(&wr->frame);
        lm_free(wr);
        conn_close(c);
        return;
    }
    uv_buf_t b = uv_buf_init((char *)wr->frame.p, (unsigned)wr->frame.n);
    wr->w.data = wr;
    if (uv_write(&wr->w, (uv_stream_t *)&c->tcp, &b, 1, write_done)) {
        lm_wire_buf_free(&wr->frame);
        lm_free(wr);
        conn_close(c);
    }
}

static void reply_error(struct conn *c, uint64_t request_id, int rc, const char *message)
{
    const char *m = message && *message ? message : lm_strerror(rc);
    send_frame(c, LM_WIRE_ERROR, rc, request_id, m, strlen(m));
}

static void reply_redirect(struct conn *c, uint64_t request_id)
{
    lm_repl_port *p = c->port;
    uint64_t id = 0;
    char client[LM_REPL_ADDR_MAX];
    lm_repl_leader(p->repl, &id, client);
    uint8_t body[8 + 1 + LM_REPL_ADDR_MAX];
    size_t len = strnlen(client, LM_REPL_ADDR_MAX - 1);
    memcpy(body, &id, 8);
    body[8] = (uint8_t)len;
    memcpy(body + 9, client, len);
    send_frame(c, LM_WIRE_REDIRECT, LM_ENOTLEADER, request_id, body, 9 + len);
}

/* An answer to a request that Raft or the apply thread settled. */
static void reply_rc(struct req *q, int rc, const char *message)
{
    if (rc == LM_ENOTLEADER)
        reply_redirect(q->c, q->request_id);
    else if (rc)
        reply_error(q->c, q->request_id, rc, message);
    else
        send_frame(q->c, LM_WIRE_OK, 0, q->request_id, NULL, 0);
}

/* ---------------------------------------------------------------- reads */

static void read_start(lm_repl_port *p);

/* Thread pool: only the database is touched. */
static void read_work(uv_work_t *w)
{
    struct req *q = w->data;
    lm_repl_port *p = q->c->port;
    switch (q->op) {
    case LM_WIRE_SELECT: {
        struct lm__reader rd = {q->body, q->n, 0, false};
        uint64_t limit = lm_wire_get_u64(&rd);
        struct lm__record sel;
        if (rd.bad || lm__record_decode(LM_REC_DELETE, q->body + 8, q->n - 8, NULL, NULL, &sel,
                                        &q->err)) {
            q->rc = lm__fail(&q->err, LM_EBADARG, "malformed select request");
            return;
        }
        struct lm_rows *rows = NULL;
        q->rc = lm_select(p->db, sel.field, &sel.sel, (size_t)limit, &rows, &q->err);
        if (!q->rc)
            lm_wire_rows(&q->out, rows);
        lm_rows_free(rows);
        break;
    }
    case LM_WIRE_DIGEST:
        /* the apply thread may move on meanwhile: take a digest that one sequence
         * number brackets (a few tries; a busy node answers with the last one) */
        for (int tries = 0; tries < 5; tries++) {
            uint64_t before = lm_db_lsn(p->db);
            lm_wire_buf_free(&q->out);
            q->rc = lm_wire_digest(&q->out, p->db, before, &q->err);
            if (q->rc || lm_db_lsn(p->db) == before)
                break;
        }
        break;
    case LM_WIRE_FIELDS:
        q->rc = lm_wire_fields(&q->out, p->db);
        break;
    }
    if (!q->rc && q->out.oom)
        q->rc = lm__fail(&q->err, -ENOMEM, "out of memory building a reply");
}

static void read_after(uv_work_t *w, int status)
{
    struct req *q = w->data;
    lm_repl_port *p = q->c->port;
    p->jobs--;
    p->reads_running--;
    if (status)
        reply_error(q->c, q->request_id, LM_ECANCELED, "read canceled");
    else if (q->rc)
        reply_error(q->c, q->request_id, q->rc, q->err.message);
    else
        send_frame(q->c, LM_WIRE_OK, 0, q->request_id, q->out.p, q->out.n);
    req_free(q);
    read_start(p);
}

static void read_start(lm_repl_port *p)
{
    while (p->reads_head && p->reads_running < MAX_READS) {
        struct req *q = p->reads_head;
        if (!(p->reads_head = q->next))
            p->reads_tail = NULL;
        q->work.data = q;
        if (uv_queue_work(p->loop, &q->work, read_work, read_after)) {
            reply_error(q->c, q->request_id, LM_EINTERNAL, "cannot queue the read");
            req_free(q);
            continue;
        }
        p->reads_running++;
        p->jobs++;
    }
    port_maybe_free(p);
}

static void read_queue(struct req *q)
{
    lm_repl_port *p = q->c->port;
    if (p->closing) { /* its connection is closed: nobody reads the answer */
        req_free(q);
        return;
    }
    q->next = NULL;
    if (p->reads_tail)
        p->reads_tail->next = q;
    else
        p->reads_head = q;
    p->reads_tail = q;
    read_start(p);
}

static void fence_done(void *data, int rc, const char *why)
{
    struct req *q = data;
    if (rc) {
        reply_rc(q, rc, why);
        req_free(q);
        return;
    }
    read_queue(q);
}

/* A read-index request: the fence committed and applied here, so every write
 * acknowledged before it is within this index; a follower that waits for it reads
 * linearizably. */
static void fence_index_done(void *data, int rc, const char *why)
{
    struct req *q = data;
    if (rc) {
        reply_rc(q, rc, why);
    } else {
        uint64_t index = lm_repl_db_index(q->c->port->repl);
        send_frame(q->c, LM_WIRE_OK, 0, q->request_id, &index, sizeof index);
    }
    req_free(q);
}

/* ---------------------------------------------------------------- requests */

static void write_settled(void *data, const struct lm_repl_result *res)
{
    struct req *q = data;
    if (res->rc) {
        reply_rc(q, res->rc, res->message);
    } else {
        uint64_t body[2] = {res->index, res->count};
        send_frame(q->c, LM_WIRE_OK, 0, q->request_id, body, sizeof body);
    }
    req_free(q);
}

static void change_settled(void *data, int rc, const char *why)
{
    struct req *q = data;
    reply_rc(q, rc, why);
    req_free(q);
}

size_t lm_repl_port_status_text(const struct lm_repl_status *s, char *out, size_t cap)
{
    static const char *const voting[] = {"standby", "voter", "spare"};
    size_t at = 0;
#define ADD(...)                                                                \
    do {                                                                        \
        if (at < cap)                                                           \
            at += (size_t)snprintf(out + at, cap - at, __VA_ARGS__);           \
    } while (0)
    ADD("id %llu\nrole %s\nready %d\nterm %llu\nleader %llu %s\n",
        (unsigned long long)s->id, lm_repl_role_name(s->role), s->ready,
        (unsigned long long)s->term, (unsigned long long)s->leader_id,
        s->leader_client[0] ? s->leader_client : "-");
    ADD("last_index %llu\ncommit_index %llu\napplied_index %llu\ndb_index %llu\n"
        "snapshot_index %llu\nbacklog %llu\nsnapshots_taken %llu\nsnapshots_restored %llu\n"
        "failed %d\n",
        (unsigned long long)s->last_index, (unsigned long long)s->commit_index,
        (unsigned long long)s->applied_index, (unsigned long long)s->db_index,
        (unsigned long long)s->snapshot_index, (unsigned long long)s->backlog,
        (unsigned long long)s->snapshots_taken, (unsigned long long)s->snapshots_restored,
        s->failed);
    for (size_t i = 0; i < s->n_members; i++)
        ADD("member %llu %s %s %s\n", (unsigned long long)s->members[i].m.id,
            (unsigned)s->members[i].voting < 3 ? voting[s->members[i].voting] : "?",
            s->members[i].m.address,
            s->members[i].m.client[0] ? s->members[i].m.client : "-");
    if (s->failed)
        ADD("failure %s\n", s->failure);
#undef ADD
    return at < cap ? at : cap - 1;
}

static void serve(struct conn *c, const struct lm_wire_request *rq)
{
    lm_repl_port *p = c->port;
    if (rq->op == LM_WIRE_STATUS) {
        struct lm_repl_status s;
        lm_repl_status(p->repl, &s);
        char text[4096];
        size_t n = lm_repl_port_status_text(&s, text, sizeof text);
        send_frame(c, LM_WIRE_OK, 0, rq->request_id, text, n);
        return;
    }
    struct req *q = lm_calloc(1, sizeof *q);
    if (!q) {
        reply_error(c, rq->request_id, -ENOMEM, "out of memory");
        return;
    }
    q->c = c;
    q->op = rq->op;
    q->flags = rq->flags;
    q->request_id = rq->request_id;
    c->pending++;
    int rc = 0;
    switch (rq->op) {
    case LM_WIRE_WRITE:
        rc = lm_repl_write(p->repl, rq->client_id, rq->request_id, rq->type, rq->body, rq->n,
                           write_settled, q, &q->err);
        break;
    case LM_WIRE_SELECT:
    case LM_WIRE_DIGEST:
    case LM_WIRE_FIELDS:
        if (rq->op == LM_WIRE_SELECT && rq->n < 8) {
            rc = lm__fail(&q->err, LM_EBADARG, "malformed select request");
            break;
        }
        if (!(q->body = lm_alloc(rq->n ? rq->n : 1))) {
            rc = -ENOMEM;
            break;
        }
        memcpy(q->body, rq->body, rq->n);
        q->n = rq->n;
        if (rq->flags & LM_WIRE_LINEARIZABLE)
            rc = lm_repl_fence(p->repl, fence_done, q);
        else
            read_queue(q);
        break;
    case LM_WIRE_FENCE:
        rc = lm_repl_fence(p->repl, fence_index_done, q);
        break;
    case LM_WIRE_ADD: {
        struct lm__reader rd = {rq->body, rq->n, 0, false};
        struct lm_repl_member m = {0};
        m.id = lm_wire_get_u64(&rd);
        lm_wire_get_str(&rd, m.address, sizeof m.address);
        lm_wire_get_str(&rd, m.client, sizeof m.client);
        rc = rd.bad ? lm__fail(&q->err, LM_EBADARG, "malformed add request")
                    : lm_repl_add(p->repl, &m, change_settled, q);
        break;
    }
    case LM_WIRE_REMOVE: {
        struct lm__reader rd = {rq->body, rq->n, 0, false};
        uint64_t id = lm_wire_get_u64(&rd);
        rc = rd.bad ? lm__fail(&q->err, LM_EBADARG, "malformed remove request")
                    : lm_repl_remove(p->repl, id, change_settled, q);
        break;
    }
    default:
        rc = lm__fail(&q->err, LM_EBADARG, "unknown operation %u", rq->op);
    }
    if (rc) { /* no callback comes: answer now */
        reply_rc(q, rc, q->err.message);
        req_free(q);
    }
}

/* ---------------------------------------------------------------- connections */

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    struct conn *c = h->data;
    size_t want = READ_CHUNK;
    int64_t frame = lm_wire_frame_length(c->buf, c->n);
    if (frame > 0 && (size_t)frame > c->n && (size_t)frame - c->n > want)
        want = (size_t)frame - c->n; /* a big frame: room for all of it at once */
    if (c->cap - c->n < want) {
        size_t cap = c->n + want;
        uint8_t *p = lm_realloc(c->buf, cap);
        if (!p) {
            *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
            return;
        }
        c->buf = p;
        c->cap = cap;
    }
    *buf = uv_buf_init((char *)c->buf + c->n, (unsigned)(c->cap - c->n));
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct conn *c = s->data;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    c->n += (size_t)nread;
    size_t at = 0;
    while (!c->closed) {
        int64_t len = lm_wire_frame_length(c->buf + at, c->n - at);
        if (len < 0) {
            conn_close(c); /* invariant 4 */
            return;
        }
        if (len == 0 || (size_t)len > c->n - at)
            break;
        struct lm_wire_request rq;
        if (lm_wire_parse_request(c->buf + at, (size_t)len, &rq)) {
            conn_close(c);
            return;
        }
        serve(c, &rq);
        at += (size_t)len;
    }
    memmove(c->buf, c->buf + at, c->n - at);
    c->n -= at;
    if (c->cap > (4u << 20) && c->n < READ_CHUNK) { /* give back a big frame's room */
        uint8_t *p = lm_realloc(c->buf, READ_CHUNK);
        if (p) {
            c->buf = p;
            c->cap = READ_CHUNK;
        }
    }
}

static void accept_cb(uv_stream_t *server, int status)
{
    lm_repl_port *p = server->data;
    if (status || p->closing)
        return;
    struct conn *c = lm_calloc(1, sizeof *c);
    if (!c)
        return;
    c->port = p;
    uv_tcp_init(p->loop, &c->tcp);
    c->tcp.data = c;
    c->next = p->conns;
    if (p->conns)
        p->conns->prev = c;
    p->conns = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) ||
        uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb)) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
}

/* ---------------------------------------------------------------- open / close */

static void listener_closed(uv_handle_t *h)
{
    lm_repl_port *p = h->data;
    p->listener_open = false;
    port_maybe_free(p);
}

int lm_repl_port_open(uv_loop_t *loop, lm_repl *repl, lm_db *db, const char *address,
                      lm_repl_port **out, struct lm_error *err)
{
    char host[LM_REPL_ADDR_MAX];
    const char *colon = address ? strrchr(address, ':') : NULL;
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    struct sockaddr_in sa;
    if (!colon || (size_t)(colon - address) >= sizeof host || !end || *end || port <= 0 ||
        port > 65535)
        return lm__fail(err, LM_EBADARG, "'%s' is no HOST:PORT address",
                        address ? address : "(null)");
    snprintf(host, sizeof host, "%.*s", (int)(colon - address), address);
    if (uv_ip4_addr(host, (int)port, &sa))
        return lm__fail(err, LM_EBADARG, "'%s' is no IPv4 address", host);
    lm_repl_port *p = lm_calloc(1, sizeof *p);
    if (!p)
        return lm__fail(err, -ENOMEM, "out of memory opening the client port");
    p->loop = loop;
    p->repl = repl;
    p->db = db;
    uv_tcp_init(loop, &p->listener);
    p->listener.data = p;
    p->listener_open = true;
    int rc = uv_tcp_bind(&p->listener, (const struct sockaddr *)&sa, 0);
    if (!rc)
        rc = uv_listen((uv_stream_t *)&p->listener, 128, accept_cb);
    if (rc) {
        /* libuv's codes are -errno on Linux */
        lm__fail(err, rc, "listening on %s: %s", address, uv_strerror(rc));
        p->closing = true;
        uv_close((uv_handle_t *)&p->listener, listener_closed);
        return rc;
    }
    *out = p;
    return 0;
}

void lm_repl_port_close(lm_repl_port *p, void (*cb)(void *data), void *data)
{
    if (!p || p->closing)
        return;
    p->closing = true;
    p->close_cb = cb;
    p->close_data = data;
    uv_close((uv_handle_t *)&p->listener, listener_closed);
    for (struct conn *c = p->conns; c; c = c->next)
        conn_close(c);
    /* queued reads never start: answer them into the closed connections */
    while (p->reads_head) {
        struct req *q = p->reads_head;
        p->reads_head = q->next;
        req_free(q);
    }
    p->reads_tail = NULL;
}
