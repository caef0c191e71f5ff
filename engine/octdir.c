/* octdir.c - octahedral encoding of unit directions in 2 x 16 bits (about 0.003 degree
 * worst-case error); the code is inline in octdir.h for batch loops. */
#include "octdir.h"

#include "lumadb.h"

void lm_dir_encode(const float d[3], uint16_t out[2]) { lm__oct_encode(d, out); }

void lm_dir_decode(const uint16_t in[2], float d[3]) { lm__oct_decode(in, d); }
