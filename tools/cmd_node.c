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
    fprintf(stderr, "usage: lumadb node DIR --node-id N --peers ID=HOST:PORT[/CLIENT],... "
                    "[options]\n%s"
                    "DIR holds data/ (the replica, rebuilt at start) and raft/ (log, "
                    "snapshots).\n", lm_cluster_usage);
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

int lm_cmd_node(int argc, char **argv)
{
    const char *dir = NULL;
    struct lm_cluster_args ca = {0};
    for (int i = 0; i < argc; i++) {
        int took = lm_cluster_arg(&ca, argc, argv, &i);
        if (took < 0)
            return fprintf(stderr, "lumadb node: bad or missing value for %s\n", argv[i]), 2;
        if (took)
            continue;
        if (argv[i][0] != '-' && !dir)
            dir = argv[i];
        else
            return usage();
    }
    if (!dir)
        return usage();
    int bad = lm_cluster_args_finish(&ca, "lumadb node");
    if (bad)
        return bad;
    struct lm_error err = {0};
    struct lm_repl_opts o = ca.repl;
    const struct lm_repl_member *self = ca.self;
    unsigned id = ca.id;

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
    o.dir = raft_dir;
    o.db = db;
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
