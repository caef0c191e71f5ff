/* db.h - internals of the database handle (lumadb.h is its public face).
 * For tests that simulate crashes and for replication, which drives the log itself.
 *
 * Replicas: a replica handle has no write-ahead log of its own. Replication (the Raft
 * log) is its log: the leader checks and encodes a mutation (lm__db_encode or
 * lm__db_check_record) without applying it, and every replica applies the records in
 * log order with lm__db_apply_record, the sequence number being the log position.
 * Snapshots are checkpoints (lm_db_checkpoint writes MANIFEST + chunk segments) and
 * lm__db_reload loads such files back. The public write calls refuse a replica
 * (LM_EREADONLY); reads work as on any handle.
 * Threading: as lumadb.h; the functions below take the database locks themselves. */
#ifndef LM_DB_H
#define LM_DB_H

#include "io.h"
#include "lumadb.h"
#include "record.h"

/* Frees the handle without syncing, checkpointing or touching storage again: what a
 * process that dies leaves behind. The directory lock is released. */
void lm__db_abandon(lm_db *db);

/* Opens `dir` (created if missing, locked like any writer) as an empty replica: a
 * MANIFEST and chunk segments found there are removed, since replication restores its
 * snapshot and replays its log at every start. io NULL = POSIX. Errors: as
 * lm_db_open. */
int lm__db_open_replica(const char *dir, const struct lm_io *io, lm_db **out,
                        struct lm_error *err);

/* Decodes a record payload and checks it against the current state as the public write
 * calls would, without logging or applying it. Returns 0 or the error the write would
 * get: LM_ENOFIELD, LM_EFIELDEXISTS, LM_ESCHEMA (also for a payload that does not fit
 * the field's schema), LM_EBADVALUE, LM_EBADARG, LM_ENOCOLUMN; -ENOMEM; LM_EFAILED.
 * With wait false it returns -EBUSY at once, checking nothing, while a writer holds the
 * database (an event loop that must not block). */
int lm__db_check_record(lm_db *db, uint16_t type, const void *payload, size_t n, bool wait,
                        struct lm_error *err);

/* Checks the mutation `r` (type and its members as record.h describes; FIELD_CREATE
 * options are normalised) against the current state and encodes its record payload
 * into one new buffer (*out, lm_alloc'ed, owned by the caller; *n bytes). Nothing is
 * logged or applied. r->owned is ignored. Errors: as lm__db_check_record. */
int lm__db_encode(lm_db *db, const struct lm__record *r, void **out, size_t *n,
                  struct lm_error *err);

/* Replicas only: decodes, checks and applies one record with sequence number lsn
 * (greater than lm_db_lsn), without logging it, through the same apply code as live
 * writes and recovery. *count (optional) receives the samples inserted, deleted or
 * updated. A rejected record (the errors of lm__db_check_record) changes nothing and
 * is rejected alike on every replica; -ENOMEM fails the handle (LM_EFAILED from then
 * on: the other replicas applied the record, this one no longer matches them). LM_EBADARG for a handle that is no replica or an lsn not
 * after the last. */
int lm__db_apply_record(lm_db *db, uint16_t type, const void *payload, size_t n, uint64_t lsn,
                        uint64_t *count, struct lm_error *err);

/* A checkpoint file: its name in the database directory and its bytes. */
struct lm__db_file {
    char name[64];
    void *data; /* lm_alloc'ed */
    size_t n;
};
void lm__db_files_free(struct lm__db_file *files, size_t n); /* NULL is a no-op */

/* Replicas only: writes a checkpoint of the current state (lm_db_checkpoint) and reads
 * back its files, the MANIFEST and the chunk segments, into *files (*n of them, owned by
 * the caller: lm__db_files_free). An empty database that never changed has none.
 * *lsn receives the state's sequence number. Writes wait meanwhile. Errors: as
 * lm_db_checkpoint; -errno reading; -ENOMEM. */
int lm__db_snapshot(lm_db *db, struct lm__db_file **files, size_t *n, uint64_t *lsn,
                    struct lm_error *err);

/* Replicas only: replaces the whole state by the checkpoint made of `files` (as
 * lm__db_snapshot returns them; names other than MANIFEST and chunk segments are
 * LM_ECORRUPT and change nothing): the directory's checkpoint files are replaced by them
 * and loaded; lm_db_lsn becomes the checkpoint's. A failure after the old files were
 * removed (-errno, LM_ECORRUPT, LM_EVERSION, -ENOMEM) fails the handle. */
int lm__db_restore(lm_db *db, const struct lm__db_file *files, size_t n,
                   struct lm_error *err);

#endif
