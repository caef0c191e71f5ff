/* test_io.c - the POSIX lm_io backend, its helpers, and the fault-injecting backend. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"
#include "io.h"
#include "tmpdir.h"

struct fixture {
    char dir[64];
    const struct lm_io *posix;
    struct lm_io *fault;
};

static int setup(void **state)
{
    struct fixture *fx = lm_calloc(1, sizeof *fx);
    if (!fx || tmpdir_make("lmio", fx->dir, sizeof fx->dir))
        return -1;
    fx->posix = lm_io_posix();
    if (lm_io_fault_new(fx->posix, 7, &fx->fault))
        return -1;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    lm_io_fault_free(fx->fault);
    tmpdir_remove(fx->dir);
    lm_free(fx);
    return 0;
}

static void path_in(const struct fixture *fx, const char *name, char *out, size_t cap)
{
    assert_true(snprintf(out, cap, "%s/%s", fx->dir, name) < (int)cap);
}

/* Writes n bytes as a new file through io; `sync` fsyncs the file, then the directory. */
static void put(const struct lm_io *io, const char *path, const char *text, bool sync)
{
    int fd = -1;
    assert_int_equal(io->open(io->ctx, path, O_RDWR | O_CREAT | O_TRUNC, 0644, &fd), 0);
    assert_int_equal(io->pwrite(io->ctx, fd, text, strlen(text), 0), 0);
    if (sync)
        assert_int_equal(io->fsync(io->ctx, fd), 0);
    assert_int_equal(io->close(io->ctx, fd), 0);
    if (sync) {
        char dir[256];
        assert_int_equal(lm_io_parent(path, dir, sizeof dir), 0);
        assert_int_equal(io->sync_dir(io->ctx, dir), 0);
    }
}

/* The file's contents as a string (lm_free it), or NULL when it does not exist. */
static char *get(const char *path)
{
    void *data = NULL;
    size_t n = 0;
    struct lm_error err;
    int rc = lm_io_read_file(lm_io_posix(), path, &data, &n, &err);
    if (rc == -ENOENT)
        return NULL;
    assert_int_equal(rc, 0);
    assert_int_equal(strlen(data), n);
    return data;
}

static void assert_file(const char *path, const char *want)
{
    char *got = get(path);
    if (!want) {
        assert_null(got);
        return;
    }
    assert_non_null(got);
    assert_string_equal(got, want);
    lm_free(got);
}

static int count_entry(void *arg, const char *name)
{
    (void)name;
    ++*(int *)arg;
    return 0;
}

/* ---------------------------------------------------------------- POSIX backend */

static void posix_calls_round_trip_and_return_negative_errno(void **state)
{
    struct fixture *fx = *state;
    const struct lm_io *io = fx->posix;
    char a[256], b[256], sub[256];
    path_in(fx, "a", a, sizeof a);
    path_in(fx, "b", b, sizeof b);
    path_in(fx, "sub", sub, sizeof sub);

    int fd = -1;
    assert_int_equal(io->open(io->ctx, a, O_RDONLY, 0, &fd), -ENOENT);
    assert_int_equal(fd, -1); /* *out untouched on failure */
    assert_int_equal(io->open(io->ctx, a, O_RDWR | O_CREAT | O_EXCL, 0644, &fd), 0);
    assert_int_equal(io->pwrite(io->ctx, fd, "hello world", 11, 0), 0);
    assert_int_equal(io->pwrite(io->ctx, fd, "!", 1, 20), 0); /* leaves a hole */
    assert_int_equal(io->fdatasync(io->ctx, fd), 0);
    uint64_t size = 0;
    assert_int_equal(io->size(io->ctx, fd, &size), 0);
    assert_int_equal(size, 21);
    char buf[64];
    size_t got = 0;
    assert_int_equal(io->pread(io->ctx, fd, buf, sizeof buf, 6, &got), 0);
    assert_int_equal(got, 15); /* short only at end of file */
    assert_memory_equal(buf, "world\0\0\0\0\0\0\0\0\0!", 15);
    assert_int_equal(io->ftruncate(io->ctx, fd, 5), 0);
    assert_int_equal(io->fsync(io->ctx, fd), 0);
    assert_int_equal(io->size(io->ctx, fd, &size), 0);
    assert_int_equal(size, 5);
    assert_int_equal(io->close(io->ctx, fd), 0);

    assert_int_equal(io->rename(io->ctx, a, b), 0);
    assert_file(a, NULL);
    assert_file(b, "hello");
    assert_int_equal(io->mkdir(io->ctx, sub, 0755), 0);
    assert_int_equal(io->mkdir(io->ctx, sub, 0755), -EEXIST);
    assert_int_equal(io->sync_dir(io->ctx, fx->dir), 0);
    int n = 0;
    assert_int_equal(io->list_dir(io->ctx, fx->dir, count_entry, &n), 0);
    assert_int_equal(n, 2); /* b and sub, never . or .. */
    assert_int_equal(io->unlink(io->ctx, b), 0);
    assert_int_equal(io->unlink(io->ctx, b), -ENOENT);
    assert_int_equal(io->list_dir(io->ctx, a, count_entry, &n), -ENOENT);
}

static void parent_names_the_directory_of_a_path(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"a/b/c", "a/b"}, {"a//c", "a"}, {"c", "."}, {"/c", "/"}, {"/", "/"},
        {"a/b/", "a"},    {"/x/y", "/x"},
    };
    char out[32];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(lm_io_parent(cases[i][0], out, sizeof out), 0);
        assert_string_equal(out, cases[i][1]);
    }
    assert_int_equal(lm_io_parent("abcdef/g", out, 4), -ENAMETOOLONG);
}

static void atomic_write_replaces_file_and_read_returns_it(void **state)
{
    struct fixture *fx = *state;
    char p[256], tmp[300];
    path_in(fx, "cat", p, sizeof p);
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    struct lm_error err;
    assert_int_equal(lm_io_write_file_atomic(fx->posix, p, "one", 3, &err), 0);
    assert_int_equal(lm_io_write_file_atomic(fx->posix, p, "two!", 4, &err), 0);
    assert_file(p, "two!");
    assert_file(tmp, NULL);
    void *data;
    size_t n;
    char missing[256];
    path_in(fx, "nope", missing, sizeof missing);
    assert_int_equal(lm_io_read_file(fx->posix, missing, &data, &n, &err), -ENOENT);
    assert_non_null(strstr(err.message, missing));

    bool created = false;
    char sub[256];
    path_in(fx, "d", sub, sizeof sub);
    assert_int_equal(lm_io_mkdir_durable(fx->posix, sub, &created, &err), 0);
    assert_true(created);
    assert_int_equal(lm_io_mkdir_durable(fx->posix, sub, &created, &err), 0);
    assert_false(created);
}

/* ---------------------------------------------------------------- fault backend */

static void crash_drops_writes_not_followed_by_fsync(void **state)
{
    struct fixture *fx = *state;
    const struct lm_io *io = fx->fault;
    char p[256];
    path_in(fx, "f", p, sizeof p);
    put(io, p, "durable", true);
    int fd = -1;
    assert_int_equal(io->open(io->ctx, p, O_RDWR, 0, &fd), 0);
    assert_int_equal(io->pwrite(io->ctx, fd, "-lost", 5, 7), 0);
    assert_file(p, "durable-lost"); /* visible before the crash */
    assert_int_equal(lm_io_fault_crash(fx->fault, 0), 0);
    assert_file(p, "durable");

    /* Descriptors from before the crash are dead; close still releases them. */
    assert_int_equal(io->pwrite(io->ctx, fd, "x", 1, 0), -EIO);
    assert_int_equal(io->fdatasync(io->ctx, fd), -EIO);
    assert_int_equal(io->close(io->ctx, fd), 0);

    /* A truncation not synced is undone too; one that is synced stays. */
    assert_int_equal(io->open(io->ctx, p, O_RDWR, 0, &fd), 0);
    assert_int_equal(io->ftruncate(io->ctx, fd, 3), 0);
    assert_int_equal(lm_io_fault_crash(fx->fault, 0), 0);
    assert_file(p, "durable");
    assert_int_equal(io->close(io->ctx, fd), 0);
    assert_int_equal(io->open(io->ctx, p, O_RDWR, 0, &fd), 0);
    assert_int_equal(io->ftruncate(io->ctx, fd, 3), 0);
    assert_int_equal(io->fdatasync(io->ctx, fd), 0);
    assert_int_equal(io->pwrite(io->ctx, fd, "XY", 2, 1), 0);
    assert_int_equal(io->close(io->ctx, fd), 0);
    assert_int_equal(lm_io_fault_crash(fx->fault, 0), 0);
    assert_file(p, "dur");
}

/* Writes "0123456789" (synced) then "abcdefgh" at 10 and "ABCDEFGH" at 18 (unsynced),
 * crashes with flags and returns what is left (lm_free it; *n its size). */
static char *tear_once(struct fixture *fx, uint64_t seed, unsigned flags, size_t *n)
{
    struct lm_io *io;
    assert_int_equal(lm_io_fault_new(fx->posix, seed, &io), 0);
    char p[256];
    path_in(fx, "t", p, sizeof p);
    put(io, p, "0123456789", true);
    int fd = -1;
    assert_int_equal(io->open(io->ctx, p, O_RDWR, 0, &fd), 0);
    assert_int_equal(io->pwrite(io->ctx, fd, "abcdefgh", 8, 10), 0);
    assert_int_equal(io->pwrite(io->ctx, fd, "ABCDEFGH", 8, 18), 0);
    assert_int_equal(lm_io_fault_crash(io, flags), 0);
    io->close(io->ctx, fd);
    lm_io_fault_free(io);
    void *left = NULL;
    assert_int_equal(lm_io_read_file(fx->posix, p, &left, n, NULL), 0);
    return left;
}

static void tear_in_order_keeps_a_seeded_prefix_of_the_last_write(void **state)
{
    struct fixture *fx = *state;
    int seen_len[9] = {0};
    for (uint64_t seed = 1; seed <= 64; seed++) {
        /* Earlier writes kept whole, a strict prefix of the last one. */
        size_t n, n2;
        char *b = tear_once(fx, seed, LM_IO_FAULT_TEAR | LM_IO_FAULT_IN_ORDER, &n);
        assert_true(n >= 18 && n < 26);
        assert_memory_equal(b, "0123456789abcdefghABCDEFGH", n);
        seen_len[n - 18]++;
        /* The same seed tears the same way. */
        char *again = tear_once(fx, seed, LM_IO_FAULT_TEAR | LM_IO_FAULT_IN_ORDER, &n2);
        assert_int_equal(n2, n);
        lm_free(again);
        lm_free(b);
    }
    int distinct = 0;
    for (int i = 0; i < 9; i++)
        distinct += seen_len[i] > 0;
    assert_true(distinct >= 4); /* seeds really vary the tear point */
    assert_int_equal(seen_len[8], 0); /* never the whole write */
}

static void tear_without_in_order_leaves_a_hole_before_the_prefix(void **state)
{
    struct fixture *fx = *state;
    for (uint64_t seed = 1; seed <= 32; seed++) {
        size_t n;
        char *c = tear_once(fx, seed, LM_IO_FAULT_TEAR, &n);
        assert_memory_equal(c, "0123456789", 10);
        if (n > 10) { /* kept k bytes of the last write: 8 zeros, then its prefix */
            assert_true(n > 18 && n < 26);
            for (size_t i = 10; i < 18; i++)
                assert_int_equal(c[i], 0);
            assert_memory_equal(c + 18, "ABCDEFGH", n - 18);
        }
        lm_free(c);
    }
    /* Plain crash: only the synced part. */
    size_t n;
    char *d = tear_once(fx, 1, 0, &n);
    assert_int_equal(n, 10);
    lm_free(d);
}

static void names_survive_a_crash_only_after_their_directory_is_synced(void **state)
{
    struct fixture *fx = *state;
    const struct lm_io *io = fx->fault;
    char a[256], b[256], c[256], d[256];
    path_in(fx, "a", a, sizeof a);
    path_in(fx, "b", b, sizeof b);
    path_in(fx, "c", c, sizeof c);
    path_in(fx, "d", d, sizeof d);
    put(io, a, "A", true);
    put(io, c, "C", true);
    put(fx->posix, d, "pre-existing", false); /* made behind the backend's back */

    put(io, b, "B", false); /* created, data and name never synced */
    assert_int_equal(io->rename(io->ctx, a, b), 0); /* a -> b, not synced */
    assert_int_equal(io->unlink(io->ctx, c), 0);    /* not synced */
    assert_int_equal(io->unlink(io->ctx, d), 0);    /* not synced */
    assert_file(a, NULL);
    assert_file(b, "A");
    assert_int_equal(lm_io_fault_crash(fx->fault, 0), 0);
    assert_file(a, "A");
    assert_file(b, NULL);
    assert_file(c, "C");
    assert_file(d, "pre-existing");

    /* After sync_dir the new names (and removals) hold; a file whose data was never
     * fsynced survives empty. */
    int fd = -1;
    assert_int_equal(io->open(io->ctx, b, O_RDWR | O_CREAT, 0644, &fd), 0);
    assert_int_equal(io->pwrite(io->ctx, fd, "unsynced", 8, 0), 0);
    assert_int_equal(io->close(io->ctx, fd), 0);
    assert_int_equal(io->unlink(io->ctx, c), 0);
    assert_int_equal(io->sync_dir(io->ctx, fx->dir), 0);
    assert_int_equal(lm_io_fault_crash(fx->fault, 0), 0);
    assert_file(b, "");
    assert_file(c, NULL);
}

static void armed_failures_hit_the_nth_call_and_counts_see_every_call(void **state)
{
    struct fixture *fx = *state;
    struct lm_io *io = fx->fault;
    char p[256];
    path_in(fx, "e", p, sizeof p);
    int fd = -1;
    assert_int_equal(io->open(io->ctx, p, O_RDWR | O_CREAT, 0644, &fd), 0);
    assert_int_equal(io->sync_dir(io->ctx, fx->dir), 0);
    assert_int_equal(io->pwrite(io->ctx, fd, "x", 1, 0), 0);
    assert_int_equal(io->fdatasync(io->ctx, fd), 0); /* x durable */
    uint64_t base = lm_io_fault_count(io, LM_IO_OP_FDATASYNC);
    assert_int_equal(base, 1);

    lm_io_fault_fail(io, LM_IO_OP_FDATASYNC, 2, EIO, false);
    assert_int_equal(io->pwrite(io->ctx, fd, "y", 1, 1), 0);
    assert_int_equal(io->fdatasync(io->ctx, fd), 0);    /* 1st after arming */
    assert_int_equal(io->pwrite(io->ctx, fd, "z", 1, 2), 0);
    assert_int_equal(io->fdatasync(io->ctx, fd), -EIO); /* 2nd fails */
    assert_int_equal(io->fdatasync(io->ctx, fd), 0);    /* not persistent */
    assert_int_equal(lm_io_fault_count(io, LM_IO_OP_FDATASYNC), base + 3);

    lm_io_fault_fail(io, LM_IO_OP_PWRITE, 1, ENOSPC, true);
    for (int i = 0; i < 3; i++)
        assert_int_equal(io->pwrite(io->ctx, fd, "w", 1, 3), -ENOSPC);
    lm_io_fault_fail(io, LM_IO_OP_PWRITE, 0, 0, false); /* disarm */
    assert_int_equal(io->pwrite(io->ctx, fd, "w", 1, 3), 0);
    assert_file(p, "xyzw");

    lm_io_fault_fail(io, LM_IO_OP_ANY, 1, EIO, true);
    uint64_t size;
    assert_int_equal(io->size(io->ctx, fd, &size), -EIO);
    assert_int_equal(io->sync_dir(io->ctx, fx->dir), -EIO);
    assert_int_equal(io->close(io->ctx, fd), 0); /* close is never failed by ANY */
    assert_true(lm_io_fault_count(io, LM_IO_OP_ANY) >= 10);

    /* z was written before the failed fdatasync and synced by the next one; w never. */
    assert_int_equal(lm_io_fault_crash(io, 0), 0);
    assert_file(p, "xyz");
}

/* A crash at any call of an atomic replace leaves the old file or the new one. */
static void atomic_write_leaves_old_or_new_after_a_crash_at_any_call(void **state)
{
    struct fixture *fx = *state;
    char p[256], tmp[300];
    path_in(fx, "cfg", p, sizeof p);
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    bool saw_old = false, saw_new = false;
    for (uint64_t nth = 1; nth < 64 && !saw_new; nth++) {
        struct lm_io *io;
        assert_int_equal(lm_io_fault_new(fx->posix, nth, &io), 0);
        put(io, p, "old contents", true);
        lm_io_fault_fail(io, LM_IO_OP_ANY, nth, EIO, true);
        int rc = lm_io_write_file_atomic(io, p, "new contents!", 13, NULL);
        assert_int_equal(lm_io_fault_crash(io, LM_IO_FAULT_TEAR | LM_IO_FAULT_IN_ORDER), 0);
        lm_io_fault_free(io);
        char *left = get(p);
        assert_non_null(left);
        if (!strcmp(left, "old contents")) {
            saw_old = true;
            assert_int_not_equal(rc, 0);
        } else {
            assert_string_equal(left, "new contents!");
            saw_new = true;
        }
        lm_free(left);
        remove(tmp);
    }
    assert_true(saw_old);
    assert_true(saw_new);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(posix_calls_round_trip_and_return_negative_errno,
                                        setup, teardown),
        cmocka_unit_test(parent_names_the_directory_of_a_path),
        cmocka_unit_test_setup_teardown(atomic_write_replaces_file_and_read_returns_it,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(crash_drops_writes_not_followed_by_fsync, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            tear_in_order_keeps_a_seeded_prefix_of_the_last_write, setup, teardown),
        cmocka_unit_test_setup_teardown(
            tear_without_in_order_leaves_a_hole_before_the_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(
            names_survive_a_crash_only_after_their_directory_is_synced, setup, teardown),
        cmocka_unit_test_setup_teardown(
            armed_failures_hit_the_nth_call_and_counts_see_every_call, setup, teardown),
        cmocka_unit_test_setup_teardown(
            atomic_write_leaves_old_or_new_after_a_crash_at_any_call, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
