/* io.h - the table of functions through which all LumaDB storage reaches the OS.
 *
 * Owns: the POSIX backend (io.c), a fault-injecting backend for tests (io_fault.c)
 *   and helpers written on top of any table (whole-file atomic write, whole-file read,
 *   durable mkdir).
 * Invariants:
 *   (1) Storage modules never call open/pread/pwrite/fsync/rename/... themselves; they
 *       call a `struct lm_io`, so tests can fail calls and simulate power loss.
 *   (2) Every function returns 0 or -errno; out parameters are written only on success.
 *   (3) pwrite writes all n bytes or fails (short writes are retried inside); pread
 *       reads until n bytes or end of file and reports how many it got.
 *   (4) A file descriptor comes from the table's open and goes back to the same
 *       table's close; close releases it even when it reports an error.
 *   (5) Data reaches stable storage only through fsync/fdatasync of its file; a new,
 *       renamed or removed name only through sync_dir of its directory.
 * Threading: the POSIX table is stateless and safe from any thread. The fault backend
 *   serialises its calls with one mutex.
 * Called by: wal.c and the modules that write checkpoints and catalogues.
 * Formats: none here (see docs/FORMATS.md for the files written through it).
 */
#ifndef LM_IO_H
#define LM_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lumadb.h"

/* Called once per directory entry (never "." or ".."); returning non-zero stops the
 * listing and list_dir returns that value. */
typedef int (*lm_io_entry_fn)(void *arg, const char *name);

/* A storage backend. `ctx` is passed back as the first argument of every function.
 * Flags and modes of open are POSIX's (O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_EXCL,
 * O_TRUNC); backends add O_CLOEXEC themselves. */
struct lm_io {
    void *ctx;
    int (*open)(void *ctx, const char *path, int flags, unsigned mode, int *fd);
    int (*close)(void *ctx, int fd);
    /* Reads up to n bytes at off; *got < n only at end of file. */
    int (*pread)(void *ctx, int fd, void *buf, size_t n, uint64_t off, size_t *got);
    /* Writes all n bytes at off, or fails (the file may then hold part of them). */
    int (*pwrite)(void *ctx, int fd, const void *buf, size_t n, uint64_t off);
    int (*fsync)(void *ctx, int fd);     /* data and all metadata */
    int (*fdatasync)(void *ctx, int fd); /* data and the size needed to read it back */
    int (*ftruncate)(void *ctx, int fd, uint64_t size);
    int (*size)(void *ctx, int fd, uint64_t *size);
    int (*rename)(void *ctx, const char *from, const char *to); /* replaces `to` */
    int (*unlink)(void *ctx, const char *path);
    int (*mkdir)(void *ctx, const char *path, unsigned mode);
    int (*sync_dir)(void *ctx, const char *path); /* makes its entries durable */
    int (*list_dir)(void *ctx, const char *path, lm_io_entry_fn fn, void *arg);
};

/* The POSIX backend (a static table; never freed). */
const struct lm_io *lm_io_posix(void);

/* ---------------------------------------------------------------- helpers */

/* Replaces `path` with n bytes at data so that after a crash the file holds either its
 * old contents or all of the new ones: writes `<path>.tmp`, fsyncs it, renames it over
 * path and fsyncs the directory. Errors: -errno; err names the file and the step. */
int lm_io_write_file_atomic(const struct lm_io *io, const char *path, const void *data,
                            size_t n, struct lm_error *err);

/* Reads the whole file into a new buffer (owned by the caller, free with lm_free; one
 * spare zero byte follows the data so text can be read as a C string). Errors: -errno,
 * -ENOMEM; err names the file. */
int lm_io_read_file(const struct lm_io *io, const char *path, void **data, size_t *n,
                    struct lm_error *err);

/* Creates directory `path` (mode 0755) unless it exists, then fsyncs its parent so the
 * entry survives a crash (also when it existed: its maker may have died before that).
 * *created (optional) tells whether this call made it. */
int lm_io_mkdir_durable(const struct lm_io *io, const char *path, bool *created,
                        struct lm_error *err);

/* Writes the directory part of path ("." when it has none) into out[cap]. Returns
 * -ENAMETOOLONG when it does not fit. */
int lm_io_parent(const char *path, char *out, size_t cap);

/* ---------------------------------------------------------------- fault backend */

/* Operations of the table, for counting calls and arming failures. LM_IO_OP_ANY arms a
 * failure on every operation but close (a machine that stops answering). */
enum lm_io_op {
    LM_IO_OP_OPEN, LM_IO_OP_CLOSE, LM_IO_OP_PREAD, LM_IO_OP_PWRITE, LM_IO_OP_FSYNC,
    LM_IO_OP_FDATASYNC, LM_IO_OP_FTRUNCATE, LM_IO_OP_SIZE, LM_IO_OP_RENAME,
    LM_IO_OP_UNLINK, LM_IO_OP_MKDIR, LM_IO_OP_SYNC_DIR, LM_IO_OP_LIST_DIR,
    LM_IO_OP_ANY,
    LM_IO_OP_COUNT
};

/* Flags of lm_io_fault_crash. */
#define LM_IO_FAULT_TEAR 1u     /* keep a random prefix of each file's last unsynced write */
#define LM_IO_FAULT_IN_ORDER 2u /* with TEAR: keep the unsynced writes before it too */

/* A backend that forwards to `inner` and remembers, per file, what was written since
 * its last fsync/fdatasync and, per directory, which names were created, renamed or
 * removed since its last sync_dir. Randomness (tears) comes from `seed` only, so a run
 * repeats exactly. Directories made by mkdir are taken as durable at once. Files that
 * existed before are taken as durable as found. *out is owned by the caller: free it
 * with lm_io_fault_free after every file opened through it is closed. Errors: -ENOMEM. */
int lm_io_fault_new(const struct lm_io *inner, uint64_t seed, struct lm_io **out);
void lm_io_fault_free(struct lm_io *io); /* NULL is a no-op */

/* Makes the nth call of `op` counted from now (1 = the next one) fail with -errnum
 * without reaching `inner`; with `persist`, every call after it fails too. nth 0
 * disarms op. A failed fsync/fdatasync leaves the file's unsynced writes unsynced. */
void lm_io_fault_fail(struct lm_io *io, enum lm_io_op op, uint64_t nth, int errnum,
                      bool persist);

/* Calls of op made so far (successful or not); LM_IO_OP_ANY counts all but close. */
uint64_t lm_io_fault_count(const struct lm_io *io, enum lm_io_op op);

/* Simulates power loss: rewrites every file touched through this backend to its last
 * synced contents (plus, with LM_IO_FAULT_TEAR, a torn tail as the flags say), brings
 * back names whose removal was not synced and removes names whose creation was not.
 * Every descriptor opened before the crash then fails with -EIO (close still releases
 * it). Armed failures are disarmed. Errors: -errno from `inner`, -ENOMEM. */
int lm_io_fault_crash(struct lm_io *io, unsigned flags);

#endif
