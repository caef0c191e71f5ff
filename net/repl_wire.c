/* repl_wire.c - byte formats of the cluster (repl_wire.h). */
#include "repl_wire.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "record.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the wire is little-endian");

/* ---------------------------------------------------------------- bytes */

void lm_wire_put(struct lm_wire_buf *b, const void *p, size_t n)
{
    if (b->oom || !n)
        return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->n + n)
            cap *= 2;
        uint8_t *q = lm_realloc(b->p, cap);
        if (!q) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

void lm_wire_u8(struct lm_wire_buf *b, uint8_t v) { lm_wire_put(b, &v, 1); }
void lm_wire_u32(struct lm_wire_buf *b, uint32_t v) { lm_wire_put(b, &v, 4); }
void lm_wire_u64(struct lm_wire_buf *b, uint64_t v) { lm_wire_put(b, &v, 8); }

void lm_wire_str(struct lm_wire_buf *b, const char *s)
{
    size_t len = strnlen(s, 255);
    lm_wire_u8(b, (uint8_t)len);
    lm_wire_put(b, s, len);
}

void lm_wire_buf_free(struct lm_wire_buf *b)
{
    lm_free(b->p);
    *b = (struct lm_wire_buf){0};
}

uint8_t lm_wire_get_u8(struct lm__reader *r)
{
    uint8_t v;
    lm__read(r, &v, 1);
    return v;
}

uint32_t lm_wire_get_u32(struct lm__reader *r)
{
    uint32_t v;
    lm__read(r, &v, 4);
    return v;
}

uint64_t lm_wire_get_u64(struct lm__reader *r)
{
    uint64_t v;
    lm__read(r, &v, 8);
    return v;
}

void lm_wire_get_str(struct lm__reader *r, char *out, size_t cap)
{
    size_t len = lm_wire_get_u8(r);
    if (len >= cap)
        r->bad = true;
    lm__read(r, out, r->bad ? 0 : len);
    out[r->bad ? 0 : len] = 0;
}

const uint8_t *lm_wire_take(struct lm__reader *r, size_t n)
{
    if (r->bad || n > r->n - r->at) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *p = r->p + r->at;
    r->at += n;
    return p;
}

/* ---------------------------------------------------------------- frames */

/* Request frame:
 * | offset | size | field                                              |
 * | 0      | 4    | frame length, header included, u32                 |
 * | 4      | 1    | operation (enum lm_wire_op)                        |
 * | 5      | 1    | flags: 1 linearizable read                         |
 * | 6      | 2    | WRITE: record type (record.h); else 0              |
 * | 8      | 8    | client id (0: writes are not deduplicated)          |
 * | 16     | 8    | request id (echoed in the reply)                    |
 * | 24     | ...  | body (repl_wire.h, per operation)                   |
 */
void lm_wire_request(struct lm_wire_buf *b, const struct lm_wire_request *rq)
{
    lm_wire_u32(b, (uint32_t)(LM_WIRE_HEADER + rq->n));
    lm_wire_u8(b, rq->op);
    lm_wire_u8(b, rq->flags);
    lm_wire_put(b, &rq->type, 2);
    lm_wire_u64(b, rq->client_id);
    lm_wire_u64(b, rq->request_id);
    lm_wire_put(b, rq->body, rq->n);
}

/* Reply frame:
 * | offset | size | field                                              |
 * | 0      | 4    | frame length, header included, u32                 |
 * | 4      | 1    | status: 0 ok, 1 error, 2 redirect                  |
 * | 5      | 3    | zero                                               |
 * | 8      | 4    | rc, i32: 0 or an LM_E* code                        |
 * | 12     | 4    | zero                                               |
 * | 16     | 8    | the request's id                                   |
 * | 24     | ...  | body: ok per operation; error: message; redirect:  |
 * |        |      | u64 leader id, str leader's client address         |
 */
void lm_wire_reply(struct lm_wire_buf *b, const struct lm_wire_reply *rp)
{
    static const uint8_t zero[4];
    lm_wire_u32(b, (uint32_t)(LM_WIRE_HEADER + rp->n));
    lm_wire_u8(b, rp->status);
    lm_wire_put(b, zero, 3);
    lm_wire_u32(b, (uint32_t)rp->rc);
    lm_wire_put(b, zero, 4);
    lm_wire_u64(b, rp->request_id);
    lm_wire_put(b, rp->body, rp->n);
}

int64_t lm_wire_frame_length(const uint8_t *p, size_t n)
{
    if (n < 4)
        return 0;
    uint32_t len;
    memcpy(&len, p, 4);
    if (len < LM_WIRE_HEADER || len > LM_WIRE_MAX_FRAME)
        return LM_ELIMIT;
    return len;
}

int lm_wire_parse_request(const uint8_t *p, size_t n, struct lm_wire_request *out)
{
    if (lm_wire_frame_length(p, n) != (int64_t)n)
        return LM_ECORRUPT;
    out->op = p[4];
    out->flags = p[5];
    memcpy(&out->type, p + 6, 2);
    memcpy(&out->client_id, p + 8, 8);
    memcpy(&out->request_id, p + 16, 8);
    out->body = p + LM_WIRE_HEADER;
    out->n = n - LM_WIRE_HEADER;
    return 0;
}

int lm_wire_parse_reply(const uint8_t *p, size_t n, struct lm_wire_reply *out)
{
    if (lm_wire_frame_length(p, n) != (int64_t)n)
        return LM_ECORRUPT;
    out->status = p[4];
    memcpy(&out->rc, p + 8, 4);
    memcpy(&out->request_id, p + 16, 8);
    out->body = p + LM_WIRE_HEADER;
    out->n = n - LM_WIRE_HEADER;
    return 0;
}

/* ---------------------------------------------------------------- rows */

static size_t type_size(enum lm_type t) { return t == LM_TYPE_U8 ? 1 : 4; }

/* Rows:
 * | size     | field                                                          |
 * | 8        | row count N, u64                                               |
 * | 4        | user column count U, u32                                       |
 * | U        | user column types, u8 each (enum lm_type)                      |
 * | 40N      | x, y, z, dx, dy, dz, r, g, b, intensity: N f32 each, in order  |
 * | 8N       | t, i64                                                         |
 * | sN x U   | user columns, s = the type's size                              |
 */
void lm_wire_rows(struct lm_wire_buf *b, const struct lm_rows *rows)
{
    size_t n = rows->n;
    lm_wire_u64(b, n);
    lm_wire_u32(b, rows->n_user);
    for (uint32_t u = 0; u < rows->n_user; u++)
        lm_wire_u8(b, (uint8_t)rows->user_type[u]);
    const float *cols[10] = {rows->x, rows->y, rows->z, rows->dx, rows->dy, rows->dz,
                             rows->r, rows->g, rows->b, rows->intensity};
    for (int k = 0; k < 10; k++)
        lm_wire_put(b, cols[k], n * 4);
    lm_wire_put(b, rows->t, n * 8);
    for (uint32_t u = 0; u < rows->n_user; u++)
        lm_wire_put(b, rows->user[u], n * type_size(rows->user_type[u]));
}

int lm_wire_rows_decode(const uint8_t *p, size_t len, struct lm_rows **out)
{
    struct lm__reader r = {p, len, 0, false};
    uint64_t n = lm_wire_get_u64(&r);
    uint32_t n_user = lm_wire_get_u32(&r);
    if (r.bad || n_user > LM_MAX_USER_COLUMNS || n > len)
        return LM_ECORRUPT;
    uint8_t types[LM_MAX_USER_COLUMNS];
    lm__read(&r, types, n_user);
    size_t user_bytes = 0;
    for (uint32_t u = 0; u < n_user; u++) {
        if (types[u] < LM_TYPE_F32 || types[u] > LM_TYPE_U8)
            return LM_ECORRUPT;
        user_bytes += n * type_size((enum lm_type)types[u]) + 8; /* + alignment room */
    }
    if (r.bad || len - r.at < n * 48)
        return LM_ECORRUPT;
    /* one block, as the engine's results (lm_rows_free frees it whole) */
    size_t head = (sizeof(struct lm_rows) + 15) & ~(size_t)15;
    struct lm_rows *rows = lm_calloc(1, head + n * 48 + user_bytes + 16);
    if (!rows)
        return -ENOMEM;
    uint8_t *at = (uint8_t *)rows + head;
    float **cols[10] = {&rows->x, &rows->y, &rows->z, &rows->dx, &rows->dy, &rows->dz,
                        &rows->r, &rows->g, &rows->b, &rows->intensity};
    rows->t = (int64_t *)at; /* first: 8-aligned */
    at += n * 8;
    for (int k = 0; k < 10; k++) { /* x .. intensity: contiguous, in wire order */
        *cols[k] = (float *)at;
        at += n * 4;
    }
    lm__read(&r, rows->x, n * 40);
    lm__read(&r, rows->t, n * 8);
    rows->n = n;
    rows->n_user = n_user;
    for (uint32_t u = 0; u < n_user; u++) {
        at = (uint8_t *)(((uintptr_t)at + 7) & ~(uintptr_t)7);
        rows->user_type[u] = (enum lm_type)types[u];
        rows->user[u] = at;
        size_t bytes = n * type_size(rows->user_type[u]);
        lm__read(&r, at, bytes);
        at += bytes;
    }
    if (r.bad || r.at != len) {
        lm_free(rows);
        return LM_ECORRUPT;
    }
    *out = rows;
    return 0;
}

/* ---------------------------------------------------------------- digests */

static uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

struct digest_ctx {
    struct lm_wire_buf *b;
    const struct lm_field_opts *opts;
    uint32_t n_chunks;
};

static int digest_chunk(const struct lm_chunk_view *c, void *arg)
{
    struct digest_ctx *d = arg;
    /* sum of per-row hashes: independent of row order (invariant 4) */
    uint64_t sum = 0;
    for (size_t i = 0; i < c->n; i++) {
        uint32_t xyz[3], in;
        memcpy(&xyz[0], &c->x[i], 4);
        memcpy(&xyz[1], &c->y[i], 4);
        memcpy(&xyz[2], &c->z[i], 4);
        memcpy(&in, &c->intensity[i], 4);
        uint64_t h = mix(((uint64_t)xyz[0] << 32) | xyz[1]);
        h = mix(h ^ (((uint64_t)xyz[2] << 32) | in));
        h = mix(h ^ (((uint64_t)c->dir_oct[2 * i] << 48) |
                     ((uint64_t)c->dir_oct[2 * i + 1] << 32) | ((uint64_t)c->r[i] << 16) |
                     ((uint64_t)c->g[i] << 8) | c->b[i]));
        h = mix(h ^ (uint64_t)c->t[i]);
        for (uint32_t u = 0; u < d->opts->n_user_columns; u++) {
            uint32_t v = 0;
            size_t sz = type_size(d->opts->user_columns[u].type);
            memcpy(&v, (const uint8_t *)c->user[u] + i * sz, sz);
            h = mix(h ^ v ^ ((uint64_t)u << 40));
        }
        sum += h;
    }
    lm_wire_put(d->b, c->coord, 12);
    lm_wire_u64(d->b, c->n);
    lm_wire_u64(d->b, c->lsn);
    lm_wire_u64(d->b, sum);
    d->n_chunks++;
    return 0;
}

/* Every field's info (*info lm_alloc'ed, *n of them). A field created between the two
 * calls is left out; one dropped between them shortens the list. */
static int list_fields(lm_db *db, struct lm_field_info **info, size_t *n)
{
    int rc = lm_field_list(db, NULL, 0, n);
    if (rc)
        return rc;
    if (!(*info = lm_calloc(*n ? *n : 1, sizeof **info)))
        return -ENOMEM;
    size_t cap = *n;
    rc = lm_field_list(db, *info, cap, n);
    if (*n > cap)
        *n = cap;
    if (rc)
        lm_free(*info);
    return rc;
}

/* Digest:
 * | size | field                                                             |
 * | 8    | db index: the log prefix the database holds                      |
 * | 4    | field count F                                                     |
 * | F x  | str name, u64 samples, u32 chunk count K, K x (i32 x3 coordinates, |
 * |      | u64 rows, u64 lsn, u64 sum of row hashes)                        |
 */
int lm_wire_digest(struct lm_wire_buf *b, lm_db *db, uint64_t db_index, struct lm_error *err)
{
    size_t n = 0;
    struct lm_field_info *info = NULL;
    int rc = list_fields(db, &info, &n);
    if (rc)
        return rc;
    lm_wire_u64(b, db_index);
    lm_wire_u32(b, (uint32_t)n);
    for (size_t i = 0; i < n && !rc; i++) {
        lm_wire_str(b, info[i].name);
        lm_wire_u64(b, info[i].n_samples);
        size_t at = b->n;
        lm_wire_u32(b, 0);
        struct digest_ctx d = {b, &info[i].opts, 0};
        rc = lm_chunks_each(db, info[i].name, NULL, 0, digest_chunk, &d, err);
        if (!rc && !b->oom)
            memcpy(b->p + at, &d.n_chunks, 4);
    }
    lm_free(info);
    return rc ? rc : b->oom ? -ENOMEM : 0;
}

int lm_wire_digest_decode(const uint8_t *p, size_t len, struct lm_wire_digest **out)
{
    struct lm__reader r = {p, len, 0, false};
    uint64_t index = lm_wire_get_u64(&r);
    uint32_t nf = lm_wire_get_u32(&r);
    if (r.bad || nf > len)
        return LM_ECORRUPT;
    /* chunk entries are 36 bytes: there are at most len / 36 of them */
    size_t max_chunks = len / 36;
    struct lm_wire_digest *d = lm_calloc(1, sizeof *d + nf * sizeof *d->fields +
                                                max_chunks * sizeof(struct lm_wire_chunk));
    if (!d)
        return -ENOMEM;
    d->db_index = index;
    d->n_fields = nf;
    d->fields = (struct lm_wire_field_digest *)(d + 1);
    struct lm_wire_chunk *chunks = (struct lm_wire_chunk *)(d->fields + nf);
    size_t used = 0;
    for (uint32_t i = 0; i < nf && !r.bad; i++) {
        struct lm_wire_field_digest *f = &d->fields[i];
        lm_wire_get_str(&r, f->name, sizeof f->name);
        f->n_samples = lm_wire_get_u64(&r);
        f->n_chunks = lm_wire_get_u32(&r);
        if (f->n_chunks > max_chunks - used) {
            r.bad = true;
            break;
        }
        f->chunks = chunks + used;
        used += f->n_chunks;
        for (size_t k = 0; k < f->n_chunks; k++) {
            lm__read(&r, f->chunks[k].coord, 12);
            f->chunks[k].n = lm_wire_get_u64(&r);
            f->chunks[k].lsn = lm_wire_get_u64(&r);
            f->chunks[k].hash = lm_wire_get_u64(&r);
        }
    }
    if (r.bad || r.at != len) {
        lm_free(d);
        return LM_ECORRUPT;
    }
    *out = d;
    return 0;
}

void lm_wire_digest_free(struct lm_wire_digest *d) { lm_free(d); }

bool lm_wire_digest_same(const struct lm_wire_digest *a, const struct lm_wire_digest *b,
                         char *why, size_t cap)
{
    if (a->n_fields != b->n_fields) {
        snprintf(why, cap, "%zu fields against %zu", a->n_fields, b->n_fields);
        return false;
    }
    for (size_t i = 0; i < a->n_fields; i++) {
        const struct lm_wire_field_digest *fa = &a->fields[i], *fb = &b->fields[i];
        if (strcmp(fa->name, fb->name) || fa->n_samples != fb->n_samples ||
            fa->n_chunks != fb->n_chunks) {
            snprintf(why, cap, "field '%s' (%llu samples, %zu chunks) against '%s' (%llu "
                     "samples, %zu chunks)", fa->name, (unsigned long long)fa->n_samples,
                     fa->n_chunks, fb->name, (unsigned long long)fb->n_samples, fb->n_chunks);
            return false;
        }
        for (size_t k = 0; k < fa->n_chunks; k++) {
            const struct lm_wire_chunk *ca = &fa->chunks[k], *cb = &fb->chunks[k];
            if (memcmp(ca->coord, cb->coord, 12) || ca->n != cb->n || ca->lsn != cb->lsn ||
                ca->hash != cb->hash) {
                snprintf(why, cap, "field '%s' chunk (%d, %d, %d): %llu rows, lsn %llu, "
                         "digest %016llx against (%d, %d, %d): %llu rows, lsn %llu, digest "
                         "%016llx", fa->name, ca->coord[0], ca->coord[1], ca->coord[2],
                         (unsigned long long)ca->n, (unsigned long long)ca->lsn,
                         (unsigned long long)ca->hash, cb->coord[0], cb->coord[1],
                         cb->coord[2], (unsigned long long)cb->n, (unsigned long long)cb->lsn,
                         (unsigned long long)cb->hash);
                return false;
            }
        }
    }
    return true;
}

/* ---------------------------------------------------------------- field lists */

/* Field list:
 * | size | field                                                            |
 * | 4    | field count F                                                    |
 * | F x  | u32 length L + a FIELD_CREATE record payload of L bytes (name and |
 * |      | options, record.h), u64 samples                                  |
 */
int lm_wire_fields(struct lm_wire_buf *b, lm_db *db)
{
    size_t n = 0;
    struct lm_field_info *info = NULL;
    int rc = list_fields(db, &info, &n);
    if (rc)
        return rc;
    lm_wire_u32(b, (uint32_t)n);
    for (size_t i = 0; i < n && !rc; i++) {
        struct lm__record_enc enc;
        lm__record_field_create(&enc, info[i].name, &info[i].opts);
        uint32_t len = 0;
        for (int k = 0; k < enc.n_iov; k++)
            len += (uint32_t)enc.iov[k].iov_len;
        lm_wire_u32(b, len);
        for (int k = 0; k < enc.n_iov; k++)
            lm_wire_put(b, enc.iov[k].iov_base, enc.iov[k].iov_len);
        lm_wire_u64(b, info[i].n_samples);
    }
    lm_free(info);
    return rc ? rc : b->oom ? -ENOMEM : 0;
}

int lm_wire_fields_decode(const uint8_t *p, size_t len, struct lm_field_info **out,
                          size_t *count)
{
    struct lm__reader r = {p, len, 0, false};
    uint32_t n = lm_wire_get_u32(&r);
    if (r.bad || n > len)
        return LM_ECORRUPT;
    struct lm_field_info *info = lm_calloc(n ? n : 1, sizeof *info);
    if (!info)
        return -ENOMEM;
    for (uint32_t i = 0; i < n && !r.bad; i++) {
        uint32_t rec_len = lm_wire_get_u32(&r);
        const uint8_t *rec = lm_wire_take(&r, rec_len);
        struct lm__record dec;
        if (!rec || lm__record_decode(LM_REC_FIELD_CREATE, rec, rec_len, NULL, NULL, &dec,
                                      NULL)) {
            r.bad = true;
            break;
        }
        snprintf(info[i].name, sizeof info[i].name, "%s", dec.field);
        info[i].opts = dec.opts;
        lm__record_free(&dec);
        info[i].n_samples = lm_wire_get_u64(&r);
    }
    if (r.bad || r.at != len) {
        lm_free(info);
        return LM_ECORRUPT;
    }
    *out = info;
    *count = n;
    return 0;
}
