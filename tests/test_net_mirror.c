/* test_net_mirror.c - the mirror of a remote field (net/mirror.h) against a real server
 * on 127.0.0.1 (lm_net_server on a libuv loop of its own thread): after the first SYNCED
 * the local copy holds exactly the server's samples chunk by chunk, including chunks
 * split into several parts; inserts, deletes (a whole chunk gone), updates and bursts
 * of writes reach it as deltas; an unknown field, a refused connection and a wrong
 * token fail with a message that says what, where and why; a server going away leaves
 * the last state; bad URLs are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "mirror.h"
#include "net.h"
#include "tmpdir.h"

#define TOKEN "mirror-test-token-0123"
#define WAIT_MS 30000

/* ---------------------------------------------------------------- a server on a thread */

struct server {
    lm_db *db;
    uv_loop_t loop;
    uv_async_t wake;
    pthread_t thread;
    lm_net_server *srv;
    int port;
    atomic_bool stop;
    bool shutting_down, running;
};

static void on_down(void *user)
{
    struct server *s = user;
    uv_close((uv_handle_t *)&s->wake, NULL);
}

/* Runs on the loop: server calls belong there (net.h threading). */
static void on_wake(uv_async_t *a)
{
    struct server *s = a->data;
    if (!atomic_load(&s->stop)) {
        lm_net_server_notify(s->srv);
    } else if (!s->shutting_down) {
        s->shutting_down = true;
        lm_net_server_shutdown(s->srv, on_down, s);
    }
}

static void *loop_main(void *arg)
{
    struct server *s = arg;
    uv_run(&s->loop, UV_RUN_DEFAULT);
    return NULL;
}

static void server_start(struct server *s, lm_db *db, uint32_t max_frame, bool read_token)
{
    memset(s, 0, sizeof *s);
    s->db = db;
    assert_int_equal(uv_loop_init(&s->loop), 0);
    assert_int_equal(uv_async_init(&s->loop, &s->wake, on_wake), 0);
    s->wake.data = s;
    struct lm_net_opts o = {.db = db, .loop = &s->loop, .bind = "127.0.0.1", .port = 0,
                            .token = TOKEN, .read_token = read_token, .max_frame = max_frame};
    struct lm_error err = {0};
    if (lm_net_server_open(&o, &s->srv, &err))
        fail_msg("server: %s", err.message);
    s->port = lm_net_server_port(s->srv);
    assert_int_equal(pthread_create(&s->thread, NULL, loop_main, s), 0);
    s->running = true;
}

/* Tells the server that the test wrote its database (as replication would). */
static void server_notify(struct server *s)
{
    uv_async_send(&s->wake);
}

static void server_stop(struct server *s)
{
    if (!s->running)
        return;
    s->running = false;
    atomic_store(&s->stop, true);
    uv_async_send(&s->wake);
    pthread_join(s->thread, NULL);
    lm_net_server_free(s->srv);
    assert_int_equal(uv_loop_close(&s->loop), 0);
}

/* ---------------------------------------------------------------- fixture */

struct fixture {
    char src_dir[64], copy_dir[64];
    lm_db *src, *copy;
    struct server server;
    lm_mirror *mirror;
    char url[128];
    uint64_t rng;
    pthread_mutex_t log_mu;
    char log[4096];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    struct lm_db_opts copy_opts = {.create = true, .sync = LM_SYNC_NONE};
    if (tmpdir_make("lumadb-mirror-src", f->src_dir, sizeof f->src_dir) ||
        tmpdir_make("lumadb-mirror-copy", f->copy_dir, sizeof f->copy_dir) ||
        lm_db_open(f->src_dir, NULL, &f->src, NULL) ||
        lm_db_open(f->copy_dir, &copy_opts, &f->copy, NULL))
        return -1;
    f->rng = 0x9E3779B97F4A7C15ull;
    pthread_mutex_init(&f->log_mu, NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    lm_mirror_close(f->mirror);
    server_stop(&f->server);
    lm_db_close(f->copy);
    lm_db_close(f->src);
    tmpdir_remove(f->src_dir);
    tmpdir_remove(f->copy_dir);
    pthread_mutex_destroy(&f->log_mu);
    free(f);
    return 0;
}

static void on_log(void *user, const char *line)
{
    struct fixture *f = user;
    pthread_mutex_lock(&f->log_mu);
    size_t n = strlen(f->log);
    snprintf(f->log + n, sizeof f->log - n, "%s\n", line);
    pthread_mutex_unlock(&f->log_mu);
}

static int mirror_open(struct fixture *f, const char *field, const char *token,
                       struct lm_error *err)
{
    snprintf(f->url, sizeof f->url, "ws://127.0.0.1:%d/%s", f->server.port, field);
    struct lm_mirror_opts o = {.db = f->copy, .url = f->url, .token = token, .log = on_log,
                               .log_user = f};
    return lm_mirror_open(&o, &f->mirror, err);
}

static float uniform(struct fixture *f, float lo, float hi)
{
    f->rng ^= f->rng << 13;
    f->rng ^= f->rng >> 7;
    f->rng ^= f->rng << 17;
    return lo + (hi - lo) * (float)(f->rng >> 40) / (float)(1u << 24);
}

/* n random samples in the box [lo, hi]^3 with random directions, colours, intensity,
 * time and user column. */
static void insert_random(struct fixture *f, size_t n, float lo, float hi)
{
    float *c = malloc(n * 10 * sizeof *c);
    int64_t *t = malloc(n * sizeof *t);
    int32_t *tag = malloc(n * sizeof *tag);
    float *x = c, *y = c + n, *z = c + 2 * n, *dx = c + 3 * n, *dy = c + 4 * n,
          *dz = c + 5 * n, *r = c + 6 * n, *g = c + 7 * n, *b = c + 8 * n, *in = c + 9 * n;
    for (size_t i = 0; i < n; i++) {
        x[i] = uniform(f, lo, hi), y[i] = uniform(f, lo, hi), z[i] = uniform(f, lo, hi);
        float d[3] = {uniform(f, -1, 1), uniform(f, -1, 1), uniform(f, -1, 1) + 2.0f};
        float l = sqrtf(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
        dx[i] = d[0] / l, dy[i] = d[1] / l, dz[i] = d[2] / l;
        r[i] = uniform(f, 0, 1), g[i] = uniform(f, 0, 1), b[i] = uniform(f, 0, 1);
        in[i] = uniform(f, 0, 4);
        t[i] = (int64_t)uniform(f, 0, 1e6f) * 1000;
        tag[i] = (int32_t)i;
    }
    struct lm_batch bt = {.n = n, .x = x, .y = y, .z = z, .dx = dx, .dy = dy, .dz = dz,
                          .r = r, .g = g, .b = b, .intensity = in, .t = t, .n_user = 1,
                          .user = {tag}};
    struct lm_error err = {0};
    if (lm_insert(f->src, "f", &bt, NULL, &err))
        fail_msg("insert: %s", err.message);
    free(c);
    free(t);
    free(tag);
}

static void make_field(struct fixture *f)
{
    struct lm_field_opts o = {.voxel_size = 0.5f, .chunk_edge = 8, .n_user_columns = 1};
    snprintf(o.user_columns[0].name, sizeof o.user_columns[0].name, "tag");
    o.user_columns[0].type = LM_TYPE_I32;
    assert_int_equal(lm_field_create(f->src, "f", &o, NULL), 0);
}

/* ---------------------------------------------------------------- comparing copies */

struct sample {
    int32_t chunk[3];
    float x, y, z, intensity;
    int64_t t;
    uint16_t dir[2];
    uint8_t rgb[3];
};

struct samples {
    struct sample *v;
    size_t n, cap;
    size_t chunks;
};

static int collect_cb(const struct lm_chunk_view *c, void *user)
{
    struct samples *s = user;
    s->chunks++;
    if (s->n + c->n > s->cap) {
        s->cap = (s->n + c->n) * 2;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
    }
    for (size_t i = 0; i < c->n; i++) {
        struct sample *p = &s->v[s->n++];
        memset(p, 0, sizeof *p);
        memcpy(p->chunk, c->coord, sizeof p->chunk);
        p->x = c->x[i], p->y = c->y[i], p->z = c->z[i];
        p->intensity = c->intensity[i];
        p->t = c->t[i];
        p->dir[0] = c->dir_oct[2 * i], p->dir[1] = c->dir_oct[2 * i + 1];
        p->rgb[0] = c->r[i], p->rgb[1] = c->g[i], p->rgb[2] = c->b[i];
    }
    return 0;
}

static int cmp_sample(const void *pa, const void *pb)
{
    const struct sample *a = pa, *b = pb;
    int c = memcmp(a->chunk, b->chunk, sizeof a->chunk);
    if (c)
        return c;
    const float ka[3] = {a->x, a->y, a->z}, kb[3] = {b->x, b->y, b->z};
    for (int k = 0; k < 3; k++)
        if (ka[k] != kb[k])
            return ka[k] < kb[k] ? -1 : 1;
    return a->t < b->t ? -1 : a->t > b->t;
}

static struct samples collect(lm_db *db)
{
    struct samples s = {0};
    struct lm_error err = {0};
    if (lm_chunks_each(db, "f", NULL, 0, collect_cb, &s, &err))
        fail_msg("chunks: %s", err.message);
    if (s.n)
        qsort(s.v, s.n, sizeof *s.v, cmp_sample);
    return s;
}

/* The copy holds the source's samples, chunk by chunk. Directions are compared within
 * one unit of their 16-bit encoding: the copy decodes and re-encodes them. */
static void expect_same(struct fixture *f, const char *when)
{
    struct samples a = collect(f->src), b = collect(f->copy);
    if (a.n != b.n || a.chunks != b.chunks)
        fail_msg("%s: source has %zu samples in %zu chunks, copy %zu in %zu", when, a.n,
                 a.chunks, b.n, b.chunks);
    for (size_t i = 0; i < a.n; i++) {
        const struct sample *p = &a.v[i], *q = &b.v[i];
        bool same = !memcmp(p->chunk, q->chunk, sizeof p->chunk) && p->x == q->x &&
                    p->y == q->y && p->z == q->z && p->intensity == q->intensity &&
                    p->t == q->t && !memcmp(p->rgb, q->rgb, 3) &&
                    abs(p->dir[0] - q->dir[0]) <= 1 && abs(p->dir[1] - q->dir[1]) <= 1;
        if (!same)
            fail_msg("%s: sample %zu of chunk (%d,%d,%d) differs: (%g,%g,%g) rgb %u,%u,%u "
                     "i %g t %lld dir %u,%u vs (%g,%g,%g) rgb %u,%u,%u i %g t %lld dir %u,%u",
                     when, i, p->chunk[0], p->chunk[1], p->chunk[2], (double)p->x,
                     (double)p->y, (double)p->z, p->rgb[0], p->rgb[1], p->rgb[2],
                     (double)p->intensity, (long long)p->t, p->dir[0], p->dir[1],
                     (double)q->x, (double)q->y, (double)q->z, q->rgb[0], q->rgb[1],
                     q->rgb[2], (double)q->intensity, (long long)q->t, q->dir[0], q->dir[1]);
    }
    free(a.v);
    free(b.v);
}

static void wait_synced(struct fixture *f, uint64_t lsn)
{
    struct lm_error err = {0};
    int rc = lm_mirror_wait(f->mirror, lsn, WAIT_MS, &err);
    if (rc)
        fail_msg("mirror wait for lsn %llu: %s (%s)", (unsigned long long)lsn, err.message,
                 lm_strerror(rc));
}

/* A field of n random samples in [-side, side]^3 served, and a mirror of it in sync. */
static void start_in_sync(struct fixture *f, size_t n, float side)
{
    make_field(f);
    insert_random(f, n, -side, side);
    server_start(&f->server, f->src, 0, false);
    struct lm_error err = {0};
    if (mirror_open(f, "f", NULL, &err))
        fail_msg("mirror: %s", err.message);
    wait_synced(f, 0);
}

/* ---------------------------------------------------------------- tests */

static void copy_equals_the_field_after_the_snapshot_and_after_deltas(void **state)
{
    struct fixture *f = *state;
    make_field(f);
    insert_random(f, 3000, -10, 10);
    insert_random(f, 900, 1.1f, 2.9f); /* one chunk of 900 samples: several 4 KiB parts */
    server_start(&f->server, f->src, 4096, false);
    struct lm_error err = {0};
    assert_int_equal(mirror_open(f, "f", NULL, &err), 0);
    wait_synced(f, 0);
    expect_same(f, "after the snapshot");
    struct lm_mirror_stats st;
    lm_mirror_stats(f->mirror, &st);
    assert_int_equal(st.state, LM_MIRROR_LIVE);
    struct lm_field_info info;
    assert_int_equal(lm_field_info(f->src, "f", &info, NULL), 0);
    assert_int_equal(st.field_chunks, info.n_chunks);
    assert_int_equal(st.field_samples, 3900);
    assert_int_equal(st.samples_applied, 3900);
    assert_true(st.chunks_applied >= info.n_chunks);
    assert_true(st.server_lsn >= info.lsn);

    /* deltas: new samples (and a new chunk far away), a whole chunk deleted, an update */
    insert_random(f, 400, -10, 10);
    insert_random(f, 20, 40, 41);
    struct lm_selection whole = {.region = {.kind = LM_REGION_BOX,
                                            .min = {0, 0, 0}, .max = {3.99f, 3.99f, 3.99f}}};
    uint64_t deleted = 0;
    assert_int_equal(lm_delete(f->src, "f", &whole, &deleted, NULL, NULL), 0);
    assert_true(deleted >= 900);
    struct lm_selection some = {.region = {.kind = LM_REGION_BOX,
                                           .min = {-10, -10, -10}, .max = {0, 10, 10}}};
    assert_int_equal(lm_update(f->src, "f", &some, LM_COL_INTENSITY, 7.5, NULL, NULL, NULL), 0);
    server_notify(&f->server);
    wait_synced(f, lm_db_lsn(f->src));
    expect_same(f, "after inserts, a deleted chunk and an update");
    struct lm_voxel v;
    int32_t inside[3] = {4, 4, 4}; /* voxel of the deleted chunk, held by the copy before */
    assert_int_equal(lm_voxel_get(f->copy, "f", inside, &v), LM_ENOTFOUND);

    /* a burst of writes, notified one by one: the copy ends equal */
    for (int i = 0; i < 20; i++) {
        insert_random(f, 50, -12, 12);
        server_notify(&f->server);
    }
    wait_synced(f, lm_db_lsn(f->src));
    expect_same(f, "after a burst of writes");
    lm_mirror_stats(f->mirror, &st);
    assert_int_equal(st.state, LM_MIRROR_LIVE);
    assert_int_equal(f->log[0], 0); /* nothing went wrong */
}

static void a_reader_holding_the_lock_sees_no_writes(void **state)
{
    struct fixture *f = *state;
    start_in_sync(f, 500, 5);
    uint64_t before = lm_db_lsn(f->copy);
    lm_mirror_lock(f->mirror);
    insert_random(f, 100, -5, 5);
    server_notify(&f->server);
    usleep(300000);
    assert_int_equal(lm_db_lsn(f->copy), before);
    lm_mirror_unlock(f->mirror);
    wait_synced(f, lm_db_lsn(f->src));
    assert_true(lm_db_lsn(f->copy) > before);
    expect_same(f, "after the lock was released");
}

static void an_unknown_field_fails_with_the_servers_text(void **state)
{
    struct fixture *f = *state;
    make_field(f);
    server_start(&f->server, f->src, 0, false);
    struct lm_error err = {0};
    assert_int_equal(mirror_open(f, "nope", NULL, &err), 0);
    assert_int_equal(lm_mirror_wait(f->mirror, 0, WAIT_MS, &err), LM_ENOFIELD);
    assert_non_null(strstr(err.message, f->url));           /* where */
    assert_non_null(strstr(err.message, "no field named 'nope'")); /* the server's why */
    struct lm_mirror_stats st;
    lm_mirror_stats(f->mirror, &st);
    assert_int_equal(st.state, LM_MIRROR_FAILED);
    assert_int_equal(lm_field_info(f->copy, "nope", &(struct lm_field_info){0}, NULL),
                     LM_ENOFIELD);
}

static void a_refused_connection_names_the_address(void **state)
{
    struct fixture *f = *state;
    /* a port nothing listens on: bound, noted, closed */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    f->server.port = ntohs(a.sin_port);
    struct lm_error err = {0};
    assert_int_equal(mirror_open(f, "f", NULL, &err), 0);
    int rc = lm_mirror_wait(f->mirror, 0, WAIT_MS, &err);
    assert_int_equal(rc, -ECONNREFUSED);
    char where[64];
    snprintf(where, sizeof where, "cannot connect to 127.0.0.1:%d", f->server.port);
    assert_non_null(strstr(err.message, where));
    assert_non_null(strstr(err.message, f->url));
}

static void a_wrong_token_is_refused_when_reads_need_one(void **state)
{
    struct fixture *f = *state;
    make_field(f);
    insert_random(f, 10, 0, 1);
    server_start(&f->server, f->src, 0, true);
    struct lm_error err = {0};
    assert_int_equal(mirror_open(f, "f", "not-the-token", &err), 0);
    assert_int_equal(lm_mirror_wait(f->mirror, 0, WAIT_MS, &err), -EACCES);
    assert_non_null(strstr(err.message, "token"));
    lm_mirror_close(f->mirror);
    assert_int_equal(mirror_open(f, "f", TOKEN, &err), 0);
    wait_synced(f, 0);
    expect_same(f, "with the right token");
}

static void a_server_going_away_leaves_the_last_state(void **state)
{
    struct fixture *f = *state;
    start_in_sync(f, 700, 6);
    server_stop(&f->server);
    struct lm_error err = {0};
    int rc = lm_mirror_wait(f->mirror, lm_db_lsn(f->src) + 1, WAIT_MS, &err);
    assert_true(rc == -ECONNRESET);
    assert_non_null(strstr(err.message, "server shutting down"));
    struct lm_mirror_stats st;
    lm_mirror_stats(f->mirror, &st);
    assert_int_equal(st.state, LM_MIRROR_CLOSED);
    assert_int_equal(lm_mirror_wait(f->mirror, 0, 0, NULL), 0); /* it was in sync */
    expect_same(f, "after the server left");
    pthread_mutex_lock(&f->log_mu);
    assert_non_null(strstr(f->log, "showing the last state received"));
    pthread_mutex_unlock(&f->log_mu);
}

static void bad_urls_are_refused_with_the_reason(void **state)
{
    (void)state;
    struct lm_mirror_url u;
    struct lm_error err = {0};
    assert_int_equal(lm_mirror_parse_url("ws://127.0.0.1:8123/terrain", &u, &err), 0);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 8123);
    assert_string_equal(u.field, "terrain");
    assert_int_equal(lm_mirror_parse_url("ws://[::1]:9/f_2", &u, &err), 0);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 9);
    assert_int_equal(lm_mirror_parse_url("ws://example.org/f", &u, &err), 0);
    assert_int_equal(u.port, 8080);
    static const struct { const char *url, *why; } bad[] = {
        {"wss://h:1/f", "ws://HOST:PORT/FIELD"},
        {"http://h:1/f", "ws://HOST:PORT/FIELD"},
        {"ws://:1/f", "no host"},
        {"ws://h:0/f", "port"},
        {"ws://h:70000/f", "port"},
        {"ws://h:12x/f", "port"},
        {"ws://h:1", "no field"},
        {"ws://h:1/", "no field"},
        {"ws://h:1/a/b", "not a field name"},
        {"ws://h:1/9f", "not a field name"},
        {"ws://[::1:1/f", "']'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err.message[0] = 0;
        if (lm_mirror_parse_url(bad[i].url, &u, &err) != LM_EBADARG)
            fail_msg("'%s' was accepted", bad[i].url);
        if (!strstr(err.message, bad[i].url) || !strstr(err.message, bad[i].why))
            fail_msg("'%s': message '%s' lacks the URL or '%s'", bad[i].url, err.message,
                     bad[i].why);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(copy_equals_the_field_after_the_snapshot_and_after_deltas,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(a_reader_holding_the_lock_sees_no_writes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(an_unknown_field_fails_with_the_servers_text, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_refused_connection_names_the_address, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_wrong_token_is_refused_when_reads_need_one, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_server_going_away_leaves_the_last_state, setup,
                                        teardown),
        cmocka_unit_test(bad_urls_are_refused_with_the_reason),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
