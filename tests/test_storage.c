/* test_storage.c - durability of the database: checkpoint and log round trips, power
 * loss through the fault-injecting backend, failing fsync and ENOSPC, corrupt and
 * newer-format files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"
#include "io.h"
#include "lumadb.h"
#include "tmpdir.h"

static const char *FIELD = "light";

static void make_field(lm_db *db)
{
    struct lm_field_opts o = {.voxel_size = 0.5f, .chunk_edge = 8, .n_user_columns = 1};
    strcpy(o.user_columns[0].name, "id");
    o.user_columns[0].type = LM_TYPE_I32;
    struct lm_error e;
    assert_int_equal(lm_field_create(db, FIELD, &o, &e), 0);
}

/* Batch k: n rows with ids k*1000 + i, positions spread over several chunks. */
static int insert_batch(lm_db *db, int k, int n)
{
    float x[1000], y[1000], z[1000], in[1000], dx[1000], dy[1000], dz[1000];
    int32_t id[1000];
    int64_t t[1000];
    for (int i = 0; i < n; i++) {
        x[i] = (float)((k * 37 + i * 13) % 200) * 0.11f - 10;
        y[i] = (float)((k * 11 + i * 7) % 150) * 0.13f - 9;
        z[i] = (float)(i % 17) * 0.3f;
        in[i] = (float)(k % 7) + (float)i * 0.001f;
        dx[i] = 0;
        dy[i] = i % 2 ? 1.0f : -1.0f;
        dz[i] = 0;
        id[i] = k * 1000 + i;
        t[i] = k;
    }
    struct lm_batch b = {.n = (size_t)n, .x = x, .y = y, .z = z, .dx = dx, .dy = dy, .dz = dz,
                         .intensity = in, .t = t, .n_user = 1, .user = {id}};
    return lm_insert(db, FIELD, &b, NULL, NULL);
}

/* Number of rows whose id falls in batch k. */
static uint64_t rows_of_batch(lm_db *db, int k)
{
    struct lm_selection sel = {.n_filters = 1,
                               .filters = {{LM_COL_USER, LM_CMP_BETWEEN, k * 1000.0,
                                            k * 1000.0 + 999}}};
    struct lm_aggregate a;
    assert_int_equal(lm_aggregate(db, FIELD, &sel, LM_COL_USER, &a, NULL), 0);
    return a.count;
}

static void total(lm_db *db, struct lm_aggregate *a)
{
    struct lm_selection all = {0};
    assert_int_equal(lm_aggregate(db, FIELD, &all, LM_COL_INTENSITY, a, NULL), 0);
}

static void reopen_survives_checkpoints_and_log(void **state)
{
    (void)state;
    char dir[128];
    assert_int_equal(tmpdir_make("lumadb-storage", dir, sizeof dir), 0);
    struct lm_db_opts o = {.create = true, .sync = LM_SYNC_ALWAYS, .checkpoint_bytes = 20000};
    lm_db *db;
    struct lm_error e;
    assert_int_equal(lm_db_open(dir, &o, &db, &e), 0);
    make_field(db);
    for (int k = 0; k < 40; k++) /* small checkpoint threshold: several checkpoints */
        assert_int_equal(insert_batch(db, k, 50 + k), 0);
    struct lm_selection sel = {.region = {.kind = LM_REGION_SPHERE, .center = {0, 0, 0},
                                          .radius = 3}};
    uint64_t deleted;
    assert_int_equal(lm_delete(db, FIELD, &sel, &deleted, NULL, &e), 0);
    assert_true(deleted > 0);
    assert_int_equal(lm_update(db, FIELD, NULL, LM_COL_T, 77, NULL, NULL, &e), 0);
    struct lm_db_stats st;
    assert_int_equal(lm_db_stats(db, &st), 0);
    assert_true(st.checkpoint_lsn > 0); /* the threshold forced checkpoints */
    struct lm_aggregate before, after;
    total(db, &before);
    struct lm_voxel v0;
    int32_t vc[3] = {0, 0, 0};
    int has_v0 = lm_voxel_get(db, FIELD, vc, &v0);
    uint64_t lsn = lm_db_lsn(db);
    /* crash: no final checkpoint, the tail lives only in the log */
    lm__db_abandon(db);
    assert_int_equal(lm_db_open(dir, &o, &db, &e), 0);
    assert_int_equal(lm_db_lsn(db), lsn);
    total(db, &after);
    assert_int_equal(after.count, before.count);
    assert_true(after.sum == before.sum);
    struct lm_aggregate t;
    assert_int_equal(lm_aggregate(db, FIELD, NULL, LM_COL_T, &t, NULL), 0);
    assert_true(t.min == 77 && t.max == 77);
    struct lm_voxel v1;
    assert_int_equal(lm_voxel_get(db, FIELD, vc, &v1), has_v0);
    if (!has_v0)
        assert_int_equal(v1.count, v0.count);
    /* clean close writes a checkpoint; reopen loads it with an empty log */
    lm_db_close(db);
    assert_int_equal(lm_db_open(dir, &o, &db, &e), 0);
    total(db, &after);
    assert_int_equal(after.count, before.count);
    assert_int_equal(lm_db_stats(db, &st), 0);
    assert_int_equal(st.checkpoint_lsn, lsn);
    /* a dropped field stays dropped */
    assert_int_equal(lm_field_drop(db, FIELD, &e), 0);
    lm_db_close(db);
    assert_int_equal(lm_db_open(dir, &o, &db, &e), 0);
    struct lm_field_info info;
    assert_int_equal(lm_field_info(db, FIELD, &info, NULL), LM_ENOFIELD);
    lm_db_close(db);
    tmpdir_remove(dir);
}

static void power_loss_keeps_every_acknowledged_batch(void **state)
{
    (void)state;
    for (int round = 0; round < 12; round++) {
        char dir[128];
        assert_int_equal(tmpdir_make("lumadb-storage", dir, sizeof dir), 0);
        struct lm_io *io;
        assert_int_equal(lm_io_fault_new(lm_io_posix(), 1000 + (uint64_t)round, &io), 0);
        struct lm_db_opts o = {.create = true,
                               .sync = round % 2 ? LM_SYNC_ALWAYS : LM_SYNC_GROUP,
                               .checkpoint_bytes = 30000, .io = io};
        lm_db *db;
        struct lm_error e;
        assert_int_equal(lm_db_open(dir, &o, &db, &e), 0);
        make_field(db);
        int acked = 0;
        for (int k = 0; k < 10 + round * 3; k++)
            if (insert_batch(db, k, 20 + (k * 7) % 60) == 0)
                acked = k + 1;
        /* power loss: unsynced data dropped, the last write torn */
        lm__db_abandon(db);
        assert_int_equal(lm_io_fault_crash(io, LM_IO_FAULT_TEAR), 0);
        lm_io_fault_free(io);
        struct lm_db_opts plain = {.create = false, .sync = LM_SYNC_ALWAYS};
        assert_int_equal(lm_db_open(dir, &plain, &db, &e), 0);
        for (int k = 0; k < acked; k++)
            assert_int_equal(rows_of_batch(db, k), (uint64_t)(20 + (k * 7) % 60));
        lm_db_close(db);
        tmpdir_remove(dir);
    }
}

static void failing_fsync_acknowledges_nothing(void **state)
{
    (void)state;
    char dir[128];
    assert_int_equal(tmpdir_make("lumadb-storage", dir, sizeof dir), 0);
    struct lm_io *io;
    assert_int_equal(lm_io_fault_new(lm_io_posix(), 7, &io), 0);
    struct lm_db_opts o = {.create = true, .sync = LM_SYNC_ALWAYS, .io = io};
    lm_db *db;
    struct lm_error e;
    assert_int_equal(lm_db_open(dir, &o, &db, &e), 0);
    make_field(db);
    assert_int_equal(insert_batch(db, 1, 10), 0);
    lm_io_fault_fail(io, LM_IO_OP_FDATASYNC, 1, EIO, true);
    int rc = insert_batch(db, 2, 10);
    assert_int_equal(rc, -EIO);
    /* sticky: the database refuses work until reopened */
    assert_int_equal(insert_batch(db, 3, 10), LM_EFAILED);
    struct lm_aggregate a;
    assert_int_equal(lm_aggregate(db, FIELD, NULL, LM_COL_USER, &a, &e), LM_EFAILED);
    lm__db_abandon(db);
    lm_io_fault_crash(io, 0);
    lm_io_fault_free(io);
    assert_int_equal(lm_db_open(dir, NULL, &db, &e), 0);
    assert_int_equal(rows_of_batch(db, 1), 10);
    assert_int_equal(rows_of_batch(db, 3), 0);
    lm_db_close(db);
    tmpdir_remove(dir);
}

static void full_disk_is_an_error_not_a_loss(void **state)
{
    (void)state;
    char dir[128];
    assert_int_equal(tmpdir_make("lumadb-storage", dir, sizeof dir), 0);
    struct lm_io *io;
    assert_int_equal(lm_io_fault_new(lm_io_posix(), 9, &io), 0);
    struct lm_db_opts o = {.create = true, .sync = LM_SYNC_ALWAYS, .io = io};
    lm_db *db;
    struct lm_error e;
    assert_int_equal(lm_db_open(dir, &o, &db, &e), 0);
    make_field(db);
    assert_int_equal(insert_batch(db, 1, 30), 0);
    lm_io_fault_fail(io, LM_IO_OP_PWRITE, 1, ENOSPC, true);
    assert_int_equal(insert_batch(db, 2, 30), -ENOSPC);
    assert_non_null(strstr(e.message, "") );
    lm__db_abandon(db);
    lm_io_fault_free(io);
    assert_int_equal(lm_db_open(dir, NULL, &db, &e), 0);
    assert_int_equal(rows_of_batch(db, 1), 30);
    lm_db_close(db);
    tmpdir_remove(dir);
}

/* Flips one byte of a file at `off` (from the end when negative). */
static void flip(const char *path, long off)
{
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, off, off < 0 ? SEEK_END : SEEK_SET);
    int c = fgetc(f);
    fseek(f, -1, SEEK_CUR);
    fputc(c ^ 0x5a, f);
    fclose(f);
}

static void checkpointed_db(char *dir, size_t cap)
{
    assert_int_equal(tmpdir_make("lumadb-storage", dir, cap), 0);
    lm_db *db;
    assert_int_equal(lm_db_open(dir, NULL, &db, NULL), 0);
    make_field(db);
    for (int k = 0; k < 5; k++)
        assert_int_equal(insert_batch(db, k, 200), 0);
    lm_db_close(db); /* checkpoint */
}

static char *segment_of(const char *dir)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ls %s/chunks-*.lmc", dir);
    FILE *p = popen(cmd, "r");
    static char path[256];
    assert_non_null(fgets(path, sizeof path, p));
    pclose(p);
    path[strcspn(path, "\n")] = 0;
    return path;
}

static void corrupt_files_are_named_with_offsets(void **state)
{
    (void)state;
    char dir[128], path[256];
    struct lm_error e;
    lm_db *db = NULL;
    /* a byte inside a chunk block */
    checkpointed_db(dir, sizeof dir);
    flip(segment_of(dir), 100);
    assert_int_equal(lm_db_open(dir, NULL, &db, &e), LM_ECORRUPT);
    assert_null(db);
    assert_non_null(strstr(e.message, "chunks-"));
    assert_non_null(strstr(e.message, "checksum"));
    assert_true(e.offset >= 32);
    tmpdir_remove(dir);
    /* the manifest */
    checkpointed_db(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/MANIFEST", dir);
    flip(path, 30);
    assert_int_equal(lm_db_open(dir, NULL, &db, &e), LM_ECORRUPT);
    assert_non_null(strstr(e.message, "MANIFEST"));
    /* a newer format version */
    flip(path, 30); /* restore */
    FILE *f = fopen(path, "r+b");
    fseek(f, 8, SEEK_SET);
    uint32_t v = 99;
    fwrite(&v, 4, 1, f);
    fclose(f);
    assert_int_equal(lm_db_open(dir, NULL, &db, &e), LM_EVERSION);
    assert_non_null(strstr(e.message, "version 99"));
    tmpdir_remove(dir);
    /* a segment header */
    checkpointed_db(dir, sizeof dir);
    flip(segment_of(dir), 3);
    assert_int_equal(lm_db_open(dir, NULL, &db, &e), LM_ECORRUPT);
    assert_non_null(strstr(e.message, "magic"));
    tmpdir_remove(dir);
}

static void orphan_segments_are_removed(void **state)
{
    (void)state;
    char dir[128], path[256];
    checkpointed_db(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/chunks-00000000000fffff.lmc", dir);
    FILE *f = fopen(path, "wb");
    fputs("left by a crash between a segment and its manifest", f);
    fclose(f);
    lm_db *db;
    assert_int_equal(lm_db_open(dir, NULL, &db, NULL), 0);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(rows_of_batch(db, 4), 200);
    lm_db_close(db);
    tmpdir_remove(dir);
}

static void read_only_handle_follows_the_writer(void **state)
{
    (void)state;
    char dir[128];
    assert_int_equal(tmpdir_make("lumadb-storage", dir, sizeof dir), 0);
    struct lm_db_opts wo = {.create = true, .sync = LM_SYNC_NONE};
    lm_db *w, *r;
    struct lm_error e;
    assert_int_equal(lm_db_open(dir, &wo, &w, &e), 0);
    make_field(w);
    assert_int_equal(insert_batch(w, 1, 40), 0);
    struct lm_db_opts ro = {.read_only = true};
    assert_int_equal(lm_db_open(dir, &ro, &r, &e), 0);
    assert_int_equal(rows_of_batch(r, 1), 40); /* from the log: no checkpoint yet */
    assert_int_equal(insert_batch(w, 2, 30), 0);
    assert_int_equal(rows_of_batch(r, 2), 0); /* not until it refreshes */
    assert_int_equal(lm_db_refresh(r, &e), 0);
    assert_int_equal(rows_of_batch(r, 2), 30);
    assert_int_equal(lm_db_lsn(r), lm_db_lsn(w));
    /* a checkpoint truncates the log the reader was following */
    assert_int_equal(insert_batch(w, 3, 20), 0);
    assert_int_equal(lm_db_checkpoint(w, &e), 0);
    assert_int_equal(insert_batch(w, 4, 10), 0);
    assert_int_equal(lm_db_refresh(r, &e), 0);
    for (int k = 1; k <= 4; k++)
        assert_int_equal(rows_of_batch(r, k), (uint64_t)(k == 1 ? 40 : k == 2 ? 30 : k == 3 ? 20 : 10));
    assert_int_equal(lm_db_lsn(r), lm_db_lsn(w));
    /* the reader cannot write */
    assert_int_equal(insert_batch(r, 5, 1), LM_EREADONLY);
    lm_db_close(r);
    lm_db_close(w);
    tmpdir_remove(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reopen_survives_checkpoints_and_log),
        cmocka_unit_test(power_loss_keeps_every_acknowledged_batch),
        cmocka_unit_test(failing_fsync_acknowledges_nothing),
        cmocka_unit_test(full_disk_is_an_error_not_a_loss),
        cmocka_unit_test(corrupt_files_are_named_with_offsets),
        cmocka_unit_test(orphan_segments_are_removed),
        cmocka_unit_test(read_only_handle_follows_the_writer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
