/* test_net_api.c - the JSON API handlers without sockets (inserts in both shapes, errors
 * with positions, every query form, the query-language hook, out-of-memory atomicity),
 * and the server's lifecycle on a libuv loop (listen on a free port, refuse a taken one,
 * shut down with every handle closed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "api.h"
#include "db.h"
#include "record.h"
#include "net.h"

struct fixture {
    char dir[64];
    lm_db *db;
    struct lm_net_buf out;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/lumadb-netapi-XXXXXX");
    if (!mkdtemp(f->dir) || lm_db_open(f->dir, NULL, &f->db, NULL))
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    lm_db_close(f->db);
    lm_net_buf_free(&f->out);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    int rc = system(cmd);
    free(f);
    return rc;
}

static const char *body(struct fixture *f)
{
    lm_net_buf_u8(&f->out, 0);
    f->out.len--;
    return (const char *)f->out.p;
}

static int create(struct fixture *f)
{
    const char *def = "{\"voxel_size\": 1, \"chunk_edge\": 8, \"user_columns\": "
                      "[{\"name\": \"tag\", \"type\": \"i32\"}, {\"name\": \"k\", \"type\": \"u8\"}]}";
    return lm_api_field_create(f->db, "f", def, strlen(def), &f->out, NULL);
}

static int insert(struct fixture *f, const char *json, uint64_t *lsn, size_t *n)
{
    return lm_api_insert(f->db, "f", json, strlen(json), &f->out, lsn, n, NULL);
}

static int query(struct fixture *f, const char *json)
{
    return lm_api_query(f->db, json, strlen(json), NULL, NULL, &f->out);
}

/* A replicated server checks and encodes writes without applying them; the records,
 * applied on a replica, give the state the direct writes give. */
static void test_deferred_writes_encode_records_and_apply_nothing(void **state)
{
    struct fixture *f = *state;
    const char *def = "{\"voxel_size\": 1, \"chunk_edge\": 8}";
    struct lm_api_record create_rec = {0}, insert_rec = {0};
    assert_int_equal(lm_api_field_create(f->db, "f", def, strlen(def), &f->out, &create_rec), 0);
    assert_int_equal(create_rec.type, LM_REC_FIELD_CREATE);
    struct lm_field_info info;
    assert_int_equal(lm_field_info(f->db, "f", &info, NULL), LM_ENOFIELD); /* not applied */
    assert_int_equal(create(f), 201);
    uint64_t lsn0 = lm_db_lsn(f->db), lsn = 0;
    size_t n = 0;
    const char *rows = "{\"x\":[1.5,2.5],\"y\":[0,0],\"z\":[3,3],\"intensity\":[7,8]}";
    assert_int_equal(lm_api_insert(f->db, "f", rows, strlen(rows), &f->out, &lsn, &n, &insert_rec), 0);
    assert_int_equal(insert_rec.type, LM_REC_INSERT);
    assert_int_equal(insert_rec.samples, 2);
    assert_int_equal(lm_db_lsn(f->db), lsn0); /* nothing written */
    /* a bad write is refused at once with the engine's reason, and encodes nothing */
    struct lm_api_record bad = {0};
    const char *nan_rows = "{\"x\":[1],\"y\":[0],\"z\":[\"a\"]}";
    assert_int_equal(lm_api_insert(f->db, "f", nan_rows, strlen(nan_rows), &f->out, &lsn, &n, &bad), 400);
    assert_null(bad.payload);

    char rdir[64] = "/tmp/lumadb-netapi-replica-XXXXXX";
    assert_non_null(mkdtemp(rdir));
    lm_db *replica;
    assert_int_equal(lm__db_open_replica(rdir, NULL, &replica, NULL), 0);
    uint64_t count = 0;
    assert_int_equal(lm__db_apply_record(replica, create_rec.type, create_rec.payload, create_rec.n,
                                         1, &count, NULL), 0);
    assert_int_equal(lm__db_apply_record(replica, insert_rec.type, insert_rec.payload, insert_rec.n,
                                         2, &count, NULL), 0);
    assert_int_equal(count, 2);
    assert_int_equal(lm_field_info(replica, "f", &info, NULL), 0);
    assert_int_equal(info.n_samples, 2);
    assert_int_equal(info.opts.chunk_edge, 8);
    lm_db_close(replica);
    lm_free(create_rec.payload);
    lm_free(insert_rec.payload);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", rdir);
    assert_int_equal(system(cmd), 0);
}

static void test_fields_are_created_and_listed(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(create(f), 201);
    assert_int_equal(create(f), 409);
    assert_non_null(strstr(body(f), "LM_EFIELDEXISTS"));
    const char *bad = "{\"voxel_size\": -1}";
    assert_int_equal(lm_api_field_create(f->db, "g", bad, strlen(bad), &f->out, NULL), 400);
    const char *badtype = "{\"user_columns\": [{\"name\": \"a\", \"type\": \"f64\"}]}";
    assert_int_equal(lm_api_field_create(f->db, "g", badtype, strlen(badtype), &f->out, NULL), 400);
    assert_non_null(strstr(body(f), "f32, i32 or u8"));
    assert_int_equal(lm_api_fields(f->db, &f->out), 200);
    assert_non_null(strstr(body(f), "\"name\":\"f\""));
    assert_non_null(strstr(body(f), "{\"name\":\"tag\",\"type\":\"i32\"}"));
}

static void test_inserts_take_columns_or_rows(void **state)
{
    struct fixture *f = *state;
    create(f);
    uint64_t lsn = 0;
    size_t n = 0;
    assert_int_equal(insert(f, "{\"x\":[1,2],\"y\":[0,0],\"z\":[0,0],\"r\":[1,0],\"g\":[0,1],"
                               "\"b\":[0,0],\"tag\":[7,8],\"k\":[1,255],\"t\":[5,6]}", &lsn, &n), 200);
    assert_int_equal(n, 2);
    assert_true(lsn > 0);
    assert_non_null(strstr(body(f), "{\"inserted\":2,\"lsn\":"));
    assert_int_equal(insert(f, "[{\"x\":3,\"y\":0,\"z\":0,\"tag\":9},{\"x\":4,\"y\":0,\"z\":0,\"tag\":10}]",
                            &lsn, &n), 200);
    assert_int_equal(insert(f, "{\"rows\":[{\"x\":5,\"y\":0,\"z\":0}]}", &lsn, &n), 200);
    struct lm_field_info info;
    lm_field_info(f->db, "f", &info, NULL);
    assert_int_equal(info.n_samples, 5);
}

static void test_bad_inserts_change_nothing_and_say_why(void **state)
{
    struct fixture *f = *state;
    create(f);
    uint64_t lsn = 0;
    size_t n = 0;
    assert_int_equal(insert(f, "{\"x\":[1],\n \"y\":[0] \"z\":[0]}", &lsn, &n), 400);
    assert_non_null(strstr(body(f), "\"line\":2,\"column\":10"));
    assert_int_equal(insert(f, "{\"x\":[1],\"y\":[0]}", &lsn, &n), 400);
    assert_non_null(strstr(body(f), "x, y and z are required"));
    assert_int_equal(insert(f, "{\"x\":[1],\"y\":[0],\"z\":[0],\"w\":[1]}", &lsn, &n), 400);
    assert_non_null(strstr(body(f), "no column 'w'"));
    assert_int_equal(insert(f, "{\"x\":[1,2],\"y\":[0],\"z\":[0]}", &lsn, &n), 400);
    assert_int_equal(insert(f, "{\"x\":[1],\"y\":[0],\"z\":[0],\"r\":[1]}", &lsn, &n), 400);
    assert_non_null(strstr(body(f), "r, g, b"));
    assert_int_equal(insert(f, "{\"x\":[1],\"y\":[0],\"z\":[0],\"k\":[256]}", &lsn, &n), 400);
    assert_int_equal(insert(f, "{\"x\":[1],\"y\":[0],\"z\":[\"a\"]}", &lsn, &n), 400);
    assert_int_equal(insert(f, "{\"x\":[1,2],\"y\":[0,0],\"z\":[0,0],\"r\":[1,2],\"g\":[0,0],\"b\":[0,0]}",
                            &lsn, &n), 400); /* colour 2 is out of range: the engine refuses */
    assert_non_null(strstr(body(f), "LM_EBADVALUE"));
    assert_int_equal(lm_api_insert(f->db, "nope", "{}", 2, &f->out, &lsn, &n, NULL), 404);
    struct lm_field_info info;
    lm_field_info(f->db, "f", &info, NULL);
    assert_int_equal(info.n_samples, 0);
}

static void test_queries_map_onto_the_c_api(void **state)
{
    struct fixture *f = *state;
    create(f);
    uint64_t lsn;
    size_t n;
    assert_int_equal(insert(f, "{\"x\":[0.5,1.5,2.5,10.5],\"y\":[0.5,0.5,0.5,0.5],\"z\":[0.5,0.5,0.5,0.5],"
                               "\"intensity\":[1,2,3,4],\"tag\":[1,2,3,4]}", &lsn, &n), 200);
    assert_int_equal(query(f, "{\"field\":\"f\",\"box\":{\"min\":[0,0,0],\"max\":[3,1,1]}}"), 200);
    assert_non_null(strstr(body(f), "\"n\":3,"));
    assert_non_null(strstr(body(f), "\"tag\":[1,2,3]"));
    assert_int_equal(query(f, "{\"field\":\"f\",\"where\":[{\"column\":\"intensity\",\"op\":\">=\",\"value\":3}]}"), 200);
    assert_non_null(strstr(body(f), "\"tag\":[3,4]"));
    assert_int_equal(query(f, "{\"field\":\"f\",\"where\":[{\"column\":\"tag\",\"op\":\"between\",\"value\":[2,3]}],"
                              "\"aggregate\":{\"column\":\"intensity\"}}"), 200);
    assert_string_equal(body(f), "{\"count\":2,\"sum\":5,\"min\":2,\"max\":3,\"avg\":2.5}");
    assert_int_equal(query(f, "{\"field\":\"f\",\"nearest\":{\"p\":[10,0.5,0.5],\"k\":1}}"), 200);
    assert_non_null(strstr(body(f), "\"tag\":[4],\"k\":[0],\"distance\":[0.5]"));
    assert_int_equal(query(f, "{\"field\":\"f\",\"sphere\":{\"center\":[1.5,0.5,0.5],\"radius\":0.1}}"), 200);
    assert_non_null(strstr(body(f), "\"n\":1,"));
    assert_int_equal(query(f, "{\"field\":\"f\",\"voxels\":{\"level\":1}}"), 200);
    assert_non_null(strstr(body(f), "\"level\":1,\"cell_size\":2,\"n\":3"));
    assert_int_equal(query(f, "{\"field\":\"f\",\"camera\":{\"eye\":[-10,0.5,0.5],\"target\":[0,0.5,0.5],"
                              "\"fov\":30,\"far\":12.5}}"), 200);
    assert_non_null(strstr(body(f), "\"n\":3,"));
    assert_int_equal(query(f, "{\"field\":\"f\",\"limit\":2}"), 200);
    assert_non_null(strstr(body(f), "\"n\":2,"));
    /* errors */
    assert_int_equal(query(f, "{\"field\":\"f\",\"limit\":0}"), 413);
    assert_int_equal(query(f, "{\"field\":\"f\",\"box\":{\"min\":[0,0],\"max\":[1,1,1]}}"), 400);
    assert_non_null(strstr(body(f), "box.min"));
    assert_int_equal(query(f, "{\"field\":\"f\",\"where\":[{\"column\":\"nope\",\"op\":\"<\",\"value\":1}]}"), 400);
    assert_int_equal(query(f, "{\"field\":\"f\",\"nearest\":{\"p\":[0,0,0]},\"aggregate\":{}}"), 400);
    assert_int_equal(query(f, "{\"field\":\"g\"}"), 404);
    assert_int_equal(query(f, "{\"field\":\"f\",\n\"box\":}"), 400);
    assert_non_null(strstr(body(f), "\"line\":2,\"column\":7"));
}

static int fake_lang(void *user, lm_db *db, const char *text, size_t len, struct lm_net_buf *out,
                     struct lm_error *err)
{
    (void)db;
    ++*(int *)user;
    if (len >= 6 && !memcmp(text, "SELECT", 6)) {
        lm_net_buf_printf(out, "{\"echo\":%zu}", len);
        return 0;
    }
    *err = (struct lm_error){.code = LM_ESYNTAX, .line = 1, .column = 1, .offset = -1};
    snprintf(err->message, sizeof err->message, "expected SELECT");
    return LM_ESYNTAX;
}

static void test_query_language_plugs_in_for_text(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(lm_api_query(f->db, "SELECT x", 8, NULL, NULL, &f->out), 501);
    int calls = 0;
    assert_int_equal(lm_api_query(f->db, "SELECT x", 8, fake_lang, &calls, &f->out), 200);
    assert_string_equal(body(f), "{\"echo\":8}");
    assert_int_equal(lm_api_query(f->db, "DELETE", 6, fake_lang, &calls, &f->out), 400);
    assert_non_null(strstr(body(f), "\"line\":1,\"column\":1"));
    assert_int_equal(calls, 2);
}

static int budget;
static _Bool fail_after(size_t n)
{
    (void)n;
    return budget-- > 0;
}

static void test_out_of_memory_inserts_nothing(void **state)
{
    struct fixture *f = *state;
    create(f);
    const char *batch = "{\"x\":[1,2,3],\"y\":[0,0,0],\"z\":[0,0,0],\"tag\":[1,2,3]}";
    int status = 0;
    for (int k = 0; k < 200 && status != 200; k++) {
        budget = k;
        uint64_t lsn;
        size_t n;
        lm_alloc_set_hook(fail_after);
        status = insert(f, batch, &lsn, &n);
        lm_alloc_set_hook(NULL);
        struct lm_field_info info;
        lm_field_info(f->db, "f", &info, NULL);
        assert_int_equal(info.n_samples, status == 200 ? 3 : 0);
        assert_true(status == 200 || status >= 400);
    }
    assert_int_equal(status, 200);
}

/* ---------------------------------------------------------------- server lifecycle */

static void on_done(void *user) { ++*(int *)user; }

static void test_server_listens_refuses_taken_ports_and_shuts_down(void **state)
{
    struct fixture *f = *state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct lm_net_opts o = {.db = f->db, .loop = &loop, .port = 0, .token = "short"};
    lm_net_server *s = NULL, *t = NULL;
    struct lm_error err = {0};
    assert_int_equal(lm_net_server_open(&o, &s, &err), LM_EBADARG);
    o.token = "a-long-enough-token";
    assert_int_equal(lm_net_server_open(&o, &s, &err), 0);
    int port = lm_net_server_port(s);
    assert_true(port > 0);
    o.port = port;
    assert_int_equal(lm_net_server_open(&o, &t, &err), -EADDRINUSE);
    assert_non_null(strstr(err.message, "cannot listen"));
    int done = 0;
    uv_run(&loop, UV_RUN_NOWAIT);
    lm_net_server_notify(s);
    lm_net_server_shutdown(s, on_done, &done);
    lm_net_server_shutdown(s, on_done, &done); /* a second call changes nothing */
    for (int i = 0; i < 500 && uv_run(&loop, UV_RUN_ONCE); i++)
        ;
    assert_int_equal(done, 1);
    assert_int_equal(uv_loop_alive(&loop), 0);
    lm_net_server_free(s);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fields_are_created_and_listed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deferred_writes_encode_records_and_apply_nothing,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_inserts_take_columns_or_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_inserts_change_nothing_and_say_why, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queries_map_onto_the_c_api, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_language_plugs_in_for_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_memory_inserts_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_listens_refuses_taken_ports_and_shuts_down, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
