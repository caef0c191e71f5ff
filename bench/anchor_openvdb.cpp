// anchor_openvdb.cpp - an OpenVDB FloatGrid behind a C interface: the sparse voxel
// store a user would reach for instead of LumaDB's voxel grid. Values are written and
// read through a ValueAccessor (OpenVDB's cached path for coherent access).
// Exceptions never cross into C.
#include "anchors.h"

#include <openvdb/openvdb.h>

#include <mutex>

struct anchor_openvdb {
    openvdb::FloatGrid::Ptr grid;
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

extern "C" void anchor_openvdb_free(anchor_openvdb *a)
{
    delete a;
}
