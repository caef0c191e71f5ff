/* test_cli_query.c - golden output of the real `lumadb query` binary (table, CSV, JSON)
 * on a small scene whose answers the test computes itself; scripts from stdin; error
 * rendering with a caret; exit codes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/spawn.h"
#include "lumadb.h"

#define N 20

static char dir[64];

/* Sample i of the scene. */
static void sample(int i, float p[3], float *intensity, int64_t *t)
{
    p[0] = (float)i + 0.5f;
    p[1] = (float)(i % 4) + 0.5f;
    p[2] = (float)(i % 3) * 1.25f + 0.1f;
    *intensity = 0.5f * (float)i;
    *t = 10 * i;
}

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/lumadb-cliq-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    lm_db *db;
    if (lm_db_open(dir, NULL, &db, NULL))
        return -1;
    struct lm_field_opts o = {.voxel_size = 1.0f, .chunk_edge = 4, .n_user_columns = 1};
    strcpy(o.user_columns[0].name, "id");
    o.user_columns[0].type = LM_TYPE_I32;
    float x[N], y[N], z[N], in[N];
    int64_t t[N];
    int32_t id[N];
    for (int i = 0; i < N; i++) {
        float p[3];
        sample(i, p, &in[i], &t[i]);
        x[i] = p[0];
        y[i] = p[1];
        z[i] = p[2];
        id[i] = i;
    }
    struct lm_batch b = {.n = N, .x = x, .y = y, .z = z, .intensity = in, .t = t, .n_user = 1,
                         .user = {id}};
    int rc = lm_field_create(db, "s", &o, NULL) || lm_insert(db, "s", &b, NULL, NULL);
    lm_db_close(db);
    return rc ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    return spawn_rm_rf(dir);
}

static void expect(const struct spawn_out *o, int status, const char *out, const char *err)
{
    if (o->status != status || (out && strcmp(o->out, out)) || (err && strcmp(o->err, err)))
        fail_msg("exit %d (want %d)\n--- stdout\n%s--- want\n%s--- stderr\n%s--- want\n%s",
                 o->status, status, o->out, out ? out : "(any)\n", o->err,
                 err ? err : "(any)\n");
}

static void csv_rows_match_a_brute_force_where(void **state)
{
    (void)state;
    /* the answer, computed here: an OR of a comparison and a sphere, newest first */
    char want[4096] = "id,x,z,intensity\n", a[48], b[48], c[48];
    for (int i = N - 1; i >= 0; i--) {
        float p[3], in;
        int64_t t;
        sample(i, p, &in, &t);
        float dx = p[0] - 18.5f, dy = p[1] - 2.5f, dz = p[2] - 0.1f;
        if (!(i < 3 || dx * dx + dy * dy + dz * dz <= 4.0f))
            continue;
        snprintf(want + strlen(want), sizeof want - strlen(want), "%d,%s,%s,%s\n", i,
                 spawn_f32(a, p[0]), spawn_f32(b, p[2]), spawn_f32(c, in));
    }
    struct spawn_out o = spawn_lumadb(NULL, "query", dir,
                                      "SELECT id, x, z, intensity FROM s WHERE id < 3 OR "
                                      "WITHIN 2 OF (18.5, 2.5, 0.1) ORDER BY id DESC",
                                      "--format", "csv", NULL);
    expect(&o, 0, want, "");
    spawn_free(&o);
}

static void table_output_is_aligned_and_counted(void **state)
{
    (void)state;
    /* x = i + 0.5 <= 10: i in 0..9; sum of 0.5 i = 22.5; last t = 90 */
    struct spawn_out o = spawn_lumadb(NULL, "query", dir,
                                      "SELECT count(*), sum(intensity), max(t) AS last FROM s "
                                      "WHERE INSIDE BOX (0, 0, 0) TO (10, 4, 4)", NULL);
    expect(&o, 0,
           " count(*) | sum(intensity) | last\n"
           "----------+----------------+------\n"
           "       10 |           22.5 |   90\n"
           "(1 row)\n",
           "");
    spawn_free(&o);
    o = spawn_lumadb(NULL, "query", dir, "SHOW FIELDS", "--format", "table", NULL);
    expect(&o, 0,
           " name | samples | chunks | voxels | voxel_size | chunk_edge | columns\n"
           "------+---------+--------+--------+------------+------------+---------\n"
           " s    |      20 |      5 |     20 |          1 |          4 | id i32\n" /* x/4 */
           "(1 row)\n",
           "");
    spawn_free(&o);
}

static void json_output_is_an_array_of_objects(void **state)
{
    (void)state;
    struct spawn_out o = spawn_lumadb(NULL, "query", dir,
                                      "SELECT id, y, t FROM s WHERE id BETWEEN 4 AND 5",
                                      "--format", "json", NULL);
    expect(&o, 0, "[{\"id\": 4, \"y\": 0.5, \"t\": 40},\n {\"id\": 5, \"y\": 1.5, \"t\": 50}]\n",
           "");
    spawn_free(&o);
    o = spawn_lumadb(NULL, "query", dir, "SELECT min(id) FROM s WHERE id > 100", "--format",
                     "json", NULL);
    expect(&o, 0, "[{\"min(id)\": null}]\n", "");
    spawn_free(&o);
}

static void grouped_rows_match_cells_computed_here(void **state)
{
    (void)state;
    /* voxel 1: cell = floor of the position; rows sorted by (cz, cy, cx) */
    int cells[N][5], n = 0; /* cx, cy, cz, count, min id */
    for (int i = 0; i < N; i++) {
        float p[3], in;
        int64_t t;
        sample(i, p, &in, &t);
        int c[3] = {(int)floorf(p[0]), (int)floorf(p[1]), (int)floorf(p[2])}, k;
        for (k = 0; k < n; k++)
            if (cells[k][0] == c[0] && cells[k][1] == c[1] && cells[k][2] == c[2])
                break;
        if (k == n) {
            n++;
            for (int a = 0; a < 3; a++)
                cells[k][a] = c[a];
            cells[k][3] = 0;
            cells[k][4] = i; /* samples come by id: the first is the smallest */
        }
        cells[k][3]++;
    }
    for (int a = 0; a < n; a++) /* insertion sort by (cz, cy, cx) */
        for (int b = a; b > 0; b--) {
            int *p = cells[b - 1], *q = cells[b];
            bool gt = p[2] != q[2] ? p[2] > q[2] : p[1] != q[1] ? p[1] > q[1] : p[0] > q[0];
            if (!gt)
                break;
            for (int k = 0; k < 5; k++) {
                int tmp = p[k];
                p[k] = q[k];
                q[k] = tmp;
            }
        }
    char want[4096] = "cx,cy,cz,count(*),min(id)\n", want_count[4096] = "cx,cy,cz,n\n";
    for (int k = 0; k < n; k++) {
        snprintf(want + strlen(want), sizeof want - strlen(want), "%d,%d,%d,%d,%d\n",
                 cells[k][0], cells[k][1], cells[k][2], cells[k][3], cells[k][4]);
        snprintf(want_count + strlen(want_count), sizeof want_count - strlen(want_count),
                 "%d,%d,%d,%d\n", cells[k][0], cells[k][1], cells[k][2], cells[k][3]);
    }
    struct spawn_out o = spawn_lumadb(NULL, "query", dir,
                                      "SELECT count(*), min(id) FROM s GROUP BY VOXEL",
                                      "--format=csv", NULL);
    expect(&o, 0, want, "");
    spawn_free(&o);
    /* the stored voxel aggregates give the same cells */
    o = spawn_lumadb(NULL, "query", dir, "SELECT count(*) AS n FROM s GROUP BY VOXEL",
                     "--format=csv", NULL);
    expect(&o, 0, want_count, "");
    spawn_free(&o);
}

static void scripts_run_from_stdin_and_stop_at_an_error(void **state)
{
    (void)state;
    struct spawn_out o = spawn_lumadb("SELECT count(*) FROM s;\n-- a comment\n"
                                      "SELECT max(id) FROM s;;\n",
                                      "query", dir, "-", "--format", "csv", NULL);
    expect(&o, 0, "count(*)\n20\nmax(id)\n19\n", "");
    spawn_free(&o);
    o = spawn_lumadb("DELETE FROM s WHERE id = 0;\n"
                     "SELECT idd\n  FROM s;\n"
                     "DELETE FROM s WHERE id = 1;\n",
                     "query", dir, "-", "--format", "json", NULL);
    expect(&o, 1, "{\"message\": \"deleted 1 sample\", \"affected\": 1}\n",
           "lumadb query: 2:8: unknown column 'idd' in field 's'; did you mean 'id'?\n"
           "SELECT idd\n"
           "       ^\n");
    spawn_free(&o);
    o = spawn_lumadb(NULL, "query", dir, "SELECT count(*) FROM s", "--format", "csv", NULL);
    expect(&o, 0, "count(*)\n19\n", ""); /* the third statement did not run */
    spawn_free(&o);
    o = spawn_lumadb(NULL, "query", dir, "INSERT INTO s (x, y, z, id) VALUES (0.5, 0.5, 0.1, 0)",
                     NULL);
    expect(&o, 0, "inserted 1 sample\n", "");
    spawn_free(&o);
    o = spawn_lumadb(NULL, "query", dir, "SELECT x FORM s", NULL);
    expect(&o, 1, "",
           "lumadb query: 1:10: expected FROM after select list, found 'FORM'\n"
           "SELECT x FORM s\n         ^\n");
    spawn_free(&o);
}

static void the_shell_reads_a_script_without_a_terminal(void **state)
{
    (void)state;
    struct spawn_out o = spawn_lumadb(".mode csv\nSELECT count(*)\n  FROM s;\n.mode json\n"
                                      "SELECT max(id) AS m FROM s;\n.bogus\n.quit\n"
                                      "SELECT 1 FROM s;\n",
                                      "shell", dir, NULL);
    expect(&o, 0, "count(*)\n20\n[{\"m\": 19}]\n", "unknown command '.bogus' (try .help)\n");
    spawn_free(&o);
    o = spawn_lumadb("SELECT nope FROM s;\n", "shell", dir, NULL);
    expect(&o, 1, "", "error: 1:8: unknown column 'nope' in field 's'\nSELECT nope FROM s;\n"
                      "       ^\n");
    spawn_free(&o);
}

static void exit_codes_tell_usage_from_failures(void **state)
{
    (void)state;
    struct spawn_out o = spawn_lumadb(NULL, "query", dir, "SHOW FIELDS", "--format", "xml",
                                      NULL);
    expect(&o, 2, "", NULL);
    spawn_free(&o);
    o = spawn_lumadb(NULL, "query", "/nonexistent/lumadb", "SHOW FIELDS", NULL);
    expect(&o, 3, "", NULL);
    assert_non_null(strstr(o.err, "no database at /nonexistent/lumadb"));
    spawn_free(&o);
    o = spawn_lumadb(NULL, "query", NULL);
    expect(&o, 2, "", NULL);
    spawn_free(&o);
    o = spawn_lumadb(NULL, "query", "--help", NULL);
    expect(&o, 0, NULL, "");
    assert_non_null(strstr(o.out, "usage: lumadb query"));
    spawn_free(&o);
    const char *cmds[] = {"shell", "import", "export"};
    for (int k = 0; k < 3; k++) {
        o = spawn_lumadb(NULL, cmds[k], "--help", NULL);
        expect(&o, 0, NULL, "");
        assert_non_null(strstr(o.out, "usage: lumadb"));
        spawn_free(&o);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(csv_rows_match_a_brute_force_where),
        cmocka_unit_test(table_output_is_aligned_and_counted),
        cmocka_unit_test(json_output_is_an_array_of_objects),
        cmocka_unit_test(grouped_rows_match_cells_computed_here),
        cmocka_unit_test(scripts_run_from_stdin_and_stop_at_an_error),
        cmocka_unit_test(the_shell_reads_a_script_without_a_terminal),
        cmocka_unit_test(exit_codes_tell_usage_from_failures),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
