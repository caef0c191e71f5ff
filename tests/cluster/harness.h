/* harness.h - runs a cluster of real `lumadb node` processes on 127.0.0.1 for tests:
 * start, kill -9, SIGSTOP/SIGCONT, restart, wait for a leader, wait for convergence,
 * compare digests, record and check acknowledged writes.
 *
 * Owns: the node processes, their directories under /dev/shm (removed at the end when
 *   the test passed; kept with the node logs when it failed), one client per cluster.
 * Invariants: every wait is bounded in time; every node started is reaped.
 * Threading: the test's main thread; writer threads use their own clients.
 * Header-only: each test program includes it once. LUMADB_BIN (set by CMake) is the
 * lumadb executable. */
#ifndef LM_TEST_CLUSTER_HARNESS_H
#define LM_TEST_CLUSTER_HARNESS_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "record.h"
#include "repl_client.h"
#include "tmpdir.h"

#define CL_MAX 5
#define CL_FIELD "rays"

struct cluster {
    int n;
    char dir[128];
    char peers[1024];
    char client_addr[CL_MAX][32];
    const char *addrs[CL_MAX];
    pid_t pid[CL_MAX];
    const char *extra[8];       /* more `lumadb node` options for every node */
    bool joined[CL_MAX];        /* started with --join */
    lm_repl_client *c;          /* writes and reads through any node */
    lm_repl_client *probe;      /* status and digests, short timeouts */
};

static inline double cl_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline void cl_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A port the kernel says is free right now on 127.0.0.1. */
static inline int cl_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) ||
        getsockname(fd, (struct sockaddr *)&sa, &len)) {
        fprintf(stderr, "harness: no free port: %s\n", strerror(errno));
        exit(1);
    }
    close(fd);
    return ntohs(sa.sin_port);
}

static inline void cl_clients(struct cluster *cl)
{
    lm_repl_client_close(cl->c);
    lm_repl_client_close(cl->probe);
    struct lm_repl_client_opts o = {.nodes = cl->addrs, .n_nodes = (size_t)cl->n};
    struct lm_repl_client_opts p = {.nodes = cl->addrs, .n_nodes = (size_t)cl->n,
                                    .try_ms = 400};
    struct lm_error e;
    if (lm_repl_client_open(&o, &cl->c, &e) || lm_repl_client_open(&p, &cl->probe, &e)) {
        fprintf(stderr, "harness: %s\n", e.message);
        exit(1);
    }
}

/* Lays out n nodes (not started). `extra` (NULL-terminated, may be NULL) is passed to
 * every node. */
static inline void cl_init(struct cluster *cl, int n, const char *const *extra)
{
    memset(cl, 0, sizeof *cl);
    cl->n = n;
    snprintf(cl->dir, sizeof cl->dir, "/dev/shm/lumadb-cluster-XXXXXX");
    if (!mkdtemp(cl->dir)) {
        snprintf(cl->dir, sizeof cl->dir, "/tmp/lumadb-cluster-XXXXXX");
        if (!mkdtemp(cl->dir))
            exit(1);
    }
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        int raft = cl_free_port(), client = cl_free_port();
        snprintf(cl->client_addr[i], sizeof cl->client_addr[i], "127.0.0.1:%d", client);
        cl->addrs[i] = cl->client_addr[i];
        at += (size_t)snprintf(cl->peers + at, sizeof cl->peers - at, "%s%d=127.0.0.1:%d/%d",
                               i ? "," : "", i + 1, raft, client);
    }
    for (int k = 0; extra && extra[k] && k < 7; k++)
        cl->extra[k] = extra[k];
    cl_clients(cl);
    fprintf(stderr, "harness: cluster of %d in %s, peers %s\n", n, cl->dir, cl->peers);
}

static inline void cl_start(struct cluster *cl, int i)
{
    char dir[192], log[192], id[16];
    snprintf(dir, sizeof dir, "%s/n%d", cl->dir, i + 1);
    snprintf(log, sizeof log, "%s/log%d", cl->dir, i + 1);
    snprintf(id, sizeof id, "%d", i + 1);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        exit(1);
    if (pid == 0) {
        /* a test that dies (an abort, a signal) takes its nodes with it; the signal comes
         * when the forking thread ends: call cl_start from the main thread */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        const char *argv[24] = {"lumadb", "node", dir, "--node-id", id, "--peers", cl->peers};
        int k = 7;
        if (cl->joined[i])
            argv[k++] = "--join";
        for (int j = 0; cl->extra[j]; j++)
            argv[k++] = cl->extra[j];
        argv[k] = NULL;
        execv(LUMADB_BIN, (char *const *)argv);
        _exit(127);
    }
    cl->pid[i] = pid;
}

static inline void cl_start_all(struct cluster *cl)
{
    for (int i = 0; i < cl->n; i++)
        cl_start(cl, i);
}

/* SIGKILL (reaped) or SIGSTOP/SIGCONT. */
static inline void cl_signal(struct cluster *cl, int i, int sig)
{
    if (cl->pid[i] <= 0)
        return;
    kill(cl->pid[i], sig);
    if (sig == SIGKILL) {
        waitpid(cl->pid[i], NULL, 0);
        cl->pid[i] = 0;
    }
}

/* A status value of node i, or -1 when it does not answer. */
static inline int64_t cl_status(struct cluster *cl, int i, const char *key)
{
    char *text = NULL;
    if (cl->pid[i] <= 0 || lm_repl_client_status(cl->probe, (size_t)i, &text, NULL))
        return -1;
    int64_t v = (int64_t)lm_repl_client_status_value(text, key);
    if (!strcmp(key, "role"))
        v = strstr(text, "role leader") ? 3 : strstr(text, "role follower") ? 1 : 2;
    lm_free(text);
    return v;
}

/* The node (not `except`) that reports itself a ready leader within timeout; -1. */
static inline int cl_wait_leader(struct cluster *cl, double timeout, int except)
{
    double end = cl_now() + timeout;
    while (cl_now() < end) {
        for (int i = 0; i < cl->n; i++)
            if (i != except && cl->pid[i] > 0 && cl_status(cl, i, "role") == 3 &&
                cl_status(cl, i, "ready") == 1)
                return i;
        cl_sleep_ms(10);
    }
    return -1;
}

/* Waits until every running node holds the leader's whole committed log in its
 * database and their digests agree. Returns true on success; on failure why[] says. */
static inline bool cl_wait_converged(struct cluster *cl, double timeout, char *why, size_t cap)
{
    double end = cl_now() + timeout;
    snprintf(why, cap, "no leader");
    while (cl_now() < end) {
        int leader = cl_wait_leader(cl, end - cl_now(), -1);
        if (leader < 0)
            break;
        int64_t commit = cl_status(cl, leader, "commit_index");
        bool all = commit > 0;
        for (int i = 0; i < cl->n && all; i++)
            if (cl->pid[i] > 0 && (cl_status(cl, i, "applied_index") < commit ||
                                   cl_status(cl, i, "backlog") != 0)) {
                all = false;
                snprintf(why, cap, "node %d applied %lld of %lld", i + 1,
                         (long long)cl_status(cl, i, "applied_index"), (long long)commit);
            }
        if (!all) {
            cl_sleep_ms(20);
            continue;
        }
        struct lm_wire_digest *ref = NULL;
        bool same = true;
        for (int i = 0; i < cl->n && same; i++) {
            struct lm_wire_digest *d = NULL;
            struct lm_error e;
            if (cl->pid[i] <= 0)
                continue;
            if (lm_repl_client_digest(cl->probe, (size_t)i, &d, &e)) {
                snprintf(why, cap, "digest of node %d: %.400s", i + 1, e.message);
                same = false;
            } else if (!ref) {
                ref = d;
                continue;
            } else if (d->db_index != ref->db_index) {
                snprintf(why, cap, "node %d at %llu, the first at %llu", i + 1,
                         (unsigned long long)d->db_index, (unsigned long long)ref->db_index);
                same = false;
            } else if (!lm_wire_digest_same(ref, d, why, cap)) {
                char tmp[512];
                snprintf(tmp, sizeof tmp, "node %d differs: %.480s", i + 1, why);
                snprintf(why, cap, "%.500s", tmp);
                lm_wire_digest_free(ref);
                lm_wire_digest_free(d);
                return false; /* same prefix, different contents: divergence */
            }
            lm_wire_digest_free(d);
        }
        lm_wire_digest_free(ref);
        if (same)
            return true;
        cl_sleep_ms(20);
    }
    return false;
}

/* SIGTERM every node; true when all exit 0 (clean shutdown, no leaks under ASan). The
 * directory is removed when `remove` (keep it to look at the logs). */
static inline bool cl_stop(struct cluster *cl, bool remove)
{
    bool clean = true;
    for (int i = 0; i < cl->n; i++) {
        if (cl->pid[i] <= 0)
            continue;
        kill(cl->pid[i], SIGCONT);
        kill(cl->pid[i], SIGTERM);
    }
    for (int i = 0; i < cl->n; i++) {
        if (cl->pid[i] <= 0)
            continue;
        int status = 0;
        for (int k = 0; k < 1000 && waitpid(cl->pid[i], &status, WNOHANG) == 0; k++)
            cl_sleep_ms(10);
        if (waitpid(cl->pid[i], &status, WNOHANG) == 0) {
            kill(cl->pid[i], SIGKILL);
            waitpid(cl->pid[i], &status, 0);
            fprintf(stderr, "harness: node %d did not stop within 10 s\n", i + 1);
            clean = false;
        } else if (!WIFEXITED(status) || WEXITSTATUS(status)) {
            fprintf(stderr, "harness: node %d ended with status %d\n", i + 1, status);
            clean = false;
        }
        cl->pid[i] = 0;
    }
    lm_repl_client_close(cl->c);
    lm_repl_client_close(cl->probe);
    cl->c = cl->probe = NULL;
    if (remove && clean)
        tmpdir_remove(cl->dir);
    else
        fprintf(stderr, "harness: logs kept in %s\n", cl->dir);
    cl->n = 0;
    return clean;
}

/* cmocka teardown: a test that failed half-way leaves no node running. The test sets
 * *state to its cluster. */
static inline int cl_teardown(void **state)
{
    struct cluster *cl = *state;
    if (cl && cl->n)
        cl_stop(cl, false);
    return 0;
}

/* ---------------------------------------------------------------- the write checker */

/* Batch k holds batch_rows(k) samples whose user column "id" is k * 1000 + row. */
#define CK_MAX_BATCHES 20000

static inline int ck_rows(int k) { return 1 + (int)(((unsigned)k * 2654435761u) >> 24) % 40; }

static inline const struct lm_field_opts *ck_schema(void)
{
    static struct lm_field_opts fo = {.voxel_size = 0.5f, .chunk_edge = 8,
                                      .n_user_columns = 1};
    strcpy(fo.user_columns[0].name, "id");
    fo.user_columns[0].type = LM_TYPE_I32;
    return &fo;
}

static inline int ck_insert(lm_repl_client *c, int k, uint64_t *index, struct lm_error *e)
{
    int n = ck_rows(k);
    float x[64], y[64], z[64];
    int32_t id[64];
    for (int i = 0; i < n; i++) {
        uint32_t h = (uint32_t)(k * 7919 + i * 104729);
        x[i] = (float)(h % 97) - 48.0f;
        y[i] = (float)(h / 97 % 89) - 44.0f;
        z[i] = (float)(h / 8633 % 13);
        id[i] = k * 1000 + i;
    }
    struct lm_batch b = {.n = (size_t)n, .x = x, .y = y, .z = z, .n_user = 1, .user = {id}};
    uint32_t sizes[1] = {4};
    return lm_repl_client_insert(c, CL_FIELD, &b, sizes, index, e);
}

/* A writer thread's record: which batches were acknowledged. */
struct ck_writer {
    struct cluster *cl;
    int first, last;            /* batches [first, last) */
    _Atomic int next;           /* the batch being written; past the end when done */
    atomic_bool stop;
    _Atomic int acked, failed;
    bool ack[CK_MAX_BATCHES];   /* written before `next` moves past the batch */
};

/* Writer thread: batches first, first+1, ... until stopped or `last`, each with its own
 * request id, retried by the client across failovers; records the acknowledged ones. */
static inline void *ck_writer_main(void *arg)
{
    struct ck_writer *w = arg;
    struct lm_repl_client_opts o = {.nodes = w->cl->addrs, .n_nodes = (size_t)w->cl->n,
                                    .try_ms = 1000, .deadline_ms = 10000};
    lm_repl_client *c;
    if (lm_repl_client_open(&o, &c, NULL))
        return NULL;
    int k = w->first;
    for (; k < w->last && !atomic_load(&w->stop); k++) {
        atomic_store(&w->next, k);
        struct lm_error e;
        if (ck_insert(c, k, NULL, &e) == 0) {
            w->ack[k] = true;
            atomic_fetch_add(&w->acked, 1);
        } else {
            atomic_fetch_add(&w->failed, 1);
        }
    }
    atomic_store(&w->next, k); /* batches attempted: [first, k) */
    lm_repl_client_close(c);
    return NULL;
}

/* Creates the checker's field and starts a writer thread on it. */
static inline void ck_start(struct cluster *cl, struct ck_writer *w, pthread_t *t)
{
    memset(w, 0, sizeof *w);
    w->cl = cl;
    w->last = CK_MAX_BATCHES;
    struct lm_error e;
    if (lm_repl_client_create_field(cl->c, CL_FIELD, ck_schema(), &e)) {
        fprintf(stderr, "harness: create field: %s\n", e.message);
        exit(1);
    }
    if (pthread_create(t, NULL, ck_writer_main, w))
        exit(1);
}

static inline void ck_stop(struct ck_writer *w, pthread_t t)
{
    atomic_store(&w->stop, true);
    pthread_join(t, NULL);
    fprintf(stderr, "writer: %d acknowledged, %d not\n", atomic_load(&w->acked),
            atomic_load(&w->failed));
}

/* Sends batch k to node i once as request `request_id` (0: a new one), without
 * following redirects or retrying: true only when that node acknowledged it within the
 * client's try time; *index (optional) is the entry's log index. */
static inline bool ck_write_once(lm_repl_client *c, int i, int k, uint64_t request_id,
                                 uint64_t *index)
{
    int n = ck_rows(k);
    float x[64] = {0}, y[64] = {0}, z[64] = {0};
    int32_t id[64];
    for (int r = 0; r < n; r++) {
        x[r] = (float)r;
        id[r] = k * 1000 + r;
    }
    struct lm_batch b = {.n = (size_t)n, .x = x, .y = y, .z = z, .n_user = 1, .user = {id}};
    uint32_t sizes[1] = {4};
    struct lm__record_enc enc;
    lm__record_insert(&enc, CL_FIELD, &b, sizes);
    struct lm_wire_buf body = {0};
    for (int j = 0; j < enc.n_iov; j++)
        lm_wire_put(&body, enc.iov[j].iov_base, enc.iov[j].iov_len);
    struct lm_wire_request rq = {.op = LM_WIRE_WRITE, .type = LM_REC_INSERT,
                                 .request_id = request_id, .body = body.p, .n = body.n};
    struct lm_wire_reply rp;
    uint8_t *frame = NULL;
    bool ok = lm_repl_client_call(c, (size_t)i, &rq, &rp, &frame, NULL) == 0 &&
              rp.status == LM_WIRE_OK;
    if (ok && index)
        memcpy(index, rp.body, 8);
    lm_free(frame);
    lm_wire_buf_free(&body);
    return ok;
}

/* Waits until the writer has `n` more acknowledgements than `from` (bounded). */
static inline bool ck_wait_acked(struct ck_writer *w, int from, int n, double timeout)
{
    double end = cl_now() + timeout;
    while (atomic_load(&w->acked) < from + n && cl_now() < end)
        cl_sleep_ms(5);
    return atomic_load(&w->acked) >= from + n;
}

/* Checks the final state read from node `node` (-1: the leader, linearizable): every
 * acknowledged batch whole, every other batch that was tried whole or absent, nothing
 * else. tried NULL: every batch below upto was. */
static inline bool ck_verify(struct cluster *cl, int node, const bool *ack, const bool *tried,
                             int upto, char *why, size_t cap)
{
    struct lm_rows *rows = NULL;
    struct lm_error e;
    if (lm_repl_client_select(cl->c, node, CL_FIELD, NULL, 0, node < 0, &rows, &e)) {
        snprintf(why, cap, "select: %s", e.message);
        return false;
    }
    static uint16_t seen[CK_MAX_BATCHES];
    memset(seen, 0, sizeof seen);
    bool ok = true;
    for (size_t i = 0; i < rows->n && ok; i++) {
        int32_t id = ((const int32_t *)rows->user[0])[i];
        int k = id / 1000;
        if (id < 0 || k >= upto || id % 1000 >= ck_rows(k) || (tried && !tried[k])) {
            snprintf(why, cap, "phantom row with id %d", id);
            ok = false;
        } else {
            seen[k]++;
        }
    }
    int present = 0, extra = 0;
    for (int k = 0; k < upto && ok; k++) {
        if (seen[k] > ck_rows(k)) {
            snprintf(why, cap, "batch %d applied twice (%u rows of %d)", k, seen[k], ck_rows(k));
            ok = false;
        } else if (ack[k] && seen[k] != ck_rows(k)) {
            snprintf(why, cap, "acknowledged batch %d has %u of %d rows", k, seen[k],
                     ck_rows(k));
            ok = false;
        } else if (seen[k] && seen[k] != ck_rows(k)) {
            snprintf(why, cap, "batch %d is partly there: %u of %d rows", k, seen[k],
                     ck_rows(k));
            ok = false;
        }
        present += seen[k] ? 1 : 0;
        extra += seen[k] && !ack[k] ? 1 : 0;
    }
    if (ok)
        fprintf(stderr, "checker: %zu rows, %d batches present, %d of them unacknowledged "
                "but committed\n", rows->n, present, extra);
    lm_rows_free(rows);
    return ok;
}

#endif
