/* wal.h - the write-ahead log: numbered, checksummed records of opaque bytes.
 *
 * Owns: the segment files `wal-<first LSN, 16 hex digits>.log` in opts->dir, one open
 *   descriptor (the last segment), and two in-memory append buffers.
 * Invariants:
 *   (1) LSNs start at 1 and rise by one per record with no gaps, across segments; a
 *       segment's name and header both carry its first LSN.
 *   (2) lm_wal_sync(w, lsn) returns 0 only once every record up to lsn is durable
 *       under the policy (LM_SYNC_NONE: handed to the OS). lm_wal_write alone promises
 *       nothing about durability.
 *   (3) Every segment but the last was fdatasync'ed whole before the next one was
 *       created, so any defect in it is corruption (LM_ECORRUPT), never a torn tail.
 *   (4) The last segment may end in a torn record after a crash; open cuts it off, and
 *       records after it were never acknowledged (invariant 2).
 *   (5) After a failed write or fsync the log is failed until reopened: no call
 *       touches the files again, and a failed fsync is never retried.
 * Threading: every function but open, replay and close may be called from any number
 *   of threads at once. lm_wal_write is internally locked and numbers records in the
 *   order its calls take that lock, so a caller that needs LSN order = apply order
 *   calls it under its own write lock, then releases that lock before lm_wal_sync;
 *   many threads waiting in lm_wal_sync share one fdatasync (one leader does the I/O,
 *   the others wait on a condition variable).
 * Called by: the engine (field mutations, recovery, checkpoints).
 * Formats: segment header and record byte tables above seg_header_encode() and
 *   record_encode() in wal.c, and in docs/FORMATS.md ("Write-ahead log").
 */
#ifndef LM_WAL_H
#define LM_WAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "io.h"
#include "lumadb.h"

typedef struct lm_wal lm_wal; /* opaque */

#define LM_WAL_VERSION 1u                         /* segment format written */
#define LM_WAL_MAX_RECORD (1u << 30)              /* payload bytes per record */
#define LM_WAL_DEFAULT_SEGMENT_BYTES (64u << 20)
#define LM_WAL_DEFAULT_GROUP_US 100u
#define LM_WAL_DEFAULT_GROUP_BYTES (1u << 20)

struct lm_wal_opts {
    const struct lm_io *io;      /* NULL = lm_io_posix(); must outlive the log */
    const char *dir;             /* created (durably) when missing; copied */
    uint64_t segment_bytes;      /* start a new segment past this size; 0 = 64 MiB */
    enum lm_sync sync;           /* LM_SYNC_GROUP (the zero value) is the default */
    uint32_t group_commit_us;    /* GROUP: how long a sync leader waits for more
                                    records when other threads are syncing; 0 = 100 */
    uint32_t group_commit_bytes; /* GROUP: ...or until this much is pending; 0 = 1 MiB */
};

/* Policies (enum lm_sync):
 *  LM_SYNC_ALWAYS: lm_wal_sync writes and fdatasyncs at once; it never waits to gather
 *    other writers (threads that arrive while a sync is running still share the next).
 *  LM_SYNC_GROUP: the same, but when other threads are inside lm_wal_sync the leader
 *    first waits up to group_commit_us (or until group_commit_bytes are pending) so
 *    one fdatasync covers more records. A lone writer never waits.
 *  LM_SYNC_NONE: lm_wal_sync hands records to the OS (a process crash keeps them, a
 *    power loss may not). Segments are still fdatasync'ed when full and at close. */

/* Opens the log in opts->dir, creating the directory and a first segment (LSN 1) when
 * there is none. Reads every segment header and scans the last segment: a torn record
 * at its end (and everything after it) is cut off, so that appends continue after the
 * last good record. Then fdatasyncs that segment and fsyncs the directory: what a
 * process that died left behind may be visible without being durable yet, and new
 * records are about to build on it. Older segments are checked by replay.
 * Errors: LM_EBADARG (no opts or dir, bad policy); LM_EVERSION for a segment written
 * by a newer format (err names the file); LM_ECORRUPT for a damaged header, a name
 * that disagrees with its header, or a bad record in the last segment that cannot be a
 * torn tail (err names the file and err->offset the byte); -errno; -ENOMEM.
 * On success *out is owned by the caller: lm_wal_close it. */
int lm_wal_open(const struct lm_wal_opts *o, lm_wal **out, struct lm_error *err);

/* Appends one record of type `type` whose payload is the concatenation of parts[0..
 * nparts) (copied; nparts may be 0 for an empty payload). *lsn (optional) receives its
 * LSN. Cheap: encodes into a memory buffer; it does I/O only when the current segment
 * is full (rotation: the old segment is fdatasync'ed, the new one created durably) or
 * the buffer holds more than 4 MiB with no sync under way. Nothing is durable until
 * lm_wal_sync(lsn) returns 0.
 * Errors: LM_EBADARG; LM_ELIMIT (payload over LM_WAL_MAX_RECORD); -ENOMEM (the log
 * stays usable); LM_EFAILED when the log failed earlier; the OS error of a write or
 * fsync made here (the log is then failed, invariant 5; the record is not logged). */
int lm_wal_write(lm_wal *w, uint16_t type, const struct iovec *parts, int nparts,
                 uint64_t *lsn);

/* Blocks until every record up to lsn is durable per the policy (invariant 2). Returns
 * 0 at once for an LSN already durable (even on a failed log). Errors: LM_EBADARG
 * (lsn not yet assigned); the OS error when this call's write or fdatasync failed (the
 * log is then failed); LM_EFAILED when the log failed before or while waiting. */
int lm_wal_sync(lm_wal *w, uint64_t lsn);

/* lm_wal_write then lm_wal_sync: returns 0 only when the record is durable. */
int lm_wal_append(lm_wal *w, uint16_t type, const struct iovec *parts, int nparts,
                  uint64_t *lsn);

/* Visits, in LSN order, every record with LSN > after_lsn: fn(ctx, lsn, type, payload,
 * n). payload is valid only during the call. A non-zero return from fn stops the walk
 * and is returned. Segments whose records are all <= after_lsn are not read. Call it
 * after lm_wal_open and before the first lm_wal_write (else LM_EBADARG), and not
 * concurrently with lm_wal_truncate_upto.
 * Errors: LM_ECORRUPT for any bad record in a segment before the last (a checksum,
 * length or LSN that does not fit), for a segment that does not start where the one
 * before it ended, or when records after after_lsn were already removed; err names the
 * file and err->offset the byte. -errno; -ENOMEM. */
int lm_wal_replay(lm_wal *w, uint64_t after_lsn,
                  int (*fn)(void *ctx, uint64_t lsn, uint16_t type, const void *payload,
                            size_t n),
                  void *ctx, struct lm_error *err);

/* Removes the segments whose records all have LSN <= lsn (call it once everything up to
 * lsn is safe elsewhere, e.g. after a checkpoint). The last segment is never removed:
 * when lsn >= lm_wal_last_lsn(w) the log first starts a new, empty segment at lsn + 1,
 * so the next record gets LSN lsn + 1 (this also moves the numbering forward when the
 * caller's checkpoint is ahead of the log). Errors: LM_EFAILED; -errno of an unlink
 * (the files not removed stay listed and are tried again next time); the OS error of
 * the rotation's or directory's fsync (the log is then failed). */
int lm_wal_truncate_upto(lm_wal *w, uint64_t lsn);

/* LSN of the last record written (0 when none ever was, or w is NULL), durable or not. */
uint64_t lm_wal_last_lsn(lm_wal *w);

/* Writes and fdatasyncs pending records (whatever the policy), then closes the files
 * and frees the log. Returns 0, or the error of that final write or sync (the log is
 * freed either way; LM_EFAILED when it had failed before). NULL is a no-op. Call it
 * when no other thread uses the log. */
int lm_wal_close(lm_wal *w);

/* Reads, without writing anything, the records with LSN > after_lsn of the log in dir
 * as lm_wal_replay does (for read-only handles while another process writes). A bad
 * record in the last segment ends the read quietly (it may be a write in progress).
 * *last_lsn (optional) receives the last LSN read (after_lsn when none). Errors:
 * LM_ENOTFOUND when the log no longer reaches back to after_lsn + 1 (a checkpoint
 * truncated it: reload the checkpoint), LM_ECORRUPT, -errno, -ENOMEM. */
int lm_wal_read(const struct lm_io *io, const char *dir, uint64_t after_lsn,
                int (*fn)(void *ctx, uint64_t lsn, uint16_t type, const void *payload,
                          size_t n),
                void *ctx, uint64_t *last_lsn, struct lm_error *err);

/* Frees the log without writing or syncing pending records: what a process that dies
 * leaves behind (crash tests). NULL is a no-op. */
void lm_wal_abandon(lm_wal *w);

#endif
