/* test_cluster.c - a 3-process cluster on 127.0.0.1: writes through any node converge
 * to identical chunks everywhere; redirects, local and linearizable reads, idempotent
 * retries, verdicts of bad writes, adding and removing a voter at run time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "cluster/harness.h"

static void create_field(struct cluster *cl)
{
    struct lm_error e;
    int rc = lm_repl_client_create_field(cl->c, CL_FIELD, ck_schema(), &e);
    if (rc)
        fail_msg("create field: %s", e.message);
}

static void converge(struct cluster *cl)
{
    char why[600];
    if (!cl_wait_converged(cl, 20, why, sizeof why))
        fail_msg("no convergence: %s", why);
}

/* Writes through every node (each client starts at a different one: followers
 * redirect), deletes and updates; every node ends with the same chunks. */
static void writes_through_any_node_converge(void **state)
{
    static struct cluster cl;
    *state = &cl;
    cl_init(&cl, 3, NULL);
    cl_start_all(&cl);
    assert_true(cl_wait_leader(&cl, 10, -1) >= 0);
    create_field(&cl);
    lm_repl_client *via[3];
    for (int i = 0; i < 3; i++) {
        const char *order[3] = {cl.addrs[i], cl.addrs[(i + 1) % 3], cl.addrs[(i + 2) % 3]};
        struct lm_repl_client_opts o = {.nodes = order, .n_nodes = 3};
        assert_int_equal(lm_repl_client_open(&o, &via[i], NULL), 0);
    }
    struct lm_error e;
    for (int k = 0; k < 90; k++) {
        int rc = ck_insert(via[k % 3], k, NULL, &e);
        if (rc)
            fail_msg("batch %d: %s", k, e.message);
    }
    /* a delete and an update, as entries like any other */
    struct lm_selection box = {.region = {.kind = LM_REGION_BOX, .min = {-48, -44, 0},
                                          .max = {-30, 40, 12}}};
    uint64_t deleted = 0, updated = 0;
    assert_int_equal(lm_repl_client_delete(via[1], CL_FIELD, &box, &deleted, &e), 0);
    struct lm_selection all = {0};
    assert_int_equal(lm_repl_client_update(via[2], CL_FIELD, &all, LM_COL_INTENSITY, 0.5,
                                           &updated, &e), 0);
    assert_true(deleted > 0);
    converge(&cl);

    /* every node answers reads from its own copy, with the same rows */
    size_t n[3];
    for (int i = 0; i < 3; i++) {
        struct lm_rows *rows;
        assert_int_equal(lm_repl_client_select(cl.c, i, CL_FIELD, NULL, 0, false, &rows, &e), 0);
        n[i] = rows->n;
        for (size_t r = 0; r < rows->n; r++)
            assert_true(rows->intensity[r] == 0.5f);
        lm_rows_free(rows);
    }
    assert_true(n[0] == n[1] && n[1] == n[2]);
    assert_int_equal(n[0], updated);

    /* linearizable reads run on the leader: a follower redirects them */
    int leader = cl_wait_leader(&cl, 5, -1);
    int follower = (leader + 1) % 3;
    struct lm_rows *rows;
    assert_int_equal(lm_repl_client_select(cl.c, follower, CL_FIELD, NULL, 0, true, &rows, &e),
                     LM_ENOTLEADER);
    assert_int_equal(lm_repl_client_select(cl.c, -1, CL_FIELD, NULL, 0, true, &rows, &e), 0);
    assert_int_equal(rows->n, n[0]);
    lm_rows_free(rows);
    for (int i = 0; i < 3; i++)
        lm_repl_client_close(via[i]);
    assert_true(cl_stop(&cl, true));
}

/* One request id sent twice (a retry after a lost answer) is applied once and answered
 * with the first result; a write that is wrong is refused whole with its reason. */
static void retries_are_idempotent_and_bad_writes_refused(void **state)
{
    static struct cluster cl;
    *state = &cl;
    cl_init(&cl, 3, NULL);
    cl_start_all(&cl);
    int leader = cl_wait_leader(&cl, 10, -1);
    assert_true(leader >= 0);
    create_field(&cl);
    uint64_t first_index = 0, index = 0;
    assert_true(ck_write_once(cl.c, leader, 5, 424242, &first_index));
    assert_true(ck_write_once(cl.c, leader, 5, 424242, &index));
    assert_int_equal(index, first_index); /* the first answer, not a new entry */
    struct lm_rows *rows;
    struct lm_error e;
    assert_int_equal(lm_repl_client_select(cl.c, -1, CL_FIELD, NULL, 0, true, &rows, &e), 0);
    assert_int_equal(rows->n, ck_rows(5));
    lm_rows_free(rows);

    /* verdicts come back as they would from the engine */
    float x[2] = {1, 2}, y[2] = {1, 2}, z[2] = {1, 2};
    int32_t id[2] = {7, 8};
    struct lm_batch b = {.n = 2, .x = x, .y = y, .z = z, .n_user = 1, .user = {id}};
    uint32_t sizes[1] = {4};
    assert_int_equal(lm_repl_client_insert(cl.c, "nosuch", &b, sizes, NULL, &e), LM_ENOFIELD);
    float bad_r[2] = {0.5f, 2.0f}, g[2] = {0, 0}, bl[2] = {0, 0};
    struct lm_batch bad = b;
    bad.r = bad_r;
    bad.g = g;
    bad.b = bl;
    assert_int_equal(lm_repl_client_insert(cl.c, CL_FIELD, &bad, sizes, NULL, &e),
                     LM_EBADVALUE);
    assert_non_null(strstr(e.message, "sample 1"));
    assert_int_equal(lm_repl_client_create_field(cl.c, CL_FIELD, ck_schema(), &e),
                     LM_EFIELDEXISTS);
    converge(&cl);
    assert_true(cl_stop(&cl, true));
}

/* A fourth node joins as a voter at run time and catches up; then a voter leaves. */
static void voters_added_and_removed_at_run_time(void **state)
{
    static struct cluster cl;
    *state = &cl;
    cl_init(&cl, 4, NULL);
    cl.joined[3] = true; /* not in the bootstrap configuration */
    /* the first three bootstrap without node 4: their peers list names only them */
    char all_peers[1024];
    snprintf(all_peers, sizeof all_peers, "%s", cl.peers);
    *strrchr(cl.peers, ',') = 0;
    for (int i = 0; i < 3; i++)
        cl_start(&cl, i);
    assert_true(cl_wait_leader(&cl, 10, -1) >= 0);
    create_field(&cl);
    struct lm_error e;
    for (int k = 0; k < 20; k++)
        assert_int_equal(ck_insert(cl.c, k, NULL, &e), 0);
    snprintf(cl.peers, sizeof cl.peers, "%s", all_peers);
    cl_start(&cl, 3);
    struct lm_repl_member m = {.id = 4};
    sscanf(strrchr(all_peers, ',') + 1, "4=%63[^/]/", m.address);
    snprintf(m.client, sizeof m.client, "%s", cl.addrs[3]);
    if (lm_repl_client_add(cl.c, &m, &e))
        fail_msg("add: %s", e.message);
    for (int k = 20; k < 30; k++)
        assert_int_equal(ck_insert(cl.c, k, NULL, &e), 0);
    converge(&cl); /* node 4 included */
    char *text;
    assert_int_equal(lm_repl_client_status(cl.c, 3, &text, &e), 0);
    assert_non_null(strstr(text, "member 4 voter"));
    lm_free(text);

    /* remove a follower; the other three go on */
    int leader = cl_wait_leader(&cl, 5, -1);
    int gone = leader == 0 ? 1 : 0;
    if (lm_repl_client_remove(cl.c, (uint64_t)gone + 1, &e))
        fail_msg("remove: %s", e.message);
    cl_signal(&cl, gone, SIGKILL);
    for (int k = 30; k < 40; k++)
        assert_int_equal(ck_insert(cl.c, k, NULL, &e), 0);
    converge(&cl);
    assert_int_equal(lm_repl_client_status(cl.c, (size_t)leader, &text, &e), 0);
    char line[32];
    snprintf(line, sizeof line, "member %d ", gone + 1);
    assert_null(strstr(text, line));
    lm_free(text);
    assert_true(cl_stop(&cl, true));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(writes_through_any_node_converge, cl_teardown),
        cmocka_unit_test_teardown(retries_are_idempotent_and_bad_writes_refused, cl_teardown),
        cmocka_unit_test_teardown(voters_added_and_removed_at_run_time, cl_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
