/* cl_runtime.h - the OpenCL runtime of the kernels: one device, its programs, a binary
 * cache on disk, and device buffers that stay resident across calls.
 *
 * Owns: a context and in-order queue on one device; one program per kernels/<name>.cl file
 * (built on first use, from the sources embedded at build time or, for hot reload,
 * from $LUMADB_KERNEL_DIR); their kernel objects; the resident-buffer table.
 *
 * Device choice: the first GPU of any platform, else the first accelerator, else the
 * first other device. Kernel shape: OpenCL on a CPU (PoCL) runs few work-items over
 * contiguous ranges with explicit 16-wide vectors at AVX2 speed, while barrier-based
 * GPU reductions run 5-10x slower there; so each kernel file is built with
 * LM_GPU_SHAPE 0 or 1, chosen by CL_DEVICE_TYPE (or opts / $LUMADB_CL_SHAPE).
 *
 * Invariants:
 *  (1) lm_cl_open fails with LM_ENODEVICE, never anything worse, when there is no
 *      platform (clGetPlatformIDs gives CL_PLATFORM_NOT_FOUND_KHR or zero platforms)
 *      or no usable device (CL_DEVICE_NOT_FOUND); err->message says which, in one
 *      line (device.c logs it once and runs the CPU kernels).
 *  (2) Every program is built with -cl-std=CL1.2 -cl-fp32-correctly-rounded-divide-sqrt
 *      and the sources set FP_CONTRACT OFF, so float results round as C does here
 *      (no fused multiply-add, correctly rounded / and sqrt).
 *  (3) A build log reaches the log callback line by line, each line prefixed with
 *      "kernels/<file>.cl: ".
 *  (4) The binary cache holds one file per (source text, options, platform, device,
 *      driver) hash; a cache file that fails to load is rebuilt from source and
 *      replaced. The cache never makes a build fail.
 *  (5) A resident buffer for (id, version) holds the bytes the host had when it was
 *      made; a different version for the same id replaces it; least recently used
 *      buffers are released past the byte budget. Callers pick ids and versions such
 *      that the pair names one content.
 *
 * Threading: lm_cl_open / lm_cl_close from one thread. Everything else may be called
 * from any thread between lm_cl_lock and lm_cl_unlock (kernel objects and the queue
 * are shared, clSetKernelArg is not thread-safe); lm_cl_info and lm_cl_shape need no
 * lock.
 * Called by: kernels/device.c (the process-wide runtime), the *_cl.c kernel tables,
 * tests/test_kernels_cl.c.
 */
#ifndef LM_CL_RUNTIME_H
#define LM_CL_RUNTIME_H

#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lumadb.h"

/* One line for people (no newline); user is the opts' log_user. */
typedef void (*lm_cl_log_fn)(void *user, const char *line);

enum lm_cl_shape { LM_CL_SHAPE_AUTO = 0, LM_CL_SHAPE_CPU, LM_CL_SHAPE_GPU };

struct lm_cl_opts {
    /* Binary cache directory (created if missing). NULL: $XDG_CACHE_HOME/lumadb, else
     * $HOME/.cache/lumadb; "" : no cache. */
    const char *cache_dir;
    /* Directory of *.cl files read instead of the embedded ones (hot reload). NULL:
     * $LUMADB_KERNEL_DIR when set, else the embedded sources. */
    const char *source_dir;
    /* AUTO: $LUMADB_CL_SHAPE ("cpu" or "gpu") when set, else by device type. */
    enum lm_cl_shape shape;
    /* Bytes of resident buffers kept; 0: a quarter of the device memory, at most 1 GiB. */
    size_t resident_budget;
    lm_cl_log_fn log;
    void *log_user;
};

typedef struct lm_cl lm_cl; /* opaque */

struct lm_cl_info {
    char platform[128], device[128];
    cl_device_type type;
    enum lm_cl_shape shape;      /* never AUTO */
    cl_uint compute_units;
    bool host_unified;           /* device memory is host memory: wrap, don't copy */
    char cache_dir[512];         /* "" when there is no cache */
};

/* Opens the runtime on the best device. opts NULL: defaults. Errors (*out untouched,
 * err says why): LM_ENODEVICE (invariant (1)), -ENOMEM, LM_EINTERNAL for any other
 * OpenCL failure. */
int lm_cl_open(const struct lm_cl_opts *opts, lm_cl **out, struct lm_error *err);
/* Releases kernels, programs, resident buffers, queue and context. NULL is a no-op. */
void lm_cl_close(lm_cl *cl);

/* Valid until lm_cl_close. */
const struct lm_cl_info *lm_cl_info(const lm_cl *cl);
enum lm_cl_shape lm_cl_shape(const lm_cl *cl);

void lm_cl_lock(lm_cl *cl);
void lm_cl_unlock(lm_cl *cl);

/* The queue and context (owned by cl). Lock held. */
cl_command_queue lm_cl_queue(lm_cl *cl);
cl_context lm_cl_context(lm_cl *cl);

/* Kernel `name` of kernels/<file> ("scan.cl"), building the file's program on first
 * use (from the binary cache when it can). The kernel is owned by cl; set its
 * arguments and enqueue it under the same lock. Errors: LM_ENOTFOUND (no such file or
 * kernel), LM_EINTERNAL (build failure: the log went to the callback, err names the
 * file and the first error line), -ENOMEM. */
int lm_cl_kernel(lm_cl *cl, const char *file, const char *name, cl_kernel *out,
                 struct lm_error *err);

/* A buffer over host memory for one call: on a host-unified device it wraps `host`
 * (CL_MEM_USE_HOST_PTR, no copy); elsewhere it is a device copy of it (write: the
 * caller reads it back). bytes 0 or host NULL: a small zeroed dummy (for an argument a
 * kernel does not use). The caller releases it. */
int lm_cl_host_buffer(lm_cl *cl, void *host, size_t bytes, bool write, cl_mem *out);

/* After kernels wrote a buffer made by lm_cl_host_buffer(write = true) over host,
 * makes host[0..bytes) hold what they wrote (map and unmap on a host-unified device, a
 * read elsewhere); waits for the queue. Lock held. 0 or an lm_cl_rc() error. */
int lm_cl_host_buffer_read(lm_cl *cl, cl_mem mem, void *host, size_t bytes);

/* A device buffer that stays resident for (id, version): the existing one when the
 * table holds that pair for the same host range, else a new copy of host[0..bytes)
 * (invariant (5)). *out is retained for the caller, who releases it. Lock held. */
int lm_cl_resident(lm_cl *cl, uint64_t id, uint64_t version, const void *host,
                   size_t bytes, cl_mem *out);
/* Forgets every resident buffer of id (for example a freed chunk). Lock held. */
void lm_cl_resident_drop(lm_cl *cl, uint64_t id);

/* ---------------------------------------------------------------- one call */

/* The buffers and status of one kernel call, for the *_cl.c tables: every step is
 * skipped once a step has failed (st != CL_SUCCESS), and lm_cl_call_end releases what
 * the call made and returns the first failure. Takes the lock in begin, drops it in
 * end. */
#define LM_CL_CALL_BUFFERS 24
struct lm_cl_call {
    lm_cl *cl;
    const char *file; /* "cull.cl" */
    cl_int st;
    int n_held;
    cl_mem held[LM_CL_CALL_BUFFERS];
};
void lm_cl_call_begin(struct lm_cl_call *c, lm_cl *cl, const char *file);
/* lm_cl_host_buffer for the call (NULL after a failure). */
cl_mem lm_cl_call_host(struct lm_cl_call *c, const void *host, size_t bytes, bool write);
/* A device buffer for the call, filled from host or only allocated (host NULL). */
cl_mem lm_cl_call_device(struct lm_cl_call *c, const void *host, size_t bytes);
/* A resident buffer (lm_cl_resident), released with the call. */
cl_mem lm_cl_call_resident(struct lm_cl_call *c, uint64_t id, uint64_t version,
                           const void *host, size_t bytes);
cl_kernel lm_cl_call_kernel(struct lm_cl_call *c, const char *name);
/* Sets argument i of k to the bytes of v. */
#define LM_CL_ARG(c, k, i, v)                                                              \
    ((c)->st = (c)->st ? (c)->st : clSetKernelArg((k), (i), sizeof(v), &(v)))
/* Sets arguments first.. of k from n values given as LM_CL_V(v) (size and address). */
#define LM_CL_V(v) sizeof(v), (const void *)&(v)
void lm_cl_call_args(struct lm_cl_call *c, cl_kernel k, cl_uint first, int n, ...);
/* Runs k over n items: CPU shape a few work-items per compute unit, each over a
 * contiguous range of `per` items; GPU shape one work-item per item (per = 1). The
 * kernel's argument per_arg receives per (a cl_uint). */
void lm_cl_call_range(struct lm_cl_call *c, cl_kernel k, cl_uint per_arg, size_t n);
/* Enqueues k over global work-items in work-groups of local (0: the runtime's choice). */
void lm_cl_call_run(struct lm_cl_call *c, cl_kernel k, size_t global, size_t local);
/* lm_cl_host_buffer_read within the call. */
void lm_cl_call_read(struct lm_cl_call *c, cl_mem m, void *host, size_t bytes);
/* Releases the call's buffers, unlocks; returns the first failure (CL_SUCCESS: 0). */
cl_int lm_cl_call_end(struct lm_cl_call *c);

struct lm_cl_stats {
    uint64_t builds_from_source, builds_from_cache;
    uint64_t resident_hits, resident_misses, resident_evictions;
    size_t resident_bytes, resident_count;
};
void lm_cl_stats(lm_cl *cl, struct lm_cl_stats *out); /* lock held */

/* An OpenCL status as a LumaDB error: out-of-memory codes as -ENOMEM, missing
 * platform/device as LM_ENODEVICE, the rest LM_EINTERNAL. 0 stays 0. */
int lm_cl_rc(cl_int status);
/* Name of an OpenCL status ("CL_OUT_OF_RESOURCES"); never NULL. */
const char *lm_cl_status_name(cl_int status);

/* The embedded sources (generated by kernels/embed_cl.cmake), ended by a NULL name. */
struct lm__cl_source {
    const char *name; /* "scan.cl" */
    const char *text; /* NUL-terminated */
    size_t len;
};
extern const struct lm__cl_source lm__cl_sources[];

/* Source text of kernels/<name> embedded in the library, or NULL. */
const char *lm_cl_embedded_source(const char *name, size_t *len);

#endif
