/* cpu_features.c - runtime CPU feature detection for kernel dispatch. */
#include "cpu_features.h"

bool lm_cpu_has_avx2(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return false;
#endif
}
