/* alloc.c - malloc wrappers with an out-of-memory injection hook. */
#include "alloc.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static _Atomic(lm_alloc_hook) alloc_hook;

void lm_alloc_set_hook(lm_alloc_hook hook) { atomic_store(&alloc_hook, hook); }

static int allowed(size_t n)
{
    lm_alloc_hook h = atomic_load_explicit(&alloc_hook, memory_order_relaxed);
    return !h || h(n);
}

void *lm_alloc(size_t n)
{
    if (!allowed(n))
        return NULL;
    return malloc(n ? n : 1);
}

void *lm_calloc(size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size)
        return NULL;
    if (!allowed(count * size))
        return NULL;
    return calloc(count ? count : 1, size ? size : 1);
}

void *lm_realloc(void *p, size_t n)
{
    if (!allowed(n))
        return NULL;
    return realloc(p, n ? n : 1);
}

void lm_free(void *p) { free(p); }

char *lm_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = lm_alloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}
