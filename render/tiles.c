/* tiles.c - tile loading from the database, GL buffers, LRU eviction (tiles.h). */
#include "tiles.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "morton.h"

_Static_assert(sizeof(struct lm__instance) == 72, "instance layout is part of voxel.vert");

/* Unit cube: corner i has x = i & 1, y = i >> 1 & 1, z = i >> 2 & 1 (as -0.5 / +0.5);
 * triangles wind counter-clockwise seen from outside. */
static const GLubyte cube_index[36] = {0, 4, 6, 0, 6, 2, 1, 3, 7, 1, 7, 5,
                                       0, 1, 5, 0, 5, 4, 2, 6, 7, 2, 7, 3,
                                       0, 2, 3, 0, 3, 1, 4, 5, 7, 4, 7, 6};

int lm__tiles_init(struct lm__tiles *t, struct lm_error *err)
{
    memset(t, 0, sizeof *t);
    float corner[8][3];
    for (int i = 0; i < 8; i++)
        for (int a = 0; a < 3; a++)
            corner[i][a] = (i >> a & 1) ? 0.5f : -0.5f;
    glGenBuffers(1, &t->cube_vbo);
    glBindBuffer(GL_ARRAY_BUFFER, t->cube_vbo);
    glBufferData(GL_ARRAY_BUFFER, sizeof corner, corner, GL_STATIC_DRAW);
    glGenBuffers(1, &t->cube_ebo);
    glBindBuffer(GL_ELEMENT_ARRAY_BUFFER, t->cube_ebo);
    glBufferData(GL_ELEMENT_ARRAY_BUFFER, sizeof cube_index, cube_index, GL_STATIC_DRAW);
    glBindBuffer(GL_ARRAY_BUFFER, 0);
    glBindBuffer(GL_ELEMENT_ARRAY_BUFFER, 0);
    return lm_gl_check("creating cube geometry", err);
}

static void tile_release(struct lm__tile *tile)
{
    glDeleteVertexArrays(1, &tile->vao_splat);
    glDeleteVertexArrays(1, &tile->vao_cube);
    glDeleteBuffers(1, &tile->vbo);
}

void lm__tiles_free(struct lm__tiles *t)
{
    for (uint32_t i = 0; i < t->n; i++)
        tile_release(&t->v[i]);
    if (t->cube_vbo)
        glDeleteBuffers(1, &t->cube_vbo);
    if (t->cube_ebo)
        glDeleteBuffers(1, &t->cube_ebo);
    lm_free(t->v);
    lm__keymap_free(&t->map);
    memset(t, 0, sizeof *t);
}

struct lm__tile *lm__tiles_find(const struct lm__tiles *t, const struct lm__tkey *key)
{
    uint32_t at = lm__keymap_get(&t->map, key);
    return at == UINT32_MAX ? NULL : &t->v[at];
}

enum lm__tile_state lm__tiles_state(const struct lm__tiles *t, const struct lm__lnode *n,
                                    bool need_time, uint32_t *count)
{
    const struct lm__tile *tile = lm__tiles_find(t, &n->key);
    if (!tile)
        return LM__TILE_ABSENT;
    *count = tile->n;
    return tile->sig == n->sig && (tile->has_time || !need_time) ? LM__TILE_FRESH
                                                                  : LM__TILE_STALE;
}

/* ---------------------------------------------------------------- loading */

/* Mean sample time per cell: bins the samples of the chunks meeting the tile. */
struct time_bins {
    const struct lm__keymap *cells;
    double inv_voxel;
    uint32_t level;
    int64_t t_base;
    double *sum;
    uint32_t *count;
};

static int bin_chunk(const struct lm_chunk_view *cv, void *user)
{
    struct time_bins *b = user;
    for (size_t i = 0; i < cv->n; i++) {
        const float p[3] = {cv->x[i], cv->y[i], cv->z[i]};
        struct lm__tkey key = {0, {0, 0, 0}};
        for (int a = 0; a < 3; a++)
            key.c[a] = (int32_t)(lm_voxel_of(p[a], b->inv_voxel) >> b->level);
        uint32_t at = lm__keymap_get(b->cells, &key);
        if (at == UINT32_MAX) /* a neighbouring tile's sample */
            continue;
        b->sum[at] += (double)(cv->t[i] - b->t_base);
        b->count[at]++;
    }
    return 0;
}

static int add_time(struct lm__instance *inst, const struct lm_voxels *vox, lm_db *db,
                    const char *field, const struct lm_region *box, const struct lm__lod *l,
                    int64_t t_base, struct lm_error *err)
{
    struct lm__keymap cells = {0};
    struct time_bins b = {.cells = &cells, .inv_voxel = 1.0 / (double)l->voxel_size,
                          .level = vox->level, .t_base = t_base};
    b.sum = lm_calloc(vox->n, sizeof *b.sum);
    b.count = lm_calloc(vox->n, sizeof *b.count);
    int rc = (!b.sum || !b.count) ? -ENOMEM : lm__keymap_reset(&cells, (uint32_t)vox->n);
    for (size_t i = 0; i < vox->n && !rc; i++) {
        const int32_t *c = vox->v[i].coord;
        rc = lm__keymap_put(&cells, &(struct lm__tkey){0, {c[0], c[1], c[2]}}, (uint32_t)i);
    }
    if (rc)
        rc = lm__fail(err, rc, "out of memory binning sample times");
    else
        rc = lm_chunks_each(db, field, box, 0, bin_chunk, &b, err);
    for (size_t i = 0; i < vox->n && !rc; i++)
        inst[i].attr[1] = b.count[i] ? (float)(b.sum[i] / b.count[i] * 1e-6) : 0.0f;
    lm__keymap_free(&cells);
    lm_free(b.sum);
    lm_free(b.count);
    return rc;
}

static uint8_t unorm8(float v)
{
    v = v < 0 ? 0 : (v > 1 ? 1 : v);
    return (uint8_t)lrintf(v * 255.0f);
}

static void fill_instances(struct lm__instance *inst, const struct lm_voxels *vox)
{
    for (size_t i = 0; i < vox->n; i++) {
        const struct lm_voxel *v = &vox->v[i];
        struct lm__instance *o = &inst[i];
        float inv = v->count ? 1.0f / (float)v->count : 0.0f;
        for (int a = 0; a < 3; a++)
            o->center[a] = (float)(((double)v->coord[a] + 0.5) * vox->cell_size);
        o->rgba[0] = unorm8(v->mean_r);
        o->rgba[1] = unorm8(v->mean_g);
        o->rgba[2] = unorm8(v->mean_b);
        o->rgba[3] = 255;
        o->attr[0] = v->sum_intensity * inv;
        o->attr[1] = 0;
        for (int ch = 0; ch < 3; ch++)
            for (int k = 0; k < 4; k++)
                o->sh[ch][k] = v->sh[ch][k] * inv;
    }
}

/* Vertex arrays over a tile buffer: instance attributes per vertex (points) or per
 * instance with the cube corners per vertex. */
static void setup_vao(GLuint vao, GLuint vbo, const struct lm__tiles *t, bool cubes)
{
    glBindVertexArray(vao);
    if (cubes) {
        glBindBuffer(GL_ARRAY_BUFFER, t->cube_vbo);
        glEnableVertexAttribArray(0);
        glVertexAttribPointer(0, 3, GL_FLOAT, GL_FALSE, 3 * sizeof(float), (void *)0);
        glBindBuffer(GL_ELEMENT_ARRAY_BUFFER, t->cube_ebo);
    }
    glBindBuffer(GL_ARRAY_BUFFER, vbo);
    const GLsizei stride = sizeof(struct lm__instance);
    GLuint div = cubes ? 1 : 0;
    glEnableVertexAttribArray(1);
    glVertexAttribPointer(1, 3, GL_FLOAT, GL_FALSE, stride,
                          (void *)offsetof(struct lm__instance, center));
    glEnableVertexAttribArray(2);
    glVertexAttribPointer(2, 4, GL_UNSIGNED_BYTE, GL_TRUE, stride,
                          (void *)offsetof(struct lm__instance, rgba));
    glEnableVertexAttribArray(3);
    glVertexAttribPointer(3, 2, GL_FLOAT, GL_FALSE, stride,
                          (void *)offsetof(struct lm__instance, attr));
    for (int ch = 0; ch < 3; ch++) {
        glEnableVertexAttribArray(4 + ch);
        glVertexAttribPointer(4 + ch, 4, GL_FLOAT, GL_FALSE, stride,
                              (void *)(offsetof(struct lm__instance, sh) + ch * 4 * sizeof(float)));
    }
    for (GLuint a = 1; a <= 6; a++)
        glVertexAttribDivisor(a, div);
    glBindVertexArray(0);
    glBindBuffer(GL_ARRAY_BUFFER, 0);
}

/* A new, empty tile slot for key (GL objects created). */
static int tile_add(struct lm__tiles *t, const struct lm__tkey *key, struct lm__tile **out,
                    struct lm_error *err)
{
    if (t->n == t->cap) {
        uint32_t cap = t->cap ? t->cap * 2 : 64;
        struct lm__tile *v = lm_realloc(t->v, (size_t)cap * sizeof *v);
        if (!v)
            return lm__fail(err, -ENOMEM, "out of memory caching tiles");
        t->v = v;
        t->cap = cap;
    }
    if (lm__keymap_put(&t->map, key, t->n))
        return lm__fail(err, -ENOMEM, "out of memory caching tiles");
    struct lm__tile *tile = &t->v[t->n++];
    memset(tile, 0, sizeof *tile);
    tile->key = *key;
    glGenBuffers(1, &tile->vbo);
    glGenVertexArrays(1, &tile->vao_splat);
    glGenVertexArrays(1, &tile->vao_cube);
    setup_vao(tile->vao_splat, tile->vbo, t, false);
    setup_vao(tile->vao_cube, tile->vbo, t, true);
    *out = tile;
    return 0;
}

static void tile_remove(struct lm__tiles *t, uint32_t i)
{
    struct lm__tile *tile = &t->v[i];
    t->bytes -= tile->bytes;
    tile_release(tile);
    lm__keymap_del(&t->map, &tile->key);
    if (i != t->n - 1) {
        t->v[i] = t->v[t->n - 1];
        lm__keymap_put(&t->map, &t->v[i].key, i); /* overwrite: cannot grow */
    }
    t->n--;
}

int lm__tiles_load(struct lm__tiles *t, lm_db *db, const char *field,
                   const struct lm__lod *l, const struct lm__lnode *n, bool with_time,
                   struct lm_error *err)
{
    /* The node's cell as a box [lo, hi): a chunk's samples lie in [lo, hi) on every
     * axis, so the engine's walk (which prunes by the samples' tight bounds) reaches this
     * node's chunks and none of its neighbours'. Cells are then kept by coordinate, in
     * case rounding of lo/hi to float let a neighbouring cell touch the box. */
    double lo[3], hi[3];
    lm__lod_cell_box(l, &n->key, lo, hi);
    struct lm_region box = {.kind = LM_REGION_BOX};
    for (int a = 0; a < 3; a++) {
        box.min[a] = (float)lo[a];
        box.max[a] = nextafterf((float)hi[a], -INFINITY);
    }
    struct lm_voxels *vox = NULL;
    int rc = lm_voxels_query(db, field, &box, (uint32_t)n->key.k, &vox, err);
    if (rc)
        return rc;
    size_t kept = 0;
    for (size_t i = 0; i < vox->n; i++) {
        const int32_t *c = vox->v[i].coord;
        bool mine = true;
        for (int a = 0; a < 3; a++)
            mine = mine && (c[a] >> l->log2_edge) == n->key.c[a];
        if (mine)
            vox->v[kept++] = vox->v[i];
    }
    vox->n = kept;
    struct lm__instance *inst = lm_alloc((vox->n ? vox->n : 1) * sizeof *inst);
    if (!inst) {
        lm_voxels_free(vox);
        return lm__fail(err, -ENOMEM, "out of memory loading a tile of %zu voxels", vox->n);
    }
    fill_instances(inst, vox);
    if (with_time && (rc = add_time(inst, vox, db, field, &box, l, t->t_base, err)))
        goto done;
    struct lm__tile *tile = lm__tiles_find(t, &n->key);
    if (!tile && (rc = tile_add(t, &n->key, &tile, err)))
        goto done;
    size_t bytes = vox->n * sizeof *inst;
    glBindBuffer(GL_ARRAY_BUFFER, tile->vbo);
    glBufferData(GL_ARRAY_BUFFER, (GLsizeiptr)bytes, inst, GL_STATIC_DRAW);
    glBindBuffer(GL_ARRAY_BUFFER, 0);
    if ((rc = lm_gl_check("uploading a tile", err))) {
        tile_remove(t, (uint32_t)(tile - t->v));
        goto done;
    }
    t->bytes = t->bytes - tile->bytes + bytes;
    tile->bytes = bytes;
    tile->n = (uint32_t)vox->n;
    tile->sig = n->sig;
    tile->lsn = n->lsn;
    tile->has_time = with_time;
    tile->used_frame = t->frame - 1; /* not in use until drawn */
    t->loads++;
done:
    lm_free(inst);
    lm_voxels_free(vox);
    return rc;
}

/* ---------------------------------------------------------------- eviction, drawing */

static int cmp_used(const void *pa, const void *pb, void *ctx)
{
    const struct lm__tiles *t = ctx;
    uint64_t a = t->v[*(const uint32_t *)pa].used_frame, b = t->v[*(const uint32_t *)pb].used_frame;
    return a < b ? -1 : (a > b ? 1 : 0);
}

static int cmp_index_desc(const void *pa, const void *pb)
{
    uint32_t a = *(const uint32_t *)pa, b = *(const uint32_t *)pb;
    return a > b ? -1 : (a < b ? 1 : 0);
}

void lm__tiles_evict(struct lm__tiles *t, size_t budget)
{
    if (t->bytes <= budget)
        return;
    uint32_t *order = lm_alloc((size_t)t->n * sizeof *order), m = 0;
    if (!order)
        return; /* try again next frame */
    for (uint32_t i = 0; i < t->n; i++)
        if (t->v[i].used_frame < t->frame)
            order[m++] = i;
    qsort_r(order, m, sizeof *order, cmp_used, t);
    uint32_t k = 0;
    size_t freed = 0;
    while (k < m && t->bytes - freed > budget)
        freed += t->v[order[k++]].bytes;
    /* removal swaps the last tile into the hole: go from the highest index down so
     * that the indices still to remove stay valid */
    qsort(order, k, sizeof *order, cmp_index_desc);
    for (uint32_t i = 0; i < k; i++) {
        tile_remove(t, order[i]);
        t->evictions++;
    }
    lm_free(order);
}

void lm__tiles_draw(const struct lm__tile *tile, bool cubes)
{
    if (!tile->n)
        return;
    if (cubes) {
        glBindVertexArray(tile->vao_cube);
        glDrawElementsInstanced(GL_TRIANGLES, 36, GL_UNSIGNED_BYTE, (void *)0,
                                (GLsizei)tile->n);
    } else {
        glBindVertexArray(tile->vao_splat);
        glDrawArrays(GL_POINTS, 0, (GLsizei)tile->n);
    }
}
