/* ws.c - lumadb.v1 WebSocket sessions: hello, subscriptions with pending chunk sets,
 * bounded send queues, deltas after writes, queries and inserts (see net.h). */
#include <errno.h>
#include <lz4.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "framecache.h"
#include "net_int.h"

/* ---------------------------------------------------------------- send queue */

/* Starts a frame buffer with LWS_PRE bytes of head room. */
static void frame_begin(struct lm_net_buf *b, size_t expect)
{
    *b = (struct lm_net_buf){0};
    if (lm_net_buf_reserve(b, LWS_PRE + expect) == 0) {
        memset(b->p, 0, LWS_PRE);
        b->len = LWS_PRE;
    }
}

/* Queues a finished frame; takes the buffer's memory in every case. */
static int enqueue(struct lm__ws_sess *w, struct lm_net_buf *b)
{
    lm_net_server *s = w->srv;
    struct lm__ws_frame *f = b->oom ? NULL : lm_alloc(sizeof *f);
    if (!f) {
        lm_net_buf_free(b);
        return -ENOMEM;
    }
    f->next = NULL;
    f->b = *b;
    *b = (struct lm_net_buf){0};
    if (w->tail)
        w->tail->next = f;
    else
        w->head = f;
    w->tail = f;
    size_t n = f->b.len - LWS_PRE;
    w->queued += n;
    s->m.send_queue_bytes += n;
    if (w->queued > s->o.send_queue && !w->rx_paused) {
        lws_rx_flow_control(w->wsi, 0);
        w->rx_paused = true;
        s->m.flow_paused++;
    }
    lws_callback_on_writable(w->wsi);
    return 0;
}

static void send_error(struct lm__ws_sess *w, uint32_t id, int code, int lm_code, const char *text)
{
    struct lm_net_buf b;
    frame_begin(&b, 32 + strlen(text));
    lm_ws_encode_error(&b, id, code, lm_code, text);
    w->srv->m.errors_sent++;
    enqueue(w, &b);
}

static void drop_queue(struct lm__ws_sess *w)
{
    while (w->head) {
        struct lm__ws_frame *f = w->head;
        w->head = f->next;
        w->srv->m.send_queue_bytes -= f->b.len - LWS_PRE;
        lm_net_buf_free(&f->b);
        lm_free(f);
    }
    w->tail = NULL;
    w->queued = 0;
}

/* ---------------------------------------------------------------- subscriptions */

static void sub_free(struct lm__ws_sub *u)
{
    if (u)
        lm_net_coordset_free(&u->pending);
    lm_free(u);
}

static struct lm__ws_sub *sub_find(struct lm__ws_sess *w, uint32_t id)
{
    struct lm__ws_sub *u = w->subs;
    while (u && u->id != id)
        u = u->next;
    return u;
}

/* Removes subscription `id`; true if it existed. */
static bool sub_remove(struct lm__ws_sess *w, uint32_t id)
{
    for (struct lm__ws_sub **pp = &w->subs; *pp; pp = &(*pp)->next) {
        if ((*pp)->id != id)
            continue;
        struct lm__ws_sub *u = *pp;
        *pp = u->next;
        if (w->rr == u)
            w->rr = u->next;
        sub_free(u);
        w->n_subs--;
        return true;
    }
    return false;
}

struct scan_ctx {
    lm_net_server *s;
    struct lm__ws_sub *u;
    bool count_only;            /* only sum what the region holds */
    bool skip_sent;             /* skip chunk versions the client already has */
    uint64_t samples, voxels;
    uint32_t chunks, added;
    int rc;
};

static int scan_cb(const struct lm_chunk_view *c, void *user)
{
    struct scan_ctx *x = user;
    if (x->count_only) {
        x->chunks++;
        x->samples += c->n;
        x->voxels += c->n_voxels;
        return 0;
    }
    if (x->skip_sent && lm_net_coordset_sent(&x->u->pending, c->coord) == c->lsn)
        return 0;
    int rc = lm_net_coordset_add(&x->u->pending, c->coord);
    if (rc < 0)
        return x->rc = rc;
    x->added += (uint32_t)rc;
    x->s->m.chunks_coalesced += rc == 0;
    x->chunks++;
    x->samples += c->n;
    x->voxels += c->n_voxels;
    return 0;
}

static uint32_t log2u(uint32_t v)
{
    uint32_t l = 0;
    while ((1u << l) < v)
        l++;
    return l;
}

static void handle_subscribe(struct lm__ws_sess *w, const struct lm_ws_msg *m)
{
    lm_net_server *s = w->srv;
    struct lm_error err = {0};
    struct lm_field_info info;
    int rc = lm_field_info(s->o.db, m->u.subscribe.field, &info, &err);
    if (rc) {
        send_error(w, m->id, LM_WS_ENOFIELD, rc, err.message);
        return;
    }
    struct lm__ws_sub *old = sub_find(w, m->id);
    if (!old && w->n_subs >= s->o.max_subs) {
        char msg[64];
        snprintf(msg, sizeof msg, "at most %u subscriptions per connection", s->o.max_subs);
        send_error(w, m->id, LM_WS_ELIMIT, LM_ELIMIT, msg);
        return;
    }
    struct lm__ws_sub *u = lm_calloc(1, sizeof *u);
    if (!u) {
        send_error(w, m->id, LM_WS_EINTERNAL, -ENOMEM, "out of memory");
        return;
    }
    u->id = m->id;
    snprintf(u->field, sizeof u->field, "%s", m->u.subscribe.field);
    u->region = m->u.subscribe.region;
    u->opts = info.opts;
    u->budget = m->u.subscribe.budget;
    u->columns = lm_ws_columns_valid(m->u.subscribe.columns, &info.opts);
    u->seen_lsn = lm_db_lsn(s->o.db);
    struct scan_ctx x = {.s = s, .u = u, .count_only = true};
    rc = lm_chunks_each(s->o.db, u->field, &u->region, 0, scan_cb, &x, &err);
    if (rc) {
        sub_free(u);
        send_error(w, m->id, LM_WS_EREQUEST, rc, err.message);
        return;
    }
    uint32_t max_level = log2u(info.opts.chunk_edge);
    uint8_t lod = m->u.subscribe.lod;
    struct lm_ws_subscribed a = {.chunks = x.chunks, .samples = x.samples, .lsn = u->seen_lsn,
                                 .voxel_size = info.opts.voxel_size,
                                 .chunk_edge = info.opts.chunk_edge};
    if (lod == LM_WS_LOD_SAMPLES || (lod == LM_WS_LOD_AUTO && (!u->budget || x.samples <= u->budget))) {
        u->mode = 0;
        a.items = x.samples;
    } else {
        uint32_t level = lod <= LM_WS_LOD_MAX_LEVEL ? lod : 0;
        if (lod == LM_WS_LOD_AUTO)
            while (level < max_level && (x.voxels >> (2 * level)) > u->budget)
                level++;
        u->mode = 1;
        u->level = (uint8_t)(level < max_level ? level : max_level);
        a.items = x.voxels >> (2 * u->level);
    }
    a.mode = u->mode;
    a.level = u->level;
    memcpy(a.bounds_min, info.bounds_min, sizeof a.bounds_min);
    memcpy(a.bounds_max, info.bounds_max, sizeof a.bounds_max);
    /* A replacement that streams the same kind of frames keeps what was sent: only
     * chunks new to the region, or changed since, go out again. */
    bool keep = old && !strcmp(old->field, u->field) && old->columns == u->columns &&
                old->mode == u->mode && old->level == u->level;
    if (keep) {
        u->pending = old->pending;
        memset(&old->pending, 0, sizeof old->pending);
        lm_net_coordset_drop_queue(&u->pending);
    }
    if (old)
        sub_remove(w, m->id);
    x = (struct scan_ctx){.s = s, .u = u, .skip_sent = keep};
    lm_chunks_each(s->o.db, u->field, &u->region, 0, scan_cb, &x, NULL);
    if (x.rc) {
        sub_free(u);
        send_error(w, m->id, LM_WS_EINTERNAL, x.rc, "out of memory");
        return;
    }
    u->synced_owed = true;
    u->next = w->subs;
    w->subs = u;
    w->n_subs++;
    struct lm_net_buf b;
    frame_begin(&b, 80);
    lm_ws_encode_subscribed(&b, u->id, &a);
    enqueue(w, &b);
    lm__net_log(s, "ws %s %s subscription %u to %s: %u chunks (%u to send), %llu samples, %s",
                w->addr, old ? "replaced" : "new", u->id, u->field, a.chunks, x.added,
                (unsigned long long)a.samples, u->mode ? "voxels" : "samples");
}

static int present_cb(const struct lm_chunk_view *c, void *user)
{
    int rc = lm_net_coordset_add(user, c->coord);
    return rc < 0 ? rc : 0;
}

/* Chunks deleted whole leave nothing for a scan by lsn to find: those the subscription
 * has sent and the field no longer has are queued, and send_chunk tells the client they
 * are gone (a dropped field has none left). */
static void queue_vanished(lm_net_server *s, struct lm__ws_sub *u)
{
    struct lm_net_coordset present = {0};
    int rc = lm_chunks_each(s->o.db, u->field, NULL, 0, present_cb, &present, NULL);
    if (rc == 0 || rc == LM_ENOFIELD)
        lm_net_coordset_queue_absent(&u->pending, &present);
    lm_net_coordset_free(&present);
}

/* Finds chunks of every subscription changed since it last looked. */
void lm__ws_scan_all(lm_net_server *s)
{
    uint64_t lsn = lm_db_lsn(s->o.db);
    s->m.delta_scans++;
    for (struct lm__ws_sess *w = s->sessions; w; w = w->next) {
        if (w->closing)
            continue;
        for (struct lm__ws_sub *u = w->subs; u; u = u->next) {
            if (lsn <= u->seen_lsn)
                continue;
            struct scan_ctx x = {.s = s, .u = u};
            lm_chunks_each(s->o.db, u->field, &u->region, u->seen_lsn, scan_cb, &x, NULL);
            queue_vanished(s, u);
            u->seen_lsn = lsn;
            u->synced_owed = true;
            lws_callback_on_writable(w->wsi);
        }
    }
}

/* ---------------------------------------------------------------- chunk frames */

struct chunk_ctx {
    struct lm__ws_sess *w;
    struct lm__ws_sub *u;
    int32_t coord[3];
    bool found;
    uint64_t lsn;
    const struct lm_net_buf *frames; /* [u32 length][frame]... of this chunk version */
};

/* Largest raw payload that still fits a frame after LZ4's worst case. */
static size_t part_capacity(const lm_net_server *s, size_t header, size_t item_bytes)
{
    size_t room = (s->o.max_frame - header - 16) / 256 * 255;
    size_t n = item_bytes ? room / item_bytes : room;
    return n ? n : 1;
}

static void record_begin(struct lm_net_buf *r, size_t *at)
{
    *at = r->len;
    lm_net_buf_u32(r, 0);
}

static void record_end(struct lm_net_buf *r, size_t at)
{
    if (r->oom)
        return;
    uint32_t n = (uint32_t)(r->len - at - 4);
    memcpy(r->p + at, &n, 4); /* host order: records never leave the process */
}

static struct lm_net_frame_key frame_key(const struct chunk_ctx *x)
{
    struct lm_net_frame_key k = {.lsn = x->lsn, .columns = x->u->columns, .mode = x->u->mode,
                                 .level = x->u->level};
    memcpy(k.field, x->u->field, sizeof k.field);
    memcpy(k.coord, x->coord, sizeof k.coord);
    return k;
}

/* The cached frames of this chunk version, or NULL (then the caller encodes them into
 * s->records and calls remember). */
static const struct lm_net_buf *cached(struct chunk_ctx *x)
{
    lm_net_server *s = x->w->srv;
    struct lm_net_frame_key k = frame_key(x);
    const struct lm_net_buf *f = lm_net_framecache_get(s->cache, &k);
    s->m.frames_cached += f != NULL;
    lm_net_buf_clear(&s->records);
    return f;
}

static const struct lm_net_buf *remember(struct chunk_ctx *x)
{
    lm_net_server *s = x->w->srv;
    struct lm_net_frame_key k = frame_key(x);
    s->m.frames_encoded++;
    lm_net_framecache_put(s->cache, &k, &s->records);
    return &s->records;
}

static int chunk_cb(const struct lm_chunk_view *c, void *user)
{
    struct chunk_ctx *x = user;
    if (memcmp(c->coord, x->coord, sizeof x->coord))
        return 0;
    x->found = true;
    x->lsn = c->lsn;
    if (x->u->mode || (x->frames = cached(x)))
        return 1;
    lm_net_server *s = x->w->srv;
    size_t per = part_capacity(s, LM_WS_CHUNK_HEADER, lm_ws_sample_bytes(x->u->columns, &x->u->opts));
    size_t first = 0, at;
    do {
        size_t n = c->n - first < per ? c->n - first : per;
        record_begin(&s->records, &at);
        lm_ws_encode_chunk(&s->records, &s->scratch, 0, 0, c, first, n, x->u->columns, &x->u->opts);
        record_end(&s->records, at);
        first += n;
    } while (first < c->n);
    x->frames = remember(x);
    return 1;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

/* Encodes the chunk's cells at the subscription's level (found) into s->records. */
static void encode_voxels(struct chunk_ctx *x, const struct lm_region *box)
{
    lm_net_server *s = x->w->srv;
    struct lm__ws_sub *u = x->u;
    struct lm_voxels *v = NULL;
    size_t n = 0;
    if (lm_voxels_query(s->o.db, u->field, box, u->level, &v, NULL) == 0) {
        /* keep the cells of this chunk, in place */
        int64_t per = (int64_t)u->opts.chunk_edge >> u->level;
        for (size_t i = 0; i < v->n; i++) {
            bool mine = true;
            for (int a = 0; a < 3; a++)
                mine &= floor_div(v->v[i].coord[a], per) == x->coord[a];
            if (mine)
                v->v[n++] = v->v[i];
        }
    }
    float cell = u->opts.voxel_size * (float)(1u << u->level);
    size_t per = part_capacity(s, LM_WS_VOXELS_HEADER, LM_WS_VOXEL_BYTES), first = 0, at;
    do {
        size_t k = n - first < per ? n - first : per;
        record_begin(&s->records, &at);
        lm_ws_encode_voxels(&s->records, &s->scratch, 0, 0, x->coord, x->lsn, u->level, cell,
                            v ? v->v + first : NULL, first, k, n);
        record_end(&s->records, at);
        first += k;
    } while (first < n);
    lm_voxels_free(v);
}

/* Queues copies of the records with this subscription's id and delta flag. */
static void emit(struct lm__ws_sess *w, struct lm__ws_sub *u, const struct lm_net_buf *r)
{
    for (size_t at = 0; !r->oom && at + 4 <= r->len;) {
        uint32_t n;
        memcpy(&n, r->p + at, 4);
        const uint8_t *f = r->p + at + 4;
        struct lm_net_buf b;
        frame_begin(&b, n);
        lm_net_buf_put(&b, f, n);
        if (!b.oom) {
            uint8_t *h = b.p + LWS_PRE;
            h[1] = u->snapshot_done ? LM_WS_FLAG_DELTA : 0;
            for (int i = 0; i < 4; i++)
                h[4 + i] = (uint8_t)(u->id >> (8 * i));
        }
        if (enqueue(w, &b))
            return;
        u->items_sent += (uint32_t)f[36] | (uint32_t)f[37] << 8 | (uint32_t)f[38] << 16 |
                         (uint32_t)f[39] << 24;
        at += 4 + n;
    }
}

/* Queues the newest version of one pending chunk (or its removal). */
static void send_chunk(struct lm__ws_sess *w, struct lm__ws_sub *u, const int32_t coord[3])
{
    lm_net_server *s = w->srv;
    struct chunk_ctx x = {.w = w, .u = u, .lsn = u->seen_lsn};
    memcpy(x.coord, coord, sizeof x.coord);
    /* the chunk's whole cell: culling may use the tight bounds of its samples, which can
     * lie anywhere inside it; neighbours that touch the box are skipped by coordinate */
    float size = u->opts.voxel_size * (float)u->opts.chunk_edge;
    struct lm_region box = {.kind = LM_REGION_BOX};
    for (int a = 0; a < 3; a++) {
        box.min[a] = (float)coord[a] * size;
        box.max[a] = (float)(coord[a] + 1) * size;
    }
    lm_chunks_each(s->o.db, u->field, &box, 0, chunk_cb, &x, NULL);
    if (x.found && u->mode && !(x.frames = cached(&x))) {
        encode_voxels(&x, &box);
        x.frames = remember(&x);
    }
    if (!x.found) { /* the chunk is gone: an empty first part tells the client */
        struct lm_chunk_view gone = {.lsn = x.lsn};
        memcpy(gone.coord, coord, sizeof gone.coord);
        size_t at;
        lm_net_buf_clear(&s->records);
        record_begin(&s->records, &at);
        if (u->mode)
            lm_ws_encode_voxels(&s->records, &s->scratch, 0, 0, coord, x.lsn, u->level, 0, NULL,
                                0, 0, 0);
        else
            lm_ws_encode_chunk(&s->records, &s->scratch, 0, 0, &gone, 0, 0, u->columns, &u->opts);
        record_end(&s->records, at);
        x.frames = &s->records;
    }
    if (x.frames)
        emit(w, u, x.frames);
    lm_net_coordset_mark_sent(&u->pending, coord, x.found ? x.lsn : 0);
    u->chunks_sent++;
}

/* Puts the next piece of streaming work in an empty queue: one chunk of the next
 * subscription in turn, or a SYNCED for one that has drained. */
static void refill(struct lm__ws_sess *w)
{
    for (uint32_t tries = 0; tries <= w->n_subs && !w->head; tries++) {
        struct lm__ws_sub *u = w->rr ? w->rr : w->subs;
        if (!u)
            return;
        w->rr = u->next;
        int32_t c[3];
        if (lm_net_coordset_pop(&u->pending, c)) {
            send_chunk(w, u, c);
        } else if (u->synced_owed) {
            u->synced_owed = false;
            u->snapshot_done = true;
            struct lm_net_buf b;
            frame_begin(&b, 32);
            lm_ws_encode_synced(&b, u->id, u->chunks_sent, u->items_sent, u->seen_lsn);
            enqueue(w, &b);
        }
    }
}

static bool has_work(const struct lm__ws_sess *w)
{
    for (const struct lm__ws_sub *u = w->subs; u; u = u->next)
        if (lm_net_coordset_pending(&u->pending) || u->synced_owed)
            return true;
    return false;
}

static void count_sent(lm_net_server *s, const uint8_t *f, size_t n)
{
    s->m.ws_frames_sent++;
    s->m.bytes_streamed += n;
    if ((f[0] != LM_WS_CHUNK && f[0] != LM_WS_VOXELS) || n < 40)
        return;
    uint32_t items = (uint32_t)f[36] | (uint32_t)f[37] << 8 | (uint32_t)f[38] << 16 |
                     (uint32_t)f[39] << 24;
    s->m.chunks_streamed++;
    s->m.deltas_streamed += f[1] & LM_WS_FLAG_DELTA;
    if (f[0] == LM_WS_CHUNK)
        s->m.samples_streamed += items;
    else
        s->m.voxels_streamed += items;
}

static int on_writeable(struct lm__ws_sess *w)
{
    lm_net_server *s = w->srv;
    if (!w->head && !w->closing)
        refill(w);
    struct lm__ws_frame *f = w->head;
    if (!f) {
        if (w->closing && !w->close_sent) {
            /* The close frame is written here rather than by returning -1 after
             * lws_close_reason: with the libuv event library, lws 4.1 drops the
             * connection before that frame leaves. The peer answers with its own close,
             * and lws then closes the connection. */
            static const char reason[] = "server shutting down";
            uint8_t frame[LWS_PRE + 2 + sizeof reason];
            frame[LWS_PRE] = LWS_CLOSE_STATUS_GOINGAWAY >> 8;
            frame[LWS_PRE + 1] = LWS_CLOSE_STATUS_GOINGAWAY & 0xff;
            memcpy(frame + LWS_PRE + 2, reason, sizeof reason - 1);
            w->close_sent = true;
            lws_set_timeout(w->wsi, PENDING_TIMEOUT_CLOSE_ACK, 2);
            /* 4 is lws's own write type for a close frame (see lws-write.h) */
            return lws_write(w->wsi, frame + LWS_PRE, 2 + sizeof reason - 1,
                             (enum lws_write_protocol)4) < 0 ? -1 : 0;
        }
        return 0;
    }
    size_t n = f->b.len - LWS_PRE;
    if (lws_write(w->wsi, f->b.p + LWS_PRE, n, LWS_WRITE_BINARY) < (int)n)
        return -1;
    count_sent(s, f->b.p + LWS_PRE, n);
    w->head = f->next;
    if (!w->head)
        w->tail = NULL;
    w->queued -= n;
    s->m.send_queue_bytes -= n;
    lm_net_buf_free(&f->b);
    lm_free(f);
    if (w->rx_paused && w->queued <= s->o.send_queue / 2) {
        lws_rx_flow_control(w->wsi, 1);
        w->rx_paused = false;
    }
    if (w->head || (w->closing && !w->close_sent) || has_work(w))
        lws_callback_on_writable(w->wsi);
    return 0;
}

/* ---------------------------------------------------------------- requests */

static bool rate_ok(struct lm__ws_sess *w, uint32_t id)
{
    lm_net_server *s = w->srv;
    double ra = 0;
    if (lm_net_ratelimit_take(s->rl, w->addr, lm__net_now(), &ra))
        return true;
    s->m.rate_limited++;
    char msg[128];
    snprintf(msg, sizeof msg, "rate limit of %g requests/s per address exceeded; retry in %.2f s",
             s->o.rate, ra);
    send_error(w, id, LM_WS_ERATE, LM_ELIMIT, msg);
    return false;
}

static void handle_hello(struct lm__ws_sess *w, const struct lm_ws_msg *m)
{
    lm_net_server *s = w->srv;
    if (m->u.hello.version != LM_WS_VERSION) {
        char msg[96];
        snprintf(msg, sizeof msg, "protocol version %u is not supported; this server speaks %d",
                 m->u.hello.version, LM_WS_VERSION);
        send_error(w, m->id, LM_WS_EVERSION, LM_EVERSION, msg);
        return;
    }
    bool has = m->u.hello.token_len > 0;
    if ((has && !lm__net_token_ok(s, m->u.hello.token, m->u.hello.token_len)) ||
        (!has && s->o.read_token)) {
        s->m.unauthorized++;
        send_error(w, m->id, LM_WS_EUNAUTHORIZED, 0,
                   has ? "wrong token" : "this server requires a token in hello");
        return;
    }
    w->hello = true;
    w->can_write = has;
    struct lm_net_buf b;
    frame_begin(&b, 32);
    lm_ws_encode_welcome(&b, (uint16_t)((has ? LM_WS_WELCOME_WRITE : 0) |
                                        (s->o.read_token ? LM_WS_WELCOME_READ_TOKEN : 0)),
                         s->o.max_frame, lm_db_lsn(s->o.db));
    enqueue(w, &b);
}

/* Sends a JSON API reply: RESULT/ACK for success, ERROR with the JSON error otherwise. */
static void reply_json(struct lm__ws_sess *w, uint32_t id, int status, struct lm_net_buf *json)
{
    lm_net_server *s = w->srv;
    if (status >= 400 || json->oom) {
        lm_net_buf_u8(json, 0);
        send_error(w, id, LM_WS_EREQUEST, 0, json->oom ? "out of memory" : (const char *)json->p);
        return;
    }
    if (json->len + LM_WS_HEADER > s->o.max_frame) {
        char msg[128];
        snprintf(msg, sizeof msg, "result of %zu bytes exceeds the %u-byte frame limit; add a limit",
                 json->len, s->o.max_frame);
        send_error(w, id, LM_WS_EREQUEST, LM_ELIMIT, msg);
        return;
    }
    struct lm_net_buf b;
    frame_begin(&b, LM_WS_HEADER + json->len);
    lm_ws_encode_text(&b, LM_WS_RESULT, id, (const char *)json->p, json->len);
    enqueue(w, &b);
}

/* Pending ops of a session, for replicated writes and linearizable reads. */
static void pending_link(struct lm__ws_sess *w, struct lm__net_pending *p)
{
    p->next = w->pending;
    w->pending = p;
}

static void pending_unlink(struct lm__ws_sess *w, struct lm__net_pending *p)
{
    for (struct lm__net_pending **at = &w->pending; *at; at = &(*at)->next)
        if (*at == p) {
            *at = p->next;
            return;
        }
}

static void send_outcome_error(struct lm__ws_sess *w, uint32_t id, int rc, const char *msg)
{
    struct lm_net_buf out = {0};
    struct lm_error e;
    lm__net_outcome_error(&e, rc, msg);
    int status = lm_api_error(&out, rc, &e);
    reply_json(w, id, status, &out);
    lm_net_buf_free(&out);
}

static void ws_read_ready(void *ctx, int rc, const char *msg)
{
    struct lm__net_pending *p = ctx;
    struct lm__ws_sess *w = p->owner;
    if (w) {
        pending_unlink(w, p);
        lm_net_server *s = w->srv;
        if (rc) {
            send_outcome_error(w, p->ws_id, rc, msg);
        } else {
            struct lm_net_buf out = {0};
            int status = lm_api_query(s->o.db, p->text, p->text_len, s->o.query_fn,
                                      s->o.query_user, &out);
            lm_net_metrics_observe(&s->m, LM_ROUTE_WS_QUERY, status, lm__net_now() - p->t0);
            reply_json(w, p->ws_id, status, &out);
            lm_net_buf_free(&out);
        }
    }
    lm__net_pending_free(p);
}

/* A QUERY with the linearizable flag on a replicated server: read after the fence. */
static void linearizable_query(struct lm__ws_sess *w, const struct lm_ws_msg *m)
{
    lm_net_server *s = w->srv;
    struct lm_error err = {0};
    struct lm__net_pending *p = lm__net_pending_new(s, w);
    int rc = p && (p->text = lm_alloc(m->u.query.len + 1)) ? 0 : -ENOMEM;
    if (!rc) {
        memcpy(p->text, m->u.query.json, m->u.query.len);
        p->text[m->u.query.len] = 0;
        p->text_len = m->u.query.len;
        p->ws_id = m->id;
        pending_link(w, p);
        if ((rc = s->o.writer->fence(s->o.writer->user, ws_read_ready, p, &err)))
            pending_unlink(w, p);
    }
    if (rc) {
        lm__net_pending_free(p);
        send_outcome_error(w, m->id, rc, err.message);
    }
}

static void handle_query(struct lm__ws_sess *w, const struct lm_ws_msg *m)
{
    lm_net_server *s = w->srv;
    if (!rate_ok(w, m->id))
        return;
    if ((m->flags & LM_WS_QUERY_LINEARIZABLE) && s->o.writer) {
        linearizable_query(w, m);
        return;
    }
    double t0 = lm__net_now();
    struct lm_net_buf out = {0};
    int status = lm_api_query(s->o.db, m->u.query.json, m->u.query.len, s->o.query_fn,
                              s->o.query_user, &out);
    lm_net_metrics_observe(&s->m, LM_ROUTE_WS_QUERY, status, lm__net_now() - t0);
    reply_json(w, m->id, status, &out);
    lm_net_buf_free(&out);
}

static void ack(struct lm__ws_sess *w, uint32_t id, uint64_t lsn, size_t n)
{
    lm_net_server *s = w->srv;
    s->m.inserts++;
    s->m.samples_inserted += n;
    struct lm_net_buf b;
    frame_begin(&b, 32);
    lm_ws_encode_ack(&b, id, lsn, (uint32_t)n);
    enqueue(w, &b);
}

static void ws_write_done(void *ctx, int rc, uint64_t index, uint64_t count, const char *msg)
{
    struct lm__net_pending *p = ctx;
    struct lm__ws_sess *w = p->owner;
    if (w) {
        pending_unlink(w, p);
        lm_net_metrics_observe(&w->srv->m, LM_ROUTE_WS_INSERT, lm_api_status(rc),
                               lm__net_now() - p->t0);
        if (rc)
            send_outcome_error(w, p->ws_id, rc, msg);
        else
            ack(w, p->ws_id, index, (size_t)count);
    }
    if (!rc)
        lm_net_server_notify(p->s);
    lm__net_pending_free(p);
}

static void replicated_insert(struct lm__ws_sess *w, const struct lm_ws_msg *m, bool caught_up);

static void ws_caught_up(void *ctx, int rc, const char *msg)
{
    struct lm__net_pending *p = ctx;
    struct lm__ws_sess *w = p->owner;
    if (w) {
        pending_unlink(w, p);
        if (rc) {
            send_outcome_error(w, p->ws_id, rc, msg);
        } else {
            struct lm_ws_msg m = {.type = LM_WS_INSERT, .id = p->ws_id};
            memcpy(m.u.insert.field, p->field, sizeof p->field);
            m.u.insert.json = p->text;
            m.u.insert.len = p->text_len;
            replicated_insert(w, &m, true);
        }
    }
    lm__net_pending_free(p);
}

/* An unknown field may be one another node just created: catch up with the leader (a
 * read fence) and check again, once. Returns false when no fence could start. */
static bool catch_up_then_retry(struct lm__ws_sess *w, const struct lm_ws_msg *m)
{
    lm_net_server *s = w->srv;
    struct lm_error err = {0};
    struct lm__net_pending *p = lm__net_pending_new(s, w);
    if (!p || !(p->text = lm_alloc(m->u.insert.len + 1))) {
        lm__net_pending_free(p);
        return false;
    }
    memcpy(p->text, m->u.insert.json, m->u.insert.len);
    p->text[m->u.insert.len] = 0;
    p->text_len = m->u.insert.len;
    memcpy(p->field, m->u.insert.field, sizeof p->field);
    p->ws_id = m->id;
    pending_link(w, p);
    if (s->o.writer->fence(s->o.writer->user, ws_caught_up, p, &err)) {
        pending_unlink(w, p);
        lm__net_pending_free(p);
        return false;
    }
    return true;
}

/* An INSERT on a replicated server: checked and encoded here, acknowledged once the
 * writer committed it. The session's client id and request numbers name it. */
static void replicated_insert(struct lm__ws_sess *w, const struct lm_ws_msg *m, bool caught_up)
{
    lm_net_server *s = w->srv;
    struct lm_net_buf out = {0};
    struct lm_api_record rec = {0};
    uint64_t lsn = 0;
    size_t n = 0;
    int status = lm_api_insert(s->o.db, m->u.insert.field, m->u.insert.json, m->u.insert.len,
                               &out, &lsn, &n, &rec);
    if (status == 404 && !caught_up && catch_up_then_retry(w, m)) {
        lm_net_buf_free(&out);
        return;
    }
    if (status) {
        reply_json(w, m->id, status, &out);
        lm_net_buf_free(&out);
        return;
    }
    lm_net_buf_free(&out);
    if (!w->client_id)
        w->client_id = lm__net_random_id();
    struct lm_error err = {0};
    struct lm__net_pending *p = lm__net_pending_new(s, w);
    int rc = p ? 0 : -ENOMEM;
    if (p) {
        p->ws_id = m->id;
        p->type = rec.type;
        p->samples = rec.samples;
        pending_link(w, p);
        rc = s->o.writer->write(s->o.writer->user, w->client_id, ++w->request_seq, rec.type,
                                rec.payload, rec.n, ws_write_done, p, &err);
        if (rc)
            pending_unlink(w, p);
    }
    lm_free(rec.payload);
    if (rc) {
        lm__net_pending_free(p);
        send_outcome_error(w, m->id, rc, err.message);
    }
}

static void handle_insert(struct lm__ws_sess *w, const struct lm_ws_msg *m)
{
    lm_net_server *s = w->srv;
    if (!w->can_write) {
        s->m.unauthorized++;
        send_error(w, m->id, LM_WS_EUNAUTHORIZED, 0, "inserts need the token in hello");
        return;
    }
    if (!rate_ok(w, m->id))
        return;
    if (s->o.writer) {
        replicated_insert(w, m, false);
        return;
    }
    double t0 = lm__net_now();
    struct lm_net_buf out = {0};
    uint64_t lsn = 0;
    size_t n = 0;
    int status = lm_api_insert(s->o.db, m->u.insert.field, m->u.insert.json, m->u.insert.len,
                               &out, &lsn, &n, NULL);
    lm_net_metrics_observe(&s->m, LM_ROUTE_WS_INSERT, status, lm__net_now() - t0);
    if (status == 200) {
        ack(w, m->id, lsn, n);
        lm_net_server_notify(s);
    } else {
        reply_json(w, m->id, status, &out);
    }
    lm_net_buf_free(&out);
}

static void handle_frame(struct lm__ws_sess *w, const uint8_t *p, size_t n)
{
    struct lm_ws_msg m;
    char why[128];
    int code = lm_ws_decode(p, n, &m, why, sizeof why);
    w->srv->m.ws_frames_received++;
    if (code) {
        send_error(w, n >= LM_WS_HEADER ? m.id : 0, code, 0, why);
        return;
    }
    if (m.type != LM_WS_HELLO && !w->hello) {
        send_error(w, m.id, LM_WS_EHELLO, 0, "send HELLO (version, token) first");
        return;
    }
    switch (m.type) {
    case LM_WS_HELLO: handle_hello(w, &m); break;
    case LM_WS_SUBSCRIBE: handle_subscribe(w, &m); break;
    case LM_WS_UNSUBSCRIBE:
        if (!sub_remove(w, m.id))
            send_error(w, m.id, LM_WS_ENOSUB, 0, "no such subscription");
        break;
    case LM_WS_QUERY: handle_query(w, &m); break;
    case LM_WS_INSERT: handle_insert(w, &m); break;
    default: break;
    }
}

static void on_receive(struct lm__ws_sess *w, const void *in, size_t len)
{
    lm_net_server *s = w->srv;
    if (!w->rx_mid) {
        w->rx_mid = true;
        w->rx_skip = false;
        lm_net_buf_clear(&w->rx);
    }
    if (!w->rx_skip) {
        if (w->rx.len + len > s->o.max_frame) {
            w->rx_skip = true;
            lm_net_buf_free(&w->rx);
        } else {
            lm_net_buf_put(&w->rx, in, len);
        }
    }
    if (!lws_is_final_fragment(w->wsi))
        return;
    w->rx_mid = false;
    if (w->rx_skip) {
        char msg[96];
        snprintf(msg, sizeof msg, "frames are limited to %u bytes", s->o.max_frame);
        s->m.ws_frames_received++;
        send_error(w, 0, LM_WS_ETOOLARGE, LM_ELIMIT, msg);
    } else if (!lws_frame_is_binary(w->wsi)) {
        s->m.ws_frames_received++;
        send_error(w, 0, LM_WS_EMALFORMED, 0, "lumadb.v1 frames are binary messages");
    } else if (w->rx.oom) {
        send_error(w, 0, LM_WS_EINTERNAL, -ENOMEM, "out of memory");
    } else {
        handle_frame(w, w->rx.p, w->rx.len);
    }
    if (w->rx.cap > 65536)
        lm_net_buf_free(&w->rx);
}

/* ---------------------------------------------------------------- lifecycle */

static void sess_close(struct lm__ws_sess *w)
{
    lm_net_server *s = w->srv;
    if (!w->linked)
        return;
    drop_queue(w);
    while (w->subs)
        sub_remove(w, w->subs->id);
    for (struct lm__net_pending *p = w->pending; p; p = p->next)
        p->owner = NULL; /* their outcomes come after the session went */
    w->pending = NULL;
    lm_net_buf_free(&w->rx);
    if (w->prev)
        w->prev->next = w->next;
    else
        s->sessions = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->linked = false;
    s->m.ws_clients--;
}

void lm__ws_goodbye_all(lm_net_server *s)
{
    for (struct lm__ws_sess *w = s->sessions; w; w = w->next) {
        drop_queue(w);
        w->closing = true;
        struct lm_net_buf b;
        frame_begin(&b, 48);
        lm_ws_encode_bye(&b, LWS_CLOSE_STATUS_GOINGAWAY, "server shutting down");
        enqueue(w, &b);
    }
}

int lm__ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct lm__ws_sess *w = user;
    lm_net_server *s = lws_context_user(lws_get_context(wsi));
    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return s->stopping || s->m.ws_clients >= s->o.max_clients;
    case LWS_CALLBACK_ESTABLISHED:
        memset(w, 0, sizeof *w);
        w->wsi = wsi;
        w->srv = s;
        lws_get_peer_simple(wsi, w->addr, sizeof w->addr);
        w->next = s->sessions;
        if (s->sessions)
            s->sessions->prev = w;
        s->sessions = w;
        w->linked = true;
        s->m.ws_clients++;
        s->m.ws_connections++;
        lm__net_log(s, "ws %s connected (%llu clients)", w->addr, (unsigned long long)s->m.ws_clients);
        return 0;
    case LWS_CALLBACK_RECEIVE:
        if (!w->closing)
            on_receive(w, in, len);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return on_writeable(w);
    case LWS_CALLBACK_CLOSED:
        if (w->linked) {
            sess_close(w);
            lm__net_log(s, "ws %s closed (%llu clients)", w->addr, (unsigned long long)s->m.ws_clients);
        }
        return 0;
    default:
        return 0;
    }
}
