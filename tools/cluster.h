/* cluster.h - the cluster subcommands of `lumadb`.
 * Owns: nothing (each command owns what it opens until it returns).
 * Threading: each runs on the calling thread (a node runs its own libuv loop).
 * Called by: tools/lumadb.c; tests start `lumadb node` as a process. */
#ifndef LM_TOOLS_CLUSTER_H
#define LM_TOOLS_CLUSTER_H

/* `lumadb node DIR --node-id N --peers ID=HOST:PORT[/CLIENT],... [options]`: runs one
 * node until SIGTERM/SIGINT (exit 0) or a failure (exit 1). argv[0] is the first
 * argument after "node". */
int lm_cmd_node(int argc, char **argv);

/* `lumadb cluster status|add|remove ... --nodes HOST:PORT,...`: asks the nodes' client
 * ports. argv[0] is the first argument after "cluster". */
int lm_cmd_cluster(int argc, char **argv);

#endif
