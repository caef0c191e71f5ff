/* test_kernels.h - shared pieces of the kernel tests: random numbers (a run's seed is
 * fresh each time and printed, or LUMADB_TEST_SEED replays one; each test draws from
 * its own stream of it so that it can be repeated alone), and which implementations
 * join a comparison. Header-only: each test program includes it once. */
#ifndef LM_TEST_KERNELS_H
#define LM_TEST_KERNELS_H

#include <stdbool.h>
#include <string.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static uint64_t test_seed, test_rng_state;

/* splitmix64 */
static inline uint64_t rnd(void)
{
    uint64_t z = (test_rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint32_t below(uint32_t k) { return (uint32_t)(rnd() % k); }

static inline double uniform(double lo, double hi)
{
    return lo + (hi - lo) * (double)(rnd() >> 11) * 0x1p-53;
}

static inline void rng_start(uint64_t stream)
{
    test_rng_state = test_seed ^ (stream * 0xd1342543de82ef95ull);
}

/* Picks the run's seed and prints it with the program's name. */
static inline void rng_init(const char *program)
{
    const char *env = getenv("LUMADB_TEST_SEED");
    test_seed = env ? strtoull(env, NULL, 0)
                    : (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
    printf("%s: seed %" PRIu64 " (set LUMADB_TEST_SEED to repeat)\n", program, test_seed);
    fflush(stdout);
}

/* Gathers the implementations a kernel test compares: scalar, AVX2 (unless this CPU
 * lacks it or LUMADB_TEST_NO_AVX2 is set: tests as on such a CPU) and OpenCL (when there
 * is a device), and prints them. */
#define TEST_IMPLS(program, impls, n_impls, scalar, avx2, opencl)                         \
    do {                                                                                   \
        const char *off_ = getenv("LUMADB_TEST_NO_AVX2");                                  \
        n_impls = 0;                                                                       \
        impls[n_impls++] = scalar();                                                       \
        if (!(off_ && *off_ && strcmp(off_, "0")) && avx2())                               \
            impls[n_impls++] = avx2();                                                     \
        if (opencl())                                                                      \
            impls[n_impls++] = opencl();                                                   \
        for (int i_ = 0; i_ < n_impls; i_++)                                               \
            printf("%s: comparing %s\n", program, impls[i_]->name);                        \
        fflush(stdout);                                                                    \
    } while (0)

#endif
