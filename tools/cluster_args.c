/* cluster_args.c - the cluster options that `lumadb node` and `lumadb serve` share
 * (see cluster.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"

const char lm_cluster_usage[] =
    "  --node-id N             this node's id (> 0)\n"
    "  --peers LIST            the voters, this node included: ID=HOST:PORT[/CLIENT],...\n"
    "                          HOST:PORT is the Raft address, CLIENT the client port\n"
    "                          (HOST:PORT or a bare port)\n"
    "  --client-port P|ADDR    this node's client port (default: from --peers)\n"
    "  --join                  do not bootstrap: wait to be added (cluster add)\n"
    "  --election-ms N         election timeout (default 200)\n"
    "  --heartbeat-ms N        heartbeat interval (default 20)\n"
    "  --snapshot-threshold N  entries between snapshots (default 1024)\n"
    "  --snapshot-trailing N   entries kept behind a snapshot (default 128)\n";

static bool number(const char *s, unsigned *out)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (!*s || *end || v > 1000000000ul)
        return false;
    *out = (unsigned)v;
    return true;
}

int lm_cluster_arg(struct lm_cluster_args *a, int argc, char **argv, int *i)
{
    const char *o = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    unsigned *num = !strcmp(o, "--node-id")              ? &a->id
                  : !strcmp(o, "--election-ms")          ? &a->repl.election_ms
                  : !strcmp(o, "--heartbeat-ms")         ? &a->repl.heartbeat_ms
                  : !strcmp(o, "--snapshot-threshold")   ? &a->repl.snapshot_threshold
                  : !strcmp(o, "--snapshot-trailing")    ? &a->repl.snapshot_trailing
                  : NULL;
    if (!strcmp(o, "--join")) {
        a->repl.join = true;
        return 1;
    }
    if (!num && strcmp(o, "--peers") && strcmp(o, "--client-port"))
        return 0;
    if (!v || (num && !number(v, num)))
        return -1;
    ++*i;
    if (num)
        return 1;
    if (!strcmp(o, "--peers"))
        a->peers = v;
    else
        a->client = v;
    return 1;
}

int lm_cluster_args_finish(struct lm_cluster_args *a, const char *prog)
{
    struct lm_error err = {0};
    if (!a->id || !a->peers)
        return fprintf(stderr, "%s: a cluster node needs --node-id and --peers\n", prog), 2;
    a->n_members = lm_repl_parse_members(a->peers, a->members, LM_REPL_MAX_MEMBERS, &err);
    if (a->n_members < 0)
        return fprintf(stderr, "%s: --peers: %s\n", prog, err.message), 2;
    a->self = NULL;
    for (int i = 0; i < a->n_members; i++)
        if (a->members[i].id == a->id)
            a->self = &a->members[i];
    if (!a->self)
        return fprintf(stderr, "%s: node %u is not in --peers\n", prog, a->id), 2;
    if (a->client) {
        struct lm_repl_member m;
        char spec[256];
        snprintf(spec, sizeof spec, "%u=%s/%s", a->id, a->self->address, a->client);
        if (lm_repl_parse_members(spec, &m, 1, &err) < 0)
            return fprintf(stderr, "%s: --client-port: %s\n", prog, err.message), 2;
        *a->self = m;
    }
    if (!a->self->client[0])
        return fprintf(stderr, "%s: no client port: give --client-port or "
                       "ID=HOST:PORT/CLIENT in --peers\n", prog), 2;
    a->repl.id = a->id;
    a->repl.members = a->members;
    a->repl.n_members = (size_t)a->n_members;
    return 0;
}
