/* store.h - checkpoints: chunk segment files and the manifest, and loading them back.
 *
 * Owns: the files `chunks-<16 hex LSN>.lmc` and `MANIFEST` in the database directory.
 * Invariants:
 *  (1) MANIFEST is replaced atomically (temp + fsync + rename + fsync dir); it names the
 *      checkpoint LSN and, for every live chunk, the segment, offset and length of its
 *      block. Segment data is durable before the manifest that names it.
 *  (2) Everything with LSN <= the checkpoint LSN is in the chunks MANIFEST names; the
 *      WAL holds the rest. A segment no manifest names is garbage (a crash between a
 *      segment write and its manifest) and is deleted at open.
 *  (3) Stored rows are Morton-sorted (chunks are compacted before they are written).
 *  (4) Every file starts with a magic and a format version; a newer version is refused
 *      (LM_EVERSION), a bad checksum is LM_ECORRUPT naming the file and byte offset.
 * Byte tables: above block_encode() and manifest_encode() in store.c and in
 *   docs/FORMATS.md. Threading: called under the database write lock (checkpoint) or
 *   before the database is shared (load). Called by: db.c.
 */
#ifndef LM_STORE_H
#define LM_STORE_H

#include "field.h"
#include "io.h"

#define LM_STORE_VERSION 1u

/* Writes a checkpoint at `lsn` (every change up to lsn is applied to `fields`): the
 * chunks changed since the previous checkpoint go to a new segment, unchanged chunks
 * keep their place, then the manifest is replaced and unreferenced segments removed.
 * *prev_lsn is the previous checkpoint's LSN and is advanced on success. On error the
 * previous checkpoint stays in force (nothing is lost: the WAL still holds it all). */
int lm__store_checkpoint(const struct lm_io *io, const char *dir, struct lm_field **fields,
                         size_t n_fields, uint64_t lsn, uint64_t *prev_lsn,
                         struct lm_error *err);

/* Loads the manifest (none = empty database) and every chunk it names. On success
 * *fields (lm_alloc'ed array of n) and *ckpt_lsn are set. */
int lm__store_load(const struct lm_io *io, const char *dir, struct lm_field ***fields,
                   size_t *n_fields, uint64_t *ckpt_lsn, struct lm_error *err);

/* Checkpoint LSN named by the current MANIFEST (0 when there is none), read cheaply
 * (read-only handles poll it to notice new checkpoints). */
int lm__store_manifest_lsn(const struct lm_io *io, const char *dir, uint64_t *lsn);

/* Removes segment files that the current manifest does not name. */
int lm__store_collect(const struct lm_io *io, const char *dir, struct lm_field **fields,
                      size_t n_fields, struct lm_error *err);

/* Sizes of the checkpoint on disk: bytes in the segments that hold live chunks. */
uint64_t lm__store_bytes(struct lm_field **fields, size_t n_fields);

#endif
