/* wire.h - the lumadb.v1 WebSocket protocol: frame encoders, the decoder of client
 * frames (for the server) and the decoder of server frames (for clients: mirror.c).
 * Owns: nothing; encoders append to a caller's lm_net_buf, the decoder points into the
 *   caller's bytes.
 * Invariants: (1) every frame is one binary WebSocket message that starts with the
 *   8-byte common header (type, flags, reserved, id); integers and floats are
 *   little-endian. (2) The decoder accepts a frame only if its length matches what its
 *   fields say exactly; otherwise it names an LM_WS_E* code and a reason.
 *   (3) Sample columns inside a chunk frame are laid out by descending alignment
 *   (8, 4, 2, 1 bytes), so a client can view them in place after decompression.
 * Threading: pure functions. Called by: server.c, ws.c, mirror.c, tests, bench.
 * Byte tables: above each encoder in wire.c and in docs/PROTOCOL.md. */
#ifndef LM_NET_WIRE_H
#define LM_NET_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "lumadb.h"

#define LM_WS_PROTOCOL "lumadb.v1"
#define LM_WS_VERSION 1
#define LM_WS_HEADER 8            /* bytes of the common header */
#define LM_WS_CHUNK_HEADER 76     /* bytes before the column data of a CHUNK frame */
#define LM_WS_VOXELS_HEADER 56    /* bytes before the data of a VOXELS frame */
#define LM_WS_VOXEL_BYTES 64      /* raw bytes per voxel in a VOXELS frame */
#define LM_WS_TOKEN_MAX 256

enum lm_ws_type {
    /* client -> server */
    LM_WS_HELLO = 0x01,
    LM_WS_SUBSCRIBE = 0x02,
    LM_WS_UNSUBSCRIBE = 0x03,
    LM_WS_QUERY = 0x04,
    LM_WS_INSERT = 0x05,
    /* server -> client */
    LM_WS_WELCOME = 0x80,
    LM_WS_CHUNK = 0x81,
    LM_WS_VOXELS = 0x82,
    LM_WS_SUBSCRIBED = 0x83,
    LM_WS_SYNCED = 0x84,
    LM_WS_RESULT = 0x85,
    LM_WS_ACK = 0x86,
    LM_WS_BYE = 0x8E,
    LM_WS_ERROR = 0x8F,
};

/* Flags of CHUNK and VOXELS frames. */
#define LM_WS_FLAG_DELTA 0x01     /* a newer version of a chunk already sent */

/* Flags of QUERY. */
#define LM_WS_QUERY_LINEARIZABLE 0x01 /* a replicated server fences before reading */

/* Flags of WELCOME. */
#define LM_WS_WELCOME_WRITE 0x01  /* this connection may insert */
#define LM_WS_WELCOME_READ_TOKEN 0x02 /* the server requires the token for reads */

/* Error codes carried by ERROR frames. */
#define LM_WS_ERROR_TABLE(X)                                          \
    X(LM_WS_EMALFORMED, 1, "malformed frame")                         \
    X(LM_WS_EVERSION, 2, "unsupported protocol version")              \
    X(LM_WS_ETOOLARGE, 3, "frame too large")                          \
    X(LM_WS_EHELLO, 4, "hello expected first")                        \
    X(LM_WS_EUNAUTHORIZED, 5, "token missing or wrong")               \
    X(LM_WS_ERATE, 6, "rate limit exceeded")                          \
    X(LM_WS_ENOFIELD, 7, "no such field")                             \
    X(LM_WS_EREQUEST, 8, "request failed")                            \
    X(LM_WS_ETYPE, 9, "unknown frame type")                           \
    X(LM_WS_ELIMIT, 10, "too many subscriptions")                     \
    X(LM_WS_ENOSUB, 11, "no such subscription")                       \
    X(LM_WS_EINTERNAL, 12, "internal error")                          \
    X(LM_WS_EUNAVAILABLE, 13, "not available in this build")

enum lm_ws_error {
#define LM__WS_ENUM(name, value, msg) name = value,
    LM_WS_ERROR_TABLE(LM__WS_ENUM)
#undef LM__WS_ENUM
};
const char *lm_ws_strerror(int code);

/* Sample column bits of SUBSCRIBE and CHUNK frames. */
#define LM_WS_COL_POS 0x01        /* x, y, z f32 */
#define LM_WS_COL_DIR 0x02        /* octahedral direction 2 x u16 */
#define LM_WS_COL_RGB 0x04        /* r, g, b u8 */
#define LM_WS_COL_INTENSITY 0x08  /* f32 */
#define LM_WS_COL_T 0x10          /* i64 microseconds */
#define LM_WS_COL_USER(i) (0x100u << (i)) /* user column i (i < 24) */
#define LM_WS_COL_DEFAULT (LM_WS_COL_POS | LM_WS_COL_DIR | LM_WS_COL_RGB | LM_WS_COL_INTENSITY)

/* LOD requests of SUBSCRIBE. */
#define LM_WS_LOD_AUTO 255        /* samples if they fit the point budget, else voxels */
#define LM_WS_LOD_SAMPLES 254     /* always samples */
#define LM_WS_LOD_MAX_LEVEL 15    /* 0..15: voxels at that level */

/* Region kinds of SUBSCRIBE. */
enum lm_ws_region { LM_WS_REGION_ALL = 0, LM_WS_REGION_BOX = 1, LM_WS_REGION_SPHERE = 2,
                    LM_WS_REGION_CAMERA = 3 };

/* A decoded client frame. Pointers point into the decoded bytes. */
struct lm_ws_msg {
    uint8_t type, flags;
    uint32_t id;
    union {
        struct { uint16_t version; const char *token; size_t token_len; } hello;
        struct {
            char field[LM_NAME_MAX + 1];
            struct lm_region region;
            uint8_t lod;
            uint32_t budget;     /* points; 0 = no limit */
            uint32_t columns;    /* LM_WS_COL_* */
        } subscribe;
        struct { const char *json; size_t len; } query;
        struct { char field[LM_NAME_MAX + 1]; const char *json; size_t len; } insert;
    } u;
};

/* Decodes one client frame. Returns 0, or an LM_WS_E* code (> 0) with `why` filled. */
int lm_ws_decode(const uint8_t *p, size_t n, struct lm_ws_msg *out, char *why, size_t why_len);

/* --- encoders: each appends one whole frame to b (check b->oom afterwards) */
void lm_ws_put_header(struct lm_net_buf *b, uint8_t type, uint8_t flags, uint32_t id);
void lm_ws_encode_hello(struct lm_net_buf *b, uint16_t version, const char *token);
/* camera: eye[3], target[3], up[3], fov_y_deg, aspect, near, far (13 floats). */
void lm_ws_encode_subscribe(struct lm_net_buf *b, uint32_t id, const char *field,
                            enum lm_ws_region kind, const float *params, uint8_t lod,
                            uint32_t budget, uint32_t columns);
void lm_ws_encode_welcome(struct lm_net_buf *b, uint16_t flags, uint32_t max_frame,
                          uint64_t lsn);
void lm_ws_encode_error(struct lm_net_buf *b, uint32_t id, int code, int lm_code,
                        const char *text);
void lm_ws_encode_text(struct lm_net_buf *b, uint8_t type, uint32_t id, const char *text,
                       size_t n);
void lm_ws_encode_ack(struct lm_net_buf *b, uint32_t id, uint64_t lsn, uint32_t n);
void lm_ws_encode_bye(struct lm_net_buf *b, uint16_t close_code, const char *text);

struct lm_ws_subscribed {
    uint8_t mode;            /* 0 samples, 1 voxels */
    uint8_t level;           /* voxel level when mode is 1 */
    uint32_t chunks;         /* chunks intersecting the region */
    uint64_t samples;        /* samples in those chunks */
    uint64_t items;          /* points the client should expect (samples or voxels, estimate) */
    uint64_t lsn;
    float voxel_size;
    uint32_t chunk_edge;
    float bounds_min[3], bounds_max[3]; /* the field's */
};
void lm_ws_encode_subscribed(struct lm_net_buf *b, uint32_t id, const struct lm_ws_subscribed *s);
void lm_ws_encode_synced(struct lm_net_buf *b, uint32_t id, uint32_t chunks, uint64_t items,
                         uint64_t lsn);

/* Raw bytes per sample for a column mask (user column sizes from opts). */
size_t lm_ws_sample_bytes(uint32_t columns, const struct lm_field_opts *opts);
/* Column mask restricted to what the field has. */
uint32_t lm_ws_columns_valid(uint32_t columns, const struct lm_field_opts *opts);

/* Appends a CHUNK frame with samples [first, first + n) of the chunk. `scratch` holds
 * the raw columns before compression (reused between calls). */
void lm_ws_encode_chunk(struct lm_net_buf *b, struct lm_net_buf *scratch, uint32_t sub_id,
                        uint8_t flags, const struct lm_chunk_view *c, size_t first, size_t n,
                        uint32_t columns, const struct lm_field_opts *opts);

/* Appends a VOXELS frame with v[0..n) (of `total` in the chunk, starting at `first`). */
void lm_ws_encode_voxels(struct lm_net_buf *b, struct lm_net_buf *scratch, uint32_t sub_id,
                         uint8_t flags, const int32_t chunk[3], uint64_t lsn, uint32_t level,
                         float cell_size, const struct lm_voxel *v, size_t first, size_t n,
                         size_t total);

/* ---------------------------------------------------------------- server frames */

/* One part of a CHUNK frame: the chunk's header and its column bytes, still compressed.
 * `data` points into the decoded frame. */
struct lm_ws_chunk_part {
    int32_t coord[3];
    uint64_t lsn;
    uint32_t total;          /* samples in the chunk, all parts; 0 = the chunk is gone */
    uint32_t first, n;       /* this part holds samples [first, first + n) */
    uint32_t columns;        /* LM_WS_COL_* present */
    float bounds_min[3], bounds_max[3];
    uint32_t raw_len, comp_len; /* comp_len 0: data holds raw_len raw bytes */
    const uint8_t *data;
};

/* A decoded server frame. Pointers point into the decoded bytes. VOXELS frames are not
 * decoded (LM_WS_ETYPE): no client of this library asks for them. */
struct lm_ws_reply {
    uint8_t type, flags;
    uint32_t id;
    union {
        struct { uint16_t version, flags; uint32_t max_frame; uint64_t lsn; } welcome;
        struct lm_ws_subscribed subscribed;
        struct lm_ws_chunk_part chunk;
        struct { uint32_t chunks; uint64_t items, lsn; } synced;
        struct { uint64_t lsn; uint32_t n; } ack;
        struct { uint16_t code; int32_t lm_code; const char *text; size_t len; } error;
        struct { uint16_t close_code; const char *text; size_t len; } bye;
        struct { const char *json; size_t len; } result;
    } u;
};

/* Decodes one server frame (the header, not a chunk's columns). Returns 0, or an
 * LM_WS_E* code (> 0) with `why` filled: LM_WS_EMALFORMED when a length disagrees with
 * what the frame says, LM_WS_ETYPE for a type it does not know. */
int lm_ws_decode_reply(const uint8_t *p, size_t n, struct lm_ws_reply *out, char *why,
                       size_t why_len);

/* The columns of a chunk part, n values each; absent ones are NULL. */
struct lm_ws_columns {
    const int64_t *t;
    const float *x, *y, *z, *intensity;
    const uint16_t *dir_oct;  /* 2 per sample */
    const uint8_t *r, *g, *b;
    const void *user[24];     /* user column i when its bit is set */
};

/* Decompresses (or copies) a chunk part's columns into `scratch` (reused between calls)
 * and points `out` at them; they stay valid until scratch changes. opts gives the sizes
 * of user columns (it may be NULL when the part has none). Returns 0, LM_WS_EMALFORMED
 * (`why` says what: lengths that disagree, a block that does not decompress, user
 * columns without opts) or LM_WS_EINTERNAL when scratch cannot grow. */
int lm_ws_chunk_columns(const struct lm_ws_chunk_part *c, const struct lm_field_opts *opts,
                        struct lm_net_buf *scratch, struct lm_ws_columns *out, char *why,
                        size_t why_len);

#endif
