/* device.h - which implementation of a kernel runs (scalar, AVX2 or OpenCL), the
 * process-wide OpenCL runtime behind the OpenCL tables, and the record of the paths
 * that ran, for EXPLAIN.
 *
 * Owns: the shared lm_cl runtime (opened on first need and kept until the process
 * exits: OpenCL drivers tear themselves down at exit), the mode and log settings, and
 * a per-thread record of kernel paths.
 *
 * Choice: LUMADB_DEVICE=cpu never touches OpenCL; =opencl sends every call to the
 * OpenCL table when there is a device; =auto (the default, also for unknown values)
 * sends a call there only when its work reaches the device's threshold (lower on a GPU
 * than on a CPU device, where OpenCL competes with AVX2 for the same cores). Smaller
 * calls never start OpenCL. Without a device every call runs on the CPU tables.
 *
 * Invariants:
 *  (1) The getters never return NULL: when OpenCL cannot run, the CPU table does.
 *  (2) The missing-device reason is logged once per process, in one line, and kept
 *      for lm_device_status; it is never an error of a query.
 *  (3) An OpenCL table whose call fails at run time answers through the CPU table
 *      (logging once per kernel) and records the CPU path.
 *  (4) lm_device_configure and lm_device_use_data_dir change where the runtime
 *      caches binaries only before it has started; the mode may change at any time.
 * Threading: every function may be called from any thread.
 * Called by: engine/query.c and engine/field.c (through lm_device_scan_table), the
 * *_cl.c tables (lm_device_cl, lm_device_trace), db open (lm_device_use_data_dir),
 * tests and benchmarks.
 */
#ifndef LM_DEVICE_H
#define LM_DEVICE_H

#include <stdatomic.h>
#include <stddef.h>

#include "cl_runtime.h"

enum lm_device_mode { LM_DEVICE_AUTO = 0, LM_DEVICE_CPU, LM_DEVICE_OPENCL };

struct lm_device_opts {
    enum lm_device_mode mode; /* AUTO here defers to $LUMADB_DEVICE */
    const char *cache_dir;    /* NULL: the data dir's kcache/ or the user cache */
    lm_cl_log_fn log;         /* NULL: lines are dropped (lm_device_status keeps why) */
    void *log_user;
};

/* Sets mode, cache directory and log sink (see invariant (4)); opts copied. Returns 0,
 * or LM_EBADARG for a NULL opts or an unknown mode. */
int lm_device_configure(const struct lm_device_opts *opts);
/* A database at `dir` offers <dir>/kcache for the binary cache: the last one offered
 * before the runtime starts is taken, if no cache directory was configured and the
 * directory still exists then. dir is copied. */
void lm_device_use_data_dir(const char *dir);
/* The mode in force: the configured one, else $LUMADB_DEVICE. */
enum lm_device_mode lm_device_mode(void);

/* The shared runtime, opened on the first call; NULL in mode CPU or with no device. */
lm_cl *lm_device_cl(void);
/* 0 when an OpenCL device is in use; else LM_ENODEVICE and err (if not NULL) says
 * why (mode cpu, no platform, no device, or a failed start). Starts the runtime. */
int lm_device_status(struct lm_error *err);

/* Logs one line through the configured sink. */
void lm_device_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Would a call doing `work` units of `kind` go to OpenCL? Starts the runtime only
 * when the answer depends on it. kind: the LM_DEVICE_WORK_* of the kernel. */
enum lm_device_work {
    LM_DEVICE_WORK_SCAN,    /* rows */
    LM_DEVICE_WORK_CULL,    /* nodes */
    LM_DEVICE_WORK_RAY,     /* rays */
    LM_DEVICE_WORK_LOD,     /* parent cells */
    LM_DEVICE_WORK_KNN,     /* query-point pairs */
};
bool lm_device_wants_opencl(enum lm_device_work kind, size_t work);

/* The table for a call of the given size (never NULL); a CPU table is recorded for
 * EXPLAIN here, the OpenCL table records itself when it runs. */
struct lm_scan_table;
struct lm_cull_table;
struct lm_ray_table;
struct lm_lod_table;
struct lm_knn_table;
const struct lm_scan_table *lm_device_scan_table(size_t rows);
const struct lm_cull_table *lm_device_cull_table(size_t nodes);
const struct lm_ray_table *lm_device_ray_table(size_t rays);
const struct lm_lod_table *lm_device_lod_table(size_t parent_cells);
const struct lm_knn_table *lm_device_knn_table(size_t query_point_pairs);

/* For the OpenCL tables: logs, once per process for each `what`, that a call failed
 * with st and ran on the CPU. once: a zero-initialised flag of the caller's. */
void lm_device_failed(atomic_flag *once, const char *what, cl_int st);
/* Ends a call (lm_cl_call_end): on success records "opencl" for EXPLAIN and returns 0;
 * on failure logs as lm_device_failed and returns -1 (the caller runs the CPU table). */
int lm_device_call_end(struct lm_cl_call *c, atomic_flag *once, const char *what);

/* ---------------------------------------------------------------- EXPLAIN */

/* Records that a kernel ran on `path` ("scalar", "avx2", "opencl") in this thread. */
void lm_device_trace(const char *path);
/* The paths recorded in this thread since the previous call, joined by "+" in the
 * order scalar, avx2, opencl ("none" when nothing ran), and a new empty record. The
 * string is static. */
const char *lm_device_trace_take(void);

#endif
