/* ratelimit.h - per-address token buckets for writes and queries.
 * Owns: a fixed table of buckets (lm_alloc); the least recently used address is
 *   forgotten when the table is full, so memory is bounded whatever the traffic.
 * Invariants: (1) a bucket holds at most `burst` tokens and refills at `rate` per second.
 *   (2) rate 0 disables the limit (every take succeeds).
 * Threading: one thread. Called by: server.c, tests/test_net_unit.c. */
#ifndef LM_NET_RATELIMIT_H
#define LM_NET_RATELIMIT_H

#include <stdbool.h>

typedef struct lm_net_ratelimit lm_net_ratelimit;

/* NULL on out-of-memory. slots: addresses remembered (0 = 1024). */
lm_net_ratelimit *lm_net_ratelimit_new(double rate, double burst, unsigned slots);
void lm_net_ratelimit_free(lm_net_ratelimit *rl);
/* Takes one token for address `addr` at time `now` (seconds, monotonic). Returns true if
 * allowed; otherwise false and *retry_after (optional) receives the seconds until one
 * token is back. */
bool lm_net_ratelimit_take(lm_net_ratelimit *rl, const char *addr, double now,
                           double *retry_after);

#endif
