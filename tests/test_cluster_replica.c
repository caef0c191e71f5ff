/* test_cluster_replica.c - the engine side of replication without processes: replica
 * handles (records applied at given sequence numbers, rejected whole, snapshots and
 * restores) and the wire formats and member lists of the cluster. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "db.h"
#include "record.h"
#include "repl.h"
#include "repl_wire.h"
#include "tmpdir.h"

static const struct lm_field_opts *schema(void)
{
    static struct lm_field_opts fo = {.voxel_size = 0.5f, .chunk_edge = 8,
                                      .n_user_columns = 1};
    strcpy(fo.user_columns[0].name, "id");
    fo.user_columns[0].type = LM_TYPE_I32;
    return &fo;
}

/* A batch of n rows, ids from `first`. */
struct batch {
    float x[64], y[64], z[64];
    int32_t id[64];
    struct lm_batch b;
};

static void make_batch(struct batch *bt, int n, int first)
{
    for (int i = 0; i < n; i++) {
        bt->x[i] = (float)(i % 9) * 1.5f - 6;
        bt->y[i] = (float)(i % 5) * 2.5f;
        bt->z[i] = (float)(first % 7);
        bt->id[i] = first + i;
    }
    bt->b = (struct lm_batch){.n = (size_t)n, .x = bt->x, .y = bt->y, .z = bt->z,
                              .n_user = 1, .user = {bt->id}};
}

/* Encodes a mutation against db's schema and applies it at lsn. */
static int apply(lm_db *db, struct lm__record *r, uint64_t lsn, uint64_t *count)
{
    void *p;
    size_t n;
    struct lm_error e;
    int rc = lm__db_encode(db, r, &p, &n, &e);
    if (rc)
        return rc;
    rc = lm__db_apply_record(db, (uint16_t)r->type, p, n, lsn, count, &e);
    lm_free(p);
    return rc;
}

static int create(lm_db *db, uint64_t lsn)
{
    struct lm__record r = {.type = LM_REC_FIELD_CREATE, .field = "rays", .opts = *schema()};
    return apply(db, &r, lsn, NULL);
}

static int insert(lm_db *db, int n, int first, uint64_t lsn)
{
    struct batch bt;
    make_batch(&bt, n, first);
    struct lm__record r = {.type = LM_REC_INSERT, .field = "rays", .batch = bt.b};
    return apply(db, &r, lsn, NULL);
}

static lm_db *open_replica(const char *dir)
{
    lm_db *db = NULL;
    struct lm_error e;
    int rc = lm__db_open_replica(dir, NULL, &db, &e);
    if (rc)
        fail_msg("open replica %s: %s", dir, e.message);
    return db;
}

static struct lm_wire_digest *digest(lm_db *db)
{
    struct lm_wire_buf b = {0};
    struct lm_wire_digest *d = NULL;
    assert_int_equal(lm_wire_digest(&b, db, lm_db_lsn(db), NULL), 0);
    assert_int_equal(lm_wire_digest_decode(b.p, b.n, &d), 0);
    lm_wire_buf_free(&b);
    return d;
}

static void replica_refuses_public_writes_and_starts_empty(void **state)
{
    (void)state;
    char dir[128];
    assert_int_equal(tmpdir_make("lumadb-replica", dir, sizeof dir), 0);
    lm_db *db = open_replica(dir);
    struct lm_error e;
    assert_int_equal(lm_field_create(db, "rays", schema(), &e), LM_EREADONLY);
    struct batch bt;
    make_batch(&bt, 3, 0);
    assert_int_equal(lm_insert(db, "rays", &bt.b, NULL, &e), LM_EREADONLY);
    assert_int_equal(lm_field_drop(db, "rays", &e), LM_EREADONLY);
    assert_int_equal(create(db, 3), 0);
    assert_int_equal(insert(db, 10, 0, 7), 0);
    assert_int_equal(lm_db_lsn(db), 7);
    assert_int_equal(lm_db_checkpoint(db, &e), 0);
    lm_db_close(db);
    /* Raft restores and replays into it at every start: it opens empty */
    db = open_replica(dir);
    size_t n = 99;
    assert_int_equal(lm_field_list(db, NULL, 0, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(lm_db_lsn(db), 0);
    lm_db_close(db);
    tmpdir_remove(dir);
}

static void records_apply_at_given_sequence_numbers(void **state)
{
    (void)state;
    char dir[128];
    assert_int_equal(tmpdir_make("lumadb-replica", dir, sizeof dir), 0);
    lm_db *db = open_replica(dir);
    assert_int_equal(create(db, 2), 0);
    assert_int_equal(insert(db, 40, 0, 5), 0);
    assert_int_equal(insert(db, 20, 100, 6), 0);
    struct lm_selection sel = {.n_filters = 1,
                               .filters = {{.column = LM_COL_USER, .cmp = LM_CMP_LT, .a = 10}}};
    struct lm__record del = {.type = LM_REC_DELETE, .field = "rays", .sel = sel};
    uint64_t count = 0;
    assert_int_equal(apply(db, &del, 9, &count), 0);
    assert_int_equal(count, 10);
    struct lm__record upd = {.type = LM_REC_UPDATE, .field = "rays",
                             .column = LM_COL_INTENSITY, .value = 2.5};
    assert_int_equal(apply(db, &upd, 12, &count), 0);
    assert_int_equal(count, 50);
    assert_int_equal(lm_db_lsn(db), 12);
    struct lm_field_info info;
    assert_int_equal(lm_field_info(db, "rays", &info, NULL), 0);
    assert_int_equal(info.n_samples, 50);
    assert_int_equal(info.lsn, 12);
    struct lm_aggregate agg;
    assert_int_equal(lm_aggregate(db, "rays", NULL, LM_COL_INTENSITY, &agg, NULL), 0);
    assert_true(agg.min == 2.5 && agg.max == 2.5);
    lm_db_close(db);
    tmpdir_remove(dir);
}

static void rejected_records_change_nothing(void **state)
{
    (void)state;
    char dir[128];
    assert_int_equal(tmpdir_make("lumadb-replica", dir, sizeof dir), 0);
    lm_db *db = open_replica(dir);
    assert_int_equal(create(db, 1), 0);
    assert_int_equal(insert(db, 5, 0, 2), 0);
    struct lm_wire_digest *before = digest(db);
    struct lm_error e;
    /* checked at the leader against a state where it fit, applied where it does not */
    struct batch bt;
    make_batch(&bt, 4, 50);
    uint32_t sizes[1] = {4};
    struct lm__record_enc enc;
    lm__record_insert(&enc, "gone", &bt.b, sizes);
    struct lm_wire_buf p = {0};
    for (int i = 0; i < enc.n_iov; i++)
        lm_wire_put(&p, enc.iov[i].iov_base, enc.iov[i].iov_len);
    assert_int_equal(lm__db_apply_record(db, LM_REC_INSERT, p.p, p.n, 3, NULL, &e),
                     LM_ENOFIELD);
    assert_int_equal(lm__db_check_record(db, LM_REC_INSERT, p.p, p.n, true, &e), LM_ENOFIELD);
    lm_wire_buf_free(&p);
    /* a record for a schema with no user column: does not fit this one */
    struct lm_batch plain = bt.b;
    plain.n_user = 0;
    lm__record_insert(&enc, "rays", &plain, sizes);
    for (int i = 0; i < enc.n_iov; i++)
        lm_wire_put(&p, enc.iov[i].iov_base, enc.iov[i].iov_len);
    p.n -= 4; /* and one value short */
    assert_int_equal(lm__db_apply_record(db, LM_REC_INSERT, p.p, p.n, 3, NULL, &e),
                     LM_ESCHEMA);
    lm_wire_buf_free(&p);
    /* a bad value: the verdict names the sample */
    bt.x[2] = 1.0f / 0.0f;
    lm__record_insert(&enc, "rays", &bt.b, sizes);
    for (int i = 0; i < enc.n_iov; i++)
        lm_wire_put(&p, enc.iov[i].iov_base, enc.iov[i].iov_len);
    assert_int_equal(lm__db_apply_record(db, LM_REC_INSERT, p.p, p.n, 3, NULL, &e),
                     LM_EBADVALUE);
    assert_non_null(strstr(e.message, "sample 2"));
    lm_wire_buf_free(&p);
    assert_int_equal(create(db, 4), LM_EFIELDEXISTS);
    assert_int_equal(insert(db, 3, 0, 2), LM_EBADARG); /* not after the last */
    struct lm__record r = {.type = LM_REC_FIELD_CREATE, .field = "two", .opts = *schema()};
    r.opts.voxel_size = -1;
    void *out;
    size_t n;
    assert_int_equal(lm__db_encode(db, &r, &out, &n, &e), LM_EBADARG);
    assert_int_equal(lm_db_lsn(db), 2);
    struct lm_wire_digest *after = digest(db);
    char why[256];
    assert_true(lm_wire_digest_same(before, after, why, sizeof why));
    lm_wire_digest_free(before);
    lm_wire_digest_free(after);
    /* the handle still works */
    assert_int_equal(insert(db, 3, 60, 5), 0);
    lm_db_close(db);
    tmpdir_remove(dir);
}

static _Atomic long allocations_left;

static bool fail_after(size_t n)
{
    (void)n;
    return --allocations_left >= 0;
}

/* Out of memory at every point of an apply (inserts and deletes): the replica is failed
 * (LM_EFAILED until rebuilt), never left changed half-way and still answering. */
static void out_of_memory_while_applying_fails_the_replica(void **state)
{
    (void)state;
    char dir[128];
    assert_int_equal(tmpdir_make("lumadb-replica", dir, sizeof dir), 0);
    for (int type = LM_REC_INSERT; type <= LM_REC_DELETE; type++) {
        long allow = 0;
        for (;; allow++) {
            assert_true(allow < 10000);
            lm_db *db = open_replica(dir);
            assert_int_equal(create(db, 1), 0);
            assert_int_equal(insert(db, 5, 0, 2), 0);
            struct batch bt;
            make_batch(&bt, 30, 100);
            struct lm__record r = {.type = (enum lm__record_type)type, .field = "rays",
                                   .batch = bt.b};
            void *p;
            size_t n;
            assert_int_equal(lm__db_encode(db, &r, &p, &n, NULL), 0);
            allocations_left = allow;
            lm_alloc_set_hook(fail_after);
            int rc = lm__db_apply_record(db, (uint16_t)type, p, n, 3, NULL, NULL);
            lm_alloc_set_hook(NULL);
            lm_free(p);
            struct lm_field_info info;
            int after = lm_field_info(db, "rays", &info, NULL);
            lm_db_close(db);
            if (!rc) {
                assert_int_equal(after, 0);
                assert_int_equal(info.n_samples, type == LM_REC_INSERT ? 35 : 0);
                break;
            }
            assert_int_equal(rc, -ENOMEM);
            assert_int_equal(after, LM_EFAILED);
        }
        fprintf(stderr, "record type %d: out of memory at each of its first %ld "
                "allocations fails the replica\n", type, allow);
    }
    tmpdir_remove(dir);
}

static void snapshot_restores_the_same_state_elsewhere(void **state)
{
    (void)state;
    char a_dir[128], b_dir[128];
    assert_int_equal(tmpdir_make("lumadb-replica", a_dir, sizeof a_dir), 0);
    assert_int_equal(tmpdir_make("lumadb-replica", b_dir, sizeof b_dir), 0);
    lm_db *a = open_replica(a_dir), *b = open_replica(b_dir);
    struct lm__db_file *files = NULL;
    size_t nf = 99;
    uint64_t lsn = 99;
    /* nothing yet: no files */
    assert_int_equal(lm__db_snapshot(a, &files, &nf, &lsn, NULL), 0);
    assert_int_equal(nf, 0);
    assert_int_equal(lsn, 0);
    lm__db_files_free(files, nf);
    assert_int_equal(create(a, 1), 0);
    for (int k = 0; k < 20; k++)
        assert_int_equal(insert(a, 1 + k % 50, k * 100, (uint64_t)k + 2), 0);
    assert_int_equal(lm__db_snapshot(a, &files, &nf, &lsn, NULL), 0);
    assert_int_equal(lsn, 21);
    assert_true(nf >= 2); /* the manifest and a segment */
    assert_int_equal(insert(b, 3, 0, 1), LM_ENOFIELD); /* b is empty */
    struct lm_error e;
    assert_int_equal(lm__db_restore(b, files, nf, &e), 0);
    assert_int_equal(lm_db_lsn(b), 21);
    /* both go on from there alike; a second snapshot is incremental on disk */
    for (int k = 20; k < 30; k++) {
        assert_int_equal(insert(a, 7, k * 100, (uint64_t)k + 2), 0);
        assert_int_equal(insert(b, 7, k * 100, (uint64_t)k + 2), 0);
    }
    struct lm_wire_digest *da = digest(a), *db = digest(b);
    char why[256];
    if (!lm_wire_digest_same(da, db, why, sizeof why))
        fail_msg("restored replica differs: %s", why);
    lm_wire_digest_free(da);
    lm_wire_digest_free(db);
    lm__db_files_free(files, nf);
    /* a file that is no checkpoint file is refused before anything changes */
    struct lm__db_file bad = {.name = "../etc", .data = "x", .n = 1};
    assert_int_equal(lm__db_restore(b, &bad, 1, &e), LM_ECORRUPT);
    assert_int_equal(lm_db_lsn(b), 31);
    /* an empty snapshot empties the replica */
    assert_int_equal(lm__db_restore(b, NULL, 0, &e), 0);
    size_t n = 9;
    assert_int_equal(lm_field_list(b, NULL, 0, &n), 0);
    assert_int_equal(n, 0);
    lm_db_close(a);
    lm_db_close(b);
    tmpdir_remove(a_dir);
    tmpdir_remove(b_dir);
}

/* ---------------------------------------------------------------- wire formats */

static void frames_rows_and_fields_round_trip(void **state)
{
    (void)state;
    struct lm_wire_buf b = {0};
    const uint8_t body[5] = {1, 2, 3, 4, 5};
    struct lm_wire_request rq = {.op = LM_WIRE_WRITE, .flags = 1, .type = 3, .client_id = 77,
                                 .request_id = 88, .body = body, .n = 5};
    lm_wire_request(&b, &rq);
    assert_int_equal(lm_wire_frame_length(b.p, 3), 0);
    assert_int_equal(lm_wire_frame_length(b.p, b.n), 29);
    struct lm_wire_request got;
    assert_int_equal(lm_wire_parse_request(b.p, b.n, &got), 0);
    assert_true(got.op == 1 && got.flags == 1 && got.type == 3 && got.client_id == 77 &&
                got.request_id == 88 && got.n == 5 && !memcmp(got.body, body, 5));
    assert_int_equal(lm_wire_parse_request(b.p, b.n - 1, &got), LM_ECORRUPT);
    uint32_t huge = LM_WIRE_MAX_FRAME + 1;
    memcpy(b.p, &huge, 4);
    assert_int_equal(lm_wire_frame_length(b.p, b.n), LM_ELIMIT);
    lm_wire_buf_free(&b);

    /* rows from a real database come back equal */
    char dir[128];
    assert_int_equal(tmpdir_make("lumadb-replica", dir, sizeof dir), 0);
    lm_db *db = open_replica(dir);
    assert_int_equal(create(db, 1), 0);
    assert_int_equal(insert(db, 33, 5, 2), 0);
    struct lm_rows *rows, *back;
    assert_int_equal(lm_select(db, "rays", NULL, 0, &rows, NULL), 0);
    lm_wire_rows(&b, rows);
    assert_int_equal(lm_wire_rows_decode(b.p, b.n, &back), 0);
    assert_int_equal(back->n, 33);
    assert_int_equal(back->n_user, 1);
    for (size_t i = 0; i < rows->n; i++) {
        assert_true(back->x[i] == rows->x[i] && back->z[i] == rows->z[i] &&
                    back->intensity[i] == rows->intensity[i] && back->t[i] == rows->t[i]);
        assert_int_equal(((int32_t *)back->user[0])[i], ((int32_t *)rows->user[0])[i]);
    }
    struct lm_rows *none = NULL;
    assert_int_equal(lm_wire_rows_decode(b.p, b.n - 1, &none), LM_ECORRUPT);
    lm_rows_free(back);
    lm_wire_buf_free(&b);
    lm_rows_free(rows);

    assert_int_equal(lm_wire_fields(&b, db), 0);
    struct lm_field_info *info;
    size_t n;
    assert_int_equal(lm_wire_fields_decode(b.p, b.n, &info, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(info[0].name, "rays");
    assert_int_equal(info[0].n_samples, 33);
    assert_int_equal(info[0].opts.n_user_columns, 1);
    assert_string_equal(info[0].opts.user_columns[0].name, "id");
    lm_free(info);
    assert_int_equal(lm_wire_fields_decode(b.p, b.n - 2, &info, &n), LM_ECORRUPT);
    lm_wire_buf_free(&b);

    /* a digest cut short is refused, a changed chunk is told apart */
    struct lm_wire_digest *d1 = digest(db);
    assert_int_equal(insert(db, 1, 900, 3), 0);
    struct lm_wire_digest *d2 = digest(db);
    char why[256];
    assert_false(lm_wire_digest_same(d1, d2, why, sizeof why));
    lm_wire_digest_free(d1);
    lm_wire_digest_free(d2);
    assert_int_equal(lm_wire_digest(&b, db, 3, NULL), 0);
    assert_int_equal(lm_wire_digest_decode(b.p, b.n - 3, &d1), LM_ECORRUPT);
    lm_wire_buf_free(&b);
    lm_db_close(db);
    tmpdir_remove(dir);
}

static void member_lists_parse(void **state)
{
    (void)state;
    struct lm_repl_member m[4];
    struct lm_error e;
    assert_int_equal(lm_repl_parse_members("1=127.0.0.1:7001/8001,2=10.0.0.2:7002/10.0.0.9:8002,"
                                           "3=h:7003", m, 4, &e), 3);
    assert_string_equal(m[0].address, "127.0.0.1:7001");
    assert_string_equal(m[0].client, "127.0.0.1:8001");
    assert_string_equal(m[1].client, "10.0.0.9:8002");
    assert_int_equal(m[2].id, 3);
    assert_string_equal(m[2].client, "");
    const char *bad[] = {"", "1", "x=1.2.3.4:5", "0=a:1", "1=a", "1=a:1,1=b:2", "1=a:/2",
                         "1=a:1/", "1=a:1,2=b:2,3=c:3,4=d:4,5=e:5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (lm_repl_parse_members(bad[i], m, 4, &e) != LM_EBADARG)
            fail_msg("'%s' was accepted", bad[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(replica_refuses_public_writes_and_starts_empty),
        cmocka_unit_test(records_apply_at_given_sequence_numbers),
        cmocka_unit_test(rejected_records_change_nothing),
        cmocka_unit_test(out_of_memory_while_applying_fails_the_replica),
        cmocka_unit_test(snapshot_restores_the_same_state_elsewhere),
        cmocka_unit_test(frames_rows_and_fields_round_trip),
        cmocka_unit_test(member_lists_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
