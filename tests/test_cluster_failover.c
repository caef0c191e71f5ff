/* test_cluster_failover.c - kill -9 of the leader in the middle of a write stream: a
 * new leader within a second, every acknowledged write on the survivors, the killed
 * node back by the log; a node far behind back by InstallSnapshot. A checker records
 * every acknowledged write and verifies the final state on every node: those writes
 * whole, others whole or absent, nothing else. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "cluster/harness.h"

static void converge_and_check(struct cluster *cl, struct ck_writer *w)
{
    char why[600];
    if (!cl_wait_converged(cl, 30, why, sizeof why))
        fail_msg("no convergence: %s", why);
    int upto = atomic_load(&w->next); /* the writer has stopped */
    if (!ck_verify(cl, -1, w->ack, NULL, upto, why, sizeof why))
        fail_msg("leader (linearizable read): %s", why);
    for (int i = 0; i < cl->n; i++)
        if (cl->pid[i] > 0 && !ck_verify(cl, i, w->ack, NULL, upto, why, sizeof why))
            fail_msg("node %d: %s", i + 1, why);
}

static void leader_killed_mid_stream(void **state)
{
    static struct cluster cl;
    static struct ck_writer w;
    *state = &cl;
    cl_init(&cl, 3, NULL);
    cl_start_all(&cl);
    int leader = cl_wait_leader(&cl, 10, -1);
    assert_true(leader >= 0);
    pthread_t t;
    ck_start(&cl, &w, &t);
    double worst = 0;
    for (int round = 0; round < 2; round++) {
        assert_true(ck_wait_acked(&w, atomic_load(&w.acked), 60, 30));
        leader = cl_wait_leader(&cl, 5, -1);
        assert_true(leader >= 0);
        double t0 = cl_now();
        cl_signal(&cl, leader, SIGKILL);
        int next = cl_wait_leader(&cl, 5, leader);
        double took = cl_now() - t0;
        fprintf(stderr, "round %d: killed leader %d, node %d leads after %.0f ms\n", round,
                leader + 1, next + 1, took * 1e3);
        assert_true(next >= 0);
        worst = took > worst ? took : worst;
        /* writes go on through the new leader, then the killed node comes back and
         * catches up from the log (snapshots are 1024 entries apart) */
        assert_true(ck_wait_acked(&w, atomic_load(&w.acked), 40, 30));
        cl_start(&cl, leader);
    }
    assert_true(ck_wait_acked(&w, atomic_load(&w.acked), 40, 30));
    ck_stop(&w, t);
    converge_and_check(&cl, &w);
    for (int i = 0; i < 3; i++)
        assert_int_equal(cl_status(&cl, i, "snapshots_restored"), 0);
    assert_true(worst < 1.0);
    assert_true(cl_stop(&cl, true));
}

static void far_behind_node_catches_up_by_snapshot(void **state)
{
    static struct cluster cl;
    static struct ck_writer w;
    *state = &cl;
    static const char *const small[] = {"--snapshot-threshold", "32", "--snapshot-trailing",
                                        "8", NULL};
    cl_init(&cl, 3, small);
    cl_start_all(&cl);
    int leader = cl_wait_leader(&cl, 10, -1);
    assert_true(leader >= 0);
    pthread_t t;
    ck_start(&cl, &w, &t);
    assert_true(ck_wait_acked(&w, 0, 40, 30));
    int behind = (leader + 1) % 3;
    int64_t own = cl_status(&cl, behind, "snapshot_index");
    cl_signal(&cl, behind, SIGKILL);
    assert_true(ck_wait_acked(&w, atomic_load(&w.acked), 150, 60));
    int64_t first = cl_status(&cl, cl_wait_leader(&cl, 5, -1), "snapshot_index");
    cl_start(&cl, behind);
    assert_true(ck_wait_acked(&w, atomic_load(&w.acked), 40, 30));
    ck_stop(&w, t);
    converge_and_check(&cl, &w);
    /* it restored its own snapshot at start (if it had one), then the leader's */
    int64_t restored = cl_status(&cl, behind, "snapshots_restored");
    fprintf(stderr, "node %d: own snapshot at %lld when killed, leader's at %lld, %lld "
            "snapshots restored\n", behind + 1, (long long)own, (long long)first,
            (long long)restored);
    assert_true(restored >= (own > 0 ? 2 : 1));
    assert_true(cl_stop(&cl, true));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(leader_killed_mid_stream, cl_teardown),
        cmocka_unit_test_teardown(far_behind_node_catches_up_by_snapshot, cl_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
