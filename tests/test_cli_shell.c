/* test_cli_shell.c - `lumadb shell` driven through a pseudo-terminal (forkpty): typing a
 * statement, tab completion of keywords, fields and columns, statements over several
 * lines, history recalled with the up arrow and kept in ~/.lumadb_history across runs,
 * Ctrl-C dropping the statement being typed, dot commands, Ctrl-D leaving. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/spawn.h"
#include "lumadb.h"

static char dir[64], home[96];

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/lumadb-clis-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(home, sizeof home, "%s/home", dir);
    char db_dir[96];
    snprintf(db_dir, sizeof db_dir, "%s/db", dir);
    if (mkdir(home, 0700))
        return -1;
    lm_db *db;
    if (lm_db_open(db_dir, NULL, &db, NULL))
        return -1;
    struct lm_field_opts o = {.voxel_size = 1.0f, .n_user_columns = 1};
    strcpy(o.user_columns[0].name, "material");
    o.user_columns[0].type = LM_TYPE_U8;
    float x[20], y[20] = {0}, z[20] = {0};
    uint8_t m[20];
    for (int i = 0; i < 20; i++) {
        x[i] = (float)i;
        m[i] = (uint8_t)(i % 4);
    }
    struct lm_batch b = {.n = 20, .x = x, .y = y, .z = z, .n_user = 1, .user = {m}};
    int rc = lm_field_create(db, "scene", &o, NULL) || lm_insert(db, "scene", &b, NULL, NULL);
    /* a field big enough that grouping it takes a while, for Ctrl-C to cancel */
    enum { BIG = 150000 };
    float *bx = malloc(BIG * sizeof *bx), *by = malloc(BIG * sizeof *by);
    int64_t *bt = malloc(BIG * sizeof *bt);
    for (int i = 0; i < BIG; i++) {
        bx[i] = (float)(i % 1000) * 0.37f;
        by[i] = (float)(i / 1000) * 0.41f;
        bt[i] = i;
    }
    struct lm_field_opts bo = {.voxel_size = 0.05f, .chunk_edge = 256}; /* few chunks */
    struct lm_batch bb = {.n = BIG, .x = bx, .y = by, .z = by, .t = bt};
    rc = rc || lm_field_create(db, "big", &bo, NULL) || lm_insert(db, "big", &bb, NULL, NULL);
    free(bx);
    free(by);
    free(bt);
    lm_db_close(db);
    return rc ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    return spawn_rm_rf(dir);
}

/* ---------------------------------------------------------------- a terminal session */

struct term {
    pid_t pid;
    int fd;
    char out[1 << 16];
    size_t len, seen;   /* seen: output already matched by wait_for */
};

static void term_start(struct term *t)
{
    memset(t, 0, sizeof *t);
    struct winsize ws = {.ws_row = 40, .ws_col = 200};
    t->pid = forkpty(&t->fd, NULL, NULL, &ws);
    assert_true(t->pid >= 0);
    if (t->pid == 0) {
        char db_dir[96];
        snprintf(db_dir, sizeof db_dir, "%s/db", dir);
        setenv("HOME", home, 1);
        setenv("TERM", "xterm", 1);
        execl(LUMADB_BIN, LUMADB_BIN, "shell", db_dir, (char *)NULL);
        _exit(127);
    }
}

/* Reads until `text` appears after what was matched before (30 s at most). */
static void wait_for(struct term *t, const char *text)
{
    time_t end = time(NULL) + 30;
    for (;;) {
        char *at = strstr(t->out + t->seen, text);
        if (at) {
            t->seen = (size_t)(at - t->out) + strlen(text);
            return;
        }
        if (time(NULL) > end)
            fail_msg("'%s' did not appear; the terminal shows:\n%s", text, t->out + t->seen);
        struct pollfd p = {t->fd, POLLIN, 0};
        if (poll(&p, 1, 200) > 0) {
            ssize_t n = read(t->fd, t->out + t->len, sizeof t->out - t->len - 1);
            if (n > 0) {
                t->len += (size_t)n;
                t->out[t->len] = '\0';
            } else if (n < 0 && errno != EINTR && errno != EAGAIN) {
                fail_msg("the shell went away before '%s':\n%s", text, t->out + t->seen);
            }
        }
    }
}

/* Types keys a moment after what was awaited: libedit may show its prompt before it
 * has the terminal in raw mode, and keys that come first meet a cooked terminal (where
 * Ctrl-D and Ctrl-C act at once). People are slower than that. */
static void type_after(struct term *t, const char *keys, long ms)
{
    nanosleep(&(struct timespec){0, ms * 1000 * 1000}, NULL);
    size_t n = strlen(keys);
    assert_int_equal(write(t->fd, keys, n), (ssize_t)n);
}

static void type(struct term *t, const char *keys)
{
    type_after(t, keys, 100);
}

static int term_end(struct term *t)
{
    int st = 0;
    time_t end = time(NULL) + 60; /* leaving writes a checkpoint: fsync may be slow */
    while (time(NULL) < end) {
        if (waitpid(t->pid, &st, WNOHANG) == t->pid) {
            close(t->fd);
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        struct pollfd p = {t->fd, POLLIN, 0};
        ssize_t n = -1;
        if (poll(&p, 1, 100) > 0 && t->len + 1 < sizeof t->out)
            n = read(t->fd, t->out + t->len, sizeof t->out - t->len - 1);
        if (n > 0) {
            t->len += (size_t)n;
            t->out[t->len] = '\0';
        } else { /* the terminal is closed (the shell is exiting) or quiet */
            nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
        }
    }
    kill(t->pid, SIGKILL);
    waitpid(t->pid, &st, 0);
    close(t->fd);
    fail_msg("the shell did not leave; the terminal shows:\n%s", t->out + t->seen);
    return -1;
}

/* ---------------------------------------------------------------- tests */

static void typing_completing_and_recalling_statements(void **state)
{
    (void)state;
    struct term t;
    term_start(&t);
    wait_for(&t, "lumadb> ");
    /* keywords, the field and a column complete with Tab */
    type(&t, "SEL\t");
    wait_for(&t, "ECT ");
    type(&t, "count(*) FROM sc\t");
    wait_for(&t, "ene ");
    type(&t, "WHERE mat\t");
    wait_for(&t, "erial ");
    type(&t, "= 1;\r");
    wait_for(&t, "count(*)");
    wait_for(&t, "5");
    wait_for(&t, "(1 row)");
    /* over two lines */
    type(&t, "SELECT max(x)\r");
    wait_for(&t, "...> ");
    type(&t, "FROM scene;\r");
    wait_for(&t, "19");
    wait_for(&t, "lumadb> ");
    /* the up arrow brings the statement back; Enter runs it again */
    type(&t, "\x1b[A");
    wait_for(&t, "SELECT max(x) FROM scene;");
    type(&t, "\r");
    wait_for(&t, "19");
    wait_for(&t, "lumadb> ");
    /* Ctrl-C drops what was typed, here over two lines */
    type(&t, "SELECT x\r");
    wait_for(&t, "...> ");
    type(&t, "FROM sce");
    type(&t, "\x03");
    wait_for(&t, "^C");
    wait_for(&t, "lumadb> ");
    /* Ctrl-C cancels the statement running */
    type(&t, "SELECT count(*), max(t) FROM big WHERE NOT WITHIN 1 OF (0, 0, 0) GROUP BY VOXEL "
             "ORDER BY \"max(t)\" DESC LIMIT 3;\r");
    type_after(&t, "\x03", 30); /* the grouping takes ~1 s under the sanitizers */
    wait_for(&t, "error: canceled");
    wait_for(&t, "lumadb> ");
    /* dot commands */
    type(&t, ".mode csv\r");
    wait_for(&t, "lumadb> ");
    type(&t, "SELECT count(*) FROM scene WHERE x < 3 OR x > 17;\r");
    wait_for(&t, "count(*)\r\n5\r\n");
    type(&t, ".timer on\r");
    wait_for(&t, "lumadb> ");
    type(&t, "SELECT min(x) FROM scene;\r");
    wait_for(&t, "Time: ");
    type(&t, ".fields\r");
    wait_for(&t, "scene,20,");
    type(&t, "SELECT nope FROM scene;\r");
    wait_for(&t, "1:8: unknown column 'nope'");
    wait_for(&t, "lumadb> ");
    type(&t, ".help\r");
    wait_for(&t, ".mode table|csv|json");
    wait_for(&t, "lumadb> ");
    /* Ctrl-D leaves */
    type(&t, "\x04");
    assert_int_equal(term_end(&t), 0);

    /* the history file has one line per statement (libedit writes octal escapes such
     * as \040 for a space) */
    char hist[160], line[512];
    snprintf(hist, sizeof hist, "%s/.lumadb_history", home);
    FILE *f = fopen(hist, "r");
    assert_non_null(f);
    bool found = false;
    while (fgets(line, sizeof line, f)) {
        char plain[512];
        size_t n = 0;
        for (const char *p = line; *p && n + 1 < sizeof plain; p++) {
            if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] && p[3]) {
                plain[n++] = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
                p += 3;
            } else {
                plain[n++] = *p;
            }
        }
        plain[n] = '\0';
        found |= strstr(plain, "SELECT max(x) FROM scene;") != NULL;
    }
    fclose(f);
    assert_true(found);

    /* a new shell recalls the last statement of the last one */
    term_start(&t);
    wait_for(&t, "lumadb> ");
    type(&t, "\x1b[A");
    wait_for(&t, ".help");
    type(&t, "\x1b[A\x1b[A");
    wait_for(&t, "SELECT nope FROM scene;");
    type(&t, "\x15.quit\r"); /* Ctrl-U clears the line */
    assert_int_equal(term_end(&t), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(typing_completing_and_recalling_statements),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
