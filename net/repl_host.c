/* repl_host.c - the network server's writer over Raft (see repl_host.h): local writes on
 * the leader, forwarding to the leader from followers, read fences, status and digest
 * JSON for GET /v1/cluster and /v1/cluster/digest. */
#include "repl_host.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "repl_client.h"
#include "repl_wire.h"

/* Forwarding threads, each with its own blocking cluster client. They are the host's
 * own, not libuv's thread pool: raft_uv does its disk writes on that pool (on tmpfs,
 * which has no O_DIRECT), and forwards that block there while waiting for a commit would
 * hold up the very disk writes the commit needs. */
#define FORWARD_THREADS 4

enum job_kind { JOB_WRITE, JOB_FENCE };

/* One write or fence of the server, from its start to its one callback. */
struct job {
    lm_repl_host *h;
    enum job_kind kind;
    struct job *next;
    uint64_t client_id, request_id;
    uint16_t type;
    void *payload; /* a copy: forwarding may happen after the caller returned */
    size_t n;
    lm_net_write_done_fn done;
    lm_net_ready_fn ready;
    void *ctx;
    /* outcome of a forwarded request (forwarding thread -> loop) */
    int rc;
    uint64_t index, count;
    char message[sizeof(((struct lm_error *)0)->message)];
};

struct lm_repl_host {
    struct lm_net_writer writer;
    uv_loop_t *loop;
    lm_repl *repl;
    lm_db *db;
    bool closing;
    char nodes[LM_REPL_MAX_MEMBERS][LM_REPL_ADDR_MAX];
    const char *node_list[LM_REPL_MAX_MEMBERS];
    size_t n_nodes;
    unsigned deadline_ms;
    uv_async_t results_async;     /* forwarding threads -> loop */
    bool async_open;
    pthread_t threads[FORWARD_THREADS];
    size_t n_threads;
    /* under mu */
    pthread_mutex_t mu;
    pthread_cond_t work_cond;
    struct job *todo, *todo_tail, *results;
    bool stopping;
    size_t threads_running;
};

static void job_free(struct job *j)
{
    lm_free(j->payload);
    lm_free(j);
}

/* ---------------------------------------------------------------- forwarding */

static void *forward_main(void *arg)
{
    lm_repl_host *h = arg;
    lm_repl_client *c = NULL;
    struct lm_repl_client_opts o = {.nodes = h->node_list, .n_nodes = h->n_nodes,
                                    .deadline_ms = h->deadline_ms, .try_ms = 2000};
    for (;;) {
        pthread_mutex_lock(&h->mu);
        while (!h->todo && !h->stopping)
            pthread_cond_wait(&h->work_cond, &h->mu);
        struct job *j = h->todo;
        if (j && !(h->todo = j->next))
            h->todo_tail = NULL;
        pthread_mutex_unlock(&h->mu);
        if (!j)
            break; /* stopping, nothing left */
        struct lm_error err = {0};
        if (h->stopping) {
            j->rc = lm__fail(&err, LM_ECANCELED, "the server is shutting down");
        } else if (!c && (j->rc = lm_repl_client_open(&o, &c, &err))) {
            c = NULL;
        } else {
            j->rc = j->kind == JOB_WRITE
                        ? lm_repl_client_write_as(c, j->client_id, j->request_id, j->type,
                                                  j->payload, j->n, &j->index, &j->count, &err)
                        : lm_repl_client_fence(c, &j->index, &err);
        }
        if (j->rc)
            snprintf(j->message, sizeof j->message, "%s",
                     err.message[0] ? err.message : lm_strerror(j->rc));
        pthread_mutex_lock(&h->mu);
        j->next = h->results;
        h->results = j;
        pthread_mutex_unlock(&h->mu);
        uv_async_send(&h->results_async);
    }
    lm_repl_client_close(c);
    pthread_mutex_lock(&h->mu);
    h->threads_running--;
    pthread_mutex_unlock(&h->mu);
    uv_async_send(&h->results_async); /* the loop closes the handle after the last one */
    return NULL;
}

static void fence_waited(void *data, int rc, const char *why)
{
    struct job *j = data;
    j->ready(j->ctx, rc, why);
    job_free(j);
}

/* A forwarded request came back: its one callback, on the loop. */
static void forward_settled(struct job *j)
{
    if (j->kind == JOB_WRITE) {
        j->done(j->ctx, j->rc, j->index, j->count, j->message);
        job_free(j);
        return;
    }
    if (!j->rc && j->h->closing) { /* the lm_repl may be gone */
        j->rc = LM_ECANCELED;
        snprintf(j->message, sizeof j->message, "the server is shutting down");
    }
    int rc = j->rc ? j->rc : lm_repl_wait_index(j->h->repl, j->index, j->h->deadline_ms,
                                                      fence_waited, j);
    if (rc) {
        j->ready(j->ctx, rc, j->rc ? j->message : lm_strerror(rc));
        job_free(j);
    }
}

static void results_cb(uv_async_t *a)
{
    lm_repl_host *h = a->data;
    pthread_mutex_lock(&h->mu);
    struct job *list = h->results;
    h->results = NULL;
    bool threads_done = h->stopping && h->threads_running == 0;
    pthread_mutex_unlock(&h->mu);
    struct job *ordered = NULL; /* oldest first */
    while (list) {
        struct job *j = list;
        list = j->next;
        j->next = ordered;
        ordered = j;
    }
    while (ordered) {
        struct job *j = ordered;
        ordered = j->next;
        forward_settled(j);
    }
    if (threads_done && h->async_open) {
        h->async_open = false;
        uv_close((uv_handle_t *)&h->results_async, NULL);
    }
}

static int forward(struct job *j)
{
    lm_repl_host *h = j->h;
    pthread_mutex_lock(&h->mu);
    bool open = !h->stopping;
    if (open) {
        j->next = NULL;
        if (h->todo_tail)
            h->todo_tail->next = j;
        else
            h->todo = j;
        h->todo_tail = j;
        pthread_cond_signal(&h->work_cond);
    }
    pthread_mutex_unlock(&h->mu);
    return open ? 0 : LM_ECANCELED;
}

/* ---------------------------------------------------------------- writes */

static void local_written(void *data, const struct lm_repl_result *res)
{
    struct job *j = data;
    /* The leader lost its leadership before the entry committed: the outcome is unknown,
     * so it goes to the new leader under the same ids (applied at most once). */
    if (res->rc == LM_ENOTLEADER && !j->h->closing && !forward(j))
        return;
    j->done(j->ctx, res->rc, res->index, res->count, res->message);
    job_free(j);
}

static int host_write(void *user, uint64_t client_id, uint64_t request_id, uint16_t type,
                      const void *payload, size_t n, lm_net_write_done_fn done, void *ctx,
                      struct lm_error *err)
{
    lm_repl_host *h = user;
    if (h->closing)
        return lm__fail(err, LM_ECANCELED, "the server is shutting down");
    struct job *j = lm_calloc(1, sizeof *j);
    void *copy = lm_alloc(n ? n : 1);
    if (!j || !copy) {
        lm_free(j);
        lm_free(copy);
        return lm__fail(err, -ENOMEM, "out of memory queueing a write");
    }
    memcpy(copy, payload, n);
    *j = (struct job){.h = h, .kind = JOB_WRITE, .client_id = client_id,
                      .request_id = request_id, .type = type, .payload = copy, .n = n,
                      .done = done, .ctx = ctx};
    int rc = lm_repl_write(h->repl, client_id, request_id, type, payload, n, local_written, j,
                           err);
    if (rc == LM_ENOTLEADER && (rc = forward(j)))
        lm__fail(err, rc, "the server is shutting down");
    if (rc)
        job_free(j);
    return rc;
}

/* ---------------------------------------------------------------- fences */

static void local_fenced(void *data, int rc, const char *why)
{
    struct job *j = data;
    if (rc == LM_ENOTLEADER && !j->h->closing && !forward(j))
        return;
    j->ready(j->ctx, rc, why);
    job_free(j);
}

static int host_fence(void *user, lm_net_ready_fn ready, void *ctx, struct lm_error *err)
{
    lm_repl_host *h = user;
    if (h->closing)
        return lm__fail(err, LM_ECANCELED, "the server is shutting down");
    struct job *j = lm_calloc(1, sizeof *j);
    if (!j)
        return lm__fail(err, -ENOMEM, "out of memory queueing a read");
    *j = (struct job){.h = h, .kind = JOB_FENCE, .ready = ready, .ctx = ctx};
    int rc = lm_repl_fence(h->repl, local_fenced, j);
    if (rc == LM_ENOTLEADER)
        rc = forward(j);
    if (rc) {
        job_free(j);
        return lm__fail(err, rc, "%s", lm_strerror(rc));
    }
    return 0;
}

/* ---------------------------------------------------------------- status, digest */

static void host_status_json(void *user, struct lm_net_buf *out)
{
    static const char *const voting[] = {"standby", "voter", "spare"};
    lm_repl_host *h = user;
    struct lm_repl_status st;
    lm_repl_status(h->repl, &st);
    lm_net_buf_clear(out);
    lm_net_buf_printf(out,
                      "{\"id\":%" PRIu64 ",\"role\":\"%s\",\"ready\":%s,\"term\":%" PRIu64
                      ",\"leader\":{\"id\":%" PRIu64 ",\"client\":",
                      st.id, lm_repl_role_name(st.role), st.ready ? "true" : "false", st.term,
                      st.leader_id);
    lm_net_buf_json_str(out, st.leader_client, strlen(st.leader_client));
    lm_net_buf_printf(out,
                      "},\"last_index\":%" PRIu64 ",\"commit_index\":%" PRIu64
                      ",\"applied_index\":%" PRIu64 ",\"db_index\":%" PRIu64
                      ",\"snapshot_index\":%" PRIu64 ",\"backlog\":%" PRIu64
                      ",\"snapshots_taken\":%" PRIu64 ",\"snapshots_restored\":%" PRIu64
                      ",\"failed\":%s,\"failure\":",
                      st.last_index, st.commit_index, st.applied_index, st.db_index,
                      st.snapshot_index, st.backlog, st.snapshots_taken, st.snapshots_restored,
                      st.failed ? "true" : "false");
    lm_net_buf_json_str(out, st.failure, strlen(st.failure));
    lm_net_buf_printf(out, ",\"members\":[");
    for (size_t i = 0; i < st.n_members; i++) {
        const struct lm_repl_member *m = &st.members[i].m;
        lm_net_buf_printf(out, "%s{\"id\":%" PRIu64 ",\"voting\":\"%s\",\"address\":",
                          i ? "," : "", m->id,
                          (unsigned)st.members[i].voting < 3 ? voting[st.members[i].voting] : "?");
        lm_net_buf_json_str(out, m->address, strlen(m->address));
        lm_net_buf_printf(out, ",\"client\":");
        lm_net_buf_json_str(out, m->client, strlen(m->client));
        lm_net_buf_printf(out, "}");
    }
    lm_net_buf_printf(out, "]}");
}

/* The node's chunk digests (repl_wire.h invariant 4) as JSON; hashes in hex, since
 * JSON numbers lose 64-bit precision. */
static int host_digest_json(void *user, struct lm_net_buf *out, struct lm_error *err)
{
    lm_repl_host *h = user;
    struct lm_wire_buf b = {0};
    struct lm_wire_digest *d = NULL;
    int rc = lm_wire_digest(&b, h->db, lm_repl_db_index(h->repl), err);
    if (!rc && b.oom)
        rc = lm__fail(err, -ENOMEM, "out of memory computing the digest");
    if (!rc && (rc = lm_wire_digest_decode(b.p, b.n, &d)))
        lm__fail(err, rc, "digest does not decode");
    lm_wire_buf_free(&b);
    if (rc)
        return rc;
    lm_net_buf_clear(out);
    lm_net_buf_printf(out, "{\"db_index\":%" PRIu64 ",\"fields\":[", d->db_index);
    for (size_t f = 0; f < d->n_fields; f++) {
        const struct lm_wire_field_digest *fd = &d->fields[f];
        lm_net_buf_printf(out, "%s{\"name\":", f ? "," : "");
        lm_net_buf_json_str(out, fd->name, strlen(fd->name));
        lm_net_buf_printf(out, ",\"samples\":%" PRIu64 ",\"chunks\":[", fd->n_samples);
        for (size_t c = 0; c < fd->n_chunks; c++) {
            const struct lm_wire_chunk *ch = &fd->chunks[c];
            lm_net_buf_printf(out,
                              "%s{\"coord\":[%d,%d,%d],\"samples\":%" PRIu64 ",\"lsn\":%" PRIu64
                              ",\"hash\":\"%016" PRIx64 "\"}",
                              c ? "," : "", ch->coord[0], ch->coord[1], ch->coord[2], ch->n,
                              ch->lsn, ch->hash);
        }
        lm_net_buf_printf(out, "]}");
    }
    lm_net_buf_printf(out, "]}");
    lm_wire_digest_free(d);
    return out->oom ? lm__fail(err, -ENOMEM, "out of memory") : 0;
}

/* ---------------------------------------------------------------- lifecycle */

int lm_repl_host_open(const struct lm_repl_host_opts *o, lm_repl_host **out,
                      struct lm_error *err)
{
    if (!o || !o->loop || !o->repl || !o->db || !o->n_members ||
        o->n_members > LM_REPL_MAX_MEMBERS)
        return lm__fail(err, LM_EBADARG, "replication host needs a loop, a replica and members");
    lm_repl_host *h = lm_calloc(1, sizeof *h);
    if (!h)
        return lm__fail(err, -ENOMEM, "out of memory");
    h->loop = o->loop;
    h->repl = o->repl;
    h->db = o->db;
    h->deadline_ms = o->forward_deadline_ms ? o->forward_deadline_ms : 10000;
    for (size_t i = 0; i < o->n_members; i++) {
        if (!o->members[i].client[0])
            continue; /* no client port known: cannot forward there */
        snprintf(h->nodes[h->n_nodes], LM_REPL_ADDR_MAX, "%s", o->members[i].client);
        h->node_list[h->n_nodes] = h->nodes[h->n_nodes];
        h->n_nodes++;
    }
    if (!h->n_nodes) {
        lm_free(h);
        return lm__fail(err, LM_EBADARG, "no member has a client port to forward writes to");
    }
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->work_cond, NULL);
    h->writer = (struct lm_net_writer){.write = host_write, .fence = host_fence,
                                       .status_json = host_status_json,
                                       .digest_json = host_digest_json, .user = h};
    int rc = uv_async_init(o->loop, &h->results_async, results_cb);
    h->results_async.data = h;
    h->async_open = rc == 0;
    for (size_t i = 0; !rc && i < FORWARD_THREADS; i++) {
        h->threads_running++;
        if ((rc = pthread_create(&h->threads[i], NULL, forward_main, h))) {
            h->threads_running--;
            rc = -rc;
        } else {
            h->n_threads++;
        }
    }
    if (rc) {
        lm_repl_host_close(h); /* the loop closes the handle; free after it ran */
        *out = h;
        return lm__fail(err, rc < 0 ? rc : -ENOMEM, "cannot start the forwarding threads");
    }
    *out = h;
    return 0;
}

const struct lm_net_writer *lm_repl_host_writer(lm_repl_host *h) { return &h->writer; }

void lm_repl_host_close(lm_repl_host *h)
{
    if (!h || h->closing)
        return;
    h->closing = true;
    pthread_mutex_lock(&h->mu);
    h->stopping = true; /* queued jobs are answered LM_ECANCELED; running ones finish */
    pthread_cond_broadcast(&h->work_cond);
    pthread_mutex_unlock(&h->mu);
    if (h->async_open)
        uv_async_send(&h->results_async); /* closes the handle once the threads are done */
}

void lm_repl_host_free(lm_repl_host *h)
{
    if (!h)
        return;
    lm_repl_host_close(h);
    for (size_t i = 0; i < h->n_threads; i++)
        pthread_join(h->threads[i], NULL);
    pthread_cond_destroy(&h->work_cond);
    pthread_mutex_destroy(&h->mu);
    lm_free(h);
}
