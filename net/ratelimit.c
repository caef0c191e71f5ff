/* ratelimit.c - per-address token buckets (see ratelimit.h). */
#include "ratelimit.h"

#include <string.h>

#include "alloc.h"

struct bucket {
    char addr[64];
    double tokens, last;
};

struct lm_net_ratelimit {
    double rate, burst;
    unsigned n, used;
    struct bucket *b;
};

lm_net_ratelimit *lm_net_ratelimit_new(double rate, double burst, unsigned slots)
{
    lm_net_ratelimit *rl = lm_calloc(1, sizeof *rl);
    if (!rl)
        return NULL;
    rl->rate = rate > 0 ? rate : 0;
    rl->burst = burst >= 1 ? burst : 1;
    rl->n = slots ? slots : 1024;
    if (!(rl->b = lm_calloc(rl->n, sizeof *rl->b))) {
        lm_free(rl);
        return NULL;
    }
    return rl;
}

void lm_net_ratelimit_free(lm_net_ratelimit *rl)
{
    if (rl)
        lm_free(rl->b);
    lm_free(rl);
}

/* The bucket of addr: found, a free slot, or the least recently used one reset. */
static struct bucket *find(lm_net_ratelimit *rl, const char *addr, double now)
{
    struct bucket *lru = &rl->b[0];
    for (unsigned i = 0; i < rl->used; i++) {
        if (!strcmp(rl->b[i].addr, addr))
            return &rl->b[i];
        if (rl->b[i].last < lru->last)
            lru = &rl->b[i];
    }
    struct bucket *b = rl->used < rl->n ? &rl->b[rl->used++] : lru;
    strncpy(b->addr, addr, sizeof b->addr - 1);
    b->addr[sizeof b->addr - 1] = 0;
    b->tokens = rl->burst;
    b->last = now;
    return b;
}

bool lm_net_ratelimit_take(lm_net_ratelimit *rl, const char *addr, double now,
                           double *retry_after)
{
    if (!rl || rl->rate <= 0)
        return true;
    struct bucket *b = find(rl, addr, now);
    double t = b->tokens + (now - b->last) * rl->rate;
    b->tokens = t > rl->burst ? rl->burst : t;
    b->last = now;
    if (b->tokens >= 1) {
        b->tokens -= 1;
        return true;
    }
    if (retry_after)
        *retry_after = (1 - b->tokens) / rl->rate;
    return false;
}
