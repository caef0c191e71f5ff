/* bench_util.c - timing, random numbers, markdown tables, memory-sum baseline. */
#include "bench_util.h"

#include <stdio.h>
#include <time.h>

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

uint64_t bench_rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

float bench_rngf(uint64_t *s) { return (float)(bench_rng(s) >> 40) * (1.0f / 16777216.0f); }

void bench_table_header(const char *title, const char *const *cols)
{
    printf("\n### %s\n\n|", title);
    for (const char *const *c = cols; *c; c++)
        printf(" %s |", *c);
    printf("\n|");
    for (const char *const *c = cols; *c; c++)
        printf("---|");
    printf("\n");
}

void bench_table_row(const char *const *cells)
{
    printf("|");
    for (const char *const *c = cells; *c; c++)
        printf(" %s |", *c);
    printf("\n");
    fflush(stdout);
}

double bench_memsum_gbps(const void *data, size_t n, int reps)
{
    /* Four independent 64-bit accumulators so the sum is bound by memory, not by the
     * add latency chain; the compiler vectorises this at -O3. */
    const uint64_t *p = data;
    size_t words = n / 8;
    double best = 0;
    volatile uint64_t sink = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = bench_now();
        uint64_t a = 0, b = 0, c = 0, d = 0;
        size_t i = 0;
        for (; i + 4 <= words; i += 4) {
            a += p[i];
            b += p[i + 1];
            c += p[i + 2];
            d += p[i + 3];
        }
        for (; i < words; i++)
            a += p[i];
        sink += a + b + c + d;
        double dt = bench_now() - t0;
        double gbps = (double)n / dt / 1e9;
        if (gbps > best)
            best = gbps;
    }
    (void)sink;
    return best;
}
