/* cl_runtime.c - OpenCL device discovery, program builds with a binary cache, kernel
 * objects, and resident buffers. See cl_runtime.h for the rules. */
#include "cl_runtime.h"

#include <CL/cl_ext.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "error.h"

#ifndef CL_PLATFORM_NOT_FOUND_KHR
#define CL_PLATFORM_NOT_FOUND_KHR -1001
#endif

#define MAX_PROGRAMS 16
#define MAX_KERNELS 64

struct program {
    char file[32];
    cl_program prog;
};

struct kernel {
    const char *file; /* points into programs[] */
    char name[48];
    cl_kernel k;
};

struct resident {
    uint64_t id, version;
    const void *host;
    size_t bytes;
    cl_mem mem;
    uint64_t used; /* tick of the last use */
};

struct lm_cl {
    struct lm_cl_info info;
    cl_platform_id platform;
    cl_device_id device;
    cl_context ctx;
    cl_command_queue queue;
    char options[160];
    char source_dir[512];
    lm_cl_log_fn log;
    void *log_user;
    pthread_mutex_t lock;
    struct program programs[MAX_PROGRAMS];
    int n_programs;
    struct kernel kernels[MAX_KERNELS];
    int n_kernels;
    struct resident *res;
    size_t n_res, cap_res, res_bytes, res_budget;
    uint64_t tick;
    struct lm_cl_stats stats;
};

/* ---------------------------------------------------------------- statuses */

#define CL_STATUS_TABLE(X)                                                               \
    X(CL_SUCCESS) X(CL_DEVICE_NOT_FOUND) X(CL_DEVICE_NOT_AVAILABLE)                      \
    X(CL_COMPILER_NOT_AVAILABLE) X(CL_MEM_OBJECT_ALLOCATION_FAILURE)                     \
    X(CL_OUT_OF_RESOURCES) X(CL_OUT_OF_HOST_MEMORY) X(CL_BUILD_PROGRAM_FAILURE)          \
    X(CL_INVALID_VALUE) X(CL_INVALID_DEVICE) X(CL_INVALID_BINARY)                        \
    X(CL_INVALID_BUILD_OPTIONS) X(CL_INVALID_PROGRAM) X(CL_INVALID_KERNEL_NAME)          \
    X(CL_INVALID_KERNEL_ARGS) X(CL_INVALID_ARG_INDEX) X(CL_INVALID_ARG_VALUE)            \
    X(CL_INVALID_ARG_SIZE) X(CL_INVALID_WORK_GROUP_SIZE) X(CL_INVALID_WORK_ITEM_SIZE)    \
    X(CL_INVALID_GLOBAL_WORK_SIZE) X(CL_INVALID_BUFFER_SIZE) X(CL_INVALID_MEM_OBJECT)    \
    X(CL_INVALID_HOST_PTR) X(CL_INVALID_COMMAND_QUEUE) X(CL_INVALID_CONTEXT)             \
    X(CL_INVALID_PLATFORM) X(CL_PLATFORM_NOT_FOUND_KHR)

const char *lm_cl_status_name(cl_int status)
{
    switch (status) {
#define CL_STATUS_CASE(s) case s: return #s;
    CL_STATUS_TABLE(CL_STATUS_CASE)
#undef CL_STATUS_CASE
    }
    return "CL_ERROR";
}

int lm_cl_rc(cl_int status)
{
    switch (status) {
    case CL_SUCCESS: return 0;
    case CL_OUT_OF_HOST_MEMORY:
    case CL_OUT_OF_RESOURCES:
    case CL_MEM_OBJECT_ALLOCATION_FAILURE: return -ENOMEM;
    case CL_PLATFORM_NOT_FOUND_KHR:
    case CL_DEVICE_NOT_FOUND:
    case CL_DEVICE_NOT_AVAILABLE:
    case CL_COMPILER_NOT_AVAILABLE: return LM_ENODEVICE;
    }
    return LM_EINTERNAL;
}

static void logf_(const lm_cl *cl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(const lm_cl *cl, const char *fmt, ...)
{
    if (!cl->log)
        return;
    char line[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    cl->log(cl->log_user, line);
}

/* ---------------------------------------------------------------- discovery */

static int device_rank(cl_device_type t)
{
    if (t & CL_DEVICE_TYPE_GPU)
        return 0;
    if (t & CL_DEVICE_TYPE_ACCELERATOR)
        return 1;
    return 2;
}

static bool device_usable(cl_device_id d)
{
    cl_bool avail = CL_FALSE, compiler = CL_FALSE;
    clGetDeviceInfo(d, CL_DEVICE_AVAILABLE, sizeof avail, &avail, NULL);
    clGetDeviceInfo(d, CL_DEVICE_COMPILER_AVAILABLE, sizeof compiler, &compiler, NULL);
    return avail && compiler;
}

/* Picks the best usable device of all platforms (module comment). */
static int pick_device(lm_cl *cl, struct lm_error *err)
{
    cl_platform_id plats[16];
    cl_uint n_plats = 0;
    cl_int st = clGetPlatformIDs(16, plats, &n_plats);
    if (st == CL_PLATFORM_NOT_FOUND_KHR || (st == CL_SUCCESS && n_plats == 0))
        return lm__fail(err, LM_ENODEVICE, "no OpenCL platform (clGetPlatformIDs: %s)",
                        st ? lm_cl_status_name(st) : "0 platforms");
    if (st != CL_SUCCESS)
        return lm__fail(err, LM_ENODEVICE, "clGetPlatformIDs failed: %s",
                        lm_cl_status_name(st));
    int best = 99;
    for (cl_uint p = 0; p < n_plats && p < 16; p++) {
        cl_device_id devs[16];
        cl_uint n_devs = 0;
        if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 16, devs, &n_devs) != CL_SUCCESS)
            continue; /* CL_DEVICE_NOT_FOUND: this platform has none */
        for (cl_uint d = 0; d < n_devs && d < 16; d++) {
            cl_device_type t = 0;
            clGetDeviceInfo(devs[d], CL_DEVICE_TYPE, sizeof t, &t, NULL);
            if (device_rank(t) < best && device_usable(devs[d])) {
                best = device_rank(t);
                cl->platform = plats[p];
                cl->device = devs[d];
                cl->info.type = t;
            }
        }
    }
    if (best == 99)
        return lm__fail(err, LM_ENODEVICE,
                        "no usable OpenCL device on %u platform(s) (CL_DEVICE_NOT_FOUND)",
                        n_plats);
    return 0;
}

/* ---------------------------------------------------------------- open / close */

static bool make_dirs(const char *path)
{
    char buf[512];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != 0)
            continue;
        char c = buf[i];
        buf[i] = 0;
        if (mkdir(buf, 0755) && errno != EEXIST)
            return false;
        buf[i] = c;
    }
    return true;
}

static void cache_dir_init(lm_cl *cl, const char *want)
{
    char dir[512] = "";
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (want)
        snprintf(dir, sizeof dir, "%s", want);
    else if (xdg && *xdg)
        snprintf(dir, sizeof dir, "%s/lumadb", xdg);
    else if (home && *home)
        snprintf(dir, sizeof dir, "%s/.cache/lumadb", home);
    if (*dir && !make_dirs(dir)) {
        logf_(cl, "OpenCL binary cache off: cannot create %s: %s", dir, strerror(errno));
        *dir = 0;
    }
    snprintf(cl->info.cache_dir, sizeof cl->info.cache_dir, "%s", dir);
}

static enum lm_cl_shape shape_for(const lm_cl *cl, enum lm_cl_shape want)
{
    const char *env = getenv("LUMADB_CL_SHAPE");
    if (want == LM_CL_SHAPE_AUTO && env && !strcmp(env, "cpu"))
        want = LM_CL_SHAPE_CPU;
    if (want == LM_CL_SHAPE_AUTO && env && !strcmp(env, "gpu"))
        want = LM_CL_SHAPE_GPU;
    if (want == LM_CL_SHAPE_AUTO)
        want = (cl->info.type & CL_DEVICE_TYPE_CPU) ? LM_CL_SHAPE_CPU : LM_CL_SHAPE_GPU;
    return want;
}

int lm_cl_open(const struct lm_cl_opts *opts, lm_cl **out, struct lm_error *err)
{
    static const struct lm_cl_opts defaults;
    if (!out)
        return LM_EBADARG;
    if (!opts)
        opts = &defaults;
    lm_cl *cl = lm_calloc(1, sizeof *cl);
    if (!cl)
        return lm__fail(err, -ENOMEM, "out of memory opening OpenCL");
    cl->log = opts->log;
    cl->log_user = opts->log_user;
    pthread_mutex_init(&cl->lock, NULL);
    int rc = pick_device(cl, err);
    if (rc) {
        lm_cl_close(cl);
        return rc;
    }
    cl_int st;
    cl->ctx = clCreateContext(NULL, 1, &cl->device, NULL, NULL, &st);
    if (cl->ctx)
        cl->queue = clCreateCommandQueue(cl->ctx, cl->device, 0, &st);
    if (!cl->ctx || !cl->queue) {
        rc = lm_cl_rc(st);
        lm__fail(err, rc, "OpenCL context on the device failed: %s", lm_cl_status_name(st));
        lm_cl_close(cl);
        return rc;
    }

    struct lm_cl_info *in = &cl->info;
    cl_ulong mem = 0;
    cl_bool unified = CL_FALSE;
    cl_device_fp_config fp = 0;
    clGetPlatformInfo(cl->platform, CL_PLATFORM_NAME, sizeof in->platform, in->platform, NULL);
    clGetDeviceInfo(cl->device, CL_DEVICE_NAME, sizeof in->device, in->device, NULL);
    clGetDeviceInfo(cl->device, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof in->compute_units,
                    &in->compute_units, NULL);
    clGetDeviceInfo(cl->device, CL_DEVICE_HOST_UNIFIED_MEMORY, sizeof unified, &unified, NULL);
    clGetDeviceInfo(cl->device, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof mem, &mem, NULL);
    clGetDeviceInfo(cl->device, CL_DEVICE_SINGLE_FP_CONFIG, sizeof fp, &fp, NULL);
    in->host_unified = unified;
    in->compute_units = in->compute_units ? in->compute_units : 1;
    in->shape = shape_for(cl, opts->shape);
    cl->res_budget = opts->resident_budget;
    if (!cl->res_budget)
        cl->res_budget = mem / 4 < (1u << 30) ? (size_t)(mem / 4) : (size_t)1 << 30;
    snprintf(cl->options, sizeof cl->options, "-cl-std=CL1.2%s -D LM_GPU_SHAPE=%d",
             (fp & CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT)
                 ? " -cl-fp32-correctly-rounded-divide-sqrt" : "",
             in->shape == LM_CL_SHAPE_GPU);
    const char *src = opts->source_dir ? opts->source_dir : getenv("LUMADB_KERNEL_DIR");
    snprintf(cl->source_dir, sizeof cl->source_dir, "%s", src ? src : "");
    cache_dir_init(cl, opts->cache_dir);
    *out = cl;
    return 0;
}

void lm_cl_close(lm_cl *cl)
{
    if (!cl)
        return;
    for (size_t i = 0; i < cl->n_res; i++)
        clReleaseMemObject(cl->res[i].mem);
    lm_free(cl->res);
    for (int i = 0; i < cl->n_kernels; i++)
        clReleaseKernel(cl->kernels[i].k);
    for (int i = 0; i < cl->n_programs; i++)
        clReleaseProgram(cl->programs[i].prog);
    if (cl->queue)
        clReleaseCommandQueue(cl->queue);
    if (cl->ctx)
        clReleaseContext(cl->ctx);
    pthread_mutex_destroy(&cl->lock);
    lm_free(cl);
}

const struct lm_cl_info *lm_cl_info(const lm_cl *cl) { return &cl->info; }
enum lm_cl_shape lm_cl_shape(const lm_cl *cl) { return cl->info.shape; }
void lm_cl_lock(lm_cl *cl) { pthread_mutex_lock(&cl->lock); }
void lm_cl_unlock(lm_cl *cl) { pthread_mutex_unlock(&cl->lock); }
cl_command_queue lm_cl_queue(lm_cl *cl) { return cl->queue; }
cl_context lm_cl_context(lm_cl *cl) { return cl->ctx; }

void lm_cl_stats(lm_cl *cl, struct lm_cl_stats *out)
{
    *out = cl->stats;
    out->resident_bytes = cl->res_bytes;
    out->resident_count = cl->n_res;
}

/* ---------------------------------------------------------------- sources */

const char *lm_cl_embedded_source(const char *name, size_t *len)
{
    for (const struct lm__cl_source *s = lm__cl_sources; s->name; s++)
        if (!strcmp(s->name, name)) {
            if (len)
                *len = s->len;
            return s->text;
        }
    return NULL;
}

/* Reads a whole file into an lm_alloc'd, NUL-terminated buffer; NULL on failure. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n = -1;
    if (f && !fseek(f, 0, SEEK_END) && (n = ftell(f)) >= 0 && !fseek(f, 0, SEEK_SET) &&
        (buf = lm_alloc((size_t)n + 1)) && fread(buf, 1, (size_t)n, f) == (size_t)n) {
        buf[n] = 0;
        *len = (size_t)n;
    } else {
        lm_free(buf);
        buf = NULL;
    }
    if (f)
        fclose(f);
    return buf;
}

/* The source of kernels/<file>: *owned is set when the caller must lm_free it. */
static const char *program_source(lm_cl *cl, const char *file, size_t *len, char **owned)
{
    *owned = NULL;
    if (*cl->source_dir) {
        char path[640];
        snprintf(path, sizeof path, "%s/%s", cl->source_dir, file);
        if ((*owned = read_file(path, len)))
            return *owned;
        logf_(cl, "kernels/%s: not readable in %s, using the embedded source", file,
              cl->source_dir);
    }
    return lm_cl_embedded_source(file, len);
}

/* ---------------------------------------------------------------- build */

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static uint64_t device_string_hash(const lm_cl *cl, uint64_t h)
{
    char s[256];
    const cl_device_info dinfo[] = {CL_DEVICE_NAME, CL_DEVICE_VERSION, CL_DRIVER_VERSION};
    for (size_t i = 0; i < sizeof dinfo / sizeof dinfo[0]; i++) {
        s[0] = 0;
        clGetDeviceInfo(cl->device, dinfo[i], sizeof s, s, NULL);
        h = fnv1a(h, s, strnlen(s, sizeof s));
    }
    s[0] = 0;
    clGetPlatformInfo(cl->platform, CL_PLATFORM_VERSION, sizeof s, s, NULL);
    return fnv1a(h, s, strnlen(s, sizeof s));
}

/* Sends the build log to the callback, each line prefixed with the file name; fills
 * err with the first line that says "error" (or the first line). */
static void report_build_log(lm_cl *cl, cl_program prog, const char *file,
                             struct lm_error *err)
{
    size_t n = 0;
    clGetProgramBuildInfo(prog, cl->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &n);
    char *text = n ? lm_alloc(n + 1) : NULL;
    if (!text)
        return;
    text[0] = 0;
    clGetProgramBuildInfo(prog, cl->device, CL_PROGRAM_BUILD_LOG, n, text, NULL);
    text[n] = 0;
    const char *first = NULL, *first_error = NULL;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        if (!*line)
            continue;
        logf_(cl, "kernels/%s: %s", file, line);
        first = first ? first : line;
        first_error = first_error || !strstr(line, "error") ? first_error : line;
    }
    if (first_error || first)
        lm__fail(err, LM_EINTERNAL, "kernels/%s: %s", file, first_error ? first_error : first);
    lm_free(text);
}

static void cache_path(const lm_cl *cl, const char *file, uint64_t key, char *out, size_t cap)
{
    int stem = (int)(strchr(file, '.') ? (size_t)(strchr(file, '.') - file) : strlen(file));
    snprintf(out, cap, "%s/%.*s-%016llx.bin", cl->info.cache_dir, stem, file,
             (unsigned long long)key);
}

/* A program from the cache file, built; NULL when absent or unusable. */
static cl_program load_cached(lm_cl *cl, const char *path)
{
    size_t len = 0;
    char *bin = read_file(path, &len);
    cl_program prog = NULL;
    if (bin && len) {
        const unsigned char *b = (const unsigned char *)bin;
        cl_int st, bst;
        prog = clCreateProgramWithBinary(cl->ctx, 1, &cl->device, &len, &b, &bst, &st);
        if (prog && (st != CL_SUCCESS || bst != CL_SUCCESS ||
                     clBuildProgram(prog, 1, &cl->device, cl->options, NULL, NULL))) {
            clReleaseProgram(prog);
            prog = NULL;
        }
    }
    lm_free(bin);
    return prog;
}

/* Writes the program's binary to path (through a temporary file and a rename, so a
 * reader never sees half a file). Failures only cost the next build its speed. */
static void save_cached(lm_cl *cl, cl_program prog, const char *path)
{
    size_t len = 0;
    if (clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, sizeof len, &len, NULL) || !len)
        return;
    unsigned char *bin = lm_alloc(len);
    char tmp[700];
    if (!bin)
        return;
    if (!clGetProgramInfo(prog, CL_PROGRAM_BINARIES, sizeof bin, &bin, NULL)) {
        snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
        FILE *f = fopen(tmp, "wb");
        bool ok = f && fwrite(bin, 1, len, f) == len;
        if (f && fclose(f))
            ok = false;
        if (!ok || rename(tmp, path)) {
            logf_(cl, "OpenCL binary cache: cannot write %s: %s", path, strerror(errno));
            unlink(tmp);
        }
    }
    lm_free(bin);
}

/* The built program of kernels/<file>, building it on first use. */
static int program_get(lm_cl *cl, const char *file, struct program **out, struct lm_error *err)
{
    for (int i = 0; i < cl->n_programs; i++)
        if (!strcmp(cl->programs[i].file, file)) {
            *out = &cl->programs[i];
            return 0;
        }
    if (cl->n_programs == MAX_PROGRAMS || strlen(file) >= sizeof cl->programs[0].file)
        return lm__fail(err, LM_ELIMIT, "kernels/%s: too many kernel files", file);
    size_t len = 0;
    char *owned;
    const char *src = program_source(cl, file, &len, &owned);
    if (!src)
        return lm__fail(err, LM_ENOTFOUND, "kernels/%s: no such kernel file", file);

    uint64_t key = fnv1a(0xcbf29ce484222325ull, src, len);
    key = device_string_hash(cl, fnv1a(key, cl->options, strlen(cl->options)));
    char path[640] = "";
    cl_program prog = NULL;
    if (*cl->info.cache_dir) {
        cache_path(cl, file, key, path, sizeof path);
        if ((prog = load_cached(cl, path)))
            cl->stats.builds_from_cache++;
    }
    int rc = 0;
    if (!prog) {
        /* Positions in the compiler's messages name the file, not a temporary one. */
        char line[64];
        snprintf(line, sizeof line, "#line 1 \"kernels/%s\"\n", file);
        const char *parts[2] = {line, src};
        size_t lens[2] = {strlen(line), len};
        cl_int st;
        prog = clCreateProgramWithSource(cl->ctx, 2, parts, lens, &st);
        if (!prog) {
            rc = lm__fail(err, lm_cl_rc(st), "kernels/%s: %s", file, lm_cl_status_name(st));
        } else if ((st = clBuildProgram(prog, 1, &cl->device, cl->options, NULL, NULL))) {
            lm__fail(err, LM_EINTERNAL, "kernels/%s: build failed: %s", file,
                     lm_cl_status_name(st));
            report_build_log(cl, prog, file, err);
            rc = LM_EINTERNAL;
            clReleaseProgram(prog);
        } else {
            report_build_log(cl, prog, file, NULL); /* warnings, if any */
            cl->stats.builds_from_source++;
            if (*path)
                save_cached(cl, prog, path);
        }
    }
    lm_free(owned);
    if (rc)
        return rc;
    struct program *p = &cl->programs[cl->n_programs++];
    snprintf(p->file, sizeof p->file, "%s", file);
    p->prog = prog;
    *out = p;
    return 0;
}

int lm_cl_kernel(lm_cl *cl, const char *file, const char *name, cl_kernel *out,
                 struct lm_error *err)
{
    for (int i = 0; i < cl->n_kernels; i++)
        if (!strcmp(cl->kernels[i].file, file) && !strcmp(cl->kernels[i].name, name)) {
            *out = cl->kernels[i].k;
            return 0;
        }
    if (cl->n_kernels == MAX_KERNELS || strlen(name) >= sizeof cl->kernels[0].name)
        return lm__fail(err, LM_ELIMIT, "kernels/%s: too many kernels", file);
    struct program *p;
    int rc = program_get(cl, file, &p, err);
    if (rc)
        return rc;
    cl_int st;
    cl_kernel k = clCreateKernel(p->prog, name, &st);
    if (!k)
        return lm__fail(err, st == CL_INVALID_KERNEL_NAME ? LM_ENOTFOUND : lm_cl_rc(st),
                        "kernels/%s: kernel %s: %s", file, name, lm_cl_status_name(st));
    struct kernel *e = &cl->kernels[cl->n_kernels++];
    e->file = p->file;
    snprintf(e->name, sizeof e->name, "%s", name);
    e->k = k;
    *out = k;
    return 0;
}

/* ---------------------------------------------------------------- buffers */

int lm_cl_host_buffer(lm_cl *cl, void *host, size_t bytes, bool write, cl_mem *out)
{
    static char dummy[64]; /* what a kernel might read of an unused argument */
    cl_mem_flags rw = write ? CL_MEM_READ_WRITE : CL_MEM_READ_ONLY, how;
    if (!bytes || !host) {
        host = dummy;
        bytes = sizeof dummy;
    }
    if (cl->info.host_unified)
        how = CL_MEM_USE_HOST_PTR;
    else
        how = write ? 0 : CL_MEM_COPY_HOST_PTR;
    cl_int st;
    cl_mem m = clCreateBuffer(cl->ctx, rw | how, bytes, how ? host : NULL, &st);
    if (!m)
        return lm_cl_rc(st);
    *out = m;
    return 0;
}

int lm_cl_host_buffer_read(lm_cl *cl, cl_mem mem, void *host, size_t bytes)
{
    cl_int st;
    if (!bytes)
        return lm_cl_rc(clFinish(cl->queue));
    if (!cl->info.host_unified)
        return lm_cl_rc(clEnqueueReadBuffer(cl->queue, mem, CL_TRUE, 0, bytes, host, 0,
                                            NULL, NULL));
    void *p = clEnqueueMapBuffer(cl->queue, mem, CL_TRUE, CL_MAP_READ, 0, bytes, 0, NULL,
                                 NULL, &st);
    if (!p)
        return lm_cl_rc(st);
    if (p != host) /* a runtime may map elsewhere even over host memory */
        memcpy(host, p, bytes);
    st = clEnqueueUnmapMemObject(cl->queue, mem, p, 0, NULL, NULL);
    return lm_cl_rc(st ? st : clFinish(cl->queue));
}

static void resident_remove(lm_cl *cl, size_t i)
{
    clReleaseMemObject(cl->res[i].mem);
    cl->res_bytes -= cl->res[i].bytes;
    cl->res[i] = cl->res[--cl->n_res];
}

void lm_cl_resident_drop(lm_cl *cl, uint64_t id)
{
    for (size_t i = 0; i < cl->n_res;)
        if (cl->res[i].id == id)
            resident_remove(cl, i);
        else
            i++;
}

int lm_cl_resident(lm_cl *cl, uint64_t id, uint64_t version, const void *host,
                   size_t bytes, cl_mem *out)
{
    cl->tick++;
    for (size_t i = 0; i < cl->n_res; i++) {
        struct resident *r = &cl->res[i];
        if (r->id != id || r->host != host)
            continue;
        if (r->version == version && r->bytes == bytes) {
            r->used = cl->tick;
            cl->stats.resident_hits++;
            clRetainMemObject(r->mem);
            *out = r->mem;
            return 0;
        }
        resident_remove(cl, i); /* an older content of the same range */
        break;
    }
    cl->stats.resident_misses++;
    /* Room first: least recently used entries go until the new one fits. */
    while (cl->n_res && cl->res_bytes + bytes > cl->res_budget) {
        size_t lru = 0;
        for (size_t i = 1; i < cl->n_res; i++)
            lru = cl->res[i].used < cl->res[lru].used ? i : lru;
        resident_remove(cl, lru);
        cl->stats.resident_evictions++;
    }
    if (cl->n_res == cl->cap_res) {
        size_t cap = cl->cap_res ? 2 * cl->cap_res : 32;
        struct resident *r = lm_realloc(cl->res, cap * sizeof *r);
        if (!r)
            return -ENOMEM;
        cl->res = r;
        cl->cap_res = cap;
    }
    static const char one_byte;
    cl_int st;
    cl_mem m = clCreateBuffer(cl->ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR,
                              bytes ? bytes : 1, (void *)(bytes ? host : &one_byte), &st);
    if (!m)
        return lm_cl_rc(st);
    cl->res[cl->n_res++] = (struct resident){id, version, host, bytes, m, cl->tick};
    cl->res_bytes += bytes;
    clRetainMemObject(m);
    *out = m;
    return 0;
}

/* ---------------------------------------------------------------- one call */

void lm_cl_call_begin(struct lm_cl_call *c, lm_cl *cl, const char *file)
{
    *c = (struct lm_cl_call){.cl = cl, .file = file};
    lm_cl_lock(cl);
}

static cl_mem call_hold(struct lm_cl_call *c, cl_mem m, cl_int st)
{
    if (!m) {
        c->st = st ? st : CL_OUT_OF_RESOURCES;
        return NULL;
    }
    if (c->n_held == LM_CL_CALL_BUFFERS) {
        clReleaseMemObject(m);
        c->st = CL_OUT_OF_RESOURCES;
        return NULL;
    }
    c->held[c->n_held++] = m;
    return m;
}

cl_mem lm_cl_call_host(struct lm_cl_call *c, const void *host, size_t bytes, bool write)
{
    cl_mem m = NULL;
    if (c->st)
        return NULL;
    int rc = lm_cl_host_buffer(c->cl, (void *)host, bytes, write, &m);
    return call_hold(c, rc ? NULL : m, rc == -ENOMEM ? CL_OUT_OF_HOST_MEMORY : 0);
}

cl_mem lm_cl_call_device(struct lm_cl_call *c, const void *host, size_t bytes)
{
    cl_int st = CL_SUCCESS;
    if (c->st)
        return NULL;
    cl_mem m = clCreateBuffer(c->cl->ctx, CL_MEM_READ_WRITE | (host ? CL_MEM_COPY_HOST_PTR : 0),
                              bytes ? bytes : 1, host && bytes ? (void *)host : NULL, &st);
    return call_hold(c, m, st);
}

cl_mem lm_cl_call_resident(struct lm_cl_call *c, uint64_t id, uint64_t version,
                           const void *host, size_t bytes)
{
    cl_mem m = NULL;
    if (c->st)
        return NULL;
    int rc = lm_cl_resident(c->cl, id, version, host, bytes, &m);
    return call_hold(c, rc ? NULL : m, rc == -ENOMEM ? CL_OUT_OF_HOST_MEMORY : 0);
}

cl_kernel lm_cl_call_kernel(struct lm_cl_call *c, const char *name)
{
    cl_kernel k = NULL;
    if (!c->st && lm_cl_kernel(c->cl, c->file, name, &k, NULL))
        c->st = CL_BUILD_PROGRAM_FAILURE;
    return k;
}

void lm_cl_call_args(struct lm_cl_call *c, cl_kernel k, cl_uint first, int n, ...)
{
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        size_t size = va_arg(ap, size_t);
        const void *v = va_arg(ap, const void *);
        if (!c->st)
            c->st = clSetKernelArg(k, first + (cl_uint)i, size, v);
    }
    va_end(ap);
}

void lm_cl_call_run(struct lm_cl_call *c, cl_kernel k, size_t global, size_t local)
{
    if (!c->st && global)
        c->st = clEnqueueNDRangeKernel(c->cl->queue, k, 1, NULL, &global,
                                       local ? &local : NULL, 0, NULL, NULL);
}

void lm_cl_call_range(struct lm_cl_call *c, cl_kernel k, cl_uint per_arg, size_t n)
{
    cl_uint per = 1;
    size_t units = n;
    if (c->cl->info.shape == LM_CL_SHAPE_CPU) {
        size_t want = (size_t)c->cl->info.compute_units * 4;
        units = n < want ? n : want;
        per = units ? (cl_uint)((n + units - 1) / units) : 1;
        units = (n + per - 1) / per;
    }
    LM_CL_ARG(c, k, per_arg, per);
    /* CPU shape: work-groups of one, so that every compute unit gets ranges. */
    lm_cl_call_run(c, k, units, c->cl->info.shape == LM_CL_SHAPE_CPU ? 1 : 0);
}

void lm_cl_call_read(struct lm_cl_call *c, cl_mem m, void *host, size_t bytes)
{
    if (!c->st && lm_cl_host_buffer_read(c->cl, m, host, bytes))
        c->st = CL_OUT_OF_RESOURCES;
}

cl_int lm_cl_call_end(struct lm_cl_call *c)
{
    if (c->st)
        clFinish(c->cl->queue); /* nothing may still use the buffers */
    for (int i = 0; i < c->n_held; i++)
        clReleaseMemObject(c->held[i]);
    c->n_held = 0;
    lm_cl_unlock(c->cl);
    return c->st;
}
