/* buf.h - growable byte buffers for building frames, HTTP bodies and JSON text.
 * Owns: the bytes it allocates (through lm_alloc).
 * Invariants: (1) len <= cap; p is NULL only while cap is 0.
 *   (2) once an append fails, `oom` stays set and later appends do nothing, so a
 *       writer may chain appends and check once at the end.
 * Threading: one thread per buffer. Called by: every net/ module. */
#ifndef LM_NET_BUF_H
#define LM_NET_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lm_net_buf {
    uint8_t *p;
    size_t len, cap;
    bool oom;
};

/* Makes room for `extra` more bytes. 0 or -ENOMEM (and sets oom). */
int lm_net_buf_reserve(struct lm_net_buf *b, size_t extra);
/* Appends n bytes (copies them). */
void lm_net_buf_put(struct lm_net_buf *b, const void *data, size_t n);
/* Appends printf-formatted text (no terminating NUL counted in len). */
void lm_net_buf_printf(struct lm_net_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends a JSON string literal (quotes and escapes added). */
void lm_net_buf_json_str(struct lm_net_buf *b, const char *s, size_t n);
/* Appends a number the way JSON wants it (finite; non-finite becomes null). */
void lm_net_buf_json_num(struct lm_net_buf *b, double v);
/* Little-endian scalar appends. */
void lm_net_buf_u8(struct lm_net_buf *b, uint8_t v);
void lm_net_buf_u16(struct lm_net_buf *b, uint16_t v);
void lm_net_buf_u32(struct lm_net_buf *b, uint32_t v);
void lm_net_buf_u64(struct lm_net_buf *b, uint64_t v);
void lm_net_buf_f32(struct lm_net_buf *b, float v);
/* Forgets the content, keeps the allocation. */
static inline void lm_net_buf_clear(struct lm_net_buf *b) { b->len = 0; b->oom = false; }
/* Releases the allocation; the buffer is empty and reusable afterwards. */
void lm_net_buf_free(struct lm_net_buf *b);

#endif
