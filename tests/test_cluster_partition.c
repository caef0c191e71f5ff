/* test_cluster_partition.c - a minority cut off by SIGSTOP acknowledges nothing; after
 * SIGCONT nobody diverges. The checker verifies every acknowledged write afterwards. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "cluster/harness.h"

static void converge_and_check(struct cluster *cl, const bool *ack, int upto)
{
    char why[600];
    if (!cl_wait_converged(cl, 30, why, sizeof why))
        fail_msg("no convergence: %s", why);
    for (int i = 0; i < cl->n; i++)
        if (!ck_verify(cl, i, ack, NULL, upto, why, sizeof why))
            fail_msg("node %d: %s", i + 1, why);
}

/* Both followers paused: the leader is a minority and acknowledges nothing, neither at
 * once nor later while they stay paused; after SIGCONT the cluster goes on. */
static void paused_majority_leaves_leader_unable_to_acknowledge(void **state)
{
    static struct cluster cl;
    static bool ack[CK_MAX_BATCHES];
    *state = &cl;
    cl_init(&cl, 3, NULL);
    cl_start_all(&cl);
    int leader = cl_wait_leader(&cl, 10, -1);
    assert_true(leader >= 0);
    struct lm_error e;
    assert_int_equal(lm_repl_client_create_field(cl.c, CL_FIELD, ck_schema(), &e), 0);
    for (int k = 0; k < 10; k++) {
        assert_int_equal(ck_insert(cl.c, k, NULL, &e), 0);
        ack[k] = true;
    }
    for (int i = 0; i < 3; i++)
        if (i != leader)
            cl_signal(&cl, i, SIGSTOP);
    struct lm_repl_client_opts o = {.nodes = cl.addrs, .n_nodes = 3, .try_ms = 700};
    lm_repl_client *c;
    assert_int_equal(lm_repl_client_open(&o, &c, NULL), 0);
    /* the first write is in the leader's log but cannot commit; later ones find a node
     * that stepped down (it lost contact with a majority) */
    for (int k = 10; k < 14; k++)
        assert_false(ck_write_once(c, leader, k, 0, NULL));
    assert_true(cl_status(&cl, leader, "role") != 3); /* it stepped down */
    for (int i = 0; i < 3; i++)
        cl_signal(&cl, i, SIGCONT);
    for (int k = 14; k < 30; k++) {
        if (ck_insert(cl.c, k, NULL, &e))
            fail_msg("batch %d after healing: %s", k, e.message);
        ack[k] = true;
    }
    lm_repl_client_close(c);
    converge_and_check(&cl, ack, 30);
    assert_true(cl_stop(&cl, true));
}

/* The leader paused in the middle of a write stream: the other two elect a leader and
 * go on; the old one, resumed, has entries from its old term that must not survive
 * unless committed, and catches up. */
static void paused_leader_rejoins_without_divergence(void **state)
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
    assert_true(ck_wait_acked(&w, 0, 50, 30));
    cl_signal(&cl, leader, SIGSTOP);
    int next = cl_wait_leader(&cl, 5, leader);
    assert_true(next >= 0);
    int before = atomic_load(&w.acked);
    assert_true(ck_wait_acked(&w, before, 40, 30)); /* through the new leader */
    cl_signal(&cl, leader, SIGCONT);
    assert_true(ck_wait_acked(&w, atomic_load(&w.acked), 40, 30));
    ck_stop(&w, t);
    converge_and_check(&cl, w.ack, atomic_load(&w.next));
    assert_true(cl_stop(&cl, true));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(paused_majority_leaves_leader_unable_to_acknowledge,
                                  cl_teardown),
        cmocka_unit_test_teardown(paused_leader_rejoins_without_divergence, cl_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
