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

#include "demo_scene.h"
#include "lumadb.h"
#include "net.h"

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
            "                    (default 20 and 60)\n");
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
};

static void server_done(void *user)
{
    struct serve *sv = user;
    uv_close((uv_handle_t *)&sv->sigint, NULL);
    uv_close((uv_handle_t *)&sv->sigterm, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct serve *sv = h->data;
    char line[64];
    snprintf(line, sizeof line, "received %s", signum == SIGINT ? "SIGINT" : "SIGTERM");
    log_line(NULL, line);
    lm_net_server_shutdown(sv->srv, server_done, sv);
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
    struct lm_demo_scene sc = {.side = 1024, .seed = 42};
    const char *web = getenv("LUMADB_WEB") ? getenv("LUMADB_WEB") : LUMADB_WEB_DIR;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = true;
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
    signal(SIGPIPE, SIG_IGN);

    struct lm_error err = {0};
    lm_db *db;
    int rc = lm_db_open(dir, NULL, &db, &err);
    if (rc) {
        fprintf(stderr, "lumadb serve: %s: %s\n", dir, err.message[0] ? err.message : lm_strerror(rc));
        return 1;
    }
    char tok[300];
    if (!token) {
        int made = 0;
        if ((rc = load_token(dir, tok, sizeof tok, &made))) {
            fprintf(stderr, "lumadb serve: token file %s/%s: %s\n", dir, TOKEN_FILE, lm_strerror(rc));
            lm_db_close(db);
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
            lm_db_close(db);
            return 1;
        }
    }

    struct serve sv = {0};
    uv_loop_init(&sv.loop);
    o.db = db;
    o.loop = &sv.loop;
    o.token = token;
    o.web_root = web;
    if ((rc = lm_net_server_open(&o, &sv.srv, &err))) {
        fprintf(stderr, "lumadb serve: %s\n", err.message[0] ? err.message : lm_strerror(rc));
        uv_run(&sv.loop, UV_RUN_NOWAIT);
        uv_loop_close(&sv.loop);
        lm_db_close(db);
        return 1;
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
    lm_db_close(db);
    log_line(NULL, "stopped");
    return 0;
}
