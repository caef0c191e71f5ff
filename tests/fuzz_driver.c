/* fuzz_driver.c - runs a fuzz target over files, so that ctest can replay a seed corpus
 * without libFuzzer (gcc builds).
 *
 * Usage: fuzz_<name>_corpus PATH...   where each PATH is a file or a directory whose
 * files (not recursive, names starting with '.' skipped) are run in name order.
 * Each input is handed to LLVMFuzzerTestOneInput in a buffer of exactly its size, so
 * AddressSanitizer catches reads past the end; inputs of at most PREFIX_MAX bytes are
 * also run truncated at every length, which exercises every "unexpected end" path.
 * Exit status: 0 when every input ran, 1 when a path cannot be read or holds no input. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PREFIX_MAX 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_bytes(const unsigned char *data, size_t size)
{
    /* A fresh allocation of exactly `size` bytes for every run. */
    unsigned char *copy = malloc(size ? size : 1);
    if (!copy)
        return -1;
    memcpy(copy, data, size);
    LLVMFuzzerTestOneInput(copy, size);
    free(copy);
    return 0;
}

static int run_file(const char *path, size_t *count)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fuzz driver: cannot open %s\n", path);
        return -1;
    }
    size_t cap = 4096, n = 0;
    unsigned char *data = malloc(cap);
    for (size_t got; data && (got = fread(data + n, 1, cap - n, f)) > 0;) {
        n += got;
        if (n == cap) {
            unsigned char *bigger = realloc(data, cap *= 2);
            if (!bigger)
                free(data);
            data = bigger;
        }
    }
    int bad = ferror(f) || !data;
    fclose(f);
    if (bad) {
        free(data);
        fprintf(stderr, "fuzz driver: cannot read %s\n", path);
        return -1;
    }
    int rc = run_bytes(data, n);
    for (size_t len = 0; rc == 0 && n <= PREFIX_MAX && len < n; len++)
        rc = run_bytes(data, len);
    free(data);
    (*count)++;
    return rc;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_dir(const char *dir, size_t *count)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "fuzz driver: cannot open directory %s\n", dir);
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            char **more = realloc(names, (cap = cap ? cap * 2 : 64) * sizeof *names);
            if (!more) {
                rc = -1;
                break;
            }
            names = more;
        }
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        if (!(names[n] = malloc(len))) {
            rc = -1;
            break;
        }
        snprintf(names[n++], len, "%s/%s", dir, e->d_name);
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (rc == 0 && stat(names[i], &st) == 0 && S_ISREG(st.st_mode))
            rc = run_file(names[i], count);
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    size_t count = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "fuzz driver: no such path %s\n", argv[i]);
            return 1;
        }
        if ((S_ISDIR(st.st_mode) ? run_dir(argv[i], &count) : run_file(argv[i], &count)) < 0)
            return 1;
    }
    if (count == 0) {
        fprintf(stderr, "fuzz driver: no inputs (usage: %s FILE|DIR...)\n", argv[0]);
        return 1;
    }
    printf("fuzz driver: %zu inputs ran\n", count);
    return 0;
}
