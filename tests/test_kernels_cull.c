/* test_kernels_cull.c - frustum culling with LOD selection: the scalar, AVX2 and OpenCL
 * tables against each other (bit for bit) on random octrees and cameras, the selected
 * cut against a recursive walk of the tree, and the budget rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "alloc.h"
#include "cull.h"
#include "device.h"
#include "test_kernels.h"

static const struct lm_cull_table *impls[3];
static int n_impls;

/* ---------------------------------------------------------------- random octrees */

#define MAX_NODES 40000

/* Nodes in shuffled order, as columns, with their children for the recursive walk. */
struct tree {
    size_t n;
    float lo[3][MAX_NODES], hi[3][MAX_NODES];
    uint8_t level[MAX_NODES];
    int32_t parent[MAX_NODES];
    int32_t first_child[MAX_NODES], next_sibling[MAX_NODES];
    struct lm_cull_input in;
};

#define HASH_SLOTS (1u << 17) /* > 2 * MAX_NODES, a power of two */

/* The node of (level, key), added when new; slots maps hashes to 1 + node index. */
static int32_t find_or_add(struct tree *t, uint8_t level, const int32_t key[3], int32_t *keys,
                           int32_t *slots)
{
    uint32_t h = ((uint32_t)key[0] * 73856093u) ^ ((uint32_t)key[1] * 19349663u) ^
                 ((uint32_t)key[2] * 83492791u) ^ ((uint32_t)level * 2654435761u);
    for (h &= HASH_SLOTS - 1; slots[h]; h = (h + 1) & (HASH_SLOTS - 1)) {
        size_t i = (size_t)slots[h] - 1;
        if (t->level[i] == level && !memcmp(&keys[3 * i], key, 3 * sizeof *key))
            return (int32_t)i;
    }
    assert_true(t->n < MAX_NODES);
    size_t i = t->n++;
    slots[h] = (int32_t)i + 1;
    memcpy(&keys[3 * i], key, 3 * sizeof *key);
    t->level[i] = level;
    for (int a = 0; a < 3; a++) {
        t->lo[a][i] = INFINITY;
        t->hi[a][i] = -INFINITY;
    }
    t->parent[i] = -1;
    return (int32_t)i;
}

/* Leaves are chunks of edge 8 at random coordinates in a cube of side 2^depth chunks,
 * with tight boxes somewhere inside the chunk; inner nodes hold the union of their
 * children's boxes. Node order is then shuffled. */
static void tree_fill(struct tree *t, size_t leaves, int depth)
{
    int32_t *keys = lm_alloc(3 * MAX_NODES * sizeof *keys);
    int32_t *slots = lm_calloc(HASH_SLOTS, sizeof *slots);
    assert_true(keys && slots);
    t->n = 0;
    for (size_t l = 0; l < leaves; l++) {
        int32_t key[3];
        for (int a = 0; a < 3; a++)
            key[a] = (int32_t)below(1u << depth) - (1 << (depth - 1));
        int32_t child = find_or_add(t, 0, key, keys, slots);
        float lo[3], hi[3];
        for (int a = 0; a < 3; a++) {
            float base = (float)key[a] * 8.0f, u = (float)uniform(0, 8), v = (float)uniform(0, 8);
            lo[a] = base + fminf(u, v);
            hi[a] = base + fmaxf(u, v);
        }
        for (uint8_t lv = 0;; lv++) { /* grow the boxes up to the root */
            for (int a = 0; a < 3; a++) {
                t->lo[a][child] = fminf(t->lo[a][child], lo[a]);
                t->hi[a][child] = fmaxf(t->hi[a][child], hi[a]);
            }
            if (lv == depth)
                break;
            int32_t pk[3] = {key[0] >> (lv + 1), key[1] >> (lv + 1), key[2] >> (lv + 1)};
            int32_t p = find_or_add(t, (uint8_t)(lv + 1), pk, keys, slots);
            t->parent[child] = p;
            child = p;
        }
    }
    /* shuffle, remapping parents */
    int32_t *perm = lm_alloc(t->n * sizeof *perm), *inv = lm_alloc(t->n * sizeof *inv);
    struct tree *c = lm_alloc(sizeof *c);
    assert_true(perm && inv && c);
    for (size_t i = 0; i < t->n; i++)
        perm[i] = (int32_t)i;
    for (size_t i = t->n; i > 1; i--) {
        size_t j = below((uint32_t)i);
        int32_t tmp = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = tmp;
    }
    for (size_t i = 0; i < t->n; i++)
        inv[perm[i]] = (int32_t)i;
    memcpy(c, t, sizeof *c);
    for (size_t i = 0; i < t->n; i++) {
        size_t from = (size_t)perm[i];
        for (int a = 0; a < 3; a++) {
            t->lo[a][i] = c->lo[a][from];
            t->hi[a][i] = c->hi[a][from];
        }
        t->level[i] = c->level[from];
        t->parent[i] = c->parent[from] < 0 ? -1 : inv[c->parent[from]];
    }
    for (size_t i = 0; i < t->n; i++)
        t->first_child[i] = t->next_sibling[i] = -1;
    for (size_t i = t->n; i-- > 0;)
        if (t->parent[i] >= 0) {
            t->next_sibling[i] = t->first_child[t->parent[i]];
            t->first_child[t->parent[i]] = (int32_t)i;
        }
    t->in = (struct lm_cull_input){
        .n = t->n, .min_x = t->lo[0], .min_y = t->lo[1], .min_z = t->lo[2],
        .max_x = t->hi[0], .max_y = t->hi[1], .max_z = t->hi[2],
        .level = t->level, .parent = t->parent};
    lm_free(perm);
    lm_free(inv);
    lm_free(c);
    lm_free(keys);
    lm_free(slots);
}

/* A camera somewhere around or inside the tree, looking somewhere. */
static void random_camera(struct lm_cull_input *in, float extent)
{
    float eye[3], target[3], up[3] = {0, 1, 0};
    for (int a = 0; a < 3; a++) {
        eye[a] = (float)uniform(-1.5 * extent, 1.5 * extent);
        target[a] = (float)uniform(-extent, extent);
    }
    if (below(4) == 0) /* an eye inside some box: sse is +inf there */
        eye[0] = eye[1] = eye[2] = 0.5f;
    struct lm_region r;
    assert_int_equal(lm_frustum_from_camera(eye, target, up, (float)uniform(30, 100),
                                            (float)uniform(0.5, 2), 0.1f, 4 * extent, &r),
                     0);
    memcpy(in->planes, r.planes, sizeof r.planes);
    memcpy(in->eye, eye, sizeof eye);
    in->k = (float)uniform(100, 2000);
    in->error0 = (float)uniform(0.01, 1);
}

/* ---------------------------------------------------------------- naive selection */

struct classified {
    uint8_t *vis;
    float *sse, *hp;
};

/* The cut by recursion from the roots: a visible node is taken when it is fine enough
 * (or has no children), else its children are looked at. */
static void walk(const struct tree *t, const struct classified *c, int32_t i, float tau,
                 uint8_t *taken)
{
    if (!c->vis[i])
        return;
    if (c->sse[i] <= tau || t->first_child[i] < 0) {
        taken[i] = 1;
        return;
    }
    for (int32_t ch = t->first_child[i]; ch >= 0; ch = t->next_sibling[ch])
        walk(t, c, ch, tau, taken);
}

static size_t naive_cut(const struct tree *t, const struct classified *c, float tau,
                        uint32_t *out)
{
    uint8_t *taken = lm_calloc(t->n ? t->n : 1, 1);
    size_t k = 0;
    assert_non_null(taken);
    for (size_t i = 0; i < t->n; i++)
        if (t->parent[i] < 0)
            walk(t, c, (int32_t)i, tau, taken);
    for (size_t i = 0; i < t->n; i++)
        if (taken[i])
            out[k++] = (uint32_t)i;
    lm_free(taken);
    return k;
}

/* ---------------------------------------------------------------- tests */

static void tables_agree_bit_for_bit(void **state)
{
    (void)state;
    static struct tree t;
    static uint8_t vis[3][MAX_NODES];
    static float sse[3][MAX_NODES], hp[3][MAX_NODES];
    rng_start(1);
    const size_t leaf_counts[] = {1, 7, 9, 100, 3000};
    for (size_t li = 0; li < sizeof leaf_counts / sizeof leaf_counts[0]; li++) {
        tree_fill(&t, leaf_counts[li], 2 + (int)below(6));
        for (int cam = 0; cam < 12; cam++) {
            random_camera(&t.in, 64);
            for (int i = 0; i < n_impls; i++)
                assert_int_equal(impls[i]->classify(&t.in, vis[i], sse[i], hp[i]), 0);
            for (int i = 1; i < n_impls; i++) {
                bool same = !memcmp(vis[0], vis[i], t.n) &&
                            !memcmp(sse[0], sse[i], t.n * sizeof(float)) &&
                            !memcmp(hp[0], hp[i], t.n * sizeof(float));
                if (!same) {
                    for (size_t j = 0; j < t.n; j++)
                        if (vis[0][j] != vis[i][j] || memcmp(&sse[0][j], &sse[i][j], 4))
                            print_error("node %zu: %s vis %d sse %.9g, %s vis %d sse %.9g\n",
                                        j, impls[0]->name, vis[0][j], sse[0][j],
                                        impls[i]->name, vis[i][j], sse[i][j]);
                    print_error("%s differs from scalar (seed %" PRIu64 ")\n", impls[i]->name,
                                test_seed);
                    fail();
                }
            }
        }
    }
}

/* A random tree and camera, classified by the scalar table, and room for cuts. */
static struct tree t;
static uint8_t vis[MAX_NODES];
static float sse[MAX_NODES], hp[MAX_NODES];
static uint32_t got[MAX_NODES], want[MAX_NODES];
static const struct classified cls = {vis, sse, hp};

static void scene(size_t leaves, int depth)
{
    tree_fill(&t, leaves, depth);
    random_camera(&t.in, 64);
    lm_cull_scalar()->classify(&t.in, vis, sse, hp);
}

static void selection_is_the_cut_of_the_tree(void **state)
{
    (void)state;
    rng_start(2);
    for (int round = 0; round < 20; round++) {
        scene(1 + below(2000), 3 + (int)below(4));
        float taus[] = {0, 0.5f, (float)uniform(0, 50), 1e30f, INFINITY};
        for (size_t ti = 0; ti < sizeof taus / sizeof taus[0]; ti++) {
            size_t k = naive_cut(&t, &cls, taus[ti], want);
            for (int i = 0; i < n_impls; i++) {
                struct lm_cull_result r;
                assert_int_equal(lm_cull_select(impls[i], &t.in, taus[ti], MAX_NODES, got, &r), 0);
                assert_int_equal(r.n, k);
                assert_int_equal(r.wanted, k);
                assert_true(r.tau_used == taus[ti]);
                assert_memory_equal(got, want, k * sizeof *got);
            }
        }
    }
}

/* Under a budget the threshold rises to the smallest value whose cut fits. */
static void budget_raises_the_threshold_only_as_far_as_needed(void **state)
{
    (void)state;
    rng_start(3);
    for (int round = 0; round < 20; round++) {
        scene(50 + below(2000), 4 + (int)below(3));
        size_t full = naive_cut(&t, &cls, 0, want), roots = naive_cut(&t, &cls, INFINITY, want);
        size_t budget = roots + below((uint32_t)(full > roots ? full - roots + 1 : 1));
        for (int i = 0; i < n_impls; i++) {
            struct lm_cull_result r;
            assert_int_equal(lm_cull_select(impls[i], &t.in, 0, budget, got, &r), 0);
            size_t k = naive_cut(&t, &cls, r.tau_used, want);
            assert_true(r.n <= budget);
            assert_int_equal(r.n, k);
            assert_memory_equal(got, want, k * sizeof *got);
            if (r.tau_used > 0) /* just below it the cut did not fit */
                assert_true(naive_cut(&t, &cls, nextafterf(r.tau_used, 0), want) > budget);
        }
    }
    /* A budget below the visible roots: the first roots, and how many there were. */
    tree_fill(&t, 500, 1);
    memset(&t.in.planes, 0, sizeof t.in.planes);
    for (int p = 0; p < 6; p++)
        t.in.planes[p][3] = 1; /* everything visible */
    t.in.k = 100;
    t.in.error0 = 1;
    struct lm_cull_result r;
    assert_int_equal(lm_cull_select(lm_cull_best(), &t.in, 0, 2, got, &r), 0);
    assert_int_equal(r.n, 2);
    assert_true(r.wanted > 2);
    assert_true(isinf(r.tau_used));
    assert_int_equal(lm_cull_select(lm_cull_best(), &t.in, 0, 0, NULL, &r), 0);
    assert_int_equal(r.n, 0);
}

static void bad_arguments_are_rejected(void **state)
{
    (void)state;
    float box[1] = {0};
    uint8_t level[1] = {0};
    int32_t parent[1] = {-1};
    uint32_t out[1];
    struct lm_cull_result r = {.n = 77};
    struct lm_cull_input in = {.n = 1, .min_x = box, .min_y = box, .min_z = box,
                               .max_x = box, .max_y = box, .max_z = box, .level = level,
                               .parent = parent, .k = 1, .error0 = 1};
    const struct lm_cull_table *best = lm_cull_best();
    assert_int_equal(lm_cull_select(best, &in, 0, 1, out, &r), 0);
    assert_int_equal(r.n, 1); /* a lone leaf at the eye, all planes 0 >= 0 */
    r.n = 77;
    assert_int_equal(lm_cull_select(NULL, &in, 0, 1, out, &r), LM_EBADARG);
    assert_int_equal(lm_cull_select(best, &in, -1, 1, out, &r), LM_EBADARG);
    assert_int_equal(lm_cull_select(best, &in, NAN, 1, out, &r), LM_EBADARG);
    assert_int_equal(lm_cull_select(best, &in, 0, 1, NULL, &r), LM_EBADARG);
    parent[0] = 1;
    assert_int_equal(lm_cull_select(best, &in, 0, 1, out, &r), LM_EBADARG);
    parent[0] = -1;
    level[0] = LM_CULL_MAX_LEVEL + 1;
    assert_int_equal(lm_cull_select(best, &in, 0, 1, out, &r), LM_EBADARG);
    level[0] = 0;
    in.eye[1] = INFINITY;
    assert_int_equal(lm_cull_select(best, &in, 0, 1, out, &r), LM_EBADARG);
    in.eye[1] = 0;
    in.min_y = NULL;
    assert_int_equal(lm_cull_select(best, &in, 0, 1, out, &r), LM_EBADARG);
    assert_int_equal(r.n, 77);
}

int main(void)
{
    rng_init("test_kernels_cull");
    TEST_IMPLS("test_kernels_cull", impls, n_impls, lm_cull_scalar, lm_cull_avx2,
               lm_cull_opencl);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bad_arguments_are_rejected),
        cmocka_unit_test(tables_agree_bit_for_bit),
        cmocka_unit_test(selection_is_the_cut_of_the_tree),
        cmocka_unit_test(budget_raises_the_threshold_only_as_far_as_needed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
