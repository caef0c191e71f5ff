/* test_crc32c.c - CRC-32C check values, chaining, and hardware == table path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdint.h>
#include <string.h>

#include "crc32c.h"

typedef uint32_t (*crc_fn)(uint32_t, const void *, size_t);
static const crc_fn paths[] = {lm_crc32c, lm_crc32c_sw, lm_crc32c_hw};

static uint64_t rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void every_path_gives_the_standard_check_values(void **state)
{
    (void)state;
    uint8_t zeros[32], ones[32], up[32], down[32];
    memset(zeros, 0, sizeof zeros);
    memset(ones, 0xff, sizeof ones);
    for (int i = 0; i < 32; i++) {
        up[i] = (uint8_t)i;
        down[i] = (uint8_t)(31 - i);
    }
    for (size_t k = 0; k < sizeof paths / sizeof paths[0]; k++) {
        crc_fn f = paths[k];
        assert_int_equal(f(0, "123456789", 9), 0xE3069283u);
        assert_int_equal(f(0, NULL, 0), 0);
        /* RFC 3720 (iSCSI) B.4 vectors. */
        assert_int_equal(f(0, zeros, 32), 0x8A9136AAu);
        assert_int_equal(f(0, ones, 32), 0x62A8AB43u);
        assert_int_equal(f(0, up, 32), 0x46DD794Eu);
        assert_int_equal(f(0, down, 32), 0x113FDB5Cu);
    }
}

static void values_chain_across_split_points(void **state)
{
    (void)state;
    uint8_t buf[300];
    uint64_t s = 1;
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)rng(&s);
    for (size_t k = 0; k < sizeof paths / sizeof paths[0]; k++) {
        uint32_t whole = paths[k](0, buf, sizeof buf);
        for (size_t cut = 0; cut <= sizeof buf; cut++)
            assert_int_equal(paths[k](paths[k](0, buf, cut), buf + cut, sizeof buf - cut),
                             whole);
    }
}

static void hardware_path_matches_table_path_on_random_data(void **state)
{
    (void)state;
    if (!lm_crc32c_hw_available())
        skip();
    enum { CAP = 1 << 16 };
    static uint8_t buf[CAP + 8];
    uint64_t s = 42;
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)rng(&s);
    for (int round = 0; round < 2000; round++) {
        size_t off = rng(&s) % 8;
        size_t n = round < 200 ? (size_t)round : rng(&s) % CAP;
        uint32_t seed = (uint32_t)rng(&s);
        assert_int_equal(lm_crc32c_hw(seed, buf + off, n), lm_crc32c_sw(seed, buf + off, n));
    }
    /* A single flipped bit changes the value on both paths. */
    uint32_t before = lm_crc32c_hw(0, buf, 4096);
    buf[1000] ^= 4;
    assert_int_not_equal(lm_crc32c_hw(0, buf, 4096), before);
    assert_int_equal(lm_crc32c_hw(0, buf, 4096), lm_crc32c_sw(0, buf, 4096));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_path_gives_the_standard_check_values),
        cmocka_unit_test(values_chain_across_split_points),
        cmocka_unit_test(hardware_path_matches_table_path_on_random_data),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
