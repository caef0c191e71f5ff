/* cmd_cluster.c - `lumadb cluster status|add|remove`: asks the nodes' client ports
 * (repl_client.h) and prints what they say. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "cluster.h"
#include "repl_client.h"

static int usage(void)
{
    fprintf(stderr,
            "usage: lumadb cluster status --nodes HOST:PORT,...\n"
            "       lumadb cluster add ID RAFT-HOST:PORT/CLIENT-PORT --nodes HOST:PORT,...\n"
            "       lumadb cluster remove ID --nodes HOST:PORT,...\n"
            "--nodes lists client ports; status also asks every member they know of.\n");
    return 2;
}

/* Splits "a,b,c" into list[cap]; returns the count. */
static size_t split(char *s, const char **list, size_t cap)
{
    size_t n = 0;
    for (char *tok = strtok(s, ","); tok && n < cap; tok = strtok(NULL, ","))
        list[n++] = tok;
    return n;
}

static void add_unique(char addrs[][LM_REPL_ADDR_MAX], size_t *n, const char *a)
{
    for (size_t i = 0; i < *n; i++)
        if (!strcmp(addrs[i], a))
            return;
    if (*n < LM_REPL_MAX_MEMBERS && strlen(a) < LM_REPL_ADDR_MAX)
        snprintf(addrs[(*n)++], LM_REPL_ADDR_MAX, "%s", a);
}

static const char *word(const char *text, const char *key, char *out, size_t cap)
{
    size_t k = strlen(key);
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (!strncmp(l, key, k) && l[k] == ' ') {
            size_t n = strcspn(l + k + 1, " \n");
            snprintf(out, cap, "%.*s", (int)n, l + k + 1);
            return out;
        }
    snprintf(out, cap, "-");
    return out;
}

static int status(const char **nodes, size_t n_nodes)
{
    /* the members the given nodes know of, then every one of them */
    char addrs[LM_REPL_MAX_MEMBERS][LM_REPL_ADDR_MAX];
    size_t n = 0;
    for (size_t i = 0; i < n_nodes; i++)
        add_unique(addrs, &n, nodes[i]);
    const char *list[LM_REPL_MAX_MEMBERS];
    for (size_t i = 0; i < n; i++)
        list[i] = addrs[i];
    struct lm_repl_client_opts o = {.nodes = list, .n_nodes = n, .try_ms = 1000};
    lm_repl_client *c;
    struct lm_error err = {0};
    if (lm_repl_client_open(&o, &c, &err))
        return fprintf(stderr, "lumadb cluster: %s\n", err.message), 1;
    char *texts[LM_REPL_MAX_MEMBERS] = {0};
    for (size_t i = 0; i < n; i++) {
        if (lm_repl_client_status(c, i, &texts[i], NULL))
            continue;
        for (const char *l = strstr(texts[i], "member "); l; l = strstr(l + 1, "\nmember ")) {
            char client[LM_REPL_ADDR_MAX];
            unsigned long long id;
            char voting[16], raft[LM_REPL_ADDR_MAX];
            if (sscanf(l + (l[0] == '\n'), "member %llu %15s %63s %63s", &id, voting, raft,
                       client) == 4 && strcmp(client, "-") && n < LM_REPL_MAX_MEMBERS) {
                size_t before = n;
                add_unique(addrs, &n, client);
                if (n > before) { /* ask it too: a new client with the longer list */
                    list[before] = addrs[before];
                    lm_repl_client_close(c);
                    o.n_nodes = n;
                    if (lm_repl_client_open(&o, &c, &err))
                        return fprintf(stderr, "lumadb cluster: %s\n", err.message), 1;
                }
            }
        }
    }
    printf("| node | client | role | term | leader | last | commit | applied | db | "
           "snapshot | backlog |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < n; i++) {
        char id[32], role[32], term[32], leader[32], last[32], commit[32], applied[32],
            dbi[32], snap[32], backlog[32];
        if (!texts[i] && lm_repl_client_status(c, i, &texts[i], &err)) {
            printf("| ? | %s | down | | | | | | | | |\n", addrs[i]);
            continue;
        }
        const char *t = texts[i];
        printf("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
               word(t, "id", id, sizeof id), addrs[i], word(t, "role", role, sizeof role),
               word(t, "term", term, sizeof term), word(t, "leader", leader, sizeof leader),
               word(t, "last_index", last, sizeof last),
               word(t, "commit_index", commit, sizeof commit),
               word(t, "applied_index", applied, sizeof applied),
               word(t, "db_index", dbi, sizeof dbi),
               word(t, "snapshot_index", snap, sizeof snap),
               word(t, "backlog", backlog, sizeof backlog));
        if (lm_repl_client_status_value(t, "failed"))
            printf("  node %s failed: %s", id, strstr(t, "failure ") ? strstr(t, "failure ") + 8 : "?\n");
    }
    for (size_t i = 0; i < n; i++)
        lm_free(texts[i]);
    lm_repl_client_close(c);
    return 0;
}

int lm_cmd_cluster(int argc, char **argv)
{
    if (argc < 1)
        return usage();
    const char *cmd = argv[0], *nodes_arg = NULL, *pos[2] = {NULL, NULL};
    size_t n_pos = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--nodes") && i + 1 < argc)
            nodes_arg = argv[++i];
        else if (argv[i][0] != '-' && n_pos < 2)
            pos[n_pos++] = argv[i];
        else
            return usage();
    }
    if (!nodes_arg)
        return usage();
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", nodes_arg);
    const char *nodes[LM_REPL_MAX_MEMBERS];
    size_t n_nodes = split(buf, nodes, LM_REPL_MAX_MEMBERS);
    if (!n_nodes)
        return usage();
    if (!strcmp(cmd, "status") && n_pos == 0)
        return status(nodes, n_nodes);
    struct lm_error err = {0};
    struct lm_repl_member m = {0};
    if (!strcmp(cmd, "add") && n_pos == 2) {
        char spec[256];
        snprintf(spec, sizeof spec, "%s=%s", pos[0], pos[1]);
        if (lm_repl_parse_members(spec, &m, 1, &err) < 0)
            return fprintf(stderr, "lumadb cluster add: %s\n", err.message), 2;
    } else if (!strcmp(cmd, "remove") && n_pos == 1) {
        m.id = strtoull(pos[0], NULL, 10);
        if (!m.id)
            return usage();
    } else {
        return usage();
    }
    struct lm_repl_client_opts o = {.nodes = nodes, .n_nodes = n_nodes,
                                    .deadline_ms = 60000};
    lm_repl_client *c;
    if (lm_repl_client_open(&o, &c, &err))
        return fprintf(stderr, "lumadb cluster: %s\n", err.message), 1;
    int rc = !strcmp(cmd, "add") ? lm_repl_client_add(c, &m, &err)
                                 : lm_repl_client_remove(c, m.id, &err);
    lm_repl_client_close(c);
    if (rc)
        return fprintf(stderr, "lumadb cluster %s: %s\n", cmd, err.message), 1;
    printf("%s node %llu: done\n", !strcmp(cmd, "add") ? "added" : "removed",
           (unsigned long long)m.id);
    return 0;
}
