/* bench_net.c - the server side of the network benchmark: loads the demo terrain into a
 * fresh database, serves it with the real server (lm_net: HTTP + lumadb.v1) and, on a
 * second port of the same libuv loop, a raw libwebsockets sender that writes the very
 * same chunk frames (encoded once, up front, with the same encoder) to each client and
 * then one END frame. bench/bench_net.mjs drives clients against both and prints the
 * table. Prints "ports API RAW" on stdout when ready; SIGTERM/SIGINT stop it. */
#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "alloc.h"
#include "bench_util.h"
#include "demo_scene.h"
#include "net.h"
#include "wire.h"

struct frames {
    struct lm_net_buf *f;     /* each with LWS_PRE bytes of head room */
    size_t n, cap, bytes, samples;
    struct lm_net_buf scratch;
    struct lm_field_opts opts;
    uint32_t max_frame;
};

static int collect(const struct lm_chunk_view *c, void *user)
{
    struct frames *fr = user;
    size_t per = (fr->max_frame - LM_WS_CHUNK_HEADER - 16) / 256 * 255 /
                 lm_ws_sample_bytes(LM_WS_COL_DEFAULT, &fr->opts);
    for (size_t first = 0; first < c->n; first += per) {
        size_t n = c->n - first < per ? c->n - first : per;
        if (fr->n == fr->cap) {
            fr->cap = fr->cap ? 2 * fr->cap : 1024;
            fr->f = realloc(fr->f, fr->cap * sizeof *fr->f);
        }
        struct lm_net_buf *b = &fr->f[fr->n++];
        *b = (struct lm_net_buf){0};
        lm_net_buf_reserve(b, LWS_PRE);
        memset(b->p, 0, LWS_PRE);
        b->len = LWS_PRE;
        lm_ws_encode_chunk(b, &fr->scratch, 1, 0, c, first, n, LM_WS_COL_DEFAULT, &fr->opts);
        fr->bytes += b->len - LWS_PRE;
        fr->samples += n;
    }
    return 0;
}

static struct frames frames;

struct raw_sess { size_t next; };

static int raw_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len)
{
    struct raw_sess *r = user;
    (void)in;
    (void)len;
    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
        r->next = 0;
        lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (r->next < frames.n) {
            struct lm_net_buf *b = &frames.f[r->next++];
            if (lws_write(wsi, b->p + LWS_PRE, b->len - LWS_PRE, LWS_WRITE_BINARY) < 0)
                return -1;
        } else if (r->next == frames.n) {
            uint8_t end[LWS_PRE + LM_WS_HEADER] = {0};
            end[LWS_PRE] = 0xFF; /* END: not a lumadb.v1 type; the bench client stops */
            r->next++;
            if (lws_write(wsi, end + LWS_PRE, LM_WS_HEADER, LWS_WRITE_BINARY) < 0)
                return -1;
            return 0;
        } else {
            return 0;
        }
        lws_callback_on_writable(wsi);
        return 0;
    default:
        return 0;
    }
}

struct app {
    uv_loop_t loop;
    uv_signal_t sigint, sigterm;
    uv_timer_t kill_raw;
    lm_net_server *srv;
    struct lws_context *raw;
};

static void server_done(void *user)
{
    struct app *a = user;
    uv_close((uv_handle_t *)&a->sigint, NULL);
    uv_close((uv_handle_t *)&a->sigterm, NULL);
}

static void destroy_raw(uv_timer_t *t)
{
    struct app *a = t->data;
    lws_context_destroy(a->raw);
    uv_close((uv_handle_t *)t, NULL);
}

static void on_signal(uv_signal_t *h, int sig)
{
    (void)sig;
    struct app *a = h->data;
    uv_signal_stop(&a->sigint);
    uv_signal_stop(&a->sigterm);
    uv_timer_start(&a->kill_raw, destroy_raw, 0, 0);
    lm_net_server_shutdown(a->srv, server_done, a);
}

int main(int argc, char **argv)
{
    struct lm_demo_scene sc = {.side = 1024, .seed = 42};
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--side"))
            sc.side = (uint32_t)atoi(argv[++i]);
    signal(SIGPIPE, SIG_IGN);
    char dir[] = "/tmp/lumadb-bench-net-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    struct lm_error err = {0};
    lm_db *db;
    if (lm_db_open(dir, NULL, &db, &err) || lm_demo_load(db, "terrain", &sc, 65536, &err)) {
        fprintf(stderr, "bench_net: %s\n", err.message);
        return 1;
    }
    double t0 = bench_now();
    frames.max_frame = 1u << 20;
    lm_demo_field_opts(&frames.opts);
    lm_chunks_each(db, "terrain", NULL, 0, collect, &frames, NULL);
    fprintf(stderr, "bench_net: %zu samples in %zu frames, %.1f MiB, encoded in %.2f s\n",
            frames.samples, frames.n, (double)frames.bytes / 1048576.0, bench_now() - t0);

    struct app a = {0};
    uv_loop_init(&a.loop);
    struct lm_net_opts o = {.db = db, .loop = &a.loop, .port = 0, .token = "bench-token-0123456789",
                            .rate = 0, .web_root = getenv("LUMADB_WEB")};
    if (lm_net_server_open(&o, &a.srv, &err)) {
        fprintf(stderr, "bench_net: %s\n", err.message);
        return 1;
    }
    static const struct lws_protocols protos[] = {
        {"http", lws_callback_http_dummy, 0, 0, 0, NULL, 0},
        {"raw.v1", raw_cb, sizeof(struct raw_sess), 4096, 0, NULL, 0},
        {NULL, NULL, 0, 0, 0, NULL, 0}};
    void *loops[1] = {&a.loop};
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.options = LWS_SERVER_OPTION_LIBUV;
    info.foreign_loops = loops;
    info.port = 0;
    info.iface = "127.0.0.1";
    info.protocols = protos;
    info.pcontext = &a.raw;
    a.raw = lws_create_context(&info);
    struct lws_vhost *vh = a.raw ? lws_get_vhost_by_name(a.raw, "default") : NULL;
    if (!vh) {
        fprintf(stderr, "bench_net: raw sender cannot listen\n");
        return 1;
    }
    uv_signal_init(&a.loop, &a.sigint);
    uv_signal_init(&a.loop, &a.sigterm);
    uv_timer_init(&a.loop, &a.kill_raw);
    a.sigint.data = a.sigterm.data = a.kill_raw.data = &a;
    uv_signal_start(&a.sigint, on_signal, SIGINT);
    uv_signal_start(&a.sigterm, on_signal, SIGTERM);
    printf("ports %d %d samples %zu bytes %zu frames %zu\n", lm_net_server_port(a.srv),
           lws_get_vhost_listen_port(vh), frames.samples, frames.bytes, frames.n);
    fflush(stdout);
    uv_run(&a.loop, UV_RUN_DEFAULT);
    lm_net_server_free(a.srv);
    if (a.raw)
        lws_context_destroy(a.raw);
    uv_loop_close(&a.loop);
    for (size_t i = 0; i < frames.n; i++)
        lm_net_buf_free(&frames.f[i]);
    free(frames.f);
    lm_net_buf_free(&frames.scratch);
    lm_db_close(db);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : 1;
}
