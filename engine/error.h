/* error.h - filling struct lm_error for people, and the error table.
 * Owns: nothing. Threading: pure functions.
 * Called by: every module that reports errors. */
#ifndef LM_ERROR_H
#define LM_ERROR_H

#include "lumadb.h"

/* Sets err (if not NULL) to code and a printf-formatted message; returns code so a
 * caller can write `return lm__fail(err, LM_EBADARG, "...")`. */
int lm__fail(struct lm_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Same, with a 1-based line/column position (query text) or byte offset (files). */
int lm__fail_at(struct lm_error *err, int code, uint32_t line, uint32_t column,
                int64_t offset, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Clears err to "no error". */
void lm__error_clear(struct lm_error *err);

#endif
