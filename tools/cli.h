/* cli.h - the `lumadb` subcommands shell, query, import and export, and what they share:
 * opening a database directory, running a script of LQL statements, printing errors.
 *
 * Owns: nothing between calls; each command opens and closes its database.
 * Exit codes of the commands: 0 success, 1 a statement or the input failed, 2 bad
 * usage, 3 the database could not be opened, 130 interrupted.
 * Threading: the commands install signal handlers (shell: SIGINT) and run on the main
 * thread. Called by: tools/lumadb.c (dispatch), tests/test_cli_*.c (through the binary).
 */
#ifndef LM_CLI_H
#define LM_CLI_H

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>

#include "format.h"
#include "lumadb.h"

#define LM_CLI_DEFAULT_DIR "data/demo"

int lm_cmd_shell(int argc, char **argv);  /* argv[0] is the first argument after "shell" */
int lm_cmd_query(int argc, char **argv);
int lm_cmd_import(int argc, char **argv);
int lm_cmd_export(int argc, char **argv);

/* Opens dir (creating it when `create`); when another process holds it, opens the last
 * checkpoint read-only and says so on stderr. Prints the reason on failure: 0 or 3. */
int lm_cli_open(const char *cmd, const char *dir, bool create, lm_db **out);

/* Prints "cmd: line:col: message", the source line and a caret (lm_lql_format_error)
 * for an error about `text` (NULL: the message alone). */
void lm_cli_error(FILE *to, const char *cmd, const char *text, const struct lm_error *err,
                  int rc);

/* How a script runs. */
struct lm_cli_run {
    lm_db *db;
    enum lm_fmt_mode mode;
    bool timer;                          /* "Time: 1.234 ms" after each statement */
    const volatile sig_atomic_t *cancel; /* Ctrl-C */
    FILE *out, *err;
    const char *cmd;                     /* prefix of error lines */
};

/* Runs every statement of text[0, len) (NUL-terminated) in order, printing results to
 * run->out and errors to run->err; stops at the first failing statement. Returns 0, or
 * the failing statement's error code. */
int lm_cli_run_script(const struct lm_cli_run *run, const char *text, size_t len);

/* Splits argv into positionals (at most max, in order) and leaves options to the
 * caller: returns the number of positionals or -1 when there are more than max. An
 * argument taken by an option (`takes_value` lists them, NULL-terminated) is skipped. */
int lm_cli_positionals(int argc, char **argv, const char *const *takes_value,
                       const char **pos, int max);

/* Value of option `name` (e.g. "--format"), or NULL; "--name=value" works too. */
const char *lm_cli_option(int argc, char **argv, const char *name);
/* Whether a flag such as "--help" is present. */
bool lm_cli_flag(int argc, char **argv, const char *name);
/* The first argument that starts with '-' and is not a known option or its value, or
 * NULL. `known` lists options with values, `flags` those without; "-" alone is not an
 * option. */
const char *lm_cli_unknown_option(int argc, char **argv, const char *const *known,
                                  const char *const *flags);

/* The usual start of a command: "--help"/"-h" print usage(stdout); an unknown option
 * (not in opts, which take a value, nor in flags) or a count of positionals outside
 * [min, max] prints it and usage(stderr). Otherwise the positionals are in pos and
 * *np, and -1 is returned; else the exit code (0 for help, 2 for bad usage). */
int lm_cli_args(int argc, char **argv, const char *cmd, const char *const *opts,
                const char *const *flags, int (*usage)(FILE *), const char **pos, int min,
                int max, int *np);

/* Monotonic seconds. */
double lm_cli_now(void);

#endif
