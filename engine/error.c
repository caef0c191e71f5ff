/* error.c - lm_strerror and the lm_error helpers. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *lm_strerror(int code)
{
    switch (code) {
    case 0: return "success";
#define LM__ERROR_CASE(name, value, msg) case name: return msg;
    LM_ERROR_TABLE(LM__ERROR_CASE)
#undef LM__ERROR_CASE
    default: break;
    }
    if (code < 0 && code > -4096)
        return strerror(-code);
    return "unknown error";
}

static int fail_v(struct lm_error *err, int code, uint32_t line, uint32_t column,
                  int64_t offset, const char *fmt, va_list ap)
{
    if (!err)
        return code;
    err->code = code;
    err->line = line;
    err->column = column;
    err->offset = offset;
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    return code;
}

int lm__fail(struct lm_error *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fail_v(err, code, 0, 0, -1, fmt, ap);
    va_end(ap);
    return code;
}

int lm__fail_at(struct lm_error *err, int code, uint32_t line, uint32_t column,
                int64_t offset, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fail_v(err, code, line, column, offset, fmt, ap);
    va_end(ap);
    return code;
}

void lm__error_clear(struct lm_error *err)
{
    if (!err)
        return;
    memset(err, 0, sizeof *err);
    err->offset = -1;
}
