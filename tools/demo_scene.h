/* demo_scene.h - the generated demo scene: a lit terrain of coloured light samples.
 * Owns: nothing persistent; fills batches for the caller to insert.
 * Threading: pure. Called by: tools (lumadb demo), bench/. */
#ifndef LM_DEMO_SCENE_H
#define LM_DEMO_SCENE_H

#include <stddef.h>
#include <stdint.h>

#include "lumadb.h"

/* The scene is a 256 x 256 world-unit terrain sampled on a side x side grid, lit by a
 * warm low sun from the east and a cool sky from the west; each sample is a ray leaving
 * the ground, its colour and intensity depending on its direction (glossy reflection),
 * so that radiance differs by viewing direction. */
struct lm_demo_scene {
    uint32_t side; /* samples per grid edge: side^2 samples in all */
    uint64_t seed;
};

/* Field options the scene is meant for (voxel 0.5, chunk 32, user column "material"). */
void lm_demo_field_opts(struct lm_field_opts *out);

/* Generates rows [first, first + n) of the scene into the caller's arrays (n each; user
 * column 0 is u8 material). */
void lm_demo_generate(const struct lm_demo_scene *sc, uint64_t first, size_t n, float *x,
                      float *y, float *z, float *dx, float *dy, float *dz, float *r, float *g,
                      float *b, float *intensity, int64_t *t, uint8_t *material);

/* Creates FIELD in db and inserts the whole scene in batches of batch_size. */
int lm_demo_load(lm_db *db, const char *field, const struct lm_demo_scene *sc,
                 size_t batch_size, struct lm_error *err);

/* Terrain height at (x, y), for camera placement and tests. */
float lm_demo_height(float x, float y);

#endif
