/* record.h - the mutation records that the write-ahead log (and Raft) carry.
 *
 * Owns: decoded records (lm__record_free releases their copies).
 * Invariants: (1) applying a decoded record through the engine's write functions gives
 *   exactly the state the original call produced (records carry the caller's input,
 *   not derived data, and the write path is deterministic). (2) a record encodes to
 *   little-endian bytes whose layout is the table above record_encode_* in record.c
 *   and in docs/FORMATS.md ("Mutation records").
 * Threading: pure functions. Called by: db.c (log and replay), replication.
 */
#ifndef LM_RECORD_H
#define LM_RECORD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "lumadb.h"

enum lm__record_type {
    LM_REC_FIELD_CREATE = 1,
    LM_REC_FIELD_DROP = 2,
    LM_REC_INSERT = 3,
    LM_REC_DELETE = 4,
    LM_REC_UPDATE = 5,
};

/* A decoded record. For INSERT, batch points into arrays owned by the record. */
struct lm__record {
    enum lm__record_type type;
    char field[LM_NAME_MAX + 1];
    struct lm_field_opts opts;      /* FIELD_CREATE */
    struct lm_batch batch;          /* INSERT */
    struct lm_selection sel;        /* DELETE, UPDATE */
    int column;                     /* UPDATE */
    double value;                   /* UPDATE */
    void *owned;                    /* column copies of an INSERT */
};

/* Scratch for encoding: a small header buffer plus iovecs pointing at the caller's
 * arrays (no copy of sample columns). Valid while the inputs are. */
#define LM__RECORD_MAX_IOV (4 + 11 + LM_MAX_USER_COLUMNS)
struct lm__record_enc {
    uint8_t head[1024];
    struct iovec iov[LM__RECORD_MAX_IOV];
    int n_iov;
};

/* Encoders: fill enc; the payload is the concatenation of enc->iov. n_user_sizes gives
 * the byte size of each user column's values (from the field schema). */
void lm__record_field_create(struct lm__record_enc *enc, const char *name,
                             const struct lm_field_opts *opts);
void lm__record_field_drop(struct lm__record_enc *enc, const char *name);
void lm__record_insert(struct lm__record_enc *enc, const char *field,
                       const struct lm_batch *b, const uint32_t *user_sizes);
void lm__record_delete(struct lm__record_enc *enc, const char *field,
                       const struct lm_selection *sel);
void lm__record_update(struct lm__record_enc *enc, const char *field,
                       const struct lm_selection *sel, int column, double value);

/* Decodes a payload. user_sizes_of returns the user column sizes of a field by name
 * (needed to size INSERT columns), or fails for an unknown field. Errors:
 * LM_ECORRUPT (err says what is malformed and at which payload offset), -ENOMEM. */
typedef int (*lm__user_sizes_fn)(void *ctx, const char *field, uint32_t sizes[LM_MAX_USER_COLUMNS],
                                 uint32_t *n_user);
int lm__record_decode(uint16_t type, const void *payload, size_t n, lm__user_sizes_fn sizes,
                      void *ctx, struct lm__record *out, struct lm_error *err);
void lm__record_free(struct lm__record *r);

#endif
