// anchor_nanoflann.cpp - nanoflann's KDTreeSingleIndexAdaptor behind a C interface,
// the reference a user would reach for instead of lm_kdtree (bench/bench_kdtree.c).
// Two layouts: the caller's x[], y[], z[] read in place (what lm_kdtree gets), or a
// copy interleaved as xyz triples (nanoflann's usual point cloud), so the benchmark
// can hold the library to its better layout. Each layout is its own adaptor type, so
// no point access pays for the choice. Exceptions never cross into C.
#include "anchors.h"

#include <nanoflann.hpp>

#include <vector>

namespace {

struct ColumnCloud {  // the caller's three columns
    const float *x, *y, *z;
    size_t n;
    ColumnCloud(const float *x_, const float *y_, const float *z_, size_t n_)
        : x(x_), y(y_), z(z_), n(n_) {}
    size_t kdtree_get_point_count() const { return n; }
    float kdtree_get_pt(uint32_t i, size_t dim) const
    {
        return dim == 0 ? x[i] : dim == 1 ? y[i] : z[i];
    }
    template <class Box> bool kdtree_get_bbox(Box &) const { return false; }
    size_t bytes() const { return 0; }
};

struct TripleCloud {  // an owned xyz copy
    std::vector<float> xyz;
    TripleCloud(const float *x, const float *y, const float *z, size_t n) : xyz(3 * n)
    {
        for (size_t i = 0; i < n; i++)
            xyz[3 * i] = x[i], xyz[3 * i + 1] = y[i], xyz[3 * i + 2] = z[i];
    }
    size_t kdtree_get_point_count() const { return xyz.size() / 3; }
    float kdtree_get_pt(uint32_t i, size_t dim) const { return xyz[3 * size_t(i) + dim]; }
    template <class Box> bool kdtree_get_bbox(Box &) const { return false; }
    size_t bytes() const { return xyz.capacity() * sizeof(float); }
};

struct Index {
    virtual ~Index() = default;
    virtual size_t knn(const float q[3], size_t k, uint32_t *idx, float *d2) const = 0;
    virtual size_t bytes() = 0;
};

template <class Cloud> struct IndexOver final : Index {
    using Tree = nanoflann::KDTreeSingleIndexAdaptor<nanoflann::L2_Simple_Adaptor<float, Cloud>,
                                                     Cloud, 3, uint32_t>;
    Cloud cloud;  // declared before tree: the tree keeps a reference to it
    Tree tree;
    IndexOver(const float *x, const float *y, const float *z, size_t n, size_t leaf)
        : cloud(x, y, z, n), tree(3, cloud, nanoflann::KDTreeSingleIndexAdaptorParams(leaf)) {}
    size_t knn(const float q[3], size_t k, uint32_t *idx, float *d2) const override
    {
        return tree.knnSearch(q, k, idx, d2);
    }
    size_t bytes() override { return tree.usedMemory(tree) + cloud.bytes(); }
};

} // namespace

struct anchor_nanoflann {
    Index *index;
};

extern "C" anchor_nanoflann *anchor_nanoflann_build(const float *x, const float *y,
                                                    const float *z, size_t n,
                                                    size_t leaf_size, int interleave)
{
    Index *index = nullptr;
    try {
        if (interleave)
            index = new IndexOver<TripleCloud>(x, y, z, n, leaf_size);
        else
            index = new IndexOver<ColumnCloud>(x, y, z, n, leaf_size);
        return new anchor_nanoflann{index};
    } catch (...) {
        delete index;
        return nullptr;
    }
}

extern "C" size_t anchor_nanoflann_knn(const anchor_nanoflann *a, const float q[3], size_t k,
                                       uint32_t *idx, float *d2)
{
    try {
        return a->index->knn(q, k, idx, d2);
    } catch (...) {
        return 0;
    }
}

extern "C" size_t anchor_nanoflann_memory_bytes(const anchor_nanoflann *a)
{
    return a->index->bytes();
}

extern "C" void anchor_nanoflann_free(anchor_nanoflann *a)
{
    if (!a)
        return;
    delete a->index;
    delete a;
}
