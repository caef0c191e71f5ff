/* demo_scene.c - procedural lit terrain used by `lumadb demo` and the benchmarks. */
#include "demo_scene.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define EXTENT 256.0f

static uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float unit(uint64_t *s)
{
    *s += 0x9e3779b97f4a7c15ull;
    return (float)(mix(*s) >> 40) * (1.0f / 16777216.0f);
}

float lm_demo_height(float x, float y)
{
    /* a few octaves of smooth waves: hills with a ridge and a valley */
    float h = 18.0f * sinf(x * 0.021f) * cosf(y * 0.017f) + 9.0f * sinf(x * 0.053f + y * 0.031f) +
              4.0f * cosf(x * 0.11f - y * 0.093f) + 1.5f * sinf(x * 0.29f) * sinf(y * 0.31f);
    return h;
}

void lm_demo_field_opts(struct lm_field_opts *out)
{
    memset(out, 0, sizeof *out);
    out->voxel_size = 0.5f;
    out->chunk_edge = 32;
    out->n_user_columns = 1;
    strcpy(out->user_columns[0].name, "material");
    out->user_columns[0].type = LM_TYPE_U8;
}

static void normalize(float v[3])
{
    float l = sqrtf(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
    for (int a = 0; a < 3; a++)
        v[a] /= l;
}

void lm_demo_generate(const struct lm_demo_scene *sc, uint64_t first, size_t n, float *x,
                      float *y, float *z, float *dx, float *dy, float *dz, float *r, float *g,
                      float *b, float *intensity, int64_t *t, uint8_t *material)
{
    const float sun[3] = {0.80f, 0.15f, 0.58f}, sky[3] = {-0.55f, -0.35f, 0.76f};
    const float sun_rgb[3] = {1.0f, 0.72f, 0.42f}, sky_rgb[3] = {0.35f, 0.55f, 1.0f};
    float sun_n[3] = {sun[0], sun[1], sun[2]}, sky_n[3] = {sky[0], sky[1], sky[2]};
    normalize(sun_n);
    normalize(sky_n);
    float cell = EXTENT / (float)sc->side;
    for (size_t k = 0; k < n; k++) {
        uint64_t i = first + k, s = mix(sc->seed ^ (i * 0x9e3779b97f4a7c15ull));
        float gx = (float)(i % sc->side), gy = (float)(i / sc->side);
        float px = (gx + unit(&s)) * cell - EXTENT / 2, py = (gy + unit(&s)) * cell - EXTENT / 2;
        float h = lm_demo_height(px, py);
        float e = 0.25f;
        float nrm[3] = {-(lm_demo_height(px + e, py) - lm_demo_height(px - e, py)) / (2 * e),
                        -(lm_demo_height(px, py + e) - lm_demo_height(px, py - e)) / (2 * e),
                        1.0f};
        normalize(nrm);
        /* material by height and slope: water, grass, rock, snow */
        uint8_t mat = h < -14.0f ? 0 : (nrm[2] < 0.8f ? 2 : (h > 16.0f ? 3 : 1));
        static const float albedo[4][3] = {
            {0.10f, 0.25f, 0.45f}, {0.30f, 0.55f, 0.20f}, {0.50f, 0.45f, 0.40f}, {0.92f, 0.93f, 0.95f}};
        /* outgoing direction: a random direction in the upper hemisphere */
        float d[3];
        for (;;) {
            d[0] = unit(&s) * 2 - 1;
            d[1] = unit(&s) * 2 - 1;
            d[2] = unit(&s) * 2 - 1;
            float l2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
            if (l2 > 0.01f && l2 <= 1.0f)
                break;
        }
        normalize(d);
        float dn = d[0] * nrm[0] + d[1] * nrm[1] + d[2] * nrm[2];
        if (dn < 0)
            for (int a = 0; a < 3; a++)
                d[a] -= 2 * dn * nrm[a];
        float rgb[3] = {0, 0, 0}, gloss = mat == 0 ? 60.0f : (mat == 3 ? 20.0f : 6.0f);
        const float *ldir[2] = {sun_n, sky_n}, *lrgb[2] = {sun_rgb, sky_rgb};
        for (int li = 0; li < 2; li++) {
            const float *L = ldir[li];
            float nl = nrm[0] * L[0] + nrm[1] * L[1] + nrm[2] * L[2];
            if (nl <= 0)
                continue;
            float refl[3] = {2 * nl * nrm[0] - L[0], 2 * nl * nrm[1] - L[1], 2 * nl * nrm[2] - L[2]};
            float rd = refl[0] * d[0] + refl[1] * d[1] + refl[2] * d[2];
            float spec = rd > 0 ? powf(rd, gloss) * (mat == 0 ? 2.5f : 0.6f) : 0.0f;
            for (int c = 0; c < 3; c++)
                rgb[c] += lrgb[li][c] * (albedo[mat][c] * nl + spec);
        }
        float peak = fmaxf(rgb[0], fmaxf(rgb[1], rgb[2]));
        float inten = peak > 1e-6f ? peak : 0.0f;
        x[k] = px;
        y[k] = py;
        z[k] = h;
        dx[k] = d[0];
        dy[k] = d[1];
        dz[k] = d[2];
        r[k] = inten > 0 ? rgb[0] / inten : 0.0f;
        g[k] = inten > 0 ? rgb[1] / inten : 0.0f;
        b[k] = inten > 0 ? rgb[2] / inten : 0.0f;
        intensity[k] = inten;
        t[k] = (int64_t)(i % 3600) * 1000000; /* an hour of capture, one second steps */
        material[k] = mat;
    }
}

int lm_demo_load(lm_db *db, const char *field, const struct lm_demo_scene *sc,
                 size_t batch_size, struct lm_error *err)
{
    struct lm_field_opts fo;
    lm_demo_field_opts(&fo);
    int rc = lm_field_create(db, field, &fo, err);
    if (rc)
        return rc;
    size_t total = (size_t)sc->side * sc->side;
    float *cols = malloc(batch_size * 10 * sizeof *cols);
    int64_t *t = malloc(batch_size * sizeof *t);
    uint8_t *mat = malloc(batch_size);
    if (!cols || !t || !mat) {
        free(cols);
        free(t);
        free(mat);
        return LM_EINTERNAL;
    }
    float *c[10];
    for (int k = 0; k < 10; k++)
        c[k] = cols + (size_t)k * batch_size;
    for (size_t first = 0; first < total && !rc; first += batch_size) {
        size_t n = total - first < batch_size ? total - first : batch_size;
        lm_demo_generate(sc, first, n, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8],
                         c[9], t, mat);
        struct lm_batch bt = {.n = n, .x = c[0], .y = c[1], .z = c[2], .dx = c[3], .dy = c[4],
                              .dz = c[5], .r = c[6], .g = c[7], .b = c[8], .intensity = c[9],
                              .t = t, .n_user = 1, .user = {mat}};
        rc = lm_insert(db, field, &bt, NULL, err);
    }
    free(cols);
    free(t);
    free(mat);
    return rc;
}
