/* format.h - result tables of the executor as text: aligned tables, CSV, JSON.
 *
 * Owns: nothing; writes to the caller's streams.
 * Invariants: (1) numbers are written so that they read back to the same value: f32
 *   values as the shortest decimal that reads back to the same float, f64 values as
 *   the shortest that reads back to the same double (tables: at most 10 significant
 *   digits), integers in full. (2) CSV follows RFC 4180 (quotes only where needed),
 *   JSON is one array of row objects per table.
 * Threading: pure apart from the streams. Called by: lumadb shell, query, demo; tests.
 */
#ifndef LM_FORMAT_H
#define LM_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "exec.h"

enum lm_fmt_mode { LM_FMT_TABLE = 0, LM_FMT_CSV, LM_FMT_JSON };

/* "table", "csv" or "json" (any case): 0 and *out set, else -1. */
int lm_fmt_mode_parse(const char *s, enum lm_fmt_mode *out);
const char *lm_fmt_mode_name(enum lm_fmt_mode mode);

/* One value as text into buf (NUL-terminated, truncated to cap); returns the length.
 * NULL is written as `null_text`. `table` caps f64 values at 10 significant digits. */
size_t lm_fmt_value(char *buf, size_t cap, const struct lm_exec_value *v, bool table,
                    const char *null_text);

/* Writes a result and the tables chained after it. Tables go to out; the message goes
 * to out in table mode and, in CSV and JSON modes, to msg when there is a table (a
 * result with only a message is {"message": ..., "affected": n} in JSON). msg may be
 * NULL to drop such messages. Table mode ends each table with "(N rows)". */
void lm_fmt_result(FILE *out, FILE *msg, const struct lm_exec_result *res,
                   enum lm_fmt_mode mode);

#endif
