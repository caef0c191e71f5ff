/* test_cli_files.c - `lumadb export` and `lumadb import` through the real binary: round
 * trips of binary PLY and CSV that keep every value, ASCII PLY and XYZ files written
 * here, and malformed files: the error names the line or byte offset, nothing of the
 * failing batch is imported and the batches before it are. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/spawn.h"
#include "exec.h"
#include "lumadb.h"

#define N 300

static char dir[64], tmp[96];

static uint64_t rng = 7;
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

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/lumadb-clif-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(tmp, sizeof tmp, "%s/files", dir);
    lm_db *db;
    if (lm_db_open(dir, NULL, &db, NULL))
        return -1;
    struct lm_field_opts o = {.voxel_size = 0.25f, .chunk_edge = 8, .n_user_columns = 3};
    strcpy(o.user_columns[0].name, "label");
    o.user_columns[0].type = LM_TYPE_I32;
    strcpy(o.user_columns[1].name, "flag");
    o.user_columns[1].type = LM_TYPE_U8;
    strcpy(o.user_columns[2].name, "w");
    o.user_columns[2].type = LM_TYPE_F32;
    static float x[N], y[N], z[N], dx[N], dy[N], dz[N], r[N], g[N], b[N], in[N], w[N];
    static int64_t t[N];
    static int32_t label[N];
    static uint8_t flag[N];
    for (int i = 0; i < N; i++) {
        x[i] = rndf(-20, 20);
        y[i] = rndf(-20, 20);
        z[i] = rndf(-5, 5);
        float d[3] = {rndf(-1, 1), rndf(-1, 1), rndf(0.2f, 1)};
        float l = sqrtf(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
        dx[i] = d[0] / l;
        dy[i] = d[1] / l;
        dz[i] = d[2] / l;
        r[i] = (float)(rnd() % 256) / 255.0f;
        g[i] = (float)(rnd() % 256) / 255.0f;
        b[i] = (float)(rnd() % 256) / 255.0f;
        in[i] = rndf(0, 8);
        t[i] = 1700000000000000ll + (int64_t)(rnd() % 1000000);
        label[i] = i - 150;
        flag[i] = (uint8_t)(rnd() % 256);
        w[i] = rndf(-1e6f, 1e6f);
    }
    struct lm_batch bt = {.n = N, .x = x, .y = y, .z = z, .dx = dx, .dy = dy, .dz = dz, .r = r,
                          .g = g, .b = b, .intensity = in, .t = t, .n_user = 3,
                          .user = {label, flag, w}};
    int rc = lm_field_create(db, "src", &o, NULL) || lm_insert(db, "src", &bt, NULL, NULL);
    lm_db_close(db);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", tmp);
    return rc || system(cmd) ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    return spawn_rm_rf(dir);
}

static const char *path(const char *name)
{
    static char p[4][160];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", tmp, name);
    return p[k];
}

static void ok(struct spawn_out o)
{
    if (o.status)
        fail_msg("exit %d\n%s%s", o.status, o.out, o.err);
    spawn_free(&o);
}

static struct lm_exec_result *query(const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    lm_db *db;
    struct lm_db_opts o = {.read_only = true};
    assert_int_equal(lm_db_open(dir, &o, &db, NULL), 0);
    struct lm_exec_result *r = NULL;
    struct lm_error err;
    if (lm_exec_text(db, text, strlen(text), NULL, &r, &err))
        fail_msg("%s: %s", text, err.message);
    lm_db_close(db);
    return r;
}

static int64_t count(const char *field)
{
    struct lm_exec_result *r = query("SELECT count(*) FROM %s", field);
    int64_t n = r->rows[0].i;
    lm_exec_result_free(r);
    return n;
}

/* Every sample of a equals the one of b with the same label (directions within 1e-4). */
static void same_samples(const char *a, const char *b, const char *where)
{
    struct lm_exec_result *ra = query("SELECT * FROM %s WHERE %s ORDER BY label", a, where);
    struct lm_exec_result *rb = query("SELECT * FROM %s ORDER BY label", b);
    assert_int_equal(ra->n_rows, rb->n_rows);
    assert_int_equal(ra->n_columns, rb->n_columns);
    for (size_t c = 0; c < ra->n_columns; c++)
        assert_string_equal(ra->columns[c].name, rb->columns[c].name);
    for (size_t i = 0; i < ra->n_rows * ra->n_columns; i++) {
        const struct lm_exec_value *u = &ra->rows[i], *v = &rb->rows[i];
        size_t c = i % ra->n_columns;
        assert_int_equal(u->type, v->type);
        if (u->type == LM_EXEC_INT)
            assert_int_equal(u->i, v->i);
        else if (c >= LM_COL_DX && c <= LM_COL_DZ)
            assert_true(fabs(u->d - v->d) < 1e-4);
        else if (u->d != v->d)
            fail_msg("%s: column %s of row %zu: %.9g != %.9g", b, ra->columns[c].name,
                     i / ra->n_columns, u->d, v->d);
    }
    lm_exec_result_free(ra);
    lm_exec_result_free(rb);
}

static void binary_ply_and_csv_round_trips_keep_every_value(void **state)
{
    (void)state;
    ok(spawn_lumadb(NULL, "export", dir, "src", path("all.ply"), NULL));
    ok(spawn_lumadb(NULL, "export", dir, "src", path("all.csv"), NULL));
    ok(spawn_lumadb(NULL, "import", dir, "from_ply", path("all.ply"), "--voxel", "0.5", NULL));
    ok(spawn_lumadb(NULL, "import", dir, "from_csv", path("all.csv"), "--batch", "64", NULL));
    same_samples("src", "from_ply", "TRUE");
    same_samples("src", "from_csv", "TRUE");
    /* the created fields kept the user columns and their types */
    struct lm_exec_result *r = query("DESCRIBE from_csv");
    assert_int_equal(r->n_rows, 14);
    assert_string_equal(r->rows[12 * 3 + 0].s, "flag");
    assert_string_equal(r->rows[12 * 3 + 1].s, "u8");
    lm_exec_result_free(r);
    /* a subset by an LQL WHERE */
    const char *where = "WITHIN 12 OF (0, 0, 0) AND NOT flag < 100";
    struct spawn_out o = spawn_lumadb(NULL, "export", dir, "src", path("part.csv"), "--where",
                                      where, NULL);
    assert_int_equal(o.status, 0);
    assert_non_null(strstr(o.out, "exported "));
    spawn_free(&o);
    ok(spawn_lumadb(NULL, "import", dir, "part", path("part.csv"), NULL));
    same_samples("src", "part", where);
    /* a bad --where is shown against the option's text */
    o = spawn_lumadb(NULL, "export", dir, "src", path("x.csv"), "--where", "flagg > 1", NULL);
    assert_int_equal(o.status, 1);
    assert_non_null(strstr(o.err, "1:1: unknown column 'flagg' in field 'src'; did you mean "
                                  "'flag'?\nflagg > 1\n^"));
    spawn_free(&o);
}

static void ascii_ply_and_xyz_files_load(void **state)
{
    (void)state;
    FILE *f = fopen(path("a.ply"), "w");
    fprintf(f, "ply\nformat ascii 1.0\ncomment written by the test\nelement vertex 3\n"
               "property float x\nproperty float y\nproperty float z\n"
               "property float nx\nproperty float ny\nproperty float nz\n"
               "property uchar red\nproperty uchar green\nproperty uchar blue\n"
               "property float intensity\nproperty int label\n"
               "element face 1\nproperty list uchar int vertex_indices\nend_header\n"
               "1 2 3 0 0 2 255 0 51 0.5 7\n"
               "-1.5 0.25 4 1 0 0 0 255 102 2 -8\n"
               "0 0 0 0 0.6 0.8 10 20 30 1 9\n"
               "3 0 1 2\n");
    fclose(f);
    ok(spawn_lumadb(NULL, "import", dir, "a", path("a.ply"), "--voxel", "1", NULL));
    struct lm_exec_result *r = query("SELECT x, y, z, dz, r, g, b, intensity, label FROM a "
                                     "ORDER BY label");
    assert_int_equal(r->n_rows, 3);
    const struct lm_exec_value *v = r->rows;
    assert_true(v[0].d == -1.5 && v[1].d == 0.25 && v[2].d == 4);
    assert_true(v[4].d == 0 && v[5].d == 1.0f && fabs(v[6].d - 0.4) < 1e-6);
    assert_int_equal(v[8].i, -8);
    v += r->n_columns;
    assert_true(fabs(v[3].d - 1.0) < 1e-4); /* the normal (0, 0, 2) was normalised */
    assert_true(fabs(v[6].d - 0.2) < 1e-6 && v[7].d == 0.5);
    lm_exec_result_free(r);

    f = fopen(path("p.xyz"), "w");
    fprintf(f, "# x y z r g b\n1 2 3 255 0 0\n\n4 5 6 0 255 51\n7 8 9 0 0 0\n");
    fclose(f);
    ok(spawn_lumadb(NULL, "import", dir, "pts", path("p.xyz"), NULL));
    r = query("SELECT x, r, g, b FROM pts ORDER BY x");
    assert_int_equal(r->n_rows, 3);
    assert_true(r->rows[4].d == 4 && r->rows[6].d == 1 && fabs(r->rows[7].d - 0.2) < 1e-6);
    lm_exec_result_free(r);
}

static void a_bad_csv_line_stops_the_import_at_its_batch(void **state)
{
    (void)state;
    FILE *f = fopen(path("bad.csv"), "w");
    fprintf(f, "x,y,z,intensity\n");
    for (int i = 0; i < 35; i++)
        fprintf(f, i == 26 ? "%d,0,0,abc\n" : "%d,0,0,1\n", i);
    fclose(f);
    struct spawn_out o = spawn_lumadb(NULL, "import", dir, "bad", path("bad.csv"), "--batch",
                                      "10", NULL);
    assert_int_equal(o.status, 1);
    /* sample 27 is on line 28; batch 3 holds samples 21 to 30 */
    assert_non_null(strstr(o.err, "bad.csv:28: column 'intensity': 'abc' is not a number"));
    assert_non_null(strstr(o.err, "nothing of batch 3 (samples 21 to 30) was imported; the 2 "
                                  "batches before it (20 samples) were"));
    spawn_free(&o);
    assert_int_equal(count("bad"), 20);

    f = fopen(path("colour.csv"), "w");
    fprintf(f, "x,y,z,red,green,blue\n1,1,1,0,0,0\n2,2,2,0,300,0\n");
    fclose(f);
    o = spawn_lumadb(NULL, "import", dir, "colour", path("colour.csv"), NULL);
    assert_int_equal(o.status, 1);
    assert_non_null(strstr(o.err, "colour.csv:3: colour green = 300 is outside [0, 1] after "
                                  "scaling"));
    assert_non_null(strstr(o.err, "the 0 batches before it (0 samples) were"));
    spawn_free(&o);
    assert_int_equal(count("colour"), 0);

    f = fopen(path("far.csv"), "w");
    fprintf(f, "x,y,z\n");
    for (int i = 0; i < 12; i++)
        fprintf(f, "%s,0,0\n", i == 9 ? "1e30" : "1");
    fclose(f);
    o = spawn_lumadb(NULL, "import", dir, "far", path("far.csv"), "--batch", "4", NULL);
    assert_int_equal(o.status, 1); /* refused by lm_insert: outside the addressable grid */
    assert_non_null(strstr(o.err, "the batch of lines 10 to 13 was refused"));
    assert_non_null(strstr(o.err, "the 2 batches before it (8 samples) were"));
    spawn_free(&o);
    assert_int_equal(count("far"), 8);
}

static void a_truncated_binary_ply_names_the_byte_offset(void **state)
{
    (void)state;
    const char *header = "ply\nformat binary_little_endian 1.0\nelement vertex 25\n"
                         "property float x\nproperty float y\nproperty float z\n"
                         "property uchar red\nproperty float intensity\nend_header\n";
    const size_t rec = 17;
    for (int bad = 0; bad < 2; bad++) {
        FILE *f = fopen(path("cut.ply"), "wb");
        fputs(header, f);
        for (int i = 0; i < 25; i++) {
            float v[3] = {(float)i, 1, 2}, in = bad && i == 5 ? -1.0f : 0.5f;
            unsigned char red = 200;
            fwrite(v, 4, 3, f);
            fwrite(&red, 1, 1, f);
            fwrite(&in, 4, 1, f);
            if (!bad && i == 16) { /* cut inside y of vertex 17 */
                fclose(f);
                f = fopen(path("cut.ply"), "r+b");
                if (ftruncate(fileno(f), (off_t)(strlen(header) + 16 * rec + 5)))
                    fail();
                break;
            }
        }
        fclose(f);
        const char *field = bad ? "neg" : "cut";
        struct spawn_out o = spawn_lumadb(NULL, "import", dir, field, path("cut.ply"), "--batch",
                                          "8", NULL);
        assert_int_equal(o.status, 1);
        char want[128];
        if (bad)
            snprintf(want, sizeof want, "byte offset %zu: intensity = -1 must be >= 0",
                     strlen(header) + 5 * rec);
        else
            snprintf(want, sizeof want, "byte offset %zu: the file ends inside a record",
                     strlen(header) + 16 * rec + 4);
        if (!strstr(o.err, want))
            fail_msg("'%s' not in:\n%s", want, o.err);
        assert_non_null(strstr(o.err, bad ? "before it (0 samples)" : "before it (16 samples)"));
        spawn_free(&o);
        assert_int_equal(count(field), bad ? 0 : 16);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(binary_ply_and_csv_round_trips_keep_every_value),
        cmocka_unit_test(ascii_ply_and_xyz_files_load),
        cmocka_unit_test(a_bad_csv_line_stops_the_import_at_its_batch),
        cmocka_unit_test(a_truncated_binary_ply_names_the_byte_offset),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
