/* cmd_serve.c - `lumadb serve [DIR] [options]`: opens the database, loads the demo
 * terrain on request, starts the network server on a libuv loop, logs one line per
 * event that matters and shuts down cleanly on SIGINT/SIGTERM. */
#include "cmd_serve.h"
#include "exec.h"
#include "lql.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "cluster.h"
#include "db.h"
#include "demo_scene.h"
#include "lumadb.h"
#include "net.h"
#include "repl_host.h"
#include "repl_port.h"

#ifndef LUMADB_WEB_DIR
#define LUMADB_WEB_DIR "assets/web"
#endif

#define TOKEN_FILE "serve.token"

static void log_line(void *user, const char *line)
{
    (void)user;
    char ts[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    fprintf(stderr, "%s lumadb serve: %s\n", ts, line);
    fflush(stderr);
}

static int usage(FILE *to)
{
    fprintf(to,
            "usage: lumadb serve [DIR] [options]   (DIR defaults to data/demo)\n"
            "  --port P          TCP port (default 8080; 0 = any free port)\n"
            "  --bind ADDR       listen address (default 127.0.0.1)\n"
            "  --token T         bearer token for writes (default: generated once and kept\n"
            "                    in DIR/" TOKEN_FILE ")\n"
            "  --read-token      require the token for reads too\n"
            "  --demo            load the demo terrain into field 'terrain' if it is absent\n"
            "  --demo-side N     demo grid side (default 1024: 1M samples)\n"
            "  --web DIR         directory of the WebGL client (default the source tree's)\n"
            "  --rate N          writes+queries per second per address (default 100; 0 = off)\n"
            "  --burst N         burst for --rate (default 2 x rate)\n"
            "  --max-frame N     largest WebSocket frame in bytes (default 1 MiB)\n"
            "  --send-queue N    bytes queued per client before throttling (default 4 MiB)\n"
            "  --ping S          ping idle clients after S seconds, drop them after 3 S\n"
            "                    (default 20 and 60)\n"
            "Replicated (a Raft cluster; every node serves reads, takes writes and streams\n"
            "deltas; writes reaching a follower are forwarded to the leader):\n%s"
            "  In a cluster DIR holds data/ (the replica, rebuilt at start) and raft/; give\n"
            "  every node the same --token. docs/REPLICATION.md has the details.\n",
            lm_cluster_usage);
    return to == stderr ? 2 : 0;
}

/* Reads DIR/serve.token, or creates it with a fresh random token. *made tells which. */
static int load_token(const char *dir, char *tok, size_t cap, int *made)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, TOKEN_FILE);
    FILE *f = fopen(path, "r");
    *made = 0;
    if (f) {
        char *ok = fgets(tok, (int)cap, f);
        fclose(f);
        if (!ok)
            return -EINVAL;
        tok[strcspn(tok, "\r\n")] = 0;
        return strlen(tok) >= 8 ? 0 : -EINVAL;
    }
    unsigned char rnd[24];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, rnd, sizeof rnd) != (ssize_t)sizeof rnd) {
        if (fd >= 0)
            close(fd);
        return -EIO;
    }
    close(fd);
    for (size_t i = 0; i < sizeof rnd && 2 * i + 2 < cap; i++)
        snprintf(tok + 2 * i, 3, "%02x", rnd[i]);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    size_t n = strlen(tok);
    int rc = write(fd, tok, n) == (ssize_t)n && write(fd, "\n", 1) == 1 ? 0 : -EIO;
    close(fd);
    *made = 1;
    return rc;
}

struct serve {
    uv_loop_t loop;
    uv_signal_t sigint, sigterm;
    lm_net_server *srv;
    /* a cluster node: Raft, its client port and the server's writer over them */
    lm_repl *repl;
    lm_repl_port *port;
    lm_repl_host *host;
    bool stopping;
    int exit_code;
};

/* After the server closed its clients: replication goes last, so that writes still in
 * flight get their answers (or LM_ECANCELED) and Raft's handles close; uv_run then
 * returns. */
static void server_done(void *user)
{
    struct serve *sv = user;
    uv_close((uv_handle_t *)&sv->sigint, NULL);
    uv_close((uv_handle_t *)&sv->sigterm, NULL);
    lm_repl_host_close(sv->host);
    lm_repl_port_close(sv->port, NULL, NULL);
    lm_repl_close(sv->repl, NULL, NULL);
}

static void stop(struct serve *sv, int code)
{
    if (sv->stopping)
        return;
    sv->stopping = true;
    sv->exit_code = code;
    lm_net_server_shutdown(sv->srv, server_done, sv);
}

static void on_signal(uv_signal_t *h, int signum)
{
    char line[64];
    snprintf(line, sizeof line, "received %s", signum == SIGINT ? "SIGINT" : "SIGTERM");
    log_line(NULL, line);
    stop(h->data, 0);
}

static void on_repl_failure(void *data, const char *why)
{
    char line[400];
    snprintf(line, sizeof line, "replication failed: %.300s; stopping (a restart rebuilds "
             "this node from its Raft log)", why);
    log_line(NULL, line);
    stop(data, 1);
}

/* Entries took effect here (on every node, leader or not): stream them. */
static void on_repl_applied(void *data, uint64_t db_index)
{
    struct serve *sv = data;
    (void)db_index;
    if (sv->srv && !sv->stopping)
        lm_net_server_notify(sv->srv);
}

/* Opens the replica in DIR/data and Raft in DIR/raft on the loop, the client port, and
 * the writer the server hands its writes to. */
static int open_cluster(struct serve *sv, const char *dir, struct lm_cluster_args *ca,
                        lm_db **db, struct lm_error *err)
{
    char data[4096], raft_dir[4096];
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(raft_dir, sizeof raft_dir, "%s/raft", dir);
    if (mkdir(dir, 0755) && errno != EEXIST) {
        snprintf(err->message, sizeof err->message, "%s: %s", dir, strerror(errno));
        return -errno;
    }
    setenv("UV_THREADPOOL_SIZE", "8", 0); /* Raft's disk work, snapshots, forwarding */
    int rc = lm__db_open_replica(data, NULL, db, err);
    if (rc)
        return rc;
    struct lm_repl_opts o = ca->repl;
    o.dir = raft_dir;
    o.db = *db;
    o.on_failure = on_repl_failure;
    o.on_applied = on_repl_applied;
    o.data = sv;
    if ((rc = lm_repl_open(&sv->loop, &o, &sv->repl, err)))
        return rc;
    if ((rc = lm_repl_port_open(&sv->loop, sv->repl, *db, ca->self->client, &sv->port, err)))
        return rc;
    struct lm_repl_host_opts ho = {.loop = &sv->loop, .repl = sv->repl, .db = *db,
                                   .members = ca->members, .n_members = (size_t)ca->n_members};
    return lm_repl_host_open(&ho, &sv->host, err);
}

/* Undoes a partial open_cluster (or a server that did not start) and drains the loop. */
static void close_early(struct serve *sv, lm_db *db)
{
    lm_repl_host_close(sv->host);
    lm_repl_port_close(sv->port, NULL, NULL);
    lm_repl_close(sv->repl, NULL, NULL);
    uv_run(&sv->loop, UV_RUN_DEFAULT);
    uv_loop_close(&sv->loop);
    lm_repl_host_free(sv->host);
    lm_db_close(db);
}

/* LQL for POST /v1/query bodies that are not JSON objects (and WebSocket QUERY frames):
 * {"columns":[{"name":..,"type":..}],"rows":[[..],..],"affected":N,"message":..,
 *  "next":{...}} (a second table, e.g. the samples of a RAYCAST). */
static void result_json(struct lm_net_buf *out, const struct lm_exec_result *r)
{
    static const char *const type_name[] = {"null", "int", "f32", "f64", "text"};
    lm_net_buf_printf(out, "{\"columns\":[");
    for (size_t c = 0; c < r->n_columns; c++) {
        lm_net_buf_printf(out, "%s{\"name\":", c ? "," : "");
        lm_net_buf_json_str(out, r->columns[c].name, strlen(r->columns[c].name));
        lm_net_buf_printf(out, ",\"type\":\"%s\"}", type_name[r->columns[c].type]);
    }
    lm_net_buf_printf(out, "],\"rows\":[");
    for (size_t i = 0; i < r->n_rows; i++) {
        lm_net_buf_printf(out, "%s[", i ? "," : "");
        for (size_t c = 0; c < r->n_columns; c++) {
            const struct lm_exec_value *v = &r->rows[i * r->n_columns + c];
            if (c)
                lm_net_buf_put(out, ",", 1);
            switch (v->type) {
            case LM_EXEC_INT: lm_net_buf_printf(out, "%lld", (long long)v->i); break;
            case LM_EXEC_F32:
            case LM_EXEC_F64: lm_net_buf_json_num(out, v->d); break;
            case LM_EXEC_TEXT: lm_net_buf_json_str(out, v->s, strlen(v->s)); break;
            default: lm_net_buf_put(out, "null", 4); break;
            }
        }
        lm_net_buf_put(out, "]", 1);
    }
    lm_net_buf_printf(out, "],\"affected\":%llu,\"message\":", (unsigned long long)r->affected);
    lm_net_buf_json_str(out, r->message, strlen(r->message));
    if (r->next) {
        lm_net_buf_printf(out, ",\"next\":");
        result_json(out, r->next);
    }
    lm_net_buf_put(out, "}", 1);
}

/* The query endpoint is open to readers (writes need the token and go through
 * /v1/fields/NAME/samples), so statements that change data are refused here. */
static int lql_query(void *user, lm_db *db, const char *text, size_t len,
                     struct lm_net_buf *out, struct lm_error *err)
{
    (void)user;
    struct lm_lql_stmt *stmt = NULL;
    int rc = lm_lql_parse(text, len, &stmt, err);
    if (rc)
        return rc;
    enum lm_lql_kind k = stmt->kind == LM_LQL_EXPLAIN ? stmt->explain->kind : stmt->kind;
    if (k == LM_LQL_INSERT || k == LM_LQL_DELETE || k == LM_LQL_UPDATE ||
        k == LM_LQL_CREATE_FIELD || k == LM_LQL_DROP_FIELD) {
        if (err) {
            err->code = LM_EREADONLY;
            err->line = stmt->pos.line;
            err->column = stmt->pos.column;
            err->offset = -1;
            snprintf(err->message, sizeof err->message,
                     "%s changes data: /v1/query only reads (write with a token through "
                     "POST /v1/fields/NAME/samples or the WebSocket insert)",
                     lm_lql_kind_name(k));
        }
        lm_lql_free(stmt);
        return LM_EREADONLY;
    }
    struct lm_exec_result *res = NULL;
    rc = lm_exec(db, stmt, NULL, &res, err);
    lm_lql_free(stmt);
    if (rc)
        return rc;
    result_json(out, res);
    lm_exec_result_free(res);
    return 0;
}

int lm_cmd_serve(int argc, char **argv)
{
    const char *dir = "data/demo", *token = NULL;
    struct lm_net_opts o = {.port = 8080, .bind = "127.0.0.1", .rate = 100, .log = log_line,
                            .query_fn = lql_query};
    bool demo = false;
    struct lm_cluster_args ca = {0};
    struct lm_demo_scene sc = {.side = 1024, .seed = 42};
    const char *web = getenv("LUMADB_WEB") ? getenv("LUMADB_WEB") : LUMADB_WEB_DIR;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = true;
        int cluster_opt = lm_cluster_arg(&ca, argc, argv, &i);
        if (cluster_opt < 0)
            return fprintf(stderr, "lumadb serve: bad or missing value for %s\n", a), 2;
        if (cluster_opt)
            continue;
        if (!strcmp(a, "--port") && v)
            o.port = atoi(v);
        else if (!strcmp(a, "--bind") && v)
            o.bind = v;
        else if (!strcmp(a, "--token") && v)
            token = v;
        else if (!strcmp(a, "--web") && v)
            web = v;
        else if (!strcmp(a, "--rate") && v)
            o.rate = atof(v);
        else if (!strcmp(a, "--burst") && v)
            o.burst = atof(v);
        else if (!strcmp(a, "--max-frame") && v)
            o.max_frame = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--ping") && v)
            o.ping_s = (uint16_t)atoi(v), o.timeout_s = (uint16_t)(3 * atoi(v));
        else if (!strcmp(a, "--send-queue") && v)
            o.send_queue = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--demo-side") && v)
            sc.side = (uint32_t)strtoul(v, NULL, 10), demo = true;
        else {
            takes = false;
            if (!strcmp(a, "--demo"))
                demo = true;
            else if (!strcmp(a, "--read-token"))
                o.read_token = true;
            else if (!strcmp(a, "--help") || !strcmp(a, "-h"))
                return usage(stdout);
            else if (a[0] == '-')
                return fprintf(stderr, "lumadb serve: unknown or incomplete option '%s'\n", a), 2;
            else
                dir = a;
        }
        i += takes;
    }
    if (o.port < 0 || o.port > 65535 || sc.side < 2 || sc.side > 8192 || o.rate < 0)
        return fprintf(stderr, "lumadb serve: bad --port, --rate or --demo-side\n"), 2;
    if (token && (strlen(token) < 8 || strlen(token) > 256))
        return fprintf(stderr, "lumadb serve: --token must have 8..256 characters\n"), 2;
    bool cluster = ca.id || ca.peers;
    if (cluster) {
        int bad = lm_cluster_args_finish(&ca, "lumadb serve");
        if (bad)
            return bad;
        if (demo)
            return fprintf(stderr, "lumadb serve: --demo loads a single node; load a cluster "
                           "through its API\n"), 2;
    }
    signal(SIGPIPE, SIG_IGN);

    struct serve sv = {0};
    uv_loop_init(&sv.loop);
    struct lm_error err = {0};
    lm_db *db = NULL;
    int rc = cluster ? open_cluster(&sv, dir, &ca, &db, &err) : lm_db_open(dir, NULL, &db, &err);
    if (rc) {
        fprintf(stderr, "lumadb serve: %s: %s\n", dir, err.message[0] ? err.message : lm_strerror(rc));
        close_early(&sv, db);
        return 1;
    }
    char tok[300];
    if (!token) {
        int made = 0;
        if ((rc = load_token(dir, tok, sizeof tok, &made))) {
            fprintf(stderr, "lumadb serve: token file %s/%s: %s\n", dir, TOKEN_FILE, lm_strerror(rc));
            close_early(&sv, db);
            return 1;
        }
        if (made)
            printf("lumadb serve: generated a write token, stored in %s/%s (shown once):\n%s\n",
                   dir, TOKEN_FILE, tok);
        fflush(stdout);
        token = tok;
    }
    struct lm_field_info info;
    if (demo && lm_field_info(db, "terrain", &info, NULL) != 0) {
        char line[128];
        snprintf(line, sizeof line, "loading the demo terrain (%u samples) into field 'terrain'",
                 sc.side * sc.side);
        log_line(NULL, line);
        if ((rc = lm_demo_load(db, "terrain", &sc, 65536, &err))) {
            fprintf(stderr, "lumadb serve: demo: %s\n", err.message[0] ? err.message : lm_strerror(rc));
            close_early(&sv, db);
            return 1;
        }
    }

    o.db = db;
    o.writer = sv.host ? lm_repl_host_writer(sv.host) : NULL;
    o.loop = &sv.loop;
    o.token = token;
    o.web_root = web;
    if ((rc = lm_net_server_open(&o, &sv.srv, &err))) {
        fprintf(stderr, "lumadb serve: %s\n", err.message[0] ? err.message : lm_strerror(rc));
        lm_net_server_free(sv.srv);
        sv.srv = NULL;
        close_early(&sv, db);
        return 1;
    }
    if (cluster) {
        char line[256];
        snprintf(line, sizeof line, "cluster node %u: raft %s, client port %s", ca.id,
                 ca.self->address, ca.self->client);
        log_line(NULL, line);
    }
    uv_signal_init(&sv.loop, &sv.sigint);
    uv_signal_init(&sv.loop, &sv.sigterm);
    sv.sigint.data = sv.sigterm.data = &sv;
    uv_signal_start(&sv.sigint, on_signal, SIGINT);
    uv_signal_start(&sv.sigterm, on_signal, SIGTERM);
    uv_run(&sv.loop, UV_RUN_DEFAULT);
    lm_net_server_free(sv.srv);
    rc = uv_loop_close(&sv.loop);
    if (rc)
        log_line(NULL, "loop closed with handles still open");
    lm_repl_host_free(sv.host);
    lm_db_close(db);
    log_line(NULL, "stopped");
    return sv.exit_code;
}
