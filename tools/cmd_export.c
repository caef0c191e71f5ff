/* cmd_export.c - `lumadb export [DIR] FIELD FILE [--where "..."]`: the samples of a field
 * (all, or those of an LQL WHERE) as binary little-endian PLY or CSV, chosen by the
 * extension. Rows stream from the executor (lm_exec_each); nothing is held whole. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "exec.h"
#include "lql.h"

static int usage(FILE *to)
{
    fprintf(to,
            "usage: lumadb export [DIR] FIELD FILE [--where \"LQL condition\"]\n"
            "                     [--format ply|csv]\n"
            "\n"
            "Writes the samples of FIELD in the database in DIR (default " LM_CLI_DEFAULT_DIR
            ")\n"
            "to FILE: PLY (binary little-endian: x y z, nx ny nz, red green blue as uchar,\n"
            "intensity, t as double, user columns) or CSV (a header, then one sample per\n"
            "line; user columns of type i32 or u8 are named 'name:i32' / 'name:u8'), by\n"
            "--format or the extension. 'lumadb import' reads both back.\n"
            "\n"
            "example: lumadb export terrain near.ply --where \"WITHIN 10 OF (0, 0, 0)\"\n");
    return to == stderr ? 2 : 0;
}

struct out {
    FILE *f;
    bool ply;
    const struct lm_field_info *fi;
    uint64_t rows;
    int rc;                 /* errno of a failed write */
};

static const char *type_name(enum lm_type t)
{
    return t == LM_TYPE_I32 ? "i32" : t == LM_TYPE_U8 ? "u8" : "f32";
}

static void ply_header(FILE *f, const struct lm_field_info *fi, uint64_t n)
{
    fprintf(f, "ply\nformat binary_little_endian 1.0\ncomment lumadb export of field %s\n"
               "element vertex %llu\n"
               "property float x\nproperty float y\nproperty float z\n"
               "property float nx\nproperty float ny\nproperty float nz\n"
               "property uchar red\nproperty uchar green\nproperty uchar blue\n"
               "property float intensity\nproperty double t\n",
            fi->name, (unsigned long long)n);
    static const char *const ply_types[] = {"", "float", "int", "uchar"};
    for (uint32_t u = 0; u < fi->opts.n_user_columns; u++)
        fprintf(f, "property %s %s\n", ply_types[fi->opts.user_columns[u].type],
                fi->opts.user_columns[u].name);
    fprintf(f, "end_header\n");
}

static void csv_header(FILE *f, const struct lm_field_info *fi)
{
    for (int c = 0; c < LM_COL_USER + (int)fi->opts.n_user_columns; c++) {
        fprintf(f, "%s%s", c ? "," : "", lm_column_name(c, &fi->opts));
        if (c >= LM_COL_USER && fi->opts.user_columns[c - LM_COL_USER].type != LM_TYPE_F32)
            fprintf(f, ":%s", type_name(fi->opts.user_columns[c - LM_COL_USER].type));
    }
    fputc('\n', f);
}

/* Little-endian host (x86-64, arm64): values are written as they are in memory. */
static int put_row(const struct lm_exec_value *v, size_t n, void *user)
{
    struct out *o = user;
    if (o->ply) {
        unsigned char rec[11 * 8 + LM_MAX_USER_COLUMNS * 4];
        size_t len = 0;
        for (size_t c = 0; c < n; c++) {
            if (c >= LM_COL_R && c <= LM_COL_B) {
                rec[len++] = (unsigned char)lrint(v[c].d * 255.0);
            } else if (c == LM_COL_T) {
                double t = (double)v[c].i;
                memcpy(rec + len, &t, 8);
                len += 8;
            } else if (c >= LM_COL_USER &&
                       o->fi->opts.user_columns[c - LM_COL_USER].type == LM_TYPE_U8) {
                rec[len++] = (unsigned char)v[c].i;
            } else if (c >= LM_COL_USER &&
                       o->fi->opts.user_columns[c - LM_COL_USER].type == LM_TYPE_I32) {
                int32_t i = (int32_t)v[c].i;
                memcpy(rec + len, &i, 4);
                len += 4;
            } else {
                float x = (float)v[c].d;
                memcpy(rec + len, &x, 4);
                len += 4;
            }
        }
        fwrite(rec, 1, len, o->f);
    } else {
        for (size_t c = 0; c < n; c++) {
            char buf[64];
            lm_fmt_value(buf, sizeof buf, &v[c], false, "");
            if (c)
                fputc(',', o->f);
            fputs(buf, o->f);
        }
        fputc('\n', o->f);
    }
    o->rows++;
    if (ferror(o->f)) {
        o->rc = errno ? errno : EIO;
        return 1;
    }
    return 0;
}

/* "SELECT ... FROM field [WHERE where]" with the field name quoted where needed. */
static char *statement(const char *head, const char *field, const char *where, size_t *prefix)
{
    size_t n = strlen(head) + 2 * strlen(field) + (where ? strlen(where) : 0) + 32;
    char *s = malloc(n), *p = s;
    if (!s)
        return NULL;
    p += sprintf(p, "%s \"", head);
    for (const char *c = field; *c; c++) {
        if (*c == '"')
            *p++ = '"';
        *p++ = *c;
    }
    p += sprintf(p, "\"%s", where ? " WHERE " : "");
    *prefix = (size_t)(p - s);
    if (where)
        strcpy(p, where);
    return s;
}

/* Parses and checks a statement; errors in the WHERE are shown against the option. */
static int prepare(lm_db *db, const char *text, const char *where, size_t prefix,
                   struct lm_lql_stmt **out)
{
    struct lm_error err = {0};
    int rc = lm_lql_parse(text, strlen(text), out, &err);
    if (!rc && (rc = lm_exec_check(db, *out, &err))) {
        lm_lql_free(*out);
        *out = NULL;
    }
    if (!rc)
        return 0;
    if (where && err.line == 1 && err.column > prefix) {
        err.column -= (uint32_t)prefix;
        lm_cli_error(stderr, "lumadb export: --where", where, &err, rc);
    } else {
        lm_cli_error(stderr, "lumadb export", NULL, &err, rc);
    }
    return rc;
}

int lm_cmd_export(int argc, char **argv)
{
    static const char *const opts[] = {"--where", "--format", NULL};
    static const char *const flags[] = {"--help", "-h", NULL};
    const char *pos[3];
    int np, rc = lm_cli_args(argc, argv, "lumadb export", opts, flags, usage, pos, 2, 3, &np);
    if (rc >= 0)
        return rc;
    const char *dir = np == 3 ? pos[0] : LM_CLI_DEFAULT_DIR;
    const char *field = pos[np - 2], *path = pos[np - 1];
    const char *where = lm_cli_option(argc, argv, "--where");
    const char *fmt = lm_cli_option(argc, argv, "--format");
    const char *dot = strrchr(path, '.');
    bool ply;
    if (fmt)
        ply = !strcasecmp(fmt, "ply");
    else
        ply = !(dot && !strcasecmp(dot, ".csv"));
    if ((fmt && !ply && strcasecmp(fmt, "csv")) ||
        (!fmt && !(dot && (!strcasecmp(dot, ".ply") || !strcasecmp(dot, ".csv"))))) {
        fprintf(stderr, "lumadb export: give FILE the extension .ply or .csv, or --format "
                        "ply|csv\n");
        return 2;
    }
    lm_db *db;
    rc = lm_cli_open("lumadb export", dir, false, &db);
    if (rc)
        return rc;
    struct lm_field_info fi;
    struct lm_lql_stmt *sel = NULL, *cnt = NULL;
    size_t prefix = 0, count_prefix = 0;
    char *text = statement("SELECT * FROM", field, where, &prefix);
    char *count = statement("SELECT count(*) FROM", field, where, &count_prefix);
    struct out o = {.ply = ply, .fi = &fi};
    int status = 1;
    if (!text || !count || prepare(db, text, where, prefix, &sel) ||
        (ply && prepare(db, count, where, count_prefix, &cnt)))
        goto done;
    lm_field_info(db, field, &fi, NULL);
    uint64_t n = 0;
    struct lm_error err = {0};
    if (cnt) { /* a PLY header states the count first */
        struct lm_exec_result *r = NULL;
        if ((rc = lm_exec(db, cnt, NULL, &r, &err))) {
            lm_cli_error(stderr, "lumadb export", NULL, &err, rc);
            goto done;
        }
        n = (uint64_t)r->rows[0].i;
        lm_exec_result_free(r);
    }
    if (!(o.f = fopen(path, "wb"))) {
        fprintf(stderr, "lumadb export: cannot create %s: %s\n", path, strerror(errno));
        goto done;
    }
    if (ply)
        ply_header(o.f, &fi, n);
    else
        csv_header(o.f, &fi);
    double t0 = lm_cli_now();
    rc = lm_exec_each(db, sel, NULL, NULL, put_row, &o, &err);
    if (fflush(o.f) && !o.rc)
        o.rc = errno;
    if (o.rc) {
        fprintf(stderr, "lumadb export: writing %s: %s\n", path, strerror(o.rc));
        goto done;
    }
    if (rc) {
        lm_cli_error(stderr, "lumadb export", NULL, &err, rc);
        goto done;
    }
    if (ply && o.rows != n) {
        fprintf(stderr, "lumadb export: the field changed while it was written (%llu samples, "
                        "%llu announced); %s is not valid\n",
                (unsigned long long)o.rows, (unsigned long long)n, path);
        goto done;
    }
    status = 0;
    printf("exported %llu samples of %s to %s (%s) in %.2f s\n", (unsigned long long)o.rows,
           field, path, ply ? "PLY, binary little-endian" : "CSV", lm_cli_now() - t0);
done:
    if (o.f && fclose(o.f) && !status) {
        fprintf(stderr, "lumadb export: closing %s: %s\n", path, strerror(errno));
        status = 1;
    }
    lm_lql_free(sel);
    lm_lql_free(cnt);
    free(text);
    free(count);
    lm_db_close(db);
    return status;
}
