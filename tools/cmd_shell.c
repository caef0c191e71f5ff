/* cmd_shell.c - `lumadb shell [DIR]`: interactive LQL with line editing, history
 * (~/.lumadb_history), completion of keywords, fields and columns (libedit), statements
 * over several lines up to ';', dot commands, and Ctrl-C that drops the statement being
 * typed or cancels the one running. Ctrl-D leaves. Without a terminal on stdin it reads
 * statements without prompts (scripts). */
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <editline/readline.h>

#include "cli.h"
#include "exec.h"
#include "lql.h"

static int usage(FILE *to)
{
    fprintf(to,
            "usage: lumadb shell [DIR]\n"
            "\n"
            "Interactive LQL on the database in DIR (default " LM_CLI_DEFAULT_DIR
            ", created when\n"
            "missing). Statements end with ';' and may span lines. Tab completes keywords,\n"
            "field and column names; history is kept in ~/.lumadb_history. Ctrl-C drops the\n"
            "statement being typed or cancels the one running; Ctrl-D leaves. '.help' lists\n"
            "the dot commands.\n");
    return to == stderr ? 2 : 0;
}

static const char HELP[] =
    ".help                 this text\n"
    ".mode table|csv|json  how results are printed (now: %s)\n"
    ".timer on|off         print the time each statement takes (now: %s)\n"
    ".fields               the fields of the database (SHOW FIELDS)\n"
    ".quit, .exit          leave (Ctrl-D too)\n"
    "Anything else is LQL, ending with ';': see docs/LQL.md. For example\n"
    "  SELECT count(*) FROM terrain WHERE WITHIN 5 OF (0, 0, 0);\n"
    "  EXPLAIN SELECT * FROM terrain NEAREST 3 TO (10, -5, 7);\n";

static volatile sig_atomic_t interrupted; /* Ctrl-C since the last look */
static volatile sig_atomic_t cancel;      /* the running statement stops */

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
    cancel = 1;
}

/* Reads a key for libedit; an interrupted read ends the line (the caller then sees
 * `interrupted` and drops it). */
static int getc_interruptible(FILE *in)
{
    unsigned char c;
    for (;;) {
        if (interrupted) /* Ctrl-C came before the read began */
            return EOF;
        ssize_t n = read(fileno(in), &c, 1);
        if (n == 1)
            return c;
        if (n < 0 && errno == EINTR && !interrupted)
            continue;
        return EOF;
    }
}

/* ---------------------------------------------------------------- completion */

static lm_db *shell_db;
static char *typed;              /* the lines of the statement so far */

struct candidates {
    const char **v;
    size_t n, cap;
    size_t first_keyword; /* v[first_keyword..n) are keywords */
};

static struct candidates cands;
static size_t cand_next;
static bool cand_lower;
static struct lm_field_info *fields;
static size_t n_fields;

static void cand_add(const char *s)
{
    if (cands.n == cands.cap) {
        size_t cap = cands.cap ? cands.cap * 2 : 256;
        const char **v = realloc(cands.v, cap * sizeof *v);
        if (!v)
            return;
        cands.v = v;
        cands.cap = cap;
    }
    cands.v[cands.n++] = s;
}

/* The word before position `end` of s (upper-cased into w), skipping the current one. */
static void previous_word(const char *s, size_t end, char *w, size_t cap)
{
    size_t i = end;
    while (i > 0 && (isalnum((unsigned char)s[i - 1]) || s[i - 1] == '_'))
        i--; /* the word being completed */
    while (i > 0 && !(isalnum((unsigned char)s[i - 1]) || s[i - 1] == '_'))
        i--;
    size_t j = i;
    while (j > 0 && (isalnum((unsigned char)s[j - 1]) || s[j - 1] == '_'))
        j--;
    size_t n = i - j < cap - 1 ? i - j : cap - 1;
    for (size_t k = 0; k < n; k++)
        w[k] = (char)toupper((unsigned char)s[j + k]);
    w[n] = '\0';
}

/* The field the statement names (after FROM, INTO, UPDATE, ...), or NULL. */
static const struct lm_field_info *named_field(const char *s)
{
    static const char *const before[] = {"FROM", "INTO", "UPDATE", "DESCRIBE", "RAYCAST",
                                         "RADIANCE", "FIELD"};
    const char *p = s;
    while (*p) {
        while (*p && !isalpha((unsigned char)*p))
            p++;
        const char *w = p;
        while (isalnum((unsigned char)*p) || *p == '_')
            p++;
        for (size_t k = 0; k < sizeof before / sizeof before[0]; k++) {
            size_t n = strlen(before[k]);
            if ((size_t)(p - w) != n || strncasecmp(w, before[k], n))
                continue;
            const char *q = p;
            while (*q == ' ' || *q == '\t' || *q == '\n')
                q++;
            for (size_t f = 0; f < n_fields; f++) {
                size_t fl = strlen(fields[f].name);
                if (!strncmp(q, fields[f].name, fl) && !isalnum((unsigned char)q[fl]) &&
                    q[fl] != '_')
                    return &fields[f];
            }
        }
    }
    return NULL;
}

static void gather(const char *context)
{
    cands.n = 0;
    cands.first_keyword = SIZE_MAX;
    free(fields);
    fields = NULL;
    n_fields = 0;
    if (lm_field_list(shell_db, NULL, 0, &n_fields) == 0 && n_fields &&
        (fields = calloc(n_fields, sizeof *fields)))
        lm_field_list(shell_db, fields, n_fields, &n_fields);
    else
        n_fields = 0;
    size_t len = strlen(context);
    const char *t = context;
    while (*t == ' ' || *t == '\t')
        t++;
    if (*t == '.' && !typed) { /* dot commands */
        static const char *const dots[] = {".help", ".mode", ".timer", ".fields", ".quit",
                                           ".exit", "table", "csv", "json", "on", "off"};
        for (size_t i = 0; i < sizeof dots / sizeof dots[0]; i++)
            cand_add(dots[i]);
        return;
    }
    char prev[32];
    previous_word(context, len, prev, sizeof prev);
    bool want_field = !strcmp(prev, "FROM") || !strcmp(prev, "INTO") ||
                      !strcmp(prev, "UPDATE") || !strcmp(prev, "DESCRIBE") ||
                      !strcmp(prev, "RAYCAST") || !strcmp(prev, "RADIANCE") ||
                      (!strcmp(prev, "FIELD") && strncasecmp(t, "CREATE", 6));
    for (size_t f = 0; f < n_fields; f++)
        cand_add(fields[f].name);
    if (want_field)
        return;
    const struct lm_field_info *fi = named_field(context);
    for (size_t f = 0; f < n_fields; f++) {
        if (fi && &fields[f] != fi)
            continue;
        for (int c = 0; c < LM_COL_USER + (int)fields[f].opts.n_user_columns; c++)
            cand_add(lm_column_name(c, &fields[f].opts));
    }
    size_t nk;
    const char *const *kw = lm_lql_keywords(&nk);
    cands.first_keyword = cands.n;
    for (size_t k = 0; k < nk; k++)
        cand_add(kw[k]);
}

static char *generate(const char *text, int state)
{
    if (!state)
        cand_next = 0;
    size_t n = strlen(text);
    while (cand_next < cands.n) {
        const char *c = cands.v[cand_next++];
        if (strncasecmp(c, text, n))
            continue;
        char *out = strdup(c);
        /* keywords follow the case of what was typed, names keep theirs */
        if (out && cand_lower && cand_next > cands.first_keyword)
            for (char *p = out; *p; p++)
                *p = (char)tolower((unsigned char)*p);
        /* a name met twice (a column of two fields) once */
        bool seen = false;
        for (size_t k = 0; k + 1 < cand_next && !seen; k++)
            seen = !strcmp(cands.v[k], c);
        if (seen) {
            free(out);
            continue;
        }
        return out;
    }
    return NULL;
}

static char **complete(const char *text, int start, int end)
{
    (void)end;
    size_t tl = typed ? strlen(typed) : 0;
    size_t n = tl + (size_t)start + 2;
    char *context = malloc(n);
    if (!context)
        return NULL;
    snprintf(context, n, "%s%s%.*s", typed ? typed : "", typed ? "\n" : "", start,
             rl_line_buffer);
    gather(context);
    free(context);
    cand_lower = text[0] && islower((unsigned char)text[0]);
    return rl_completion_matches(text, generate);
}

/* ---------------------------------------------------------------- the loop */

struct shell {
    struct lm_cli_run run;
    const char *history;
    bool tty;
};

static bool dot_command(struct shell *sh, const char *line)
{
    char cmd[32] = "", arg[32] = "";
    sscanf(line, " %31s %31s", cmd, arg);
    if (!strcmp(cmd, ".quit") || !strcmp(cmd, ".exit"))
        return false;
    if (!strcmp(cmd, ".help")) {
        printf(HELP, lm_fmt_mode_name(sh->run.mode), sh->run.timer ? "on" : "off");
    } else if (!strcmp(cmd, ".mode")) {
        if (lm_fmt_mode_parse(arg, &sh->run.mode))
            fprintf(stderr, ".mode table, .mode csv or .mode json (now %s)\n",
                    lm_fmt_mode_name(sh->run.mode));
    } else if (!strcmp(cmd, ".timer")) {
        if (!strcasecmp(arg, "on") || !strcasecmp(arg, "off"))
            sh->run.timer = !strcasecmp(arg, "on");
        else
            fprintf(stderr, ".timer on or .timer off (now %s)\n", sh->run.timer ? "on" : "off");
    } else if (!strcmp(cmd, ".fields")) {
        lm_cli_run_script(&sh->run, "SHOW FIELDS", 11);
    } else {
        fprintf(stderr, "unknown command '%s' (try .help)\n", cmd);
    }
    return true;
}

static void remember(const struct shell *sh, const char *entry)
{
    if (!sh->tty)
        return;
    add_history(entry);
    if (sh->history)
        write_history(sh->history);
}

/* Appends line to the statement being typed. */
static bool append(char **buf, size_t *len, const char *line)
{
    size_t n = strlen(line);
    char *p = realloc(*buf, *len + n + 2);
    if (!p)
        return false;
    if (*len)
        p[(*len)++] = '\n';
    memcpy(p + *len, line, n + 1);
    *len += n;
    *buf = p;
    return true;
}

/* One line, with a prompt on a terminal; NULL at the end of input. */
static char *read_line(const struct shell *sh, bool more)
{
    if (sh->tty)
        return readline(more ? "   ...> " : "lumadb> ");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, stdin);
    if (n < 0) {
        free(line);
        return NULL;
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    return line;
}

int lm_cmd_shell(int argc, char **argv)
{
    static const char *const flags[] = {"--help", "-h", NULL};
    const char *pos[1];
    int np, rc = lm_cli_args(argc, argv, "lumadb shell", NULL, flags, usage, pos, 0, 1, &np);
    if (rc >= 0)
        return rc;
    const char *dir = np == 1 ? pos[0] : LM_CLI_DEFAULT_DIR;
    struct shell sh = {.run = {.out = stdout, .err = stderr, .cmd = "error", .cancel = &cancel},
                       .tty = isatty(0)};
    rc = lm_cli_open("lumadb shell", dir, true, &sh.run.db);
    if (rc)
        return rc;
    shell_db = sh.run.db;
    struct sigaction sa = {.sa_handler = on_sigint}; /* no SA_RESTART: reads return EINTR */
    sigemptyset(&sa.sa_mask);
    struct sigaction old;
    sigaction(SIGINT, &sa, &old);
    char history[4096];
    if (sh.tty) {
        const char *home = getenv("HOME");
        if (home && snprintf(history, sizeof history, "%s/.lumadb_history", home) <
                        (int)sizeof history)
            sh.history = history;
        rl_readline_name = "lumadb";
        rl_catch_signals = 0;
        rl_getc_function = getc_interruptible;
        rl_attempted_completion_function = complete;
        rl_basic_word_break_characters = " \t\n(),;=<>*-+\"";
        using_history();
        stifle_history(2000);
        if (sh.history)
            read_history(sh.history);
        printf("LumaDB shell on %s: statements end with ';', .help for help, Ctrl-D to "
               "leave\n", dir);
    }
    char *buf = NULL;
    size_t len = 0;
    int status = 0;
    for (;;) {
        interrupted = 0;
        typed = buf;
        char *line = read_line(&sh, len > 0);
        if (interrupted) { /* Ctrl-C: drop what was typed */
            free(line);
            free(buf);
            buf = NULL;
            len = 0;
            if (sh.tty)
                printf("^C\n");
            continue;
        }
        if (!line) {
            if (sh.tty)
                printf("\n");
            if (len && !sh.tty) { /* a last statement without ';' */
                status = lm_cli_run_script(&sh.run, buf, len) ? 1 : status;
            }
            break;
        }
        if (!len && line[strspn(line, " \t")] == '.') {
            remember(&sh, line);
            bool go_on = dot_command(&sh, line);
            free(line);
            if (!go_on)
                break;
            continue;
        }
        if (!len && !line[strspn(line, " \t")]) {
            free(line);
            continue;
        }
        bool ok = append(&buf, &len, line);
        free(line);
        if (!ok) {
            fprintf(stderr, "out of memory\n");
            status = 1;
            break;
        }
        if (!lm_lql_complete(buf, len))
            continue;
        /* one history entry per statement, its lines joined */
        char *entry = strdup(buf);
        for (char *p = entry; p && *p; p++)
            if (*p == '\n')
                *p = ' ';
        if (entry)
            remember(&sh, entry);
        free(entry);
        cancel = 0;
        rc = lm_cli_run_script(&sh.run, buf, len);
        if (rc && !sh.tty)
            status = 1;
        cancel = 0;
        free(buf);
        buf = NULL;
        len = 0;
    }
    free(buf);
    free(fields);
    free(cands.v);
    sigaction(SIGINT, &old, NULL);
    lm_db_close(sh.run.db);
    return status;
}
