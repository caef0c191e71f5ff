/* device.c - the executor's choice between CPU and OpenCL kernel tables, the shared
 * OpenCL runtime, and the per-thread EXPLAIN record. See device.h. */
#include "device.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cull.h"
#include "error.h"
#include "knn.h"
#include "lod_pyramid.h"
#include "raymarch.h"
#include "scan.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;       /* dev's settings */
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER; /* held while starting */
static _Atomic bool started;
static struct {
    enum lm_device_mode mode; /* AUTO: $LUMADB_DEVICE */
    char cache_dir[512];
    bool cache_dir_set;
    char data_dir[512];       /* the last database opened for writing */
    lm_cl_log_fn log;
    void *log_user;
    bool frozen;              /* the runtime is starting: settings of the cache are fixed */
    lm_cl *cl;                /* NULL after a start: no device */
    char why[512];            /* the reason there is none */
} dev;

/* ---------------------------------------------------------------- settings */

int lm_device_configure(const struct lm_device_opts *o)
{
    if (!o || o->mode < LM_DEVICE_AUTO || o->mode > LM_DEVICE_OPENCL)
        return LM_EBADARG;
    pthread_mutex_lock(&lock);
    dev.mode = o->mode;
    dev.log = o->log;
    dev.log_user = o->log_user;
    if (o->cache_dir && !dev.frozen) {
        snprintf(dev.cache_dir, sizeof dev.cache_dir, "%s", o->cache_dir);
        dev.cache_dir_set = true;
    }
    pthread_mutex_unlock(&lock);
    return 0;
}

void lm_device_use_data_dir(const char *dir)
{
    if (!dir)
        return;
    pthread_mutex_lock(&lock);
    if (!dev.frozen)
        snprintf(dev.data_dir, sizeof dev.data_dir, "%s", dir);
    pthread_mutex_unlock(&lock);
}

static enum lm_device_mode env_mode(void)
{
    const char *e = getenv("LUMADB_DEVICE");
    if (e && !strcmp(e, "cpu"))
        return LM_DEVICE_CPU;
    if (e && !strcmp(e, "opencl"))
        return LM_DEVICE_OPENCL;
    return LM_DEVICE_AUTO;
}

enum lm_device_mode lm_device_mode(void)
{
    pthread_mutex_lock(&lock);
    enum lm_device_mode m = dev.mode;
    pthread_mutex_unlock(&lock);
    return m != LM_DEVICE_AUTO ? m : env_mode();
}

static void log_line(const char *line)
{
    lm_cl_log_fn fn;
    void *user;
    pthread_mutex_lock(&lock);
    fn = dev.log;
    user = dev.log_user;
    pthread_mutex_unlock(&lock);
    if (fn)
        fn(user, line);
}

void lm_device_log(const char *fmt, ...)
{
    char line[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    log_line(line);
}

/* The runtime's own lines go to the sink configured now. */
static void runtime_log(void *user, const char *line)
{
    (void)user;
    log_line(line);
}

/* ---------------------------------------------------------------- the runtime */

/* Starts the runtime once. Callers that find it started read dev.cl without a lock:
 * it is written before `started` is set and never after. */
static void start(void)
{
    pthread_mutex_lock(&start_lock);
    if (atomic_load(&started)) {
        pthread_mutex_unlock(&start_lock);
        return;
    }
    char cache[512] = "";
    pthread_mutex_lock(&lock);
    dev.frozen = true; /* the cache directory is chosen now */
    /* A data directory that is gone by now (a closed, removed database) is not
     * brought back for a cache: the user cache serves instead. */
    struct stat st;
    if (dev.cache_dir_set)
        snprintf(cache, sizeof cache, "%s", dev.cache_dir);
    else if (*dev.data_dir && !stat(dev.data_dir, &st) && S_ISDIR(st.st_mode))
        snprintf(cache, sizeof cache, "%.500s/kcache", dev.data_dir);
    pthread_mutex_unlock(&lock);

    struct lm_cl_opts o = {.cache_dir = *cache ? cache : NULL, .log = runtime_log};
    struct lm_error err = {0};
    lm_cl *cl = NULL;
    int rc = lm_cl_open(&o, &cl, &err); /* logs through log_line, which takes `lock` */
    pthread_mutex_lock(&lock);
    if (rc)
        snprintf(dev.why, sizeof dev.why, "%s", *err.message ? err.message : lm_strerror(rc));
    dev.cl = cl;
    pthread_mutex_unlock(&lock);
    atomic_store(&started, true);
    if (rc)
        lm_device_log("lumadb: %s; the kernels run on the CPU", err.message);
    pthread_mutex_unlock(&start_lock);
}

lm_cl *lm_device_cl(void)
{
    if (lm_device_mode() == LM_DEVICE_CPU)
        return NULL;
    if (!atomic_load(&started))
        start();
    return dev.cl;
}

int lm_device_status(struct lm_error *err)
{
    if (lm_device_mode() == LM_DEVICE_CPU)
        return lm__fail(err, LM_ENODEVICE, "OpenCL is off (LUMADB_DEVICE=cpu)");
    if (lm_device_cl())
        return 0;
    pthread_mutex_lock(&lock);
    lm__fail(err, LM_ENODEVICE, "%s", dev.why);
    pthread_mutex_unlock(&lock);
    return LM_ENODEVICE;
}

/* ---------------------------------------------------------------- choice */

/* Work from which OpenCL beats the CPU tables: [kind][0] on a GPU or accelerator,
 * [kind][1] on a CPU device (measured with bench_kernels; see docs/KERNELS.md). */
static const size_t threshold[][2] = {
    [LM_DEVICE_WORK_SCAN] = {(size_t)1 << 18, (size_t)1 << 22},
    [LM_DEVICE_WORK_CULL] = {(size_t)1 << 14, (size_t)1 << 18},
    [LM_DEVICE_WORK_RAY] = {(size_t)1 << 10, (size_t)1 << 13},
    [LM_DEVICE_WORK_LOD] = {(size_t)1 << 15, (size_t)1 << 20},
    [LM_DEVICE_WORK_KNN] = {(size_t)1 << 20, (size_t)1 << 24},
};

bool lm_device_wants_opencl(enum lm_device_work kind, size_t work)
{
    enum lm_device_mode m = lm_device_mode();
    if (m == LM_DEVICE_CPU || (m == LM_DEVICE_AUTO && work < threshold[kind][0]))
        return false;
    lm_cl *cl = lm_device_cl();
    if (!cl)
        return false;
    bool cpu_device = (lm_cl_info(cl)->type & CL_DEVICE_TYPE_CPU) != 0;
    return m == LM_DEVICE_OPENCL || work >= threshold[kind][cpu_device];
}

/* The OpenCL table when the work goes there and it can run, else the CPU's best. */
#define DEVICE_TABLE(fn, type, kind, opencl, best)                                         \
    const struct type *fn(size_t work)                                                     \
    {                                                                                      \
        const struct type *t = lm_device_wants_opencl(kind, work) ? opencl() : NULL;       \
        if (!t) {                                                                          \
            t = best();                                                                    \
            lm_device_trace(t->name);                                                      \
        }                                                                                  \
        return t;                                                                          \
    }

DEVICE_TABLE(lm_device_scan_table, lm_scan_table, LM_DEVICE_WORK_SCAN, lm_scan_opencl,
             lm_scan_best)
DEVICE_TABLE(lm_device_cull_table, lm_cull_table, LM_DEVICE_WORK_CULL, lm_cull_opencl,
             lm_cull_best)
DEVICE_TABLE(lm_device_ray_table, lm_ray_table, LM_DEVICE_WORK_RAY, lm_ray_opencl,
             lm_ray_best)
DEVICE_TABLE(lm_device_lod_table, lm_lod_table, LM_DEVICE_WORK_LOD, lm_lod_opencl,
             lm_lod_best)
DEVICE_TABLE(lm_device_knn_table, lm_knn_table, LM_DEVICE_WORK_KNN, lm_knn_opencl,
             lm_knn_best)

void lm_device_failed(atomic_flag *once, const char *what, cl_int st)
{
    if (!atomic_flag_test_and_set(once))
        lm_device_log("lumadb: OpenCL %s failed (%s); it runs on the CPU", what,
                      lm_cl_status_name(st));
}

int lm_device_call_end(struct lm_cl_call *c, atomic_flag *once, const char *what)
{
    cl_int st = lm_cl_call_end(c);
    if (st) {
        lm_device_failed(once, what, st);
        return -1;
    }
    lm_device_trace("opencl");
    return 0;
}

/* ---------------------------------------------------------------- EXPLAIN */

static const char *const trace_names[] = {"scalar", "avx2", "opencl"};
static _Thread_local unsigned trace_bits;

void lm_device_trace(const char *path)
{
    for (unsigned i = 0; i < sizeof trace_names / sizeof trace_names[0]; i++)
        if (!strcmp(path, trace_names[i]))
            trace_bits |= 1u << i;
}

const char *lm_device_trace_take(void)
{
    /* Every combination, indexed by the bits (scalar 1, avx2 2, opencl 4). */
    static const char *const joined[] = {
        "none", "scalar", "avx2", "scalar+avx2",
        "opencl", "scalar+opencl", "avx2+opencl", "scalar+avx2+opencl",
    };
    unsigned b = trace_bits;
    trace_bits = 0;
    return joined[b & 7];
}
