/* coordset.c - FIFO of unique chunk coordinates (see coordset.h). */
#include "coordset.h"

#include <errno.h>
#include <string.h>

#include "alloc.h"

struct lm_net_coord_slot {
    int32_t c[3];
    uint8_t state; /* 0 empty, 1 queued, 2 seen and not queued */
    uint64_t sent; /* lsn of the version last sent, 0 = never */
};

static size_t hash(const int32_t c[3])
{
    uint64_t h = (uint64_t)(uint32_t)c[0] * 0x9E3779B97F4A7C15ull ^
                 (uint64_t)(uint32_t)c[1] * 0xC2B2AE3D27D4EB4Full ^
                 (uint64_t)(uint32_t)c[2] * 0x165667B19E3779F9ull;
    return (size_t)(h ^ h >> 29);
}

static struct lm_net_coord_slot *slot(const struct lm_net_coord_slot *t, size_t cap,
                                      const int32_t c[3])
{
    for (size_t i = hash(c) & (cap - 1);; i = (i + 1) & (cap - 1))
        if (!t[i].state || !memcmp(t[i].c, c, sizeof t[i].c))
            return (struct lm_net_coord_slot *)&t[i];
}

static int grow(struct lm_net_coordset *s)
{
    size_t cap = s->cap ? s->cap * 2 : 64;
    struct lm_net_coord_slot *t = lm_calloc(cap, sizeof *t);
    if (!t)
        return -ENOMEM;
    for (size_t i = 0; i < s->cap; i++)
        if (s->slots[i].state)
            *slot(t, cap, s->slots[i].c) = s->slots[i];
    lm_free(s->slots);
    s->slots = t;
    s->cap = cap;
    return 0;
}

static int push(struct lm_net_coordset *s, const int32_t c[3])
{
    if (s->head > 0 && s->head * 2 >= s->len) {
        memmove(s->queue, s->queue + s->head, (s->len - s->head) * sizeof *s->queue);
        s->len -= s->head;
        s->head = 0;
    }
    if (s->len == s->qcap) {
        size_t cap = s->qcap ? s->qcap * 2 : 64;
        void *q = lm_realloc(s->queue, cap * sizeof *s->queue);
        if (!q)
            return -ENOMEM;
        s->queue = q;
        s->qcap = cap;
    }
    memcpy(s->queue[s->len++], c, sizeof *s->queue);
    return 0;
}

int lm_net_coordset_add(struct lm_net_coordset *s, const int32_t c[3])
{
    if ((s->used + 1) * 2 > s->cap && grow(s))
        return -ENOMEM;
    struct lm_net_coord_slot *e = slot(s->slots, s->cap, c);
    if (e->state == 1)
        return 0;
    if (push(s, c))
        return -ENOMEM;
    if (!e->state) {
        memcpy(e->c, c, sizeof e->c);
        s->used++;
    }
    e->state = 1;
    return 1;
}

bool lm_net_coordset_pop(struct lm_net_coordset *s, int32_t out[3])
{
    if (s->head == s->len)
        return false;
    memcpy(out, s->queue[s->head++], sizeof s->queue[0]);
    slot(s->slots, s->cap, out)->state = 2;
    return true;
}

void lm_net_coordset_mark_sent(struct lm_net_coordset *s, const int32_t c[3], uint64_t lsn)
{
    struct lm_net_coord_slot *e = s->cap ? slot(s->slots, s->cap, c) : NULL;
    if (e && e->state)
        e->sent = lsn;
}

uint64_t lm_net_coordset_sent(const struct lm_net_coordset *s, const int32_t c[3])
{
    const struct lm_net_coord_slot *e = s->cap ? slot(s->slots, s->cap, c) : NULL;
    return e && e->state ? e->sent : 0;
}

int lm_net_coordset_queue_absent(struct lm_net_coordset *s,
                                 const struct lm_net_coordset *present)
{
    int queued = 0;
    for (size_t i = 0; i < s->cap; i++) {
        struct lm_net_coord_slot *e = &s->slots[i];
        if (e->state != 2 || !e->sent ||
            (present->cap && slot(present->slots, present->cap, e->c)->state))
            continue;
        if (push(s, e->c)) /* the slot exists already: only the queue grows */
            return -ENOMEM;
        e->state = 1;
        queued++;
    }
    return queued;
}

void lm_net_coordset_drop_queue(struct lm_net_coordset *s)
{
    int32_t c[3];
    while (lm_net_coordset_pop(s, c))
        ;
}

void lm_net_coordset_free(struct lm_net_coordset *s)
{
    lm_free(s->slots);
    lm_free(s->queue);
    memset(s, 0, sizeof *s);
}
