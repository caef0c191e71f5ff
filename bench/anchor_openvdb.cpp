// anchor_openvdb.cpp - an OpenVDB FloatGrid behind a C interface: the sparse voxel
// store a user would reach for instead of LumaDB's voxel grid. Values are written and
// read through a ValueAccessor (OpenVDB's cached path for coherent access).
// Exceptions never cross into C.
#include "anchors.h"

#include <openvdb/openvdb.h>
#include <openvdb/math/DDA.h>
#include <openvdb/tools/RayIntersector.h>

#include <climits>
#include <memory>
#include <mutex>

/* Spans at leaf level (NodeLevel 0): the finest the hierarchical DDA goes. */
using LeafIntersector = openvdb::tools::VolumeRayIntersector<openvdb::FloatGrid, 0>;

struct anchor_openvdb {
    openvdb::FloatGrid::Ptr grid;
    std::unique_ptr<LeafIntersector> inter; /* built by the first raycast */
};

static void init_once()
{
    static std::once_flag once;
    std::call_once(once, [] { openvdb::initialize(); });
}

extern "C" anchor_openvdb *anchor_openvdb_build(const int32_t *ijk, const float *values,
                                                size_t n)
{
    anchor_openvdb *a = nullptr;
    try {
        init_once();
        a = new anchor_openvdb;
        a->grid = openvdb::FloatGrid::create(0.0f);
        openvdb::FloatGrid::Accessor acc = a->grid->getAccessor();
        for (size_t i = 0; i < n; i++)
            acc.setValue(openvdb::Coord(ijk[3 * i], ijk[3 * i + 1], ijk[3 * i + 2]), values[i]);
        return a;
    } catch (...) {
        delete a;
        return nullptr;
    }
}

extern "C" double anchor_openvdb_read_sum(const anchor_openvdb *a, const int32_t *ijk,
                                          size_t n)
{
    openvdb::FloatGrid::ConstAccessor acc = a->grid->getConstAccessor();
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += acc.getValue(openvdb::Coord(ijk[3 * i], ijk[3 * i + 1], ijk[3 * i + 2]));
    return sum;
}

extern "C" size_t anchor_openvdb_memory_bytes(const anchor_openvdb *a)
{
    return (size_t)a->grid->memUsage();
}

extern "C" size_t anchor_openvdb_raycast(anchor_openvdb *a, const float *rays, size_t n,
                                         int first_only, int32_t *hit_ijk,
                                         anchor_openvdb_visit_fn visit, void *user)
{
    using RayT = LeafIntersector::RayType;
    using Vec3 = RayT::Vec3Type;
    try {
        if (!a->inter)
            a->inter.reset(new LeafIntersector(*a->grid));
    } catch (...) {
        return 0; /* an empty grid: VolumeRayIntersector refuses it */
    }
    openvdb::FloatGrid::ConstAccessor acc = a->grid->getConstAccessor();
    size_t hits = 0;
    for (size_t i = 0; i < n; i++) {
        const float *r = rays + 8 * i;
        RayT ray(Vec3(r[0], r[1], r[2]), Vec3(r[4], r[5], r[6]), 0.0, r[3]);
        bool hit = false, done = false;
        openvdb::Coord first(INT32_MIN, INT32_MIN, INT32_MIN);
        double t0 = 0, t1 = 0;
        if (a->inter->setIndexRay(ray)) {
            while (!done && a->inter->march(t0, t1)) {
                openvdb::math::DDA<RayT, 0> dda(ray, t0, t1);
                do {
                    const openvdb::Coord ijk = dda.voxel();
                    if (acc.isValueOn(ijk)) {
                        if (!hit)
                            first = ijk;
                        hit = true;
                        if (visit)
                            visit(user, i, acc.getValue(ijk));
                        done = first_only;
                    }
                } while (!done && dda.step());
            }
        }
        hits += hit;
        if (hit_ijk)
            for (int k = 0; k < 3; k++)
                hit_ijk[3 * i + k] = first[k];
    }
    return hits;
}

extern "C" void anchor_openvdb_free(anchor_openvdb *a)
{
    delete a;
}
