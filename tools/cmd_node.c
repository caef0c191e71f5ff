/* cmd_node.c - `lumadb node`: one cluster node in its own process. A replica database,
 * Raft replication and the client port share one libuv loop, the way any host (such as
 * `lumadb serve`) runs them:
 *
 *   lm__db_open_replica(DIR/data) -> lm_repl_open(loop, DIR/raft) ->
 *   lm_repl_port_open(loop, client address) -> uv_run -> ... -> lm_repl_port_close +
 *   lm_repl_close -> uv_run drains -> lm_db_close.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

#include "cluster.h"
#include "db.h"
#include "repl.h"
#include "repl_port.h"

struct node {
    uv_loop_t loop;
    uv_signal_t sigterm, sigint;
    lm_repl *repl;
    lm_repl_port *port;
    bool stopping;
    int exit_code;
};

static int usage(void)
{
    fprintf(stderr,
            "usage: lumadb node DIR --node-id N --peers ID=HOST:PORT[/CLIENT],... [options]\n"
            "  --peers LIST            the voters (this node included); CLIENT is the\n"
            "                          client port, HOST:PORT or a bare port\n"
            "  --client-port P|ADDR    this node's client port (default: from --peers)\n"
            "  --join                  do not bootstrap: wait to be added (cluster add)\n"
            "  --election-ms N         election timeout (default 200)\n"
            "  --heartbeat-ms N        heartbeat interval (default 20)\n"
            "  --snapshot-threshold N  entries between snapshots (default 1024)\n"
            "  --snapshot-trailing N   entries kept behind a snapshot (default 128)\n"
            "DIR holds data/ (the replica, rebuilt at start) and raft/ (log, snapshots).\n");
    return 2;
}

static void stop(struct node *n, int code)
{
    if (n->stopping)
        return;
    n->stopping = true;
    n->exit_code = code;
    uv_close((uv_handle_t *)&n->sigterm, NULL);
    uv_close((uv_handle_t *)&n->sigint, NULL);
    lm_repl_port_close(n->port, NULL, NULL);
    lm_repl_close(n->repl, NULL, NULL); /* uv_run returns once both are closed */
}

static void on_signal(uv_signal_t *h, int signum)
{
    (void)signum;
    stop(h->data, 0);
}

static void on_failure(void *data, const char *why)
{
    fprintf(stderr, "lumadb node: %s; stopping (a restart rebuilds this node from its "
            "Raft log)\n", why);
    stop(data, 1);
}

static bool number(const char *s, unsigned *out)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (!*s || *end || v > 1000000000ul)
        return false;
    *out = (unsigned)v;
    return true;
}

int lm_cmd_node(int argc, char **argv)
{
    const char *dir = NULL, *peers = NULL, *client = NULL;
    struct lm_repl_opts o = {0};
    unsigned id = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok = true;
        if (!strcmp(a, "--node-id") && v)
            ok = number(argv[++i], &id);
        else if (!strcmp(a, "--peers") && v)
            peers = argv[++i];
        else if (!strcmp(a, "--client-port") && v)
            client = argv[++i];
        else if (!strcmp(a, "--join"))
            o.join = true;
        else if (!strcmp(a, "--election-ms") && v)
            ok = number(argv[++i], &o.election_ms);
        else if (!strcmp(a, "--heartbeat-ms") && v)
            ok = number(argv[++i], &o.heartbeat_ms);
        else if (!strcmp(a, "--snapshot-threshold") && v)
            ok = number(argv[++i], &o.snapshot_threshold);
        else if (!strcmp(a, "--snapshot-trailing") && v)
            ok = number(argv[++i], &o.snapshot_trailing);
        else if (a[0] != '-' && !dir)
            dir = a;
        else
            return usage();
        if (!ok)
            return fprintf(stderr, "lumadb node: bad value for %s\n", a), 2;
    }
    if (!dir || !id || !peers)
        return usage();
    struct lm_repl_member members[LM_REPL_MAX_MEMBERS];
    struct lm_error err = {0};
    int n_members = lm_repl_parse_members(peers, members, LM_REPL_MAX_MEMBERS, &err);
    if (n_members < 0)
        return fprintf(stderr, "lumadb node: --peers: %s\n", err.message), 2;
    struct lm_repl_member *self = NULL;
    for (int i = 0; i < n_members; i++)
        if (members[i].id == id)
            self = &members[i];
    if (!self)
        return fprintf(stderr, "lumadb node: node %u is not in --peers\n", id), 2;
    if (client) {
        struct lm_repl_member m;
        char spec[256];
        snprintf(spec, sizeof spec, "%u=%s/%s", id, self->address, client);
        if (lm_repl_parse_members(spec, &m, 1, &err) < 0)
            return fprintf(stderr, "lumadb node: --client-port: %s\n", err.message), 2;
        *self = m;
    }
    if (!self->client[0])
        return fprintf(stderr, "lumadb node: no client port: give --client-port or "
                       "ID=HOST:PORT/CLIENT in --peers\n"), 2;

    signal(SIGPIPE, SIG_IGN);
    setenv("UV_THREADPOOL_SIZE", "8", 0); /* Raft's disk work, snapshots, reads */
    char data[4096], raft_dir[4096];
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(raft_dir, sizeof raft_dir, "%s/raft", dir);
    if (mkdir(dir, 0755) && errno != EEXIST)
        return fprintf(stderr, "lumadb node: %s: %s\n", dir, strerror(errno)), 1;
    lm_db *db;
    if (lm__db_open_replica(data, NULL, &db, &err))
        return fprintf(stderr, "lumadb node: %s\n", err.message), 1;

    struct node n = {0};
    uv_loop_init(&n.loop);
    o.id = id;
    o.dir = raft_dir;
    o.db = db;
    o.members = members;
    o.n_members = (size_t)n_members;
    o.on_failure = on_failure;
    o.data = &n;
    int rc = lm_repl_open(&n.loop, &o, &n.repl, &err);
    if (!rc && (rc = lm_repl_port_open(&n.loop, n.repl, db, self->client, &n.port, &err)))
        lm_repl_close(n.repl, NULL, NULL);
    if (rc) {
        fprintf(stderr, "lumadb node: %s\n", err.message);
        uv_run(&n.loop, UV_RUN_DEFAULT); /* lets what was opened close */
        uv_loop_close(&n.loop);
        lm_db_close(db);
        return 1;
    }
    uv_signal_init(&n.loop, &n.sigterm);
    uv_signal_init(&n.loop, &n.sigint);
    n.sigterm.data = n.sigint.data = &n;
    uv_signal_start(&n.sigterm, on_signal, SIGTERM);
    uv_signal_start(&n.sigint, on_signal, SIGINT);
    fprintf(stderr, "lumadb node %u: raft %s, clients %s, data %s\n", id, self->address,
            self->client, dir);
    uv_run(&n.loop, UV_RUN_DEFAULT);
    uv_loop_close(&n.loop);
    lm_db_close(db);
    return n.exit_code;
}
