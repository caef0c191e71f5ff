/* crc32c.c - CRC-32C: slicing-by-8 tables and the SSE4.2 instruction, picked at run
 * time. The reflected polynomial is 0x82F63B78; the register is inverted on entry
 * and exit so that values chain (crc32c.h invariant 2). */
#include "crc32c.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <nmmintrin.h>
#define LM_CRC32C_X86 1
#endif

#define POLY 0x82F63B78u

/* ---------------------------------------------------------------- table path */

static uint32_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (POLY & (0u - (c & 1u)));
        table[0][i] = c;
    }
    /* table[k][i]: the CRC of byte i followed by k zero bytes. */
    for (int k = 1; k < 8; k++)
        for (int i = 0; i < 256; i++)
            table[k][i] = (table[k - 1][i] >> 8) ^ table[0][table[k - 1][i] & 0xff];
}

static uint32_t load_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

uint32_t lm_crc32c_sw(uint32_t crc, const void *data, size_t n)
{
    pthread_once(&table_once, table_init);
    const uint8_t *p = data;
    uint32_t c = ~crc;
    for (; n && ((uintptr_t)p & 7); n--)
        c = (c >> 8) ^ table[0][(c ^ *p++) & 0xff];
    for (; n >= 8; n -= 8, p += 8) {
        uint32_t lo = c ^ load_le32(p), hi = load_le32(p + 4);
        c = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^
            table[5][(lo >> 16) & 0xff] ^ table[4][lo >> 24] ^
            table[3][hi & 0xff] ^ table[2][(hi >> 8) & 0xff] ^
            table[1][(hi >> 16) & 0xff] ^ table[0][hi >> 24];
    }
    for (; n; n--)
        c = (c >> 8) ^ table[0][(c ^ *p++) & 0xff];
    return ~c;
}

/* ---------------------------------------------------------------- SSE4.2 path */

#ifdef LM_CRC32C_X86
__attribute__((target("sse4.2")))
static uint32_t crc32c_sse42(uint32_t crc, const void *data, size_t n)
{
    const uint8_t *p = data;
    uint32_t c = ~crc;
    for (; n && ((uintptr_t)p & 7); n--)
        c = _mm_crc32_u8(c, *p++);
#ifdef __x86_64__
    uint64_t c64 = c;
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c64 = _mm_crc32_u64(c64, v);
    }
    c = (uint32_t)c64;
#endif
    for (; n >= 4; n -= 4, p += 4) {
        uint32_t v;
        memcpy(&v, p, 4);
        c = _mm_crc32_u32(c, v);
    }
    for (; n; n--)
        c = _mm_crc32_u8(c, *p++);
    return ~c;
}
#endif

bool lm_crc32c_hw_available(void)
{
#ifdef LM_CRC32C_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2");
#else
    return false;
#endif
}

uint32_t lm_crc32c_hw(uint32_t crc, const void *data, size_t n)
{
#ifdef LM_CRC32C_X86
    if (lm_crc32c_hw_available())
        return crc32c_sse42(crc, data, n);
#endif
    return lm_crc32c_sw(crc, data, n);
}

/* ---------------------------------------------------------------- dispatch */

typedef uint32_t (*crc_fn)(uint32_t, const void *, size_t);
static _Atomic(crc_fn) chosen;

uint32_t lm_crc32c(uint32_t crc, const void *data, size_t n)
{
    crc_fn f = atomic_load_explicit(&chosen, memory_order_relaxed);
    if (!f) {
        f = lm_crc32c_sw;
#ifdef LM_CRC32C_X86
        if (lm_crc32c_hw_available())
            f = crc32c_sse42;
#endif
        atomic_store_explicit(&chosen, f, memory_order_relaxed);
    }
    return f(crc, data, n);
}
