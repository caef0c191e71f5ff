/* cpu_features.h - what the CPU running us can do, for choosing kernel variants.
 * Threading: pure. Called by: kernel tables at database open. */
#ifndef LM_CPU_FEATURES_H
#define LM_CPU_FEATURES_H
#include <stdbool.h>
bool lm_cpu_has_avx2(void); /* AVX2 and FMA usable */
#endif
