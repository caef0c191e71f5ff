/* test_kernels_cl.c - the OpenCL runtime and the executor's choice of kernel path:
 * discovery (or its absence), builds of every embedded kernel file, build logs named
 * by file, the binary cache, hot reload, resident buffers, LUMADB_DEVICE modes and the
 * EXPLAIN record. Registered twice: as is, and with OCL_ICD_VENDORS pointing at an
 * empty directory and LUMADB_TEST_EXPECT_NO_DEVICE=1 (no platform: the CPU path must
 * answer, with one log line saying why). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "device.h"
#include "scan.h"
#include "tmpdir.h"

static bool expect_none; /* LUMADB_TEST_EXPECT_NO_DEVICE */

/* ---------------------------------------------------------------- log capture */

struct logbuf {
    int lines;
    char text[8192];
};

static void capture(void *user, const char *line)
{
    struct logbuf *b = user;
    size_t at = strlen(b->text);
    b->lines++;
    snprintf(b->text + at, sizeof b->text - at, "%s\n", line);
}

/* Opens a runtime or skips the test when there is no device. */
static lm_cl *open_or_skip(const struct lm_cl_opts *o)
{
    lm_cl *cl = NULL;
    struct lm_error err = {0};
    int rc = lm_cl_open(o, &cl, &err);
    if (expect_none) {
        assert_int_equal(rc, LM_ENODEVICE);
        skip();
    }
    if (rc == LM_ENODEVICE) {
        print_message("no OpenCL device (%s): skipped\n", err.message);
        skip();
    }
    assert_int_equal(rc, 0);
    return cl;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* ---------------------------------------------------------------- tests */

static void no_platform_falls_back_to_the_cpu_with_one_log_line(void **state)
{
    (void)state;
    lm_cl *cl = NULL;
    struct lm_error err = {0};
    int rc = lm_cl_open(NULL, &cl, &err);
    if (!expect_none) {
        if (!rc)
            lm_cl_close(cl);
        skip();
    }
    struct logbuf log = {0};
    struct lm_device_opts o = {.mode = LM_DEVICE_OPENCL, .log = capture, .log_user = &log};
    assert_int_equal(lm_device_configure(&o), 0);
    assert_int_equal(rc, LM_ENODEVICE);
    assert_null(cl);
    assert_non_null(strstr(err.message, "no OpenCL platform"));

    /* Forced to OpenCL, every choice still answers on the CPU. */
    const struct lm_scan_table *t = lm_device_scan_table((size_t)1 << 30);
    assert_ptr_equal(t, lm_scan_best());
    assert_null(lm_scan_opencl());
    assert_null(lm_device_cl());
    assert_int_equal(lm_device_status(&err), LM_ENODEVICE);
    assert_non_null(strstr(err.message, "no OpenCL platform"));
    assert_int_equal(log.lines, 1);
    assert_non_null(strstr(log.text, "no OpenCL platform"));
    assert_non_null(strstr(log.text, "run on the CPU"));

    float v[3] = {1, 2, 3};
    struct lm_scan_plan plan;
    struct lm_scan_agg a;
    assert_int_equal(lm_scan_plan_init(&plan, 3, NULL, NULL, NULL, NULL, NULL, 0), 0);
    assert_int_equal(lm_scan_aggregate(t, &plan, v, LM_SCAN_F32, &a), 0);
    assert_true(a.count == 3 && a.sum == 6);
    o.log = NULL;
    o.mode = LM_DEVICE_AUTO;
    lm_device_configure(&o);
}

static void device_is_described(void **state)
{
    (void)state;
    lm_cl *cl = open_or_skip(NULL);
    const struct lm_cl_info *in = lm_cl_info(cl);
    print_message("OpenCL: %s / %s, %u compute units, %s-shaped kernels, cache %s\n",
                  in->platform, in->device, in->compute_units,
                  in->shape == LM_CL_SHAPE_GPU ? "GPU" : "CPU", in->cache_dir);
    assert_true(*in->device && *in->platform);
    assert_true(in->shape == LM_CL_SHAPE_CPU || in->shape == LM_CL_SHAPE_GPU);
    assert_true(in->compute_units >= 1);
    lm_cl_close(cl);
}

static void every_embedded_kernel_file_builds(void **state)
{
    (void)state;
    struct logbuf log = {0};
    struct lm_cl_opts o = {.cache_dir = "", .log = capture, .log_user = &log};
    lm_cl *cl = open_or_skip(&o);
    int files = 0;
    for (const struct lm__cl_source *s = lm__cl_sources; s->name; s++, files++) {
        assert_int_equal(strlen(s->text), s->len);
        /* A kernel name no file has still builds the file's program first. */
        cl_kernel k;
        struct lm_error err = {0};
        lm_cl_lock(cl);
        int rc = lm_cl_kernel(cl, s->name, "no_such_kernel", &k, &err);
        lm_cl_unlock(cl);
        if (rc != LM_ENOTFOUND)
            print_error("%s: %s\n%s", s->name, err.message, log.text);
        assert_int_equal(rc, LM_ENOTFOUND);
        assert_non_null(strstr(err.message, s->name));
    }
    if (log.lines) /* warnings: the sources are kept free of them */
        print_error("build log:\n%s", log.text);
    assert_int_equal(log.lines, 0);
    assert_true(files >= 1);
    assert_non_null(lm_cl_embedded_source("scan.cl", NULL));
    assert_null(lm_cl_embedded_source("nope.cl", NULL));
    lm_cl_close(cl);
}

static void build_errors_are_logged_with_the_file_name(void **state)
{
    (void)state;
    char dir[64], path[128];
    assert_int_equal(tmpdir_make("lm-cl-src", dir, sizeof dir), 0);
    snprintf(path, sizeof path, "%s/scan.cl", dir);
    write_text(path, "__kernel void probe(__global int *p)\n{\n    p[0] = undeclared;\n}\n");
    struct logbuf log = {0};
    struct lm_cl_opts o = {.cache_dir = "", .source_dir = dir, .log = capture,
                           .log_user = &log};
    lm_cl *cl = open_or_skip(&o);
    cl_kernel k;
    struct lm_error err = {0};
    lm_cl_lock(cl);
    int rc = lm_cl_kernel(cl, "scan.cl", "probe", &k, &err);
    lm_cl_unlock(cl);
    assert_int_equal(rc, LM_EINTERNAL);
    assert_int_equal(strncmp(err.message, "kernels/scan.cl: ", 17), 0);
    assert_non_null(strstr(err.message, "undeclared"));
    assert_true(log.lines >= 1);
    for (char *line = log.text; *line; line = strchr(line, '\n') + 1)
        assert_int_equal(strncmp(line, "kernels/scan.cl: ", 17), 0);
    lm_cl_close(cl);

    /* Hot reload: a good file in the source directory is what gets built. */
    write_text(path, "__kernel void probe(__global int *p) { p[0] = 7; }\n");
    log = (struct logbuf){0};
    cl = open_or_skip(&o);
    lm_cl_lock(cl);
    assert_int_equal(lm_cl_kernel(cl, "scan.cl", "probe", &k, &err), 0);
    assert_int_equal(lm_cl_kernel(cl, "scan.cl", "scan_filter", &k, &err), LM_ENOTFOUND);
    lm_cl_unlock(cl);
    lm_cl_close(cl);
    tmpdir_remove(dir);
}

static int count_files(const char *dir)
{
    int n = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void binaries_are_cached_and_bad_cache_files_rebuilt(void **state)
{
    (void)state;
    char dir[64], cache[128];
    assert_int_equal(tmpdir_make("lm-cl-cache", dir, sizeof dir), 0);
    snprintf(cache, sizeof cache, "%s/deeper/kcache", dir); /* created on open */
    struct lm_cl_opts o = {.cache_dir = cache};
    struct lm_cl_stats st;
    cl_kernel k;
    for (int round = 0; round < 3; round++) {
        lm_cl *cl = open_or_skip(&o);
        assert_string_equal(lm_cl_info(cl)->cache_dir, cache);
        lm_cl_lock(cl);
        assert_int_equal(lm_cl_kernel(cl, "scan.cl", "scan_filter", &k, NULL), 0);
        lm_cl_stats(cl, &st);
        lm_cl_unlock(cl);
        lm_cl_close(cl);
        /* round 0 builds and writes; 1 loads; 2 finds garbage, rebuilds, rewrites */
        assert_int_equal(st.builds_from_source, round != 1);
        assert_int_equal(st.builds_from_cache, round == 1);
        assert_int_equal(count_files(cache), 1);
        if (round == 1) {
            DIR *d = opendir(cache);
            struct dirent *e;
            while ((e = readdir(d)) && e->d_name[0] == '.')
                ;
            char path[512];
            snprintf(path, sizeof path, "%s/%s", cache, e->d_name);
            closedir(d);
            write_text(path, "not a program binary");
        }
    }
    tmpdir_remove(dir);
}

static void resident_buffers_live_until_their_version_changes(void **state)
{
    (void)state;
    struct lm_cl_opts o = {.resident_budget = 3 * 4096};
    lm_cl *cl = open_or_skip(&o);
    static int32_t host[4][1024];
    for (int b = 0; b < 4; b++)
        for (int i = 0; i < 1024; i++)
            host[b][i] = b * 10000 + i;
    cl_mem m, m2;
    struct lm_cl_stats st;
    lm_cl_lock(cl);
    assert_int_equal(lm_cl_resident(cl, 1, 5, host[0], sizeof host[0], &m), 0);
    host[0][0] = -1; /* the device keeps what it copied */
    assert_int_equal(lm_cl_resident(cl, 1, 5, host[0], sizeof host[0], &m2), 0);
    assert_ptr_equal(m, m2);
    int32_t back[1024];
    assert_int_equal(clEnqueueReadBuffer(lm_cl_queue(cl), m, CL_TRUE, 0, sizeof back, back,
                                         0, NULL, NULL), CL_SUCCESS);
    assert_int_equal(back[0], 0);
    assert_int_equal(back[1023], 1023);
    clReleaseMemObject(m2);
    lm_cl_stats(cl, &st);
    assert_int_equal(st.resident_hits, 1);
    assert_int_equal(st.resident_misses, 1);

    /* A new version replaces the old copy. */
    assert_int_equal(lm_cl_resident(cl, 1, 6, host[0], sizeof host[0], &m2), 0);
    assert_ptr_not_equal(m, m2);
    assert_int_equal(clEnqueueReadBuffer(lm_cl_queue(cl), m2, CL_TRUE, 0, sizeof back, back,
                                         0, NULL, NULL), CL_SUCCESS);
    assert_int_equal(back[0], -1);
    clReleaseMemObject(m);
    clReleaseMemObject(m2);
    lm_cl_stats(cl, &st);
    assert_int_equal(st.resident_count, 1);

    /* Past the budget the least recently used go. */
    for (int b = 1; b < 4; b++) {
        assert_int_equal(lm_cl_resident(cl, 10 + (uint64_t)b, 1, host[b], sizeof host[b], &m), 0);
        clReleaseMemObject(m);
    }
    lm_cl_stats(cl, &st);
    assert_int_equal(st.resident_count, 3);
    assert_int_equal(st.resident_evictions, 1);
    assert_int_equal(st.resident_bytes, 3 * sizeof host[0]);
    assert_int_equal(lm_cl_resident(cl, 11, 1, host[1], sizeof host[1], &m), 0); /* still there */
    clReleaseMemObject(m);
    lm_cl_stats(cl, &st);
    assert_int_equal(st.resident_hits, 2);
    lm_cl_resident_drop(cl, 12);
    lm_cl_stats(cl, &st);
    assert_int_equal(st.resident_count, 2);
    lm_cl_unlock(cl);
    lm_cl_close(cl);
}

static void status_codes_translate(void **state)
{
    (void)state;
    assert_int_equal(lm_cl_rc(CL_SUCCESS), 0);
    assert_int_equal(lm_cl_rc(CL_OUT_OF_HOST_MEMORY), -ENOMEM);
    assert_int_equal(lm_cl_rc(CL_MEM_OBJECT_ALLOCATION_FAILURE), -ENOMEM);
    assert_int_equal(lm_cl_rc(CL_DEVICE_NOT_FOUND), LM_ENODEVICE);
    assert_int_equal(lm_cl_rc(-1001), LM_ENODEVICE);
    assert_int_equal(lm_cl_rc(CL_INVALID_KERNEL_ARGS), LM_EINTERNAL);
    assert_string_equal(lm_cl_status_name(CL_OUT_OF_RESOURCES), "CL_OUT_OF_RESOURCES");
    assert_string_equal(lm_cl_status_name(-1001), "CL_PLATFORM_NOT_FOUND_KHR");
    assert_string_equal(lm_cl_status_name(-9999), "CL_ERROR");
}

/* LUMADB_DEVICE modes, the size threshold, and the EXPLAIN record. */
static void modes_choose_the_path_and_explain_records_it(void **state)
{
    (void)state;
    float v[100];
    for (int i = 0; i < 100; i++)
        v[i] = (float)i;
    struct lm_scan_plan plan;
    struct lm_scan_agg a;
    assert_int_equal(lm_scan_plan_init(&plan, 100, NULL, NULL, NULL, NULL, NULL, 0), 0);
    const char *cpu = lm_scan_best()->name;
    bool device = !expect_none && lm_scan_opencl();

    struct lm_device_opts o = {.mode = LM_DEVICE_CPU};
    lm_device_configure(&o);
    lm_device_trace_take();
    assert_string_equal(lm_device_trace_take(), "none");
    lm_scan_aggregate(lm_device_scan_table((size_t)1 << 40), &plan, v, LM_SCAN_F32, &a);
    assert_string_equal(lm_device_trace_take(), cpu);

    o.mode = LM_DEVICE_OPENCL; /* every size */
    lm_device_configure(&o);
    const struct lm_scan_table *t = lm_device_scan_table(100);
    assert_string_equal(t->name, device ? "opencl" : cpu);
    lm_scan_aggregate(t, &plan, v, LM_SCAN_F32, &a);
    assert_true(a.count == 100 && a.sum == 4950 && a.min == 0 && a.max == 99);
    assert_string_equal(lm_device_trace_take(), device ? "opencl" : cpu);

    o.mode = LM_DEVICE_AUTO; /* small scans stay on the CPU */
    lm_device_configure(&o);
    if (!getenv("LUMADB_DEVICE")) {
        lm_scan_aggregate(lm_device_scan_table(100), &plan, v, LM_SCAN_F32, &a);
        lm_scan_aggregate(lm_device_scan_table(100), &plan, v, LM_SCAN_F32, &a);
        assert_string_equal(lm_device_trace_take(), cpu);
    }
    assert_int_equal(lm_device_configure(NULL), LM_EBADARG);
    o.mode = 7;
    assert_int_equal(lm_device_configure(&o), LM_EBADARG);
}

/* What EXPLAIN reads: the paths a query's scans ran on. */
static void explain_names_the_paths_a_query_ran(void **state)
{
    (void)state;
    char dir[64];
    assert_int_equal(tmpdir_make("lm-explain", dir, sizeof dir), 0);
    lm_db *db;
    assert_int_equal(lm_db_open(dir, NULL, &db, NULL), 0);
    struct lm_field_opts fo = {.voxel_size = 1};
    assert_int_equal(lm_field_create(db, "f", &fo, NULL), 0);
    float x[300];
    for (int i = 0; i < 300; i++)
        x[i] = (float)(i % 50);
    struct lm_batch b = {.n = 300, .x = x, .y = x, .z = x};
    assert_int_equal(lm_insert(db, "f", &b, NULL, NULL), 0);
    struct lm_selection sel = {.region = {.kind = LM_REGION_BOX, .min = {0, 0, 0},
                                          .max = {100, 100, 100}}};
    struct lm_aggregate a;
    bool device = !expect_none && lm_scan_opencl();
    const char *cpu = lm_scan_best()->name;
    struct lm_device_opts o = {.mode = LM_DEVICE_OPENCL};
    lm_device_configure(&o);
    lm_kernel_paths();
    assert_string_equal(lm_kernel_paths(), "none");
    assert_int_equal(lm_aggregate(db, "f", &sel, LM_COL_X, &a, NULL), 0);
    assert_int_equal(a.count, 300);
    assert_string_equal(lm_kernel_paths(), device ? "opencl" : cpu);
    o.mode = LM_DEVICE_CPU;
    lm_device_configure(&o);
    assert_int_equal(lm_aggregate(db, "f", &sel, LM_COL_X, &a, NULL), 0);
    assert_int_equal(a.count, 300);
    assert_string_equal(lm_kernel_paths(), cpu);
    o.mode = LM_DEVICE_AUTO;
    lm_device_configure(&o);
    lm_db_close(db);
    tmpdir_remove(dir);
}

int main(void)
{
    const char *e = getenv("LUMADB_TEST_EXPECT_NO_DEVICE");
    expect_none = e && *e && strcmp(e, "0");
    printf("test_kernels_cl: %s\n", expect_none ? "expecting no OpenCL platform"
                                                : "on the OpenCL device if there is one");
    fflush(stdout);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(status_codes_translate),
        cmocka_unit_test(no_platform_falls_back_to_the_cpu_with_one_log_line),
        cmocka_unit_test(device_is_described),
        cmocka_unit_test(every_embedded_kernel_file_builds),
        cmocka_unit_test(build_errors_are_logged_with_the_file_name),
        cmocka_unit_test(binaries_are_cached_and_bad_cache_files_rebuilt),
        cmocka_unit_test(resident_buffers_live_until_their_version_changes),
        cmocka_unit_test(modes_choose_the_path_and_explain_records_it),
        cmocka_unit_test(explain_names_the_paths_a_query_ran),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
