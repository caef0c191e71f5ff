/* cluster.h - the cluster subcommands of `lumadb`.
 * Owns: nothing (each command owns what it opens until it returns).
 * Threading: each runs on the calling thread (a node runs its own libuv loop).
 * Called by: tools/lumadb.c; tests start `lumadb node` as a process. */
#ifndef LM_TOOLS_CLUSTER_H
#define LM_TOOLS_CLUSTER_H

#include "repl.h"

/* The options of a cluster node, shared by `lumadb node` and `lumadb serve`. */
struct lm_cluster_args {
    unsigned id;
    const char *peers, *client;
    struct lm_repl_opts repl;  /* id, members, join, timeouts, snapshot settings */
    struct lm_repl_member members[LM_REPL_MAX_MEMBERS];
    int n_members;
    struct lm_repl_member *self; /* in members, after lm_cluster_args_finish */
};
extern const char lm_cluster_usage[]; /* the options' usage lines */
/* argv[*i] is a cluster option: takes it (and its value: *i advances) and returns 1;
 * returns 0 for another option, -1 for a missing or bad value. */
int lm_cluster_arg(struct lm_cluster_args *a, int argc, char **argv, int *i);
/* Checks the options and resolves the members and this node's client port. Returns 0,
 * or 2 after printing what is wrong (prefixed by prog). */
int lm_cluster_args_finish(struct lm_cluster_args *a, const char *prog);

/* `lumadb node DIR --node-id N --peers ID=HOST:PORT[/CLIENT],... [options]`: runs one
 * node until SIGTERM/SIGINT (exit 0) or a failure (exit 1). argv[0] is the first
 * argument after "node". */
int lm_cmd_node(int argc, char **argv);

/* `lumadb cluster status|add|remove ... --nodes HOST:PORT,...`: asks the nodes' client
 * ports. argv[0] is the first argument after "cluster". */
int lm_cmd_cluster(int argc, char **argv);

#endif
