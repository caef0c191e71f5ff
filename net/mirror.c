/* mirror.c - a live local copy of one remote field (see mirror.h). */
#include "mirror.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "buf.h"
#include "error.h"
#include "wire.h"
#include "ws_client.h"

#define SUBSCRIPTION_ID 1u
#define DEFAULT_PORT 8080
/* What the renderer reads; user columns are left out (invariant 1). */
#define MIRROR_COLUMNS                                                                    \
    (LM_WS_COL_POS | LM_WS_COL_DIR | LM_WS_COL_RGB | LM_WS_COL_INTENSITY | LM_WS_COL_T)

/* ---------------------------------------------------------------- URLs */

static bool field_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > LM_NAME_MAX || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || ch == '_'))
            return false;
    }
    return true;
}

int lm_mirror_parse_url(const char *url, struct lm_mirror_url *out, struct lm_error *err)
{
    static const char scheme[] = "ws://";
    if (!url || strncmp(url, scheme, sizeof scheme - 1))
        return lm__fail(err, LM_EBADARG, "'%s': a remote field is ws://HOST:PORT/FIELD",
                        url ? url : "");
    const char *h = url + sizeof scheme - 1, *h_end, *p;
    if (*h == '[') { /* [IPv6] */
        h_end = strchr(h, ']');
        if (!h_end)
            return lm__fail(err, LM_EBADARG, "'%s': '[' without ']' around the host", url);
        h++;
        p = h_end + 1;
    } else {
        h_end = h + strcspn(h, ":/");
        p = h_end;
    }
    struct lm_mirror_url u = {.port = DEFAULT_PORT};
    size_t hn = (size_t)(h_end - h);
    if (hn == 0 || hn >= sizeof u.host)
        return lm__fail(err, LM_EBADARG, "'%s': no host (ws://HOST:PORT/FIELD)", url);
    memcpy(u.host, h, hn);
    if (*p == ':') {
        char *end;
        long port = strtol(p + 1, &end, 10);
        if (end == p + 1 || port < 1 || port > 65535 || (*end && *end != '/'))
            return lm__fail(err, LM_EBADARG, "'%s': the port must be a number in 1..65535",
                            url);
        u.port = (int)port;
        p = end;
    }
    if (*p != '/' || !p[1])
        return lm__fail(err, LM_EBADARG, "'%s': no field after the host (ws://HOST:PORT/FIELD)",
                        url);
    const char *f = p + 1;
    size_t fn = strlen(f);
    if (!field_name_ok(f, fn))
        return lm__fail(err, LM_EBADARG,
                        "'%s': '%s' is not a field name (letters, digits and _, 1..63)", url, f);
    memcpy(u.field, f, fn);
    *out = u;
    return 0;
}

/* ---------------------------------------------------------------- state */

/* One chunk version being gathered from its parts (client thread only). */
enum { COL_X, COL_Y, COL_Z, COL_DX, COL_DY, COL_DZ, COL_R, COL_G, COL_B, COL_I, N_COLS };
struct stage {
    bool active;
    int32_t coord[3];
    uint32_t total, n, cap;
    float *col[N_COLS];
    int64_t *t;
};

struct lm_mirror {
    lm_db *db;
    char url[300];
    struct lm_mirror_url u;
    char token[LM_WS_TOKEN_MAX + 1];
    lm_mirror_log_fn log;
    void *log_user;
    lm_ws_client *client;
    pthread_mutex_t apply;         /* the apply lock (invariant 2) */

    pthread_mutex_t mu;            /* guards what follows */
    pthread_cond_t changed;
    struct lm_mirror_stats st;
    int rc;                        /* the failure or the close, with its message */
    char message[768];
    bool synced;                   /* a SYNCED has been applied */

    /* client thread only */
    struct stage stage;
    struct lm_net_buf scratch;
    char bye[160];                 /* the server's goodbye, for the close message */
};

static void logf_(lm_mirror *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void logf_(lm_mirror *m, const char *fmt, ...)
{
    if (!m->log)
        return;
    char line[768];
    int n = snprintf(line, sizeof line, "%s: ", m->url);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    m->log(m->log_user, line);
}

/* The connection is over with rc: a failure before the first SYNCED, else a close that
 * keeps the last state (invariant 4). */
static void finish(lm_mirror *m, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void finish(lm_mirror *m, int rc, const char *fmt, ...)
{
    char why[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&m->mu);
    bool live = m->st.state == LM_MIRROR_LIVE;
    if (m->st.state != LM_MIRROR_FAILED && m->st.state != LM_MIRROR_CLOSED) {
        m->st.state = m->synced ? LM_MIRROR_CLOSED : LM_MIRROR_FAILED;
        m->rc = rc;
        snprintf(m->message, sizeof m->message, "%s: %s", m->url, why);
    }
    pthread_cond_broadcast(&m->changed);
    pthread_mutex_unlock(&m->mu);
    if (live)
        logf_(m, "%s; showing the last state received", why);
}

/* ---------------------------------------------------------------- applying chunks */

struct held {
    const int32_t *coord;
    bool found;
    float min[3], max[3];
};

/* The tight bounds of the samples the mirror holds in chunk `coord`. */
static int held_cb(const struct lm_chunk_view *c, void *user)
{
    struct held *h = user;
    if (memcmp(c->coord, h->coord, sizeof c->coord) || !c->n)
        return 0;
    h->found = true;
    const float *p[3] = {c->x, c->y, c->z};
    for (int a = 0; a < 3; a++) {
        h->min[a] = h->max[a] = p[a][0];
        for (size_t i = 1; i < c->n; i++) {
            h->min[a] = p[a][i] < h->min[a] ? p[a][i] : h->min[a];
            h->max[a] = p[a][i] > h->max[a] ? p[a][i] : h->max[a];
        }
    }
    return 1;
}

/* Replaces what the mirror holds for the staged chunk by the staged samples. The old
 * samples are deleted by the box of their own positions: it lies inside the chunk's
 * cell (a sample's chunk is a monotonic function of each coordinate), so no neighbour
 * loses a sample, whereas the cell's closed box would touch the neighbours' faces. */
static int apply_stage(lm_mirror *m, struct lm_error *err)
{
    struct stage *s = &m->stage;
    struct lm_field_info info;
    int rc = lm_field_stat(m->db, m->u.field, &info, err);
    if (rc)
        return rc;
    float size = info.opts.voxel_size * (float)info.opts.chunk_edge;
    struct lm_region cell = {.kind = LM_REGION_BOX};
    for (int a = 0; a < 3; a++) {
        cell.min[a] = (float)s->coord[a] * size;
        cell.max[a] = (float)(s->coord[a] + 1) * size;
    }
    struct held h = {.coord = s->coord};
    struct lm_batch b = {.n = s->n, .x = s->col[COL_X], .y = s->col[COL_Y], .z = s->col[COL_Z],
                         .dx = s->col[COL_DX], .dy = s->col[COL_DY], .dz = s->col[COL_DZ],
                         .r = s->col[COL_R], .g = s->col[COL_G], .b = s->col[COL_B],
                         .intensity = s->col[COL_I], .t = s->t};
    pthread_mutex_lock(&m->apply);
    rc = lm_chunks_each(m->db, m->u.field, &cell, 0, held_cb, &h, err);
    if (rc >= 0 && h.found) {
        struct lm_selection sel = {.region = {.kind = LM_REGION_BOX}};
        memcpy(sel.region.min, h.min, sizeof h.min);
        memcpy(sel.region.max, h.max, sizeof h.max);
        rc = lm_delete(m->db, m->u.field, &sel, NULL, NULL, err);
    }
    if (rc >= 0 && s->n)
        rc = lm_insert(m->db, m->u.field, &b, NULL, err);
    pthread_mutex_unlock(&m->apply);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&m->mu);
    m->st.chunks_applied++;
    m->st.samples_applied += s->n;
    pthread_mutex_unlock(&m->mu);
    return 0;
}

static int stage_reserve(struct stage *s, uint32_t n)
{
    if (n <= s->cap)
        return 0;
    uint32_t cap = s->cap ? s->cap : 1024;
    while (cap < n)
        cap = cap > UINT32_MAX / 2 ? n : cap * 2;
    for (int k = 0; k < N_COLS; k++) {
        float *p = lm_realloc(s->col[k], (size_t)cap * sizeof *p);
        if (!p)
            return -ENOMEM;
        s->col[k] = p;
    }
    int64_t *t = lm_realloc(s->t, (size_t)cap * sizeof *t);
    if (!t)
        return -ENOMEM;
    s->t = t;
    s->cap = cap;
    return 0;
}

/* Appends a part's samples to the stage, decoded to what lm_insert takes. */
static void stage_append(struct stage *s, const struct lm_ws_columns *c, uint32_t n)
{
    uint32_t at = s->n;
    for (uint32_t i = 0; i < n; i++) {
        float d[3] = {0, 0, 1};
        if (c->dir_oct)
            lm_dir_decode(c->dir_oct + 2 * i, d);
        s->col[COL_X][at + i] = c->x[i];
        s->col[COL_Y][at + i] = c->y[i];
        s->col[COL_Z][at + i] = c->z[i];
        s->col[COL_DX][at + i] = d[0];
        s->col[COL_DY][at + i] = d[1];
        s->col[COL_DZ][at + i] = d[2];
        s->col[COL_R][at + i] = c->r ? (float)c->r[i] / 255.0f : 1.0f;
        s->col[COL_G][at + i] = c->g ? (float)c->g[i] / 255.0f : 1.0f;
        s->col[COL_B][at + i] = c->b ? (float)c->b[i] / 255.0f : 1.0f;
        s->col[COL_I][at + i] = c->intensity ? c->intensity[i] : 1.0f;
        s->t[at + i] = c->t ? c->t[i] : 0;
    }
    s->n += n;
}

/* Gathers one CHUNK part; the last part of a version applies it (invariant 2). Parts of
 * one version arrive back to back: the server queues them together. */
static void on_chunk(lm_mirror *m, const struct lm_ws_chunk_part *p)
{
    struct stage *s = &m->stage;
    if (p->first == 0) {
        s->active = true;
        memcpy(s->coord, p->coord, sizeof s->coord);
        s->total = p->total;
        s->n = 0;
    } else if (!s->active || memcmp(s->coord, p->coord, sizeof s->coord) ||
               p->first != s->n || p->total != s->total) {
        s->active = false;
        logf_(m, "ignored part [%u, %u) of chunk (%d, %d, %d): its first part never came",
              p->first, p->first + p->n, p->coord[0], p->coord[1], p->coord[2]);
        return;
    }
    struct lm_ws_columns cols;
    char why[128];
    struct lm_error err = {0};
    int rc = 0;
    if (p->n && !(p->columns & LM_WS_COL_POS)) {
        snprintf(why, sizeof why, "the chunk has no positions");
        rc = LM_WS_EMALFORMED;
    } else if (!(rc = lm_ws_chunk_columns(p, NULL, &m->scratch, &cols, why, sizeof why)) &&
               stage_reserve(s, s->n + p->n)) {
        snprintf(why, sizeof why, "out of memory");
        rc = LM_WS_EINTERNAL;
    }
    if (rc) {
        s->active = false;
        logf_(m, "chunk (%d, %d, %d) not applied: %s", p->coord[0], p->coord[1], p->coord[2],
              why);
        return;
    }
    stage_append(s, &cols, p->n);
    if (s->n < s->total)
        return;
    s->active = false;
    if ((rc = apply_stage(m, &err)))
        logf_(m, "chunk (%d, %d, %d) not applied: %s", p->coord[0], p->coord[1], p->coord[2],
              err.message[0] ? err.message : lm_strerror(rc));
}

/* ---------------------------------------------------------------- other frames */

/* SUBSCRIBED: the field's grid. The mirror's field gets the same one (invariant 1). */
static void on_subscribed(lm_mirror *m, const struct lm_ws_subscribed *sub)
{
    if (sub->mode != 0) {
        finish(m, -EPROTO, "the server sends voxels where samples were asked for");
        return;
    }
    struct lm_field_opts o = {.voxel_size = sub->voxel_size, .chunk_edge = sub->chunk_edge};
    struct lm_field_info info;
    struct lm_error err = {0};
    int rc = lm_field_stat(m->db, m->u.field, &info, NULL);
    if (rc == LM_ENOFIELD)
        rc = lm_field_create(m->db, m->u.field, &o, &err);
    else if (rc == 0 && (info.opts.voxel_size != o.voxel_size ||
                         info.opts.chunk_edge != o.chunk_edge))
        rc = lm__fail(&err, LM_ESCHEMA, "the local copy's field '%s' has another grid",
                      m->u.field);
    if (rc) {
        finish(m, rc, "cannot create the local copy of field '%s': %s", m->u.field,
               err.message[0] ? err.message : lm_strerror(rc));
        return;
    }
    pthread_mutex_lock(&m->mu);
    if (m->st.state == LM_MIRROR_CONNECTING)
        m->st.state = LM_MIRROR_LOADING;
    m->st.field_chunks = sub->chunks;
    m->st.field_samples = sub->samples;
    pthread_cond_broadcast(&m->changed);
    pthread_mutex_unlock(&m->mu);
}

static void on_synced(lm_mirror *m, uint64_t lsn)
{
    pthread_mutex_lock(&m->mu);
    m->synced = true;
    m->st.server_lsn = lsn;
    if (m->st.state == LM_MIRROR_LOADING || m->st.state == LM_MIRROR_CONNECTING)
        m->st.state = LM_MIRROR_LIVE;
    pthread_cond_broadcast(&m->changed);
    pthread_mutex_unlock(&m->mu);
}

/* ERROR: before the first SYNCED the subscription did not happen (invariant 4). */
static void on_error(lm_mirror *m, const struct lm_ws_reply *r)
{
    int code = r->u.error.code;
    int rc = r->u.error.lm_code < 0 ? r->u.error.lm_code
             : code == LM_WS_EUNAUTHORIZED ? -EACCES : -EPROTO;
    pthread_mutex_lock(&m->mu);
    bool synced = m->synced;
    pthread_mutex_unlock(&m->mu);
    const char *text = r->u.error.len ? r->u.error.text : lm_ws_strerror(code);
    int len = r->u.error.len ? (int)r->u.error.len : (int)strlen(text);
    if (synced)
        logf_(m, "server error %d (%s): %.*s", code, lm_ws_strerror(code), len, text);
    else
        finish(m, rc, "the server refused: %.*s (error %d: %s)", len, text, code,
               lm_ws_strerror(code));
}

static void on_message(void *user, const uint8_t *p, size_t n)
{
    lm_mirror *m = user;
    struct lm_ws_reply r;
    char why[128];
    pthread_mutex_lock(&m->mu);
    m->st.bytes_received += n;
    pthread_mutex_unlock(&m->mu);
    int rc = lm_ws_decode_reply(p, n, &r, why, sizeof why);
    if (rc) {
        logf_(m, "ignored a frame: %s", why);
        return;
    }
    bool ours = r.id == SUBSCRIPTION_ID;
    switch (r.type) {
    case LM_WS_SUBSCRIBED:
        if (ours)
            on_subscribed(m, &r.u.subscribed);
        break;
    case LM_WS_CHUNK:
        if (ours)
            on_chunk(m, &r.u.chunk);
        break;
    case LM_WS_SYNCED:
        if (ours)
            on_synced(m, r.u.synced.lsn);
        break;
    case LM_WS_ERROR:
        on_error(m, &r);
        break;
    case LM_WS_BYE:
        snprintf(m->bye, sizeof m->bye, "%.*s", (int)r.u.bye.len, r.u.bye.text);
        break;
    default: /* WELCOME, RESULT, ACK: nothing to mirror */
        break;
    }
}

/* ---------------------------------------------------------------- the connection */

static void on_open(void *user, lm_ws_client *c)
{
    lm_mirror *m = user;
    struct lm_net_buf b = {0};
    lm_ws_encode_hello(&b, LM_WS_VERSION, m->token);
    int rc = b.oom ? -ENOMEM : lm_ws_client_send(c, b.p, b.len);
    lm_net_buf_clear(&b);
    lm_ws_encode_subscribe(&b, SUBSCRIPTION_ID, m->u.field, LM_WS_REGION_ALL, NULL,
                           LM_WS_LOD_SAMPLES, 0, MIRROR_COLUMNS);
    if (!rc)
        rc = b.oom ? -ENOMEM : lm_ws_client_send(c, b.p, b.len);
    lm_net_buf_free(&b);
    if (rc)
        finish(m, rc, "cannot send the subscription: %s", lm_strerror(rc));
}

static void on_close(void *user, int rc, const char *why)
{
    lm_mirror *m = user;
    if (m->bye[0] && !strstr(why, m->bye)) /* the close frame often repeats it */
        finish(m, rc, "%s; the server said: %s", why, m->bye);
    else
        finish(m, rc, "%s", why);
}

int lm_mirror_open(const struct lm_mirror_opts *opts, lm_mirror **out, struct lm_error *err)
{
    struct lm_mirror_url u;
    int rc;
    if (!opts || !opts->db)
        return lm__fail(err, LM_EBADARG, "a mirror needs a database to write");
    if ((rc = lm_mirror_parse_url(opts->url, &u, err)))
        return rc;
    if (opts->token && strlen(opts->token) > LM_WS_TOKEN_MAX)
        return lm__fail(err, LM_EBADARG, "the token is longer than %d bytes", LM_WS_TOKEN_MAX);
    lm_mirror *m = lm_calloc(1, sizeof *m);
    if (!m)
        return lm__fail(err, -ENOMEM, "out of memory");
    m->db = opts->db;
    m->u = u;
    snprintf(m->url, sizeof m->url, "%s", opts->url);
    snprintf(m->token, sizeof m->token, "%s", opts->token ? opts->token : "");
    m->log = opts->log;
    m->log_user = opts->log_user;
    pthread_mutex_init(&m->apply, NULL);
    pthread_mutex_init(&m->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&m->changed, &ca);
    pthread_condattr_destroy(&ca);
    char path[LM_NAME_MAX + 2];
    snprintf(path, sizeof path, "/%s", u.field);
    struct lm_ws_client_opts co = {.host = u.host, .port = u.port, .path = path,
                                   .on_open = on_open, .on_message = on_message,
                                   .on_close = on_close, .user = m};
    rc = lm_ws_client_open(&co, &m->client, err);
    if (rc) {
        lm_mirror_close(m);
        return rc;
    }
    *out = m;
    return 0;
}

/* ---------------------------------------------------------------- the owner's side */

int lm_mirror_wait(lm_mirror *m, uint64_t server_lsn, int timeout_ms, struct lm_error *err)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    if (timeout_ms >= 0) {
        until.tv_sec += timeout_ms / 1000;
        until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
    }
    int rc = 0;
    pthread_mutex_lock(&m->mu);
    for (;;) {
        if (m->synced && m->st.server_lsn >= server_lsn)
            break;
        if (m->st.state == LM_MIRROR_FAILED || m->st.state == LM_MIRROR_CLOSED) {
            rc = lm__fail(err, m->rc, "%s", m->message);
            break;
        }
        if (timeout_ms < 0) {
            pthread_cond_wait(&m->changed, &m->mu);
        } else if (pthread_cond_timedwait(&m->changed, &m->mu, &until) == ETIMEDOUT) {
            rc = lm__fail(err, -ETIMEDOUT, "%s: still %s", m->url,
                          lm_mirror_state_name(m->st.state));
            break;
        }
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

void lm_mirror_lock(lm_mirror *m)
{
    pthread_mutex_lock(&m->apply);
}

void lm_mirror_unlock(lm_mirror *m)
{
    pthread_mutex_unlock(&m->apply);
}

void lm_mirror_stats(lm_mirror *m, struct lm_mirror_stats *out)
{
    pthread_mutex_lock(&m->mu);
    *out = m->st;
    pthread_mutex_unlock(&m->mu);
}

const char *lm_mirror_state_name(enum lm_mirror_state s)
{
    static const char *const names[] = {"connecting", "loading", "live", "closed", "failed"};
    return (unsigned)s < sizeof names / sizeof *names ? names[s] : "unknown";
}

void lm_mirror_close(lm_mirror *m)
{
    if (!m)
        return;
    lm_ws_client_close(m->client); /* no callback runs after this */
    for (int k = 0; k < N_COLS; k++)
        lm_free(m->stage.col[k]);
    lm_free(m->stage.t);
    lm_net_buf_free(&m->scratch);
    pthread_cond_destroy(&m->changed);
    pthread_mutex_destroy(&m->mu);
    pthread_mutex_destroy(&m->apply);
    lm_free(m);
}
