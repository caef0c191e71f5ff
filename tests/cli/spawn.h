/* spawn.h - runs the lumadb binary for the command tests: argv in, stdin text in,
 * stdout, stderr and the exit code out. LUMADB_BIN is set by CMake.
 * Threading: single-threaded tests. Called by: tests/test_cli_*.c. */
#ifndef LM_TEST_SPAWN_H
#define LM_TEST_SPAWN_H

#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct spawn_out {
    int status;   /* exit code, or 128 + signal */
    char *out, *err;
};

static inline void spawn_free(struct spawn_out *o)
{
    free(o->out);
    free(o->err);
}

/* Appends what fd has to *buf; false at its end. */
static inline int spawn_take(int fd, char **buf, size_t *len)
{
    char chunk[65536];
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n <= 0)
        return 0;
    *buf = realloc(*buf, *len + (size_t)n + 1);
    memcpy(*buf + *len, chunk, (size_t)n);
    *len += (size_t)n;
    (*buf)[*len] = '\0';
    return 1;
}

/* Runs LUMADB_BIN with the NULL-terminated arguments after the command name. */
static inline struct spawn_out spawn_lumadb(const char *in, const char *arg, ...)
{
    const char *argv[32] = {LUMADB_BIN};
    int argc = 1;
    va_list ap;
    va_start(ap, arg);
    for (const char *a = arg; a && argc < 31; a = va_arg(ap, const char *))
        argv[argc++] = a;
    va_end(ap);
    int pin[2], pout[2], perr[2];
    if (pipe(pin) || pipe(pout) || pipe(perr))
        abort();
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pin[0], 0);
        dup2(pout[1], 1);
        dup2(perr[1], 2);
        close(pin[1]);
        close(pout[0]);
        close(perr[0]);
        execv(LUMADB_BIN, (char *const *)argv);
        _exit(127);
    }
    close(pin[0]);
    close(pout[1]);
    close(perr[1]);
    if (in && write(pin[1], in, strlen(in)) < 0)
        abort();
    close(pin[1]);
    struct spawn_out o = {0};
    size_t lo = 0, le = 0;
    o.out = calloc(1, 1);
    o.err = calloc(1, 1);
    struct pollfd fds[2] = {{pout[0], POLLIN, 0}, {perr[0], POLLIN, 0}};
    int open_fds = 2;
    while (open_fds) {
        if (poll(fds, 2, -1) < 0)
            break;
        for (int k = 0; k < 2; k++)
            if (fds[k].fd >= 0 && fds[k].revents) {
                if (!spawn_take(fds[k].fd, k ? &o.err : &o.out, k ? &le : &lo)) {
                    close(fds[k].fd);
                    fds[k].fd = -1;
                    open_fds--;
                }
            }
    }
    int st;
    waitpid(pid, &st, 0);
    o.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return o;
}

/* Removes a test's directory tree; 0 on success (a cmocka teardown's result). */
static inline int spawn_rm_rf(const char *dir)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd);
}

/* The shortest %.*g that reads back to the same float (what the command prints). */
static inline const char *spawn_f32(char *buf, float v)
{
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, 48, "%.*g", p, (double)v);
        if (strtof(buf, NULL) == v)
            break;
    }
    return buf;
}

#endif
