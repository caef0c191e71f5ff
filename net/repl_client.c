/* repl_client.c - blocking client of the cluster's client port (repl_client.h). */
#include "repl_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "error.h"
#include "record.h"

#define RETRY_PAUSE_MS 20

struct node {
    char addr[LM_REPL_ADDR_MAX];
    int fd; /* -1 = not connected */
};

struct lm_repl_client {
    struct node nodes[LM_REPL_MAX_MEMBERS];
    size_t n;
    size_t leader;            /* where writes go first */
    uint64_t id, next_request;
    unsigned try_ms, deadline_ms;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pause_ms(unsigned ms)
{
    struct timespec ts = {0, (long)ms * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---------------------------------------------------------------- connections */

static void node_drop(struct node *nd)
{
    if (nd->fd >= 0)
        close(nd->fd);
    nd->fd = -1;
}

/* Waits for `events` on fd until `deadline` (ms, monotonic): 0, -ETIMEDOUT or -errno. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd p = {fd, events, 0};
        int n = poll(&p, 1, (int)left);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -errno;
    }
}

static int node_connect(struct node *nd, int64_t deadline, struct lm_error *err)
{
    if (nd->fd >= 0)
        return 0;
    char host[LM_REPL_ADDR_MAX];
    const char *colon = strrchr(nd->addr, ':');
    struct sockaddr_in sa = {.sin_family = AF_INET};
    snprintf(host, sizeof host, "%.*s", colon ? (int)(colon - nd->addr) : 0, nd->addr);
    if (!colon || inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return lm__fail(err, LM_EBADARG, "'%s' is no IPv4 HOST:PORT", nd->addr);
    sa.sin_port = htons((uint16_t)atoi(colon + 1));
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return lm__fail(err, -errno, "socket: %s", strerror(errno));
    int rc = 0;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) && errno != EINPROGRESS)
        rc = -errno;
    if (!rc && !(rc = wait_fd(fd, POLLOUT, deadline))) {
        int so = 0;
        socklen_t len = sizeof so;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &len);
        rc = -so;
    }
    if (rc) {
        close(fd);
        return lm__fail(err, rc, "connecting to %s: %s", nd->addr, lm_strerror(rc));
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    nd->fd = fd;
    return 0;
}

static int send_all(int fd, const uint8_t *p, size_t n, int64_t deadline)
{
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k > 0) {
            p += k;
            n -= (size_t)k;
            continue;
        }
        if (k < 0 && errno != EAGAIN && errno != EINTR)
            return -errno;
        int rc = wait_fd(fd, POLLOUT, deadline);
        if (rc)
            return rc;
    }
    return 0;
}

static int recv_all(int fd, uint8_t *p, size_t n, int64_t deadline)
{
    while (n) {
        ssize_t k = recv(fd, p, n, 0);
        if (k > 0) {
            p += k;
            n -= (size_t)k;
            continue;
        }
        if (k == 0)
            return -ECONNRESET;
        if (errno != EAGAIN && errno != EINTR)
            return -errno;
        int rc = wait_fd(fd, POLLIN, deadline);
        if (rc)
            return rc;
    }
    return 0;
}

/* Reads one reply frame (lm_alloc'ed into *frame). */
static int recv_frame(int fd, uint8_t **frame, size_t *n, int64_t deadline)
{
    uint8_t head[4];
    int rc = recv_all(fd, head, 4, deadline);
    if (rc)
        return rc;
    int64_t len = lm_wire_frame_length(head, 4);
    if (len <= 0)
        return LM_ECORRUPT;
    uint8_t *p = lm_alloc((size_t)len);
    if (!p)
        return -ENOMEM;
    memcpy(p, head, 4);
    if ((rc = recv_all(fd, p + 4, (size_t)len - 4, deadline))) {
        lm_free(p);
        return rc;
    }
    *frame = p;
    *n = (size_t)len;
    return 0;
}

/* ---------------------------------------------------------------- open / close */

static int node_index(lm_repl_client *c, const char *addr)
{
    for (size_t i = 0; i < c->n; i++)
        if (!strcmp(c->nodes[i].addr, addr))
            return (int)i;
    if (c->n == LM_REPL_MAX_MEMBERS || strlen(addr) >= LM_REPL_ADDR_MAX)
        return -1;
    snprintf(c->nodes[c->n].addr, LM_REPL_ADDR_MAX, "%s", addr);
    c->nodes[c->n].fd = -1;
    return (int)c->n++;
}

int lm_repl_client_open(const struct lm_repl_client_opts *o, lm_repl_client **out,
                        struct lm_error *err)
{
    if (!o || !o->n_nodes || o->n_nodes > LM_REPL_MAX_MEMBERS)
        return lm__fail(err, LM_EBADARG, "a client needs 1 to %d node addresses",
                        LM_REPL_MAX_MEMBERS);
    lm_repl_client *c = lm_calloc(1, sizeof *c);
    if (!c)
        return lm__fail(err, -ENOMEM, "out of memory opening a client");
    for (size_t i = 0; i < o->n_nodes; i++)
        if (node_index(c, o->nodes[i]) < 0) {
            lm_free(c);
            return lm__fail(err, LM_EBADARG, "'%s' is too long", o->nodes[i]);
        }
    c->id = o->client_id;
    while (!c->id && getrandom(&c->id, sizeof c->id, 0) != sizeof c->id)
        ;
    c->try_ms = o->try_ms ? o->try_ms : 2000;
    c->deadline_ms = o->deadline_ms ? o->deadline_ms : 15000;
    *out = c;
    return 0;
}

void lm_repl_client_close(lm_repl_client *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++)
        node_drop(&c->nodes[i]);
    lm_free(c);
}

uint64_t lm_repl_client_id(const lm_repl_client *c) { return c->id; }

/* ---------------------------------------------------------------- requests */

/* One exchange on nd's connection. *fresh: the connection was made for it. */
static int exchange(lm_repl_client *c, struct node *nd, const struct lm_wire_request *q,
                    struct lm_wire_reply *rp, uint8_t **frame, bool *fresh,
                    struct lm_error *err)
{
    int64_t deadline = now_ms() + c->try_ms;
    *fresh = nd->fd < 0;
    int rc = node_connect(nd, deadline, err);
    if (rc)
        return rc;
    struct lm_wire_buf b = {0};
    lm_wire_request(&b, q);
    rc = b.oom ? -ENOMEM : send_all(nd->fd, b.p, b.n, deadline);
    lm_wire_buf_free(&b);
    /* replies to earlier requests that timed out may still come: skip them */
    while (!rc) {
        uint8_t *p = NULL;
        size_t n = 0;
        if ((rc = recv_frame(nd->fd, &p, &n, deadline)))
            break;
        if ((rc = lm_wire_parse_reply(p, n, rp)) || rp->request_id != q->request_id) {
            lm_free(p);
            continue;
        }
        *frame = p;
        return 0;
    }
    node_drop(nd);
    return lm__fail(err, rc, "%s: %s", nd->addr, lm_strerror(rc));
}

int lm_repl_client_call(lm_repl_client *c, size_t node, const struct lm_wire_request *rq,
                        struct lm_wire_reply *rp, uint8_t **frame, struct lm_error *err)
{
    if (node >= c->n)
        return lm__fail(err, LM_EBADARG, "no node %zu", node);
    struct lm_wire_request q = *rq;
    if (!q.client_id)
        q.client_id = c->id;
    if (!q.request_id)
        q.request_id = ++c->next_request;
    bool fresh;
    int rc = exchange(c, &c->nodes[node], &q, rp, frame, &fresh, err);
    /* a connection kept from before may lead to a node that restarted since: the
     * kernel only says so now; once more on a new one (the request id stays) */
    if ((rc == -ECONNRESET || rc == -EPIPE) && !fresh)
        rc = exchange(c, &c->nodes[node], &q, rp, frame, &fresh, err);
    return rc;
}

/* Sends rq to the leader: follows redirects, moves to the next node when one does not
 * answer, keeps rq's ids (invariant 1), until an OK or a verdict, or the deadline. */
static int to_leader(lm_repl_client *c, struct lm_wire_request *rq, struct lm_wire_reply *rp,
                     uint8_t **frame, struct lm_error *err)
{
    int64_t deadline = now_ms() + c->deadline_ms;
    rq->client_id = rq->client_id ? rq->client_id : c->id;
    rq->request_id = rq->request_id ? rq->request_id : ++c->next_request;
    size_t node = c->leader < c->n ? c->leader : 0;
    int last = -ETIMEDOUT;
    char why[400] = "no node answered";
    while (now_ms() < deadline) {
        uint8_t *p = NULL;
        struct lm_error e = {0};
        int rc = lm_repl_client_call(c, node, rq, rp, &p, &e);
        if (rc) {
            last = rc;
            snprintf(why, sizeof why, "%.390s", e.message);
            node = (node + 1) % c->n;
            pause_ms(RETRY_PAUSE_MS);
            continue;
        }
        if (rp->status == LM_WIRE_OK) {
            c->leader = node;
            *frame = p;
            return 0;
        }
        if (rp->status == LM_WIRE_REDIRECT) {
            struct lm__reader rd = {rp->body, rp->n, 0, false};
            uint64_t leader = lm_wire_get_u64(&rd);
            char client[LM_REPL_ADDR_MAX];
            lm_wire_get_str(&rd, client, sizeof client);
            int to = !rd.bad && leader && client[0] ? node_index(c, client) : -1;
            size_t next = to >= 0 ? (size_t)to : (node + 1) % c->n;
            snprintf(why, sizeof why, "node %s is not the leader", c->nodes[node].addr);
            last = LM_ENOTLEADER;
            lm_free(p);
            if (next == node || to < 0)
                pause_ms(RETRY_PAUSE_MS); /* an election is under way */
            node = next;
            continue;
        }
        /* an error: this node's own trouble, or the write's verdict */
        int code = rp->rc ? rp->rc : LM_EINTERNAL;
        snprintf(why, sizeof why, "%.*s", (int)(rp->n < 390 ? rp->n : 390),
                 (const char *)rp->body);
        lm_free(p);
        if (code != LM_EFAILED && code != LM_ECANCELED && code != -ENOMEM)
            return lm__fail(err, code, "%s", why);
        last = code;
        node = (node + 1) % c->n;
        pause_ms(RETRY_PAUSE_MS);
    }
    return lm__fail(err, last == LM_ENOTLEADER || last == -ECONNREFUSED ? -ETIMEDOUT : last,
                    "no leader answered within %u ms (%s)", c->deadline_ms, why);
}

/* Sends rq to the leader and reads the k u64 numbers of its OK reply into v. */
static int leader_numbers(lm_repl_client *c, struct lm_wire_request *rq, uint64_t *v, int k,
                          struct lm_error *err)
{
    struct lm_wire_reply rp;
    uint8_t *frame = NULL;
    int rc = to_leader(c, rq, &rp, &frame, err);
    if (rc)
        return rc;
    struct lm__reader rd = {rp.body, rp.n, 0, false};
    for (int i = 0; i < k; i++)
        v[i] = lm_wire_get_u64(&rd);
    lm_free(frame);
    return rd.bad ? lm__fail(err, LM_ECORRUPT, "malformed reply to operation %u", rq->op) : 0;
}

int lm_repl_client_write(lm_repl_client *c, uint16_t type, const void *payload, size_t n,
                         uint64_t *index, uint64_t *count, struct lm_error *err)
{
    return lm_repl_client_write_as(c, 0, 0, type, payload, n, index, count, err);
}

int lm_repl_client_write_as(lm_repl_client *c, uint64_t client_id, uint64_t request_id,
                            uint16_t type, const void *payload, size_t n, uint64_t *index,
                            uint64_t *count, struct lm_error *err)
{
    struct lm_wire_request rq = {.op = LM_WIRE_WRITE, .type = type, .body = payload, .n = n,
                                 .client_id = client_id, .request_id = request_id};
    uint64_t v[2];
    int rc = leader_numbers(c, &rq, v, 2, err);
    if (rc)
        return rc;
    if (index)
        *index = v[0];
    if (count)
        *count = v[1];
    return 0;
}

int lm_repl_client_fence(lm_repl_client *c, uint64_t *index, struct lm_error *err)
{
    struct lm_wire_request rq = {.op = LM_WIRE_FENCE};
    return leader_numbers(c, &rq, index, 1, err);
}

/* Encodes a record and writes it. */
static int write_enc(lm_repl_client *c, uint16_t type, const struct lm__record_enc *enc,
                     uint64_t *index, uint64_t *count, struct lm_error *err)
{
    struct lm_wire_buf b = {0};
    for (int i = 0; i < enc->n_iov; i++)
        lm_wire_put(&b, enc->iov[i].iov_base, enc->iov[i].iov_len);
    int rc = b.oom ? lm__fail(err, -ENOMEM, "out of memory encoding a write")
                   : lm_repl_client_write(c, type, b.p, b.n, index, count, err);
    lm_wire_buf_free(&b);
    return rc;
}

int lm_repl_client_create_field(lm_repl_client *c, const char *name,
                                const struct lm_field_opts *opts, struct lm_error *err)
{
    struct lm__record_enc enc;
    lm__record_field_create(&enc, name, opts);
    return write_enc(c, LM_REC_FIELD_CREATE, &enc, NULL, NULL, err);
}

int lm_repl_client_drop_field(lm_repl_client *c, const char *name, struct lm_error *err)
{
    struct lm__record_enc enc;
    lm__record_field_drop(&enc, name);
    return write_enc(c, LM_REC_FIELD_DROP, &enc, NULL, NULL, err);
}

int lm_repl_client_insert(lm_repl_client *c, const char *field, const struct lm_batch *b,
                          const uint32_t *user_sizes, uint64_t *index, struct lm_error *err)
{
    uint32_t none[LM_MAX_USER_COLUMNS] = {0};
    struct lm__record_enc enc;
    lm__record_insert(&enc, field, b, user_sizes ? user_sizes : none);
    return write_enc(c, LM_REC_INSERT, &enc, index, NULL, err);
}

int lm_repl_client_delete(lm_repl_client *c, const char *field,
                          const struct lm_selection *sel, uint64_t *count,
                          struct lm_error *err)
{
    struct lm__record_enc enc;
    lm__record_delete(&enc, field, sel);
    return write_enc(c, LM_REC_DELETE, &enc, NULL, count, err);
}

int lm_repl_client_update(lm_repl_client *c, const char *field,
                          const struct lm_selection *sel, int column, double value,
                          uint64_t *count, struct lm_error *err)
{
    struct lm__record_enc enc;
    lm__record_update(&enc, field, sel, column, value);
    return write_enc(c, LM_REC_UPDATE, &enc, NULL, count, err);
}

/* An answer other than OK from one node, as an error. */
static int reply_error(const struct lm_wire_reply *rp, const char *node, struct lm_error *err)
{
    if (rp->status == LM_WIRE_REDIRECT)
        return lm__fail(err, LM_ENOTLEADER, "%s is not the leader", node);
    return lm__fail(err, rp->rc ? rp->rc : LM_EINTERNAL, "%s: %.*s", node,
                    (int)(rp->n < 400 ? rp->n : 400), (const char *)rp->body);
}

/* A read from one node (node >= 0) or from wherever redirects lead (node < 0). */
static int read_call(lm_repl_client *c, int node, struct lm_wire_request *rq,
                     struct lm_wire_reply *rp, uint8_t **frame, struct lm_error *err)
{
    if (node < 0)
        return to_leader(c, rq, rp, frame, err);
    int rc = lm_repl_client_call(c, (size_t)node, rq, rp, frame, err);
    if (!rc && rp->status != LM_WIRE_OK) {
        rc = reply_error(rp, c->nodes[node].addr, err);
        lm_free(*frame);
    }
    return rc;
}

int lm_repl_client_select(lm_repl_client *c, int node, const char *field,
                          const struct lm_selection *sel, size_t limit, bool linearizable,
                          struct lm_rows **out, struct lm_error *err)
{
    struct lm__record_enc enc;
    lm__record_delete(&enc, field, sel); /* the selection travels as a DELETE record does */
    struct lm_wire_buf b = {0};
    lm_wire_u64(&b, limit);
    for (int i = 0; i < enc.n_iov; i++)
        lm_wire_put(&b, enc.iov[i].iov_base, enc.iov[i].iov_len);
    if (b.oom)
        return lm__fail(err, -ENOMEM, "out of memory");
    struct lm_wire_request rq = {.op = LM_WIRE_SELECT,
                                 .flags = linearizable ? LM_WIRE_LINEARIZABLE : 0,
                                 .body = b.p, .n = b.n};
    struct lm_wire_reply rp;
    uint8_t *frame = NULL;
    int rc = read_call(c, node, &rq, &rp, &frame, err);
    lm_wire_buf_free(&b);
    if (rc)
        return rc;
    rc = lm_wire_rows_decode(rp.body, rp.n, out);
    lm_free(frame);
    return rc ? lm__fail(err, rc, "malformed rows in a reply") : 0;
}

int lm_repl_client_digest(lm_repl_client *c, size_t node, struct lm_wire_digest **out,
                          struct lm_error *err)
{
    struct lm_wire_request rq = {.op = LM_WIRE_DIGEST};
    struct lm_wire_reply rp;
    uint8_t *frame = NULL;
    int rc = read_call(c, (int)node, &rq, &rp, &frame, err);
    if (rc)
        return rc;
    rc = lm_wire_digest_decode(rp.body, rp.n, out);
    lm_free(frame);
    return rc ? lm__fail(err, rc, "malformed digest in a reply") : 0;
}

int lm_repl_client_status(lm_repl_client *c, size_t node, char **text, struct lm_error *err)
{
    struct lm_wire_request rq = {.op = LM_WIRE_STATUS};
    struct lm_wire_reply rp;
    uint8_t *frame = NULL;
    int rc = read_call(c, (int)node, &rq, &rp, &frame, err);
    if (rc)
        return rc;
    char *t = lm_alloc(rp.n + 1);
    if (t) {
        memcpy(t, rp.body, rp.n);
        t[rp.n] = 0;
    }
    lm_free(frame);
    if (!t)
        return lm__fail(err, -ENOMEM, "out of memory");
    *text = t;
    return 0;
}

uint64_t lm_repl_client_status_value(const char *text, const char *key)
{
    size_t k = strlen(key);
    for (const char *line = text; line && *line;) {
        if (!strncmp(line, key, k) && line[k] == ' ')
            return strtoull(line + k + 1, NULL, 10);
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
    return 0;
}

/* A membership change answers once the new member caught up, which may take long: one
 * try lasts the whole deadline (a retry would find the change under way and fail). */
static int change(lm_repl_client *c, struct lm_wire_request *rq, struct lm_error *err)
{
    struct lm_wire_reply rp;
    uint8_t *frame = NULL;
    unsigned try_ms = c->try_ms;
    c->try_ms = c->deadline_ms;
    int rc = to_leader(c, rq, &rp, &frame, err);
    c->try_ms = try_ms;
    lm_free(frame);
    return rc;
}

int lm_repl_client_add(lm_repl_client *c, const struct lm_repl_member *m, struct lm_error *err)
{
    struct lm_wire_buf b = {0};
    lm_wire_u64(&b, m->id);
    lm_wire_str(&b, m->address);
    lm_wire_str(&b, m->client);
    struct lm_wire_request rq = {.op = LM_WIRE_ADD, .body = b.p, .n = b.n};
    int rc = b.oom ? lm__fail(err, -ENOMEM, "out of memory") : change(c, &rq, err);
    lm_wire_buf_free(&b);
    return rc;
}

int lm_repl_client_remove(lm_repl_client *c, uint64_t id, struct lm_error *err)
{
    struct lm_wire_request rq = {.op = LM_WIRE_REMOVE, .body = (const uint8_t *)&id,
                                 .n = sizeof id};
    return change(c, &rq, err);
}
