/* anchors.h - C interface to the comparison libraries, implemented by the C++ shims
 * bench/anchor_*.cpp. Used by benchmarks only; never linked into LumaDB. */
#ifndef LM_ANCHORS_H
#define LM_ANCHORS_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
/* Declarations are added by each anchor shim's author below. */
#ifdef __cplusplus
}
#endif
#endif
