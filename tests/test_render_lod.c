/* test_render_lod.c - the viewer's chunk directory and tile selection (render/lod.h),
 * without GL: on random fields, cameras and resident sets the draw list holds only
 * resident tiles, never a node together with its ancestor, covers every chunk in view,
 * stays within the voxel budget and refines to the pixel error when it may; the load
 * list is ordered by urgency; the directory's signatures follow inserts and deletes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lod.h"
#include "lumadb.h"

struct fixture {
    char dir[64];
    lm_db *db;
    struct lm__lod lod;
    struct lm__lod_plan plan;
};

static uint64_t rng_state;

static uint64_t rng(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float rngf(float lo, float hi)
{
    return lo + (hi - lo) * (float)(rng() >> 40) / 16777216.0f;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/lumadb-lod-XXXXXX");
    if (!mkdtemp(f->dir) || lm_db_open(f->dir, NULL, &f->db, NULL))
        return -1;
    struct lm_field_opts o = {.voxel_size = 1.0f, .chunk_edge = 8};
    if (lm_field_create(f->db, "f", &o, NULL))
        return -1;
    lm__lod_init(&f->lod);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    lm__lod_plan_free(&f->plan);
    lm__lod_free(&f->lod);
    lm_db_close(f->db);
    nftw(f->dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* n samples in a few blobs and a sheet over [-120, 120]^2 x [-20, 20]. */
static void insert_random(lm_db *db, size_t n)
{
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y), *z = malloc(n * sizeof *z);
    float cx[4], cy[4];
    for (int b = 0; b < 4; b++)
        cx[b] = rngf(-100, 100), cy[b] = rngf(-100, 100);
    for (size_t i = 0; i < n; i++) {
        int b = (int)(rng() % 5);
        if (b == 4) { /* the sheet */
            x[i] = rngf(-120, 120), y[i] = rngf(-120, 120), z[i] = rngf(-1, 1);
        } else {
            x[i] = cx[b] + rngf(-15, 15), y[i] = cy[b] + rngf(-15, 15), z[i] = rngf(-20, 20);
        }
    }
    struct lm_batch bt = {.n = n, .x = x, .y = y, .z = z};
    assert_int_equal(lm_insert(db, "f", &bt, NULL, NULL), 0);
    free(x), free(y), free(z);
}

/* ---------------------------------------------------------------- a fake tile cache */

struct fake {
    uint64_t seed;
    int resident_pct;      /* chance a non-top tile is resident */
    int stale_pct;         /* chance a resident tile is stale */
    uint32_t top;
};

static uint64_t key_hash(const struct lm__tkey *k, uint64_t seed)
{
    uint64_t h = seed;
    for (int a = 0; a < 3; a++)
        h = (h ^ (uint32_t)k->c[a]) * 0x100000001b3ull;
    return (h ^ (uint32_t)k->k) * 0x9e3779b97f4a7c15ull;
}

static enum lm__tile_state probe(void *ctx, const struct lm__lnode *n, uint32_t *count)
{
    const struct fake *f = ctx;
    uint64_t h = key_hash(&n->key, f->seed);
    if ((uint32_t)n->key.k != f->top && (int)(h % 100) >= f->resident_pct)
        return LM__TILE_ABSENT;
    uint64_t e = n->n_voxels0 >> (2 * n->key.k);
    *count = (uint32_t)(e ? e : 1);
    return (int)((h >> 32) % 100) < f->stale_pct ? LM__TILE_STALE : LM__TILE_FRESH;
}

/* ---------------------------------------------------------------- views */

static void random_view(const struct lm__lod *l, struct lm__lod_view *v)
{
    float eye[3] = {rngf(-200, 200), rngf(-200, 200), rngf(5, 200)};
    float target[3] = {rngf(-60, 60), rngf(-60, 60), 0}, up[3] = {0, 0, 1};
    struct lm_region fr;
    float fov = rngf(30, 80);
    assert_int_equal(lm_frustum_from_camera(eye, target, up, fov, 1.5f, 0.5f, 2000.0f, &fr), 0);
    memset(v, 0, sizeof *v);
    memcpy(v->eye, eye, sizeof eye);
    memcpy(v->planes, fr.planes, sizeof v->planes);
    v->focal_px = 600.0f / (2.0f * tanf(fov * 0.5f * 3.14159265f / 180.0f));
    v->pixel_error = rngf(0.5f, 6.0f);
    v->budget = rng() % 4 ? 1000 + rng() % 40000 : UINT64_MAX;
    (void)l;
}

static bool box_in_view(const struct lm__lod_view *v, const float lo[3], const float hi[3])
{
    for (int p = 0; p < 6; p++) {
        float d = v->planes[p][3];
        for (int a = 0; a < 3; a++)
            d += v->planes[p][a] * (v->planes[p][a] >= 0 ? hi[a] : lo[a]);
        if (d < 0)
            return false;
    }
    return true;
}

/* How many of key's ancestors (and key itself, with self) are in the drawn set. */
static int drawn_over(const struct lm__keymap *drawn, const struct lm__tkey *key, uint32_t top,
                      bool self)
{
    int n = 0;
    for (int k = key->k + !self; k <= (int)top; k++) {
        int s = k - key->k;
        struct lm__tkey a = {k, {key->c[0] >> s, key->c[1] >> s, key->c[2] >> s}};
        n += lm__keymap_get(drawn, &a) != UINT32_MAX;
    }
    return n;
}

static void check_plan(const struct lm__lod *l, const struct lm__lod_view *v,
                       struct fake *fk, const struct lm__lod_plan *pl, bool all_resident)
{
    uint64_t sum = 0, top_total = 0;
    bool tops_resident = true;
    for (uint32_t i = 0; i < l->n_nodes; i++) {
        const struct lm__lnode *n = &l->nodes[i];
        uint32_t c = 0;
        if ((uint32_t)n->key.k == l->top && box_in_view(v, n->bmin, n->bmax)) {
            if (probe(fk, n, &c) == LM__TILE_ABSENT)
                tops_resident = false;
            top_total += c;
        }
    }
    struct lm__keymap drawn = {0};
    assert_int_equal(lm__keymap_reset(&drawn, pl->n_draw), 0);
    for (uint32_t i = 0; i < pl->n_draw; i++)
        assert_int_equal(lm__keymap_put(&drawn, &pl->draw[i].node->key, i), 0);
    assert_int_equal(drawn.n, pl->n_draw); /* no node twice */
    for (uint32_t i = 0; i < pl->n_draw; i++) {
        const struct lm__lod_pick *p = &pl->draw[i];
        uint32_t c = 0;
        assert_int_not_equal(probe(fk, p->node, &c), LM__TILE_ABSENT);
        assert_int_equal(c, p->n_voxels);
        sum += p->n_voxels;
        assert_int_equal(drawn_over(&drawn, &p->node->key, l->top, false), 0);
        if (all_resident && v->budget == UINT64_MAX && p->node->key.k > 0)
            assert_true(p->error <= v->pixel_error);
    }
    assert_int_equal(sum, pl->voxels);
    assert_true(pl->voxels <= (v->budget > top_total ? v->budget : top_total));
    /* every chunk in view has exactly one drawn node over it */
    for (uint32_t i = 0; tops_resident && i < l->n_nodes; i++) {
        const struct lm__lnode *n = &l->nodes[i];
        if (!n->key.k && box_in_view(v, n->bmin, n->bmax))
            assert_int_equal(drawn_over(&drawn, &n->key, l->top, true), 1);
    }
    lm__keymap_free(&drawn);
    /* the load list: nothing fresh, most urgent first */
    for (uint32_t i = 0; i < pl->n_load; i++) {
        uint32_t c;
        const struct lm__lod_pick *p = &pl->load[i];
        enum lm__tile_state st = probe(fk, p->node, &c);
        assert_int_not_equal(st, LM__TILE_FRESH);
        assert_int_equal(st, p->state);
        assert_int_equal(p->required, st == LM__TILE_ABSENT && (uint32_t)p->node->key.k == l->top);
        if (i) {
            const struct lm__lod_pick *q = &pl->load[i - 1];
            int uq = q->required ? 0 : q->state == LM__TILE_ABSENT ? 1 : 2;
            int up = p->required ? 0 : p->state == LM__TILE_ABSENT ? 1 : 2;
            assert_true(uq < up || (uq == up && q->error >= p->error));
        }
    }
}

static void selection_keeps_its_invariants_on_random_views(void **state)
{
    struct fixture *f = *state;
    rng_state = 7;
    insert_random(f->db, 30000);
    assert_int_equal(lm__lod_sync(&f->lod, f->db, "f", NULL, NULL), 0);
    const struct lm__lod *l = &f->lod;
    assert_true(l->n_chunks > 100);
    assert_true(l->top >= 4);
    for (int round = 0; round < 300; round++) {
        struct lm__lod_view v;
        random_view(l, &v);
        bool all = round % 3 == 0;
        struct fake fk = {.seed = rng(), .resident_pct = all ? 100 : (int)(rng() % 100),
                          .stale_pct = all ? 0 : (int)(rng() % 30), .top = l->top};
        assert_int_equal(lm__lod_select(l, &v, probe, &fk, &f->plan), 0);
        check_plan(l, &v, &fk, &f->plan, all);
    }
}

static void with_everything_resident_and_no_limits_every_chunk_in_view_is_drawn(void **state)
{
    struct fixture *f = *state;
    rng_state = 11;
    insert_random(f->db, 20000);
    assert_int_equal(lm__lod_sync(&f->lod, f->db, "f", NULL, NULL), 0);
    const struct lm__lod *l = &f->lod;
    for (int round = 0; round < 50; round++) {
        struct lm__lod_view v;
        random_view(l, &v);
        v.pixel_error = 0;
        v.budget = UINT64_MAX;
        struct fake fk = {.resident_pct = 100, .top = l->top};
        assert_int_equal(lm__lod_select(l, &v, probe, &fk, &f->plan), 0);
        uint32_t in_view = 0;
        for (uint32_t i = 0; i < l->n_nodes; i++)
            in_view += !l->nodes[i].key.k && box_in_view(&v, l->nodes[i].bmin, l->nodes[i].bmax);
        assert_int_equal(f->plan.n_draw, in_view);
        assert_int_equal(f->plan.level_max, 0);
        assert_int_equal(f->plan.n_load, 0);
    }
}

/* ---------------------------------------------------------------- the directory */

static uint64_t sig_of(const struct lm__lod *l, int k, int32_t x, int32_t y, int32_t z)
{
    const struct lm__lnode *n = lm__lod_node(l, &(struct lm__tkey){k, {x, y, z}});
    return n ? n->sig : 0;
}

static void the_directory_follows_inserts_and_deletes(void **state)
{
    struct fixture *f = *state;
    struct lm__lod *l = &f->lod;
    bool changed;
    assert_int_equal(lm__lod_sync(l, f->db, "f", &changed, NULL), 0);
    assert_true(changed);
    assert_int_equal(l->n_chunks, 0);
    /* two chunks far apart: (0,0,0) and (5,0,0) with edge 8 */
    float x[2] = {1.5f, 41.5f}, y[2] = {1.5f, 1.5f}, z[2] = {1.5f, 1.5f};
    struct lm_batch bt = {.n = 2, .x = x, .y = y, .z = z};
    assert_int_equal(lm_insert(f->db, "f", &bt, NULL, NULL), 0);
    assert_int_equal(lm__lod_sync(l, f->db, "f", &changed, NULL), 0);
    assert_true(changed);
    assert_int_equal(l->n_chunks, 2);
    assert_int_equal(l->top, 3); /* 8 * 2^3 = 64 >= the 40-unit extent */
    uint64_t syncs = l->syncs;
    assert_int_equal(lm__lod_sync(l, f->db, "f", &changed, NULL), 0);
    assert_false(changed); /* nothing new: nothing re-read */
    assert_int_equal(l->syncs, syncs);

    uint64_t a0 = sig_of(l, 0, 0, 0, 0), b0 = sig_of(l, 0, 5, 0, 0), b1 = sig_of(l, 1, 2, 0, 0);
    uint64_t a1 = sig_of(l, 1, 0, 0, 0), top = sig_of(l, 3, 0, 0, 0);
    assert_true(a0 && b0 && b1 && a1 && top);
    /* a change in chunk (5,0,0) changes it and its ancestors, nothing else */
    x[0] = 42.5f;
    bt.n = 1;
    assert_int_equal(lm_insert(f->db, "f", &bt, NULL, NULL), 0);
    assert_int_equal(lm__lod_sync(l, f->db, "f", &changed, NULL), 0);
    assert_true(changed);
    assert_int_equal(sig_of(l, 0, 0, 0, 0), a0);
    assert_int_equal(sig_of(l, 1, 0, 0, 0), a1);
    assert_int_not_equal(sig_of(l, 0, 5, 0, 0), b0);
    assert_int_not_equal(sig_of(l, 1, 2, 0, 0), b1);
    assert_int_not_equal(sig_of(l, 3, 0, 0, 0), top);
    /* deleting a whole chunk removes its nodes and changes the shared ancestor */
    top = sig_of(l, 3, 0, 0, 0);
    struct lm_selection del = {.region = {.kind = LM_REGION_BOX, .min = {40, 0, 0},
                                          .max = {48, 8, 8}}};
    assert_int_equal(lm_delete(f->db, "f", &del, NULL, NULL, NULL), 0);
    assert_int_equal(lm__lod_sync(l, f->db, "f", &changed, NULL), 0);
    assert_true(changed);
    assert_int_equal(l->n_chunks, 1);
    assert_int_equal(sig_of(l, 0, 5, 0, 0), 0);
    assert_int_equal(sig_of(l, 0, 0, 0, 0), a0);
    /* the top level shrinks with the field: one chunk is its own top */
    assert_int_equal(l->top, 0);
    /* value ranges for the colour ramps */
    assert_true(l->i_min == 1.0f && l->i_max == 1.0f);
    assert_true(l->t_min == 0 && l->t_max == 0);
    /* a dropped field empties the picture */
    assert_int_equal(lm_field_drop(f->db, "f", NULL), 0);
    assert_int_equal(lm__lod_sync(l, f->db, "f", &changed, NULL), 0);
    assert_true(changed);
    assert_false(l->have_field);
    assert_int_equal(l->n_nodes, 0);
    (void)top;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(selection_keeps_its_invariants_on_random_views, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            with_everything_resident_and_no_limits_every_chunk_in_view_is_drawn, setup,
            teardown),
        cmocka_unit_test_setup_teardown(the_directory_follows_inserts_and_deletes, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
