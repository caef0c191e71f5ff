/* test_db_api.c - the public API: fields, bad input rejected whole with clear errors,
 * out-of-memory atomicity, the directory lock, read-only mode, concurrent readers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "lumadb.h"

struct fixture {
    char dir[64];
    lm_db *db;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/lumadb-api-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    if (lm_db_open(f->dir, NULL, &f->db, NULL))
        return -1;
    struct lm_field_opts o = {.voxel_size = 1.0f, .n_user_columns = 1};
    strcpy(o.user_columns[0].name, "label");
    o.user_columns[0].type = LM_TYPE_I32;
    if (lm_field_create(f->db, "f", &o, NULL))
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    lm_db_close(f->db);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    int rc = system(cmd);
    free(f);
    return rc;
}

static uint64_t count(lm_db *db)
{
    struct lm_field_info info;
    assert_int_equal(lm_field_info(db, "f", &info, NULL), 0);
    return info.n_samples;
}

static void fields_are_created_listed_and_dropped(void **state)
{
    struct fixture *f = *state;
    struct lm_error e;
    struct lm_field_opts o = {.voxel_size = 0.5f};
    assert_int_equal(lm_field_create(f->db, "b_field", &o, &e), 0);
    assert_int_equal(lm_field_create(f->db, "a_field", &o, &e), 0);
    assert_int_equal(lm_field_create(f->db, "a_field", &o, &e), LM_EFIELDEXISTS);
    assert_non_null(strstr(e.message, "a_field"));
    struct lm_field_info list[8];
    size_t n;
    assert_int_equal(lm_field_list(f->db, list, 8, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(list[0].name, "a_field");
    assert_string_equal(list[1].name, "b_field");
    assert_int_equal(list[0].opts.chunk_edge, 32); /* default */
    assert_int_equal(lm_field_drop(f->db, "b_field", &e), 0);
    assert_int_equal(lm_field_drop(f->db, "b_field", &e), LM_ENOFIELD);
    assert_int_equal(lm_field_list(f->db, list, 8, &n), 0);
    assert_int_equal(n, 2);
}

static void bad_field_options_are_named(void **state)
{
    struct fixture *f = *state;
    struct lm_error e;
    struct lm_field_opts o = {.voxel_size = 0.0f};
    assert_int_equal(lm_field_create(f->db, "z", &o, &e), LM_EBADARG);
    assert_non_null(strstr(e.message, "voxel size"));
    o.voxel_size = NAN;
    assert_int_equal(lm_field_create(f->db, "z", &o, &e), LM_EBADARG);
    o.voxel_size = 1;
    o.chunk_edge = 24;
    assert_int_equal(lm_field_create(f->db, "z", &o, &e), LM_EBADARG);
    assert_non_null(strstr(e.message, "power of two"));
    o.chunk_edge = 0;
    assert_int_equal(lm_field_create(f->db, "9lives", &o, &e), LM_EBADARG);
    assert_int_equal(lm_field_create(f->db, "", &o, &e), LM_EBADARG);
    o.n_user_columns = 1;
    strcpy(o.user_columns[0].name, "intensity");
    o.user_columns[0].type = LM_TYPE_F32;
    assert_int_equal(lm_field_create(f->db, "z", &o, &e), LM_EBADARG);
    assert_non_null(strstr(e.message, "intensity"));
}

/* One valid sample batch of 3 rows, then one bad value injected per case. */
static void bad_batches_are_rejected_whole(void **state)
{
    struct fixture *f = *state;
    struct lm_error e;
    float x[3] = {0, 1, 2}, y[3] = {0, 1, 2}, z[3] = {0, 1, 2};
    float dx[3] = {1, 0, 0}, dy[3] = {0, 1, 0}, dz[3] = {0, 0, 1};
    float r[3] = {1, 0.5f, 0}, in[3] = {1, 2, 3};
    struct lm_batch ok = {.n = 3, .x = x, .y = y, .z = z, .dx = dx, .dy = dy, .dz = dz,
                          .r = r, .g = r, .b = r, .intensity = in};
    struct lm_batch b = ok;
    x[2] = NAN;
    assert_int_equal(lm_insert(f->db, "f", &b, NULL, &e), LM_EBADVALUE);
    assert_non_null(strstr(e.message, "sample 2"));
    assert_non_null(strstr(e.message, "x = nan"));
    x[2] = INFINITY;
    assert_int_equal(lm_insert(f->db, "f", &b, NULL, &e), LM_EBADVALUE);
    x[2] = 2;
    dx[1] = 0.5f; /* (0.5, 1, 0) is not unit */
    assert_int_equal(lm_insert(f->db, "f", &b, NULL, &e), LM_EBADVALUE);
    assert_non_null(strstr(e.message, "direction"));
    dx[1] = 0;
    dx[0] = 0; /* zero direction */
    assert_int_equal(lm_insert(f->db, "f", &b, NULL, &e), LM_EBADVALUE);
    dx[0] = 1;
    r[1] = 1.5f;
    assert_int_equal(lm_insert(f->db, "f", &b, NULL, &e), LM_EBADVALUE);
    assert_non_null(strstr(e.message, "colour"));
    r[1] = 0.5f;
    in[0] = -1;
    assert_int_equal(lm_insert(f->db, "f", &b, NULL, &e), LM_EBADVALUE);
    in[0] = 1;
    b.dy = NULL; /* two of three direction columns */
    assert_int_equal(lm_insert(f->db, "f", &b, NULL, &e), LM_ESCHEMA);
    b = ok;
    b.x = NULL;
    assert_int_equal(lm_insert(f->db, "f", &b, NULL, &e), LM_ESCHEMA);
    b = ok;
    b.n_user = 2;
    assert_int_equal(lm_insert(f->db, "f", &b, NULL, &e), LM_ESCHEMA);
    b = ok;
    x[1] = 1e30f; /* beyond the addressable grid */
    assert_int_equal(lm_insert(f->db, "f", &b, NULL, &e), LM_EBADVALUE);
    x[1] = 1;
    assert_int_equal(lm_insert(f->db, "nope", &ok, NULL, &e), LM_ENOFIELD);
    assert_non_null(strstr(e.message, "nope"));
    /* nothing of the rejected batches was applied */
    assert_int_equal(count(f->db), 0);
    uint64_t lsn = 0;
    assert_int_equal(lm_insert(f->db, "f", &ok, &lsn, &e), 0);
    assert_int_equal(count(f->db), 3);
    assert_true(lsn > 0);
}

static void bad_selections_are_rejected(void **state)
{
    struct fixture *f = *state;
    struct lm_error e;
    struct lm_rows *rows = NULL;
    struct lm_selection sel = {.region = {.kind = LM_REGION_SPHERE, .radius = -2}};
    assert_int_equal(lm_select(f->db, "f", &sel, 0, &rows, &e), LM_EBADARG);
    sel = (struct lm_selection){.n_filters = 1, .filters = {{.column = 77, .cmp = LM_CMP_LT}}};
    assert_int_equal(lm_select(f->db, "f", &sel, 0, &rows, &e), LM_ENOCOLUMN);
    sel.filters[0] = (struct lm_filter){LM_COL_INTENSITY, LM_CMP_LT, NAN, 0};
    assert_int_equal(lm_select(f->db, "f", &sel, 0, &rows, &e), LM_EBADARG);
    assert_null(rows);
    float p[3] = {NAN, 0, 0}, d[3] = {0, 0, 2}, rgb[3];
    assert_int_equal(lm_nearest(f->db, "f", p, 3, 0, NULL, &rows, &e), LM_EBADARG);
    p[0] = 0;
    assert_int_equal(lm_radiance(f->db, "f", p, d, rgb, NULL, &e), LM_EBADARG);
    struct lm_ray_result *ray = NULL;
    assert_int_equal(lm_raycast(f->db, "f", p, d, 10, LM_RAY_FIRST, &ray, &e), LM_EBADARG);
    d[2] = 1;
    assert_int_equal(lm_raycast(f->db, "f", p, d, -1, LM_RAY_FIRST, &ray, &e), LM_EBADARG);
    assert_null(ray);
    assert_int_equal(lm_column_find("INTENSITY", NULL), LM_COL_INTENSITY);
    assert_int_equal(lm_column_find("nothing", NULL), LM_ENOCOLUMN);
}

static void updates_reject_positions_and_bad_values(void **state)
{
    struct fixture *f = *state;
    struct lm_error e;
    struct lm_selection all = {0};
    assert_int_equal(lm_update(f->db, "f", &all, LM_COL_X, 1, NULL, NULL, &e), LM_EBADARG);
    assert_int_equal(lm_update(f->db, "f", &all, LM_COL_R, 2, NULL, NULL, &e), LM_EBADVALUE);
    assert_int_equal(lm_update(f->db, "f", &all, LM_COL_USER, 0.5, NULL, NULL, &e), LM_EBADVALUE);
    assert_int_equal(lm_update(f->db, "f", &all, LM_COL_USER + 1, 1, NULL, NULL, &e), LM_ENOCOLUMN);
}

static long alloc_budget;
static _Bool limited_alloc(size_t n)
{
    (void)n;
    return __atomic_sub_fetch(&alloc_budget, 1, __ATOMIC_RELAXED) >= 0;
}

static void out_of_memory_during_insert_changes_nothing(void **state)
{
    struct fixture *f = *state;
    enum { N = 2000 };
    static float x[N], y[N], z[N];
    static int32_t label[N];
    for (int i = 0; i < N; i++) {
        x[i] = (float)(i % 97) * 1.7f - 60;
        y[i] = (float)(i % 89) * 1.3f - 50;
        z[i] = (float)(i % 83) * 1.1f - 40;
        label[i] = i;
    }
    struct lm_batch b = {.n = N, .x = x, .y = y, .z = z, .n_user = 1, .user = {label}};
    assert_int_equal(lm_insert(f->db, "f", &b, NULL, NULL), 0);
    struct lm_aggregate before;
    struct lm_selection all = {0};
    assert_int_equal(lm_aggregate(f->db, "f", &all, LM_COL_USER, &before, NULL), 0);
    /* Fail the k-th allocation for every k until an insert gets through. */
    int failures = 0;
    for (long k = 0;; k++) {
        alloc_budget = k;
        lm_alloc_set_hook(limited_alloc);
        int rc = lm_insert(f->db, "f", &b, NULL, NULL);
        lm_alloc_set_hook(NULL);
        if (rc == 0)
            break;
        assert_int_equal(rc, -ENOMEM);
        failures++;
        struct lm_aggregate now;
        assert_int_equal(lm_aggregate(f->db, "f", &all, LM_COL_USER, &now, NULL), 0);
        assert_int_equal(now.count, before.count);
        assert_true(now.sum == before.sum);
    }
    assert_true(failures > 5);
    assert_int_equal(count(f->db), 2 * N);
}

static void directory_lock_and_read_only(void **state)
{
    struct fixture *f = *state;
    struct lm_error e;
    lm_db *second = NULL;
    assert_int_equal(lm_db_open(f->dir, NULL, &second, &e), LM_ELOCKED);
    assert_null(second);
    struct lm_db_opts ro = {.read_only = true};
    assert_int_equal(lm_db_open(f->dir, &ro, &second, &e), 0);
    struct lm_field_opts o = {.voxel_size = 1};
    assert_int_equal(lm_field_create(second, "x", &o, &e), LM_EREADONLY);
    lm_db_close(second);
    assert_int_equal(lm_db_open("/proc/definitely/not/here", NULL, &second, &e), -ENOENT);
    assert_non_null(strstr(e.message, "/proc/definitely/not/here"));
}

struct reader_arg {
    lm_db *db;
    int bad;
};

static void *reader(void *p)
{
    struct reader_arg *a = p;
    uint64_t last = 0;
    for (int i = 0; i < 300; i++) {
        struct lm_aggregate agg;
        struct lm_selection all = {0};
        if (lm_aggregate(a->db, "f", &all, LM_COL_USER, &agg, NULL)) {
            a->bad++;
            continue;
        }
        /* writers add whole batches of 100: counts only grow, in steps of 100 */
        if (agg.count < last || agg.count % 100)
            a->bad++;
        last = agg.count;
        float q[3] = {0, 0, 0};
        struct lm_rows *rows;
        if (lm_nearest(a->db, "f", q, 5, 0, NULL, &rows, NULL) == 0)
            lm_rows_free(rows);
        else
            a->bad++;
    }
    return NULL;
}

static void readers_run_beside_a_writer(void **state)
{
    struct fixture *f = *state;
    pthread_t th[4];
    struct reader_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct reader_arg){f->db, 0};
        pthread_create(&th[i], NULL, reader, &args[i]);
    }
    float x[100], y[100], z[100];
    for (int batch = 0; batch < 200; batch++) {
        for (int i = 0; i < 100; i++) {
            x[i] = (float)((batch * 100 + i) % 301) * 0.37f;
            y[i] = (float)(i % 13) * 0.9f;
            z[i] = (float)batch * 0.05f;
        }
        struct lm_batch b = {.n = 100, .x = x, .y = y, .z = z};
        assert_int_equal(lm_insert(f->db, "f", &b, NULL, NULL), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].bad, 0);
    }
    assert_int_equal(count(f->db), 20000);
}

static void voxel_cursor_agrees_with_lookups_and_optimize_changes_no_answer(void **state)
{
    struct fixture *f = *state;
    enum { N = 5000 };
    static float x[N], y[N], z[N], in[N];
    for (int i = 0; i < N; i++) {
        x[i] = (float)((i * 37) % 101) * 0.7f - 30;
        y[i] = (float)((i * 11) % 53) * 0.9f - 20;
        z[i] = (float)(i % 29) * 1.3f;
        in[i] = (float)(i % 13);
    }
    struct lm_batch b = {.n = N, .x = x, .y = y, .z = z, .intensity = in};
    assert_int_equal(lm_insert(f->db, "f", &b, NULL, NULL), 0);
    struct lm_voxels *vox;
    assert_int_equal(lm_voxels_query(f->db, "f", NULL, 0, &vox, NULL), 0);
    assert_true(vox->n > 100);
    lm_voxel_cursor *cur;
    assert_int_equal(lm_voxel_cursor_open(f->db, "f", &cur, NULL), 0);
    uint64_t total = 0;
    for (size_t i = 0; i < vox->n; i++) {
        struct lm_voxel v;
        assert_int_equal(lm_voxel_cursor_get(cur, vox->v[i].coord, &v), 0);
        assert_int_equal(v.count, vox->v[i].count);
        assert_int_equal(lm_voxel_cursor_count(cur, vox->v[i].coord), v.count);
        assert_true(v.sum_intensity == vox->v[i].sum_intensity);
        total += v.count;
        int32_t empty[3] = {vox->v[i].coord[0], vox->v[i].coord[1], 1000000};
        assert_int_equal(lm_voxel_cursor_count(cur, empty), 0);
    }
    lm_voxel_cursor_close(cur);
    assert_int_equal(total, N);
    /* optimize sorts tails and builds indexes: every answer stays the same */
    struct lm_selection sel = {.region = {.kind = LM_REGION_SPHERE, .center = {0, 0, 10},
                                          .radius = 12}};
    struct lm_aggregate a1, a2;
    assert_int_equal(lm_aggregate(f->db, "f", &sel, LM_COL_INTENSITY, &a1, NULL), 0);
    float q[3] = {1, 2, 3};
    struct lm_rows *r1, *r2;
    assert_int_equal(lm_nearest(f->db, "f", q, 7, 0, NULL, &r1, NULL), 0);
    assert_int_equal(lm_field_optimize(f->db, "f", NULL), 0);
    assert_int_equal(lm_aggregate(f->db, "f", &sel, LM_COL_INTENSITY, &a2, NULL), 0);
    assert_int_equal(lm_nearest(f->db, "f", q, 7, 0, NULL, &r2, NULL), 0);
    assert_int_equal(a1.count, a2.count);
    assert_true(a1.sum == a2.sum);
    assert_int_equal(r1->n, r2->n);
    for (size_t i = 0; i < r1->n; i++)
        assert_true(r1->distance[i] == r2->distance[i]);
    lm_rows_free(r1);
    lm_rows_free(r2);
    lm_voxels_free(vox);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(fields_are_created_listed_and_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_field_options_are_named, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_batches_are_rejected_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_selections_are_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(updates_reject_positions_and_bad_values, setup, teardown),
        cmocka_unit_test_setup_teardown(out_of_memory_during_insert_changes_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(directory_lock_and_read_only, setup, teardown),
        cmocka_unit_test_setup_teardown(readers_run_beside_a_writer, setup, teardown),
        cmocka_unit_test_setup_teardown(
            voxel_cursor_agrees_with_lookups_and_optimize_changes_no_answer, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
