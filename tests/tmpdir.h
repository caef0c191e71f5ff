/* tmpdir.h - temporary directories under /tmp for tests, removed with their contents.
 * Header-only: each test program includes it once. */
#ifndef LM_TEST_TMPDIR_H
#define LM_TEST_TMPDIR_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tmpdir_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Creates /tmp/<tag>-XXXXXX into out[cap]; returns 0 or -1. */
static inline int tmpdir_make(const char *tag, char *out, size_t cap)
{
    if (snprintf(out, cap, "/tmp/%s-XXXXXX", tag) >= (int)cap)
        return -1;
    return mkdtemp(out) ? 0 : -1;
}

/* Removes dir and everything below it. */
static inline void tmpdir_remove(const char *dir)
{
    nftw(dir, tmpdir_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
