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

#include <histedit.h>
#include <limits.h>
#include <locale.h>
#include <wchar.h>

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

/* Reads a key for libedit (UTF-8 decoded); a Ctrl-C, during the read or before it, ends
 * the line with an error: the caller then sees `interrupted` and drops the line. */
static int read_key(EditLine *el, wchar_t *out)
{
    (void)el;
    mbstate_t st = {0};
    char buf[MB_LEN_MAX];
    size_t n = 0;
    for (;;) {
        if (interrupted)
            return -1;
        ssize_t got = read(0, &buf[n], 1);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return got == 0 ? 0 : -1;
        n++;
        wchar_t wc;
        size_t r = mbrtowc(&wc, buf, n, &st);
        if (r == (size_t)-2 && n < sizeof buf)
            continue; /* more bytes of one character */
        *out = r == (size_t)-1 || r == (size_t)-2 ? (wchar_t)(unsigned char)buf[0] : wc;
        return 1;
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

/* Tab: completes the word before the cursor to the one candidate (and a space), or to
 * the longest prefix the candidates share, or lists them. */
static unsigned char complete(EditLine *el, int ch)
{
    (void)ch;
    const LineInfo *li = el_line(el);
    const char *start = li->cursor;
    while (start > li->buffer &&
           (isalnum((unsigned char)start[-1]) || start[-1] == '_' || start[-1] == '.'))
        start--;
    char text[LM_NAME_MAX + 1];
    size_t len = (size_t)(li->cursor - start);
    if (len >= sizeof text)
        return CC_ERROR;
    memcpy(text, start, len);
    text[len] = '\0';
    size_t tl = typed ? strlen(typed) : 0, before = (size_t)(start - li->buffer);
    char *context = malloc(tl + before + 2);
    if (!context)
        return CC_ERROR;
    snprintf(context, tl + before + 2, "%s%s%.*s", typed ? typed : "", typed ? "\n" : "",
             (int)before, li->buffer);
    gather(context);
    free(context);
    cand_lower = text[0] && islower((unsigned char)text[0]);
    char *match[512];
    size_t n = 0;
    for (char *m; n < 512 && (m = generate(text, (int)n)); n++)
        match[n] = m;
    unsigned char rc = CC_REFRESH;
    size_t common = 0;
    if (n) { /* the longest prefix the candidates share */
        common = strlen(match[0]);
        for (size_t i = 1; i < n; i++) {
            size_t k = 0;
            while (k < common && match[i][k] &&
                   tolower((unsigned char)match[i][k]) == tolower((unsigned char)match[0][k]))
                k++;
            common = k;
        }
    }
    if (!n) {
        rc = CC_ERROR; /* nothing fits: a bell */
    } else if (n == 1) {
        el_insertstr(el, match[0] + len);
        el_insertstr(el, " ");
    } else if (common > len) {
        match[0][common] = '\0';
        el_insertstr(el, match[0] + len);
    } else { /* list them, then the line again */
        size_t w = 0;
        for (size_t i = 0; i < n; i++)
            w = strlen(match[i]) > w ? strlen(match[i]) : w;
        size_t per_line = 78 / (w + 2) ? 78 / (w + 2) : 1;
        fputc('\n', stdout);
        for (size_t i = 0; i < n; i++)
            printf("%-*s%s", (int)w + 2, match[i], (i + 1) % per_line && i + 1 < n ? "" : "\n");
        fflush(stdout);
        rc = CC_REDISPLAY;
    }
    for (size_t i = 0; i < n; i++)
        free(match[i]);
    return rc;
}

/* ---------------------------------------------------------------- the loop */

struct shell {
    struct lm_cli_run run;
    const char *history;     /* ~/.lumadb_history */
    bool tty;
    EditLine *el;            /* terminal only */
    History *hist;
};

static const char *prompt_text;

static char *prompt(EditLine *el)
{
    (void)el;
    return (char *)prompt_text;
}

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
    HistEvent ev;
    history(sh->hist, &ev, H_ENTER, entry);
    if (sh->history)
        history(sh->hist, &ev, H_SAVE, sh->history);
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
    if (sh->tty) {
        int n = 0;
        prompt_text = more ? "   ...> " : "lumadb> ";
        const char *line = el_gets(sh->el, &n);
        if (!line || n <= 0)
            return NULL;
        char *copy = strdup(line);
        size_t len = copy ? strlen(copy) : 0;
        while (len && (copy[len - 1] == '\n' || copy[len - 1] == '\r'))
            copy[--len] = '\0';
        return copy;
    }
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
    char history_path[4096];
    if (sh.tty) {
        const char *home = getenv("HOME");
        if (home && snprintf(history_path, sizeof history_path, "%s/.lumadb_history", home) <
                        (int)sizeof history_path)
            sh.history = history_path;
        setlocale(LC_CTYPE, ""); /* UTF-8 keys; numbers keep the C locale */
        HistEvent ev;
        sh.el = el_init("lumadb", stdin, stdout, stderr);
        sh.hist = history_init();
        if (!sh.el || !sh.hist) {
            fprintf(stderr, "lumadb shell: cannot set up line editing\n");
            lm_db_close(sh.run.db);
            return 1;
        }
        history(sh.hist, &ev, H_SETSIZE, 2000);
        if (sh.history)
            history(sh.hist, &ev, H_LOAD, sh.history);
        el_set(sh.el, EL_EDITOR, "emacs");
        el_set(sh.el, EL_SIGNAL, 0);           /* Ctrl-C is ours (on_sigint) */
        el_set(sh.el, EL_PROMPT, prompt);
        el_set(sh.el, EL_HIST, history, sh.hist);
        el_set(sh.el, EL_GETCFN, read_key);
        /* wide strings: libedit keeps these pointers (the narrow call copies them and
         * never frees the copies) */
        el_wset(sh.el, EL_ADDFN, L"lumadb-complete", L"complete LQL words", complete);
        el_set(sh.el, EL_BIND, "^I", "lumadb-complete", NULL);
        el_source(sh.el, NULL);                /* ~/.editrc */
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
    if (sh.el)
        el_end(sh.el);
    if (sh.hist)
        history_end(sh.hist);
    sigaction(SIGINT, &old, NULL);
    lm_db_close(sh.run.db);
    return status;
}
