/* test_crash.c - kill -9 crash test. A child process ingests batches (and sometimes
 * checkpoints) and reports each acknowledged batch id to the parent over a pipe; the
 * parent kills it at a random moment, reopens the database and checks that every
 * acknowledged batch is present whole, that no batch is partially present, and that
 * nothing else is there. Usage: test_crash [--cycles N] (default 200). The seed is
 * printed; LUMADB_TEST_SEED replays one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "lumadb.h"
#include "tmpdir.h"

#define MAX_BATCHES 20000
static const char *FIELD = "crash";
static long cycles = 200;
static uint64_t seed;

static uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The size of batch k is a function of k, so the parent knows it without being told. */
static int batch_size(int k) { return 1 + (int)(mix((uint64_t)k * 7919u) % 120); }

static int insert_batch(lm_db *db, int k)
{
    int n = batch_size(k);
    float x[128], y[128], z[128], in[128];
    int32_t id[128];
    for (int i = 0; i < n; i++) {
        uint64_t h = mix(((uint64_t)k << 8) | (uint64_t)i);
        x[i] = (float)(h % 4000) * 0.01f - 20;
        y[i] = (float)((h >> 16) % 4000) * 0.01f - 20;
        z[i] = (float)((h >> 32) % 400) * 0.01f;
        in[i] = (float)(h >> 48 & 0xff) * 0.01f;
        id[i] = k * 1000 + i;
    }
    struct lm_batch b = {.n = (size_t)n, .x = x, .y = y, .z = z, .intensity = in, .n_user = 1,
                         .user = {id}};
    return lm_insert(db, FIELD, &b, NULL, NULL);
}

static struct lm_db_opts opts_for(long cycle)
{
    static const enum lm_sync policy[3] = {LM_SYNC_NONE, LM_SYNC_GROUP, LM_SYNC_ALWAYS};
    /* small checkpoint threshold: kills land inside checkpoints too */
    return (struct lm_db_opts){.create = true, .sync = policy[cycle % 3],
                               .checkpoint_bytes = 16384 + (uint64_t)(cycle % 5) * 8192};
}

static void child(const char *dir, long cycle, int first_batch, int fd)
{
    struct lm_db_opts o = opts_for(cycle);
    lm_db *db;
    struct lm_error e;
    if (lm_db_open(dir, &o, &db, &e))
        _exit(3);
    struct lm_field_info info;
    if (lm_field_info(db, FIELD, &info, NULL)) {
        struct lm_field_opts fo = {.voxel_size = 0.25f, .chunk_edge = 8, .n_user_columns = 1};
        strcpy(fo.user_columns[0].name, "id");
        fo.user_columns[0].type = LM_TYPE_I32;
        if (lm_field_create(db, FIELD, &fo, &e))
            _exit(4);
    }
    int32_t ready = -1;
    if (write(fd, &ready, sizeof ready) != sizeof ready)
        _exit(6);
    for (int k = first_batch; k < MAX_BATCHES; k++) {
        if (insert_batch(db, k))
            _exit(5);
        int32_t ack = k;
        if (write(fd, &ack, sizeof ack) != sizeof ack)
            _exit(6);
        if (k % 17 == 0 && lm_db_checkpoint(db, NULL))
            _exit(7);
    }
    _exit(0); /* ran out of batches before the kill: fine */
}

static void crash_cycles(void **state)
{
    (void)state;
    char dir[128];
    /* tmpfs when there is one: the test is about ordering, not the disk's speed */
    struct stat st;
    const char *base = stat("/dev/shm", &st) == 0 ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof dir, "%s/lumadb-crash-XXXXXX", base);
    assert_non_null(mkdtemp(dir));
    const char *s = getenv("LUMADB_TEST_SEED");
    seed = s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16);
    fprintf(stderr, "crash test: seed %llu, %ld cycles, directory %s\n",
            (unsigned long long)seed, cycles, dir);
    uint64_t rng = seed;
    static bool acked[MAX_BATCHES];
    static uint32_t seen[MAX_BATCHES];
    memset(acked, 0, sizeof acked);
    int next = 0;
    long total_acked = 0, in_flight_applied = 0;
    for (long cycle = 0; cycle < cycles && next < MAX_BATCHES - 1000; cycle++) {
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            child(dir, cycle, next, fds[1]);
        }
        close(fds[1]);
        rng = mix(rng + (uint64_t)cycle);
        /* most kills land during ingest (after the child says it is ready), every
         * fourth one anywhere, recovery included */
        int32_t id;
        if (cycle % 4 && read(fds[0], &id, sizeof id) == sizeof id)
            assert_int_equal(id, -1);
        usleep((useconds_t)(1000 + rng % 30000));
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        if (!WIFSIGNALED(status) && WEXITSTATUS(status) != 0)
            fail_msg("cycle %ld (seed %llu): child failed with exit status %d", cycle,
                     (unsigned long long)seed, WEXITSTATUS(status));
        int max_acked = next - 1;
        while (read(fds[0], &id, sizeof id) == sizeof id) {
            if (id == -1)
                continue;
            assert_true(id >= next && id < MAX_BATCHES);
            acked[id] = true;
            total_acked++;
            if (id > max_acked)
                max_acked = id;
        }
        close(fds[0]);
        /* reopen (recovery) and check */
        lm_db *db;
        struct lm_error e;
        struct lm_db_opts o = opts_for(cycle + 1);
        int rc = lm_db_open(dir, &o, &db, &e);
        if (rc)
            fail_msg("cycle %ld (seed %llu): reopen failed: %s", cycle,
                     (unsigned long long)seed, e.message);
        memset(seen, 0, sizeof seen);
        struct lm_rows *rows = NULL;
        struct lm_field_info info;
        if (lm_field_info(db, FIELD, &info, NULL) == 0) {
            assert_int_equal(lm_select(db, FIELD, NULL, 0, &rows, &e), 0);
            for (size_t i = 0; i < rows->n; i++) {
                int32_t rid = ((int32_t *)rows->user[0])[i];
                assert_true(rid >= 0 && rid / 1000 < MAX_BATCHES);
                seen[rid / 1000]++;
            }
            lm_rows_free(rows);
        }
        /* every acknowledged batch whole; the one in flight whole or absent; nothing
         * from the future */
        int last_present = next - 1;
        for (int k = 0; k < MAX_BATCHES; k++) {
            if (acked[k] && seen[k] != (uint32_t)batch_size(k))
                fail_msg("cycle %ld (seed %llu): acknowledged batch %d has %u of %d rows",
                         cycle, (unsigned long long)seed, k, seen[k], batch_size(k));
            if (!acked[k] && seen[k]) {
                if (seen[k] != (uint32_t)batch_size(k) || k != max_acked + 1)
                    fail_msg("cycle %ld (seed %llu): unacknowledged batch %d has %u of %d rows",
                             cycle, (unsigned long long)seed, k, seen[k], batch_size(k));
                acked[k] = true; /* it committed: from now on it must stay */
                in_flight_applied++;
            }
            if (seen[k] && k > last_present)
                last_present = k;
        }
        next = last_present + 1;
        /* half the time close cleanly (checkpoint), half the time crash again */
        if (rng & 1)
            lm_db_close(db);
        else
            lm__db_abandon(db);
    }
    fprintf(stderr, "crash test: %ld cycles, %ld acknowledged batches, %ld committed in "
            "flight, %d batches at the end\n", cycles, total_acked, in_flight_applied, next);
    /* the test did ingest (on a loaded machine many kills land before the first ack) */
    assert_true(total_acked >= cycles / 4);
    tmpdir_remove(dir);
}

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--cycles"))
            cycles = atol(argv[++i]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(crash_cycles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
