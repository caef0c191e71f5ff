/* test_rng.h - random numbers for randomized tests: a run's seed is fresh each time
 * (printed), or LUMADB_TEST_SEED to replay one; each test draws from its own stream of
 * it so that it can be repeated alone. Header-only: each test program includes it once. */
#ifndef LM_TEST_RNG_H
#define LM_TEST_RNG_H

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

#endif
