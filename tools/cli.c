/* cli.c - what the lumadb subcommands share: opening a database, running scripts,
 * printing errors with a caret, argument helpers. */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exec.h"
#include "lql.h"

double lm_cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int lm_cli_open(const char *cmd, const char *dir, bool create, lm_db **out)
{
    struct lm_error err = {0};
    struct lm_db_opts o = {.create = create};
    int rc = lm_db_open(dir, &o, out, &err);
    if (rc == LM_ELOCKED) {
        o.read_only = true;
        if (!(rc = lm_db_open(dir, &o, out, &err))) {
            fprintf(stderr, "%s: note: %s is in use by another process; opened its last "
                            "checkpoint read-only\n", cmd, dir);
            return 0;
        }
    }
    if (rc == -ENOENT && !create) {
        fprintf(stderr, "%s: no database at %s (create one with 'lumadb demo %s', "
                        "'lumadb shell %s' or 'lumadb import %s FIELD FILE')\n",
                cmd, dir, dir, dir, dir);
        return 3;
    }
    if (rc) {
        fprintf(stderr, "%s: cannot open %s: %s\n", cmd, dir,
                err.message[0] ? err.message : lm_strerror(rc));
        return 3;
    }
    return 0;
}

void lm_cli_error(FILE *to, const char *cmd, const char *text, const struct lm_error *err,
                  int rc)
{
    struct lm_error e = *err;
    if (!e.message[0])
        snprintf(e.message, sizeof e.message, "%s", lm_strerror(rc));
    char buf[2048];
    lm_lql_format_error(text, &e, buf, sizeof buf);
    fprintf(to, "%s: %s\n", cmd, buf);
}

int lm_cli_run_script(const struct lm_cli_run *run, const char *text, size_t len)
{
    struct lm_lql_cursor cur = {0};
    struct lm_exec_opts opts = {.cancel = run->cancel};
    for (;;) {
        struct lm_lql_stmt *s = NULL;
        struct lm_error err = {0};
        int rc = lm_lql_parse_next(text, len, &cur, &s, &err);
        if (rc) {
            lm_cli_error(run->err, run->cmd, text, &err, rc);
            return rc;
        }
        if (!s)
            return 0;
        struct lm_exec_result *res = NULL;
        double t0 = lm_cli_now();
        rc = lm_exec(run->db, s, &opts, &res, &err);
        double dt = lm_cli_now() - t0;
        lm_lql_free(s);
        if (rc) {
            if (rc == LM_ECANCELED)
                fprintf(run->err, "%s: canceled\n", run->cmd);
            else
                lm_cli_error(run->err, run->cmd, text, &err, rc);
            return rc;
        }
        lm_fmt_result(run->out, run->err, res, run->mode);
        lm_exec_result_free(res);
        if (run->timer)
            fprintf(run->mode == LM_FMT_TABLE ? run->out : run->err, "Time: %.3f ms\n",
                    dt * 1e3);
        fflush(run->out);
    }
}

/* "-x" or "--name", not "-" (stdin) nor text with spaces (a query such as "-- c\n..."). */
static bool is_option(const char *a)
{
    return a[0] == '-' && a[1] && !strpbrk(a, " \t\n");
}

static bool in_list(const char *a, const char *const *list)
{
    for (; list && *list; list++) {
        size_t n = strlen(*list);
        if (!strcmp(a, *list) || (!strncmp(a, *list, n) && a[n] == '='))
            return true;
    }
    return false;
}

int lm_cli_positionals(int argc, char **argv, const char *const *takes_value,
                       const char **pos, int max)
{
    int n = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (is_option(a)) {
            if (in_list(a, takes_value) && !strchr(a, '='))
                i++;
            continue;
        }
        if (n == max)
            return -1;
        pos[n++] = a;
    }
    return n;
}

const char *lm_cli_option(int argc, char **argv, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], name))
            return i + 1 < argc ? argv[i + 1] : "";
        if (!strncmp(argv[i], name, n) && argv[i][n] == '=')
            return argv[i] + n + 1;
    }
    return NULL;
}

bool lm_cli_flag(int argc, char **argv, const char *name)
{
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], name))
            return true;
    return false;
}

const char *lm_cli_unknown_option(int argc, char **argv, const char *const *known,
                                  const char *const *flags)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!is_option(a))
            continue;
        if (in_list(a, known)) {
            if (!strchr(a, '='))
                i++;
            continue;
        }
        if (!in_list(a, flags))
            return a;
    }
    return NULL;
}

int lm_cli_args(int argc, char **argv, const char *cmd, const char *const *opts,
                const char *const *flags, int (*usage)(FILE *), const char **pos, int min,
                int max, int *np)
{
    if (lm_cli_flag(argc, argv, "--help") || lm_cli_flag(argc, argv, "-h"))
        return usage(stdout);
    const char *bad = lm_cli_unknown_option(argc, argv, opts, flags);
    if (bad) {
        fprintf(stderr, "%s: unknown option '%s'\n", cmd, bad);
        return usage(stderr);
    }
    *np = lm_cli_positionals(argc, argv, opts, pos, max);
    if (*np < min)
        return usage(stderr);
    return -1;
}
