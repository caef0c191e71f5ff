/* anchor_sqlite.c - SQLite R*Tree as the box-query anchor (benchmarks only). */
#include <sqlite3.h>
#include <stdlib.h>

#include "anchors.h"

struct anchor_rtree {
    sqlite3 *db;
    sqlite3_stmt *query;
};

anchor_rtree *anchor_rtree_build(const float *x, const float *y, const float *z, size_t n)
{
    anchor_rtree *a = calloc(1, sizeof *a);
    if (!a || sqlite3_open(":memory:", &a->db) != SQLITE_OK)
        goto fail;
    if (sqlite3_exec(a->db,
                     "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
                     "CREATE VIRTUAL TABLE rt USING rtree(id, x0, x1, y0, y1, z0, z1);"
                     "BEGIN;",
                     NULL, NULL, NULL) != SQLITE_OK)
        goto fail;
    sqlite3_stmt *ins;
    if (sqlite3_prepare_v2(a->db, "INSERT INTO rt VALUES (?, ?, ?, ?, ?, ?, ?)", -1, &ins,
                           NULL) != SQLITE_OK)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_int64(ins, 1, (sqlite3_int64)i);
        sqlite3_bind_double(ins, 2, x[i]);
        sqlite3_bind_double(ins, 3, x[i]);
        sqlite3_bind_double(ins, 4, y[i]);
        sqlite3_bind_double(ins, 5, y[i]);
        sqlite3_bind_double(ins, 6, z[i]);
        sqlite3_bind_double(ins, 7, z[i]);
        if (sqlite3_step(ins) != SQLITE_DONE)
            goto fail;
        sqlite3_reset(ins);
    }
    sqlite3_finalize(ins);
    if (sqlite3_exec(a->db, "COMMIT;", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(a->db,
                           "SELECT id FROM rt WHERE x0 >= ? AND x1 <= ? AND y0 >= ? AND "
                           "y1 <= ? AND z0 >= ? AND z1 <= ?",
                           -1, &a->query, NULL) != SQLITE_OK)
        goto fail;
    return a;
fail:
    anchor_rtree_free(a);
    return NULL;
}

size_t anchor_rtree_box(anchor_rtree *a, const float min[3], const float max[3])
{
    for (int k = 0; k < 3; k++) {
        sqlite3_bind_double(a->query, 1 + 2 * k, min[k]);
        sqlite3_bind_double(a->query, 2 + 2 * k, max[k]);
    }
    size_t rows = 0;
    while (sqlite3_step(a->query) == SQLITE_ROW)
        rows += sqlite3_column_int64(a->query, 0) >= 0;
    sqlite3_reset(a->query);
    return rows;
}

void anchor_rtree_free(anchor_rtree *a)
{
    if (!a)
        return;
    sqlite3_finalize(a->query);
    sqlite3_close(a->db);
    free(a);
}
