/* repl_wire.h - byte formats of the cluster: a growable little-endian writer and a
 * bounds-checked reader, the client protocol's frames, and the bodies they carry (rows,
 * chunk digests, field lists).
 *
 * Owns: nothing but the buffers and decoded objects it returns to its caller.
 * Invariants:
 *  (1) Little-endian throughout (the engine's records are too).
 *  (2) A reader never reads past its end: from there on every value reads as zero and
 *      `bad` is set, so a decoder checks once, at the end.
 *  (3) A frame starts with its total length (header included), at most
 *      LM_WIRE_MAX_FRAME; a peer that sends a longer or shorter one is dropped.
 *  (4) A chunk digest is a function of the chunk's contents as a set of rows (not of
 *      their order, which checkpoints may change), its coordinates, row count and LSN:
 *      nodes that applied the same log prefix have equal digests.
 * Threading: pure functions; the encoders that read a database take its read lock
 *   through the public API.
 * Called by: repl.c (snapshots), repl_port.c (the server side), repl_client.c.
 * Formats: frame tables above lm_wire_request() and lm_wire_reply(), bodies above
 *   lm_wire_rows(), lm_wire_digest() and lm_wire_fields() in repl_wire.c, and in
 *   docs/REPLICATION.md.
 */
#ifndef LM_REPL_WIRE_H
#define LM_REPL_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bytes.h"
#include "lumadb.h"

/* ---------------------------------------------------------------- bytes */

struct lm_wire_buf {
    uint8_t *p;   /* lm_alloc'ed; the caller frees it (lm_wire_buf_free) */
    size_t n, cap;
    bool oom;     /* an append failed: the contents are incomplete */
};
void lm_wire_put(struct lm_wire_buf *b, const void *p, size_t n);
void lm_wire_u8(struct lm_wire_buf *b, uint8_t v);
void lm_wire_u32(struct lm_wire_buf *b, uint32_t v);
void lm_wire_u64(struct lm_wire_buf *b, uint64_t v);
void lm_wire_str(struct lm_wire_buf *b, const char *s); /* u8 length (<= 255) + bytes */
void lm_wire_buf_free(struct lm_wire_buf *b);           /* frees p; b itself is the caller's */

/* Reading: the engine's bounded reader (engine/bytes.h), whose reads past the end set
 * `bad` and read zeros; the helpers below read its little-endian integers. */
uint8_t lm_wire_get_u8(struct lm__reader *r);
uint32_t lm_wire_get_u32(struct lm__reader *r);
uint64_t lm_wire_get_u64(struct lm__reader *r);
/* A u8-length string into out[cap]; longer than cap-1 sets bad. */
void lm_wire_get_str(struct lm__reader *r, char *out, size_t cap);
/* The next n bytes in place, or NULL (and bad) when there are fewer. */
const uint8_t *lm_wire_take(struct lm__reader *r, size_t n);

/* ---------------------------------------------------------------- frames */

#define LM_WIRE_HEADER 24u
#define LM_WIRE_MAX_FRAME ((64u << 20) + 4096u)

enum lm_wire_op {
    LM_WIRE_WRITE = 1,  /* body: a mutation record payload of `type`; ok: u64 index, u64 count */
    LM_WIRE_SELECT = 2, /* body: u64 limit + a DELETE record payload (field, selection); ok: rows */
    LM_WIRE_DIGEST = 3, /* body: none; ok: digest */
    LM_WIRE_STATUS = 4, /* body: none; ok: status text (docs/REPLICATION.md) */
    LM_WIRE_ADD = 5,    /* body: u64 id, str Raft address, str client address; ok: none */
    LM_WIRE_REMOVE = 6, /* body: u64 id; ok: none */
    LM_WIRE_FIELDS = 7, /* body: none; ok: field list */
    LM_WIRE_FENCE = 8,  /* body: none; ok: u64 leader's db index after a fence (read-index) */
};
#define LM_WIRE_LINEARIZABLE 1u /* request flag: reads after a leader's fence */

enum lm_wire_status {
    LM_WIRE_OK = 0,
    LM_WIRE_ERROR = 1,    /* body: message text */
    LM_WIRE_REDIRECT = 2, /* body: u64 leader id (0 = unknown), str its client address */
};

struct lm_wire_request {
    uint8_t op, flags;
    uint16_t type;          /* WRITE: record type */
    uint64_t client_id, request_id;
    const uint8_t *body;
    size_t n;
};

struct lm_wire_reply {
    uint8_t status;
    int32_t rc;             /* 0 or the LM_E* code */
    uint64_t request_id;
    const uint8_t *body;
    size_t n;
};

/* Append a whole frame (header + body) to b. */
void lm_wire_request(struct lm_wire_buf *b, const struct lm_wire_request *rq);
void lm_wire_reply(struct lm_wire_buf *b, const struct lm_wire_reply *rp);

/* Length of the frame starting at p (n bytes available): 0 when fewer than 4 bytes are
 * there, else the frame's total length; LM_ELIMIT when it is over LM_WIRE_MAX_FRAME or
 * shorter than a header (invariant 3). */
int64_t lm_wire_frame_length(const uint8_t *p, size_t n);

/* Parse one whole frame p[0..n) (n from lm_wire_frame_length). body points into p.
 * LM_ECORRUPT when n disagrees with the header. */
int lm_wire_parse_request(const uint8_t *p, size_t n, struct lm_wire_request *out);
int lm_wire_parse_reply(const uint8_t *p, size_t n, struct lm_wire_reply *out);

/* ---------------------------------------------------------------- bodies */

/* rows (an lm_rows result, all columns decoded). */
void lm_wire_rows(struct lm_wire_buf *b, const struct lm_rows *rows);
/* *out is one block: lm_rows_free it. LM_ECORRUPT, -ENOMEM. */
int lm_wire_rows_decode(const uint8_t *p, size_t n, struct lm_rows **out);

/* digest: every field's chunks with their digests (invariant 4), db_index saying which
 * log prefix they reflect. Errors: those of lm_field_list / lm_chunks_each, -ENOMEM. */
int lm_wire_digest(struct lm_wire_buf *b, lm_db *db, uint64_t db_index, struct lm_error *err);

struct lm_wire_chunk {
    int32_t coord[3];
    uint64_t n, lsn, hash;
};
struct lm_wire_field_digest {
    char name[LM_NAME_MAX + 1];
    uint64_t n_samples;
    size_t n_chunks;
    struct lm_wire_chunk *chunks; /* in chunk-coordinate order */
};
struct lm_wire_digest {
    uint64_t db_index;
    size_t n_fields;
    struct lm_wire_field_digest *fields; /* sorted by name */
};
/* *out is owned by the caller: lm_wire_digest_free. LM_ECORRUPT, -ENOMEM. */
int lm_wire_digest_decode(const uint8_t *p, size_t n, struct lm_wire_digest **out);
void lm_wire_digest_free(struct lm_wire_digest *d); /* NULL is a no-op */
/* true when a and b hold the same fields and chunks (db_index is not compared);
 * otherwise why[cap] names the first difference. */
bool lm_wire_digest_same(const struct lm_wire_digest *a, const struct lm_wire_digest *b,
                         char *why, size_t cap);

/* field list: each field's name, options and sample count. */
int lm_wire_fields(struct lm_wire_buf *b, lm_db *db);
/* *out (lm_alloc'ed array of *n infos, only name, opts and n_samples filled) is owned by
 * the caller: lm_free. LM_ECORRUPT, -ENOMEM. */
int lm_wire_fields_decode(const uint8_t *p, size_t n, struct lm_field_info **out, size_t *count);

#endif
