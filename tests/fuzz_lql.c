/* fuzz_lql.c - fuzz target for the LQL lexer and parser.
 *
 * Any bytes, read as a script: every statement is parsed, printed canonically, parsed
 * again and printed again (the two printings must agree), its parameters are checked
 * and bound, and every error is rendered. The same input is then parsed again with one
 * allocation failing (which one follows from the input's bytes), which must leak
 * nothing, and once more normally, which must give the first result again. A violated
 * property aborts. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "lql.h"

#define MAX_STATEMENTS 64

static long fail_countdown = -1; /* allocations left before one fails; -1: never */
static long allocations;          /* allocations asked for while the hook is set */

static _Bool failing_alloc(size_t n)
{
    (void)n;
    allocations++;
    if (fail_countdown < 0)
        return 1;
    return fail_countdown-- > 0;
}

#define CHECK(cond)        \
    do {                   \
        if (!(cond))       \
            abort();       \
    } while (0)

static void check_stmt(struct lm_lql_stmt *s)
{
    CHECK(s->kind >= LM_LQL_CREATE_FIELD && s->kind <= LM_LQL_EXPLAIN);
    CHECK(s->pos.line >= 1 && s->pos.column >= 1);
    for (uint32_t i = 0; i < s->n_params; i++)
        CHECK(s->params[i] && s->params[i]->param == i + 1 && !s->params[i]->bound);

    size_t need = lm_lql_format_stmt(s, NULL, 0);
    char *text = malloc(need + 1);
    CHECK(text && lm_lql_format_stmt(s, text, need + 1) == need && strlen(text) == need);
    struct lm_lql_stmt *again = NULL;
    struct lm_error err;
    CHECK(lm_lql_parse(text, need, &again, &err) == 0);
    CHECK(again->kind == s->kind && again->n_params == s->n_params);
    char *text2 = malloc(need + 1);
    CHECK(text2 && lm_lql_format_stmt(again, text2, need + 1) == need);
    CHECK(memcmp(text, text2, need) == 0);
    free(text2);
    free(text);
    lm_lql_free(again);

    if (s->n_params)
        CHECK(lm_lql_check_bound(s, &err) == LM_EBADARG && err.line >= 1);
    for (uint32_t i = 1; i <= s->n_params; i++)
        CHECK(lm_lql_bind_number(s, i, 1.0) == 0);
    CHECK(lm_lql_bind_number(s, s->n_params + 1, 1.0) == LM_EBADARG);
    CHECK(lm_lql_check_bound(s, &err) == 0);
}

/* Parses the whole script; returns a digest of the results (codes and kinds). */
static unsigned long run_script(const char *data, size_t size, const char *cstr, bool check)
{
    struct lm_lql_cursor cur = {0};
    unsigned long digest = 0;
    for (int i = 0; i < MAX_STATEMENTS; i++) {
        struct lm_lql_stmt *s = NULL;
        struct lm_error err;
        size_t before = cur.offset;
        int rc = lm_lql_parse_next(data, size, &cur, &s, &err);
        CHECK(cur.offset <= size);
        if (rc < 0) {
            CHECK(rc == LM_ESYNTAX || rc == LM_ELIMIT || rc == -ENOMEM);
            CHECK(err.code == rc && err.line >= 1 && err.column >= 1);
            CHECK(cur.offset > before || cur.offset == size);
            if (check) {
                char buf[1024];
                size_t n = lm_lql_format_error(cstr, &err, buf, sizeof buf);
                CHECK(n > 0 && strlen(buf) == (n < sizeof buf ? n : sizeof buf - 1));
            }
            digest = digest * 31 + (unsigned long)-rc;
            if (cur.offset == size)
                break;
            continue;
        }
        if (!s)
            break;
        CHECK(cur.offset > before);
        CHECK(s->offset >= before && s->offset + s->length <= cur.offset);
        if (check)
            check_stmt(s);
        digest = digest * 31 + (unsigned long)s->kind;
        lm_lql_free(s);
    }
    return digest;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    char *cstr = malloc(size + 1); /* NUL-terminated copy for the error renderer */
    if (!cstr)
        return 0;
    memcpy(cstr, data, size);
    cstr[size] = '\0';

    unsigned long want = run_script(text, size, cstr, true);
    (void)lm_lql_complete(text, size);

    struct lm_lql_stmt *one = NULL;
    struct lm_error err;
    if (lm_lql_parse(text, size, &one, &err) == 0)
        lm_lql_free(one);

    size_t n_kw;
    const char *const *kw = lm_lql_keywords(&n_kw);
    (void)lm_lql_suggest(cstr, kw, n_kw);

    /* Count the allocations, then fail one of them (results then differ only by
     * -ENOMEM; crashes and leaks are what this looks for). */
    unsigned long h = 5381;
    for (size_t i = 0; i < size; i++)
        h = h * 33 + data[i];
    allocations = 0;
    lm_alloc_set_hook(failing_alloc);
    run_script(text, size, cstr, false);
    if (allocations > 0) {
        fail_countdown = (long)(h % (unsigned long)allocations);
        run_script(text, size, cstr, false);
        fail_countdown = -1;
    }
    lm_alloc_set_hook(NULL);
    CHECK(run_script(text, size, cstr, false) == want);
    free(cstr);
    return 0;
}
