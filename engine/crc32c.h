/* crc32c.h - CRC-32C (Castagnoli), the checksum of every LumaDB file format.
 *
 * Owns: two implementations behind one function pointer chosen once per process:
 *   an SSE4.2 `crc32` instruction path (x86, when the CPU has it) and a portable
 *   slicing-by-8 table path.
 * Invariants:
 *   (1) Both paths return the same value for the same input (tests/test_crc32c.c
 *       compares them on random data).
 *   (2) Values chain: lm_crc32c(lm_crc32c(0, a, na), b, nb) == lm_crc32c(0, a||b, na+nb).
 *   (3) lm_crc32c(0, "123456789", 9) == 0xE3069283 (the standard check value).
 * Threading: pure functions; the first call picks the path (a benign race: every
 *   thread picks the same one).
 * Called by: wal.c and every module that checksums what it stores.
 */
#ifndef LM_CRC32C_H
#define LM_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* CRC-32C of n bytes at data, continuing from `crc` (0 to start). data may be NULL
 * when n is 0. */
uint32_t lm_crc32c(uint32_t crc, const void *data, size_t n);

/* The table path, always available. Same contract as lm_crc32c. */
uint32_t lm_crc32c_sw(uint32_t crc, const void *data, size_t n);

/* Whether this CPU runs the hardware path. */
bool lm_crc32c_hw_available(void);

/* The hardware path; falls back to the table path where the CPU lacks it. Same
 * contract as lm_crc32c. */
uint32_t lm_crc32c_hw(uint32_t crc, const void *data, size_t n);

#endif
