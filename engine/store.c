/* store.c - chunk blocks (per-column transforms + LZ4), segment files, the manifest. */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <lz4.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "bytes.h"
#include "crc32c.h"
#include "error.h"
#include "octree.h"

#define SEG_MAGIC "LMCHUNKS"
#define MAN_MAGIC "LMMANIFS"
#define BLOCK_MAGIC 0x4b434d4cu /* "LMCK" */
#define SEG_HEADER 32u

/* Column codecs. Transforms make LZ4's job easy: XOR with the previous value turns the
 * shared high bits of neighbouring Morton-ordered floats into zeros; delta does the
 * same for times; the byte shuffle groups byte k of every value together. */
enum codec { CODEC_RAW = 0, CODEC_LZ4 = 1, CODEC_SHUF = 2, CODEC_XOR_SHUF = 3,
             CODEC_DELTA_SHUF = 4 };

/* ---------------------------------------------------------------- growable buffer */

struct buf {
    uint8_t *p;
    size_t n, cap;
};

static int buf_reserve(struct buf *b, size_t extra)
{
    if (b->n + extra <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap * 2 : 4096;
    while (cap < b->n + extra)
        cap *= 2;
    uint8_t *p = lm_realloc(b->p, cap);
    if (!p)
        return -ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

static int buf_put(struct buf *b, const void *p, size_t n)
{
    if (buf_reserve(b, n))
        return -ENOMEM;
    memcpy(b->p + b->n, p, n);
    b->n += n;
    return 0;
}

/* ---------------------------------------------------------------- transforms */

static void forward(enum codec c, const uint8_t *in, uint8_t *out, size_t n, size_t size)
{
    size_t count = n / size;
    const uint8_t *src = in;
    uint8_t *tmp = NULL;
    if (c == CODEC_XOR_SHUF || c == CODEC_DELTA_SHUF) {
        tmp = out + n; /* caller gives 2n bytes of room */
        if (size == 4) {
            uint32_t prev = 0;
            for (size_t i = 0; i < count; i++) {
                uint32_t v;
                memcpy(&v, in + 4 * i, 4);
                uint32_t t = c == CODEC_XOR_SHUF ? v ^ prev : v - prev;
                memcpy(tmp + 4 * i, &t, 4);
                prev = v;
            }
        } else {
            uint64_t prev = 0;
            for (size_t i = 0; i < count; i++) {
                uint64_t v;
                memcpy(&v, in + 8 * i, 8);
                uint64_t t = c == CODEC_XOR_SHUF ? v ^ prev : v - prev;
                memcpy(tmp + 8 * i, &t, 8);
                prev = v;
            }
        }
        src = tmp;
    }
    /* one output stream per byte position, each written in order; one pass over the
     * input, a value at a time (the mirror of inverse()) */
    if (size == 4) {
        uint8_t *o0 = out, *o1 = out + count, *o2 = out + 2 * count, *o3 = out + 3 * count;
        for (size_t i = 0; i < count; i++) {
            uint32_t v;
            memcpy(&v, src + 4 * i, 4);
            o0[i] = (uint8_t)v;
            o1[i] = (uint8_t)(v >> 8);
            o2[i] = (uint8_t)(v >> 16);
            o3[i] = (uint8_t)(v >> 24);
        }
    } else if (size == 8) {
        for (size_t i = 0; i < count; i++) {
            uint64_t v;
            memcpy(&v, src + 8 * i, 8);
            for (size_t k = 0; k < 8; k++)
                out[k * count + i] = (uint8_t)(v >> 8 * k);
        }
    } else {
        for (size_t k = 0; k < size; k++) {
            uint8_t *o = out + k * count;
            for (size_t i = 0; i < count; i++)
                o[i] = src[i * size + k];
        }
    }
}

static void inverse(enum codec c, const uint8_t *in, uint8_t *out, size_t n, size_t size)
{
    size_t count = n / size;
    /* gather the byte streams back, writing the output in order */
    if (size == 4) {
        const uint8_t *b0 = in, *b1 = in + count, *b2 = in + 2 * count, *b3 = in + 3 * count;
        for (size_t i = 0; i < count; i++) {
            uint32_t v = (uint32_t)b0[i] | (uint32_t)b1[i] << 8 | (uint32_t)b2[i] << 16 |
                         (uint32_t)b3[i] << 24;
            memcpy(out + 4 * i, &v, 4);
        }
    } else {
        for (size_t i = 0; i < count; i++)
            for (size_t k = 0; k < size; k++)
                out[i * size + k] = in[k * count + i];
    }
    if (c == CODEC_XOR_SHUF || c == CODEC_DELTA_SHUF) {
        if (size == 4) {
            uint32_t prev = 0;
            for (size_t i = 0; i < count; i++) {
                uint32_t t;
                memcpy(&t, out + 4 * i, 4);
                uint32_t v = c == CODEC_XOR_SHUF ? t ^ prev : t + prev;
                memcpy(out + 4 * i, &v, 4);
                prev = v;
            }
        } else {
            uint64_t prev = 0;
            for (size_t i = 0; i < count; i++) {
                uint64_t t;
                memcpy(&t, out + 8 * i, 8);
                uint64_t v = c == CODEC_XOR_SHUF ? t ^ prev : t + prev;
                memcpy(out + 8 * i, &v, 8);
                prev = v;
            }
        }
    }
}

/* Codec for storage column k (lm__chunk_columns order). */
static enum codec codec_for(uint32_t k, size_t size)
{
    if (size == 1)
        return CODEC_LZ4;
    if (k <= 2)
        return CODEC_XOR_SHUF; /* x, y, z */
    if (k == 8)
        return CODEC_DELTA_SHUF; /* t */
    return CODEC_SHUF;
}

/* ---------------------------------------------------------------- blocks */

/* Chunk block:
 * | offset | size | field                                                    |
 * | 0      | 4    | magic "LMCK"                                             |
 * | 4      | 4    | block length in bytes, trailer included, u32              |
 * | 8      | 12   | chunk coordinates x, y, z, i32                           |
 * | 20     | 4    | rows n, u32                                              |
 * | 24     | 8    | lsn of the chunk's last change, u64                      |
 * | 32     | 4    | column count C, u32                                      |
 * | 36     | ...  | C columns: u8 id, u8 codec, u16 element size, u32 stored |
 * |        |      | bytes, then the stored bytes (raw length = n x size)     |
 * | L-4    | 4    | CRC-32C of bytes [0, L-4)                                |
 * Column ids follow lm__chunk_columns: 0 x, 1 y, 2 z, 3 dir, 4 r, 5 g, 6 b,
 * 7 intensity, 8 t, 9 + u user column u. */
static int block_encode(struct lm_chunk *c, const struct lm_schema *s, struct buf *out)
{
    struct lm__column_ref cols[LM__MAX_COLUMNS];
    uint32_t nc = lm__chunk_columns(c, s, cols);
    size_t start = out->n;
    uint32_t zero = 0, magic = BLOCK_MAGIC;
    int rc = buf_put(out, &magic, 4);
    rc = rc ? rc : buf_put(out, &zero, 4);
    rc = rc ? rc : buf_put(out, c->coord, 12);
    rc = rc ? rc : buf_put(out, &c->n, 4);
    rc = rc ? rc : buf_put(out, &c->lsn, 8);
    rc = rc ? rc : buf_put(out, &nc, 4);
    if (rc)
        return rc;
    size_t max_raw = (size_t)c->n * 8;
    uint8_t *work = lm_alloc(max_raw * 2 + 16);
    if (!work)
        return -ENOMEM;
    for (uint32_t k = 0; k < nc && !rc; k++) {
        size_t size = cols[k].size, raw = (size_t)c->n * size;
        enum codec codec = codec_for(k, size);
        const uint8_t *src = *cols[k].ptr;
        if (codec != CODEC_LZ4) {
            forward(codec, src, work, raw, size);
            src = work;
        }
        int bound = LZ4_compressBound((int)raw);
        if ((rc = buf_reserve(out, 8 + (size_t)bound + raw)))
            break;
        uint8_t *hdr = out->p + out->n;
        int got = raw ? LZ4_compress_default((const char *)src, (char *)hdr + 8, (int)raw,
                                             bound)
                      : 0;
        uint32_t stored;
        if (got <= 0 || (size_t)got >= raw) { /* incompressible: keep it raw */
            codec = CODEC_RAW;
            memcpy(hdr + 8, *cols[k].ptr, raw);
            stored = (uint32_t)raw;
        } else {
            stored = (uint32_t)got;
        }
        uint8_t id = (uint8_t)k, cd = (uint8_t)codec;
        uint16_t sz = (uint16_t)size;
        memcpy(hdr, &id, 1);
        memcpy(hdr + 1, &cd, 1);
        memcpy(hdr + 2, &sz, 2);
        memcpy(hdr + 4, &stored, 4);
        out->n += 8 + stored;
    }
    lm_free(work);
    if (rc)
        return rc;
    uint32_t len = (uint32_t)(out->n - start + 4);
    memcpy(out->p + start + 4, &len, 4);
    uint32_t crc = lm_crc32c(0, out->p + start, out->n - start);
    return buf_put(out, &crc, 4);
}

static int block_decode(const uint8_t *p, size_t n, const struct lm_schema *s,
                        const char *file, uint64_t off, struct lm_chunk **out,
                        struct lm_error *err)
{
#define BAD(what) lm__fail_at(err, LM_ECORRUPT, 0, 0, (int64_t)off, \
                              "%s: chunk block at byte %" PRIu64 ": %s", file, off, what)
    uint32_t magic, len, rows, nc;
    if (n < 40)
        return BAD("truncated");
    memcpy(&magic, p, 4);
    memcpy(&len, p + 4, 4);
    if (magic != BLOCK_MAGIC)
        return BAD("bad magic");
    if (len != n)
        return BAD("length does not match the manifest");
    uint32_t crc;
    memcpy(&crc, p + n - 4, 4);
    if (crc != lm_crc32c(0, p, n - 4))
        return BAD("checksum mismatch");
    int32_t coord[3];
    uint64_t lsn;
    memcpy(coord, p + 8, 12);
    memcpy(&rows, p + 20, 4);
    memcpy(&lsn, p + 24, 8);
    memcpy(&nc, p + 32, 4);
    struct lm_chunk *c = lm__chunk_new(coord, s);
    if (!c)
        return lm__fail(err, -ENOMEM, "out of memory loading %s", file);
    struct lm__column_ref cols[LM__MAX_COLUMNS];
    uint32_t want = lm__chunk_columns(c, s, cols);
    int rc = 0;
    uint8_t *work = NULL;
    if (nc != want) {
        rc = BAD("column count does not match the field schema");
        goto fail;
    }
    c->n = c->cap = rows;
    work = lm_alloc((size_t)rows * 8 + 16);
    if (!work) {
        rc = -ENOMEM;
        goto fail;
    }
    size_t at = 36;
    for (uint32_t k = 0; k < nc; k++) {
        if (at + 8 > n - 4) {
            rc = BAD("column header runs past the block");
            goto fail;
        }
        uint8_t id = p[at], codec = p[at + 1];
        uint16_t size;
        uint32_t stored;
        memcpy(&size, p + at + 2, 2);
        memcpy(&stored, p + at + 4, 4);
        at += 8;
        size_t raw = (size_t)rows * size;
        if (id != k || size != cols[k].size || codec > CODEC_DELTA_SHUF ||
            stored > n - 4 - at) {
            rc = BAD("column header does not fit the schema");
            goto fail;
        }
        void *dst = lm_alloc(raw ? raw : 1);
        if (!dst) {
            rc = -ENOMEM;
            goto fail;
        }
        *cols[k].ptr = dst;
        if (codec == CODEC_RAW) {
            if (stored != raw) {
                rc = BAD("raw column has the wrong length");
                goto fail;
            }
            memcpy(dst, p + at, raw);
        } else {
            uint8_t *to = codec == CODEC_LZ4 ? dst : work;
            int got = LZ4_decompress_safe((const char *)p + at, (char *)to, (int)stored,
                                          (int)raw);
            if (got < 0 || (size_t)got != raw) {
                rc = BAD("column does not decompress to its length");
                goto fail;
            }
            if (codec != CODEC_LZ4)
                inverse((enum codec)codec, work, dst, raw, size);
        }
        at += stored;
    }
    if (at != n - 4) {
        rc = BAD("bytes left after the last column");
        goto fail;
    }
    c->n_sorted = rows; /* invariant 3 */
    c->lsn = lsn;
    if ((rc = lm__chunk_recompute(c, s)))
        goto fail;
    lm_free(work);
    *out = c;
    return 0;
fail:
    lm_free(work);
    lm__chunk_free(c, s);
    if (rc == -ENOMEM)
        lm__fail(err, rc, "out of memory loading %s", file);
    return rc;
#undef BAD
}

/* ---------------------------------------------------------------- manifest */

static void seg_path(char *out, size_t cap, const char *dir, uint64_t seg)
{
    snprintf(out, cap, "%s/chunks-%016" PRIx64 ".lmc", dir, seg);
}

struct chunk_list {
    struct lm__onode **v;
    size_t n, cap;
};

static int list_leaf(struct lm__onode *leaf, int overlap, void *ctx)
{
    (void)overlap;
    struct chunk_list *l = ctx;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        struct lm__onode **v = lm_realloc(l->v, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = leaf;
    return 0;
}

static void put_name(struct buf *b, const char *name, int *rc)
{
    uint8_t len = (uint8_t)strnlen(name, LM_NAME_MAX);
    *rc = *rc ? *rc : buf_put(b, &len, 1);
    *rc = *rc ? *rc : buf_put(b, name, len);
}

/* Manifest:
 * | size | field                                                            |
 * | 8    | magic "LMMANIFS"                                                 |
 * | 4    | format version, u32                                              |
 * | 4    | field count F, u32                                               |
 * | 8    | checkpoint LSN, u64                                              |
 * | F x  | per field: u8 name length + name; voxel size f32; chunk edge u32; |
 * |      | user column count u32, each: u8 length + name, u8 type;         |
 * |      | field lsn u64; chunk count K u32; K x (i32 x3 coordinates,       |
 * |      | u64 segment LSN, u64 offset, u32 length)                          |
 * | 4    | CRC-32C of everything before                                     |
 */
static int manifest_encode(struct lm_field **fields, size_t n_fields, uint64_t lsn,
                           struct chunk_list *lists, struct buf *b)
{
    int rc = buf_put(b, MAN_MAGIC, 8);
    uint32_t version = LM_STORE_VERSION, nf = (uint32_t)n_fields;
    rc = rc ? rc : buf_put(b, &version, 4);
    rc = rc ? rc : buf_put(b, &nf, 4);
    rc = rc ? rc : buf_put(b, &lsn, 8);
    for (size_t i = 0; i < n_fields && !rc; i++) {
        const struct lm_field *f = fields[i];
        put_name(b, f->name, &rc);
        rc = rc ? rc : buf_put(b, &f->opts.voxel_size, 4);
        rc = rc ? rc : buf_put(b, &f->opts.chunk_edge, 4);
        rc = rc ? rc : buf_put(b, &f->opts.n_user_columns, 4);
        for (uint32_t u = 0; u < f->opts.n_user_columns && !rc; u++) {
            put_name(b, f->opts.user_columns[u].name, &rc);
            uint8_t t = (uint8_t)f->opts.user_columns[u].type;
            rc = rc ? rc : buf_put(b, &t, 1);
        }
        rc = rc ? rc : buf_put(b, &f->lsn, 8);
        uint32_t k = (uint32_t)lists[i].n;
        rc = rc ? rc : buf_put(b, &k, 4);
        for (size_t j = 0; j < lists[i].n && !rc; j++) {
            const struct lm_chunk *c = lists[i].v[j]->chunk;
            rc = buf_put(b, c->coord, 12);
            rc = rc ? rc : buf_put(b, &c->disk_seg, 8);
            rc = rc ? rc : buf_put(b, &c->disk_off, 8);
            rc = rc ? rc : buf_put(b, &c->disk_len, 4);
        }
    }
    uint32_t crc = lm_crc32c(0, b->p, b->n);
    return rc ? rc : buf_put(b, &crc, 4);
}

/* ---------------------------------------------------------------- checkpoint */

int lm__store_checkpoint(const struct lm_io *io, const char *dir, struct lm_field **fields,
                         size_t n_fields, uint64_t lsn, uint64_t *prev_lsn,
                         struct lm_error *err)
{
    char path[4096];
    struct buf seg = {0}, man = {0};
    struct chunk_list *lists = lm_calloc(n_fields ? n_fields : 1, sizeof *lists);
    uint64_t *old_loc = NULL; /* to roll chunk locations back on failure */
    size_t n_old = 0;
    int fd = -1, rc = lists ? 0 : -ENOMEM;
    for (size_t i = 0; i < n_fields && !rc; i++)
        rc = lm__field_walk(fields[i], NULL, list_leaf, &lists[i]);
    size_t total = 0;
    for (size_t i = 0; i < n_fields; i++)
        total += lists ? lists[i].n : 0;
    if (!rc && !(old_loc = lm_alloc((total ? total : 1) * 3 * sizeof *old_loc)))
        rc = -ENOMEM;
    if (rc)
        goto out;
    /* Segment header, then a block per chunk changed since the last checkpoint. */
    uint8_t head[SEG_HEADER] = {0};
    memcpy(head, SEG_MAGIC, 8);
    uint32_t version = LM_STORE_VERSION;
    memcpy(head + 8, &version, 4);
    memcpy(head + 16, &lsn, 8);
    uint32_t hcrc = lm_crc32c(0, head, 24);
    memcpy(head + 24, &hcrc, 4);
    if ((rc = buf_put(&seg, head, SEG_HEADER)))
        goto out;
    for (size_t i = 0; i < n_fields; i++) {
        for (size_t j = 0; j < lists[i].n; j++) {
            struct lm_chunk *c = lists[i].v[j]->chunk;
            old_loc[3 * n_old] = c->disk_seg;
            old_loc[3 * n_old + 1] = c->disk_off;
            old_loc[3 * n_old + 2] = c->disk_len;
            n_old++;
            if (c->disk_seg && c->lsn <= *prev_lsn)
                continue; /* unchanged: keeps its block */
            /* stored rows are sorted (invariant 3); a failed sort keeps the tail and
             * then the block cannot be written */
            if ((rc = lm__chunk_compact(c, &fields[i]->schema, true)))
                goto rollback;
            size_t at = seg.n;
            if ((rc = block_encode(c, &fields[i]->schema, &seg)))
                goto rollback;
            c->disk_seg = lsn;
            c->disk_off = at;
            c->disk_len = (uint32_t)(seg.n - at);
        }
    }
    seg_path(path, sizeof path, dir, lsn);
    if ((rc = io->open(io->ctx, path, O_WRONLY | O_CREAT | O_TRUNC, 0644, &fd)) ||
        (rc = io->pwrite(io->ctx, fd, seg.p, seg.n, 0)) || (rc = io->fdatasync(io->ctx, fd))) {
        lm__fail(err, rc, "writing checkpoint segment %s: %s", path, lm_strerror(rc));
        goto rollback;
    }
    if ((rc = io->sync_dir(io->ctx, dir))) {
        lm__fail(err, rc, "syncing directory %s: %s", dir, lm_strerror(rc));
        goto rollback;
    }
    if ((rc = manifest_encode(fields, n_fields, lsn, lists, &man)))
        goto rollback;
    snprintf(path, sizeof path, "%s/MANIFEST", dir);
    if ((rc = lm_io_write_file_atomic(io, path, man.p, man.n, err)))
        goto rollback;
    *prev_lsn = lsn;
    goto out;
rollback:
    /* the previous manifest is still the truth: point chunks back at their blocks */
    n_old = 0;
    for (size_t i = 0; i < n_fields; i++)
        for (size_t j = 0; j < lists[i].n; j++, n_old++) {
            struct lm_chunk *c = lists[i].v[j]->chunk;
            c->disk_seg = old_loc[3 * n_old];
            c->disk_off = old_loc[3 * n_old + 1];
            c->disk_len = (uint32_t)old_loc[3 * n_old + 2];
        }
    if (rc == -ENOMEM)
        lm__fail(err, rc, "out of memory writing a checkpoint");
out:
    if (fd >= 0)
        io->close(io->ctx, fd);
    for (size_t i = 0; lists && i < n_fields; i++)
        lm_free(lists[i].v);
    lm_free(lists);
    lm_free(old_loc);
    lm_free(seg.p);
    lm_free(man.p);
    return rc;
}

uint64_t lm__store_bytes(struct lm_field **fields, size_t n_fields)
{
    uint64_t total = 0;
    for (size_t i = 0; i < n_fields; i++) {
        struct chunk_list l = {0};
        if (lm__field_walk(fields[i], NULL, list_leaf, &l) == 0)
            for (size_t j = 0; j < l.n; j++)
                total += l.v[j]->chunk->disk_len;
        lm_free(l.v);
    }
    return total;
}

/* ---------------------------------------------------------------- garbage */

struct collect_ctx {
    const struct lm_io *io;
    const char *dir;
    uint64_t *live;
    size_t n_live;
    int rc;
};

static int collect_entry(void *arg, const char *name)
{
    struct collect_ctx *c = arg;
    uint64_t seg;
    char tail[8];
    if (sscanf(name, "chunks-%16" SCNx64 ".%3s", &seg, tail) != 2 || strcmp(tail, "lmc"))
        return 0;
    for (size_t i = 0; i < c->n_live; i++)
        if (c->live[i] == seg)
            return 0;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", c->dir, name);
    int rc = c->io->unlink(c->io->ctx, path);
    if (rc && !c->rc)
        c->rc = rc;
    return 0;
}

static int live_leaf(struct lm__onode *leaf, int overlap, void *ctx)
{
    (void)overlap;
    struct collect_ctx *c = ctx;
    uint64_t seg = leaf->chunk->disk_seg;
    for (size_t i = 0; i < c->n_live; i++)
        if (c->live[i] == seg)
            return 0;
    uint64_t *v = lm_realloc(c->live, (c->n_live + 1) * sizeof *v);
    if (!v)
        return -ENOMEM;
    c->live = v;
    c->live[c->n_live++] = seg;
    return 0;
}

int lm__store_collect(const struct lm_io *io, const char *dir, struct lm_field **fields,
                      size_t n_fields, struct lm_error *err)
{
    struct collect_ctx c = {io, dir, NULL, 0, 0};
    int rc = 0;
    for (size_t i = 0; i < n_fields && !rc; i++)
        rc = lm__field_walk(fields[i], NULL, live_leaf, &c);
    if (!rc)
        rc = io->list_dir(io->ctx, dir, collect_entry, &c);
    lm_free(c.live);
    rc = rc ? rc : c.rc;
    if (rc)
        lm__fail(err, rc, "removing old checkpoint segments in %s: %s", dir, lm_strerror(rc));
    return rc;
}

/* ---------------------------------------------------------------- load */


/* Open segments while loading: each file is opened and its header checked once, then
 * every block is read with one pread into a reused buffer. (Reading whole segments
 * would re-read them as chunks of different checkpoints alternate.) */
struct seg_cache {
    uint64_t *seg;
    int *fd;
    size_t n, cap;
    uint8_t *buf;
    size_t buf_cap;
};

static void seg_cache_free(const struct lm_io *io, struct seg_cache *c)
{
    for (size_t i = 0; i < c->n; i++)
        io->close(io->ctx, c->fd[i]);
    lm_free(c->seg);
    lm_free(c->fd);
    lm_free(c->buf);
}

static int seg_fd(const struct lm_io *io, const char *dir, uint64_t seg,
                  struct seg_cache *cache, int *fd_out, struct lm_error *err)
{
    for (size_t i = 0; i < cache->n; i++)
        if (cache->seg[i] == seg) {
            *fd_out = cache->fd[i];
            return 0;
        }
    if (cache->n == cache->cap) {
        size_t cap = cache->cap ? cache->cap * 2 : 8;
        uint64_t *sv = lm_realloc(cache->seg, cap * sizeof *sv);
        if (!sv)
            return -ENOMEM;
        cache->seg = sv;
        int *fv = lm_realloc(cache->fd, cap * sizeof *fv);
        if (!fv)
            return -ENOMEM;
        cache->fd = fv;
        cache->cap = cap;
    }
    char path[4096];
    seg_path(path, sizeof path, dir, seg);
    int fd = -1, rc = io->open(io->ctx, path, O_RDONLY, 0, &fd);
    if (rc)
        return lm__fail(err, rc, "%s: cannot open: %s", path, lm_strerror(rc));
    uint8_t p[SEG_HEADER];
    size_t got = 0;
    rc = io->pread(io->ctx, fd, p, SEG_HEADER, 0, &got);
    uint32_t version, crc;
    memcpy(&version, p + 8, 4);
    memcpy(&crc, p + 24, 4);
    if (rc)
        rc = lm__fail(err, rc, "%s: cannot read: %s", path, lm_strerror(rc));
    else if (got < SEG_HEADER || memcmp(p, SEG_MAGIC, 8))
        rc = lm__fail_at(err, LM_ECORRUPT, 0, 0, 0, "%s: not a chunk segment (bad magic)",
                         path);
    else if (version > LM_STORE_VERSION)
        rc = lm__fail(err, LM_EVERSION, "%s: format version %u is newer than %u", path,
                      version, LM_STORE_VERSION);
    else if (crc != lm_crc32c(0, p, 24))
        rc = lm__fail_at(err, LM_ECORRUPT, 0, 0, 0, "%s: header checksum mismatch", path);
    if (rc) {
        io->close(io->ctx, fd);
        return rc;
    }
    cache->seg[cache->n] = seg;
    cache->fd[cache->n++] = fd;
    *fd_out = fd;
    return 0;
}

/* Reads block [off, off + len) of segment seg into cache->buf. */
static int read_block(const struct lm_io *io, const char *dir, uint64_t seg, uint64_t off,
                      uint32_t len, struct seg_cache *cache, struct lm_error *err)
{
    int fd = -1, rc = seg_fd(io, dir, seg, cache, &fd, err);
    if (rc)
        return rc;
    if (len > cache->buf_cap) {
        uint8_t *b = lm_realloc(cache->buf, len);
        if (!b)
            return -ENOMEM;
        cache->buf = b;
        cache->buf_cap = len;
    }
    size_t got = 0;
    char path[4096];
    seg_path(path, sizeof path, dir, seg);
    if ((rc = io->pread(io->ctx, fd, cache->buf, len, off, &got)))
        return lm__fail(err, rc, "%s: cannot read: %s", path, lm_strerror(rc));
    if (got != len)
        return lm__fail_at(err, LM_ECORRUPT, 0, 0, (int64_t)off,
                           "%s: chunk block at byte %" PRIu64 " runs past the file end", path,
                           off);
    return 0;
}

/* ---------------------------------------------------------------- parallel decode */

struct block_ref {
    int32_t coord[3];
    uint64_t seg, off;
    uint32_t len;
};

struct decode_job {
    const struct lm_io *io;
    const char *dir;
    const struct lm_schema *s;
    const struct block_ref *refs;
    struct lm_chunk **out;
    size_t begin, end;
    int rc;
    struct lm_error err;
};

static void *decode_range(void *arg)
{
    struct decode_job *j = arg;
    struct seg_cache cache = {0};
    char path[4096];
    for (size_t i = j->begin; i < j->end && !j->rc; i++) {
        const struct block_ref *b = &j->refs[i];
        if ((j->rc = read_block(j->io, j->dir, b->seg, b->off, b->len, &cache, &j->err)))
            break;
        seg_path(path, sizeof path, j->dir, b->seg);
        j->rc = block_decode(cache.buf, b->len, j->s, path, b->off, &j->out[i], &j->err);
    }
    seg_cache_free(j->io, &cache);
    return NULL;
}

/* Reads and decodes blocks refs[0..k) into out[], one thread per core (chunks are
 * independent; voxel rebuilding dominates the load). The first error wins. */
static int decode_all(const struct lm_io *io, const char *dir, const struct lm_schema *s,
                      const struct block_ref *refs, size_t k, struct lm_chunk **out,
                      struct lm_error *err)
{
    enum { MAX_THREADS = 8 };
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    size_t t = cores < 1 ? 1 : (size_t)cores;
    if (t > MAX_THREADS)
        t = MAX_THREADS;
    if (t > k / 4 + 1)
        t = k / 4 + 1; /* small databases: not worth a thread */
    struct decode_job jobs[MAX_THREADS];
    pthread_t th[MAX_THREADS];
    bool started[MAX_THREADS] = {false};
    for (size_t i = 0; i < t; i++) {
        jobs[i] = (struct decode_job){io, dir, s, refs, out, k * i / t, k * (i + 1) / t, 0, {0}};
        started[i] = i > 0 && pthread_create(&th[i], NULL, decode_range, &jobs[i]) == 0;
        if (i > 0 && !started[i])
            decode_range(&jobs[i]); /* no thread: do it here */
    }
    decode_range(&jobs[0]);
    int rc = 0;
    for (size_t i = 0; i < t; i++) {
        if (started[i])
            pthread_join(th[i], NULL);
        if (jobs[i].rc && !rc) {
            rc = jobs[i].rc;
            if (err)
                *err = jobs[i].err;
        }
    }
    return rc;
}

int lm__store_manifest_lsn(const struct lm_io *io, const char *dir, uint64_t *lsn)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/MANIFEST", dir);
    int fd = -1, rc = io->open(io->ctx, path, O_RDONLY, 0, &fd);
    if (rc == -ENOENT) {
        *lsn = 0;
        return 0;
    }
    if (rc)
        return rc;
    uint8_t head[24];
    size_t got = 0;
    rc = io->pread(io->ctx, fd, head, sizeof head, 0, &got);
    io->close(io->ctx, fd);
    if (rc)
        return rc;
    if (got < sizeof head || memcmp(head, MAN_MAGIC, 8))
        return LM_ECORRUPT;
    memcpy(lsn, head + 16, 8);
    return 0;
}

int lm__store_load(const struct lm_io *io, const char *dir, struct lm_field ***fields_out,
                   size_t *n_out, uint64_t *ckpt_lsn, struct lm_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/MANIFEST", dir);
    void *data = NULL;
    size_t n = 0;
    int rc = lm_io_read_file(io, path, &data, &n, err);
    if (rc == -ENOENT) {
        *fields_out = NULL;
        *n_out = 0;
        *ckpt_lsn = 0;
        return 0;
    }
    if (rc)
        return rc;
    struct lm_field **fields = NULL;
    uint32_t nf = 0, version = 0;
    size_t made = 0;
    struct lm__reader r = {data, n, 0, false};
    uint64_t lsn = 0;
    char magic[8];
    lm__read(&r, magic, 8);
    lm__read(&r, &version, 4);
    if (r.bad || memcmp(magic, MAN_MAGIC, 8)) {
        rc = lm__fail_at(err, LM_ECORRUPT, 0, 0, 0, "%s: not a manifest (bad magic)", path);
        goto fail;
    }
    if (version > LM_STORE_VERSION) {
        rc = lm__fail(err, LM_EVERSION, "%s: format version %u is newer than %u", path,
                      version, LM_STORE_VERSION);
        goto fail;
    }
    uint32_t crc;
    memcpy(&crc, (uint8_t *)data + n - 4, 4);
    if (n < 28 || crc != lm_crc32c(0, data, n - 4)) {
        rc = lm__fail_at(err, LM_ECORRUPT, 0, 0, (int64_t)n - 4, "%s: checksum mismatch",
                         path);
        goto fail;
    }
    r.n = n - 4;
    lm__read(&r, &nf, 4);
    lm__read(&r, &lsn, 8);
    if (nf > 1u << 20) {
        rc = lm__fail_at(err, LM_ECORRUPT, 0, 0, 12, "%s: implausible field count %u", path, nf);
        goto fail;
    }
    fields = lm_calloc(nf ? nf : 1, sizeof *fields);
    if (!fields) {
        rc = -ENOMEM;
        goto fail;
    }
    for (; made < nf; made++) {
        char name[LM_NAME_MAX + 1];
        struct lm_field_opts o = {0};
        lm__read_name(&r, name);
        lm__read(&r, &o.voxel_size, 4);
        lm__read(&r, &o.chunk_edge, 4);
        lm__read(&r, &o.n_user_columns, 4);
        if (o.n_user_columns > LM_MAX_USER_COLUMNS)
            r.bad = true;
        for (uint32_t u = 0; !r.bad && u < o.n_user_columns; u++) {
            uint8_t t;
            lm__read_name(&r, o.user_columns[u].name);
            lm__read(&r, &t, 1);
            o.user_columns[u].type = (enum lm_type)t;
        }
        uint64_t flsn = 0;
        uint32_t k = 0;
        lm__read(&r, &flsn, 8);
        lm__read(&r, &k, 4);
        if (r.bad) {
            rc = lm__fail_at(err, LM_ECORRUPT, 0, 0, (int64_t)r.at, "%s: truncated at byte %zu",
                             path, r.at);
            goto fail;
        }
        if ((rc = lm__field_new(name, &o, &fields[made], err)))
            goto fail;
        struct lm_field *f = fields[made];
        f->lsn = flsn;
        if (k > (r.n - r.at) / 32) {
            rc = lm__fail_at(err, LM_ECORRUPT, 0, 0, (int64_t)r.at,
                             "%s: %u chunks cannot fit in what is left", path, k);
            goto fail;
        }
        struct block_ref *refs = lm_alloc(((size_t)k + 1) * sizeof *refs);
        struct lm_chunk **loaded = lm_calloc((size_t)k + 1, sizeof *loaded);
        if (!refs || !loaded) {
            lm_free(refs);
            lm_free(loaded);
            rc = -ENOMEM;
            goto fail;
        }
        for (uint32_t j = 0; j < k; j++) {
            lm__read(&r, refs[j].coord, 12);
            lm__read(&r, &refs[j].seg, 8);
            lm__read(&r, &refs[j].off, 8);
            lm__read(&r, &refs[j].len, 4);
        }
        if (r.bad) {
            lm_free(refs);
            lm_free(loaded);
            rc = lm__fail_at(err, LM_ECORRUPT, 0, 0, (int64_t)r.at, "%s: truncated at byte %zu",
                             path, r.at);
            goto fail;
        }
        rc = decode_all(io, dir, &f->schema, refs, k, loaded, err);
        for (uint32_t j = 0; j < k && !rc; j++) {
            struct lm_chunk *c = loaded[j];
            loaded[j] = NULL;
            const int32_t *coord = refs[j].coord;
            uint64_t seg = refs[j].seg, off = refs[j].off;
            uint32_t len = refs[j].len;
            seg_path(path, sizeof path, dir, seg);
            if (memcmp(c->coord, coord, 3 * sizeof *coord)) {
                lm__chunk_free(c, &f->schema);
                rc = lm__fail_at(err, LM_ECORRUPT, 0, 0, (int64_t)off,
                                 "%s: chunk block at byte %" PRIu64 " is not the chunk the "
                                 "manifest names", path, off);
                break;
            }
            c->disk_seg = seg;
            c->disk_off = off;
            c->disk_len = len;
            struct lm__onode *leaf;
            if ((rc = lm__octree_add(&f->tree, c, &leaf))) {
                lm__chunk_free(c, &f->schema);
                snprintf(path, sizeof path, "%s/MANIFEST", dir);
                rc = rc == -EEXIST ? lm__fail(err, LM_ECORRUPT, "%s names a chunk twice", path)
                                   : rc;
                break;
            }
            f->n_samples += c->n;
        }
        for (uint32_t j = 0; j < k; j++)
            lm__chunk_free(loaded[j], &f->schema); /* those not attached (errors) */
        lm_free(refs);
        lm_free(loaded);
        snprintf(path, sizeof path, "%s/MANIFEST", dir);
        if (rc)
            goto fail;
    }
    lm_free(data);
    *fields_out = fields;
    *n_out = nf;
    *ckpt_lsn = lsn;
    return 0;
fail:
    for (size_t i = 0; fields && i <= made && i < nf; i++)
        lm__field_free(fields[i]);
    lm_free(fields);
    lm_free(data);
    if (rc == -ENOMEM)
        lm__fail(err, rc, "out of memory loading %s", dir);
    return rc;
}
