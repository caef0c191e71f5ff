/* io.c - the POSIX storage backend and the helpers built on any lm_io table. */
#include "io.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "error.h"

/* ---------------------------------------------------------------- POSIX backend */

static int posix_open(void *ctx, const char *path, int flags, unsigned mode, int *fd)
{
    (void)ctx;
    int f;
    do
        f = open(path, flags | O_CLOEXEC, (mode_t)mode);
    while (f < 0 && errno == EINTR);
    if (f < 0)
        return -errno;
    *fd = f;
    return 0;
}

static int posix_close(void *ctx, int fd)
{
    (void)ctx;
    /* Linux releases the descriptor even when close reports EINTR: never retry. */
    return close(fd) ? -errno : 0;
}

static int posix_pread(void *ctx, int fd, void *buf, size_t n, uint64_t off, size_t *got)
{
    (void)ctx;
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(fd, (char *)buf + done, n - done, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            break;
        done += (size_t)r;
    }
    *got = done;
    return 0;
}

static int posix_pwrite(void *ctx, int fd, const void *buf, size_t n, uint64_t off)
{
    (void)ctx;
    size_t done = 0;
    while (done < n) {
        ssize_t r = pwrite(fd, (const char *)buf + done, n - done, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            return -EIO;
        done += (size_t)r;
    }
    return 0;
}

static int posix_fsync(void *ctx, int fd)
{
    (void)ctx;
    /* No retry on EINTR: fsync is not interrupted by signals on Linux, and a failed
     * fsync must never be retried as if the data were still dirty. */
    return fsync(fd) ? -errno : 0;
}

static int posix_fdatasync(void *ctx, int fd)
{
    (void)ctx;
    return fdatasync(fd) ? -errno : 0;
}

static int posix_ftruncate(void *ctx, int fd, uint64_t size)
{
    (void)ctx;
    int r;
    do
        r = ftruncate(fd, (off_t)size);
    while (r < 0 && errno == EINTR);
    return r ? -errno : 0;
}

static int posix_size(void *ctx, int fd, uint64_t *size)
{
    (void)ctx;
    struct stat st;
    if (fstat(fd, &st))
        return -errno;
    *size = (uint64_t)st.st_size;
    return 0;
}

static int posix_rename(void *ctx, const char *from, const char *to)
{
    (void)ctx;
    return rename(from, to) ? -errno : 0;
}

static int posix_unlink(void *ctx, const char *path)
{
    (void)ctx;
    return unlink(path) ? -errno : 0;
}

static int posix_mkdir(void *ctx, const char *path, unsigned mode)
{
    (void)ctx;
    return mkdir(path, (mode_t)mode) ? -errno : 0;
}

static int posix_sync_dir(void *ctx, const char *path)
{
    (void)ctx;
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) ? -errno : 0;
    close(fd);
    return rc;
}

static int posix_list_dir(void *ctx, const char *path, lm_io_entry_fn fn, void *arg)
{
    (void)ctx;
    DIR *d = opendir(path);
    if (!d)
        return -errno;
    int rc = 0;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e) {
            rc = errno ? -errno : 0;
            break;
        }
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        rc = fn(arg, e->d_name);
        if (rc)
            break;
    }
    closedir(d);
    return rc;
}

static const struct lm_io posix_io = {
    .ctx = NULL,
    .open = posix_open,
    .close = posix_close,
    .pread = posix_pread,
    .pwrite = posix_pwrite,
    .fsync = posix_fsync,
    .fdatasync = posix_fdatasync,
    .ftruncate = posix_ftruncate,
    .size = posix_size,
    .rename = posix_rename,
    .unlink = posix_unlink,
    .mkdir = posix_mkdir,
    .sync_dir = posix_sync_dir,
    .list_dir = posix_list_dir,
};

const struct lm_io *lm_io_posix(void) { return &posix_io; }

/* ---------------------------------------------------------------- helpers */

int lm_io_parent(const char *path, char *out, size_t cap)
{
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/') /* "a/b/" names b, like "a/b" */
        len--;
    size_t base = len;
    while (base > 0 && path[base - 1] != '/')
        base--;
    const char *dir = path;
    size_t n = base;
    while (n > 1 && path[n - 1] == '/')
        n--;
    if (base == 0) {
        dir = ".";
        n = 1;
    }
    if (n + 1 > cap)
        return -ENAMETOOLONG;
    memcpy(out, dir, n);
    out[n] = '\0';
    return 0;
}

int lm_io_write_file_atomic(const struct lm_io *io, const char *path, const void *data,
                            size_t n, struct lm_error *err)
{
    char tmp[4096], dir[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp ||
        lm_io_parent(path, dir, sizeof dir))
        return lm__fail(err, -ENAMETOOLONG, "%s: path too long", path);
    int fd = -1;
    int rc = io->open(io->ctx, tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644, &fd);
    if (rc)
        return lm__fail(err, rc, "%s: cannot create: %s", tmp, lm_strerror(rc));
    const char *step = "write";
    rc = io->pwrite(io->ctx, fd, data, n, 0);
    if (!rc) {
        step = "fsync";
        rc = io->fsync(io->ctx, fd);
    }
    int crc = io->close(io->ctx, fd);
    if (!rc && crc) {
        step = "close";
        rc = crc;
    }
    if (!rc) {
        step = "rename";
        rc = io->rename(io->ctx, tmp, path);
    }
    if (rc) {
        io->unlink(io->ctx, tmp);
        return lm__fail(err, rc, "%s: %s failed: %s", tmp, step, lm_strerror(rc));
    }
    rc = io->sync_dir(io->ctx, dir);
    if (rc)
        return lm__fail(err, rc, "%s: fsync of directory failed: %s", dir, lm_strerror(rc));
    return 0;
}

int lm_io_read_file(const struct lm_io *io, const char *path, void **data, size_t *n,
                    struct lm_error *err)
{
    int fd = -1;
    int rc = io->open(io->ctx, path, O_RDONLY, 0, &fd);
    if (rc)
        return lm__fail(err, rc, "%s: cannot open: %s", path, lm_strerror(rc));
    uint64_t size = 0;
    char *buf = NULL;
    size_t got = 0;
    rc = io->size(io->ctx, fd, &size);
    if (!rc && size >= SIZE_MAX)
        rc = -EFBIG;
    if (!rc && !(buf = lm_alloc((size_t)size + 1)))
        rc = -ENOMEM;
    if (!rc)
        rc = io->pread(io->ctx, fd, buf, (size_t)size, 0, &got);
    io->close(io->ctx, fd);
    if (rc) {
        lm_free(buf);
        return lm__fail(err, rc, "%s: cannot read: %s", path, lm_strerror(rc));
    }
    buf[got] = '\0';
    *data = buf;
    *n = got;
    return 0;
}

int lm_io_mkdir_durable(const struct lm_io *io, const char *path, bool *created,
                        struct lm_error *err)
{
    int rc = io->mkdir(io->ctx, path, 0755);
    bool made = rc == 0;
    if (rc && rc != -EEXIST)
        return lm__fail(err, rc, "%s: cannot create directory: %s", path, lm_strerror(rc));
    /* Synced even when it existed: whoever made it may have died before doing so. */
    char parent[4096];
    rc = lm_io_parent(path, parent, sizeof parent);
    if (!rc)
        rc = io->sync_dir(io->ctx, parent);
    if (rc)
        return lm__fail(err, rc, "%s: fsync of parent directory failed: %s", path,
                        lm_strerror(rc));
    if (created)
        *created = made;
    return 0;
}
