/* repl.c - Raft replication of a LumaDB database (repl.h): the state machine, the
 * apply thread, writes and their batching, read fences, snapshots, membership.
 *
 * Flow of a write on the leader: lm_repl_write checks the record against the local
 * state and queues it; an idle handle gathers the writes of one loop iteration into one
 * raft_apply (W_QUEUED -> W_PROPOSED, each with its log index). When Raft applies an
 * entry, fsm_apply copies it onto the apply thread's queue and matches it against the
 * oldest proposed write: the same index and request ids make it W_APPLYING; anything
 * else at or before that index was lost to a leader change and is answered
 * LM_ENOTLEADER. The apply thread applies entries in order and hands each back with its
 * result; on_done answers the write waiting for it.
 *
 * The apply thread also writes snapshots (a marker in its queue at the snapshot's index,
 * invariant 5) and restores them (an item in its queue, so everything before it is
 * applied first and everything after it comes after).
 */
#include "repl.h"

#include <errno.h>
#include <pthread.h>
#include <raft.h>
#include <raft/uv.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "alloc.h"
#include "crc32c.h"
#include "db.h"
#include "error.h"
#include "record.h"
#include "repl_wire.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "entries are little-endian");

#define ENTRY_HEADER 24u
#define ENTRY_VERSION 1u
enum entry_kind { ENTRY_MUTATION = 1, ENTRY_MEMBER = 2 };
enum member_op { MEMBER_SET = 1, MEMBER_REMOVE = 2 };

#define SEEN_PER_CLIENT 8u  /* results remembered per client */
#define MAX_CLIENTS 2048u   /* clients remembered; the least recent is forgotten */
#define CLIENT_SLOTS 4096u  /* open-addressing table, a power of two */

#define SNAP_MAGIC "LMRSNAP1"
#define SNAP_VERSION 1u

#define TICK_MS 10u
#define MAX_BATCH_ENTRIES 1024u

/* ---------------------------------------------------------------- little-endian bytes */

static void put_u64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static void put_u32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* ---------------------------------------------------------------- errors */

/* Raft's error codes, translated where they enter (house rule). */
static int from_raft(int rv)
{
    switch (rv) {
    case 0: return 0;
    case RAFT_NOMEM: return -ENOMEM;
    case RAFT_NOTLEADER:
    case RAFT_LEADERSHIPLOST: return LM_ENOTLEADER;
    case RAFT_SHUTDOWN:
    case RAFT_CANCELED: return LM_ECANCELED;
    case RAFT_BADID:
    case RAFT_DUPLICATEID:
    case RAFT_DUPLICATEADDRESS:
    case RAFT_BADROLE:
    case RAFT_CANTCHANGE:
    case RAFT_INVALID: return LM_EBADARG;
    case RAFT_MALFORMED:
    case RAFT_CORRUPT: return LM_ECORRUPT;
    case RAFT_NAMETOOLONG: return -ENAMETOOLONG;
    case RAFT_TOOBIG:
    case RAFT_TOOMANY: return LM_ELIMIT;
    case RAFT_NOCONNECTION: return -ECONNREFUSED;
    case RAFT_BUSY: return -EBUSY;
    case RAFT_IOERR: return -EIO;
    case RAFT_NOTFOUND: return LM_ENOTFOUND;
    case RAFT_UNAUTHORIZED: return -EACCES;
    case RAFT_NOSPACE: return -ENOSPC;
    default: return LM_EINTERNAL;
    }
}

/* Verdicts of lm__db_apply_record that every node reaches alike (invariant 3); any
 * other failure is this node's own. */
static bool is_verdict(int rc)
{
    return rc == LM_ENOFIELD || rc == LM_EFIELDEXISTS || rc == LM_ESCHEMA ||
           rc == LM_EBADVALUE || rc == LM_EBADARG || rc == LM_ENOCOLUMN;
}

/* ---------------------------------------------------------------- structures */

/* Work for the apply thread, and its result coming back. */
enum item_kind { ITEM_ENTRY, ITEM_SNAPSHOT, ITEM_RESTORE, ITEM_STOP };
struct item {
    struct item *next;
    enum item_kind kind;
    uint64_t index;         /* ENTRY: its log index; SNAPSHOT: the snapshot's */
    uint64_t qseq;          /* position in the queue, from 1 */
    void *data;             /* ENTRY: a copy (lm_alloc); RESTORE: Raft's (raft_free) */
    size_t n;
    int rc;                 /* results (ENTRY) */
    uint64_t result_index, count;
    char message[256];
};

struct fifo {
    struct item *head, *tail;
};

static void fifo_push(struct fifo *q, struct item *it)
{
    it->next = NULL;
    if (q->tail)
        q->tail->next = it;
    else
        q->head = it;
    q->tail = it;
}

static struct item *fifo_pop(struct fifo *q)
{
    struct item *it = q->head;
    if (it && !(q->head = it->next))
        q->tail = NULL;
    return it;
}

/* A write in flight on this node. */
enum wstate { W_HELD, W_QUEUED, W_PROPOSED, W_APPLYING };
struct batch;
struct pwrite {
    struct pwrite *prev, *next;
    enum wstate state;
    uint64_t client_id, request_id;
    uint64_t index;           /* PROPOSED: its log index */
    uint64_t qseq;            /* APPLYING: its item */
    struct raft_buffer buf;   /* the entry, until Raft owns it (PROPOSED) */
    struct batch *batch;      /* the raft_apply it went out in, until that one answers */
    unsigned slot;
    lm_repl_write_cb cb;
    void *data;
};

struct wlist {
    struct pwrite *head, *tail;
};

/* One raft_apply: its callback fires once, for the first entry (or with an error). */
struct batch {
    struct raft_apply req;
    lm_repl *r;
    unsigned n;
    struct pwrite *w[];
};

struct fence {
    struct raft_barrier req;
    lm_repl *r;
    uint64_t target;          /* item that must be applied first */
    uint64_t deadline;        /* index waits: uv_now() past which they fail */
    lm_repl_done_cb cb;
    void *data;
    struct fence *next;
};

enum change_stage { CH_MEMBER_SET, CH_ADD, CH_ASSIGN, CH_MEMBER_REMOVE, CH_REMOVE };
struct change {
    struct raft_change req;
    lm_repl *r;
    enum change_stage stage;
    struct lm_repl_member m;
    lm_repl_done_cb cb;
    void *data;
};

/* Results of recent requests of one client (invariant 4). */
struct seen {
    uint64_t request_id, index, count;
    int32_t rc;
};
struct client {
    uint64_t id;              /* 0 = empty slot */
    uint64_t last_index;      /* log index of its latest request: eviction order */
    uint32_t n, next;         /* ring use */
    struct seen ring[SEEN_PER_CLIENT];
};

struct member {
    uint64_t id;
    char client[LM_REPL_ADDR_MAX];
};

enum snap_state { SNAP_IDLE, SNAP_QUEUED, SNAP_DONE, SNAP_TAKEN, SNAP_ABANDONED };

struct lm_repl {
    uv_loop_t *loop;
    lm_db *db;
    uint64_t id;
    char address[LM_REPL_ADDR_MAX];
    size_t max_batch_bytes;
    void (*on_failure)(void *data, const char *why);
    void *fail_data;
    void (*on_applied)(void *data, uint64_t db_index);

    struct raft raft;
    struct raft_io io;
    struct raft_uv_transport transport;
    struct raft_fsm fsm;
    bool raft_inited;
    /* raft_uv_tcp's own listen and connect, wrapped (see "transport" below) */
    int (*tcp_listen)(struct raft_uv_transport *t, raft_uv_accept_cb cb);
    int (*tcp_connect)(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
                       const char *address, raft_uv_connect_cb cb);
    raft_uv_accept_cb raft_accept;

    uv_timer_t tick;
    uv_idle_t flush;
    uv_async_t done_async;
    int open_handles;

    /* loop thread only */
    struct wlist held, queued, proposed, applying;
    struct fence *fences, *fences_tail; /* barriers committed, waiting for the apply thread */
    struct fence *index_waits;          /* lm_repl_wait_index, by target log index */
    uint64_t pushed, done;              /* last item queued / finished */
    bool ready;
    uint64_t ready_term;
    struct raft_barrier barrier;        /* the leader's own (invariant 6) */
    bool barrier_busy, barrier_wait;
    uint64_t barrier_target, barrier_term;
    bool closing, failed_seen;
    void (*close_cb)(void *data);
    void *close_data;

    /* shared with the apply thread, under mu */
    pthread_mutex_t mu;
    pthread_cond_t work_cond, snap_cond;
    struct fifo todo, finished;
    bool stopping;
    pthread_t thread;
    bool thread_started;
    enum snap_state snap_state;
    int snap_rc;                        /* a Raft code */
    struct raft_buffer *snap_bufs;
    unsigned snap_n;
    struct member members[LM_REPL_MAX_MEMBERS];
    size_t n_members;
    bool failed;
    char failure[256];
    uint64_t db_index, snapshots_taken, snapshots_restored;

    /* apply thread only (and open, before it starts) */
    struct client *clients;             /* CLIENT_SLOTS */
    size_t n_clients;
};

static uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ---------------------------------------------------------------- entries */

/* Entry (the payload of a Raft command), little-endian:
 * | offset | size | field                                                        |
 * | 0      | 1    | kind: 1 mutation, 2 member                                   |
 * | 1      | 1    | format version, 1                                            |
 * | 2      | 2    | mutation: record type (record.h); member: 1 set, 2 remove     |
 * | 4      | 4    | body length n, u32                                           |
 * | 8      | 8    | client id (0: not deduplicated)                              |
 * | 16     | 8    | request id                                                   |
 * | 24     | n    | mutation: the record payload; member: u64 id, u8 length +    |
 * |        |      | client address                                               |
 * | 24+n   | 0..7 | zero padding to a multiple of 8 bytes                        |
 * The padding is Raft's need, not ours: raft_uv 0.15 sends entry buffers as they are
 * but its receiver steps over padding to 8 bytes after each entry of an AppendEntries
 * message, so several entries of other lengths in one message would be misread.
 */
static size_t entry_size(size_t body) { return (ENTRY_HEADER + body + 7) & ~(size_t)7; }

static void entry_header(uint8_t *p, enum entry_kind kind, uint16_t sub, uint32_t body,
                         uint64_t client_id, uint64_t request_id)
{
    memset(p, 0, ENTRY_HEADER);
    p[0] = (uint8_t)kind;
    p[1] = ENTRY_VERSION;
    memcpy(p + 2, &sub, 2);
    put_u32(p + 4, body);
    put_u64(p + 8, client_id);
    put_u64(p + 16, request_id);
}

struct entry {
    enum entry_kind kind;
    uint16_t sub;
    uint64_t client_id, request_id;
    const uint8_t *body;
    size_t n;
};

/* Returns false for bytes that are no entry of this version. */
static bool entry_parse(const void *data, size_t n, struct entry *e)
{
    const uint8_t *p = data;
    if (n < ENTRY_HEADER || p[1] != ENTRY_VERSION ||
        (p[0] != ENTRY_MUTATION && p[0] != ENTRY_MEMBER))
        return false;
    uint32_t body;
    memcpy(&body, p + 4, 4);
    if (entry_size(body) != n)
        return false;
    e->kind = (enum entry_kind)p[0];
    memcpy(&e->sub, p + 2, 2);
    e->client_id = get_u64(p + 8);
    e->request_id = get_u64(p + 16);
    e->body = p + ENTRY_HEADER;
    e->n = body;
    return true;
}

/* ---------------------------------------------------------------- client results */

static size_t client_home(uint64_t id) { return (size_t)(mix(id) & (CLIENT_SLOTS - 1)); }

static struct client *client_find(lm_repl *r, uint64_t id)
{
    for (size_t i = client_home(id);; i = (i + 1) & (CLIENT_SLOTS - 1)) {
        if (r->clients[i].id == id)
            return &r->clients[i];
        if (!r->clients[i].id)
            return NULL;
    }
}

/* Linear probing deletion by backward shift: no tombstones. */
static void client_remove(lm_repl *r, struct client *c)
{
    size_t i = (size_t)(c - r->clients), j = i;
    r->clients[i].id = 0;
    for (;;) {
        j = (j + 1) & (CLIENT_SLOTS - 1);
        if (!r->clients[j].id)
            break;
        size_t k = client_home(r->clients[j].id);
        bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (stays)
            continue;
        r->clients[i] = r->clients[j];
        r->clients[j].id = 0;
        i = j;
    }
    r->n_clients--;
}

/* The client's slot, made (evicting the least recent client when full). The choice
 * depends on the log only, so every node keeps the same clients. */
static struct client *client_get(lm_repl *r, uint64_t id)
{
    struct client *c = client_find(r, id);
    if (c)
        return c;
    if (r->n_clients >= MAX_CLIENTS) {
        struct client *oldest = NULL;
        for (size_t i = 0; i < CLIENT_SLOTS; i++)
            if (r->clients[i].id && (!oldest || r->clients[i].last_index < oldest->last_index))
                oldest = &r->clients[i];
        client_remove(r, oldest);
    }
    size_t i = client_home(id);
    while (r->clients[i].id)
        i = (i + 1) & (CLIENT_SLOTS - 1);
    memset(&r->clients[i], 0, sizeof r->clients[i]);
    r->clients[i].id = id;
    r->n_clients++;
    return &r->clients[i];
}

static const struct seen *client_seen(lm_repl *r, uint64_t id, uint64_t request_id)
{
    const struct client *c = client_find(r, id);
    for (uint32_t k = 0; c && k < c->n; k++)
        if (c->ring[k].request_id == request_id)
            return &c->ring[k];
    return NULL;
}

static void client_record(lm_repl *r, uint64_t id, const struct seen *s)
{
    struct client *c = client_get(r, id);
    c->ring[c->next] = *s;
    c->next = (c->next + 1) % SEEN_PER_CLIENT;
    if (c->n < SEEN_PER_CLIENT)
        c->n++;
    c->last_index = s->index;
}

/* ---------------------------------------------------------------- members (under mu) */

static struct member *member_find(lm_repl *r, uint64_t id)
{
    for (size_t i = 0; i < r->n_members; i++)
        if (r->members[i].id == id)
            return &r->members[i];
    return NULL;
}

static void member_set(lm_repl *r, uint64_t id, const char *client)
{
    struct member *m = member_find(r, id);
    if (!m && r->n_members < LM_REPL_MAX_MEMBERS)
        m = &r->members[r->n_members++];
    if (!m)
        return; /* full: the address stays unknown on every node alike */
    m->id = id;
    snprintf(m->client, sizeof m->client, "%s", client);
}

static void member_remove(lm_repl *r, uint64_t id)
{
    struct member *m = member_find(r, id);
    if (m)
        *m = r->members[--r->n_members];
}

/* ---------------------------------------------------------------- apply thread */

static void fail_node(lm_repl *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail_node(lm_repl *r, const char *fmt, ...)
{
    pthread_mutex_lock(&r->mu);
    if (!r->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->failure, sizeof r->failure, fmt, ap);
        va_end(ap);
        r->failed = true;
    }
    pthread_mutex_unlock(&r->mu);
}

static void apply_member(lm_repl *r, const struct entry *e)
{
    struct lm__reader rd = {e->body, e->n, 0, false};
    uint64_t id = lm_wire_get_u64(&rd);
    char client[LM_REPL_ADDR_MAX];
    lm_wire_get_str(&rd, client, sizeof client);
    if (rd.bad)
        return; /* malformed alike everywhere: no change */
    pthread_mutex_lock(&r->mu);
    if (e->sub == MEMBER_SET)
        member_set(r, id, client);
    else if (e->sub == MEMBER_REMOVE)
        member_remove(r, id);
    pthread_mutex_unlock(&r->mu);
}

static void apply_entry(lm_repl *r, struct item *it)
{
    struct entry e;
    if (!entry_parse(it->data, it->n, &e)) {
        /* a newer format: applying it partly would diverge from nodes that know it */
        fail_node(r, "entry %llu has an unknown kind or version",
                  (unsigned long long)it->index);
        it->rc = LM_EVERSION;
        return;
    }
    it->result_index = it->index;
    if (e.kind == ENTRY_MEMBER) {
        apply_member(r, &e);
        return;
    }
    const struct seen *s = e.client_id ? client_seen(r, e.client_id, e.request_id) : NULL;
    if (s) {
        it->rc = s->rc;
        it->count = s->count;
        it->result_index = s->index;
        if (s->rc)
            snprintf(it->message, sizeof it->message, "%s (request %llu, first answered "
                     "at entry %llu)", lm_strerror(s->rc), (unsigned long long)e.request_id,
                     (unsigned long long)s->index);
        return;
    }
    struct lm_error err = {0};
    uint64_t count = 0;
    int rc = lm__db_apply_record(r->db, e.sub, e.body, e.n, it->index, &count, &err);
    if (rc && !is_verdict(rc)) {
        fail_node(r, "applying entry %llu: %s", (unsigned long long)it->index,
                  err.message[0] ? err.message : lm_strerror(rc));
        it->rc = LM_EFAILED;
        return;
    }
    it->rc = rc;
    it->count = count;
    if (rc)
        snprintf(it->message, sizeof it->message, "%.255s", err.message);
    if (e.client_id) {
        struct seen rec = {e.request_id, it->index, count, rc};
        client_record(r, e.client_id, &rec);
    }
}

/* Snapshot (one Raft snapshot file; the buffers below, concatenated), little-endian:
 * | size | field                                                                   |
 * | 8    | magic "LMRSNAP1"                                                        |
 * | 4    | format version, 1                                                       |
 * | 4    | zero                                                                    |
 * | 8    | log index of the state                                                  |
 * | 8    | database sequence number (lm_db_lsn)                                    |
 * | 4    | member count M; M x (u64 id, u8 length + client address)               |
 * | 4    | client count C; C x (u64 id, u64 last index, u32 k, k x (u64 request   |
 * |      | id, u64 index, u64 count, i32 rc)), k results in ring order              |
 * | 4    | file count F; F x (u8 length + name, u64 size)                          |
 * | ...  | the F files' bytes in table order (database checkpoint: MANIFEST and    |
 * |      | chunk segments, docs/FORMATS.md)                                        |
 * | 4    | CRC-32C of every byte before                                            |
 */
static int snapshot_write(lm_repl *r, uint64_t index, struct raft_buffer **bufs_out,
                          unsigned *n_out)
{
    struct lm__db_file *files = NULL;
    size_t nf = 0;
    uint64_t lsn = 0;
    struct lm_error err = {0};
    int rc = lm__db_snapshot(r->db, &files, &nf, &lsn, &err);
    if (rc)
        return rc == -ENOMEM ? RAFT_NOMEM : RAFT_IOERR;
    struct lm_wire_buf h = {0};
    lm_wire_put(&h, SNAP_MAGIC, 8);
    lm_wire_u32(&h, SNAP_VERSION);
    lm_wire_u32(&h, 0);
    lm_wire_u64(&h, index);
    lm_wire_u64(&h, lsn);
    pthread_mutex_lock(&r->mu);
    lm_wire_u32(&h, (uint32_t)r->n_members);
    for (size_t i = 0; i < r->n_members; i++) {
        lm_wire_u64(&h, r->members[i].id);
        lm_wire_str(&h, r->members[i].client);
    }
    pthread_mutex_unlock(&r->mu);
    lm_wire_u32(&h, (uint32_t)r->n_clients);
    for (size_t i = 0; i < CLIENT_SLOTS; i++) {
        const struct client *c = &r->clients[i];
        if (!c->id)
            continue;
        lm_wire_u64(&h, c->id);
        lm_wire_u64(&h, c->last_index);
        lm_wire_u32(&h, c->n);
        for (uint32_t k = 0; k < c->n; k++) {
            /* oldest first, so that restoring in order rebuilds the same ring */
            const struct seen *s = &c->ring[(c->next + SEEN_PER_CLIENT - c->n + k) %
                                             SEEN_PER_CLIENT];
            lm_wire_u64(&h, s->request_id);
            lm_wire_u64(&h, s->index);
            lm_wire_u64(&h, s->count);
            lm_wire_u32(&h, (uint32_t)s->rc);
        }
    }
    lm_wire_u32(&h, (uint32_t)nf);
    for (size_t i = 0; i < nf; i++) {
        lm_wire_str(&h, files[i].name);
        lm_wire_u64(&h, files[i].n);
    }
    struct raft_buffer *bufs = lm_calloc(nf + 2, sizeof *bufs);
    uint8_t *trailer = lm_alloc(4);
    if (h.oom || !bufs || !trailer) {
        lm_free(h.p);
        lm_free(bufs);
        lm_free(trailer);
        lm__db_files_free(files, nf);
        return RAFT_NOMEM;
    }
    uint32_t crc = lm_crc32c(0, h.p, h.n);
    bufs[0] = (struct raft_buffer){h.p, h.n};
    for (size_t i = 0; i < nf; i++) {
        crc = lm_crc32c(crc, files[i].data, files[i].n);
        bufs[1 + i] = (struct raft_buffer){files[i].data, files[i].n};
        files[i].data = NULL; /* moved */
    }
    put_u32(trailer, crc);
    bufs[nf + 1] = (struct raft_buffer){trailer, 4};
    lm__db_files_free(files, nf);
    *bufs_out = bufs;
    *n_out = (unsigned)(nf + 2);
    return 0;
}

static void snapshot_bufs_free(struct raft_buffer *bufs, unsigned n)
{
    for (unsigned i = 0; bufs && i < n; i++)
        lm_free(bufs[i].base);
    lm_free(bufs);
}

static void take_snapshot(lm_repl *r, struct item *it, bool skip)
{
    struct raft_buffer *bufs = NULL;
    unsigned n = 0;
    int rc = skip ? RAFT_CANCELED : snapshot_write(r, it->index, &bufs, &n);
    pthread_mutex_lock(&r->mu);
    if (r->snap_state == SNAP_ABANDONED) {
        snapshot_bufs_free(bufs, n); /* Raft gave up on it: nobody takes these */
        r->snap_state = SNAP_IDLE;
    } else {
        r->snap_bufs = bufs;
        r->snap_n = n;
        r->snap_rc = rc;
        r->snap_state = SNAP_DONE;
        if (!rc)
            r->snapshots_taken++;
    }
    pthread_cond_broadcast(&r->snap_cond);
    pthread_mutex_unlock(&r->mu);
}

/* Replaces the state by a snapshot. Failing here leaves the database failed (its
 * files were replaced): the node must restart. */
static void restore_snapshot(lm_repl *r, struct item *it)
{
    struct lm__reader rd = {it->data, it->n, 0, false};
    char magic[8];
    lm__read(&rd, magic, 8);
    uint32_t version = lm_wire_get_u32(&rd);
    lm_wire_get_u32(&rd);
    uint64_t index = lm_wire_get_u64(&rd);
    lm_wire_get_u64(&rd); /* the database's sequence number: its MANIFEST says it too */
    uint32_t crc = 0;
    if (it->n >= 4)
        memcpy(&crc, (uint8_t *)it->data + it->n - 4, 4);
    if (rd.bad || memcmp(magic, SNAP_MAGIC, 8) || version != SNAP_VERSION ||
        crc != lm_crc32c(0, it->data, it->n - 4)) {
        fail_node(r, "snapshot of %zu bytes is damaged or of an unknown version", it->n);
        return;
    }
    rd.n = it->n - 4;
    struct member members[LM_REPL_MAX_MEMBERS];
    uint32_t nm = lm_wire_get_u32(&rd);
    for (uint32_t i = 0; i < nm && !rd.bad; i++) {
        struct member m;
        m.id = lm_wire_get_u64(&rd);
        lm_wire_get_str(&rd, m.client, sizeof m.client);
        if (i < LM_REPL_MAX_MEMBERS)
            members[i] = m;
    }
    memset(r->clients, 0, CLIENT_SLOTS * sizeof *r->clients);
    r->n_clients = 0;
    uint32_t nc = lm_wire_get_u32(&rd);
    for (uint32_t i = 0; i < nc && !rd.bad; i++) {
        uint64_t id = lm_wire_get_u64(&rd), last = lm_wire_get_u64(&rd);
        uint32_t k = lm_wire_get_u32(&rd);
        if (!id || k > SEEN_PER_CLIENT || i >= MAX_CLIENTS) {
            rd.bad = true;
            break;
        }
        for (uint32_t j = 0; j < k; j++) {
            struct seen s;
            s.request_id = lm_wire_get_u64(&rd);
            s.index = lm_wire_get_u64(&rd);
            s.count = lm_wire_get_u64(&rd);
            s.rc = (int32_t)lm_wire_get_u32(&rd);
            client_record(r, id, &s);
        }
        client_get(r, id)->last_index = last;
    }
    uint32_t nf = lm_wire_get_u32(&rd);
    struct lm__db_file *files = rd.bad ? NULL : lm_calloc(nf ? nf : 1, sizeof *files);
    if (!rd.bad && !files) {
        fail_node(r, "out of memory restoring a snapshot");
        return;
    }
    for (uint32_t i = 0; i < nf && !rd.bad; i++) {
        lm_wire_get_str(&rd, files[i].name, sizeof files[i].name);
        files[i].n = (size_t)lm_wire_get_u64(&rd);
    }
    for (uint32_t i = 0; i < nf && !rd.bad; i++) {
        if (files[i].n > rd.n - rd.at) {
            rd.bad = true;
            break;
        }
        files[i].data = (uint8_t *)it->data + rd.at; /* borrowed from the buffer */
        rd.at += files[i].n;
    }
    if (rd.bad || rd.at != rd.n) {
        lm_free(files);
        fail_node(r, "snapshot at entry %llu is malformed", (unsigned long long)index);
        return;
    }
    struct lm_error err = {0};
    int rc = lm__db_restore(r->db, files, nf, &err);
    lm_free(files);
    if (rc) {
        fail_node(r, "restoring the snapshot at entry %llu: %s", (unsigned long long)index,
                  err.message[0] ? err.message : lm_strerror(rc));
        return;
    }
    pthread_mutex_lock(&r->mu);
    r->n_members = 0;
    for (uint32_t i = 0; i < nm && i < LM_REPL_MAX_MEMBERS; i++)
        r->members[r->n_members++] = members[i];
    r->db_index = index;
    r->snapshots_restored++;
    pthread_mutex_unlock(&r->mu);
}

static void *apply_main(void *arg)
{
    lm_repl *r = arg;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        while (!r->todo.head)
            pthread_cond_wait(&r->work_cond, &r->mu);
        struct item *it = fifo_pop(&r->todo);
        bool skip = r->failed || r->stopping;
        pthread_mutex_unlock(&r->mu);
        switch (it->kind) {
        case ITEM_STOP:
            lm_free(it);
            return NULL;
        case ITEM_ENTRY:
            if (skip)
                it->rc = LM_EFAILED;
            else
                apply_entry(r, it);
            lm_free(it->data);
            it->data = NULL;
            break;
        case ITEM_SNAPSHOT:
            take_snapshot(r, it, skip);
            break;
        case ITEM_RESTORE:
            if (!skip)
                restore_snapshot(r, it);
            raft_free(it->data);
            it->data = NULL;
            break;
        }
        pthread_mutex_lock(&r->mu);
        if (it->kind == ITEM_ENTRY && !r->failed)
            r->db_index = it->index;
        fifo_push(&r->finished, it);
        pthread_mutex_unlock(&r->mu);
        uv_async_send(&r->done_async);
    }
}

/* Hands an item to the apply thread (loop thread). */
static void push_item(lm_repl *r, struct item *it)
{
    it->qseq = ++r->pushed;
    pthread_mutex_lock(&r->mu);
    fifo_push(&r->todo, it);
    pthread_cond_signal(&r->work_cond);
    pthread_mutex_unlock(&r->mu);
}

/* ---------------------------------------------------------------- pending writes */

static struct wlist *wlist_of(lm_repl *r, enum wstate s)
{
    switch (s) {
    case W_HELD: return &r->held;
    case W_QUEUED: return &r->queued;
    case W_PROPOSED: return &r->proposed;
    default: return &r->applying;
    }
}

static void wl_push(struct wlist *l, struct pwrite *w)
{
    w->next = NULL;
    w->prev = l->tail;
    if (l->tail)
        l->tail->next = w;
    else
        l->head = w;
    l->tail = w;
}

static void wl_remove(struct wlist *l, struct pwrite *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        l->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        l->tail = w->prev;
    w->prev = w->next = NULL;
}

static void write_move(lm_repl *r, struct pwrite *w, enum wstate to)
{
    wl_remove(wlist_of(r, w->state), w);
    w->state = to;
    wl_push(wlist_of(r, to), w);
}

/* Answers a write and forgets it. */
static void write_finish(lm_repl *r, struct pwrite *w, const struct lm_repl_result *res)
{
    wl_remove(wlist_of(r, w->state), w);
    if (w->batch)
        w->batch->w[w->slot] = NULL;
    if (w->buf.base)
        raft_free(w->buf.base);
    lm_repl_write_cb cb = w->cb;
    void *data = w->data;
    lm_free(w);
    cb(data, res);
}

static void write_fail(lm_repl *r, struct pwrite *w, int rc, const char *why)
{
    struct lm_repl_result res = {.rc = rc};
    snprintf(res.message, sizeof res.message, "%.255s", why);
    write_finish(r, w, &res);
}

static void wlist_fail(lm_repl *r, struct wlist *l, int rc, const char *why)
{
    while (l->head)
        write_fail(r, l->head, rc, why);
}

static struct pwrite *write_new(enum entry_kind kind, uint16_t sub, uint64_t client_id,
                                uint64_t request_id, const void *body, size_t n,
                                lm_repl_write_cb cb, void *data)
{
    struct pwrite *w = lm_calloc(1, sizeof *w);
    size_t size = entry_size(n);
    uint8_t *p = raft_malloc(size);
    if (!w || !p) {
        lm_free(w);
        raft_free(p);
        return NULL;
    }
    entry_header(p, kind, sub, (uint32_t)n, client_id, request_id);
    if (n)
        memcpy(p + ENTRY_HEADER, body, n);
    memset(p + ENTRY_HEADER + n, 0, size - ENTRY_HEADER - n);
    w->buf = (struct raft_buffer){p, size};
    w->client_id = client_id;
    w->request_id = request_id;
    w->cb = cb;
    w->data = data;
    return w;
}

static void flush_cb(uv_idle_t *h);

static void write_queue(lm_repl *r, struct pwrite *w)
{
    w->state = W_QUEUED;
    wl_push(&r->queued, w);
    uv_idle_start(&r->flush, flush_cb);
}

static void apply_cb(struct raft_apply *req, int status, void *result)
{
    (void)result;
    struct batch *b = req->data;
    lm_repl *r = b->r;
    for (unsigned i = 0; i < b->n; i++) {
        struct pwrite *w = b->w[i];
        if (!w)
            continue;
        w->batch = NULL;
        /* Entries after the first are answered as they are applied; on an error none
         * of them was, and none may ever be: the writer must ask again. */
        if (status && w->state == W_PROPOSED)
            write_fail(r, w, r->closing ? LM_ECANCELED : LM_ENOTLEADER,
                       "leadership was lost before the write committed; its outcome is "
                       "unknown: send it again with the same request id");
    }
    lm_free(b);
}

/* Sends the queued writes to Raft, up to MAX_BATCH_ENTRIES or max_batch_bytes per
 * raft_apply. */
static void flush_cb(uv_idle_t *h)
{
    lm_repl *r = h->data;
    uv_idle_stop(h);
    while (r->queued.head) {
        unsigned n = 0;
        size_t bytes = 0;
        for (struct pwrite *w = r->queued.head; w && n < MAX_BATCH_ENTRIES; w = w->next) {
            if (n && bytes + w->buf.len > r->max_batch_bytes)
                break;
            bytes += w->buf.len;
            n++;
        }
        struct batch *b = lm_alloc(sizeof *b + n * sizeof b->w[0]);
        struct raft_buffer *bufs = lm_alloc(n * sizeof *bufs);
        if (!b || !bufs) {
            lm_free(b);
            lm_free(bufs);
            wlist_fail(r, &r->queued, -ENOMEM, "out of memory proposing writes");
            return;
        }
        b->r = r;
        b->n = n;
        b->req.data = b;
        struct pwrite *w = r->queued.head;
        for (unsigned i = 0; i < n; i++, w = w->next) {
            b->w[i] = w;
            bufs[i] = w->buf;
        }
        int rv = raft_apply(&r->raft, &b->req, bufs, n, apply_cb);
        lm_free(bufs);
        if (rv) {
            int rc = from_raft(rv);
            lm_free(b);
            for (unsigned i = 0; i < n; i++)
                write_fail(r, r->queued.head, rc, raft_strerror(rv));
            continue;
        }
        for (unsigned i = 0; i < n; i++) {
            w = b->w[i];
            w->buf = (struct raft_buffer){NULL, 0}; /* Raft's now */
            w->index = b->req.index + i;
            w->batch = b;
            w->slot = i;
            write_move(r, w, W_PROPOSED);
        }
    }
}

/* An entry at `index` with these ids was applied by Raft: proposals at or before it are
 * settled (see the top of this file). */
static void match_proposed(lm_repl *r, uint64_t index, const struct entry *e, uint64_t qseq)
{
    struct pwrite *w;
    while ((w = r->proposed.head) && w->index <= index) {
        if (e && w->index == index && w->client_id == e->client_id &&
            w->request_id == e->request_id) {
            w->qseq = qseq;
            write_move(r, w, W_APPLYING);
        } else {
            write_fail(r, w, LM_ENOTLEADER,
                       "the write was lost in a leader change: send it again");
        }
    }
}

/* ---------------------------------------------------------------- state machine */

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    lm_repl *r = fsm->data;
    *result = NULL;
    struct item *it = lm_calloc(1, sizeof *it);
    void *copy = lm_alloc(buf->len ? buf->len : 1);
    if (!it || !copy) {
        lm_free(it);
        lm_free(copy);
        return RAFT_NOMEM; /* Raft tries this entry again later */
    }
    memcpy(copy, buf->base, buf->len);
    it->kind = ITEM_ENTRY;
    /* Raft 0.15 advances last_applied after this returns (replicationApply) */
    it->index = raft_last_applied(&r->raft) + 1;
    it->data = copy;
    it->n = buf->len;
    struct entry e;
    bool ok = entry_parse(copy, buf->len, &e);
    push_item(r, it);
    match_proposed(r, it->index, ok ? &e : NULL, it->qseq);
    return 0;
}

/* Called on the loop when Raft wants a snapshot at last_applied: only a marker is
 * queued; snapshot_async (thread pool) waits for the apply thread to write it. */
static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    lm_repl *r = fsm->data;
    pthread_mutex_lock(&r->mu);
    bool busy = r->snap_state != SNAP_IDLE || r->failed;
    if (!busy)
        r->snap_state = SNAP_QUEUED;
    pthread_mutex_unlock(&r->mu);
    if (busy)
        return RAFT_BUSY; /* Raft tries again after a later entry */
    struct item *it = lm_calloc(1, sizeof *it);
    if (!it) {
        pthread_mutex_lock(&r->mu);
        r->snap_state = SNAP_IDLE;
        pthread_mutex_unlock(&r->mu);
        return RAFT_NOMEM;
    }
    it->kind = ITEM_SNAPSHOT;
    it->index = raft_last_applied(&r->raft);
    push_item(r, it);
    *bufs = NULL;
    *n_bufs = 0;
    return 0;
}

static int fsm_snapshot_async(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                              unsigned *n_bufs)
{
    lm_repl *r = fsm->data;
    pthread_mutex_lock(&r->mu);
    while (r->snap_state == SNAP_QUEUED)
        pthread_cond_wait(&r->snap_cond, &r->mu);
    int rc = r->snap_rc;
    *bufs = r->snap_bufs;
    *n_bufs = r->snap_n;
    r->snap_bufs = NULL;
    r->snap_n = 0;
    r->snap_state = SNAP_TAKEN;
    pthread_mutex_unlock(&r->mu);
    return rc;
}

static int fsm_snapshot_finalize(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                                 unsigned *n_bufs)
{
    lm_repl *r = fsm->data;
    pthread_mutex_lock(&r->mu);
    if (r->snap_state == SNAP_QUEUED) {
        r->snap_state = SNAP_ABANDONED; /* the apply thread frees what it makes */
    } else {
        snapshot_bufs_free(r->snap_bufs, r->snap_n);
        r->snap_bufs = NULL;
        r->snap_n = 0;
        r->snap_state = SNAP_IDLE;
    }
    pthread_mutex_unlock(&r->mu);
    snapshot_bufs_free(*bufs, *n_bufs);
    *bufs = NULL;
    *n_bufs = 0;
    return 0;
}

/* Raft hands the buffer over on success; it is restored in log order by the apply
 * thread, after everything queued before it. */
static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    lm_repl *r = fsm->data;
    struct item *it = lm_calloc(1, sizeof *it);
    if (!it)
        return RAFT_NOMEM;
    it->kind = ITEM_RESTORE;
    it->data = buf->base;
    it->n = buf->len;
    push_item(r, it);
    return 0;
}

/* ---------------------------------------------------------------- leadership */

static bool is_leader(lm_repl *r) { return raft_state(&r->raft) == RAFT_LEADER; }

static void release_held(lm_repl *r)
{
    while (r->held.head) {
        struct pwrite *w = r->held.head;
        struct entry e = {0};
        entry_parse(w->buf.base, w->buf.len, &e); /* made by write_new: it parses */
        struct lm_error err = {0};
        int rc = e.kind == ENTRY_MUTATION
                     ? lm__db_check_record(r->db, e.sub, e.body, e.n, false, &err)
                     : 0;
        if (rc && rc != -EBUSY) {
            write_fail(r, w, rc, err.message);
            continue;
        }
        wl_remove(&r->held, w);
        write_queue(r, w);
    }
}

static void become_ready(lm_repl *r)
{
    r->barrier_wait = false;
    if (!is_leader(r) || r->raft.current_term != r->barrier_term)
        return; /* the next tick starts over */
    r->ready = true;
    r->ready_term = r->barrier_term;
    release_held(r);
}

static void barrier_cb(struct raft_barrier *req, int status)
{
    lm_repl *r = req->data;
    r->barrier_busy = false;
    if (status || r->closing || !is_leader(r))
        return;
    r->barrier_target = r->pushed;
    r->barrier_term = r->raft.current_term;
    r->barrier_wait = true;
    if (r->done >= r->barrier_target)
        become_ready(r);
}

/* Keeps `ready` true to invariant 6; starts the new leader's barrier. */
static void refresh_role(lm_repl *r)
{
    bool leader = is_leader(r);
    if (r->ready && (!leader || r->raft.current_term != r->ready_term))
        r->ready = false;
    if (!leader) {
        r->barrier_wait = false;
        wlist_fail(r, &r->held, LM_ENOTLEADER, "this node is no longer the leader");
        wlist_fail(r, &r->queued, LM_ENOTLEADER, "this node is no longer the leader");
        /* Proposed entries may still commit under the next leader, or be replaced; the
         * writers learn which by sending again with the same request id. (Entries past
         * the first of a batch have no Raft request left that would fail them.) */
        wlist_fail(r, &r->proposed, LM_ENOTLEADER,
                   "leadership was lost before the write committed; its outcome is "
                   "unknown: send it again with the same request id");
        return;
    }
    if (!r->ready && !r->barrier_busy && !r->barrier_wait && !r->closing &&
        !r->failed_seen) {
        r->barrier.data = r;
        if (raft_barrier(&r->raft, &r->barrier, barrier_cb) == 0)
            r->barrier_busy = true;
    }
}

/* Index waits whose deadline passed fail: this node is not catching up (cut off from
 * the leader, or far behind). */
static void expire_index_waits(lm_repl *r)
{
    uint64_t now = uv_now(r->loop);
    for (struct fence **at = &r->index_waits; *at;) {
        struct fence *f = *at;
        if (f->deadline > now) {
            at = &f->next;
            continue;
        }
        *at = f->next;
        char why[160];
        snprintf(why, sizeof why, "this node has not applied log index %llu in time",
                 (unsigned long long)f->target);
        f->cb(f->data, -ETIMEDOUT, why);
        lm_free(f);
    }
}

static void tick_cb(uv_timer_t *t)
{
    refresh_role(t->data);
    expire_index_waits(t->data);
}

/* ---------------------------------------------------------------- results */

static void cancel_index_waits(lm_repl *r, int rc, const char *why)
{
    while (r->index_waits) {
        struct fence *f = r->index_waits;
        r->index_waits = f->next;
        f->cb(f->data, rc, why);
        lm_free(f);
    }
}

static void on_done(uv_async_t *h)
{
    lm_repl *r = h->data;
    pthread_mutex_lock(&r->mu);
    struct item *list = r->finished.head;
    r->finished.head = r->finished.tail = NULL;
    bool failed = r->failed, applied = list != NULL;
    uint64_t db_index = r->db_index;
    char why[256];
    snprintf(why, sizeof why, "%s", r->failure);
    pthread_mutex_unlock(&r->mu);
    while (list) {
        struct item *it = list;
        list = it->next;
        r->done = it->qseq;
        struct pwrite *w = r->applying.head;
        if (it->kind == ITEM_ENTRY && w && w->qseq == it->qseq) {
            struct lm_repl_result res = {.rc = it->rc, .index = it->result_index,
                                         .count = it->count};
            snprintf(res.message, sizeof res.message, "%s", it->message);
            write_finish(r, w, &res);
        }
        lm_free(it);
    }
    while (r->fences && r->fences->target <= r->done) {
        struct fence *f = r->fences;
        if (!(r->fences = f->next))
            r->fences_tail = NULL;
        f->cb(f->data, 0, "");
        lm_free(f);
    }
    while (r->index_waits && r->index_waits->target <= db_index) {
        struct fence *f = r->index_waits;
        r->index_waits = f->next;
        f->cb(f->data, 0, "");
        lm_free(f);
    }
    if (r->barrier_wait && r->done >= r->barrier_target)
        become_ready(r);
    if (applied && r->on_applied && !failed)
        r->on_applied(r->fail_data, db_index);
    if (failed && !r->failed_seen) {
        r->failed_seen = true;
        r->ready = false;
        wlist_fail(r, &r->held, LM_EFAILED, why);
        wlist_fail(r, &r->queued, LM_EFAILED, why);
        wlist_fail(r, &r->applying, LM_EFAILED, why);
        cancel_index_waits(r, LM_EFAILED, why);
        if (r->on_failure)
            r->on_failure(r->fail_data, why);
    }
}

/* ---------------------------------------------------------------- writes */

int lm_repl_write(lm_repl *r, uint64_t client_id, uint64_t request_id, uint16_t type,
                  const void *payload, size_t n, lm_repl_write_cb cb, void *data,
                  struct lm_error *err)
{
    if (!r || !cb || (n && !payload))
        return lm__fail(err, LM_EBADARG, "a write needs a payload and a callback");
    if (r->closing)
        return lm__fail(err, LM_ECANCELED, "replication is closing");
    if (r->failed_seen)
        return lm__fail(err, LM_EFAILED, "this node failed; restart it");
    if (n > LM_REPL_MAX_ENTRY)
        return lm__fail(err, LM_ELIMIT, "a write of %zu bytes is over the limit of %u", n,
                        LM_REPL_MAX_ENTRY);
    refresh_role(r);
    if (!is_leader(r))
        return lm__fail(err, LM_ENOTLEADER, "node %llu is not the leader",
                        (unsigned long long)r->id);
    if (r->ready) {
        /* An early verdict, if the apply thread is not writing right now: the loop never
         * waits for it. Unchecked writes get the same verdict when applied. */
        int rc = lm__db_check_record(r->db, type, payload, n, false, err);
        if (rc && rc != -EBUSY)
            return rc;
    }
    struct pwrite *w = write_new(ENTRY_MUTATION, type, client_id, request_id, payload, n, cb,
                                 data);
    if (!w)
        return lm__fail(err, -ENOMEM, "out of memory queueing a write of %zu bytes", n);
    if (r->ready) {
        write_queue(r, w);
    } else {
        w->state = W_HELD; /* checked and sent once the barrier is applied */
        wl_push(&r->held, w);
    }
    return 0;
}

/* A member entry, through the same path as writes (no deduplication: a random request
 * id only tells it apart when it comes back). */
static int write_member(lm_repl *r, enum member_op op, const struct lm_repl_member *m,
                        lm_repl_write_cb cb, void *data)
{
    uint8_t body[8 + 1 + LM_REPL_ADDR_MAX];
    put_u64(body, m->id);
    size_t len = strnlen(m->client, LM_REPL_ADDR_MAX - 1);
    body[8] = (uint8_t)len;
    memcpy(body + 9, m->client, len);
    uint64_t nonce = 0;
    if (getrandom(&nonce, sizeof nonce, 0) != sizeof nonce)
        nonce = mix((uint64_t)(uintptr_t)m ^ r->pushed);
    struct pwrite *w = write_new(ENTRY_MEMBER, (uint16_t)op, 0, nonce | 1, body, 9 + len, cb,
                                 data);
    if (!w)
        return -ENOMEM;
    if (r->ready) {
        write_queue(r, w);
    } else {
        w->state = W_HELD;
        wl_push(&r->held, w);
    }
    return 0;
}

int lm_repl_leader(lm_repl *r, uint64_t *id, char client[LM_REPL_ADDR_MAX])
{
    raft_id lid = 0;
    const char *address = NULL;
    raft_leader(&r->raft, &lid, &address);
    client[0] = 0;
    *id = lid;
    if (!lid)
        return LM_ENOTFOUND;
    pthread_mutex_lock(&r->mu);
    const struct member *m = member_find(r, lid);
    if (m)
        snprintf(client, LM_REPL_ADDR_MAX, "%s", m->client);
    pthread_mutex_unlock(&r->mu);
    return 0;
}

/* ---------------------------------------------------------------- fences */

static void fence_cb(struct raft_barrier *req, int status)
{
    struct fence *f = req->data;
    lm_repl *r = f->r;
    if (status || r->closing) {
        f->cb(f->data, r->closing ? LM_ECANCELED : LM_ENOTLEADER, raft_strerror(status));
        lm_free(f);
        return;
    }
    /* every command before the barrier has been handed to the apply thread */
    f->target = r->pushed;
    if (r->done >= f->target) {
        f->cb(f->data, 0, "");
        lm_free(f);
        return;
    }
    f->next = NULL;
    if (r->fences_tail)
        r->fences_tail->next = f;
    else
        r->fences = f;
    r->fences_tail = f;
}

int lm_repl_fence(lm_repl *r, lm_repl_done_cb cb, void *data)
{
    if (r->closing)
        return LM_ECANCELED;
    if (!is_leader(r))
        return LM_ENOTLEADER;
    struct fence *f = lm_calloc(1, sizeof *f);
    if (!f)
        return -ENOMEM;
    f->r = r;
    f->cb = cb;
    f->data = data;
    f->req.data = f;
    int rv = raft_barrier(&r->raft, &f->req, fence_cb);
    if (rv) {
        lm_free(f);
        return from_raft(rv);
    }
    return 0;
}

int lm_repl_wait_index(lm_repl *r, uint64_t index, unsigned timeout_ms, lm_repl_done_cb cb,
                       void *data)
{
    if (r->closing)
        return LM_ECANCELED;
    pthread_mutex_lock(&r->mu);
    uint64_t db_index = r->db_index;
    bool failed = r->failed;
    pthread_mutex_unlock(&r->mu);
    if (failed)
        return LM_EFAILED;
    if (db_index >= index) {
        cb(data, 0, "");
        return 0;
    }
    struct fence *f = lm_calloc(1, sizeof *f);
    if (!f)
        return -ENOMEM;
    f->r = r;
    f->cb = cb;
    f->data = data;
    f->target = index;
    f->deadline = uv_now(r->loop) + timeout_ms;
    struct fence **at = &r->index_waits; /* kept sorted: on_done pops from the front */
    while (*at && (*at)->target <= index)
        at = &(*at)->next;
    f->next = *at;
    *at = f;
    return 0;
}

uint64_t lm_repl_db_index(lm_repl *r)
{
    pthread_mutex_lock(&r->mu);
    uint64_t i = r->db_index;
    pthread_mutex_unlock(&r->mu);
    return i;
}

/* ---------------------------------------------------------------- membership */

static void change_step(lm_repl *r, struct change *c);

static void change_finish(struct change *c, int rc, const char *why)
{
    c->cb(c->data, rc, why ? why : "");
    lm_free(c);
}

static void change_cb(struct raft_change *req, int status)
{
    struct change *c = req->data;
    if (status) {
        change_finish(c, c->r->closing ? LM_ECANCELED : from_raft(status),
                      raft_strerror(status));
    } else if (c->stage == CH_ADD) {
        c->stage = CH_ASSIGN;
        change_step(c->r, c);
    } else {
        change_finish(c, 0, NULL);
    }
}

static void change_written(void *data, const struct lm_repl_result *res)
{
    struct change *c = data;
    if (res->rc) {
        change_finish(c, res->rc, res->message);
        return;
    }
    c->stage = c->stage == CH_MEMBER_SET ? CH_ADD : CH_REMOVE;
    change_step(c->r, c);
}

/* add: member entry (change_start), raft_add (spare), raft_assign (voter, after Raft's
 * catch-up rounds); remove: member entry, raft_remove. */
static void change_step(lm_repl *r, struct change *c)
{
    int rv;
    c->req.data = c;
    if (c->stage == CH_ADD)
        rv = raft_add(&r->raft, &c->req, c->m.id, c->m.address, change_cb);
    else if (c->stage == CH_ASSIGN)
        rv = raft_assign(&r->raft, &c->req, c->m.id, RAFT_VOTER, change_cb);
    else
        rv = raft_remove(&r->raft, &c->req, c->m.id, change_cb);
    if (rv)
        change_finish(c, from_raft(rv),
                      raft_errmsg(&r->raft)[0] ? raft_errmsg(&r->raft) : raft_strerror(rv));
}

static int change_start(lm_repl *r, const struct lm_repl_member *m, enum change_stage first,
                        lm_repl_done_cb cb, void *data)
{
    if (r->closing)
        return LM_ECANCELED;
    if (!is_leader(r))
        return LM_ENOTLEADER;
    if (!m->id)
        return LM_EBADARG;
    struct change *c = lm_calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->r = r;
    c->m = *m;
    c->stage = first;
    c->cb = cb;
    c->data = data;
    int rc = first == CH_MEMBER_SET ? write_member(r, MEMBER_SET, m, change_written, c)
                                    : write_member(r, MEMBER_REMOVE, m, change_written, c);
    if (rc)
        lm_free(c);
    return rc;
}

int lm_repl_add(lm_repl *r, const struct lm_repl_member *m, lm_repl_done_cb cb, void *data)
{
    if (!m || !m->address[0])
        return LM_EBADARG;
    return change_start(r, m, CH_MEMBER_SET, cb, data);
}

int lm_repl_remove(lm_repl *r, uint64_t id, lm_repl_done_cb cb, void *data)
{
    struct lm_repl_member m = {.id = id};
    return change_start(r, &m, CH_MEMBER_REMOVE, cb, data);
}

/* ---------------------------------------------------------------- status */

const char *lm_repl_role_name(enum lm_repl_role role)
{
    static const char *const names[] = {"unavailable", "follower", "candidate", "leader"};
    return (unsigned)role < 4 ? names[role] : "unknown";
}

void lm_repl_status(lm_repl *r, struct lm_repl_status *out)
{
    memset(out, 0, sizeof *out);
    out->id = r->id;
    switch (raft_state(&r->raft)) {
    case RAFT_FOLLOWER: out->role = LM_REPL_FOLLOWER; break;
    case RAFT_CANDIDATE: out->role = LM_REPL_CANDIDATE; break;
    case RAFT_LEADER: out->role = LM_REPL_LEADER; break;
    default: out->role = LM_REPL_UNAVAILABLE; break;
    }
    out->ready = r->ready && out->role == LM_REPL_LEADER &&
                 r->raft.current_term == r->ready_term;
    out->term = r->raft.current_term;
    lm_repl_leader(r, &out->leader_id, out->leader_client);
    out->last_index = raft_last_index(&r->raft);
    out->commit_index = r->raft.commit_index;
    out->applied_index = raft_last_applied(&r->raft);
    out->snapshot_index = r->raft.log.snapshot.last_index;
    out->backlog = r->pushed - r->done;
    pthread_mutex_lock(&r->mu);
    out->failed = r->failed;
    snprintf(out->failure, sizeof out->failure, "%s", r->failure);
    out->db_index = r->db_index;
    out->snapshots_taken = r->snapshots_taken;
    out->snapshots_restored = r->snapshots_restored;
    const struct raft_configuration *cf = &r->raft.configuration;
    for (unsigned i = 0; i < cf->n && out->n_members < LM_REPL_MAX_MEMBERS; i++) {
        struct lm_repl_member *m = &out->members[out->n_members].m;
        m->id = cf->servers[i].id;
        snprintf(m->address, sizeof m->address, "%s", cf->servers[i].address);
        const struct member *known = member_find(r, m->id);
        if (known)
            snprintf(m->client, sizeof m->client, "%s", known->client);
        out->members[out->n_members++].voting = (enum lm_repl_voting)cf->servers[i].role;
    }
    pthread_mutex_unlock(&r->mu);
}

/* ---------------------------------------------------------------- transport */

/* raft_uv_tcp 0.15 leaves Nagle's algorithm on, and each of its connections carries
 * messages one way only (replies travel on the peer's own connection): a small
 * AppendEntries behind an unacknowledged one then waits for the peer's delayed ACK,
 * 40 ms. The wrappers below set TCP_NODELAY on every stream the transport hands Raft,
 * through the public transport interface. */

static lm_repl *repl_of_transport(struct raft_uv_transport *t)
{
    return (lm_repl *)((char *)t - offsetof(struct lm_repl, transport));
}

static void nodelay_accept(struct raft_uv_transport *t, raft_id id, const char *address,
                           struct uv_stream_s *stream)
{
    lm_repl *r = repl_of_transport(t);
    uv_tcp_nodelay((uv_tcp_t *)stream, 1);
    r->raft_accept(t, id, address, stream);
}

static int nodelay_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    lm_repl *r = repl_of_transport(t);
    r->raft_accept = cb;
    return r->tcp_listen(t, nodelay_accept);
}

/* raft_uv gives every connect the same callback (its client's); kept once per process
 * since the request only carries raft_uv's own data. */
static _Atomic(raft_uv_connect_cb) raft_connect_cb;

static void nodelay_connected(struct raft_uv_connect *req, struct uv_stream_s *stream,
                              int status)
{
    raft_uv_connect_cb cb = atomic_load(&raft_connect_cb);
    if (status == 0 && stream)
        uv_tcp_nodelay((uv_tcp_t *)stream, 1);
    req->cb = cb;
    cb(req, stream, status);
}

static int nodelay_connect(struct raft_uv_transport *t, struct raft_uv_connect *req,
                           raft_id id, const char *address, raft_uv_connect_cb cb)
{
    lm_repl *r = repl_of_transport(t);
    raft_uv_connect_cb known = NULL;
    if (!atomic_compare_exchange_strong(&raft_connect_cb, &known, cb) && known != cb)
        return r->tcp_connect(t, req, id, address, cb); /* not the one kept: as it is */
    return r->tcp_connect(t, req, id, address, nodelay_connected);
}

/* ---------------------------------------------------------------- open / close */

static void free_repl(lm_repl *r)
{
    struct item *it;
    while ((it = fifo_pop(&r->finished)))
        lm_free(it);
    while ((it = fifo_pop(&r->todo))) {
        if (it->kind == ITEM_RESTORE)
            raft_free(it->data);
        else
            lm_free(it->data);
        lm_free(it);
    }
    snapshot_bufs_free(r->snap_bufs, r->snap_n);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->work_cond);
    pthread_cond_destroy(&r->snap_cond);
    lm_free(r->clients);
    lm_free(r);
}

static void stop_thread(lm_repl *r)
{
    if (!r->thread_started)
        return;
    struct item *stop = lm_calloc(1, sizeof *stop);
    pthread_mutex_lock(&r->mu);
    r->stopping = true;
    if (stop) {
        stop->kind = ITEM_STOP;
        fifo_push(&r->todo, stop);
    }
    pthread_cond_signal(&r->work_cond);
    pthread_mutex_unlock(&r->mu);
    if (!stop)
        return; /* cannot happen in practice; the thread is left waiting */
    pthread_join(r->thread, NULL);
    r->thread_started = false;
}

static void handle_closed(uv_handle_t *h)
{
    lm_repl *r = h->data;
    if (--r->open_handles)
        return;
    if (r->raft_inited) {
        raft_uv_close(&r->io);
        raft_uv_tcp_close(&r->transport);
    }
    void (*cb)(void *) = r->close_cb;
    void *data = r->close_data;
    free_repl(r);
    if (cb)
        cb(data);
}

static void raft_closed(struct raft *raft)
{
    lm_repl *r = raft->data;
    /* Raft answered its requests (LEADERSHIPLOST); what is left never will be. */
    wlist_fail(r, &r->proposed, LM_ECANCELED, "replication closed");
    wlist_fail(r, &r->applying, LM_ECANCELED, "replication closed");
    while (r->fences) {
        struct fence *f = r->fences;
        r->fences = f->next;
        f->cb(f->data, LM_ECANCELED, "replication closed");
        lm_free(f);
    }
    r->fences_tail = NULL;
    cancel_index_waits(r, LM_ECANCELED, "replication closed");
    stop_thread(r); /* before the async handle goes */
    uv_close((uv_handle_t *)&r->tick, handle_closed);
    uv_close((uv_handle_t *)&r->flush, handle_closed);
    uv_close((uv_handle_t *)&r->done_async, handle_closed);
}

static void shut_down(lm_repl *r)
{
    r->closing = true;
    uv_timer_stop(&r->tick);
    uv_idle_stop(&r->flush);
    wlist_fail(r, &r->held, LM_ECANCELED, "replication closed");
    wlist_fail(r, &r->queued, LM_ECANCELED, "replication closed");
    r->raft.data = r;
    raft_close(&r->raft, raft_closed);
}

void lm_repl_close(lm_repl *r, void (*cb)(void *data), void *data)
{
    if (!r || r->closing)
        return;
    r->close_cb = cb;
    r->close_data = data;
    shut_down(r);
}

static int open_fail(lm_repl *r, struct lm_error *err, int rc, const char *what)
{
    lm__fail(err, rc, "%s: %s", what, r->raft_inited ? raft_errmsg(&r->raft) : lm_strerror(rc));
    shut_down(r); /* frees r once the loop has run the closes */
    return rc;
}

int lm_repl_open(uv_loop_t *loop, const struct lm_repl_opts *o, lm_repl **out,
                 struct lm_error *err)
{
    if (!loop || !o || !o->id || !o->dir || !o->db || !o->n_members || !o->members)
        return lm__fail(err, LM_EBADARG, "replication needs a loop, an id, a directory, a "
                        "database and the member list");
    const struct lm_repl_member *self = NULL;
    for (size_t i = 0; i < o->n_members; i++)
        if (o->members[i].id == o->id)
            self = &o->members[i];
    if (!self || !self->address[0])
        return lm__fail(err, LM_EBADARG, "node %llu is not in the member list",
                        (unsigned long long)o->id);
    if (o->n_members > LM_REPL_MAX_MEMBERS)
        return lm__fail(err, LM_EBADARG, "at most %d members", LM_REPL_MAX_MEMBERS);
    if (mkdir(o->dir, 0755) && errno != EEXIST)
        return lm__fail(err, -errno, "cannot create '%s': %s", o->dir, strerror(errno));
    lm_repl *r = lm_calloc(1, sizeof *r);
    if (r)
        r->clients = lm_calloc(CLIENT_SLOTS, sizeof *r->clients);
    if (!r || !r->clients) {
        lm_free(r);
        return lm__fail(err, -ENOMEM, "out of memory opening replication");
    }
    r->loop = loop;
    r->db = o->db;
    r->id = o->id;
    snprintf(r->address, sizeof r->address, "%s", self->address);
    r->max_batch_bytes = o->max_batch_bytes ? o->max_batch_bytes : 8u << 20;
    r->on_failure = o->on_failure;
    r->fail_data = o->data;
    r->on_applied = o->on_applied;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->work_cond, NULL);
    pthread_cond_init(&r->snap_cond, NULL);
    for (size_t i = 0; i < o->n_members; i++)
        member_set(r, o->members[i].id, o->members[i].client);

    int rv = raft_uv_tcp_init(&r->transport, loop);
    if (rv) {
        free_repl(r);
        return lm__fail(err, from_raft(rv), "starting Raft's TCP transport: %s",
                        raft_strerror(rv));
    }
    r->tcp_listen = r->transport.listen;
    r->tcp_connect = r->transport.connect;
    r->transport.listen = nodelay_listen;
    r->transport.connect = nodelay_connect;
    if ((rv = raft_uv_init(&r->io, loop, o->dir, &r->transport))) {
        lm__fail(err, rv == RAFT_NOTFOUND ? LM_ENOTFOUND : from_raft(rv),
                 "opening Raft's directory '%s': %s", o->dir, r->io.errmsg);
        raft_uv_tcp_close(&r->transport);
        free_repl(r);
        return err ? err->code : LM_EINTERNAL;
    }
    /* raft_uv 0.15 implements async_work (an io version 2 method) but says version 1,
     * and raft_init then refuses snapshot_async; the version is read nowhere else */
    if (r->io.async_work && r->io.version < 2)
        r->io.version = 2;
    /* chunk segments are LZ4 already; the rest is small */
    raft_uv_set_snapshot_compression(&r->io, false);
    raft_uv_set_connect_retry_delay(&r->io, 100);
    if ((rv = raft_uv_tcp_set_bind_address(&r->transport, r->address)) == 0) {
        r->fsm = (struct raft_fsm){.version = 3, .data = r, .apply = fsm_apply,
                                   .snapshot = fsm_snapshot, .restore = fsm_restore,
                                   .snapshot_finalize = fsm_snapshot_finalize,
                                   .snapshot_async = fsm_snapshot_async};
        rv = raft_init(&r->raft, &r->io, &r->fsm, o->id, r->address);
    }
    if (rv) {
        lm__fail(err, from_raft(rv), "starting Raft on %s: %s", r->address,
                 raft_errmsg(&r->raft)[0] ? raft_errmsg(&r->raft) : raft_strerror(rv));
        raft_uv_close(&r->io);
        raft_uv_tcp_close(&r->transport);
        free_repl(r);
        return err ? err->code : from_raft(rv);
    }
    r->raft_inited = true;
    r->raft.data = r;
    raft_set_election_timeout(&r->raft, o->election_ms ? o->election_ms : 200);
    raft_set_heartbeat_timeout(&r->raft, o->heartbeat_ms ? o->heartbeat_ms : 20);
    raft_set_snapshot_threshold(&r->raft, o->snapshot_threshold ? o->snapshot_threshold : 1024);
    raft_set_snapshot_trailing(&r->raft, o->snapshot_trailing ? o->snapshot_trailing : 128);
    raft_set_pre_vote(&r->raft, true); /* a node back from a pause does not depose */

    uv_timer_init(loop, &r->tick);
    uv_idle_init(loop, &r->flush);
    uv_async_init(loop, &r->done_async, on_done);
    r->tick.data = r->flush.data = r->done_async.data = r;
    r->open_handles = 3;
    if (pthread_create(&r->thread, NULL, apply_main, r))
        return open_fail(r, err, -EAGAIN, "starting the apply thread");
    r->thread_started = true;

    if (!o->join) {
        struct raft_configuration conf;
        raft_configuration_init(&conf);
        for (size_t i = 0; i < o->n_members && !rv; i++)
            rv = raft_configuration_add(&conf, o->members[i].id, o->members[i].address,
                                        RAFT_VOTER);
        if (!rv)
            rv = raft_bootstrap(&r->raft, &conf);
        raft_configuration_close(&conf);
        if (rv && rv != RAFT_CANTBOOTSTRAP) /* CANTBOOTSTRAP: started before */
            return open_fail(r, err, from_raft(rv), "bootstrapping the cluster");
    }
    if ((rv = raft_start(&r->raft)))
        return open_fail(r, err, from_raft(rv), "starting Raft");
    uv_timer_start(&r->tick, tick_cb, TICK_MS, TICK_MS);
    *out = r;
    return 0;
}

/* ---------------------------------------------------------------- member lists */

static int parse_addr(const char *s, size_t n, const char *host_of, char out[LM_REPL_ADDR_MAX])
{
    bool digits = n > 0;
    for (size_t i = 0; i < n; i++)
        digits = digits && s[i] >= '0' && s[i] <= '9';
    if (digits && host_of) { /* a bare port: the host of the Raft address */
        const char *colon = strrchr(host_of, ':');
        size_t hn = colon ? (size_t)(colon - host_of) : strlen(host_of);
        if (hn + 1 + n >= LM_REPL_ADDR_MAX)
            return -1;
        snprintf(out, LM_REPL_ADDR_MAX, "%.*s:%.*s", (int)hn, host_of, (int)n, s);
        return 0;
    }
    const char *colon = memchr(s, ':', n);
    if (!colon || colon == s || colon == s + n - 1 || n >= LM_REPL_ADDR_MAX)
        return -1;
    snprintf(out, LM_REPL_ADDR_MAX, "%.*s", (int)n, s);
    return 0;
}

int lm_repl_parse_members(const char *spec, struct lm_repl_member *out, size_t cap,
                          struct lm_error *err)
{
    size_t n = 0;
    const char *p = spec ? spec : "";
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char item[256];
        if (len >= sizeof item || n >= cap)
            return lm__fail(err, LM_EBADARG, "member list too long at '%.*s'", (int)len, p);
        memcpy(item, p, len);
        item[len] = 0;
        char *eq = strchr(item, '='), *slash = strchr(item, '/'), *stop = NULL;
        struct lm_repl_member m = {0};
        m.id = eq ? strtoull(item, &stop, 10) : 0;
        if (!eq || stop != eq || !m.id)
            return lm__fail(err, LM_EBADARG, "'%s': expected ID=HOST:PORT[/CLIENT]", item);
        char *raft = eq + 1;
        size_t rn = slash ? (size_t)(slash - raft) : strlen(raft);
        if (parse_addr(raft, rn, NULL, m.address) ||
            (slash && parse_addr(slash + 1, strlen(slash + 1), m.address, m.client)))
            return lm__fail(err, LM_EBADARG, "'%s': expected ID=HOST:PORT[/CLIENT]", item);
        for (size_t i = 0; i < n; i++)
            if (out[i].id == m.id)
                return lm__fail(err, LM_EBADARG, "member %llu is listed twice",
                                (unsigned long long)m.id);
        out[n++] = m;
        p += len + (end ? 1 : 0);
    }
    if (!n)
        return lm__fail(err, LM_EBADARG, "the member list is empty");
    return (int)n;
}
