/* framecache.h - encoded CHUNK/VOXELS frames of recent chunk versions, shared by every
 * subscriber, so a chunk version is compressed once however many clients stream it.
 * Owns: copies of frames (lm_alloc), at most `budget` bytes in all.
 * Invariants: (1) an entry is keyed by everything that shapes its bytes except the
 *   subscription id and the delta flag (header bytes 1 and 4..7), which the caller
 *   patches per client. (2) a key names one chunk version (its lsn), so an entry is never
 *   stale: newer versions get new keys and old ones age out. (3) past the budget the
 *   cache empties itself before it grows.
 * Threading: the loop thread. Called by: ws.c. */
#ifndef LM_NET_FRAMECACHE_H
#define LM_NET_FRAMECACHE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "lumadb.h"

struct lm_net_frame_key {
    char field[LM_NAME_MAX + 1];
    int32_t coord[3];
    uint64_t lsn;
    uint32_t columns;
    uint8_t mode, level;
};

typedef struct lm_net_framecache lm_net_framecache;

lm_net_framecache *lm_net_framecache_new(size_t budget, size_t slots);
void lm_net_framecache_free(lm_net_framecache *c);
/* The frames of key as one buffer of [u32 length][frame bytes]... records, or NULL. The
 * pointer is valid until the next put. */
const struct lm_net_buf *lm_net_framecache_get(lm_net_framecache *c,
                                               const struct lm_net_frame_key *key);
/* Stores a copy of `frames` (same record layout) under key; skipped if larger than a
 * quarter of the budget or out of memory. */
void lm_net_framecache_put(lm_net_framecache *c, const struct lm_net_frame_key *key,
                           const struct lm_net_buf *frames);
/* Hits and misses so far. */
void lm_net_framecache_stats(const lm_net_framecache *c, uint64_t *hits, uint64_t *misses);

#endif
