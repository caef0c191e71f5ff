/* test_cluster_chaos.c - two writers stream batches while random faults hit random
 * nodes, one at a time: kill -9 and restart, SIGSTOP and SIGCONT, at random moments
 * (snapshots every 64 entries, so restarts also go through InstallSnapshot). At the end
 * every node must hold the same chunks, every acknowledged batch whole, every other
 * tried batch whole or absent, and nothing else. Usage: test_cluster_chaos [--seconds N]
 * (default 20). The seed is printed; LUMADB_TEST_SEED replays its fault schedule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "cluster/harness.h"

static double seconds = 20;

static uint64_t next_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void random_faults_never_lose_an_acknowledged_write(void **state)
{
    static struct cluster cl;
    static struct ck_writer w[2];
    static bool ack[CK_MAX_BATCHES], tried[CK_MAX_BATCHES];
    *state = &cl;
    const char *s = getenv("LUMADB_TEST_SEED");
    uint64_t seed = s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL) ^ (uint64_t)getpid();
    static const char *const opts[] = {"--snapshot-threshold", "64", "--snapshot-trailing",
                                       "16", NULL};
    cl_init(&cl, 3, opts);
    fprintf(stderr, "chaos: seed %llu, %.0f s\n", (unsigned long long)seed, seconds);
    cl_start_all(&cl);
    assert_true(cl_wait_leader(&cl, 10, -1) >= 0);
    pthread_t t[2];
    ck_start(&cl, &w[0], &t[0]);
    memset(&w[1], 0, sizeof w[1]);
    w[1].cl = &cl;
    w[1].first = CK_MAX_BATCHES / 2;
    w[1].last = CK_MAX_BATCHES;
    w[0].last = CK_MAX_BATCHES / 2;
    assert_int_equal(pthread_create(&t[1], NULL, ck_writer_main, &w[1]), 0);
    uint64_t rng = seed;
    int kills = 0, pauses = 0;
    double end = cl_now() + seconds;
    while (cl_now() < end) {
        cl_sleep_ms(200 + (int)(next_rand(&rng) % 1200));
        int victim = (int)(next_rand(&rng) % 3);
        int down_ms = 100 + (int)(next_rand(&rng) % 1200);
        bool leader = next_rand(&rng) % 2; /* half the time, whoever leads */
        if (leader) {
            int l = cl_wait_leader(&cl, 2, -1);
            victim = l >= 0 ? l : victim;
        }
        if (next_rand(&rng) % 2) {
            cl_signal(&cl, victim, SIGKILL);
            cl_sleep_ms(down_ms);
            cl_start(&cl, victim);
            kills++;
        } else {
            cl_signal(&cl, victim, SIGSTOP);
            cl_sleep_ms(down_ms);
            cl_signal(&cl, victim, SIGCONT);
            pauses++;
        }
    }
    for (int i = 0; i < 2; i++)
        ck_stop(&w[i], t[i]);
    fprintf(stderr, "chaos: %d kills, %d pauses\n", kills, pauses);
    assert_true(atomic_load(&w[0].acked) + atomic_load(&w[1].acked) > 50);
    for (int i = 0; i < 2; i++)
        for (int k = w[i].first; k < atomic_load(&w[i].next); k++) {
            tried[k] = true;
            ack[k] = w[i].ack[k];
        }
    char why[600];
    if (!cl_wait_converged(&cl, 60, why, sizeof why))
        fail_msg("seed %llu: no convergence: %s", (unsigned long long)seed, why);
    for (int i = 0; i < 3; i++)
        if (!ck_verify(&cl, i, ack, tried, CK_MAX_BATCHES, why, sizeof why))
            fail_msg("seed %llu: node %d: %s", (unsigned long long)seed, i + 1, why);
    assert_true(cl_stop(&cl, true));
}

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--seconds"))
            seconds = atof(argv[++i]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(random_faults_never_lose_an_acknowledged_write, cl_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
