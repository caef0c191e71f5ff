/* api.c - JSON API handlers (see api.h). */
#include "api.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "db.h"
#include "record.h"

/* ---------------------------------------------------------------- errors */

static const char *code_name(int code)
{
    switch (code) {
#define LM__NAME(name, value, msg) case value: return #name;
        LM_ERROR_TABLE(LM__NAME)
#undef LM__NAME
    case -ENOMEM: return "ENOMEM";
    }
    return "EIO";
}

int lm_api_status(int lm_code)
{
    switch (lm_code) {
    case 0: return 200;
    case LM_ENOFIELD: case LM_ENOTFOUND: return 404;
    case LM_EFIELDEXISTS: return 409;
    case LM_ELIMIT: return 413;
    case LM_EREADONLY: case LM_EFAILED: case LM_ENOTLEADER: case LM_ELOCKED: case LM_ECANCELED:
    case -ETIMEDOUT:
        return 503;
    case LM_EBADARG: case LM_EBADVALUE: case LM_ENOCOLUMN: case LM_ESCHEMA: case LM_ESYNTAX:
        return 400;
    }
    return 500;
}

static void error_body(struct lm_net_buf *out, const char *name, int code, const char *msg,
                       uint32_t line, uint32_t column)
{
    lm_net_buf_clear(out);
    lm_net_buf_printf(out, "{\"error\":{\"code\":\"%s\",\"errno\":%d,\"message\":", name, code);
    lm_net_buf_json_str(out, msg, strlen(msg));
    if (line)
        lm_net_buf_printf(out, ",\"line\":%u,\"column\":%u", line, column);
    lm_net_buf_put(out, "}}", 2);
}

int lm_api_error(struct lm_net_buf *out, int code, const struct lm_error *err)
{
    const char *msg = err && err->message[0] ? err->message : lm_strerror(code);
    error_body(out, code_name(code), code, msg, err ? err->line : 0, err ? err->column : 0);
    return lm_api_status(code);
}

int lm_api_error_msg(struct lm_net_buf *out, int status, const char *name, const char *message)
{
    error_body(out, name, 0, message, 0, 0);
    return status;
}

/* ---------------------------------------------------------------- JSON input */

static void *hook_alloc(size_t n) { return lm_alloc(n); }
static void hook_free(void *p) { lm_free(p); }
static void install_hooks(void)
{
    cJSON_Hooks h = {hook_alloc, hook_free};
    cJSON_InitHooks(&h);
}

/* Parses text; on failure fills err with the 1-based line:column of the error. */
static cJSON *parse(const char *text, size_t len, struct lm_error *err)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, install_hooks);
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (j)
        return j;
    uint32_t line = 1, col = 1;
    size_t at = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
    for (size_t i = 0; i < at; i++) {
        if (text[i] == '\n')
            line++, col = 1;
        else
            col++;
    }
    *err = (struct lm_error){.code = LM_ESYNTAX, .line = line, .column = col, .offset = -1};
    snprintf(err->message, sizeof err->message, "invalid JSON at line %u column %u", line, col);
    return NULL;
}

static int fail(struct lm_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct lm_error *err, int code, const char *fmt, ...)
{
    *err = (struct lm_error){.code = code, .offset = -1};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return code;
}

/* Reads `n` finite numbers from a JSON array into out. */
static int read_vec(const cJSON *a, float *out, int n, const char *what, struct lm_error *err)
{
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n)
        return fail(err, LM_EBADARG, "'%s' must be an array of %d numbers", what, n);
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) {
        if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble))
            return fail(err, LM_EBADARG, "'%s'[%d] must be a finite number", what, i);
        out[i++] = (float)e->valuedouble;
    }
    return 0;
}

static int read_num(const cJSON *o, const char *key, double dflt, double *out,
                    struct lm_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) {
        *out = dflt;
        return 0;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return fail(err, LM_EBADARG, "'%s' must be a finite number", key);
    *out = v->valuedouble;
    return 0;
}

/* ---------------------------------------------------------------- fields */

static const char *type_name(enum lm_type t)
{
    return t == LM_TYPE_I32 ? "i32" : t == LM_TYPE_U8 ? "u8" : "f32";
}

static void vec_json(struct lm_net_buf *out, const float v[3])
{
    lm_net_buf_u8(out, '[');
    for (int a = 0; a < 3; a++) {
        if (a)
            lm_net_buf_u8(out, ',');
        lm_net_buf_json_num(out, v[a]);
    }
    lm_net_buf_u8(out, ']');
}

int lm_api_fields(lm_db *db, struct lm_net_buf *out)
{
    size_t n = 0;
    int rc = lm_field_list(db, NULL, 0, &n);
    if (rc)
        return lm_api_error(out, rc, NULL);
    struct lm_field_info *f = lm_calloc(n ? n : 1, sizeof *f);
    if (!f)
        return lm_api_error(out, -ENOMEM, NULL);
    size_t cap = n;
    if ((rc = lm_field_list(db, f, cap, &n))) {
        lm_free(f);
        return lm_api_error(out, rc, NULL);
    }
    lm_net_buf_clear(out);
    lm_net_buf_put(out, "{\"fields\":[", 11);
    for (size_t i = 0; i < n && i < cap; i++) {
        const struct lm_field_info *x = &f[i];
        lm_net_buf_put(out, i ? ",{\"name\":" : "{\"name\":", i ? 9 : 8);
        lm_net_buf_json_str(out, x->name, strlen(x->name));
        lm_net_buf_put(out, ",\"voxel_size\":", 14);
        lm_net_buf_json_num(out, x->opts.voxel_size);
        lm_net_buf_printf(out,
                          ",\"chunk_edge\":%u,\"samples\":%llu,\"chunks\":%llu,\"voxels\":%llu,"
                          "\"lsn\":%llu,\"memory_bytes\":%llu,\"bounds_min\":",
                          x->opts.chunk_edge, (unsigned long long)x->n_samples,
                          (unsigned long long)x->n_chunks, (unsigned long long)x->n_voxels,
                          (unsigned long long)x->lsn, (unsigned long long)x->memory_bytes);
        vec_json(out, x->bounds_min);
        lm_net_buf_put(out, ",\"bounds_max\":", 14);
        vec_json(out, x->bounds_max);
        lm_net_buf_put(out, ",\"user_columns\":[", 17);
        for (uint32_t u = 0; u < x->opts.n_user_columns; u++) {
            lm_net_buf_put(out, u ? ",{\"name\":" : "{\"name\":", u ? 9 : 8);
            const char *nm = x->opts.user_columns[u].name;
            lm_net_buf_json_str(out, nm, strlen(nm));
            lm_net_buf_printf(out, ",\"type\":\"%s\"}", type_name(x->opts.user_columns[u].type));
        }
        lm_net_buf_put(out, "]}", 2);
    }
    lm_net_buf_put(out, "]}", 2);
    lm_free(f);
    return out->oom ? lm_api_error(out, -ENOMEM, NULL) : 200;
}

int lm_api_field_create(lm_db *db, const char *name, const char *json, size_t len,
                        struct lm_net_buf *out, struct lm_api_record *defer)
{
    struct lm_error err = {0};
    struct lm_field_opts o = {0};
    cJSON *j = parse(json, len, &err);
    if (!j)
        return lm_api_error(out, LM_ESYNTAX, &err);
    int rc = 0;
    double vs = 0, edge = 0;
    if (!cJSON_IsObject(j)) {
        rc = fail(&err, LM_EBADARG, "the body must be a JSON object");
        goto done;
    }
    if ((rc = read_num(j, "voxel_size", 1.0, &vs, &err)) ||
        (rc = read_num(j, "chunk_edge", 32, &edge, &err)))
        goto done;
    o.voxel_size = (float)vs;
    o.chunk_edge = edge >= 0 && edge <= 4096 ? (uint32_t)edge : 1;
    const cJSON *cols = cJSON_GetObjectItemCaseSensitive(j, "user_columns"), *c;
    if (cols && !cJSON_IsArray(cols)) {
        rc = fail(&err, LM_EBADARG, "'user_columns' must be an array");
        goto done;
    }
    cJSON_ArrayForEach(c, cols) {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(c, "name");
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(c, "type");
        if (o.n_user_columns == LM_MAX_USER_COLUMNS || !cJSON_IsString(nm) ||
            strlen(nm->valuestring) > LM_NAME_MAX) {
            rc = fail(&err, LM_EBADARG, "user column %u needs a name of at most %d characters",
                      o.n_user_columns, LM_NAME_MAX);
            goto done;
        }
        struct lm_column_def *d = &o.user_columns[o.n_user_columns++];
        strcpy(d->name, nm->valuestring);
        const char *t = cJSON_IsString(ty) ? ty->valuestring : "f32";
        d->type = !strcmp(t, "i32") ? LM_TYPE_I32 : !strcmp(t, "u8") ? LM_TYPE_U8
                : !strcmp(t, "f32") ? LM_TYPE_F32 : 0;
        if (!d->type) {
            rc = fail(&err, LM_EBADARG, "column '%s': type must be f32, i32 or u8", d->name);
            goto done;
        }
    }
    if (defer) {
        struct lm__record rec = {.type = LM_REC_FIELD_CREATE, .opts = o};
        snprintf(rec.field, sizeof rec.field, "%s", name);
        if (strlen(name) > LM_NAME_MAX)
            rc = fail(&err, LM_EBADARG, "field name longer than %d characters", LM_NAME_MAX);
        else if (!(rc = lm__db_encode(db, &rec, &defer->payload, &defer->n, &err)))
            defer->type = LM_REC_FIELD_CREATE;
    } else {
        rc = lm_field_create(db, name, &o, &err);
    }
done:
    cJSON_Delete(j);
    if (rc)
        return lm_api_error(out, rc, &err);
    if (defer)
        return 0;
    lm_api_created_json(out, name);
    return out->oom ? lm_api_error(out, -ENOMEM, NULL) : 201;
}

void lm_api_created_json(struct lm_net_buf *out, const char *name)
{
    lm_net_buf_clear(out);
    lm_net_buf_put(out, "{\"created\":", 11);
    lm_net_buf_json_str(out, name, strlen(name));
    lm_net_buf_u8(out, '}');
}

/* ---------------------------------------------------------------- inserts */

/* Column arrays of a batch being decoded from JSON. */
struct batch_cols {
    size_t n;
    bool have[LM_COL_USER + LM_MAX_USER_COLUMNS];
    void *col[LM_COL_USER + LM_MAX_USER_COLUMNS];
};

static size_t col_size(int c, const struct lm_field_opts *o)
{
    if (c == LM_COL_T)
        return 8;
    if (c >= LM_COL_USER && o->user_columns[c - LM_COL_USER].type == LM_TYPE_U8)
        return 1;
    return 4;
}

/* Stores JSON number v as row i of column c. */
static int put_value(struct batch_cols *b, int c, size_t i, const cJSON *v,
                     const struct lm_field_opts *o, struct lm_error *err)
{
    const char *name = lm_column_name(c, o);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return fail(err, LM_EBADVALUE, "sample %zu, column '%s': not a finite number", i, name);
    double d = v->valuedouble;
    enum lm_type t = c >= LM_COL_USER ? o->user_columns[c - LM_COL_USER].type : LM_TYPE_F32;
    if (c == LM_COL_T) {
        if (fabs(d) > 9.2e18)
            return fail(err, LM_EBADVALUE, "sample %zu, column 't': out of range", i);
        ((int64_t *)b->col[c])[i] = (int64_t)d;
    } else if (t == LM_TYPE_U8) {
        if (d < 0 || d > 255 || d != floor(d))
            return fail(err, LM_EBADVALUE, "sample %zu, column '%s': %g is not a u8", i, name, d);
        ((uint8_t *)b->col[c])[i] = (uint8_t)d;
    } else if (t == LM_TYPE_I32) {
        if (d < -2147483648.0 || d > 2147483647.0 || d != floor(d))
            return fail(err, LM_EBADVALUE, "sample %zu, column '%s': %g is not an i32", i, name, d);
        ((int32_t *)b->col[c])[i] = (int32_t)d;
    } else {
        ((float *)b->col[c])[i] = (float)d;
    }
    return 0;
}

static int add_column(struct batch_cols *b, const char *key, const struct lm_field_opts *o,
                      struct lm_error *err)
{
    int c = lm_column_find(key, o);
    if (c < 0)
        return fail(err, LM_ENOCOLUMN, "no column '%s' in this field", key);
    if (b->have[c])
        return fail(err, LM_EBADARG, "column '%s' is given twice", key);
    b->have[c] = true;
    b->col[c] = lm_calloc(b->n ? b->n : 1, col_size(c, o));
    return b->col[c] ? c : fail(err, -ENOMEM, "out of memory for column '%s'", key);
}

static int decode_columns(const cJSON *j, struct batch_cols *b, const struct lm_field_opts *o,
                          struct lm_error *err)
{
    const cJSON *first = j->child, *a;
    if (!first || !cJSON_IsArray(first))
        return fail(err, LM_EBADARG, "expected columns {\"x\":[...],...} or rows [{...}]");
    b->n = (size_t)cJSON_GetArraySize(first);
    cJSON_ArrayForEach(a, j) {
        if (!cJSON_IsArray(a) || (size_t)cJSON_GetArraySize(a) != b->n)
            return fail(err, LM_ESCHEMA, "column '%s' must be an array of %zu numbers",
                        a->string, b->n);
        int c = add_column(b, a->string, o, err);
        if (c < 0)
            return c;
        size_t i = 0;
        const cJSON *v;
        int rc;
        cJSON_ArrayForEach(v, a) if ((rc = put_value(b, c, i++, v, o, err))) return rc;
    }
    return 0;
}

static int decode_rows(const cJSON *rows, struct batch_cols *b, const struct lm_field_opts *o,
                       struct lm_error *err)
{
    b->n = (size_t)cJSON_GetArraySize(rows);
    const cJSON *row0 = rows->child, *k;
    if (!b->n)
        return fail(err, LM_EBADARG, "no rows");
    if (!cJSON_IsObject(row0))
        return fail(err, LM_EBADARG, "row 0 is not an object");
    int ncols = 0, rc;
    cJSON_ArrayForEach(k, row0) {
        if ((rc = add_column(b, k->string, o, err)) < 0)
            return rc;
        ncols++;
    }
    size_t i = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) {
        if (!cJSON_IsObject(row) || cJSON_GetArraySize(row) != ncols)
            return fail(err, LM_ESCHEMA, "row %zu must have the %d keys of row 0", i, ncols);
        cJSON_ArrayForEach(k, row) {
            int c = lm_column_find(k->string, o);
            if (c < 0 || !b->have[c])
                return fail(err, LM_ESCHEMA, "row %zu: key '%s' is not in row 0", i, k->string);
            if ((rc = put_value(b, c, i, k, o, err)))
                return rc;
        }
        i++;
    }
    return 0;
}

static int check_group(const struct batch_cols *b, int c0, const char *what,
                       struct lm_error *err)
{
    int n = b->have[c0] + b->have[c0 + 1] + b->have[c0 + 2];
    return n == 0 || n == 3 ? 0 : fail(err, LM_ESCHEMA, "give all of %s or none", what);
}

int lm_api_insert(lm_db *db, const char *name, const char *json, size_t len,
                  struct lm_net_buf *out, uint64_t *lsn, size_t *n, struct lm_api_record *defer)
{
    struct lm_error err = {0};
    struct lm_field_info info;
    int rc = lm_field_info(db, name, &info, &err);
    if (rc)
        return lm_api_error(out, rc, &err);
    const struct lm_field_opts *o = &info.opts;
    cJSON *j = parse(json, len, &err);
    if (!j)
        return lm_api_error(out, LM_ESYNTAX, &err);
    struct batch_cols b = {0};
    const cJSON *rows = cJSON_IsArray(j) ? j : cJSON_GetObjectItemCaseSensitive(j, "rows");
    if (cJSON_IsArray(rows))
        rc = decode_rows(rows, &b, o, &err);
    else if (cJSON_IsObject(j))
        rc = decode_columns(j, &b, o, &err);
    else
        rc = fail(&err, LM_EBADARG, "expected columns {\"x\":[...],...} or rows [{...}]");
    if (!rc && !(b.have[LM_COL_X] && b.have[LM_COL_Y] && b.have[LM_COL_Z]))
        rc = fail(&err, LM_ESCHEMA, "x, y and z are required");
    if (!rc && !(rc = check_group(&b, LM_COL_DX, "dx, dy, dz", &err)))
        rc = check_group(&b, LM_COL_R, "r, g, b", &err);
    uint64_t l = 0;
    if (!rc) {
        struct lm_batch batch = {
            .n = b.n, .x = b.col[LM_COL_X], .y = b.col[LM_COL_Y], .z = b.col[LM_COL_Z],
            .dx = b.col[LM_COL_DX], .dy = b.col[LM_COL_DY], .dz = b.col[LM_COL_DZ],
            .r = b.col[LM_COL_R], .g = b.col[LM_COL_G], .b = b.col[LM_COL_B],
            .intensity = b.col[LM_COL_INTENSITY], .t = b.col[LM_COL_T]};
        bool any_user = false;
        for (uint32_t u = 0; u < o->n_user_columns; u++)
            any_user |= b.have[LM_COL_USER + u];
        if (any_user) {
            batch.n_user = o->n_user_columns;
            for (uint32_t u = 0; u < o->n_user_columns; u++)
                batch.user[u] = b.col[LM_COL_USER + u];
        }
        if (defer) {
            struct lm__record rec = {.type = LM_REC_INSERT, .batch = batch};
            snprintf(rec.field, sizeof rec.field, "%s", name);
            if (!(rc = lm__db_encode(db, &rec, &defer->payload, &defer->n, &err))) {
                defer->type = LM_REC_INSERT;
                defer->samples = b.n;
            }
        } else {
            rc = lm_insert(db, name, &batch, &l, &err);
        }
    }
    for (size_t c = 0; c < LM_COL_USER + LM_MAX_USER_COLUMNS; c++)
        lm_free(b.col[c]);
    cJSON_Delete(j);
    if (rc)
        return lm_api_error(out, rc, &err);
    *n = b.n;
    if (defer)
        return 0;
    *lsn = l;
    lm_api_inserted_json(out, b.n, l);
    return 200;
}

void lm_api_inserted_json(struct lm_net_buf *out, size_t n, uint64_t lsn)
{
    lm_net_buf_clear(out);
    lm_net_buf_printf(out, "{\"inserted\":%zu,\"lsn\":%llu}", n, (unsigned long long)lsn);
}

/* ---------------------------------------------------------------- queries */

static void col_json(struct lm_net_buf *out, const char *name, const struct lm_rows *r, int c)
{
    lm_net_buf_u8(out, ',');
    lm_net_buf_json_str(out, name, strlen(name));
    lm_net_buf_put(out, ":[", 2);
    for (size_t i = 0; i < r->n; i++) {
        if (i)
            lm_net_buf_u8(out, ',');
        lm_net_buf_json_num(out, c < 0 ? r->distance[i] : lm_rows_value(r, c, i));
    }
    lm_net_buf_u8(out, ']');
}

void lm_api_rows_json(struct lm_net_buf *out, const struct lm_rows *rows,
                      const struct lm_field_opts *opts)
{
    lm_net_buf_printf(out, "{\"n\":%zu", rows->n);
    for (int c = 0; c < LM_COL_USER + (int)rows->n_user; c++) {
        const char *name = lm_column_name(c, opts);
        if (name)
            col_json(out, name, rows, c);
    }
    if (rows->distance)
        col_json(out, "distance", rows, -1);
    lm_net_buf_u8(out, '}');
}

static int read_region(const cJSON *j, struct lm_region *r, struct lm_error *err)
{
    const cJSON *box = cJSON_GetObjectItemCaseSensitive(j, "box");
    const cJSON *sph = cJSON_GetObjectItemCaseSensitive(j, "sphere");
    const cJSON *cam = cJSON_GetObjectItemCaseSensitive(j, "camera");
    int rc;
    memset(r, 0, sizeof *r);
    if ((box != NULL) + (sph != NULL) + (cam != NULL) > 1)
        return fail(err, LM_EBADARG, "give at most one of box, sphere, camera");
    if (box) {
        r->kind = LM_REGION_BOX;
        if ((rc = read_vec(cJSON_GetObjectItemCaseSensitive(box, "min"), r->min, 3, "box.min", err)) ||
            (rc = read_vec(cJSON_GetObjectItemCaseSensitive(box, "max"), r->max, 3, "box.max", err)))
            return rc;
    } else if (sph) {
        r->kind = LM_REGION_SPHERE;
        double rad = 0;
        if ((rc = read_vec(cJSON_GetObjectItemCaseSensitive(sph, "center"), r->center, 3,
                           "sphere.center", err)) ||
            (rc = read_num(sph, "radius", -1, &rad, err)))
            return rc;
        if (rad < 0)
            return fail(err, LM_EBADARG, "sphere.radius must be >= 0");
        r->radius = (float)rad;
    } else if (cam) {
        float eye[3], tgt[3], up[3] = {0, 0, 1};
        double fov = 0, aspect = 0, nd = 0, fd = 0;
        if ((rc = read_vec(cJSON_GetObjectItemCaseSensitive(cam, "eye"), eye, 3, "camera.eye", err)) ||
            (rc = read_vec(cJSON_GetObjectItemCaseSensitive(cam, "target"), tgt, 3,
                           "camera.target", err)) ||
            (cJSON_GetObjectItemCaseSensitive(cam, "up") &&
             (rc = read_vec(cJSON_GetObjectItemCaseSensitive(cam, "up"), up, 3, "camera.up", err))) ||
            (rc = read_num(cam, "fov", 60, &fov, err)) ||
            (rc = read_num(cam, "aspect", 1, &aspect, err)) ||
            (rc = read_num(cam, "near", 0.1, &nd, err)) || (rc = read_num(cam, "far", 1000, &fd, err)))
            return rc;
        if (lm_frustum_from_camera(eye, tgt, up, (float)fov, (float)aspect, (float)nd, (float)fd, r))
            return fail(err, LM_EBADARG, "the camera does not form a frustum");
    }
    return 0;
}

static int read_filters(const cJSON *j, struct lm_selection *sel, const struct lm_field_opts *o,
                        struct lm_error *err)
{
    static const struct { const char *op; enum lm_cmp cmp; } ops[] = {
        {"<", LM_CMP_LT}, {"<=", LM_CMP_LE}, {">", LM_CMP_GT}, {">=", LM_CMP_GE},
        {"=", LM_CMP_EQ}, {"==", LM_CMP_EQ}, {"!=", LM_CMP_NE}, {"between", LM_CMP_BETWEEN}};
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(j, "where"), *f;
    if (!w)
        return 0;
    if (!cJSON_IsArray(w))
        return fail(err, LM_EBADARG, "'where' must be an array of {column, op, value}");
    cJSON_ArrayForEach(f, w) {
        if (sel->n_filters == LM_MAX_FILTERS)
            return fail(err, LM_ELIMIT, "at most %d filters", LM_MAX_FILTERS);
        const cJSON *col = cJSON_GetObjectItemCaseSensitive(f, "column");
        const cJSON *op = cJSON_GetObjectItemCaseSensitive(f, "op");
        const cJSON *val = cJSON_GetObjectItemCaseSensitive(f, "value");
        struct lm_filter *flt = &sel->filters[sel->n_filters];
        if (!cJSON_IsString(col) || (flt->column = lm_column_find(col->valuestring, o)) < 0)
            return fail(err, LM_ENOCOLUMN, "filter %u: unknown column", sel->n_filters);
        flt->cmp = 0;
        for (size_t k = 0; cJSON_IsString(op) && k < sizeof ops / sizeof ops[0]; k++)
            if (!strcasecmp(op->valuestring, ops[k].op))
                flt->cmp = ops[k].cmp;
        if (!flt->cmp)
            return fail(err, LM_EBADARG, "filter %u: op must be < <= > >= = != or between",
                        sel->n_filters);
        float ab[2];
        if (flt->cmp == LM_CMP_BETWEEN) {
            int rc = read_vec(val, ab, 2, "value", err);
            if (rc)
                return rc;
            flt->a = ab[0], flt->b = ab[1];
        } else if (cJSON_IsNumber(val) && isfinite(val->valuedouble)) {
            flt->a = val->valuedouble;
        } else {
            return fail(err, LM_EBADARG, "filter %u: value must be a number", sel->n_filters);
        }
        sel->n_filters++;
    }
    return 0;
}

static void voxels_json(struct lm_net_buf *out, const struct lm_voxels *v)
{
    lm_net_buf_printf(out, "{\"level\":%u,\"cell_size\":", v->level);
    lm_net_buf_json_num(out, v->cell_size);
    lm_net_buf_printf(out, ",\"n\":%zu,\"voxels\":[", v->n);
    for (size_t i = 0; i < v->n; i++) {
        const struct lm_voxel *x = &v->v[i];
        lm_net_buf_printf(out, "%s{\"coord\":[%d,%d,%d],\"count\":%u,\"mean\":[", i ? "," : "",
                          x->coord[0], x->coord[1], x->coord[2], x->count);
        float m[3] = {x->mean_r, x->mean_g, x->mean_b};
        for (int a = 0; a < 3; a++) {
            if (a)
                lm_net_buf_u8(out, ',');
            lm_net_buf_json_num(out, m[a]);
        }
        lm_net_buf_put(out, "],\"sh\":[", 8);
        for (int k = 0; k < 12; k++) {
            if (k)
                lm_net_buf_u8(out, ',');
            lm_net_buf_json_num(out, x->sh[k / 4][k % 4]);
        }
        lm_net_buf_put(out, "]}", 2);
    }
    lm_net_buf_put(out, "]}", 2);
}

/* Runs a JSON-structured query; appends its result to out. */
static int json_query(lm_db *db, const cJSON *j, struct lm_net_buf *out, struct lm_error *err)
{
    const cJSON *fj = cJSON_GetObjectItemCaseSensitive(j, "field");
    if (!cJSON_IsString(fj))
        return fail(err, LM_EBADARG, "'field' (a string) is required");
    const char *field = fj->valuestring;
    struct lm_field_info info;
    int rc = lm_field_info(db, field, &info, err);
    if (rc)
        return rc;
    struct lm_selection sel = {0};
    double limit = 0;
    if ((rc = read_region(j, &sel.region, err)) || (rc = read_filters(j, &sel, &info.opts, err)) ||
        (rc = read_num(j, "limit", LM_API_DEFAULT_LIMIT, &limit, err)))
        return rc;
    if (limit < 1 || limit > LM_API_MAX_LIMIT)
        return fail(err, LM_ELIMIT, "limit must be in [1, %d]", LM_API_MAX_LIMIT);
    const cJSON *near = cJSON_GetObjectItemCaseSensitive(j, "nearest");
    const cJSON *agg = cJSON_GetObjectItemCaseSensitive(j, "aggregate");
    const cJSON *vox = cJSON_GetObjectItemCaseSensitive(j, "voxels");
    if ((near != NULL) + (agg != NULL) + (vox != NULL) > 1)
        return fail(err, LM_EBADARG, "give at most one of nearest, aggregate, voxels");
    struct lm_rows *rows = NULL;
    if (agg) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(agg, "column");
        int col = cJSON_IsString(c) ? lm_column_find(c->valuestring, &info.opts) : LM_COL_INTENSITY;
        if (col < 0)
            return fail(err, LM_ENOCOLUMN, "aggregate: unknown column");
        struct lm_aggregate a;
        if ((rc = lm_aggregate(db, field, &sel, col, &a, err)))
            return rc;
        lm_net_buf_printf(out, "{\"count\":%llu,\"sum\":", (unsigned long long)a.count);
        lm_net_buf_json_num(out, a.sum);
        lm_net_buf_put(out, ",\"min\":", 7);
        lm_net_buf_json_num(out, a.min);
        lm_net_buf_put(out, ",\"max\":", 7);
        lm_net_buf_json_num(out, a.max);
        lm_net_buf_put(out, ",\"avg\":", 7);
        lm_net_buf_json_num(out, a.avg);
        lm_net_buf_u8(out, '}');
        return 0;
    }
    if (vox) {
        double level = 0;
        if ((rc = read_num(vox, "level", 0, &level, err)))
            return rc;
        if (level < 0 || level > 15)
            return fail(err, LM_EBADARG, "voxels.level must be in [0, 15]");
        struct lm_voxels *v = NULL;
        if ((rc = lm_voxels_query(db, field, &sel.region, (uint32_t)level, &v, err)))
            return rc;
        if (v->n > (size_t)limit) {
            size_t n = v->n;
            lm_voxels_free(v);
            return fail(err, LM_ELIMIT, "%zu voxels exceed the limit %.0f", n, limit);
        }
        voxels_json(out, v);
        lm_voxels_free(v);
        return 0;
    }
    if (near) {
        float p[3];
        double k = 0, maxd = 0;
        if ((rc = read_vec(cJSON_GetObjectItemCaseSensitive(near, "p"), p, 3, "nearest.p", err)) ||
            (rc = read_num(near, "k", 1, &k, err)) || (rc = read_num(near, "max_dist", 0, &maxd, err)))
            return rc;
        if (k < 1 || k > limit)
            return fail(err, LM_EBADARG, "nearest.k must be in [1, limit]");
        rc = lm_nearest(db, field, p, (size_t)k, (float)maxd, &sel, &rows, err);
    } else {
        rc = lm_select(db, field, &sel, (size_t)limit, &rows, err);
    }
    if (rc)
        return rc;
    lm_api_rows_json(out, rows, &info.opts);
    lm_rows_free(rows);
    return 0;
}

int lm_api_query(lm_db *db, const char *text, size_t len, lm_net_query_fn lang, void *lang_user,
                 struct lm_net_buf *out)
{
    struct lm_error err = {0};
    size_t i = 0;
    while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r'))
        i++;
    lm_net_buf_clear(out);
    int rc;
    if (i < len && text[i] == '{') {
        cJSON *j = parse(text, len, &err);
        if (!j)
            return lm_api_error(out, LM_ESYNTAX, &err);
        rc = json_query(db, j, out, &err);
        cJSON_Delete(j);
    } else if (lang) {
        rc = lang(lang_user, db, text, len, out, &err);
    } else {
        return lm_api_error_msg(out, 501, "ENOLANG",
                                "this server has no query language installed; send a JSON "
                                "query object (see docs/PROTOCOL.md)");
    }
    if (rc)
        return lm_api_error(out, rc, &err);
    return out->oom ? lm_api_error(out, -ENOMEM, NULL) : 200;
}
