/* alloc.h - the one allocator every LumaDB module goes through.
 * Owns: the process-wide allocation hook (tests install one to inject out-of-memory).
 * Invariants: (1) lm_alloc(0) returns a unique non-NULL pointer or NULL on failure.
 *   (2) lm_free(NULL) is a no-op.
 * Threading: the hook is read atomically; install it before starting threads. */
#ifndef LM_ALLOC_H
#define LM_ALLOC_H

#include <stddef.h>

void *lm_alloc(size_t n);             /* uninitialised; NULL on failure */
void *lm_calloc(size_t count, size_t size); /* zeroed; NULL on failure or overflow */
void *lm_realloc(void *p, size_t n);  /* NULL on failure, p untouched */
void  lm_free(void *p);
char *lm_strdup(const char *s);

/* Test hook: when set, called before every allocation; returning false makes that
 * allocation fail. NULL restores normal behaviour. */
typedef _Bool (*lm_alloc_hook)(size_t n);
void lm_alloc_set_hook(lm_alloc_hook hook);

#endif
