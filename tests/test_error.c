/* test_error.c - the error table and lm_error helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "error.h"

static void every_code_has_its_own_message(void **state)
{
    (void)state;
#define CHECK(name, value, msg) assert_string_equal(lm_strerror(name), msg);
    LM_ERROR_TABLE(CHECK)
#undef CHECK
    assert_string_equal(lm_strerror(-ENOENT), strerror(ENOENT));
    assert_string_equal(lm_strerror(0), "success");
}

static void fail_fills_error_and_returns_code(void **state)
{
    (void)state;
    struct lm_error e;
    lm__error_clear(&e);
    assert_int_equal(e.offset, -1);
    assert_int_equal(lm__fail(&e, LM_EBADVALUE, "sample %d: x is %s", 7, "nan"),
                     LM_EBADVALUE);
    assert_int_equal(e.code, LM_EBADVALUE);
    assert_string_equal(e.message, "sample 7: x is nan");
    assert_int_equal(lm__fail_at(&e, LM_ESYNTAX, 3, 14, -1, "expected %s", "FROM"),
                     LM_ESYNTAX);
    assert_int_equal(e.line, 3);
    assert_int_equal(e.column, 14);
    assert_int_equal(lm__fail(NULL, LM_ENOFIELD, "x"), LM_ENOFIELD);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_code_has_its_own_message),
        cmocka_unit_test(fail_fills_error_and_returns_code),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
