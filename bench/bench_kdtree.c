/* bench_kdtree.c - lm_kdtree against nanoflann: build time, k=10 nearest queries per
 * second on one thread, bytes per point, on the same Morton-sorted points and the same
 * queries. Prints markdown tables; checks on a sample that both indexes return the
 * same neighbour distances.
 *
 * Usage: bench_kdtree [points...]   (default 1000000 10000000)
 * Env: BENCH_QUERIES (default 100000), BENCH_SEED. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "anchors.h"
#include "bench_util.h"
#include "kdtree.h"

#define K 10
#define CHECK_QUERIES 2000

enum dist { UNIFORM, CLUSTERED };
static const char *const dist_name[] = {"uniform", "clustered"};

struct cloud {
    size_t n;
    float *x, *y, *z;
};

/* ---------------------------------------------------------------- data */

/* Points in the unit cube: uniform, or 256 blobs of radius about 0.01 (sum of three
 * uniforms per axis), the shape of scanned surfaces seen from afar. */
static void draw_point(uint64_t *s, enum dist d, const float *centers, float p[3])
{
    if (d == UNIFORM) {
        for (int a = 0; a < 3; a++)
            p[a] = bench_rngf(s);
        return;
    }
    const float *c = centers + 3 * (bench_rng(s) % 256);
    for (int a = 0; a < 3; a++)
        p[a] = c[a] + (bench_rngf(s) + bench_rngf(s) + bench_rngf(s) - 1.5f) * 0.0067f;
}

static uint64_t spread21(uint64_t v)
{
    v &= 0x1fffff;
    v = (v | v << 32) & 0x1f00000000ffffull;
    v = (v | v << 16) & 0x1f0000ff0000ffull;
    v = (v | v << 8) & 0x100f00f00f00f00full;
    v = (v | v << 4) & 0x10c30c30c30c30c3ull;
    v = (v | v << 2) & 0x1249249249249249ull;
    return v;
}

static uint64_t morton(float x, float y, float z)
{
    uint64_t q[3];
    float v[3] = {x, y, z};
    for (int a = 0; a < 3; a++) {
        float c = v[a] < 0 ? 0 : v[a] > 1 ? 1 : v[a];
        q[a] = (uint64_t)(c * 2097151.0f);
    }
    return spread21(q[0]) | spread21(q[1]) << 1 | spread21(q[2]) << 2;
}

/* LSD radix sort of (key, index) pairs, 16 bits a pass over the 63-bit keys. */
static void radix_sort(uint64_t *key, uint32_t *idx, size_t n)
{
    uint64_t *k2 = malloc(n * sizeof *k2);
    uint32_t *i2 = malloc(n * sizeof *i2);
    size_t *count = malloc(65536 * sizeof *count);
    for (int shift = 0; shift < 64; shift += 16) {
        memset(count, 0, 65536 * sizeof *count);
        for (size_t i = 0; i < n; i++)
            count[(key[i] >> shift) & 0xffff]++;
        size_t sum = 0;
        for (size_t b = 0; b < 65536; b++) {
            size_t c = count[b];
            count[b] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++) {
            size_t at = count[(key[i] >> shift) & 0xffff]++;
            k2[at] = key[i];
            i2[at] = idx[i];
        }
        memcpy(key, k2, n * sizeof *key);
        memcpy(idx, i2, n * sizeof *idx);
    }
    free(k2);
    free(i2);
    free(count);
}

static struct cloud make_cloud(uint64_t *s, size_t n, enum dist d, const float *centers)
{
    float *px = malloc(n * sizeof *px), *py = malloc(n * sizeof *py),
          *pz = malloc(n * sizeof *pz);
    uint64_t *key = malloc(n * sizeof *key);
    uint32_t *idx = malloc(n * sizeof *idx);
    for (size_t i = 0; i < n; i++) {
        float p[3];
        draw_point(s, d, centers, p);
        px[i] = p[0], py[i] = p[1], pz[i] = p[2];
        key[i] = morton(p[0], p[1], p[2]);
        idx[i] = (uint32_t)i;
    }
    radix_sort(key, idx, n);
    struct cloud c = {n, malloc(n * sizeof(float)), malloc(n * sizeof(float)),
                      malloc(n * sizeof(float))};
    for (size_t i = 0; i < n; i++)
        c.x[i] = px[idx[i]], c.y[i] = py[idx[i]], c.z[i] = pz[idx[i]];
    free(px), free(py), free(pz), free(key), free(idx);
    return c;
}

static void cloud_free(struct cloud *c) { free(c->x), free(c->y), free(c->z); }

/* ---------------------------------------------------------------- runs */

/* Query loops are timed REPS times, alternating between the indexes, and the best
 * pass counts: the machine is shared, and the best pass is the one least disturbed. */
#define REPS 3

struct result {
    double build_ms, qps, bytes_per_point;
};

static volatile float sink;

static double time_lm(const lm_kdtree *t, const struct cloud *c, const float *q, size_t nq,
                      struct lm_knn_heap *h, float *check_d2)
{
    float acc = 0;
    double t0 = bench_now();
    for (size_t i = 0; i < nq; i++) {
        lm_knn_heap_reset(h);
        lm_kdtree_knn(t, c->x, c->y, c->z, q + 3 * i, 0, INFINITY, NULL, NULL, h);
        lm_knn_heap_sort(h);
        acc += h->d2[K - 1];
        if (i < CHECK_QUERIES)
            memcpy(check_d2 + K * i, h->d2, K * sizeof(float));
    }
    double dt = bench_now() - t0;
    sink += acc;
    return (double)nq / dt;
}

static double time_nanoflann(const anchor_nanoflann *a, const float *q, size_t nq,
                             float *check_d2)
{
    uint32_t idx[K];
    float d2[K], acc = 0;
    double t0 = bench_now();
    for (size_t i = 0; i < nq; i++) {
        anchor_nanoflann_knn(a, q + 3 * i, K, idx, d2);
        acc += d2[K - 1];
        if (i < CHECK_QUERIES)
            memcpy(check_d2 + K * i, d2, sizeof d2);
    }
    double dt = bench_now() - t0;
    sink += acc;
    return (double)nq / dt;
}

static double max_d(double a, double b) { return a > b ? a : b; }

/* Builds the three indexes over c and times them on the same queries. */
static void compare(const struct cloud *c, const float *q, size_t nq, struct result r[3],
                    float *d_lm, float *d_nf)
{
    anchor_nanoflann *nf[2];
    for (int v = 0; v < 2; v++) {
        double t0 = bench_now();
        nf[v] = anchor_nanoflann_build(c->x, c->y, c->z, c->n, 10, v);
        r[v].build_ms = (bench_now() - t0) * 1e3;
        if (!nf[v]) {
            fprintf(stderr, "nanoflann build failed\n");
            exit(1);
        }
        r[v].bytes_per_point = (double)anchor_nanoflann_memory_bytes(nf[v]) / (double)c->n;
        r[v].qps = 0;
    }
    lm_kdtree *t = NULL;
    double t0 = bench_now();
    if (lm_kdtree_build(c->x, c->y, c->z, (uint32_t)c->n, &t) != 0) {
        fprintf(stderr, "lm_kdtree_build failed\n");
        exit(1);
    }
    r[2].build_ms = (bench_now() - t0) * 1e3;
    r[2].bytes_per_point = (double)lm_kdtree_memory_bytes(t) / (double)c->n;
    r[2].qps = 0;
    struct lm_knn_heap h;
    if (lm_knn_heap_init(&h, K) != 0)
        exit(1);
    for (int rep = 0; rep < REPS; rep++) {
        for (int v = 0; v < 2; v++)
            r[v].qps = max_d(r[v].qps, time_nanoflann(nf[v], q, nq, d_nf));
        r[2].qps = max_d(r[2].qps, time_lm(t, c, q, nq, &h, d_lm));
    }
    lm_knn_heap_free(&h);
    lm_kdtree_free(t);
    anchor_nanoflann_free(nf[0]);
    anchor_nanoflann_free(nf[1]);
}

static size_t count_mismatches(const float *a, const float *b, size_t nq)
{
    size_t bad = 0, m = (nq < CHECK_QUERIES ? nq : CHECK_QUERIES) * K;
    for (size_t i = 0; i < m; i++)
        bad += a[i] != b[i];
    return bad;
}

static void print_row(size_t n, enum dist d, const char *index, const struct result *r,
                      double base_qps, size_t mismatches)
{
    char cn[32], cb[32], cq[32], cr[32], cm[32], cx[32];
    snprintf(cn, sizeof cn, "%zu", n);
    snprintf(cb, sizeof cb, "%.1f", r->build_ms);
    snprintf(cq, sizeof cq, "%.0f", r->qps);
    snprintf(cr, sizeof cr, "%.2fx", r->qps / base_qps);
    snprintf(cm, sizeof cm, "%.2f", r->bytes_per_point);
    snprintf(cx, sizeof cx, "%zu", mismatches);
    const char *cells[] = {cn, dist_name[d], index, cb, cq, cr, cm, cx, NULL};
    bench_table_row(cells);
}

int main(int argc, char **argv)
{
    size_t sizes[8] = {1000000, 10000000};
    int n_sizes = 2;
    if (argc > 1) {
        n_sizes = 0;
        for (int i = 1; i < argc && n_sizes < 8; i++)
            sizes[n_sizes++] = (size_t)strtoull(argv[i], NULL, 10);
    }
    const char *e = getenv("BENCH_QUERIES");
    size_t nq = e ? (size_t)strtoull(e, NULL, 10) : 100000;
    e = getenv("BENCH_SEED");
    uint64_t seed = e ? strtoull(e, NULL, 10) : 12345;

    float centers[3 * 256];
    uint64_t s = seed;
    for (int i = 0; i < 3 * 256; i++)
        centers[i] = 0.05f + 0.9f * bench_rngf(&s);

    static const char *const cols[] = {"points", "data", "index", "build ms",
                                       "kNN k=10 q/s", "vs nanoflann", "bytes/point",
                                       "d2 mismatches", NULL};
    bench_table_header("kNN k=10, one thread (same points, same queries)", cols);
    size_t check = (nq < CHECK_QUERIES ? nq : CHECK_QUERIES) * K;
    float *d_lm = calloc(check + 1, sizeof(float)), *d_nf = calloc(check + 1, sizeof(float));
    for (int si = 0; si < n_sizes; si++)
        for (int d = UNIFORM; d <= CLUSTERED; d++) {
            struct cloud c = make_cloud(&s, sizes[si], (enum dist)d, centers);
            /* Queries from the same distribution, independent of the points. */
            float *q = malloc(3 * nq * sizeof *q);
            for (size_t i = 0; i < nq; i++)
                draw_point(&s, (enum dist)d, centers, q + 3 * i);
            struct result r[3];
            compare(&c, q, nq, r, d_lm, d_nf);
            double base = max_d(r[0].qps, r[1].qps);
            print_row(c.n, (enum dist)d, "nanoflann (x,y,z columns)", &r[0], base, 0);
            print_row(c.n, (enum dist)d, "nanoflann (xyz copy)", &r[1], base, 0);
            print_row(c.n, (enum dist)d, "lm_kdtree", &r[2], base,
                      count_mismatches(d_lm, d_nf, nq));
            free(q);
            cloud_free(&c);
        }
    printf("\nq/s: best of %d passes over the same queries (random order, one thread); "
           "ratio: over the faster nanoflann layout; d2 mismatches: neighbour distances "
           "that differ from nanoflann's over the first %d queries\n",
           REPS, CHECK_QUERIES);
    free(d_lm);
    free(d_nf);
    return 0;
}
