/* keymap.c - open-addressing map from tile keys to indices (keymap.h). */
#include "keymap.h"

#include <errno.h>
#include <string.h>

#include "alloc.h"

#define EMPTY UINT32_MAX

static uint32_t slot_of(const struct lm__tkey *k, uint32_t cap)
{
    uint64_t h = (uint64_t)(uint32_t)k->c[0] * 0x9e3779b97f4a7c15ull ^
                 (uint64_t)(uint32_t)k->c[1] * 0xc2b2ae3d27d4eb4full ^
                 (uint64_t)(uint32_t)k->c[2] * 0x165667b19e3779f9ull ^
                 (uint64_t)(uint32_t)k->k * 0x27d4eb2f165667c5ull;
    h ^= h >> 29;
    return (uint32_t)(h & (cap - 1));
}

static int resize(struct lm__keymap *m, uint32_t cap)
{
    struct lm__kslot *s = lm_alloc((size_t)cap * sizeof *s);
    if (!s)
        return -ENOMEM;
    for (uint32_t i = 0; i < cap; i++)
        s[i].value = EMPTY;
    for (uint32_t i = 0; i < m->cap; i++) {
        if (m->slot[i].value == EMPTY)
            continue;
        uint32_t h = slot_of(&m->slot[i].key, cap);
        while (s[h].value != EMPTY)
            h = (h + 1) & (cap - 1);
        s[h] = m->slot[i];
    }
    lm_free(m->slot);
    m->slot = s;
    m->cap = cap;
    return 0;
}

int lm__keymap_reset(struct lm__keymap *m, uint32_t expect)
{
    uint32_t cap = 16;
    while (cap < 2u * expect && cap < (1u << 31))
        cap <<= 1;
    m->n = 0;
    if (m->cap != cap) {
        lm_free(m->slot);
        m->slot = NULL;
        m->cap = 0;
        return resize(m, cap);
    }
    for (uint32_t i = 0; i < m->cap; i++)
        m->slot[i].value = EMPTY;
    return 0;
}

void lm__keymap_free(struct lm__keymap *m)
{
    lm_free(m->slot);
    memset(m, 0, sizeof *m);
}

uint32_t lm__keymap_get(const struct lm__keymap *m, const struct lm__tkey *key)
{
    if (!m->cap)
        return EMPTY;
    for (uint32_t h = slot_of(key, m->cap);; h = (h + 1) & (m->cap - 1)) {
        if (m->slot[h].value == EMPTY)
            return EMPTY;
        if (lm__tkey_eq(&m->slot[h].key, key))
            return m->slot[h].value;
    }
}

int lm__keymap_put(struct lm__keymap *m, const struct lm__tkey *key, uint32_t value)
{
    if (2 * ((uint64_t)m->n + 1) > m->cap) {
        int rc = resize(m, m->cap ? m->cap * 2 : 16);
        if (rc)
            return rc;
    }
    uint32_t h = slot_of(key, m->cap);
    while (m->slot[h].value != EMPTY && !lm__tkey_eq(&m->slot[h].key, key))
        h = (h + 1) & (m->cap - 1);
    if (m->slot[h].value == EMPTY)
        m->n++;
    m->slot[h].key = *key;
    m->slot[h].value = value;
    return 0;
}

void lm__keymap_del(struct lm__keymap *m, const struct lm__tkey *key)
{
    if (!m->cap)
        return;
    uint32_t mask = m->cap - 1, i = slot_of(key, m->cap);
    while (m->slot[i].value != EMPTY && !lm__tkey_eq(&m->slot[i].key, key))
        i = (i + 1) & mask;
    if (m->slot[i].value == EMPTY)
        return;
    for (uint32_t j = (i + 1) & mask; m->slot[j].value != EMPTY; j = (j + 1) & mask) {
        uint32_t home = slot_of(&m->slot[j].key, m->cap);
        /* move j into the hole at i unless its home lies cyclically in (i, j] */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            m->slot[i] = m->slot[j];
            i = j;
        }
    }
    m->slot[i].value = EMPTY;
    m->n--;
}
