/* io_fault.c - an lm_io backend for tests: fails chosen calls and simulates power loss.
 *
 * Model. Every file touched through the backend is a node holding its durable image
 * (contents as of its last successful fsync/fdatasync) and the list of writes and
 * truncations made since. Two name tables map paths to nodes: `cur`, the names as they
 * are now (what the inner backend shows), and `dur`, the names as they were at the last
 * sync_dir of each path's directory. A crash rebuilds, through the inner backend, every
 * path of `dur` from its node's durable image (plus a torn tail when asked) and removes
 * paths only `cur` has. Paths are compared as strings; a path's directory is
 * lm_io_parent() of it. Bookkeeping that runs out of memory returns -ENOMEM after the
 * inner call succeeded, and the model may then differ from the disk: tests only.
 */
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>

#include "alloc.h"

/* ---------------------------------------------------------------- model */

struct bytes {
    uint8_t *p;
    size_t len, cap;
};

enum { OP_WRITE, OP_TRUNC };

struct change {
    int kind;
    uint64_t off;   /* OP_WRITE: where; OP_TRUNC: the new size */
    size_t len;     /* OP_WRITE */
    uint8_t *data;  /* OP_WRITE: a copy of what was written */
};

struct node {
    struct bytes durable;
    struct change *changes;
    size_t n_changes, cap_changes;
    struct node *after_crash;  /* during a crash: the node that replaces this one */
    struct node *next;         /* every node, for freeing */
};

struct entry {
    char *path;
    struct node *node;
};

struct names {
    struct entry *v;
    size_t n, cap;
};

struct fd_slot {
    struct node *node; /* NULL when the fd names no tracked file */
    bool open, dead;
};

struct arm {
    uint64_t at; /* fail the call whose count reaches this; 0 = disarmed */
    int err;
    bool persist;
};

struct fault {
    struct lm_io io; /* the table handed out; io.ctx points back here */
    const struct lm_io *inner;
    pthread_mutex_t mu;
    uint64_t rng;
    struct node *nodes;
    struct names cur, dur;
    struct fd_slot *fds;
    size_t n_fds;
    uint64_t count[LM_IO_OP_COUNT];
    struct arm arm[LM_IO_OP_COUNT];
};

static uint64_t next_random(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Makes room for `need` elements of `size` bytes in *v (capacity *cap), doubling. */
static int grow(void **v, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 16;
    while (c < need)
        c *= 2;
    void *p = lm_realloc(*v, c * size);
    if (!p)
        return -ENOMEM;
    *v = p;
    *cap = c;
    return 0;
}

static int bytes_resize(struct bytes *b, size_t len)
{
    if (grow((void **)&b->p, &b->cap, len, 1))
        return -ENOMEM;
    if (len > b->len)
        memset(b->p + b->len, 0, len - b->len);
    b->len = len;
    return 0;
}

static int bytes_write(struct bytes *b, uint64_t off, const void *data, size_t n)
{
    if (!n)
        return 0;
    if (off + n > b->len && bytes_resize(b, (size_t)(off + n)))
        return -ENOMEM;
    memcpy(b->p + off, data, n);
    return 0;
}

static int change_apply(struct bytes *b, const struct change *c, size_t len)
{
    if (c->kind == OP_TRUNC)
        return bytes_resize(b, (size_t)c->off);
    return bytes_write(b, c->off, c->data, len);
}

static void changes_clear(struct node *nd)
{
    for (size_t i = 0; i < nd->n_changes; i++)
        lm_free(nd->changes[i].data);
    nd->n_changes = 0;
}

static int change_add(struct node *nd, int kind, uint64_t off, const void *data, size_t len)
{
    if (grow((void **)&nd->changes, &nd->cap_changes, nd->n_changes + 1,
             sizeof *nd->changes))
        return -ENOMEM;
    struct change c = {.kind = kind, .off = off, .len = len};
    if (kind == OP_WRITE) {
        if (!(c.data = lm_alloc(len)))
            return -ENOMEM;
        memcpy(c.data, data, len);
    }
    nd->changes[nd->n_changes++] = c;
    return 0;
}

static struct node *node_new(struct fault *f)
{
    struct node *nd = lm_calloc(1, sizeof *nd);
    if (nd) {
        nd->next = f->nodes;
        f->nodes = nd;
    }
    return nd;
}

static void nodes_free(struct node *nd)
{
    while (nd) {
        struct node *next = nd->next;
        changes_clear(nd);
        lm_free(nd->changes);
        lm_free(nd->durable.p);
        lm_free(nd);
        nd = next;
    }
}

static struct entry *names_find(struct names *t, const char *path)
{
    for (size_t i = 0; i < t->n; i++)
        if (!strcmp(t->v[i].path, path))
            return &t->v[i];
    return NULL;
}

/* Points path at node in t (adding or replacing the entry). */
static int names_set(struct names *t, const char *path, struct node *nd)
{
    struct entry *e = names_find(t, path);
    if (e) {
        e->node = nd;
        return 0;
    }
    if (grow((void **)&t->v, &t->cap, t->n + 1, sizeof *t->v))
        return -ENOMEM;
    char *p = lm_strdup(path);
    if (!p)
        return -ENOMEM;
    t->v[t->n++] = (struct entry){p, nd};
    return 0;
}

static void names_remove(struct names *t, const char *path)
{
    struct entry *e = names_find(t, path);
    if (!e)
        return;
    lm_free(e->path);
    *e = t->v[--t->n];
}

static void names_clear(struct names *t)
{
    for (size_t i = 0; i < t->n; i++)
        lm_free(t->v[i].path);
    t->n = 0;
}

/* The node behind path, taking a file that existed before the backend saw it as
 * durable as found. *out is NULL when no tracked file has that name (none exists, or it
 * is not a regular file the backend can read). */
static int adopt(struct fault *f, const char *path, struct node **out)
{
    *out = NULL;
    struct entry *e = names_find(&f->cur, path);
    if (e) {
        *out = e->node;
        return 0;
    }
    if (names_find(&f->dur, path))
        return 0; /* known: removed, and the removal not yet synced */
    const struct lm_io *in = f->inner;
    int fd = -1;
    if (in->open(in->ctx, path, O_RDONLY, 0, &fd))
        return 0;
    uint64_t size = 0;
    size_t got = 0;
    struct node *nd = NULL;
    struct bytes img = {0};
    int rc = in->size(in->ctx, fd, &size);
    if (!rc)
        rc = bytes_resize(&img, (size_t)size);
    if (!rc)
        rc = in->pread(in->ctx, fd, img.p, (size_t)size, 0, &got);
    in->close(in->ctx, fd);
    if (rc) { /* a directory or unreadable: not tracked */
        lm_free(img.p);
        return rc == -ENOMEM ? rc : 0;
    }
    img.len = got;
    if (!(nd = node_new(f))) {
        lm_free(img.p);
        return -ENOMEM;
    }
    nd->durable = img;
    if ((rc = names_set(&f->cur, path, nd)) || (rc = names_set(&f->dur, path, nd)))
        return rc;
    *out = nd;
    return 0;
}

/* ---------------------------------------------------------------- call gate */

static struct fault *fault_of(void *ctx) { return ctx; }

/* Counts a call of op and returns the armed error when this call must fail. */
static int gate(struct fault *f, enum lm_io_op op)
{
    int rc = 0;
    enum lm_io_op ops[2] = {op, LM_IO_OP_ANY};
    for (int i = 0; i < (op == LM_IO_OP_CLOSE ? 1 : 2); i++) {
        struct arm *a = &f->arm[ops[i]];
        uint64_t c = ++f->count[ops[i]];
        if (!rc && a->at && (c == a->at || (a->persist && c > a->at)))
            rc = -a->err;
    }
    return rc;
}

static struct fd_slot *slot(struct fault *f, int fd)
{
    return fd >= 0 && (size_t)fd < f->n_fds && f->fds[fd].open ? &f->fds[fd] : NULL;
}

/* Gate for calls on a descriptor: armed failure, or -EIO after a crash. */
static int fd_gate(struct fault *f, enum lm_io_op op, int fd, struct fd_slot **s)
{
    int rc = gate(f, op);
    *s = slot(f, fd);
    if (!rc && *s && (*s)->dead)
        rc = -EIO;
    return rc;
}

/* ---------------------------------------------------------------- table */

static int f_open(void *ctx, const char *path, int flags, unsigned mode, int *fd)
{
    struct fault *f = fault_of(ctx);
    pthread_mutex_lock(&f->mu);
    struct node *nd = NULL;
    int rc = gate(f, LM_IO_OP_OPEN);
    if (!rc)
        rc = adopt(f, path, &nd);
    int nfd = -1;
    if (!rc)
        rc = f->inner->open(f->inner->ctx, path, flags, mode, &nfd);
    if (!rc && (size_t)nfd >= f->n_fds) {
        size_t n = (size_t)nfd + 16;
        struct fd_slot *v = lm_realloc(f->fds, n * sizeof *v);
        if (v) {
            memset(v + f->n_fds, 0, (n - f->n_fds) * sizeof *v);
            f->fds = v;
            f->n_fds = n;
        } else {
            rc = -ENOMEM;
        }
    }
    if (!rc && !nd && (flags & O_CREAT)) { /* this open created the file */
        if (!(nd = node_new(f)))
            rc = -ENOMEM;
        else
            rc = names_set(&f->cur, path, nd);
    } else if (!rc && nd && (flags & O_TRUNC)) {
        rc = change_add(nd, OP_TRUNC, 0, NULL, 0);
    }
    if (!rc) {
        f->fds[nfd] = (struct fd_slot){.node = nd, .open = true};
        *fd = nfd;
    } else if (nfd >= 0) {
        f->inner->close(f->inner->ctx, nfd);
    }
    pthread_mutex_unlock(&f->mu);
    return rc;
}

static int f_close(void *ctx, int fd)
{
    struct fault *f = fault_of(ctx);
    pthread_mutex_lock(&f->mu);
    int rc = gate(f, LM_IO_OP_CLOSE);
    struct fd_slot *s = slot(f, fd);
    if (s)
        *s = (struct fd_slot){0};
    int irc = f->inner->close(f->inner->ctx, fd); /* released even when failed */
    pthread_mutex_unlock(&f->mu);
    return rc ? rc : irc;
}

static int f_pread(void *ctx, int fd, void *buf, size_t n, uint64_t off, size_t *got)
{
    struct fault *f = fault_of(ctx);
    pthread_mutex_lock(&f->mu);
    struct fd_slot *s;
    int rc = fd_gate(f, LM_IO_OP_PREAD, fd, &s);
    if (!rc)
        rc = f->inner->pread(f->inner->ctx, fd, buf, n, off, got);
    pthread_mutex_unlock(&f->mu);
    return rc;
}

static int f_pwrite(void *ctx, int fd, const void *buf, size_t n, uint64_t off)
{
    struct fault *f = fault_of(ctx);
    pthread_mutex_lock(&f->mu);
    struct fd_slot *s;
    int rc = fd_gate(f, LM_IO_OP_PWRITE, fd, &s);
    if (!rc)
        rc = f->inner->pwrite(f->inner->ctx, fd, buf, n, off);
    if (!rc && s && s->node)
        rc = change_add(s->node, OP_WRITE, off, buf, n);
    pthread_mutex_unlock(&f->mu);
    return rc;
}

static int sync_file(void *ctx, int fd, enum lm_io_op op)
{
    struct fault *f = fault_of(ctx);
    pthread_mutex_lock(&f->mu);
    struct fd_slot *s;
    int rc = fd_gate(f, op, fd, &s);
    if (!rc)
        rc = op == LM_IO_OP_FSYNC ? f->inner->fsync(f->inner->ctx, fd)
                                  : f->inner->fdatasync(f->inner->ctx, fd);
    if (!rc && s && s->node) {
        struct node *nd = s->node;
        for (size_t i = 0; !rc && i < nd->n_changes; i++)
            rc = change_apply(&nd->durable, &nd->changes[i], nd->changes[i].len);
        changes_clear(nd);
    }
    pthread_mutex_unlock(&f->mu);
    return rc;
}

static int f_fsync(void *ctx, int fd) { return sync_file(ctx, fd, LM_IO_OP_FSYNC); }
static int f_fdatasync(void *ctx, int fd) { return sync_file(ctx, fd, LM_IO_OP_FDATASYNC); }

static int f_ftruncate(void *ctx, int fd, uint64_t size)
{
    struct fault *f = fault_of(ctx);
    pthread_mutex_lock(&f->mu);
    struct fd_slot *s;
    int rc = fd_gate(f, LM_IO_OP_FTRUNCATE, fd, &s);
    if (!rc)
        rc = f->inner->ftruncate(f->inner->ctx, fd, size);
    if (!rc && s && s->node)
        rc = change_add(s->node, OP_TRUNC, size, NULL, 0);
    pthread_mutex_unlock(&f->mu);
    return rc;
}

static int f_size(void *ctx, int fd, uint64_t *size)
{
    struct fault *f = fault_of(ctx);
    pthread_mutex_lock(&f->mu);
    struct fd_slot *s;
    int rc = fd_gate(f, LM_IO_OP_SIZE, fd, &s);
    if (!rc)
        rc = f->inner->size(f->inner->ctx, fd, size);
    pthread_mutex_unlock(&f->mu);
    return rc;
}

static int f_rename(void *ctx, const char *from, const char *to)
{
    struct fault *f = fault_of(ctx);
    pthread_mutex_lock(&f->mu);
    struct node *nd = NULL, *old = NULL;
    int rc = gate(f, LM_IO_OP_RENAME);
    if (!rc)
        rc = adopt(f, from, &nd);
    if (!rc)
        rc = adopt(f, to, &old);
    if (!rc)
        rc = f->inner->rename(f->inner->ctx, from, to);
    if (!rc) {
        names_remove(&f->cur, to);
        if (nd) {
            names_remove(&f->cur, from);
            rc = names_set(&f->cur, to, nd);
        }
    }
    pthread_mutex_unlock(&f->mu);
    return rc;
}

static int f_unlink(void *ctx, const char *path)
{
    struct fault *f = fault_of(ctx);
    pthread_mutex_lock(&f->mu);
    struct node *nd = NULL;
    int rc = gate(f, LM_IO_OP_UNLINK);
    if (!rc)
        rc = adopt(f, path, &nd);
    if (!rc)
        rc = f->inner->unlink(f->inner->ctx, path);
    if (!rc)
        names_remove(&f->cur, path);
    pthread_mutex_unlock(&f->mu);
    return rc;
}

static int f_mkdir(void *ctx, const char *path, unsigned mode)
{
    struct fault *f = fault_of(ctx);
    pthread_mutex_lock(&f->mu);
    int rc = gate(f, LM_IO_OP_MKDIR);
    if (!rc)
        rc = f->inner->mkdir(f->inner->ctx, path, mode);
    pthread_mutex_unlock(&f->mu);
    return rc;
}

static bool in_dir(const char *path, const char *dir)
{
    char parent[4096], d[4096];
    /* Compare both through lm_io_parent's spelling: "a/" and "a" name one directory. */
    size_t n = strlen(dir);
    if (n + 3 > sizeof d)
        return false;
    memcpy(d, dir, n);
    memcpy(d + n, "/x", 3);
    char want[4096];
    return !lm_io_parent(path, parent, sizeof parent) &&
           !lm_io_parent(d, want, sizeof want) && !strcmp(parent, want);
}

/* Makes dur agree with cur for every name of one directory. */
static int names_sync_dir(struct fault *f, const char *dir)
{
    for (size_t i = 0; i < f->dur.n;) {
        struct entry *e = &f->dur.v[i];
        if (in_dir(e->path, dir) && !names_find(&f->cur, e->path))
            names_remove(&f->dur, e->path); /* swaps the last entry into slot i */
        else
            i++;
    }
    for (size_t i = 0; i < f->cur.n; i++) {
        struct entry *e = &f->cur.v[i];
        if (in_dir(e->path, dir)) {
            int rc = names_set(&f->dur, e->path, e->node);
            if (rc)
                return rc;
        }
    }
    return 0;
}

static int f_sync_dir(void *ctx, const char *path)
{
    struct fault *f = fault_of(ctx);
    pthread_mutex_lock(&f->mu);
    int rc = gate(f, LM_IO_OP_SYNC_DIR);
    if (!rc)
        rc = f->inner->sync_dir(f->inner->ctx, path);
    if (!rc)
        rc = names_sync_dir(f, path);
    pthread_mutex_unlock(&f->mu);
    return rc;
}

static int f_list_dir(void *ctx, const char *path, lm_io_entry_fn fn, void *arg)
{
    struct fault *f = fault_of(ctx);
    pthread_mutex_lock(&f->mu);
    int rc = gate(f, LM_IO_OP_LIST_DIR);
    pthread_mutex_unlock(&f->mu);
    /* Listed without the lock: fn may call back into this backend. */
    return rc ? rc : f->inner->list_dir(f->inner->ctx, path, fn, arg);
}

/* ---------------------------------------------------------------- control */

int lm_io_fault_new(const struct lm_io *inner, uint64_t seed, struct lm_io **out)
{
    struct fault *f = lm_calloc(1, sizeof *f);
    if (!f)
        return -ENOMEM;
    if (pthread_mutex_init(&f->mu, NULL)) {
        lm_free(f);
        return -ENOMEM;
    }
    f->inner = inner;
    f->rng = seed;
    f->io = (struct lm_io){
        .ctx = f,
        .open = f_open,
        .close = f_close,
        .pread = f_pread,
        .pwrite = f_pwrite,
        .fsync = f_fsync,
        .fdatasync = f_fdatasync,
        .ftruncate = f_ftruncate,
        .size = f_size,
        .rename = f_rename,
        .unlink = f_unlink,
        .mkdir = f_mkdir,
        .sync_dir = f_sync_dir,
        .list_dir = f_list_dir,
    };
    *out = &f->io;
    return 0;
}

void lm_io_fault_free(struct lm_io *io)
{
    if (!io)
        return;
    struct fault *f = fault_of(io->ctx);
    nodes_free(f->nodes);
    names_clear(&f->cur);
    names_clear(&f->dur);
    lm_free(f->cur.v);
    lm_free(f->dur.v);
    lm_free(f->fds);
    pthread_mutex_destroy(&f->mu);
    lm_free(f);
}

void lm_io_fault_fail(struct lm_io *io, enum lm_io_op op, uint64_t nth, int errnum,
                      bool persist)
{
    struct fault *f = fault_of(io->ctx);
    if ((unsigned)op >= LM_IO_OP_COUNT)
        return;
    pthread_mutex_lock(&f->mu);
    f->arm[op] = nth ? (struct arm){f->count[op] + nth, errnum, persist} : (struct arm){0};
    pthread_mutex_unlock(&f->mu);
}

uint64_t lm_io_fault_count(const struct lm_io *io, enum lm_io_op op)
{
    struct fault *f = fault_of(io->ctx);
    if ((unsigned)op >= LM_IO_OP_COUNT)
        return 0;
    pthread_mutex_lock(&f->mu);
    uint64_t c = f->count[op];
    pthread_mutex_unlock(&f->mu);
    return c;
}

/* What a node leaves on the disk after power loss, under the crash flags. */
static int crash_image(struct fault *f, struct node *nd, unsigned flags, struct bytes *img)
{
    *img = (struct bytes){0};
    int rc = bytes_write(img, 0, nd->durable.p, nd->durable.len);
    if (rc || !(flags & LM_IO_FAULT_TEAR))
        return rc;
    size_t last = nd->n_changes;
    for (size_t i = nd->n_changes; i-- > 0;)
        if (nd->changes[i].kind == OP_WRITE) {
            last = i;
            break;
        }
    if (last == nd->n_changes)
        return 0;
    for (size_t i = 0; !rc && (flags & LM_IO_FAULT_IN_ORDER) && i < last; i++)
        rc = change_apply(img, &nd->changes[i], nd->changes[i].len);
    const struct change *c = &nd->changes[last];
    size_t keep = c->len ? (size_t)(next_random(&f->rng) % c->len) : 0;
    return rc ? rc : change_apply(img, c, keep);
}

static int write_back(const struct lm_io *in, const char *path, const struct bytes *img)
{
    int fd = -1;
    int rc = in->open(in->ctx, path, O_WRONLY | O_CREAT | O_TRUNC, 0644, &fd);
    if (rc)
        return rc;
    rc = in->pwrite(in->ctx, fd, img->p, img->len, 0);
    int crc = in->close(in->ctx, fd);
    return rc ? rc : crc;
}

int lm_io_fault_crash(struct lm_io *io, unsigned flags)
{
    struct fault *f = fault_of(io->ctx);
    const struct lm_io *in = f->inner;
    pthread_mutex_lock(&f->mu);
    int rc = 0;
    for (size_t i = 0; i < f->cur.n; i++)
        if (!names_find(&f->dur, f->cur.v[i].path)) {
            int r = in->unlink(in->ctx, f->cur.v[i].path);
            if (r && r != -ENOENT && !rc)
                rc = r;
        }
    /* New nodes, one per surviving old node, holding what the crash left. */
    struct node *old = f->nodes;
    f->nodes = NULL;
    for (size_t i = 0; !rc && i < f->dur.n; i++) {
        struct node *nd = f->dur.v[i].node;
        if (!nd->after_crash) {
            struct node *fresh = node_new(f);
            if (!fresh) {
                rc = -ENOMEM;
                break;
            }
            nd->after_crash = fresh;
            rc = crash_image(f, nd, flags, &fresh->durable);
        }
        if (!rc)
            rc = write_back(in, f->dur.v[i].path, &nd->after_crash->durable);
    }
    names_clear(&f->cur);
    for (size_t i = 0; i < f->dur.n;) {
        struct entry *e = &f->dur.v[i];
        if (!e->node->after_crash) { /* not reached after an error */
            names_remove(&f->dur, e->path);
            continue;
        }
        e->node = e->node->after_crash;
        if (!rc)
            rc = names_set(&f->cur, e->path, e->node);
        i++;
    }
    nodes_free(old);
    for (size_t i = 0; i < f->n_fds; i++)
        if (f->fds[i].open) {
            f->fds[i].dead = true;
            f->fds[i].node = NULL;
        }
    memset(f->arm, 0, sizeof f->arm);
    pthread_mutex_unlock(&f->mu);
    return rc;
}
