/* bytes.h - a bounded reader of little-endian byte strings (log records, manifests).
 * Owns: nothing. Invariants: (1) a read past the end sets `bad`, zero-fills the output
 * and leaves `at` where it was; every later read is then a no-op, so a decoder checks
 * `bad` once at the end. Threading: pure. Called by: record.c, store.c, net/repl_wire.c (replication frames). */
#ifndef LM_BYTES_H
#define LM_BYTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lumadb.h"

struct lm__reader {
    const uint8_t *p;
    size_t n, at;
    bool bad;
};

static inline void lm__read(struct lm__reader *r, void *out, size_t n)
{
    if (r->bad || n > r->n - r->at) {
        r->bad = true;
        memset(out, 0, n);
        return;
    }
    memcpy(out, r->p + r->at, n);
    r->at += n;
}

/* A name: u8 length (at most LM_NAME_MAX) then its bytes, NUL-terminated into out. */
static inline void lm__read_name(struct lm__reader *r, char out[LM_NAME_MAX + 1])
{
    uint8_t len = 0;
    lm__read(r, &len, 1);
    if (len > LM_NAME_MAX)
        r->bad = true;
    lm__read(r, out, r->bad ? 0 : len);
    out[r->bad ? 0 : len] = 0;
}

#endif
