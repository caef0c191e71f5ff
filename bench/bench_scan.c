/* bench_scan.c - single-thread scan throughput: filter + aggregate over the columns
 * x, y, z, intensity (64M rows = 1 GiB of f32 by default), each implementation beside
 * a memory-sum of the same bytes measured in the same run. GB/s counts the bytes of
 * the columns a scan reads (intensity only without a filter, all four with one).
 * Usage: bench_scan [rows in millions (64)] [repetitions (5)] */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "bench_util.h"
#include "scan.h"


struct bench_case {
    const char *name;
    struct lm_region region;
    bool intensity_pred; /* intensity > 0.5 */
    bool select;         /* selection vector instead of an aggregate */
};

/* Seconds of one scan; *out receives its result (select: the count only). */
static double time_scan(const struct lm_scan_table *impl, const struct lm_scan_plan *plan,
                        const float *intensity, uint32_t *sel, struct lm_scan_agg *out)
{
    double t0 = bench_now();
    if (sel) {
        size_t k = 0;
        lm_scan_select(impl, plan, sel, &k);
        *out = (struct lm_scan_agg){.count = k};
    } else {
        lm_scan_aggregate(impl, plan, intensity, LM_SCAN_F32, out);
    }
    return bench_now() - t0;
}

int main(int argc, char **argv)
{
    size_t rows = (size_t)(argc > 1 ? atof(argv[1]) : 64) * (1u << 20);
    int reps = argc > 2 ? atoi(argv[2]) : 5;
    /* Columns sit GAP floats apart, as separately allocated columns would: at exact
     * power-of-two distances the four streams collide in the caches (here that made
     * a four-column read ~40% slower than a one-column read of the same bytes). */
    enum { GAP = 4096 + 16 };
    float *cols = lm_alloc((4 * rows + 3 * GAP) * sizeof(float));
    uint32_t *sel = lm_alloc(rows * sizeof(uint32_t));
    if (!rows || reps < 1 || !cols || !sel) {
        fprintf(stderr, "bench_scan: cannot allocate %zu rows\n", rows);
        return 1;
    }
    float *x = cols, *y = x + rows + GAP, *z = y + rows + GAP, *in = z + rows + GAP;
    uint64_t rng = 42;
    for (size_t i = 0; i < 4 * rows + 3 * GAP; i++)
        cols[i] = bench_rngf(&rng); /* x, y, z, intensity uniform in [0, 1) */
    memset(sel, 0, rows * sizeof(uint32_t));

    /* Cubes and a ball inside the unit cube: a box of edge 0.1^(1/3) holds ~10%. */
    const float e10 = cbrtf(0.1f), e20 = cbrtf(0.2f), r10 = cbrtf(0.3f / (4 * (float)M_PI));
    const struct bench_case cases[] = {
        {"(a) sum(intensity), no filter", {.kind = LM_REGION_ALL}, false, false},
        {"(b) box ~10%", {.kind = LM_REGION_BOX, .min = {0.2f, 0.2f, 0.2f},
                          .max = {0.2f + e10, 0.2f + e10, 0.2f + e10}}, false, false},
        {"(c) box ~20% + intensity > 0.5", {.kind = LM_REGION_BOX, .min = {0.1f, 0.1f, 0.1f},
                          .max = {0.1f + e20, 0.1f + e20, 0.1f + e20}}, true, false},
        {"(d) sphere ~10%", {.kind = LM_REGION_SPHERE, .center = {0.5f, 0.5f, 0.5f},
                             .radius = r10}, false, false},
        {"(b) box ~10%, select", {.kind = LM_REGION_BOX, .min = {0.2f, 0.2f, 0.2f},
                          .max = {0.2f + e10, 0.2f + e10, 0.2f + e10}}, false, true},
        {"(d) sphere ~10%, select", {.kind = LM_REGION_SPHERE, .center = {0.5f, 0.5f, 0.5f},
                             .radius = r10}, false, true},
    };
    const struct lm_scan_table *impls[2] = {lm_scan_scalar(), lm_scan_avx2()};
    struct lm_scan_pred bright = {.col = in, .type = LM_SCAN_F32, .op = LM_CMP_GT, .a = 0.5};
    char title[128];
    snprintf(title, sizeof title, "Scan throughput, %zuM rows, one thread (best of %d)",
             rows >> 20, reps);
    bench_table_header(title, (const char *const[]){"scan", "impl", "rows matched",
                       "result", "ms", "GB/s", "memsum GB/s", "ratio", NULL});

    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const struct bench_case *bc = &cases[c];
        struct lm_scan_plan plan;
        bool filtered = bc->region.kind != LM_REGION_ALL;
        size_t bytes = (filtered ? 4 : 1) * rows * sizeof(float);
        if (lm_scan_plan_init(&plan, rows, x, y, z, &bc->region, &bright,
                              bc->intensity_pred ? 1 : 0)) {
            fprintf(stderr, "bench_scan: bad plan for %s\n", bc->name);
            return 1;
        }
        /* Memory-sum of as many bytes (the intensity column, or the four columns'
         * span less the gaps) and the scans take turns, so that drift in a shared machine's
         * bandwidth touches them alike; each keeps its best of `reps`. */
        double mem = 0, best[2] = {INFINITY, INFINITY};
        struct lm_scan_agg res[2];
        for (int r = 0; r < reps; r++) {
            double g = bench_memsum_gbps(filtered ? cols : in, bytes, 1);
            mem = g > mem ? g : mem;
            for (int i = 0; i < 2; i++) {
                double dt = impls[i] ? time_scan(impls[i], &plan, in,
                                                 bc->select ? sel : NULL, &res[i]) : 0;
                best[i] = dt < best[i] ? dt : best[i];
            }
        }
        struct lm_scan_agg first = {0};
        for (int i = 0; i < 2; i++) {
            if (!impls[i])
                continue;
            struct lm_scan_agg a = res[i];
            double dt = best[i];
            double gbps = (double)bytes / dt / 1e9;
            char matched[32], result[48], ms[32], g[32], m[32], ratio[32];
            snprintf(matched, sizeof matched, "%.1f%%", 100.0 * (double)a.count / (double)rows);
            if (bc->select)
                snprintf(result, sizeof result, "%" PRIu64 " indices", a.count);
            else
                snprintf(result, sizeof result, "sum %.6g", a.sum);
            snprintf(ms, sizeof ms, "%.1f", dt * 1e3);
            snprintf(g, sizeof g, "%.2f", gbps);
            snprintf(m, sizeof m, "%.2f", mem);
            snprintf(ratio, sizeof ratio, "%.0f%%", 100.0 * gbps / mem);
            bench_table_row((const char *const[]){bc->name, impls[i]->name, matched, result,
                            ms, g, m, ratio, NULL});
            if (i == 0)
                first = a;
            else if (memcmp(&a, &first, sizeof a))
                fprintf(stderr, "bench_scan: %s: implementations disagree\n", bc->name);
        }
    }
    if (!impls[1])
        printf("\nThis CPU lacks AVX2: scalar only.\n");
    lm_free(sel);
    lm_free(cols);
    return 0;
}
