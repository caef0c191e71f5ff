/* morton.h - 3D Morton (Z-order) codes and the voxel/chunk coordinate rules.
 * Owns: nothing; pure inline functions.
 * Invariants: (1) a sample's voxel is floor(p / voxel_size) computed in double, the
 *   single definition every module and test uses. (2) Inside a chunk, codes interleave
 *   21 bits per axis: the local voxel bits on top, sub-voxel bits below, so sorting by
 *   code groups samples by voxel and then orders them along the Z-curve.
 * Threading: pure. Called by: chunk.c, field.c, query.c. */
#ifndef LM_MORTON_H
#define LM_MORTON_H

#include <math.h>
#include <stdint.h>

#define LM_MORTON_BITS 21

/* Spreads the low 21 bits of v so that bit i moves to bit 3i. */
static inline uint64_t lm_morton_spread(uint64_t v)
{
    v &= 0x1fffff;
    v = (v | v << 32) & 0x1f00000000ffffull;
    v = (v | v << 16) & 0x1f0000ff0000ffull;
    v = (v | v << 8) & 0x100f00f00f00f00full;
    v = (v | v << 4) & 0x10c30c30c30c30c3ull;
    v = (v | v << 2) & 0x1249249249249249ull;
    return v;
}

static inline uint32_t lm_morton_compact(uint64_t v)
{
    v &= 0x1249249249249249ull;
    v = (v ^ (v >> 2)) & 0x10c30c30c30c30c3ull;
    v = (v ^ (v >> 4)) & 0x100f00f00f00f00full;
    v = (v ^ (v >> 8)) & 0x1f0000ff0000ffull;
    v = (v ^ (v >> 16)) & 0x1f00000000ffffull;
    v = (v ^ (v >> 32)) & 0x1fffff;
    return (uint32_t)v;
}

static inline uint64_t lm_morton_encode(uint32_t x, uint32_t y, uint32_t z)
{
    return lm_morton_spread(x) | lm_morton_spread(y) << 1 | lm_morton_spread(z) << 2;
}

static inline void lm_morton_decode(uint64_t code, uint32_t *x, uint32_t *y, uint32_t *z)
{
    *x = lm_morton_compact(code);
    *y = lm_morton_compact(code >> 1);
    *z = lm_morton_compact(code >> 2);
}

/* (int64_t)floor(x) for |x| < 2^62, without a libm call: truncation rounds toward
 * zero, so it is one too high exactly when it lands above x. */
static inline int64_t lm_floor_i64(double x)
{
    int64_t t = (int64_t)x;
    return t - ((double)t > x);
}

/* Voxel coordinate of a world coordinate (invariant 1). Stored and validated samples
 * satisfy |p / voxel| < 2^39 (field.c), far inside lm_floor_i64's domain. */
static inline int64_t lm_voxel_of(float p, double inv_voxel_size)
{
    return lm_floor_i64((double)p * inv_voxel_size);
}

/* Chunk coordinate of a voxel coordinate: floor division by 2^log2_edge. */
static inline int32_t lm_chunk_of(int64_t voxel, uint32_t log2_edge)
{
    return (int32_t)(voxel >> log2_edge); /* arithmetic shift = floor for negatives */
}

#endif
