/* anchors.h - C interface to the comparison libraries, implemented by the C++ shims
 * bench/anchor_*.cpp. Used by benchmarks only; never linked into LumaDB. */
#ifndef LM_ANCHORS_H
#define LM_ANCHORS_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
/* Declarations are added by each anchor shim's author below. */

/* ---- nanoflann (anchor_nanoflann.cpp): KDTreeSingleIndexAdaptor, L2_Simple, 3D. */
typedef struct anchor_nanoflann anchor_nanoflann;
/* Builds an index over n points with leaves of at most leaf_size (nanoflann's default
 * is 10). interleave == 0: reads x/y/z in place (they must outlive the index);
 * otherwise copies them as xyz triples. NULL on failure. */
anchor_nanoflann *anchor_nanoflann_build(const float *x, const float *y, const float *z,
                                         size_t n, size_t leaf_size, int interleave);
/* The k nearest of q: fills idx[] and squared distances d2[] nearest first; returns
 * how many (fewer than k when n < k). */
size_t anchor_nanoflann_knn(const anchor_nanoflann *a, const float q[3], size_t k,
                            uint32_t *idx, float *d2);
/* Bytes of the index (nodes, index permutation, interleaved copy if any). */
size_t anchor_nanoflann_memory_bytes(const anchor_nanoflann *a);
void anchor_nanoflann_free(anchor_nanoflann *a); /* NULL is a no-op */

/* ---- OpenVDB (anchor_openvdb.cpp): a FloatGrid, background 0. Calls
 * openvdb::initialize() once. */
typedef struct anchor_openvdb anchor_openvdb;
/* Builds a grid setting voxel (ijk[3i], ijk[3i+1], ijk[3i+2]) to values[i] for i < n,
 * through a ValueAccessor in the given order. NULL on failure. */
anchor_openvdb *anchor_openvdb_build(const int32_t *ijk, const float *values, size_t n);
/* Reads the n voxels ijk[3i..3i+2] in the given order through one ValueAccessor and
 * returns the sum of their values (unset voxels read 0). */
double anchor_openvdb_read_sum(const anchor_openvdb *a, const int32_t *ijk, size_t n);
/* grid->memUsage(): bytes held by the grid's tree. */
size_t anchor_openvdb_memory_bytes(const anchor_openvdb *a);
/* Casts n rays through the grid's set voxels with tools::VolumeRayIntersector over leaf
 * nodes (its hierarchical DDA yields the spans of non-empty 8^3 leaves), then a voxel
 * math::DDA inside each span testing isValueOn. rays: 8 floats each (origin x, y, z,
 * tmax, direction x, y, z, unused) in index units, voxel (i, j, k) covering [i, i+1).
 * first_only: stop at the first set voxel; else visit every one up to tmax. hit_ijk
 * (3 per ray: the first set voxel, INT32_MIN when none) may be NULL; visit (may be
 * NULL) is called with each set voxel's value in ray order. The intersector is built
 * on the first call and kept. Returns how many rays hit a set voxel (0 for an empty
 * grid). */
typedef void (*anchor_openvdb_visit_fn)(void *user, size_t ray, float value);
size_t anchor_openvdb_raycast(anchor_openvdb *a, const float *rays, size_t n, int first_only,
                              int32_t *hit_ijk, anchor_openvdb_visit_fn visit, void *user);
void anchor_openvdb_free(anchor_openvdb *a); /* NULL is a no-op */
/* ---- SQLite R*Tree (anchor_sqlite.c): points as zero-size boxes in an in-memory
 * database; box queries return the matching ids (counted). */
typedef struct anchor_rtree anchor_rtree;
anchor_rtree *anchor_rtree_build(const float *x, const float *y, const float *z, size_t n);
/* Number of points with min <= p <= max on every axis (rows stepped through). */
size_t anchor_rtree_box(anchor_rtree *a, const float min[3], const float max[3]);
void anchor_rtree_free(anchor_rtree *a); /* NULL is a no-op */
#ifdef __cplusplus
}
#endif
#endif
