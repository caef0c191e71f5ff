/* keymap.h - hash map from a (level, x, y, z) key to a 32-bit value.
 * Owns: its slot array (lm_alloc).
 * Invariants: (1) open addressing with linear probing, capacity a power of two, at most
 *   half full; (2) removal shifts entries back, so there are no tombstones and a probe
 *   stops at the first empty slot.
 * Threading: none. Called by: lod.c (tile nodes, chunk directory), tiles.c (resident
 *   tiles, cells of a tile being loaded). */
#ifndef LM_RENDER_KEYMAP_H
#define LM_RENDER_KEYMAP_H

#include <stdbool.h>
#include <stdint.h>

/* A tile key: octree level k and the node's coordinates at that level (chunk
 * coordinates >> k). Also used for cell coordinates with k = the voxel level. */
struct lm__tkey {
    int32_t k, c[3];
};

struct lm__keymap {
    struct lm__kslot {
        struct lm__tkey key;
        uint32_t value; /* UINT32_MAX = empty */
    } *slot;
    uint32_t cap, n;
};

static inline bool lm__tkey_eq(const struct lm__tkey *a, const struct lm__tkey *b)
{
    return a->k == b->k && a->c[0] == b->c[0] && a->c[1] == b->c[1] && a->c[2] == b->c[2];
}

/* Empties the map and sizes it for `expect` entries. 0 or -ENOMEM (map then empty). */
int lm__keymap_reset(struct lm__keymap *m, uint32_t expect);
void lm__keymap_free(struct lm__keymap *m);
/* Value for key, or UINT32_MAX when absent. */
uint32_t lm__keymap_get(const struct lm__keymap *m, const struct lm__tkey *key);
/* Inserts or overwrites. 0 or -ENOMEM (map unchanged). */
int lm__keymap_put(struct lm__keymap *m, const struct lm__tkey *key, uint32_t value);
/* Removes key if present. */
void lm__keymap_del(struct lm__keymap *m, const struct lm__tkey *key);

#endif
