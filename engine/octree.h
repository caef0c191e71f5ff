/* octree.h - sparse octree over the chunks of a field, plus the chunk map.
 *
 * Owns: every node and the hash map from chunk coordinates to leaves. Chunks are
 * referenced, not owned (field.c owns them).
 * Invariants:
 *  (1) Chunk coordinates are biased to unsigned (coord + 2^31); a node at level L
 *      covers the chunks whose biased coordinates >> L equal its key. The root is at
 *      level 32; leaves (level 0) hold exactly one non-empty chunk.
 *  (2) Every inner node has at least one child; an emptied subtree is removed.
 *  (3) After lm__octree_refresh(leaf), the aggregates of the leaf and all of its
 *      ancestors (count, tight bounds, colour/intensity/SH sums, max lsn) equal the
 *      sums over their chunks.
 *  (4) Children are indexed by bit x | y << 1 | z << 2, so a depth-first walk in child
 *      order visits chunks in Morton order.
 * Threading: none inside; the database lock covers every call.
 * Called by: field.c (structure), query.c (walks), render/ and net/ (LOD). */
#ifndef LM_OCTREE_H
#define LM_OCTREE_H

#include <stdint.h>

#include "chunk.h"

struct lm__onode {
    uint32_t level;
    uint32_t key[3];
    struct lm__onode *parent;
    struct lm__onode *child[8];
    struct lm_chunk *chunk; /* leaves only */
    /* subtree aggregate */
    uint64_t count;
    uint64_t lsn;
    float bmin[3], bmax[3];
    double sum_r, sum_g, sum_b, sum_i;
    double sh[3][4];
};

struct lm__octree {
    struct lm__onode *root;
    struct lm__onode **map; /* open addressing, NULL = empty */
    uint32_t map_cap, n_chunks;
};

void lm__octree_init(struct lm__octree *t);
/* Frees nodes and map, not the chunks. */
void lm__octree_destroy(struct lm__octree *t);

struct lm__onode *lm__octree_find(const struct lm__octree *t, const int32_t coord[3]);

/* Adds a leaf for chunk (whose coordinates are not yet present). All or nothing:
 * -ENOMEM leaves the tree unchanged. */
int lm__octree_add(struct lm__octree *t, struct lm_chunk *chunk, struct lm__onode **leaf);

/* Removes a leaf and any ancestors left without children; refreshes the rest. */
void lm__octree_remove(struct lm__octree *t, struct lm__onode *leaf);

/* Recomputes the aggregates of leaf and its ancestors (invariant 3). */
void lm__octree_refresh(struct lm__octree *t, struct lm__onode *leaf);

/* Signed coordinate of a node at its level: chunk coord >> level for its chunks. */
void lm__onode_coord(const struct lm__onode *n, int32_t out[3]);

#endif
