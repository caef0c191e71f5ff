/* test_exec.c - the LQL executor: every statement, every semantic error with its
 * line:column and suggestion, prepared statements, cancellation, out of memory, and a
 * randomized comparison of WHERE expressions (AND/OR/NOT, several regions) in SELECT,
 * DELETE and UPDATE against a brute-force evaluation kept here.
 * LUMADB_TEST_SEED fixes the seed of the randomized test (printed on failure). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "exec.h"
#include "lql.h"

/* ---------------------------------------------------------------- helpers */

struct fixture {
    char dir[64];
    lm_db *db;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/lumadb-exec-XXXXXX");
    struct lm_db_opts o = {.create = true, .sync = LM_SYNC_NONE}; /* no fsync: faster */
    if (!mkdtemp(f->dir) || lm_db_open(f->dir, &o, &f->db, NULL))
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

static struct lm_exec_result *run(lm_db *db, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *text = malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(text, (size_t)n + 1, fmt, ap);
    va_end(ap);
    struct lm_exec_result *r = NULL;
    struct lm_error err = {0};
    int rc = lm_exec_text(db, text, strlen(text), NULL, &r, &err);
    if (rc)
        fail_msg("%.2000s\n  -> %d:%d: %s (%d)", text, err.line, err.column, err.message, rc);
    free(text);
    return r;
}

static void ok(lm_db *db, const char *text)
{
    lm_exec_result_free(run(db, "%s", text));
}

/* Runs text, which must fail with code at line:col with a message holding `has`. */
static void fails(lm_db *db, const char *text, int code, uint32_t line, uint32_t col,
                  const char *has)
{
    struct lm_exec_result *r = NULL;
    struct lm_error err = {0};
    int rc = lm_exec_text(db, text, strlen(text), NULL, &r, &err);
    if (rc != code || err.line != line || err.column != col ||
        (has && !strstr(err.message, has)))
        fail_msg("%s\n  -> %d at %u:%u '%s'; expected %d at %u:%u with '%s'", text, rc,
                 err.line, err.column, err.message, code, line, col, has ? has : "");
    assert_null(r);
}

static const struct lm_exec_value *cell(const struct lm_exec_result *r, size_t row, size_t col)
{
    assert_true(row < r->n_rows && col < r->n_columns);
    return &r->rows[row * r->n_columns + col];
}

static int64_t ival(const struct lm_exec_result *r, size_t row, size_t col)
{
    const struct lm_exec_value *v = cell(r, row, col);
    assert_int_equal(v->type, LM_EXEC_INT);
    return v->i;
}

static double dval(const struct lm_exec_result *r, size_t row, size_t col)
{
    const struct lm_exec_value *v = cell(r, row, col);
    assert_true(v->type == LM_EXEC_F32 || v->type == LM_EXEC_F64 || v->type == LM_EXEC_INT);
    return v->type == LM_EXEC_INT ? (double)v->i : v->d;
}

static int64_t count_where(lm_db *db, const char *field, const char *where)
{
    struct lm_exec_result *r = run(db, "SELECT count(*) FROM %s WHERE %s", field, where);
    int64_t n = ival(r, 0, 0);
    lm_exec_result_free(r);
    return n;
}

/* A small field with labelled samples on a grid: id = i, at (i % 5, i / 5 % 5, i / 25). */
static void grid(lm_db *db, int n)
{
    ok(db, "CREATE FIELD g (VOXEL 1, CHUNK 4, id i32, w f32, tag u8)");
    char *text = malloc(64 + (size_t)n * 96);
    size_t len = (size_t)sprintf(text, "INSERT INTO g (x, y, z, intensity, t, id, w, tag) VALUES ");
    for (int i = 0; i < n; i++)
        len += (size_t)sprintf(text + len, "%s(%d, %d, %d, %g, %d, %d, %g, %d)", i ? ", " : "",
                               i % 5, i / 5 % 5, i / 25, 0.25 * (i % 8), 1000 * i, i, 0.5 * i,
                               i % 3);
    ok(db, text);
    free(text);
}

/* ---------------------------------------------------------------- field statements */

static void fields_are_created_listed_described_and_dropped(void **state)
{
    lm_db *db = ((struct fixture *)*state)->db;
    struct lm_exec_result *r = run(db, "CREATE FIELD scene (VOXEL 0.5, CHUNK 8, label i32, "
                                       "weight f32)");
    assert_string_equal(r->message, "created field scene");
    assert_int_equal(r->n_columns, 0);
    lm_exec_result_free(r);
    ok(db, "CREATE FIELD probe (VOXEL 2)");
    r = run(db, "SHOW FIELDS");
    assert_int_equal(r->n_rows, 2);
    assert_string_equal(r->columns[0].name, "name");
    assert_string_equal(cell(r, 0, 0)->s, "probe");
    assert_string_equal(cell(r, 1, 0)->s, "scene");
    assert_int_equal(ival(r, 1, 5), 8);
    assert_string_equal(cell(r, 1, 6)->s, "label i32, weight f32");
    assert_true(dval(r, 0, 4) == 2.0);
    lm_exec_result_free(r);
    r = run(db, "DESCRIBE scene");
    assert_int_equal(r->n_rows, 13);
    assert_string_equal(cell(r, 11, 0)->s, "label");
    assert_string_equal(cell(r, 11, 1)->s, "i32");
    assert_string_equal(cell(r, 10, 1)->s, "i64");
    assert_non_null(strstr(r->message, "voxel 0.5, chunk 8"));
    lm_exec_result_free(r);
    r = run(db, "DROP FIELD probe");
    assert_string_equal(r->message, "dropped field probe (0 samples)");
    lm_exec_result_free(r);
    r = run(db, "SHOW FIELDS");
    assert_int_equal(r->n_rows, 1);
    lm_exec_result_free(r);
}

static void field_statement_errors_point_at_their_node(void **state)
{
    lm_db *db = ((struct fixture *)*state)->db;
    ok(db, "CREATE FIELD scene (VOXEL 1)");
    fails(db, "CREATE FIELD scene (VOXEL 1)", LM_EFIELDEXISTS, 1, 14, "already exists");
    fails(db, "CREATE FIELD a (VOXEL 0)", LM_EBADVALUE, 1, 23, "voxel size");
    fails(db, "CREATE FIELD a (VOXEL 1, CHUNK 12)", LM_EBADVALUE, 1, 32, "power of two");
    fails(db, "CREATE FIELD a (VOXEL 1, intensity f32)", LM_EBADARG, 1, 26, "built-in");
    fails(db, "CREATE FIELD a (VOXEL 1, k i32,\n  K u8)", LM_EBADARG, 2, 3, "listed twice");
    fails(db, "CREATE FIELD \"a b\" (VOXEL 1)", LM_EBADARG, 1, 14, "letters, digits");
    fails(db, "DROP FIELD scen", LM_ENOFIELD, 1, 12, "did you mean 'scene'?");
    fails(db, "DESCRIBE nothing_like_it", LM_ENOFIELD, 1, 10, "unknown field");
    fails(db, "SELECT * FROM sceen", LM_ENOFIELD, 1, 15, "did you mean 'scene'?");
}

/* ---------------------------------------------------------------- INSERT */

static void insert_fills_defaults_for_missing_columns(void **state)
{
    lm_db *db = ((struct fixture *)*state)->db;
    ok(db, "CREATE FIELD f (VOXEL 1, label i32)");
    struct lm_exec_result *r = run(db, "INSERT INTO f (z, x, y, label) VALUES (3, 1, 2, 7), "
                                       "(-1, -2, -3, -8)");
    assert_string_equal(r->message, "inserted 2 samples");
    assert_int_equal(r->affected, 2);
    lm_exec_result_free(r);
    ok(db, "INSERT INTO f VALUES (5, 5, 5, 1, 0, 0, 0.5, 0.25, 0, 2, 99, 3)");
    ok(db, "INSERT INTO f VALUES (6, 6, 6)"); /* a prefix of the schema */
    r = run(db, "SELECT * FROM f ORDER BY label");
    assert_int_equal(r->n_rows, 4);
    assert_int_equal(r->n_columns, 12);
    /* label -8 first: position (-2, -3, -1), defaults elsewhere */
    assert_true(dval(r, 0, 0) == -2 && dval(r, 0, 1) == -3 && dval(r, 0, 2) == -1);
    assert_true(fabs(dval(r, 0, 5) - 1.0) < 1e-4);
    assert_true(dval(r, 0, 6) == 1 && dval(r, 0, 7) == 1 && dval(r, 0, 8) == 1);
    assert_true(dval(r, 0, 9) == 1);
    assert_int_equal(ival(r, 0, 10), 0);
    assert_int_equal(ival(r, 0, 11), -8);
    assert_int_equal(ival(r, 1, 11), 0); /* (6, 6, 6): label 0 */
    assert_int_equal(ival(r, 2, 11), 3);
    assert_true(fabs(dval(r, 2, 3) - 1.0) < 1e-4);
    assert_true(fabs(dval(r, 2, 6) - 0.5) < 1.0 / 255 && fabs(dval(r, 2, 7) - 0.25) < 1.0 / 255);
    assert_int_equal(ival(r, 2, 10), 99);
    assert_int_equal(ival(r, 3, 11), 7);
    lm_exec_result_free(r);
}

static void insert_errors_name_the_value_and_insert_nothing(void **state)
{
    lm_db *db = ((struct fixture *)*state)->db;
    ok(db, "CREATE FIELD f (VOXEL 1, label i32, flag u8)");
    fails(db, "INSERT INTO f (x, y, z, intensty) VALUES (1, 2, 3, 4)", LM_ENOCOLUMN, 1, 25,
          "did you mean 'intensity'?");
    fails(db, "INSERT INTO f (x, y, z, X) VALUES (1, 2, 3, 4)", LM_EBADARG, 1, 25,
          "listed twice");
    fails(db, "INSERT INTO f (x, y, intensity) VALUES (1, 2, 3)", LM_EBADARG, 1, 16,
          "z is missing");
    fails(db, "INSERT INTO f (x, y, z, r, g, b) VALUES (1, 2, 3, 0, 0, 0),\n"
              "  (1, 2, 3, 0.5, 1.5, 0)",
          LM_EBADVALUE, 2, 18, "colour g = 1.5");
    fails(db, "INSERT INTO f (x, y, z, label) VALUES (0, 0, 0, 2.5)", LM_EBADVALUE, 1, 49,
          "not a whole number");
    fails(db, "INSERT INTO f (x, y, z, flag) VALUES (0, 0, 0, 256)", LM_EBADVALUE, 1, 48,
          "u8");
    fails(db, "INSERT INTO f (x, y, z, dx, dy, dz) VALUES (0, 0, 0, 1, 1, 0)", LM_EBADVALUE, 1,
          54, "unit vector");
    fails(db, "INSERT INTO f (x, y, z, intensity) VALUES (0, 0, 0, -1)", LM_EBADVALUE, 1, 53,
          ">= 0");
    fails(db, "INSERT INTO f (x, y, z, t) VALUES (0, 0, 0, 0.5)", LM_EBADVALUE, 1, 45,
          "whole number");
    fails(db, "INSERT INTO f VALUES (1, 2)", LM_EBADARG, 1, 23, "first 3 to 13");
    fails(db, "INSERT INTO f (x, y, z) VALUES (1e39, 0, 0)", LM_EBADVALUE, 1, 33, "32-bit");
    assert_int_equal(count_where(db, "f", "TRUE"), 0);
}

/* ---------------------------------------------------------------- SELECT */

static void select_orders_stably_limits_and_names_columns(void **state)
{
    lm_db *db = ((struct fixture *)*state)->db;
    grid(db, 40);
    struct lm_exec_result *r = run(db, "SELECT id, tag AS kind FROM g ORDER BY kind DESC LIMIT 5");
    assert_string_equal(r->columns[0].name, "id");
    assert_string_equal(r->columns[1].name, "kind");
    assert_int_equal(r->n_rows, 5);
    /* tag 2 rows in storage order: ties keep the order of an unordered SELECT */
    struct lm_exec_result *plain = run(db, "SELECT id FROM g WHERE tag = 2");
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(ival(r, i, 1), 2);
        assert_int_equal(ival(r, i, 0), ival(plain, i, 0));
    }
    lm_exec_result_free(plain);
    lm_exec_result_free(r);
    /* a sort column that is not selected; two keys */
    r = run(db, "SELECT id FROM g ORDER BY tag, t DESC");
    assert_int_equal(r->n_columns, 1);
    assert_int_equal(r->n_rows, 40);
    assert_int_equal(ival(r, 0, 0), 39);  /* tag 0, largest t */
    assert_int_equal(ival(r, 39, 0), 2);  /* tag 2, smallest t */
    lm_exec_result_free(r);
    r = run(db, "SELECT * FROM g LIMIT 0");
    assert_int_equal(r->n_rows, 0);
    assert_int_equal(r->n_columns, 14);
    lm_exec_result_free(r);
    r = run(db, "SELECT x FROM g WHERE INSIDE BOX (0, 0, 0) TO (1, 1, 0) LIMIT 3");
    assert_int_equal(r->n_rows, 3);
    lm_exec_result_free(r);
}

static void order_by_with_limit_over_many_rows_keeps_the_first(void **state)
{
    lm_db *db = ((struct fixture *)*state)->db;
    grid(db, 9000); /* ids 0..8999; tag = id % 3; w = id / 2 */
    /* ties on tag: the first 10 of tag 0 in storage order */
    struct lm_exec_result *a = run(db, "SELECT id FROM g ORDER BY tag LIMIT 10");
    struct lm_exec_result *b = run(db, "SELECT id FROM g WHERE tag = 0 LIMIT 10");
    assert_int_equal(a->n_rows, 10);
    for (size_t i = 0; i < 10; i++)
        assert_int_equal(ival(a, i, 0), ival(b, i, 0));
    lm_exec_result_free(a);
    lm_exec_result_free(b);
    a = run(db, "SELECT id, w FROM g WHERE NOT (tag = 1) ORDER BY w DESC, id LIMIT 5");
    assert_int_equal(a->n_rows, 5);
    static const int want[] = {8999, 8997, 8996, 8994, 8993}; /* tag != 1, largest w */
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(ival(a, i, 0), want[i]);
    lm_exec_result_free(a);
}

static void aggregates_agree_on_every_path_and_are_null_when_empty(void **state)
{
    lm_db *db = ((struct fixture *)*state)->db;
    grid(db, 100);
    /* pushed down (lm_aggregate) and per sample (OR) over the same samples */
    const char *fast = "SELECT count(*), sum(w), avg(intensity), min(t), max(id), count(x) "
                       "FROM g WHERE INSIDE BOX (0, 0, 0) TO (2, 4, 3)";
    const char *slow = "SELECT count(*), sum(w), avg(intensity), min(t), max(id), count(x) "
                       "FROM g WHERE INSIDE BOX (0, 0, 0) TO (2, 4, 3) OR id < 0";
    struct lm_exec_result *a = run(db, "%s", fast), *b = run(db, "%s", slow);
    int64_t n = 0;
    double sw = 0, si = 0;
    int64_t mint = INT64_MAX, maxid = -1;
    for (int i = 0; i < 100; i++)
        if (i % 5 <= 2 && i / 25 <= 3) {
            n++;
            sw += 0.5 * i;
            si += 0.25 * (i % 8);
            mint = 1000 * i < mint ? 1000 * i : mint;
            maxid = i > maxid ? i : maxid;
        }
    for (int k = 0; k < 2; k++) {
        struct lm_exec_result *r = k ? b : a;
        assert_int_equal(ival(r, 0, 0), n);
        assert_true(fabs(dval(r, 0, 1) - sw) < 1e-9 * sw);
        assert_true(fabs(dval(r, 0, 2) - si / (double)n) < 1e-12);
        assert_int_equal(ival(r, 0, 3), mint);
        assert_int_equal(ival(r, 0, 4), maxid);
        assert_int_equal(ival(r, 0, 5), n);
        assert_string_equal(r->columns[1].name, "sum(w)");
        assert_int_equal(r->columns[1].type, LM_EXEC_F64);
    }
    lm_exec_result_free(a);
    lm_exec_result_free(b);
    a = run(db, "SELECT count(*), sum(w), min(x), max(t) AS last FROM g WHERE x > 100");
    assert_int_equal(ival(a, 0, 0), 0);
    assert_int_equal(cell(a, 0, 1)->type, LM_EXEC_NULL);
    assert_int_equal(cell(a, 0, 2)->type, LM_EXEC_NULL);
    assert_string_equal(a->columns[3].name, "last");
    lm_exec_result_free(a);
    a = run(db, "SELECT count(*) FROM g WHERE INSIDE BOX (0, 0, 0) TO (1, 1, 1) AND "
                "INSIDE BOX (3, 3, 3) TO (4, 4, 4)");
    assert_int_equal(ival(a, 0, 0), 0);
    lm_exec_result_free(a);
}

static void group_by_voxel_chunk_and_lod_count_every_cell(void **state)
{
    lm_db *db = ((struct fixture *)*state)->db;
    grid(db, 100);
    ok(db, "INSERT INTO g (x, y, z, intensity) VALUES (0.5, 0.5, 0.5, 3), (-0.5, 0, 0, 1)");
    /* stored voxel aggregates (no WHERE) and the per-sample path (a WHERE always true) */
    for (int path = 0; path < 2; path++) {
        const char *where = path ? "WHERE intensity >= 0" : "";
        struct lm_exec_result *v = run(db, "SELECT count(*), avg(intensity) AS i, "
                                           "sum(intensity) FROM g %s GROUP BY VOXEL", where);
        assert_int_equal(v->n_columns, 6);
        assert_string_equal(v->columns[0].name, "cx");
        assert_string_equal(v->columns[4].name, "i");
        assert_int_equal(v->n_rows, 101);
        /* sorted by (cz, cy, cx): (-1, 0, 0) first, then (0, 0, 0) with two samples */
        assert_int_equal(ival(v, 0, 0), -1);
        assert_int_equal(ival(v, 0, 3), 1);
        assert_int_equal(ival(v, 1, 0), 0);
        assert_int_equal(ival(v, 1, 3), 2);
        assert_true(fabs(dval(v, 1, 4) - 1.5) < 1e-6);
        assert_true(fabs(dval(v, 1, 5) - 3.0) < 1e-6);
        lm_exec_result_free(v);
        struct lm_exec_result *c = run(db, "SELECT count(*) FROM g %s GROUP BY CHUNK "
                                           "ORDER BY \"count(*)\" DESC", where);
        int64_t total = 0;
        for (size_t i = 0; i < c->n_rows; i++)
            total += ival(c, i, 3);
        assert_int_equal(total, 102);
        assert_int_equal(ival(c, 0, 3), 65); /* chunk (0, 0, 0): 4x4x4 of the grid + 1 */
        lm_exec_result_free(c);
        struct lm_exec_result *l = run(db, "SELECT count(*) FROM g %s GROUP BY LOD 3", where);
        assert_int_equal(l->n_rows, 2);
        assert_int_equal(ival(l, 0, 0), -1);
        assert_int_equal(ival(l, 1, 3), 101);
        lm_exec_result_free(l);
    }
    /* min/max and filters go through the samples */
    struct lm_exec_result *m = run(db, "SELECT min(id), max(t) FROM g WHERE tag = 1 "
                                       "GROUP BY LOD 1 ORDER BY cz DESC, cy, cx LIMIT 2");
    assert_int_equal(m->n_rows, 2);
    assert_int_equal(ival(m, 0, 2), 1); /* z = 2, 3 -> cz 1 */
    lm_exec_result_free(m);
}

static void nearest_returns_k_nearest_passing_the_where(void **state)
{
    lm_db *db = ((struct fixture *)*state)->db;
    grid(db, 125);
    struct lm_exec_result *r = run(db, "SELECT id, distance FROM g NEAREST 3 TO (0, 0, 0.1)");
    assert_int_equal(r->n_rows, 3);
    assert_int_equal(ival(r, 0, 0), 0);
    assert_true(fabs(dval(r, 0, 1) - 0.1) < 1e-6);
    lm_exec_result_free(r);
    /* a region and an OR: the executor asks for more neighbours until 4 pass */
    r = run(db, "SELECT id, x, y, z FROM g NEAREST 4 TO (2, 2, 2) "
                "WHERE NOT WITHIN 1.5 OF (2, 2, 2) AND (tag = 0 OR tag = 2)");
    assert_int_equal(r->n_rows, 4);
    double last = 0;
    for (size_t i = 0; i < 4; i++) {
        int64_t id = ival(r, i, 0);
        assert_int_not_equal(id % 3, 1);
        double dx = dval(r, i, 1) - 2, dy = dval(r, i, 2) - 2, dz = dval(r, i, 3) - 2;
        double d = sqrt(dx * dx + dy * dy + dz * dz);
        assert_true(d > 1.5 && d >= last);
        last = d;
    }
    lm_exec_result_free(r);
    r = run(db, "SELECT count(*), max(distance) FROM g NEAREST 7 TO (0, 0, 0) WHERE "
                "INSIDE BOX (0, 0, 0) TO (1, 1, 1)");
    assert_int_equal(ival(r, 0, 0), 7 < 8 ? 7 : 8);
    lm_exec_result_free(r);
    r = run(db, "SELECT * FROM g NEAREST 2 TO (9, 9, 9) LIMIT 1");
    assert_int_equal(r->n_rows, 1);
    assert_string_equal(r->columns[r->n_columns - 1].name, "distance");
    lm_exec_result_free(r);
}

static void select_errors_point_at_the_offending_node(void **state)
{
    lm_db *db = ((struct fixture *)*state)->db;
    grid(db, 10);
    fails(db, "SELECT x, y,\n       intensty FROM g", LM_ENOCOLUMN, 2, 8,
          "unknown column 'intensty' in field 'g'; did you mean 'intensity'?");
    fails(db, "SELECT x FROM g WHERE NOT (tga = 1)", LM_ENOCOLUMN, 1, 28, "'tag'?");
    fails(db, "SELECT x, count(*) FROM g", LM_EBADARG, 1, 8, "inside an aggregate");
    fails(db, "SELECT count(*), x FROM g GROUP BY VOXEL", LM_EBADARG, 1, 18, "GROUP BY");
    fails(db, "SELECT * FROM g GROUP BY CHUNK", LM_EBADARG, 1, 17, "not *");
    fails(db, "SELECT id FROM g ORDER BY idd", LM_EBADARG, 1, 27, "did you mean 'id'?");
    fails(db, "SELECT count(*) AS total FROM g GROUP BY VOXEL ORDER BY totl", LM_EBADARG, 1,
          57, "did you mean 'total'?");
    fails(db, "SELECT count(*) FROM g GROUP BY LOD 41", LM_EBADVALUE, 1, 37, "LOD 41");
    fails(db, "SELECT x FROM g WHERE INSIDE BOX (0, 5, 0) TO (1, 1, 1)", LM_EBADVALUE, 1, 38,
          "write the low corner first");
    fails(db, "SELECT x FROM g WHERE WITHIN -1 OF (0, 0, 0)", LM_EBADVALUE, 1, 30, ">= 0");
    fails(db, "SELECT x FROM g WHERE IN FRUSTUM (EYE (0, 0, 5), TARGET (0, 0, 0), "
              "UP (0, 1, 0), FOV 190, ASPECT 1, NEAR 0.1, FAR 10)",
          LM_EBADVALUE, 1, 86, "FOV 190");
    fails(db, "SELECT x FROM g WHERE IN FRUSTUM (EYE (0, 0, 5), TARGET (0, 0, 0), "
              "UP (0, 0, 1), FOV 60, ASPECT 1, NEAR 0.1, FAR 10)",
          LM_EBADVALUE, 1, 72, "parallel");
    fails(db, "SELECT distance FROM g", LM_ENOCOLUMN, 1, 8, "unknown column 'distance'");
    fails(db, "SELECT x FROM g NEAREST 2 TO (1e40, 0, 0)", LM_EBADVALUE, 1, 31, "32-bit");
}

/* ---------------------------------------------------------------- writes */

static void delete_and_update_map_where_onto_selections(void **state)
{
    lm_db *db = ((struct fixture *)*state)->db;
    grid(db, 125);
    /* one selection */
    struct lm_exec_result *r = run(db, "UPDATE g SET w = -1, tag = 9 WHERE "
                                       "INSIDE BOX (0, 0, 0) TO (1, 1, 1)");
    assert_string_equal(r->message, "updated 8 samples");
    lm_exec_result_free(r);
    assert_int_equal(count_where(db, "g", "tag = 9 AND w = -1"), 8);
    /* a union of overlapping selections counts each sample once */
    r = run(db, "UPDATE g SET w = -2 WHERE x = 0 OR y = 0");
    assert_string_equal(r->message, "updated 45 samples");
    lm_exec_result_free(r);
    /* the column the WHERE reads is set last */
    r = run(db, "UPDATE g SET tag = 7, intensity = 4 WHERE tag = 9 OR id = 124");
    assert_string_equal(r->message, "updated 9 samples");
    lm_exec_result_free(r);
    assert_int_equal(count_where(db, "g", "tag = 7 AND intensity = 4"), 9);
    /* no union of selections: per distinct sample */
    r = run(db, "UPDATE g SET tag = 5 WHERE NOT WITHIN 2 OF (2, 2, 2) AND "
                "NOT WITHIN 2 OF (0, 0, 0)");
    int64_t n = (int64_t)r->affected;
    lm_exec_result_free(r);
    assert_int_equal(count_where(db, "g", "tag = 5"), n);
    int64_t want = 0;
    for (int i = 0; i < 125; i++) {
        double x = i % 5, y = i / 5 % 5, z = i / 25;
        double a = (x - 2) * (x - 2) + (y - 2) * (y - 2) + (z - 2) * (z - 2);
        want += a > 4 && x * x + y * y + z * z > 4;
    }
    assert_int_equal(n, want);
    r = run(db, "DELETE FROM g WHERE tag = 5 OR WITHIN 0.5 OF (4, 4, 4)"); /* id 124 has tag 5 */
    assert_int_equal(r->affected, want);
    lm_exec_result_free(r);
    r = run(db, "DELETE FROM g WHERE WITHIN 1 OF (2, 2, 2) AND WITHIN 1 OF (2, 2, 3)");
    assert_string_equal(r->message, "deleted 2 samples");
    lm_exec_result_free(r);
    r = run(db, "DELETE FROM g WHERE TRUE");
    assert_int_equal(r->affected, 125 - want - 2);
    lm_exec_result_free(r);
    assert_int_equal(count_where(db, "g", "TRUE"), 0);
}

static void write_errors_point_at_the_set_or_the_where(void **state)
{
    lm_db *db = ((struct fixture *)*state)->db;
    grid(db, 10);
    fails(db, "UPDATE g SET x = 1 WHERE TRUE", LM_EBADARG, 1, 14, "cannot be updated");
    fails(db, "UPDATE g SET r = 2 WHERE TRUE", LM_EBADVALUE, 1, 18, "outside [0, 1]");
    fails(db, "UPDATE g SET tag = 1, TAG = 2 WHERE TRUE", LM_EBADARG, 1, 23, "set twice");
    fails(db, "UPDATE g SET tag = 1, w = 2 WHERE tag = 0 AND w > 1", LM_EBADARG, 1, 23,
          "set one of them");
    fails(db, "UPDATE g SET tga = 1 WHERE TRUE", LM_ENOCOLUMN, 1, 14, "'tag'?");
    fails(db, "DELETE FROM g WHERE idd = 3", LM_ENOCOLUMN, 1, 21, "'id'?");
    fails(db, "DELETE FROM gg WHERE TRUE", LM_ENOFIELD, 1, 13, "unknown field 'gg'");
    assert_int_equal(count_where(db, "g", "tag = 1"), 3);
}

/* ---------------------------------------------------------------- rays */

static void raycast_and_radiance_return_tables(void **state)
{
    lm_db *db = ((struct fixture *)*state)->db;
    grid(db, 125);
    struct lm_exec_result *r = run(db, "RAYCAST g FROM (0.5, 0.5, -5) DIR (0, 0, 2) RETURN ALL");
    assert_int_equal(r->n_rows, 5);
    assert_string_equal(r->columns[1].name, "vx");
    assert_int_equal(ival(r, 0, 3), 0);
    assert_int_equal(ival(r, 4, 3), 4);
    assert_non_null(r->next);
    assert_int_equal(r->next->n_rows, 5);
    assert_string_equal(r->next->columns[r->next->n_columns - 1].name, "distance");
    lm_exec_result_free(r);
    r = run(db, "RAYCAST g FROM (0.5, 0.5, -5) DIR (0, 0, 1) MAX 2");
    assert_int_equal(r->n_rows, 0);
    lm_exec_result_free(r);
    r = run(db, "RAYCAST g FROM (0.5, 0.5, -5) DIR (0, 0, 1)");
    assert_int_equal(r->n_rows, 1);
    assert_true(fabs(dval(r, 0, 4) - 5.0) < 1e-5);
    lm_exec_result_free(r);
    r = run(db, "RADIANCE g AT (1, 1, 1) TOWARD (0, 0, -3)");
    assert_int_equal(r->n_rows, 1);
    assert_int_equal(r->n_columns, 4);
    assert_true(dval(r, 0, 3) > 0);
    lm_exec_result_free(r);
    r = run(db, "RADIANCE g AT (100, 100, 100) TOWARD (0, 0, 1)");
    assert_int_equal(r->n_rows, 0);
    assert_non_null(strstr(r->message, "no occupied voxel"));
    lm_exec_result_free(r);
    fails(db, "RAYCAST g FROM (0, 0, 0) DIR (0, 0, 0)", LM_EBADVALUE, 1, 31, "non-zero");
    fails(db, "RAYCAST g FROM (0, 0, 0) DIR (0, 0, 1) MAX 0", LM_EBADVALUE, 1, 44, "> 0");
    fails(db, "RADIANCE g AT (0, 0, 0) TOWARD (0, 0, 0)", LM_EBADVALUE, 1, 33, "non-zero");
}

/* ---------------------------------------------------------------- EXPLAIN */

static bool plan_has(const struct lm_exec_result *r, const char *step, const char *text)
{
    for (size_t i = 0; i < r->n_rows; i++)
        if (!strcmp(cell(r, i, 0)->s, step) && strstr(cell(r, i, 1)->s, text))
            return true;
    return false;
}

static void explain_describes_the_plan_of_every_statement(void **state)
{
    lm_db *db = ((struct fixture *)*state)->db;
    grid(db, 125);
    struct lm_exec_result *r = run(db, "EXPLAIN SELECT * FROM g WHERE INSIDE BOX "
                                       "(0, 0, 0) TO (1, 1, 1) AND intensity > 0.1");
    assert_string_equal(r->columns[0].name, "step");
    assert_true(plan_has(r, "statement", "SELECT * FROM g WHERE"));
    assert_true(plan_has(r, "where", "pushed down whole"));
    assert_true(plan_has(r, "access", "lm_select"));
    assert_true(plan_has(r, "octree", "nodes visited"));
    assert_true(plan_has(r, "index", "kd-tree"));
    assert_true(plan_has(r, "kernel", "scan kernel"));
    assert_true(plan_has(r, "estimate", "7 of 64"));
    lm_exec_result_free(r);
    r = run(db, "EXPLAIN SELECT x FROM g WHERE NOT (tag = 1 OR NOT intensity < 1)");
    assert_true(plan_has(r, "where", "pushed down whole: intensity < 1 AND tag != 1") ||
                plan_has(r, "where", "pushed down whole: tag != 1 AND intensity < 1"));
    lm_exec_result_free(r);
    r = run(db, "EXPLAIN SELECT count(*) FROM g WHERE x < 1 OR WITHIN 1 OF (4, 4, 4)");
    assert_true(plan_has(r, "where", "candidates"));
    assert_true(plan_has(r, "access", "chunk stream"));
    lm_exec_result_free(r);
    r = run(db, "EXPLAIN SELECT count(*) FROM g GROUP BY LOD 4");
    assert_true(plan_has(r, "access", "lm_voxels_query level 4"));
    assert_true(plan_has(r, "index", "octree LOD"));
    lm_exec_result_free(r);
    r = run(db, "EXPLAIN SELECT * FROM g NEAREST 3 TO (0, 0, 0)");
    assert_true(plan_has(r, "index", "kd-tree"));
    lm_exec_result_free(r);
    r = run(db, "EXPLAIN RAYCAST g FROM (0, 0, 0) DIR (1, 0, 0)");
    assert_true(plan_has(r, "access", "DDA"));
    lm_exec_result_free(r);
    r = run(db, "EXPLAIN DELETE FROM g WHERE x = 0 OR NOT INSIDE BOX (0, 0, 0) TO (3, 3, 3)");
    assert_true(plan_has(r, "where", "union of 7 selections"));
    lm_exec_result_free(r);
    r = run(db, "EXPLAIN UPDATE g SET tag = 1 WHERE NOT WITHIN 1 OF (0, 0, 0)");
    assert_true(plan_has(r, "access", "per distinct matching sample"));
    lm_exec_result_free(r);
    r = run(db, "EXPLAIN INSERT INTO g (x, y, z) VALUES (1, 2, 3), (4, 5, 6)");
    assert_true(plan_has(r, "access", "2 samples"));
    lm_exec_result_free(r);
    r = run(db, "EXPLAIN CREATE FIELD other (VOXEL 1)");
    assert_true(plan_has(r, "access", "lm_field_create"));
    lm_exec_result_free(r);
    /* nothing ran */
    assert_int_equal(count_where(db, "g", "TRUE"), 125);
    r = run(db, "SHOW FIELDS");
    assert_int_equal(r->n_rows, 1);
    lm_exec_result_free(r);
    fails(db, "EXPLAIN SELECT idd FROM g", LM_ENOCOLUMN, 1, 16, "did you mean 'id'?");
}

static void walk_stats_and_field_stat_describe_the_field(void **state)
{
    lm_db *db = ((struct fixture *)*state)->db;
    grid(db, 125);
    struct lm_field_info full, fast;
    assert_int_equal(lm_field_info(db, "g", &full, NULL), 0);
    assert_int_equal(lm_field_stat(db, "g", &fast, NULL), 0);
    assert_int_equal(fast.n_samples, 125);
    assert_int_equal(fast.n_chunks, full.n_chunks);
    assert_int_equal(fast.n_voxels, 0);
    assert_memory_equal(fast.bounds_max, full.bounds_max, sizeof fast.bounds_max);
    assert_int_equal(lm_field_stat(db, "nope", &fast, NULL), LM_ENOFIELD);
    struct lm_walk_stats ws;
    assert_int_equal(lm_walk_stats(db, "g", NULL, &ws, NULL), 0);
    assert_int_equal(ws.chunks_inside, full.n_chunks);
    assert_int_equal(ws.samples_inside, 125);
    assert_int_equal(ws.nodes_pruned, 0);
    struct lm_region box = {.kind = LM_REGION_BOX, .min = {0, 0, 0}, .max = {1.5f, 1.5f, 1.5f}};
    assert_int_equal(lm_walk_stats(db, "g", &box, &ws, NULL), 0);
    assert_int_equal(ws.chunks_inside + ws.chunks_partial, 1);
    assert_int_equal(ws.samples_partial, 64); /* the chunk of 4x4x4 grid points */
    assert_true(ws.nodes_pruned >= full.n_chunks - 1);
    struct lm_region bad = {.kind = LM_REGION_SPHERE, .radius = -1};
    assert_int_equal(lm_walk_stats(db, "g", &bad, &ws, NULL), LM_EBADARG);
}

/* ---------------------------------------------------------------- API */

static void prepared_statements_bind_and_run_again(void **state)
{
    lm_db *db = ((struct fixture *)*state)->db;
    grid(db, 125);
    const char *q = "SELECT count(*) FROM g WHERE WITHIN ? OF (?, ?, ?) AND tag != -?";
    lm_exec_stmt *st;
    struct lm_error err;
    assert_int_equal(lm_exec_prepare(db, q, strlen(q), &st, &err), 0);
    assert_int_equal(lm_exec_param_count(st), 5);
    struct lm_exec_result *r = NULL;
    assert_int_equal(lm_exec_run(st, NULL, &r, &err), LM_EBADARG);
    assert_int_equal(err.column, 37);
    for (int round = 0; round < 3; round++) {
        assert_int_equal(lm_exec_bind(st, 1, 0.5 + round, &err), 0);
        for (uint32_t i = 2; i <= 4; i++)
            assert_int_equal(lm_exec_bind(st, i, 2, &err), 0);
        assert_int_equal(lm_exec_bind(st, 5, -1, &err), 0); /* tag != 1 */
        assert_int_equal(lm_exec_run(st, NULL, &r, &err), 0);
        int64_t want = 0;
        for (int i = 0; i < 125; i++) {
            double dx = i % 5 - 2, dy = i / 5 % 5 - 2, dz = i / 25 - 2, rad = 0.5 + round;
            want += dx * dx + dy * dy + dz * dz <= rad * rad && i % 3 != 1;
        }
        assert_int_equal(ival(r, 0, 0), want);
        lm_exec_result_free(r);
    }
    assert_int_equal(lm_exec_bind(st, 6, 1, &err), LM_EBADARG);
    assert_int_equal(lm_exec_bind(st, 1, NAN, &err), LM_EBADARG);
    assert_int_equal(err.column, 37);
    assert_string_equal(lm_exec_stmt_text(st), q);
    assert_int_equal(lm_exec_tree(st)->kind, LM_LQL_SELECT);
    lm_exec_stmt_free(st);
    const char *lim = "SELECT x FROM g LIMIT ?";
    assert_int_equal(lm_exec_prepare(db, lim, strlen(lim), &st, &err), 0);
    assert_int_equal(lm_exec_bind(st, 1, 2.5, &err), LM_EBADARG);
    assert_non_null(strstr(err.message, "integer"));
    assert_int_equal(lm_exec_bind(st, 1, 2, &err), 0);
    assert_int_equal(lm_exec_run(st, NULL, &r, &err), 0);
    assert_int_equal(r->n_rows, 2);
    lm_exec_result_free(r);
    lm_exec_stmt_free(st);
    lm_exec_stmt_free(NULL);
    lm_exec_result_free(NULL);
    assert_int_equal(lm_exec_prepare(db, "SELEC", 5, &st, &err), LM_ESYNTAX);
}

static void check_plans_without_touching_data(void **state)
{
    lm_db *db = ((struct fixture *)*state)->db;
    grid(db, 10);
    struct lm_lql_stmt *s;
    struct lm_error err;
    const char *a = "DELETE FROM g WHERE TRUE", *b = "SELECT x, count(*) FROM g";
    assert_int_equal(lm_lql_parse(a, strlen(a), &s, &err), 0);
    assert_int_equal(lm_exec_check(db, s, &err), 0);
    lm_lql_free(s);
    assert_int_equal(count_where(db, "g", "TRUE"), 10);
    assert_int_equal(lm_lql_parse(b, strlen(b), &s, &err), 0);
    assert_int_equal(lm_exec_check(db, s, &err), LM_EBADARG);
    assert_int_equal(err.column, 8);
    lm_lql_free(s);
}

struct each_ctx {
    size_t rows, columns;
    double last;
};

static int each_columns(const struct lm_exec_column *c, size_t n, void *user)
{
    struct each_ctx *e = user;
    e->columns = n;
    assert_string_equal(c[0].name, "id");
    return 0;
}

static int each_row(const struct lm_exec_value *v, size_t n, void *user)
{
    struct each_ctx *e = user;
    assert_int_equal(n, 2);
    assert_true(v[1].d >= e->last);
    e->last = v[1].d;
    return ++e->rows == 50 ? 7 : 0;
}

static void each_hands_rows_out_one_by_one(void **state)
{
    lm_db *db = ((struct fixture *)*state)->db;
    grid(db, 125);
    const char *q[] = {"SELECT id, w FROM g WHERE id >= 10",
                       "SELECT id, w FROM g WHERE id >= 10 OR w < 0 ORDER BY w",
                       "SELECT id, w FROM g WHERE id >= 10 LIMIT 60"};
    for (int k = 0; k < 3; k++) {
        struct lm_lql_stmt *s;
        struct lm_error err;
        assert_int_equal(lm_lql_parse(q[k], strlen(q[k]), &s, &err), 0);
        struct each_ctx e = {0};
        assert_int_equal(lm_exec_each(db, s, NULL, each_columns, each_row, &e, &err), 7);
        assert_int_equal(e.rows, 50);
        assert_int_equal(e.columns, 2);
        lm_lql_free(s);
    }
    struct lm_lql_stmt *s;
    assert_int_equal(lm_lql_parse("SELECT count(*) FROM g", 22, &s, NULL), 0);
    assert_int_equal(lm_exec_each(db, s, NULL, NULL, each_row, NULL, NULL), LM_EBADARG);
    lm_lql_free(s);
}

static void a_raised_cancel_flag_stops_the_statement(void **state)
{
    lm_db *db = ((struct fixture *)*state)->db;
    grid(db, 125);
    volatile sig_atomic_t flag = 1;
    struct lm_exec_opts o = {.cancel = &flag};
    const char *q[] = {"SELECT count(*) FROM g WHERE x < 1 OR y < 1",
                       "UPDATE g SET tag = 1 WHERE NOT WITHIN 1 OF (0, 0, 0)"};
    for (int k = 0; k < 2; k++) {
        struct lm_exec_result *r = NULL;
        struct lm_error err;
        assert_int_equal(lm_exec_text(db, q[k], strlen(q[k]), &o, &r, &err), LM_ECANCELED);
        assert_null(r);
    }
    assert_int_equal(count_where(db, "g", "tag = 1"), 42);
}

static int64_t oom_left;
static bool oom_hook(size_t n)
{
    (void)n;
    return oom_left-- > 0;
}

static void out_of_memory_fails_cleanly(void **state)
{
    lm_db *db = ((struct fixture *)*state)->db;
    grid(db, 60);
    const char *q[] = {
        "SELECT id, w FROM g WHERE x < 2 OR NOT WITHIN 1 OF (0, 0, 0) ORDER BY w DESC",
        "SELECT count(*), avg(w) FROM g WHERE tag = 1 OR y = 0 GROUP BY VOXEL",
        "EXPLAIN SELECT * FROM g WHERE INSIDE BOX (0, 0, 0) TO (2, 2, 2)",
        "SHOW FIELDS", "DESCRIBE g", "RAYCAST g FROM (0.5, 0.5, -1) DIR (0, 0, 1) RETURN ALL",
        "SELECT * FROM g NEAREST 5 TO (1, 1, 1) WHERE tag = 2 OR tag = 0",
        "EXPLAIN UPDATE g SET w = 1 WHERE NOT WITHIN 1 OF (0, 0, 0)"};
    /* (writes are left out: an engine write that fails half way fails the database) */
    for (size_t k = 0; k < sizeof q / sizeof q[0]; k++) {
        int rc = -ENOMEM;
        for (int64_t at = 0; rc == -ENOMEM && at < 100000; at++) {
            struct lm_exec_result *r = NULL;
            struct lm_error err;
            oom_left = at;
            lm_alloc_set_hook(oom_hook);
            rc = lm_exec_text(db, q[k], strlen(q[k]), NULL, &r, &err);
            lm_alloc_set_hook(NULL);
            if (rc == -ENOMEM)
                assert_null(r);
            lm_exec_result_free(r);
        }
        assert_int_equal(rc, 0);
    }
}

/* ---------------------------------------------------------------- randomized WHERE */

static uint64_t rng;
static uint64_t seed;

static uint64_t rnd(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float rndf(float lo, float hi)
{
    return lo + (hi - lo) * (float)(rnd() >> 40) * (1.0f / 16777216.0f);
}

/* A sample as stored (read back through SELECT *). */
struct sample {
    float p[3];
    double v[13]; /* columns 0..12: x .. t, id, w */
};

enum { C_INTENSITY = 9, C_T = 10, C_ID = 11, C_W = 12, C_R = 6 };

/* Reference expression tree. */
struct ref {
    int kind; /* 0 cmp, 1 region, 2 and, 3 or, 4 not, 5 true */
    int col;
    enum lm_cmp op;
    double a, b;
    struct lm_region region;
    struct ref *arg[3];
    int n;
};

static const char *const COLS[] = {"x", "y", "z", "dx", "dy", "dz", "r", "g", "b",
                                   "intensity", "t", "id", "w"};

static size_t put(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + len, 65536 - len, fmt, ap);
    va_end(ap);
    return len + (size_t)n;
}

static struct ref *gen(int depth, const struct sample *s, size_t n, char *buf, size_t *len)
{
    struct ref *e = calloc(1, sizeof *e);
    int pick = depth >= 3 ? (int)(rnd() % 2) : (int)(rnd() % 6);
    static const char *const ops[] = {"", "<", "<=", ">", ">=", "=", "!="};
    switch (pick) {
    case 0: { /* comparison, often against a stored value */
        static const int cols[] = {0, 1, 2, C_R, C_INTENSITY, C_T, C_ID, C_W, 5};
        e->kind = 0;
        e->col = cols[rnd() % 9];
        e->op = (enum lm_cmp)(1 + rnd() % 7);
        const struct sample *o = &s[rnd() % n];
        e->a = rnd() % 3 ? o->v[e->col] : (double)rndf(-6, 6);
        e->b = s[rnd() % n].v[e->col];
        if (e->b < e->a) {
            double t = e->a;
            e->a = e->b;
            e->b = t;
        }
        if (e->op == LM_CMP_BETWEEN)
            *len = put(buf, *len, "%s BETWEEN %.17g AND %.17g", COLS[e->col], e->a, e->b);
        else
            *len = put(buf, *len, "%s %s %.17g", COLS[e->col], ops[e->op], e->a);
        return e;
    }
    case 1: { /* region */
        e->kind = 1;
        struct lm_region *r = &e->region;
        int k = (int)(rnd() % 3);
        if (k == 0) {
            r->kind = LM_REGION_BOX;
            for (int a = 0; a < 3; a++) {
                float c = rndf(-6, 6), h = rndf(0.2f, 5);
                r->min[a] = c - h;
                r->max[a] = c + h;
            }
            *len = put(buf, *len, "INSIDE BOX (%.9g, %.9g, %.9g) TO (%.9g, %.9g, %.9g)",
                       (double)r->min[0], (double)r->min[1], (double)r->min[2],
                       (double)r->max[0], (double)r->max[1], (double)r->max[2]);
        } else if (k == 1) {
            r->kind = LM_REGION_SPHERE;
            for (int a = 0; a < 3; a++)
                r->center[a] = rndf(-6, 6);
            r->radius = rndf(0.5f, 6);
            *len = put(buf, *len, "WITHIN %.9g OF (%.9g, %.9g, %.9g)", (double)r->radius,
                       (double)r->center[0], (double)r->center[1], (double)r->center[2]);
        } else {
            float eye[3], target[3], up[3] = {0, 1, 0};
            for (int a = 0; a < 3; a++) {
                eye[a] = rndf(-12, 12);
                target[a] = rndf(-3, 3);
            }
            if (fabsf(eye[0] - target[0]) < 0.5f && fabsf(eye[2] - target[2]) < 0.5f)
                eye[0] += 3.0f;
            float fov = rndf(20, 90), asp = rndf(0.5f, 2), nd = rndf(0.1f, 2), fd = rndf(5, 30);
            assert_int_equal(lm_frustum_from_camera(eye, target, up, fov, asp, nd, fd, r), 0);
            *len = put(buf, *len,
                       "IN FRUSTUM (EYE (%.9g, %.9g, %.9g), TARGET (%.9g, %.9g, %.9g), "
                       "UP (0, 1, 0), FOV %.9g, ASPECT %.9g, NEAR %.9g, FAR %.9g)",
                       (double)eye[0], (double)eye[1], (double)eye[2], (double)target[0],
                       (double)target[1], (double)target[2], (double)fov, (double)asp,
                       (double)nd, (double)fd);
        }
        return e;
    }
    case 2:
    case 3:
        e->kind = pick;
        e->n = 2 + (int)(rnd() % 2);
        *len = put(buf, *len, "(");
        for (int i = 0; i < e->n; i++) {
            if (i)
                *len = put(buf, *len, pick == 2 ? " AND " : " OR ");
            e->arg[i] = gen(depth + 1, s, n, buf, len);
        }
        *len = put(buf, *len, ")");
        return e;
    case 4:
        e->kind = 4;
        e->n = 1;
        *len = put(buf, *len, "NOT ");
        e->arg[0] = gen(depth + 1, s, n, buf, len);
        return e;
    default:
        e->kind = 5;
        *len = put(buf, *len, "TRUE");
        return e;
    }
}

static void ref_free(struct ref *e)
{
    for (int i = 0; i < e->n; i++)
        ref_free(e->arg[i]);
    free(e);
}

static bool in_region(const struct lm_region *r, const float p[3])
{
    float x = p[0], y = p[1], z = p[2];
    switch (r->kind) {
    case LM_REGION_BOX:
        return x >= r->min[0] && x <= r->max[0] && y >= r->min[1] && y <= r->max[1] &&
               z >= r->min[2] && z <= r->max[2];
    case LM_REGION_SPHERE: {
        float dx = x - r->center[0], dy = y - r->center[1], dz = z - r->center[2];
        return dx * dx + dy * dy + dz * dz <= r->radius * r->radius;
    }
    case LM_REGION_FRUSTUM:
        for (int i = 0; i < 6; i++)
            if (r->planes[i][0] * x + r->planes[i][1] * y + r->planes[i][2] * z +
                    r->planes[i][3] < 0.0f)
                return false;
        return true;
    default: return true;
    }
}

static bool eval(const struct ref *e, const struct sample *s)
{
    switch (e->kind) {
    case 0: {
        double v = s->v[e->col];
        switch (e->op) {
        case LM_CMP_LT: return v < e->a;
        case LM_CMP_LE: return v <= e->a;
        case LM_CMP_GT: return v > e->a;
        case LM_CMP_GE: return v >= e->a;
        case LM_CMP_EQ: return v == e->a;
        case LM_CMP_NE: return v != e->a;
        case LM_CMP_BETWEEN: return v >= e->a && v <= e->b;
        }
        return false;
    }
    case 1: return in_region(&e->region, s->p);
    case 2:
        for (int i = 0; i < e->n; i++)
            if (!eval(e->arg[i], s))
                return false;
        return true;
    case 3:
        for (int i = 0; i < e->n; i++)
            if (eval(e->arg[i], s))
                return true;
        return false;
    case 4: return !eval(e->arg[0], s);
    default: return true;
    }
}

#define FAILF(...)                                                                   \
    do {                                                                             \
        fprintf(stderr, "randomized WHERE failed (seed %llu): ",                    \
                (unsigned long long)seed);                                           \
        fprintf(stderr, __VA_ARGS__);                                                \
        fprintf(stderr, "\n");                                                       \
        fail();                                                                      \
    } while (0)

static void insert_scene(lm_db *db, const char *field, const struct sample *s, size_t n)
{
    ok(db, field[0] == 'r' ? "CREATE FIELD rnd (VOXEL 0.5, CHUNK 4, id i32, w f32)"
                           : "CREATE FIELD scratch (VOXEL 0.5, CHUNK 4, id i32, w f32)");
    char *text = malloc(64 + n * 320);
    size_t len = (size_t)sprintf(text, "INSERT INTO %s VALUES ", field);
    for (size_t i = 0; i < n; i++) {
        len += (size_t)sprintf(text + len, "%s(", i ? ", " : "");
        for (int c = 0; c < 13; c++)
            len += (size_t)sprintf(text + len, "%s%.17g", c ? ", " : "", s[i].v[c]);
        len += (size_t)sprintf(text + len, ")");
    }
    ok(db, text);
    free(text);
}

static void random_where_matches_brute_force(void **state)
{
    lm_db *db = ((struct fixture *)*state)->db;
    const char *env = getenv("LUMADB_TEST_SEED");
    seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL);
    rng = seed;
    size_t n = 1500;
    struct sample *s = calloc(n, sizeof *s);
    for (size_t i = 0; i < n; i++) {
        float centre[3] = {rndf(-5, 5), rndf(-5, 5), rndf(-5, 5)};
        for (int a = 0; a < 3; a++)
            s[i].v[a] = i % 4 ? rndf(-6, 6) : centre[a] + rndf(-0.4f, 0.4f);
        float d[3];
        do {
            for (int a = 0; a < 3; a++)
                d[a] = rndf(-1, 1);
        } while (d[0] * d[0] + d[1] * d[1] + d[2] * d[2] < 0.1f);
        float l = sqrtf(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
        for (int a = 0; a < 3; a++)
            s[i].v[3 + a] = d[a] / l;
        for (int c = 6; c < 9; c++)
            s[i].v[c] = (double)(rnd() % 256) / 255.0;
        s[i].v[C_INTENSITY] = (double)rndf(0, 4);
        s[i].v[C_T] = (double)(rnd() % 1000);
        s[i].v[C_ID] = (double)i;
        s[i].v[C_W] = (double)rndf(-10, 10);
    }
    insert_scene(db, "rnd", s, n);
    /* read back what is stored: directions and colours are quantised */
    struct lm_exec_result *all = run(db, "SELECT * FROM rnd");
    assert_int_equal(all->n_rows, n);
    for (size_t i = 0; i < n; i++) {
        for (int c = 0; c < 13; c++)
            s[i].v[c] = dval(all, i, (size_t)c);
        for (int a = 0; a < 3; a++)
            s[i].p[a] = (float)s[i].v[a];
    }
    lm_exec_result_free(all);
    char *text = malloc(65536);
    int rounds = 300;
    for (int round = 0; round < rounds; round++) {
        size_t len = 0;
        struct ref *e = gen(0, s, n, text, &len);
        char *where = strdup(text);
        struct lm_exec_result *r = run(db, "SELECT id FROM rnd WHERE %s", where);
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            if (!eval(e, &s[i]))
                continue;
            if (k >= r->n_rows || ival(r, k, 0) != (int64_t)s[i].v[C_ID])
                FAILF("SELECT: row %zu should be id %g\n  WHERE %s", k, s[i].v[C_ID], where);
            k++;
        }
        if (k != r->n_rows)
            FAILF("SELECT: %zu rows, expected %zu\n  WHERE %s", r->n_rows, k, where);
        lm_exec_result_free(r);
        if (count_where(db, "rnd", where) != (int64_t)k)
            FAILF("count(*) differs from the rows\n  WHERE %s", where);
        if (round % 10 == 0) { /* writes on a copy */
            insert_scene(db, "scratch", s, n);
            bool upd = round % 20 == 0;
            struct lm_exec_result *w =
                upd ? run(db, "UPDATE scratch SET w = 1000 WHERE %s", where)
                    : run(db, "DELETE FROM scratch WHERE %s", where);
            if (w->affected != k)
                FAILF("%s: %llu samples, expected %zu\n  WHERE %s", upd ? "UPDATE" : "DELETE",
                      (unsigned long long)w->affected, k, where);
            lm_exec_result_free(w);
            struct lm_exec_result *left = run(db, upd ? "SELECT id, w FROM scratch"
                                                      : "SELECT id FROM scratch");
            size_t j = 0;
            for (size_t i = 0; i < n; i++) {
                bool hit = eval(e, &s[i]);
                if (upd) {
                    if ((dval(left, i, 1) == 1000) != hit)
                        FAILF("UPDATE: id %g %s\n  WHERE %s", s[i].v[C_ID],
                              hit ? "not updated" : "updated", where);
                } else if (!hit) {
                    if (j >= left->n_rows || ival(left, j, 0) != (int64_t)s[i].v[C_ID])
                        FAILF("DELETE: id %g should remain\n  WHERE %s", s[i].v[C_ID], where);
                    j++;
                }
            }
            if (!upd && j != left->n_rows)
                FAILF("DELETE left %zu, expected %zu\n  WHERE %s", left->n_rows, j, where);
            lm_exec_result_free(left);
            ok(db, "DROP FIELD scratch");
        }
        free(where);
        ref_free(e);
    }
    free(text);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(fields_are_created_listed_described_and_dropped, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(field_statement_errors_point_at_their_node, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(insert_fills_defaults_for_missing_columns, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(insert_errors_name_the_value_and_insert_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(select_orders_stably_limits_and_names_columns, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(order_by_with_limit_over_many_rows_keeps_the_first,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(aggregates_agree_on_every_path_and_are_null_when_empty,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(group_by_voxel_chunk_and_lod_count_every_cell, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(nearest_returns_k_nearest_passing_the_where, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(select_errors_point_at_the_offending_node, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(delete_and_update_map_where_onto_selections, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(write_errors_point_at_the_set_or_the_where, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(raycast_and_radiance_return_tables, setup, teardown),
        cmocka_unit_test_setup_teardown(explain_describes_the_plan_of_every_statement, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(walk_stats_and_field_stat_describe_the_field, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(prepared_statements_bind_and_run_again, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(check_plans_without_touching_data, setup, teardown),
        cmocka_unit_test_setup_teardown(each_hands_rows_out_one_by_one, setup, teardown),
        cmocka_unit_test_setup_teardown(a_raised_cancel_flag_stops_the_statement, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(out_of_memory_fails_cleanly, setup, teardown),
        cmocka_unit_test_setup_teardown(random_where_matches_brute_force, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
