/* coordset.h - a FIFO of chunk coordinates in which a coordinate waits at most once.
 * Owns: its queue and index (lm_alloc).
 * Invariants: (1) a coordinate is in the queue at most once: adding one already queued
 *   does nothing (the caller counts that as coalesced). (2) pop returns coordinates in
 *   the order they were first added since their last pop. (3) memory is bounded by the
 *   number of distinct coordinates ever added (the chunks of one region).
 *   (4) each coordinate also remembers the lsn of the version last sent (0 = never), so a
 *   replaced subscription can skip chunks the client already holds.
 * Threading: one thread. Called by: ws.c (pending chunks of a subscription). */
#ifndef LM_NET_COORDSET_H
#define LM_NET_COORDSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lm_net_coordset {
    struct lm_net_coord_slot *slots;   /* open addressing; cap is a power of two */
    size_t cap, used;
    int32_t (*queue)[3];
    size_t head, len, qcap;
};

/* Adds c unless it is queued. Returns 1 added, 0 already queued, -ENOMEM. */
int lm_net_coordset_add(struct lm_net_coordset *s, const int32_t c[3]);
/* Takes the oldest queued coordinate; false when empty. */
bool lm_net_coordset_pop(struct lm_net_coordset *s, int32_t out[3]);
static inline size_t lm_net_coordset_pending(const struct lm_net_coordset *s)
{
    return s->len - s->head;
}
/* Records that version `lsn` of c was sent (c must have been added). */
void lm_net_coordset_mark_sent(struct lm_net_coordset *s, const int32_t c[3], uint64_t lsn);
/* The lsn last sent for c, 0 if never. */
uint64_t lm_net_coordset_sent(const struct lm_net_coordset *s, const int32_t c[3]);
/* Queues every coordinate whose version was sent (lsn != 0), that is not queued, and
 * that `present` does not hold: chunks deleted whole, which a scan for changed chunks
 * cannot find. Returns how many were queued, or -ENOMEM. */
int lm_net_coordset_queue_absent(struct lm_net_coordset *s,
                                 const struct lm_net_coordset *present);
/* Empties the queue, keeping what was sent. */
void lm_net_coordset_drop_queue(struct lm_net_coordset *s);
void lm_net_coordset_free(struct lm_net_coordset *s);

#endif
