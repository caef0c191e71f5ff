/* framecache.c - encoded frames of recent chunk versions (see framecache.h). */
#include "framecache.h"

#include <string.h>

#include "alloc.h"

struct slot {
    struct lm_net_frame_key key;
    struct lm_net_buf frames;
    bool used;
};

struct lm_net_framecache {
    size_t budget, bytes, n;
    uint64_t hits, misses;
    struct slot *slots;
};

lm_net_framecache *lm_net_framecache_new(size_t budget, size_t slots)
{
    lm_net_framecache *c = lm_calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->budget = budget;
    c->n = slots ? slots : 4096;
    if (!(c->slots = lm_calloc(c->n, sizeof *c->slots))) {
        lm_free(c);
        return NULL;
    }
    return c;
}

static void clear_slot(lm_net_framecache *c, struct slot *s)
{
    if (!s->used)
        return;
    c->bytes -= s->frames.cap;
    lm_net_buf_free(&s->frames);
    s->used = false;
}

void lm_net_framecache_free(lm_net_framecache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++)
        clear_slot(c, &c->slots[i]);
    lm_free(c->slots);
    lm_free(c);
}

static struct slot *slot_of(lm_net_framecache *c, const struct lm_net_frame_key *k)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = k->field; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    h ^= (uint64_t)(uint32_t)k->coord[0] * 0x9E3779B97F4A7C15ull;
    h ^= (uint64_t)(uint32_t)k->coord[1] * 0xC2B2AE3D27D4EB4Full;
    h ^= (uint64_t)(uint32_t)k->coord[2] * 0x165667B19E3779F9ull;
    h ^= (k->lsn + k->columns * 31u + k->mode * 7u + k->level) * 0x27D4EB2F165667C5ull;
    return &c->slots[(h ^ h >> 31) % c->n];
}

static bool same(const struct lm_net_frame_key *a, const struct lm_net_frame_key *b)
{
    return !strcmp(a->field, b->field) && !memcmp(a->coord, b->coord, sizeof a->coord) &&
           a->lsn == b->lsn && a->columns == b->columns && a->mode == b->mode &&
           a->level == b->level;
}

const struct lm_net_buf *lm_net_framecache_get(lm_net_framecache *c,
                                               const struct lm_net_frame_key *key)
{
    struct slot *s = slot_of(c, key);
    if (s->used && same(&s->key, key)) {
        c->hits++;
        return &s->frames;
    }
    c->misses++;
    return NULL;
}

void lm_net_framecache_put(lm_net_framecache *c, const struct lm_net_frame_key *key,
                           const struct lm_net_buf *frames)
{
    if (frames->oom || frames->len > c->budget / 4)
        return;
    struct slot *s = slot_of(c, key);
    clear_slot(c, s);
    if (c->bytes + frames->len > c->budget)
        for (size_t i = 0; i < c->n; i++)
            clear_slot(c, &c->slots[i]);
    lm_net_buf_put(&s->frames, frames->p, frames->len);
    if (s->frames.oom) {
        lm_net_buf_free(&s->frames);
        return;
    }
    s->key = *key;
    s->used = true;
    c->bytes += s->frames.cap;
}

void lm_net_framecache_stats(const lm_net_framecache *c, uint64_t *hits, uint64_t *misses)
{
    *hits = c->hits;
    *misses = c->misses;
}
