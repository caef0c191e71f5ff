/* test_net_wire.c - lumadb.v1 frames: client frames round-trip and every malformed shape
 * is refused with a reason; chunk frames carry the columns in the documented order and
 * decompress to the original bytes; the pending-chunk set, the rate limiter and the frame
 * cache keep their invariants. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <lz4.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "coordset.h"
#include "framecache.h"
#include "ratelimit.h"
#include "wire.h"

static uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

static void test_hello_round_trips_and_rejects_bad_lengths(void **state)
{
    (void)state;
    struct lm_net_buf b = {0};
    lm_ws_encode_hello(&b, 1, "secret-token");
    struct lm_ws_msg m;
    char why[128];
    assert_int_equal(lm_ws_decode(b.p, b.len, &m, why, sizeof why), 0);
    assert_int_equal(m.type, LM_WS_HELLO);
    assert_int_equal(m.u.hello.version, 1);
    assert_int_equal(m.u.hello.token_len, 12);
    assert_memory_equal(m.u.hello.token, "secret-token", 12);
    assert_int_equal(lm_ws_decode(b.p, b.len - 1, &m, why, sizeof why), LM_WS_EMALFORMED);
    assert_int_equal(lm_ws_decode(b.p, 5, &m, why, sizeof why), LM_WS_EMALFORMED);
    assert_non_null(strstr(why, "header"));
    lm_net_buf_free(&b);
}

static void test_subscribe_round_trips_every_region_kind(void **state)
{
    (void)state;
    const float box[6] = {-1, -2, -3, 4, 5, 6}, sph[4] = {1, 2, 3, 9};
    const float cam[13] = {0, -10, 5, 0, 0, 0, 0, 0, 1, 60, 1.5f, 0.1f, 100};
    const float *params[4] = {NULL, box, sph, cam};
    for (int kind = 0; kind < 4; kind++) {
        struct lm_net_buf b = {0};
        lm_ws_encode_subscribe(&b, 42, "terrain", (enum lm_ws_region)kind, params[kind], 3, 1000,
                               LM_WS_COL_POS);
        struct lm_ws_msg m;
        char why[128];
        assert_int_equal(lm_ws_decode(b.p, b.len, &m, why, sizeof why), 0);
        assert_int_equal(m.id, 42);
        assert_string_equal(m.u.subscribe.field, "terrain");
        assert_int_equal(m.u.subscribe.lod, 3);
        assert_int_equal(m.u.subscribe.budget, 1000);
        assert_int_equal(m.u.subscribe.columns, LM_WS_COL_POS);
        const struct lm_region *r = &m.u.subscribe.region;
        static const enum lm_region_kind want[4] = {LM_REGION_ALL, LM_REGION_BOX, LM_REGION_SPHERE,
                                                    LM_REGION_FRUSTUM};
        assert_int_equal(r->kind, want[kind]);
        if (kind == 1)
            assert_true(r->min[2] == -3 && r->max[0] == 4);
        if (kind == 2)
            assert_true(r->center[1] == 2 && r->radius == 9);
        /* one byte short, one byte long */
        assert_int_equal(lm_ws_decode(b.p, b.len - 1, &m, why, sizeof why), LM_WS_EMALFORMED);
        lm_net_buf_u8(&b, 0);
        assert_int_equal(lm_ws_decode(b.p, b.len, &m, why, sizeof why), LM_WS_EMALFORMED);
        lm_net_buf_free(&b);
    }
}

static void test_subscribe_refuses_bad_fields(void **state)
{
    (void)state;
    struct lm_ws_msg m;
    char why[128];
    struct lm_net_buf b = {0};
    lm_ws_encode_subscribe(&b, 0, "f", LM_WS_REGION_ALL, NULL, 255, 0, 0);
    assert_int_equal(lm_ws_decode(b.p, b.len, &m, why, sizeof why), LM_WS_EMALFORMED); /* id 0 */
    lm_net_buf_clear(&b);
    lm_ws_encode_subscribe(&b, 1, "f", LM_WS_REGION_ALL, NULL, 100, 0, 0);
    assert_int_equal(lm_ws_decode(b.p, b.len, &m, why, sizeof why), LM_WS_EMALFORMED); /* lod */
    lm_net_buf_clear(&b);
    const float inverted[6] = {1, 1, 1, 0, 0, 0};
    lm_ws_encode_subscribe(&b, 1, "f", LM_WS_REGION_BOX, inverted, 255, 0, 0);
    assert_int_equal(lm_ws_decode(b.p, b.len, &m, why, sizeof why), LM_WS_EMALFORMED);
    lm_net_buf_clear(&b);
    const float nan_sphere[4] = {NAN, 0, 0, 1};
    lm_ws_encode_subscribe(&b, 1, "f", LM_WS_REGION_SPHERE, nan_sphere, 255, 0, 0);
    assert_int_equal(lm_ws_decode(b.p, b.len, &m, why, sizeof why), LM_WS_EMALFORMED);
    assert_non_null(strstr(why, "finite"));
    lm_net_buf_clear(&b);
    lm_ws_encode_subscribe(&b, 1, "f", LM_WS_REGION_ALL, NULL, 255, 0, 0);
    b.p[18] = 0; /* the name holds a NUL */
    b.p[10] = 1;
    b.p[20] = 0;
    assert_int_equal(lm_ws_decode(b.p, b.len, &m, why, sizeof why), LM_WS_EMALFORMED);
    lm_net_buf_free(&b);
}

static void test_unknown_types_and_insert_without_name(void **state)
{
    (void)state;
    struct lm_ws_msg m;
    char why[128];
    const uint8_t unknown[8] = {0x7f, 0, 0, 0, 9, 0, 0, 0};
    assert_int_equal(lm_ws_decode(unknown, 8, &m, why, sizeof why), LM_WS_ETYPE);
    assert_int_equal(m.id, 9);
    const uint8_t insert[9] = {LM_WS_INSERT, 0, 0, 0, 1, 0, 0, 0, 5};
    assert_int_equal(lm_ws_decode(insert, 9, &m, why, sizeof why), LM_WS_EMALFORMED);
    const uint8_t unsub[9] = {LM_WS_UNSUBSCRIBE, 0, 0, 0, 1, 0, 0, 0, 5};
    assert_int_equal(lm_ws_decode(unsub, 9, &m, why, sizeof why), LM_WS_EMALFORMED);
    assert_int_equal(lm_ws_decode(unsub, 8, &m, why, sizeof why), 0);
    assert_string_equal(lm_ws_strerror(LM_WS_ETOOLARGE), "frame too large");
}

static void test_chunk_frame_layout_and_compression(void **state)
{
    (void)state;
    enum { N = 500 };
    static float x[N], y[N], z[N], in[N], user0[N];
    static uint16_t dir[2 * N];
    static uint8_t r[N], g[N], bl[N], user1[N];
    static int64_t t[N];
    for (int i = 0; i < N; i++) {
        x[i] = (float)i, y[i] = (float)(i % 7), z[i] = 1.5f, in[i] = 0.25f * (float)i;
        user0[i] = -(float)i;
        dir[2 * i] = (uint16_t)i, dir[2 * i + 1] = 7;
        r[i] = (uint8_t)i, g[i] = 2, bl[i] = 3, user1[i] = (uint8_t)(i * 3);
        t[i] = 1000000LL * i;
    }
    struct lm_chunk_view c = {.coord = {1, -2, 3}, .lsn = 77, .n = N, .x = x, .y = y, .z = z,
                              .dir_oct = dir, .r = r, .g = g, .b = bl, .intensity = in, .t = t,
                              .user = {user0, user1}};
    struct lm_field_opts o = {.voxel_size = 1, .chunk_edge = 32, .n_user_columns = 2};
    o.user_columns[0].type = LM_TYPE_F32;
    o.user_columns[1].type = LM_TYPE_U8;
    uint32_t cols = lm_ws_columns_valid(0xFFFFFFFFu, &o);
    assert_int_equal(cols, 0x31F);
    assert_int_equal(lm_ws_sample_bytes(cols, &o), 8 + 12 + 4 + 4 + 4 + 3 + 1);
    struct lm_net_buf b = {0}, scratch = {0};
    lm_ws_encode_chunk(&b, &scratch, 5, LM_WS_FLAG_DELTA, &c, 100, 300, cols, &o);
    const uint8_t *f = b.p;
    assert_int_equal(f[0], LM_WS_CHUNK);
    assert_int_equal(f[1], LM_WS_FLAG_DELTA);
    assert_int_equal(rd32(f + 4), 5);
    assert_int_equal((int32_t)rd32(f + 12), -2);
    assert_int_equal(rd32(f + 28), N);
    assert_int_equal(rd32(f + 32), 100);
    assert_int_equal(rd32(f + 36), 300);
    assert_int_equal(rd32(f + 40), cols);
    uint32_t raw = rd32(f + 68), comp = rd32(f + 72);
    assert_int_equal(raw, 300 * 36);
    assert_true(comp > 0 && comp < raw);
    assert_int_equal(b.len, LM_WS_CHUNK_HEADER + comp);
    static uint8_t out[300 * 36];
    assert_int_equal(LZ4_decompress_safe((const char *)f + 76, (char *)out, (int)comp, (int)raw), (int)raw);
    /* t, x, y, z, intensity, user0 (4-byte), dir, r, g, b, user1 (1-byte) */
    int64_t t0;
    memcpy(&t0, out, 8);
    assert_true(t0 == t[100]);
    float v;
    memcpy(&v, out + 300 * 8, 4);
    assert_true(v == x[100]);
    memcpy(&v, out + 300 * 8 + 300 * 4 * 3, 4);
    assert_true(v == in[100]);
    memcpy(&v, out + 300 * 8 + 300 * 4 * 4, 4);
    assert_true(v == user0[100]);
    uint16_t d;
    memcpy(&d, out + 300 * 8 + 300 * 4 * 5, 2);
    assert_int_equal(d, 100);
    size_t at_rgb = 300 * 8 + 300 * 4 * 5 + 300 * 4;
    assert_int_equal(out[at_rgb], r[100]);
    assert_int_equal(out[at_rgb + 300], 2);
    assert_int_equal(out[at_rgb + 900], user1[100]);
    lm_net_buf_free(&b);
    lm_net_buf_free(&scratch);
}

/* What a client decodes is what the server encoded: the control frames' fields, and a
 * chunk part's columns (compressed or not) with user columns placed by the schema. */
static void test_server_frames_decode_to_what_was_encoded(void **state)
{
    (void)state;
    struct lm_net_buf b = {0}, scratch = {0}, cols_buf = {0};
    struct lm_ws_reply r;
    char why[128];
    struct lm_ws_subscribed sub = {.mode = 0, .chunks = 7, .samples = 1234, .items = 1234,
                                   .lsn = 99, .voxel_size = 0.25f, .chunk_edge = 16,
                                   .bounds_min = {-1, -2, -3}, .bounds_max = {4, 5, 6}};
    lm_ws_encode_subscribed(&b, 3, &sub);
    assert_int_equal(lm_ws_decode_reply(b.p, b.len, &r, why, sizeof why), 0);
    assert_int_equal(r.type, LM_WS_SUBSCRIBED);
    assert_int_equal(r.id, 3);
    assert_memory_equal(&r.u.subscribed, &sub, sizeof sub);
    assert_int_equal(lm_ws_decode_reply(b.p, b.len - 1, &r, why, sizeof why), LM_WS_EMALFORMED);
    lm_net_buf_clear(&b);
    lm_ws_encode_synced(&b, 3, 7, 1234, 101);
    assert_int_equal(lm_ws_decode_reply(b.p, b.len, &r, why, sizeof why), 0);
    assert_true(r.u.synced.chunks == 7 && r.u.synced.items == 1234 && r.u.synced.lsn == 101);
    lm_net_buf_clear(&b);
    lm_ws_encode_error(&b, 3, LM_WS_ENOFIELD, LM_ENOFIELD, "no field named 'x'");
    assert_int_equal(lm_ws_decode_reply(b.p, b.len, &r, why, sizeof why), 0);
    assert_int_equal(r.u.error.code, LM_WS_ENOFIELD);
    assert_int_equal(r.u.error.lm_code, LM_ENOFIELD);
    assert_int_equal(r.u.error.len, strlen("no field named 'x'"));
    assert_memory_equal(r.u.error.text, "no field named 'x'", r.u.error.len);

    enum { N = 400 };
    static float x[N], y[N], z[N], in[N], user0[N];
    static uint16_t dir[2 * N];
    static uint8_t red[N], g[N], bl[N], user1[N];
    static int64_t t[N];
    for (int i = 0; i < N; i++) {
        x[i] = (float)i, y[i] = -(float)i, z[i] = 0.5f, in[i] = (float)(i % 3);
        user0[i] = (float)i * 2, user1[i] = (uint8_t)(255 - i % 256);
        dir[2 * i] = (uint16_t)(i * 7), dir[2 * i + 1] = (uint16_t)(i * 11);
        red[i] = (uint8_t)i, g[i] = 5, bl[i] = 6;
        t[i] = -1000LL * i;
    }
    struct lm_chunk_view c = {.coord = {-4, 0, 9}, .lsn = 12, .n = N, .x = x, .y = y, .z = z,
                              .dir_oct = dir, .r = red, .g = g, .b = bl, .intensity = in,
                              .t = t, .user = {user0, user1}};
    struct lm_field_opts o = {.voxel_size = 1, .chunk_edge = 32, .n_user_columns = 2};
    o.user_columns[0].type = LM_TYPE_F32;
    o.user_columns[1].type = LM_TYPE_U8;
    uint32_t all = lm_ws_columns_valid(0xFFFFFFFFu, &o);
    for (int k = 0; k < 2; k++) { /* compressible, then one part of one sample (raw) */
        size_t first = k ? 17 : 0, n = k ? 1 : N;
        lm_net_buf_clear(&b);
        lm_ws_encode_chunk(&b, &scratch, 9, 0, &c, first, n, all, &o);
        assert_int_equal(lm_ws_decode_reply(b.p, b.len, &r, why, sizeof why), 0);
        const struct lm_ws_chunk_part *p = &r.u.chunk;
        assert_true(p->coord[0] == -4 && p->coord[2] == 9 && p->lsn == 12);
        assert_true(p->total == N && p->first == first && p->n == n && p->columns == all);
        assert_int_equal(k ? p->comp_len == 0 : p->comp_len > 0, 1);
        struct lm_ws_columns col;
        assert_int_equal(lm_ws_chunk_columns(p, NULL, &cols_buf, &col, why, sizeof why),
                         LM_WS_EMALFORMED); /* user columns need the schema */
        assert_int_equal(lm_ws_chunk_columns(p, &o, &cols_buf, &col, why, sizeof why), 0);
        assert_memory_equal(col.t, t + first, n * sizeof *t);
        assert_memory_equal(col.x, x + first, n * sizeof *x);
        assert_memory_equal(col.y, y + first, n * sizeof *y);
        assert_memory_equal(col.intensity, in + first, n * sizeof *in);
        assert_memory_equal(col.user[0], user0 + first, n * sizeof *user0);
        assert_memory_equal(col.dir_oct, dir + 2 * first, 2 * n * sizeof *dir);
        assert_memory_equal(col.r, red + first, n);
        assert_memory_equal(col.b, bl + first, n);
        assert_memory_equal(col.user[1], user1 + first, n);
    }
    b.len--; /* a byte short: the column length disagrees with the frame's */
    assert_int_equal(lm_ws_decode_reply(b.p, b.len, &r, why, sizeof why), LM_WS_EMALFORMED);
    lm_net_buf_free(&b);
    lm_net_buf_free(&scratch);
    lm_net_buf_free(&cols_buf);
}

static void test_coordset_queues_each_chunk_once(void **state)
{
    (void)state;
    struct lm_net_coordset s = {0};
    int32_t c[3];
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 1000; i++) {
            int32_t k[3] = {i, -i, i % 3};
            assert_int_equal(lm_net_coordset_add(&s, k), round == 0 ? 1 : 0);
        }
    assert_int_equal(lm_net_coordset_pending(&s), 1000);
    for (int i = 0; i < 600; i++) {
        assert_true(lm_net_coordset_pop(&s, c));
        assert_int_equal(c[0], i);
        assert_int_equal(c[1], -i);
    }
    int32_t again[3] = {5, -5, 2};
    assert_int_equal(lm_net_coordset_add(&s, again), 1); /* popped, so it queues again */
    while (lm_net_coordset_pop(&s, c))
        ;
    assert_int_equal(c[0], 5);
    assert_int_equal(lm_net_coordset_pending(&s), 0);
    /* sent versions are remembered across a dropped queue */
    lm_net_coordset_mark_sent(&s, again, 77);
    int32_t never[3] = {-9, -9, -9};
    assert_int_equal(lm_net_coordset_sent(&s, again), 77);
    assert_int_equal(lm_net_coordset_sent(&s, never), 0);
    int32_t k1[3] = {1, -1, 1};
    assert_int_equal(lm_net_coordset_add(&s, k1), 1);
    lm_net_coordset_drop_queue(&s);
    assert_int_equal(lm_net_coordset_pending(&s), 0);
    assert_int_equal(lm_net_coordset_sent(&s, again), 77);
    lm_net_coordset_free(&s);
}

static void test_ratelimit_burst_refill_and_bounded_memory(void **state)
{
    (void)state;
    lm_net_ratelimit *rl = lm_net_ratelimit_new(10, 3, 4);
    double ra = 0;
    for (int i = 0; i < 3; i++)
        assert_true(lm_net_ratelimit_take(rl, "127.0.0.1", 100.0, &ra));
    assert_false(lm_net_ratelimit_take(rl, "127.0.0.1", 100.0, &ra));
    assert_true(ra > 0.09 && ra <= 0.1001);
    assert_true(lm_net_ratelimit_take(rl, "127.0.0.2", 100.0, NULL)); /* others unaffected */
    assert_true(lm_net_ratelimit_take(rl, "127.0.0.1", 100.11, NULL)); /* refilled one */
    for (int i = 0; i < 100; i++) { /* more addresses than slots: oldest are forgotten */
        char a[32];
        snprintf(a, sizeof a, "127.0.1.%d", i);
        assert_true(lm_net_ratelimit_take(rl, a, 200.0 + i, NULL));
    }
    lm_net_ratelimit_free(rl);
    lm_net_ratelimit *off = lm_net_ratelimit_new(0, 0, 0);
    for (int i = 0; i < 1000; i++)
        assert_true(lm_net_ratelimit_take(off, "x", 0, NULL));
    lm_net_ratelimit_free(off);
}

static void test_framecache_hits_by_version_and_respects_budget(void **state)
{
    (void)state;
    lm_net_framecache *c = lm_net_framecache_new(4096, 64);
    struct lm_net_frame_key k = {.field = "f", .coord = {1, 2, 3}, .lsn = 9, .columns = 15};
    struct lm_net_buf frames = {0};
    lm_net_buf_put(&frames, "0123456789", 10);
    assert_null(lm_net_framecache_get(c, &k));
    lm_net_framecache_put(c, &k, &frames);
    const struct lm_net_buf *hit = lm_net_framecache_get(c, &k);
    assert_non_null(hit);
    assert_memory_equal(hit->p, "0123456789", 10);
    struct lm_net_frame_key newer = k;
    newer.lsn = 10;
    assert_null(lm_net_framecache_get(c, &newer));
    struct lm_net_buf big = {0};
    lm_net_buf_reserve(&big, 2000);
    big.len = 2000;
    memset(big.p, 1, 2000);
    lm_net_framecache_put(c, &newer, &big); /* over a quarter of the budget: not kept */
    assert_null(lm_net_framecache_get(c, &newer));
    for (int i = 0; i < 100; i++) { /* far more than the budget in all: it stays bounded */
        struct lm_net_frame_key ki = k;
        ki.lsn = 100 + (uint64_t)i;
        big.len = 900;
        lm_net_framecache_put(c, &ki, &big);
        assert_non_null(lm_net_framecache_get(c, &ki));
    }
    uint64_t hits, misses;
    lm_net_framecache_stats(c, &hits, &misses);
    assert_int_equal(hits, 101);
    lm_net_buf_free(&frames);
    lm_net_buf_free(&big);
    lm_net_framecache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hello_round_trips_and_rejects_bad_lengths),
        cmocka_unit_test(test_subscribe_round_trips_every_region_kind),
        cmocka_unit_test(test_subscribe_refuses_bad_fields),
        cmocka_unit_test(test_unknown_types_and_insert_without_name),
        cmocka_unit_test(test_chunk_frame_layout_and_compression),
        cmocka_unit_test(test_server_frames_decode_to_what_was_encoded),
        cmocka_unit_test(test_coordset_queues_each_chunk_once),
        cmocka_unit_test(test_ratelimit_burst_refill_and_bounded_memory),
        cmocka_unit_test(test_framecache_hits_by_version_and_respects_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
