/* bench_util.h - timing and table printing shared by the bench_* programs.
 * Threading: single-threaded helpers. */
#ifndef LM_BENCH_UTIL_H
#define LM_BENCH_UTIL_H
#include <stddef.h>
#include <stdint.h>

double bench_now(void);                       /* monotonic seconds */
uint64_t bench_rng(uint64_t *state);          /* splitmix64 */
float bench_rngf(uint64_t *state);            /* uniform [0,1) */
/* Prints a header line "| a | b | ... |" and its separator; cols NULL-terminated. */
void bench_table_header(const char *title, const char *const *cols);
/* Prints one row of already formatted cells; NULL-terminated. */
void bench_table_row(const char *const *cells);
/* Memory-sum of n bytes (the bandwidth limit of a scan): returns GB/s, best of reps. */
double bench_memsum_gbps(const void *data, size_t n, int reps);
#endif
