/* buf.c - growable byte buffers (see buf.h). */
#include "buf.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"

int lm_net_buf_reserve(struct lm_net_buf *b, size_t extra)
{
    if (b->oom)
        return -ENOMEM;
    if (b->cap - b->len >= extra)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < extra) {
        if (cap > SIZE_MAX / 2)
            goto fail;
        cap *= 2;
    }
    uint8_t *p = lm_realloc(b->p, cap);
    if (!p)
        goto fail;
    b->p = p;
    b->cap = cap;
    return 0;
fail:
    b->oom = true;
    return -ENOMEM;
}

void lm_net_buf_put(struct lm_net_buf *b, const void *data, size_t n)
{
    if (!n || lm_net_buf_reserve(b, n))
        return;
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

void lm_net_buf_printf(struct lm_net_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || lm_net_buf_reserve(b, (size_t)n + 1))
        return;
    va_start(ap, fmt);
    vsnprintf((char *)b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void lm_net_buf_json_str(struct lm_net_buf *b, const char *s, size_t n)
{
    lm_net_buf_u8(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            lm_net_buf_put(b, esc, 2);
        } else if (c < 0x20) {
            lm_net_buf_printf(b, "\\u%04x", c);
        } else {
            lm_net_buf_u8(b, c);
        }
    }
    lm_net_buf_u8(b, '"');
}

void lm_net_buf_json_num(struct lm_net_buf *b, double v)
{
    if (!isfinite(v))
        lm_net_buf_put(b, "null", 4);
    else if (v == (double)(int64_t)v && fabs(v) < 9007199254740992.0)
        lm_net_buf_printf(b, "%lld", (long long)v);
    else
        lm_net_buf_printf(b, "%.9g", v);
}

void lm_net_buf_u8(struct lm_net_buf *b, uint8_t v) { lm_net_buf_put(b, &v, 1); }

void lm_net_buf_u16(struct lm_net_buf *b, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    lm_net_buf_put(b, x, 2);
}

void lm_net_buf_u32(struct lm_net_buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    lm_net_buf_put(b, x, 4);
}

void lm_net_buf_u64(struct lm_net_buf *b, uint64_t v)
{
    lm_net_buf_u32(b, (uint32_t)v);
    lm_net_buf_u32(b, (uint32_t)(v >> 32));
}

void lm_net_buf_f32(struct lm_net_buf *b, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    lm_net_buf_u32(b, u);
}

void lm_net_buf_free(struct lm_net_buf *b)
{
    lm_free(b->p);
    *b = (struct lm_net_buf){0};
}
