/* record.c - encoding and decoding of mutation records (little-endian; the engine
 * targets little-endian machines, checked at compile time). */
#include "record.h"

#include <errno.h>
#include <string.h>

#include "alloc.h"
#include "bytes.h"
#include "error.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "records are little-endian");

/* ---------------------------------------------------------------- writer */

struct wbuf {
    struct lm__record_enc *e;
    size_t used; /* bytes of head used */
    size_t iov_start; /* head offset where the current head iovec starts */
};

static void put(struct wbuf *w, const void *p, size_t n)
{
    memcpy(w->e->head + w->used, p, n);
    w->used += n;
}

static void put_u8(struct wbuf *w, uint8_t v) { put(w, &v, 1); }
static void put_u32(struct wbuf *w, uint32_t v) { put(w, &v, 4); }
static void put_f32(struct wbuf *w, float v) { put(w, &v, 4); }
static void put_f64(struct wbuf *w, double v) { put(w, &v, 8); }

static void put_name(struct wbuf *w, const char *s)
{
    size_t n = strnlen(s, LM_NAME_MAX);
    put_u8(w, (uint8_t)n);
    put(w, s, n);
}

/* Closes the current run of head bytes as an iovec. */
static void flush_head(struct wbuf *w)
{
    if (w->used > w->iov_start) {
        w->e->iov[w->e->n_iov++] =
            (struct iovec){w->e->head + w->iov_start, w->used - w->iov_start};
        w->iov_start = w->used;
    }
}

static void put_external(struct wbuf *w, const void *p, size_t n)
{
    flush_head(w);
    w->e->iov[w->e->n_iov++] = (struct iovec){(void *)p, n};
}

static void begin(struct lm__record_enc *e, struct wbuf *w)
{
    e->n_iov = 0;
    *w = (struct wbuf){e, 0, 0};
}

/* FIELD_CREATE:
 * | size | field                                   |
 * | 1+n  | name: u8 length, bytes                  |
 * | 4    | voxel size, f32                         |
 * | 4    | chunk edge, u32                         |
 * | 4    | user column count u, u32                |
 * | u x  | per user column: u8 length, name, u8 type |
 */
void lm__record_field_create(struct lm__record_enc *e, const char *name,
                             const struct lm_field_opts *o)
{
    struct wbuf w;
    begin(e, &w);
    put_name(&w, name);
    put_f32(&w, o->voxel_size);
    put_u32(&w, o->chunk_edge);
    put_u32(&w, o->n_user_columns);
    for (uint32_t u = 0; u < o->n_user_columns; u++) {
        put_name(&w, o->user_columns[u].name);
        put_u8(&w, (uint8_t)o->user_columns[u].type);
    }
    flush_head(&w);
}

/* FIELD_DROP: | 1+n | name: u8 length, bytes | */
void lm__record_field_drop(struct lm__record_enc *e, const char *name)
{
    struct wbuf w;
    begin(e, &w);
    put_name(&w, name);
    flush_head(&w);
}

/* INSERT:
 * | size     | field                                                        |
 * | 1+n      | field name                                                   |
 * | 4        | sample count N, u32                                          |
 * | 4        | present mask, u32: bit0 direction, bit1 colour, bit2 intensity, |
 * |          | bit3 time, bit 4+u user column u                              |
 * | 12N      | x[N], y[N], z[N], f32                                         |
 * | 12N      | dx, dy, dz, f32 (if bit0)                                     |
 * | 12N      | r, g, b, f32 (if bit1)                                        |
 * | 4N       | intensity, f32 (if bit2)                                      |
 * | 8N       | t, i64 (if bit3)                                              |
 * | sN       | user column u, s = its type's size (if bit 4+u)               |
 */
void lm__record_insert(struct lm__record_enc *e, const char *field, const struct lm_batch *b,
                       const uint32_t *user_sizes)
{
    struct wbuf w;
    begin(e, &w);
    put_name(&w, field);
    put_u32(&w, (uint32_t)b->n);
    uint32_t mask = (b->dx ? 1u : 0) | (b->r ? 2u : 0) | (b->intensity ? 4u : 0) |
                    (b->t ? 8u : 0);
    for (uint32_t u = 0; u < b->n_user; u++)
        if (b->user[u])
            mask |= 1u << (4 + u);
    put_u32(&w, mask);
    size_t fb = b->n * sizeof(float);
    put_external(&w, b->x, fb);
    put_external(&w, b->y, fb);
    put_external(&w, b->z, fb);
    if (b->dx) {
        put_external(&w, b->dx, fb);
        put_external(&w, b->dy, fb);
        put_external(&w, b->dz, fb);
    }
    if (b->r) {
        put_external(&w, b->r, fb);
        put_external(&w, b->g, fb);
        put_external(&w, b->b, fb);
    }
    if (b->intensity)
        put_external(&w, b->intensity, fb);
    if (b->t)
        put_external(&w, b->t, b->n * sizeof(int64_t));
    for (uint32_t u = 0; u < b->n_user; u++)
        if (b->user[u])
            put_external(&w, b->user[u], b->n * user_sizes[u]);
}

/* Selection (inside DELETE and UPDATE):
 * | 1   | region kind, u8                                     |
 * | 88  | min[3], max[3], center[3], radius: 10 f32; planes: 24 f32 (all always) |
 * | 1   | filter count F, u8                                  |
 * | 21F | per filter: column i32, comparison u8, a f64, b f64 |
 */
static void put_selection(struct wbuf *w, const struct lm_selection *sel)
{
    static const struct lm_selection none = {0};
    if (!sel)
        sel = &none;
    const struct lm_region *r = &sel->region;
    put_u8(w, (uint8_t)r->kind);
    put(w, r->min, sizeof r->min);
    put(w, r->max, sizeof r->max);
    put(w, r->center, sizeof r->center);
    put_f32(w, r->radius);
    put(w, r->planes, sizeof r->planes);
    put_u8(w, (uint8_t)sel->n_filters);
    for (uint32_t i = 0; i < sel->n_filters; i++) {
        put_u32(w, (uint32_t)sel->filters[i].column);
        put_u8(w, (uint8_t)sel->filters[i].cmp);
        put_f64(w, sel->filters[i].a);
        put_f64(w, sel->filters[i].b);
    }
}

/* DELETE: | 1+n | field name | ... | selection | */
void lm__record_delete(struct lm__record_enc *e, const char *field,
                       const struct lm_selection *sel)
{
    struct wbuf w;
    begin(e, &w);
    put_name(&w, field);
    put_selection(&w, sel);
    flush_head(&w);
}

/* UPDATE: | 1+n | field name | ... | selection | 4 | column i32 | 8 | value f64 | */
void lm__record_update(struct lm__record_enc *e, const char *field,
                       const struct lm_selection *sel, int column, double value)
{
    struct wbuf w;
    begin(e, &w);
    put_name(&w, field);
    put_selection(&w, sel);
    put_u32(&w, (uint32_t)column);
    put_f64(&w, value);
    flush_head(&w);
}

/* ---------------------------------------------------------------- reader */

static uint8_t get_u8(struct lm__reader *r)
{
    uint8_t v;
    lm__read(r, &v, 1);
    return v;
}

static uint32_t get_u32(struct lm__reader *r)
{
    uint32_t v;
    lm__read(r, &v, 4);
    return v;
}


static void get_selection(struct lm__reader *r, struct lm_selection *sel)
{
    memset(sel, 0, sizeof *sel);
    struct lm_region *g = &sel->region;
    g->kind = (enum lm_region_kind)get_u8(r);
    lm__read(r, g->min, sizeof g->min);
    lm__read(r, g->max, sizeof g->max);
    lm__read(r, g->center, sizeof g->center);
    lm__read(r, &g->radius, sizeof g->radius);
    lm__read(r, g->planes, sizeof g->planes);
    sel->n_filters = get_u8(r);
    if (sel->n_filters > LM_MAX_FILTERS) {
        r->bad = true;
        return;
    }
    for (uint32_t i = 0; i < sel->n_filters; i++) {
        sel->filters[i].column = (int)get_u32(r);
        sel->filters[i].cmp = (enum lm_cmp)get_u8(r);
        lm__read(r, &sel->filters[i].a, 8);
        lm__read(r, &sel->filters[i].b, 8);
    }
}

int lm__record_decode(uint16_t type, const void *payload, size_t n, lm__user_sizes_fn sizes,
                      void *ctx, struct lm__record *out, struct lm_error *err)
{
    struct lm__reader r = {payload, n, 0, false};
    memset(out, 0, sizeof *out);
    out->type = (enum lm__record_type)type;
    lm__read_name(&r, out->field);
    switch (type) {
    case LM_REC_FIELD_CREATE: {
        lm__read(&r, &out->opts.voxel_size, 4);
        out->opts.chunk_edge = get_u32(&r);
        out->opts.n_user_columns = get_u32(&r);
        if (out->opts.n_user_columns > LM_MAX_USER_COLUMNS)
            r.bad = true;
        for (uint32_t u = 0; !r.bad && u < out->opts.n_user_columns; u++) {
            lm__read_name(&r, out->opts.user_columns[u].name);
            out->opts.user_columns[u].type = (enum lm_type)get_u8(&r);
        }
        break;
    }
    case LM_REC_FIELD_DROP:
        break;
    case LM_REC_INSERT: {
        uint32_t us[LM_MAX_USER_COLUMNS], n_user = 0;
        if (!r.bad && sizes(ctx, out->field, us, &n_user))
            return lm__fail(err, LM_ECORRUPT, "insert record names unknown field '%s'",
                            out->field);
        uint32_t count = get_u32(&r), mask = get_u32(&r);
        if (r.bad)
            break;
        /* total bytes the mask promises, checked before allocating */
        uint64_t per = 12 + (mask & 1 ? 12 : 0) + (mask & 2 ? 12 : 0) + (mask & 4 ? 4 : 0) +
                       (mask & 8 ? 8 : 0);
        for (uint32_t u = 0; u < n_user; u++)
            per += mask & (1u << (4 + u)) ? us[u] : 0;
        if (mask >> (4 + n_user) || per * count != n - r.at) {
            r.bad = true;
            break;
        }
        /* one aligned copy of all columns: payload bytes need not be aligned */
        out->owned = lm_alloc(per * count + 8);
        if (!out->owned)
            return lm__fail(err, -ENOMEM, "out of memory decoding a record");
        memcpy(out->owned, r.p + r.at, n - r.at);
        uint8_t *p = out->owned;
        struct lm_batch *b = &out->batch;
        b->n = count;
        size_t fb = (size_t)count * 4;
#define TAKE(dst, bytes) (dst = (const void *)p, p += (bytes))
        TAKE(b->x, fb);
        TAKE(b->y, fb);
        TAKE(b->z, fb);
        if (mask & 1) {
            TAKE(b->dx, fb);
            TAKE(b->dy, fb);
            TAKE(b->dz, fb);
        }
        if (mask & 2) {
            TAKE(b->r, fb);
            TAKE(b->g, fb);
            TAKE(b->b, fb);
        }
        if (mask & 4)
            TAKE(b->intensity, fb);
        if (mask & 8) {
            /* i64 column: keep it 8-aligned inside the copy */
            size_t off = (size_t)(p - (uint8_t *)out->owned);
            if (off % 8) {
                memmove(p + (8 - off % 8), p, (n - r.at) - off); /* the bytes left */
                p += 8 - off % 8;
            }
            TAKE(b->t, (size_t)count * 8);
        }
        b->n_user = n_user;
        for (uint32_t u = 0; u < n_user; u++)
            if (mask & (1u << (4 + u)))
                TAKE(b->user[u], (size_t)count * us[u]);
#undef TAKE
        r.at = n;
        break;
    }
    case LM_REC_DELETE:
        get_selection(&r, &out->sel);
        break;
    case LM_REC_UPDATE:
        get_selection(&r, &out->sel);
        out->column = (int)get_u32(&r);
        lm__read(&r, &out->value, 8);
        break;
    default:
        return lm__fail(err, LM_ECORRUPT, "unknown record type %u", type);
    }
    if (r.bad || r.at != n) {
        lm__record_free(out);
        return lm__fail_at(err, LM_ECORRUPT, 0, 0, (int64_t)r.at,
                           "malformed record of type %u (%zu bytes) at payload byte %zu",
                           type, n, r.at);
    }
    return 0;
}

void lm__record_free(struct lm__record *r)
{
    if (!r)
        return;
    lm_free(r->owned);
    r->owned = NULL;
}
