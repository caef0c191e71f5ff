/* wire.c - lumadb.v1 frames (see wire.h; the same tables are in docs/PROTOCOL.md). */
#include "wire.h"

#include <lz4.h>
#include <stdio.h>
#include <string.h>

const char *lm_ws_strerror(int code)
{
    switch (code) {
#define LM__WS_MSG(name, value, msg) case value: return msg;
        LM_WS_ERROR_TABLE(LM__WS_MSG)
#undef LM__WS_MSG
    }
    return "unknown error";
}

/* ---------------------------------------------------------------- reading helpers */

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const uint8_t *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static float rdf32(const uint8_t *p)
{
    uint32_t u = rd32(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static int bad(char *why, size_t why_len, int code, const char *text)
{
    snprintf(why, why_len, "%s", text);
    return code;
}

/* Copies a length-prefixed name; 0 or LM_WS_EMALFORMED. */
static int take_name(const uint8_t *p, size_t len, char out[LM_NAME_MAX + 1])
{
    if (len == 0 || len > LM_NAME_MAX || memchr(p, 0, len))
        return LM_WS_EMALFORMED;
    memcpy(out, p, len);
    out[len] = 0;
    return 0;
}

/* ---------------------------------------------------------------- common header
 * offset size field
 * 0      1    type (enum lm_ws_type)
 * 1      1    flags (per type; 0 when unused)
 * 2      2    reserved, 0
 * 4      4    id: request id, subscription id, or 0 */
void lm_ws_put_header(struct lm_net_buf *b, uint8_t type, uint8_t flags, uint32_t id)
{
    lm_net_buf_u8(b, type);
    lm_net_buf_u8(b, flags);
    lm_net_buf_u16(b, 0);
    lm_net_buf_u32(b, id);
}

/* ---------------------------------------------------------------- client frames
 * HELLO (0x01)
 * 8      2    protocol version (1)
 * 10     2    token length T (0..256)
 * 12     T    bearer token (bytes), may be empty
 *
 * SUBSCRIBE (0x02), id = subscription id (non-zero, chosen by the client; reusing an id
 * replaces that subscription)
 * 8      1    region kind: 0 all, 1 box, 2 sphere, 3 camera frustum
 * 9      1    lod: 255 auto (budget), 254 samples, 0..15 voxels at that level
 * 10     1    field name length N (1..63)
 * 11     1    reserved, 0
 * 12     4    point budget (0 = no limit)
 * 16     4    sample columns (LM_WS_COL_* bits; 0 = default)
 * 20     N    field name
 * 20+N   4*K  region parameters, f32: box K=6 (min xyz, max xyz); sphere K=4 (centre
 *             xyz, radius); camera K=13 (eye xyz, target xyz, up xyz, fov_y degrees,
 *             aspect, near, far); all K=0
 *
 * UNSUBSCRIBE (0x03), id = subscription id; no payload.
 * QUERY (0x04), id = request id; 8.. JSON query text (as POST /v1/query).
 * INSERT (0x05), id = request id
 * 8      1    field name length N
 * 9      N    field name
 * 9+N    ..   JSON batch (as POST /v1/fields/NAME/samples) */
void lm_ws_encode_hello(struct lm_net_buf *b, uint16_t version, const char *token)
{
    size_t n = token ? strlen(token) : 0;
    lm_ws_put_header(b, LM_WS_HELLO, 0, 0);
    lm_net_buf_u16(b, version);
    lm_net_buf_u16(b, (uint16_t)n);
    lm_net_buf_put(b, token, n);
}

static const uint8_t region_floats[4] = {0, 6, 4, 13};

void lm_ws_encode_subscribe(struct lm_net_buf *b, uint32_t id, const char *field,
                            enum lm_ws_region kind, const float *params, uint8_t lod,
                            uint32_t budget, uint32_t columns)
{
    size_t n = strlen(field);
    lm_ws_put_header(b, LM_WS_SUBSCRIBE, 0, id);
    lm_net_buf_u8(b, (uint8_t)kind);
    lm_net_buf_u8(b, lod);
    lm_net_buf_u8(b, (uint8_t)n);
    lm_net_buf_u8(b, 0);
    lm_net_buf_u32(b, budget);
    lm_net_buf_u32(b, columns);
    lm_net_buf_put(b, field, n);
    for (int i = 0; i < region_floats[kind & 3]; i++)
        lm_net_buf_f32(b, params[i]);
}

static int decode_region(const uint8_t *p, uint8_t kind, struct lm_region *r, char *why,
                         size_t why_len)
{
    float f[13];
    for (int i = 0; i < region_floats[kind]; i++) {
        f[i] = rdf32(p + 4 * i);
        if (!(f[i] == f[i]) || f[i] > 3.4e38f || f[i] < -3.4e38f)
            return bad(why, why_len, LM_WS_EMALFORMED, "region parameters must be finite");
    }
    memset(r, 0, sizeof *r);
    switch (kind) {
    case LM_WS_REGION_ALL:
        r->kind = LM_REGION_ALL;
        return 0;
    case LM_WS_REGION_BOX:
        r->kind = LM_REGION_BOX;
        for (int a = 0; a < 3; a++) {
            r->min[a] = f[a];
            r->max[a] = f[3 + a];
            if (r->min[a] > r->max[a])
                return bad(why, why_len, LM_WS_EMALFORMED, "box min exceeds max");
        }
        return 0;
    case LM_WS_REGION_SPHERE:
        r->kind = LM_REGION_SPHERE;
        memcpy(r->center, f, sizeof r->center);
        r->radius = f[3];
        return f[3] >= 0 ? 0 : bad(why, why_len, LM_WS_EMALFORMED, "negative radius");
    default:
        if (lm_frustum_from_camera(f, f + 3, f + 6, f[9], f[10], f[11], f[12], r))
            return bad(why, why_len, LM_WS_EMALFORMED, "camera does not form a frustum");
        return 0;
    }
}

/* Reads the common header of a frame of either direction: 0 or LM_WS_EMALFORMED. */
static int read_header(const uint8_t *p, size_t n, uint8_t *type, uint8_t *flags,
                       uint32_t *id, char *why, size_t why_len)
{
    if (n < LM_WS_HEADER)
        return bad(why, why_len, LM_WS_EMALFORMED, "frame shorter than its 8-byte header");
    *type = p[0];
    *flags = p[1];
    *id = rd32(p + 4);
    return 0;
}

int lm_ws_decode(const uint8_t *p, size_t n, struct lm_ws_msg *out, char *why, size_t why_len)
{
    memset(out, 0, sizeof *out);
    if (read_header(p, n, &out->type, &out->flags, &out->id, why, why_len))
        return LM_WS_EMALFORMED;
    const uint8_t *q = p + LM_WS_HEADER;
    size_t m = n - LM_WS_HEADER;
    switch (out->type) {
    case LM_WS_HELLO: {
        if (m < 4)
            return bad(why, why_len, LM_WS_EMALFORMED, "hello is shorter than 12 bytes");
        size_t t = rd16(q + 2);
        out->u.hello.version = rd16(q);
        if (m != 4 + t || t > LM_WS_TOKEN_MAX)
            return bad(why, why_len, LM_WS_EMALFORMED, "hello token length does not match");
        out->u.hello.token = (const char *)q + 4;
        out->u.hello.token_len = t;
        return 0;
    }
    case LM_WS_SUBSCRIBE: {
        if (m < 12)
            return bad(why, why_len, LM_WS_EMALFORMED, "subscribe is shorter than 20 bytes");
        uint8_t kind = q[0], lod = q[1], nl = q[2];
        if (kind > LM_WS_REGION_CAMERA)
            return bad(why, why_len, LM_WS_EMALFORMED, "unknown region kind");
        if (m != 12 + (size_t)nl + 4u * region_floats[kind])
            return bad(why, why_len, LM_WS_EMALFORMED, "subscribe length does not match");
        if (out->id == 0)
            return bad(why, why_len, LM_WS_EMALFORMED, "subscription id must not be 0");
        if (lod > LM_WS_LOD_MAX_LEVEL && lod < LM_WS_LOD_SAMPLES)
            return bad(why, why_len, LM_WS_EMALFORMED, "lod must be 0..15, 254 or 255");
        if (take_name(q + 12, nl, out->u.subscribe.field))
            return bad(why, why_len, LM_WS_EMALFORMED, "bad field name");
        out->u.subscribe.lod = lod;
        out->u.subscribe.budget = rd32(q + 4);
        out->u.subscribe.columns = rd32(q + 8) ? rd32(q + 8) : LM_WS_COL_DEFAULT;
        return decode_region(q + 12 + nl, kind, &out->u.subscribe.region, why, why_len);
    }
    case LM_WS_UNSUBSCRIBE:
        return m == 0 ? 0 : bad(why, why_len, LM_WS_EMALFORMED, "unsubscribe has a payload");
    case LM_WS_QUERY:
        out->u.query.json = (const char *)q;
        out->u.query.len = m;
        return 0;
    case LM_WS_INSERT: {
        if (m < 1 || m < 1u + q[0] || take_name(q + 1, q[0], out->u.insert.field))
            return bad(why, why_len, LM_WS_EMALFORMED, "insert needs a field name");
        out->u.insert.json = (const char *)q + 1 + q[0];
        out->u.insert.len = m - 1 - q[0];
        return 0;
    }
    default:
        snprintf(why, why_len, "unknown frame type 0x%02x", out->type);
        return LM_WS_ETYPE;
    }
}

/* ---------------------------------------------------------------- small server frames
 * WELCOME (0x80), id 0
 * 8      2    protocol version
 * 10     2    flags: 1 = may insert, 2 = reads need the token
 * 12     4    maximum frame size in bytes (either direction)
 * 16     8    database sequence number (lsn)
 *
 * ERROR (0x8F), id = the request's id (0 when not tied to one)
 * 8      2    error code (LM_WS_E*)
 * 10     2    reserved, 0
 * 12     4    engine error (negative LM_E* or -errno; 0 if none), i32
 * 16     ..   message, UTF-8, to the end of the frame
 *
 * RESULT (0x85), id = request id; 8.. JSON text to the end of the frame.
 *
 * ACK (0x86), id = request id
 * 8      8    lsn of the insert
 * 16     4    samples inserted
 *
 * BYE (0x8E), id 0: the server is going away; a WebSocket close follows
 * 8      2    close code (1001)
 * 10     ..   reason, UTF-8 */
void lm_ws_encode_welcome(struct lm_net_buf *b, uint16_t flags, uint32_t max_frame, uint64_t lsn)
{
    lm_ws_put_header(b, LM_WS_WELCOME, 0, 0);
    lm_net_buf_u16(b, LM_WS_VERSION);
    lm_net_buf_u16(b, flags);
    lm_net_buf_u32(b, max_frame);
    lm_net_buf_u64(b, lsn);
}

void lm_ws_encode_error(struct lm_net_buf *b, uint32_t id, int code, int lm_code,
                        const char *text)
{
    lm_ws_put_header(b, LM_WS_ERROR, 0, id);
    lm_net_buf_u16(b, (uint16_t)code);
    lm_net_buf_u16(b, 0);
    lm_net_buf_u32(b, (uint32_t)lm_code);
    lm_net_buf_put(b, text, strlen(text));
}

void lm_ws_encode_text(struct lm_net_buf *b, uint8_t type, uint32_t id, const char *text,
                       size_t n)
{
    lm_ws_put_header(b, type, 0, id);
    lm_net_buf_put(b, text, n);
}

void lm_ws_encode_ack(struct lm_net_buf *b, uint32_t id, uint64_t lsn, uint32_t n)
{
    lm_ws_put_header(b, LM_WS_ACK, 0, id);
    lm_net_buf_u64(b, lsn);
    lm_net_buf_u32(b, n);
}

void lm_ws_encode_bye(struct lm_net_buf *b, uint16_t close_code, const char *text)
{
    lm_ws_put_header(b, LM_WS_BYE, 0, 0);
    lm_net_buf_u16(b, close_code);
    lm_net_buf_put(b, text, strlen(text));
}

/* SUBSCRIBED (0x83), id = subscription id: sent once the subscription is set up
 * 8      1    mode: 0 samples (CHUNK frames), 1 voxels (VOXELS frames)
 * 9      1    voxel level (mode 1)
 * 10     2    reserved, 0
 * 12     4    chunks intersecting the region now
 * 16     8    samples in those chunks
 * 24     8    points to expect: samples, or an estimate of voxels
 * 32     8    lsn the snapshot starts from
 * 40     4    field voxel size, f32
 * 44     4    field chunk edge in voxels
 * 48     12   field bounds min xyz, f32
 * 60     12   field bounds max xyz, f32
 *
 * SYNCED (0x84), id = subscription id: every change up to lsn has been sent
 * 8      4    chunks sent since the subscription began (parts count once)
 * 12     4    reserved, 0
 * 16     8    points sent since the subscription began
 * 24     8    lsn */
void lm_ws_encode_subscribed(struct lm_net_buf *b, uint32_t id, const struct lm_ws_subscribed *s)
{
    lm_ws_put_header(b, LM_WS_SUBSCRIBED, 0, id);
    lm_net_buf_u8(b, s->mode);
    lm_net_buf_u8(b, s->level);
    lm_net_buf_u16(b, 0);
    lm_net_buf_u32(b, s->chunks);
    lm_net_buf_u64(b, s->samples);
    lm_net_buf_u64(b, s->items);
    lm_net_buf_u64(b, s->lsn);
    lm_net_buf_f32(b, s->voxel_size);
    lm_net_buf_u32(b, s->chunk_edge);
    for (int a = 0; a < 3; a++)
        lm_net_buf_f32(b, s->bounds_min[a]);
    for (int a = 0; a < 3; a++)
        lm_net_buf_f32(b, s->bounds_max[a]);
}

void lm_ws_encode_synced(struct lm_net_buf *b, uint32_t id, uint32_t chunks, uint64_t items,
                         uint64_t lsn)
{
    lm_ws_put_header(b, LM_WS_SYNCED, 0, id);
    lm_net_buf_u32(b, chunks);
    lm_net_buf_u32(b, 0);
    lm_net_buf_u64(b, items);
    lm_net_buf_u64(b, lsn);
}

/* ---------------------------------------------------------------- chunk frames */

static size_t user_size(const struct lm_field_opts *o, uint32_t i)
{
    return o->user_columns[i].type == LM_TYPE_U8 ? 1 : 4;
}

uint32_t lm_ws_columns_valid(uint32_t columns, const struct lm_field_opts *opts)
{
    uint32_t users = opts->n_user_columns >= 24 ? 0xFFFFFFu : (1u << opts->n_user_columns) - 1;
    return columns & (0x1Fu | users << 8);
}

size_t lm_ws_sample_bytes(uint32_t columns, const struct lm_field_opts *opts)
{
    size_t s = 0;
    s += columns & LM_WS_COL_T ? 8 : 0;
    s += columns & LM_WS_COL_POS ? 12 : 0;
    s += columns & LM_WS_COL_INTENSITY ? 4 : 0;
    s += columns & LM_WS_COL_DIR ? 4 : 0;
    s += columns & LM_WS_COL_RGB ? 3 : 0;
    for (uint32_t i = 0; i < opts->n_user_columns && i < 24; i++)
        s += columns & LM_WS_COL_USER(i) ? user_size(opts, i) : 0;
    return s;
}

/* Appends n elements of `size` bytes starting at element `first`. */
static void put_col(struct lm_net_buf *s, const void *col, size_t size, size_t first, size_t n)
{
    lm_net_buf_put(s, (const uint8_t *)col + first * size, n * size);
}

/* Compresses scratch into b as raw_len, comp_len, data (comp_len 0 = stored raw). */
static void put_compressed(struct lm_net_buf *b, const struct lm_net_buf *scratch)
{
    size_t raw = scratch->len;
    int bound = LZ4_compressBound((int)raw);
    lm_net_buf_u32(b, (uint32_t)raw);
    size_t at = b->len;
    lm_net_buf_u32(b, 0);
    if (scratch->oom || lm_net_buf_reserve(b, (size_t)bound))
        return;
    int c = raw ? LZ4_compress_default((const char *)scratch->p, (char *)b->p + b->len,
                                       (int)raw, bound)
                : 0;
    if (c > 0 && (size_t)c < raw) {
        b->len += (size_t)c;
        uint32_t cc = (uint32_t)c;
        for (int i = 0; i < 4; i++)
            b->p[at + i] = (uint8_t)(cc >> (8 * i));
    } else {
        lm_net_buf_put(b, scratch->p, raw);
    }
}

/* Bytes 0..40 shared by CHUNK and VOXELS: header, chunk, lsn, total, first, n. */
static void put_part_header(struct lm_net_buf *b, uint8_t type, uint8_t flags, uint32_t id,
                            const int32_t coord[3], uint64_t lsn, size_t total, size_t first,
                            size_t n)
{
    lm_ws_put_header(b, type, flags, id);
    for (int a = 0; a < 3; a++)
        lm_net_buf_u32(b, (uint32_t)coord[a]);
    lm_net_buf_u64(b, lsn);
    lm_net_buf_u32(b, (uint32_t)total);
    lm_net_buf_u32(b, (uint32_t)first);
    lm_net_buf_u32(b, (uint32_t)n);
}

/* CHUNK (0x81), id = subscription id, flags 1 = delta
 * 8      12   chunk coordinates x, y, z, i32
 * 20     8    chunk lsn
 * 28     4    samples in the chunk (all parts)
 * 32     4    first sample of this part
 * 36     4    samples in this part (n)
 * 40     4    columns present (LM_WS_COL_* bits)
 * 44     12   chunk sample bounds min xyz, f32
 * 56     12   chunk sample bounds max xyz, f32
 * 68     4    raw length of the columns
 * 72     4    compressed length (0 = the columns follow uncompressed)
 * 76     ..   LZ4 block (or raw columns). Raw layout, each column n values, in order:
 *             t i64; x, y, z f32; intensity f32; 4-byte user columns (f32/i32) in
 *             schema order; direction 2 x u16 per sample (octahedral, lm_dir_decode);
 *             r, g, b u8; 1-byte user columns in schema order. Absent columns are
 *             skipped. A part with first = 0 replaces everything the client holds for
 *             the chunk. */
void lm_ws_encode_chunk(struct lm_net_buf *b, struct lm_net_buf *scratch, uint32_t sub_id,
                        uint8_t flags, const struct lm_chunk_view *c, size_t first, size_t n,
                        uint32_t columns, const struct lm_field_opts *opts)
{
    lm_net_buf_clear(scratch);
    if (columns & LM_WS_COL_T)
        put_col(scratch, c->t, 8, first, n);
    if (columns & LM_WS_COL_POS) {
        put_col(scratch, c->x, 4, first, n);
        put_col(scratch, c->y, 4, first, n);
        put_col(scratch, c->z, 4, first, n);
    }
    if (columns & LM_WS_COL_INTENSITY)
        put_col(scratch, c->intensity, 4, first, n);
    for (uint32_t i = 0; i < opts->n_user_columns && i < 24; i++)
        if (columns & LM_WS_COL_USER(i) && user_size(opts, i) == 4)
            put_col(scratch, c->user[i], 4, first, n);
    if (columns & LM_WS_COL_DIR)
        put_col(scratch, c->dir_oct, 4, first, n);
    if (columns & LM_WS_COL_RGB) {
        put_col(scratch, c->r, 1, first, n);
        put_col(scratch, c->g, 1, first, n);
        put_col(scratch, c->b, 1, first, n);
    }
    for (uint32_t i = 0; i < opts->n_user_columns && i < 24; i++)
        if (columns & LM_WS_COL_USER(i) && user_size(opts, i) == 1)
            put_col(scratch, c->user[i], 1, first, n);

    put_part_header(b, LM_WS_CHUNK, flags, sub_id, c->coord, c->lsn, c->n, first, n);
    lm_net_buf_u32(b, columns);
    for (int a = 0; a < 3; a++)
        lm_net_buf_f32(b, c->bounds_min[a]);
    for (int a = 0; a < 3; a++)
        lm_net_buf_f32(b, c->bounds_max[a]);
    put_compressed(b, scratch);
}

/* VOXELS (0x82), id = subscription id, flags 1 = delta
 * 8      12   chunk coordinates x, y, z, i32
 * 20     8    chunk lsn
 * 28     4    voxels of the chunk at this level (all parts)
 * 32     4    first voxel of this part
 * 36     4    voxels in this part (n)
 * 40     1    level
 * 41     3    reserved, 0
 * 44     4    cell size in world units, f32 (cell min corner = coord * cell size)
 * 48     4    raw length (64 * n)
 * 52     4    compressed length (0 = raw follows)
 * 56     ..   LZ4 block of columns, n values each: cell x, y, z i32; sample count u32;
 *             then 12 f32 columns of L1 SH sums sh[channel][coef] in the order
 *             (r: Y00 Y1-1 Y10 Y11, g: ..., b: ...), as struct lm_voxel. */
void lm_ws_encode_voxels(struct lm_net_buf *b, struct lm_net_buf *scratch, uint32_t sub_id,
                         uint8_t flags, const int32_t chunk[3], uint64_t lsn, uint32_t level,
                         float cell_size, const struct lm_voxel *v, size_t first, size_t n,
                         size_t total)
{
    lm_net_buf_clear(scratch);
    if (lm_net_buf_reserve(scratch, n * LM_WS_VOXEL_BYTES) == 0) {
        for (int a = 0; a < 3; a++)
            for (size_t i = 0; i < n; i++)
                lm_net_buf_u32(scratch, (uint32_t)v[i].coord[a]);
        for (size_t i = 0; i < n; i++)
            lm_net_buf_u32(scratch, v[i].count);
        for (int ch = 0; ch < 3; ch++)
            for (int k = 0; k < 4; k++)
                for (size_t i = 0; i < n; i++)
                    lm_net_buf_f32(scratch, v[i].sh[ch][k]);
    }
    put_part_header(b, LM_WS_VOXELS, flags, sub_id, chunk, lsn, total, first, n);
    lm_net_buf_u8(b, (uint8_t)level);
    lm_net_buf_u8(b, 0);
    lm_net_buf_u16(b, 0);
    lm_net_buf_f32(b, cell_size);
    put_compressed(b, scratch);
}

/* ---------------------------------------------------------------- decoding server frames
 * The layouts are the tables above the encoders. */

static void rd_floats(const uint8_t *p, float *out, int n)
{
    for (int i = 0; i < n; i++)
        out[i] = rdf32(p + 4 * i);
}

/* Fixed payload sizes (after the 8-byte header) of the server frames that have one. */
static size_t reply_fixed_size(uint8_t type)
{
    switch (type) {
    case LM_WS_WELCOME: return 16;
    case LM_WS_SUBSCRIBED: return 64;
    case LM_WS_SYNCED: return 24;
    case LM_WS_ACK: return 12;
    case LM_WS_CHUNK: return LM_WS_CHUNK_HEADER - LM_WS_HEADER; /* then the columns */
    case LM_WS_ERROR: return 8;                                 /* then the message */
    case LM_WS_BYE: return 2;                                   /* then the reason */
    default: return 0;
    }
}

int lm_ws_decode_reply(const uint8_t *p, size_t n, struct lm_ws_reply *out, char *why,
                       size_t why_len)
{
    memset(out, 0, sizeof *out);
    if (read_header(p, n, &out->type, &out->flags, &out->id, why, why_len))
        return LM_WS_EMALFORMED;
    const uint8_t *q = p + LM_WS_HEADER;
    size_t m = n - LM_WS_HEADER, fixed = reply_fixed_size(out->type);
    if (m < fixed) {
        snprintf(why, why_len, "frame type 0x%02x is shorter than %zu bytes", out->type,
                 LM_WS_HEADER + fixed);
        return LM_WS_EMALFORMED;
    }
    switch (out->type) {
    case LM_WS_WELCOME:
        out->u.welcome.version = rd16(q);
        out->u.welcome.flags = rd16(q + 2);
        out->u.welcome.max_frame = rd32(q + 4);
        out->u.welcome.lsn = rd64(q + 8);
        return 0;
    case LM_WS_SUBSCRIBED: {
        struct lm_ws_subscribed *s = &out->u.subscribed;
        s->mode = q[0];
        s->level = q[1];
        s->chunks = rd32(q + 4);
        s->samples = rd64(q + 8);
        s->items = rd64(q + 16);
        s->lsn = rd64(q + 24);
        s->voxel_size = rdf32(q + 32);
        s->chunk_edge = rd32(q + 36);
        rd_floats(q + 40, s->bounds_min, 3);
        rd_floats(q + 52, s->bounds_max, 3);
        return 0;
    }
    case LM_WS_SYNCED:
        out->u.synced.chunks = rd32(q);
        out->u.synced.items = rd64(q + 8);
        out->u.synced.lsn = rd64(q + 16);
        return 0;
    case LM_WS_ACK:
        out->u.ack.lsn = rd64(q);
        out->u.ack.n = rd32(q + 8);
        return 0;
    case LM_WS_CHUNK: {
        struct lm_ws_chunk_part *c = &out->u.chunk;
        for (int a = 0; a < 3; a++)
            c->coord[a] = (int32_t)rd32(q + 4 * a);
        c->lsn = rd64(q + 12);
        c->total = rd32(q + 20);
        c->first = rd32(q + 24);
        c->n = rd32(q + 28);
        c->columns = rd32(q + 32);
        rd_floats(q + 36, c->bounds_min, 3);
        rd_floats(q + 48, c->bounds_max, 3);
        c->raw_len = rd32(q + 60);
        c->comp_len = rd32(q + 64);
        c->data = p + LM_WS_CHUNK_HEADER;
        size_t data_len = n - LM_WS_CHUNK_HEADER;
        if (data_len != (c->comp_len ? c->comp_len : c->raw_len))
            return bad(why, why_len, LM_WS_EMALFORMED, "chunk column length does not match");
        if ((uint64_t)c->first + c->n > c->total || (c->total && !c->n))
            return bad(why, why_len, LM_WS_EMALFORMED, "chunk part lies outside its chunk");
        return 0;
    }
    case LM_WS_ERROR:
        out->u.error.code = rd16(q);
        out->u.error.lm_code = (int32_t)rd32(q + 4);
        out->u.error.text = (const char *)q + 8;
        out->u.error.len = m - 8;
        return 0;
    case LM_WS_BYE:
        out->u.bye.close_code = rd16(q);
        out->u.bye.text = (const char *)q + 2;
        out->u.bye.len = m - 2;
        return 0;
    case LM_WS_RESULT:
        out->u.result.json = (const char *)q;
        out->u.result.len = m;
        return 0;
    default:
        snprintf(why, why_len, "unknown frame type 0x%02x", out->type);
        return LM_WS_ETYPE;
    }
}

/* Points *col at the next n values of `size` bytes in the raw columns. */
static const void *take_col(const uint8_t *raw, size_t *at, size_t size, size_t n)
{
    const void *col = raw + *at;
    *at += size * n;
    return col;
}

int lm_ws_chunk_columns(const struct lm_ws_chunk_part *c, const struct lm_field_opts *opts,
                        struct lm_net_buf *scratch, struct lm_ws_columns *out, char *why,
                        size_t why_len)
{
    static const struct lm_field_opts none = {0};
    if (c->columns >> 8 && !opts)
        return bad(why, why_len, LM_WS_EMALFORMED, "user columns need the field's schema");
    if (!opts)
        opts = &none;
    if (c->columns != lm_ws_columns_valid(c->columns, opts))
        return bad(why, why_len, LM_WS_EMALFORMED, "chunk columns the field does not have");
    size_t n = c->n;
    if ((uint64_t)n * lm_ws_sample_bytes(c->columns, opts) != c->raw_len)
        return bad(why, why_len, LM_WS_EMALFORMED, "chunk raw length does not match its columns");
    lm_net_buf_clear(scratch);
    /* copied even when raw: the frame's column bytes start at offset 76, which is not
     * 8-byte aligned, and t is read as int64 */
    if (lm_net_buf_reserve(scratch, c->raw_len ? c->raw_len : 1))
        return bad(why, why_len, LM_WS_EINTERNAL, "out of memory");
    if (!c->comp_len) {
        if (c->raw_len)
            memcpy(scratch->p, c->data, c->raw_len);
    } else if (LZ4_decompress_safe((const char *)c->data, (char *)scratch->p, (int)c->comp_len,
                                   (int)c->raw_len) != (int)c->raw_len) {
        return bad(why, why_len, LM_WS_EMALFORMED, "chunk columns do not decompress");
    }
    scratch->len = c->raw_len;
    memset(out, 0, sizeof *out);
    const uint8_t *raw = scratch->p;
    size_t at = 0;
    if (c->columns & LM_WS_COL_T)
        out->t = take_col(raw, &at, 8, n);
    if (c->columns & LM_WS_COL_POS) {
        out->x = take_col(raw, &at, 4, n);
        out->y = take_col(raw, &at, 4, n);
        out->z = take_col(raw, &at, 4, n);
    }
    if (c->columns & LM_WS_COL_INTENSITY)
        out->intensity = take_col(raw, &at, 4, n);
    for (uint32_t i = 0; i < opts->n_user_columns && i < 24; i++)
        if (c->columns & LM_WS_COL_USER(i) && user_size(opts, i) == 4)
            out->user[i] = take_col(raw, &at, 4, n);
    if (c->columns & LM_WS_COL_DIR)
        out->dir_oct = take_col(raw, &at, 4, n);
    if (c->columns & LM_WS_COL_RGB) {
        out->r = take_col(raw, &at, 1, n);
        out->g = take_col(raw, &at, 1, n);
        out->b = take_col(raw, &at, 1, n);
    }
    for (uint32_t i = 0; i < opts->n_user_columns && i < 24; i++)
        if (c->columns & LM_WS_COL_USER(i) && user_size(opts, i) == 1)
            out->user[i] = take_col(raw, &at, 1, n);
    return 0;
}
