/* cmd_query.c - `lumadb query [DIR] "LQL..." [--format table|csv|json]`: runs one
 * statement or a script (statements separated by ';'), from the argument or from stdin
 * with "-", and exits with a code scripts can test. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int usage(FILE *to)
{
    fprintf(to,
            "usage: lumadb query [DIR] \"LQL...\" [--format table|csv|json] [--timer]\n"
            "       lumadb query [DIR] - [--format ...]      (statements from stdin)\n"
            "\n"
            "Runs LQL statements (separated by ';') against the database in DIR\n"
            "(default " LM_CLI_DEFAULT_DIR ") and prints their results. Errors print\n"
            "'line:col: message', the line and a caret, and stop the script.\n"
            "\n"
            "exit codes: 0 every statement ran, 1 a statement failed, 2 bad usage,\n"
            "            3 the database could not be opened\n"
            "\n"
            "example: lumadb query \"SELECT count(*) FROM terrain WHERE WITHIN 5 OF (0, 0, 0)\"\n");
    return to == stderr ? 2 : 0;
}

/* All of stdin, NUL-terminated; NULL when out of memory or unreadable. */
static char *read_all(FILE *in, size_t *len)
{
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n - 1, in);
        if (ferror(in)) {
            free(buf);
            return NULL;
        }
        if (feof(in))
            break;
        if (cap - n < 2) {
            char *p = realloc(buf, cap *= 2);
            if (!p)
                free(buf);
            buf = p;
        }
    }
    if (buf) {
        buf[n] = '\0';
        *len = n;
    }
    return buf;
}

int lm_cmd_query(int argc, char **argv)
{
    static const char *const opts[] = {"--format", NULL};
    static const char *const flags[] = {"--help", "-h", "--timer", NULL};
    const char *pos[2];
    int np, rc = lm_cli_args(argc, argv, "lumadb query", opts, flags, usage, pos, 1, 2, &np);
    if (rc >= 0)
        return rc;
    const char *dir = np == 2 ? pos[0] : LM_CLI_DEFAULT_DIR, *src = pos[np - 1];
    struct lm_cli_run run = {.out = stdout, .err = stderr, .cmd = "lumadb query",
                             .timer = lm_cli_flag(argc, argv, "--timer")};
    const char *fmt = lm_cli_option(argc, argv, "--format");
    if (fmt && lm_fmt_mode_parse(fmt, &run.mode)) {
        fprintf(stderr, "lumadb query: --format must be table, csv or json, not '%s'\n", fmt);
        return 2;
    }
    size_t len = 0;
    char *text = NULL;
    if (!strcmp(src, "-")) {
        if (!(text = read_all(stdin, &len))) {
            fprintf(stderr, "lumadb query: cannot read the statements from stdin\n");
            return 1;
        }
    } else {
        text = strdup(src);
        len = text ? strlen(text) : 0;
    }
    if (!text)
        return 1;
    rc = lm_cli_open("lumadb query", dir, false, &run.db);
    if (rc) {
        free(text);
        return rc;
    }
    rc = lm_cli_run_script(&run, text, len);
    lm_db_close(run.db);
    free(text);
    return rc ? 1 : 0;
}
