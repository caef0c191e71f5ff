/* test_lql.c - LQL: every statement form into its tree, precedence, lexing, parameters,
 * scripts, every syntax error with its position and message, rendering, suggestions,
 * the canonical printer, limits and out-of-memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "lql.h"

/* ---------------------------------------------------------------- helpers */

static struct lm_lql_stmt *parse_ok(const char *text)
{
    struct lm_lql_stmt *s = NULL;
    struct lm_error err = {0};
    int rc = lm_lql_parse(text, strlen(text), &s, &err);
    if (rc != 0)
        fail_msg("parse of \"%s\" failed: %d:%d: %s", text, err.line, err.column, err.message);
    assert_non_null(s);
    return s;
}

#define assert_pos(p, l, c)                 \
    do {                                    \
        assert_int_equal((p).line, (l));    \
        assert_int_equal((p).column, (c));  \
    } while (0)

#define assert_name(n, txt, l, c)                \
    do {                                         \
        assert_non_null((n).text);               \
        assert_string_equal((n).text, (txt));    \
        assert_pos((n).pos, (l), (c));           \
    } while (0)

static void assert_literal(const struct lm_lql_value *v, double want)
{
    assert_int_equal(v->param, 0);
    assert_true(v->bound);
    if (v->number != want)
        fail_msg("literal is %.17g, expected %.17g", v->number, want);
}

static void assert_point(const struct lm_lql_value v[3], double x, double y, double z)
{
    assert_literal(&v[0], x);
    assert_literal(&v[1], y);
    assert_literal(&v[2], z);
}

static void assert_param(const struct lm_lql_value *v, uint32_t index, bool negated)
{
    assert_int_equal(v->param, index);
    assert_int_equal(v->negated, negated);
    assert_false(v->bound);
}

static const struct lm_lql_expr *where_of(const char *cond, struct lm_lql_stmt **keep)
{
    char text[512];
    snprintf(text, sizeof text, "SELECT * FROM f WHERE %s", cond);
    *keep = parse_ok(text);
    assert_non_null((*keep)->select.where);
    return (*keep)->select.where;
}

static void canonical(const char *text, const char *want)
{
    struct lm_lql_stmt *s = parse_ok(text);
    char buf[1024];
    size_t n = lm_lql_format_stmt(s, buf, sizeof buf);
    assert_string_equal(buf, want);
    assert_int_equal(n, strlen(want));
    lm_lql_free(s);
}

/* ---------------------------------------------------------------- statements */

static void create_field_holds_voxel_chunk_and_typed_columns(void **state)
{
    (void)state;
    struct lm_lql_stmt *s =
        parse_ok("CREATE FIELD scene (VOXEL 0.1, CHUNK 32, label f32, \"Big id\" i32, m u8)");
    assert_int_equal(s->kind, LM_LQL_CREATE_FIELD);
    assert_pos(s->pos, 1, 1);
    assert_name(s->field, "scene", 1, 14);
    assert_literal(&s->create.voxel, 0.1);
    assert_pos(s->create.voxel.pos, 1, 27);
    assert_true(s->create.has_chunk);
    assert_literal(&s->create.chunk, 32);
    assert_true(s->create.chunk.integer);
    assert_int_equal(s->create.n_columns, 3);
    assert_name(s->create.columns[0].name, "label", 1, 42);
    assert_int_equal(s->create.columns[0].type, LM_TYPE_F32);
    assert_name(s->create.columns[1].name, "Big id", 1, 53);
    assert_true(s->create.columns[1].name.quoted);
    assert_int_equal(s->create.columns[1].type, LM_TYPE_I32);
    assert_name(s->create.columns[2].name, "m", 1, 67);
    assert_int_equal(s->create.columns[2].type, LM_TYPE_U8);
    assert_int_equal(s->n_params, 0);
    lm_lql_free(s);

    /* CHUNK is optional, items come in any order, types in any case. */
    s = parse_ok("create field f (a F32, voxel 2)");
    assert_literal(&s->create.voxel, 2);
    assert_false(s->create.has_chunk);
    assert_int_equal(s->create.n_columns, 1);
    assert_int_equal(s->create.columns[0].type, LM_TYPE_F32);
    lm_lql_free(s);
}

static void drop_show_and_describe_name_their_field(void **state)
{
    (void)state;
    struct lm_lql_stmt *s = parse_ok("DROP FIELD old");
    assert_int_equal(s->kind, LM_LQL_DROP_FIELD);
    assert_name(s->field, "old", 1, 12);
    lm_lql_free(s);
    s = parse_ok("show fields;");
    assert_int_equal(s->kind, LM_LQL_SHOW_FIELDS);
    assert_null(s->field.text);
    lm_lql_free(s);
    s = parse_ok("DESCRIBE \"select\"");
    assert_int_equal(s->kind, LM_LQL_DESCRIBE);
    assert_name(s->field, "select", 1, 10);
    assert_true(s->field.quoted);
    lm_lql_free(s);
}

static void insert_without_columns_keeps_rows_in_order(void **state)
{
    (void)state;
    struct lm_lql_stmt *s = parse_ok("INSERT INTO f VALUES (1, -2, 3.5), (?, -?, 0)");
    assert_int_equal(s->kind, LM_LQL_INSERT);
    assert_name(s->field, "f", 1, 13);
    assert_int_equal(s->insert.n_columns, 0);
    assert_null(s->insert.columns);
    assert_int_equal(s->insert.n_rows, 2);
    assert_int_equal(s->insert.width, 3);
    assert_literal(&s->insert.values[0], 1);
    assert_literal(&s->insert.values[1], -2);
    assert_pos(s->insert.values[1].pos, 1, 26); /* the '-' */
    assert_literal(&s->insert.values[2], 3.5);
    assert_param(&s->insert.values[3], 1, false);
    assert_param(&s->insert.values[4], 2, true);
    assert_literal(&s->insert.values[5], 0);
    assert_int_equal(s->n_params, 2);
    assert_ptr_equal(s->params[0], &s->insert.values[3]);
    assert_ptr_equal(s->params[1], &s->insert.values[4]);
    lm_lql_free(s);
}

static void insert_with_columns_matches_rows_to_them(void **state)
{
    (void)state;
    struct lm_lql_stmt *s = parse_ok("INSERT INTO f (x, y, z, label) VALUES (1, 2, 3, 4)");
    assert_int_equal(s->insert.n_columns, 4);
    assert_name(s->insert.columns[0], "x", 1, 16);
    assert_name(s->insert.columns[3], "label", 1, 25);
    assert_int_equal(s->insert.n_rows, 1);
    assert_int_equal(s->insert.width, 4);
    assert_literal(&s->insert.values[3], 4);
    lm_lql_free(s);
}

static void select_star_with_where_and_limit(void **state)
{
    (void)state;
    struct lm_lql_stmt *s = parse_ok("SELECT * FROM scene WHERE x < 1 LIMIT 10");
    assert_int_equal(s->kind, LM_LQL_SELECT);
    assert_true(s->select.star);
    assert_int_equal(s->select.n_items, 0);
    assert_name(s->field, "scene", 1, 15);
    assert_false(s->select.has_nearest);
    const struct lm_lql_expr *w = s->select.where;
    assert_int_equal(w->kind, LM_LQL_EXPR_CMP);
    assert_pos(w->pos, 1, 27);
    assert_name(w->cmp.column, "x", 1, 27);
    assert_int_equal(w->cmp.op, LM_CMP_LT);
    assert_literal(&w->cmp.a, 1);
    assert_int_equal(s->select.group, LM_LQL_GROUP_NONE);
    assert_int_equal(s->select.n_order, 0);
    assert_true(s->select.has_limit);
    assert_literal(&s->select.limit, 10);
    assert_true(s->select.limit.integer);
    assert_int_equal(s->offset, 0);
    assert_int_equal(s->length, strlen("SELECT * FROM scene WHERE x < 1 LIMIT 10"));
    lm_lql_free(s);

    s = parse_ok("SELECT * FROM scene");
    assert_null(s->select.where);
    assert_false(s->select.has_limit);
    lm_lql_free(s);
}

static void select_aggregates_map_to_their_kinds(void **state)
{
    (void)state;
    struct lm_lql_stmt *s = parse_ok("SELECT x, count(*), COUNT(label) AS n, sum(i), avg(r) "
                                     "AS \"mean red\", min(t), Max(t) AS last FROM f");
    const struct lm_lql_select_item *it = s->select.items;
    assert_false(s->select.star);
    assert_int_equal(s->select.n_items, 7);
    assert_int_equal(it[0].agg, LM_LQL_AGG_NONE);
    assert_name(it[0].column, "x", 1, 8);
    assert_pos(it[0].pos, 1, 8);
    assert_null(it[0].alias.text);
    assert_int_equal(it[1].agg, LM_LQL_AGG_COUNT);
    assert_null(it[1].column.text);
    assert_pos(it[1].pos, 1, 11);
    assert_int_equal(it[2].agg, LM_LQL_AGG_COUNT);
    assert_name(it[2].column, "label", 1, 27);
    assert_name(it[2].alias, "n", 1, 37);
    assert_int_equal(it[3].agg, LM_LQL_AGG_SUM);
    assert_name(it[3].column, "i", 1, 44);
    assert_int_equal(it[4].agg, LM_LQL_AGG_AVG);
    assert_name(it[4].alias, "mean red", 1, 58);
    assert_int_equal(it[5].agg, LM_LQL_AGG_MIN);
    assert_int_equal(it[6].agg, LM_LQL_AGG_MAX);
    assert_name(it[6].column, "t", 1, 82);
    assert_name(it[6].alias, "last", 1, 88);
    lm_lql_free(s);

    /* Function names are keywords only before '(': elsewhere they are columns. */
    s = parse_ok("SELECT count, max AS first FROM f ORDER BY count");
    assert_int_equal(s->select.items[0].agg, LM_LQL_AGG_NONE);
    assert_name(s->select.items[0].column, "count", 1, 8);
    assert_name(s->select.items[1].alias, "first", 1, 22);
    assert_name(s->select.order[0].column, "count", 1, 44);
    lm_lql_free(s);
}

static void select_nearest_comes_after_from(void **state)
{
    (void)state;
    struct lm_lql_stmt *s =
        parse_ok("SELECT * FROM f NEAREST 5 TO (1, -2, 3e1) WHERE intensity > 0 LIMIT 3");
    assert_true(s->select.has_nearest);
    assert_literal(&s->select.nearest_k, 5);
    assert_true(s->select.nearest_k.integer);
    assert_pos(s->select.nearest_k.pos, 1, 25);
    assert_point(s->select.nearest_point, 1, -2, 30);
    assert_int_equal(s->select.where->kind, LM_LQL_EXPR_CMP);
    assert_literal(&s->select.limit, 3);
    lm_lql_free(s);
}

static void select_group_by_voxel_chunk_or_lod(void **state)
{
    (void)state;
    struct lm_lql_stmt *s = parse_ok("SELECT count(*) FROM f GROUP BY VOXEL");
    assert_int_equal(s->select.group, LM_LQL_GROUP_VOXEL);
    assert_pos(s->select.group_pos, 1, 24);
    lm_lql_free(s);
    s = parse_ok("SELECT count(*) FROM f group by chunk");
    assert_int_equal(s->select.group, LM_LQL_GROUP_CHUNK);
    lm_lql_free(s);
    s = parse_ok("SELECT avg(r) FROM f WHERE TRUE GROUP BY LOD 3 ORDER BY r LIMIT 1");
    assert_int_equal(s->select.group, LM_LQL_GROUP_LOD);
    assert_literal(&s->select.lod, 3);
    assert_true(s->select.lod.integer);
    lm_lql_free(s);
}

static void select_order_by_keeps_direction_per_column(void **state)
{
    (void)state;
    struct lm_lql_stmt *s = parse_ok("SELECT * FROM f ORDER BY intensity DESC, t ASC, x");
    assert_int_equal(s->select.n_order, 3);
    assert_name(s->select.order[0].column, "intensity", 1, 26);
    assert_true(s->select.order[0].desc);
    assert_name(s->select.order[1].column, "t", 1, 42);
    assert_false(s->select.order[1].desc);
    assert_false(s->select.order[2].desc);
    lm_lql_free(s);
}

static void spatial_predicates_hold_their_numbers(void **state)
{
    (void)state;
    struct lm_lql_stmt *s;
    const struct lm_lql_expr *e = where_of("INSIDE BOX (0, -1, 2) TO (3, 4.5, 6)", &s);
    assert_int_equal(e->kind, LM_LQL_EXPR_REGION);
    assert_pos(e->pos, 1, 23);
    assert_int_equal(e->region.kind, LM_REGION_BOX);
    assert_point(e->region.box.min, 0, -1, 2);
    assert_point(e->region.box.max, 3, 4.5, 6);
    lm_lql_free(s);

    e = where_of("within 2.5 of (1, 2, 3)", &s);
    assert_int_equal(e->region.kind, LM_REGION_SPHERE);
    assert_literal(&e->region.sphere.radius, 2.5);
    assert_point(e->region.sphere.center, 1, 2, 3);
    lm_lql_free(s);

    e = where_of("IN FRUSTUM (EYE (0, 0, 5), TARGET (0, 0, 0), UP (0, 1, 0), FOV 60, "
                 "ASPECT 1.5, NEAR 0.1, FAR 100)", &s);
    assert_int_equal(e->region.kind, LM_REGION_FRUSTUM);
    assert_point(e->region.frustum.eye, 0, 0, 5);
    assert_point(e->region.frustum.target, 0, 0, 0);
    assert_point(e->region.frustum.up, 0, 1, 0);
    assert_literal(&e->region.frustum.fov_y, 60);
    assert_literal(&e->region.frustum.aspect, 1.5);
    assert_literal(&e->region.frustum.near_d, 0.1);
    assert_literal(&e->region.frustum.far_d, 100);
    lm_lql_free(s);
}

static void comparisons_map_to_lm_cmp(void **state)
{
    (void)state;
    static const struct { const char *op; enum lm_cmp cmp; } ops[] = {
        {"<", LM_CMP_LT}, {"<=", LM_CMP_LE}, {">", LM_CMP_GT}, {">=", LM_CMP_GE},
        {"=", LM_CMP_EQ}, {"!=", LM_CMP_NE}, {"<>", LM_CMP_NE}};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        char cond[64];
        snprintf(cond, sizeof cond, "t %s -7", ops[i].op);
        struct lm_lql_stmt *s;
        const struct lm_lql_expr *e = where_of(cond, &s);
        assert_int_equal(e->kind, LM_LQL_EXPR_CMP);
        assert_int_equal(e->cmp.op, ops[i].cmp);
        assert_literal(&e->cmp.a, -7);
        lm_lql_free(s);
    }
    struct lm_lql_stmt *s;
    const struct lm_lql_expr *e = where_of("r BETWEEN 0.25 AND ?", &s);
    assert_int_equal(e->cmp.op, LM_CMP_BETWEEN);
    assert_literal(&e->cmp.a, 0.25);
    assert_param(&e->cmp.b, 1, false);
    lm_lql_free(s);
}

static void not_binds_tighter_than_and_tighter_than_or(void **state)
{
    (void)state;
    struct lm_lql_stmt *s;
    /* a OR b AND NOT c OR d  ==  a OR (b AND (NOT c)) OR d */
    const struct lm_lql_expr *e = where_of("x < 1 OR y < 2 AND NOT z < 3 OR TRUE", &s);
    assert_int_equal(e->kind, LM_LQL_EXPR_OR);
    assert_pos(e->pos, 1, 23);
    assert_int_equal(e->list.n, 3);
    assert_int_equal(e->list.args[0]->kind, LM_LQL_EXPR_CMP);
    const struct lm_lql_expr *and = e->list.args[1];
    assert_int_equal(and->kind, LM_LQL_EXPR_AND);
    assert_pos(and->pos, 1, 32);
    assert_int_equal(and->list.n, 2);
    assert_name(and->list.args[0]->cmp.column, "y", 1, 32);
    const struct lm_lql_expr *not = and->list.args[1];
    assert_int_equal(not->kind, LM_LQL_EXPR_NOT);
    assert_pos(not->pos, 1, 42);
    assert_name(not->operand->cmp.column, "z", 1, 46);
    assert_int_equal(e->list.args[2]->kind, LM_LQL_EXPR_TRUE);
    assert_pos(e->list.args[2]->pos, 1, 55);
    lm_lql_free(s);

    /* Parentheses override; a nested AND stays its own node; chains are one node. */
    e = where_of("(x < 1 OR y < 2) AND (a = 1 AND b = 2) AND c = 3 AND NOT NOT d = 4", &s);
    assert_int_equal(e->kind, LM_LQL_EXPR_AND);
    assert_int_equal(e->list.n, 4);
    assert_int_equal(e->list.args[0]->kind, LM_LQL_EXPR_OR);
    assert_pos(e->list.args[0]->pos, 1, 24); /* the inner node's first token */
    assert_int_equal(e->list.args[1]->kind, LM_LQL_EXPR_AND);
    assert_int_equal(e->list.args[1]->list.n, 2);
    assert_int_equal(e->list.args[3]->kind, LM_LQL_EXPR_NOT);
    assert_int_equal(e->list.args[3]->operand->kind, LM_LQL_EXPR_NOT);
    lm_lql_free(s);

    /* NOT applies to a whole predicate, spatial ones included. */
    e = where_of("NOT INSIDE BOX (0,0,0) TO (1,1,1) AND x BETWEEN 1 AND 2", &s);
    assert_int_equal(e->kind, LM_LQL_EXPR_AND);
    assert_int_equal(e->list.args[0]->kind, LM_LQL_EXPR_NOT);
    assert_int_equal(e->list.args[0]->operand->kind, LM_LQL_EXPR_REGION);
    assert_int_equal(e->list.args[1]->cmp.op, LM_CMP_BETWEEN);
    lm_lql_free(s);
}

static void raycast_defaults_to_first_without_max(void **state)
{
    (void)state;
    struct lm_lql_stmt *s =
        parse_ok("RAYCAST f FROM (0, 0, -10) DIR (0, 0, 1) MAX 50 RETURN ALL");
    assert_int_equal(s->kind, LM_LQL_RAYCAST);
    assert_name(s->field, "f", 1, 9);
    assert_point(s->raycast.origin, 0, 0, -10);
    assert_point(s->raycast.dir, 0, 0, 1);
    assert_true(s->raycast.has_max);
    assert_literal(&s->raycast.max_dist, 50);
    assert_int_equal(s->raycast.mode, LM_RAY_ALL);
    lm_lql_free(s);
    s = parse_ok("raycast f from (1,2,3) dir (1,0,0) return first");
    assert_false(s->raycast.has_max);
    assert_int_equal(s->raycast.mode, LM_RAY_FIRST);
    lm_lql_free(s);
    s = parse_ok("RAYCAST f FROM (1,2,3) DIR (1,0,0)");
    assert_int_equal(s->raycast.mode, LM_RAY_FIRST);
    lm_lql_free(s);
}

static void radiance_holds_point_and_direction(void **state)
{
    (void)state;
    struct lm_lql_stmt *s = parse_ok("RADIANCE f AT (0.5, 0.5, 0.5) TOWARD (0, 0, -1)");
    assert_int_equal(s->kind, LM_LQL_RADIANCE);
    assert_name(s->field, "f", 1, 10);
    assert_point(s->radiance.at, 0.5, 0.5, 0.5);
    assert_point(s->radiance.toward, 0, 0, -1);
    lm_lql_free(s);
}

static void delete_needs_where_and_accepts_where_true(void **state)
{
    (void)state;
    struct lm_lql_stmt *s = parse_ok("DELETE FROM f WHERE TRUE");
    assert_int_equal(s->kind, LM_LQL_DELETE);
    assert_name(s->field, "f", 1, 13);
    assert_int_equal(s->delete_where->kind, LM_LQL_EXPR_TRUE);
    assert_pos(s->delete_where->pos, 1, 21);
    lm_lql_free(s);
    s = parse_ok("DELETE FROM f WHERE t < 5 AND WITHIN 1 OF (0, 0, 0)");
    assert_int_equal(s->delete_where->kind, LM_LQL_EXPR_AND);
    lm_lql_free(s);
}

static void update_sets_columns_where(void **state)
{
    (void)state;
    struct lm_lql_stmt *s = parse_ok("UPDATE f SET r = 1, label = -?, t = 2e3 WHERE x > ?");
    assert_int_equal(s->kind, LM_LQL_UPDATE);
    assert_name(s->field, "f", 1, 8);
    assert_int_equal(s->update.n_sets, 3);
    assert_name(s->update.sets[0].column, "r", 1, 14);
    assert_literal(&s->update.sets[0].value, 1);
    assert_name(s->update.sets[1].column, "label", 1, 21);
    assert_param(&s->update.sets[1].value, 1, true);
    assert_literal(&s->update.sets[2].value, 2000);
    assert_int_equal(s->update.where->kind, LM_LQL_EXPR_CMP);
    assert_param(&s->update.where->cmp.a, 2, false);
    assert_int_equal(s->n_params, 2);
    lm_lql_free(s);
}

static void explain_wraps_a_statement_and_shares_parameters(void **state)
{
    (void)state;
    struct lm_lql_stmt *s = parse_ok("EXPLAIN SELECT * FROM f WHERE x < ? LIMIT ?");
    assert_int_equal(s->kind, LM_LQL_EXPLAIN);
    assert_null(s->field.text);
    assert_non_null(s->explain);
    assert_int_equal(s->explain->kind, LM_LQL_SELECT);
    assert_pos(s->explain->pos, 1, 9);
    assert_int_equal(s->explain->offset, 8);
    assert_name(s->explain->field, "f", 1, 23);
    assert_int_equal(s->n_params, 2);
    assert_int_equal(s->explain->n_params, 2);
    assert_ptr_equal(s->explain->params, s->params);
    assert_int_equal(lm_lql_bind_number(s, 2, 7), 0);
    assert_true(s->explain->select.limit.bound);
    assert_true(s->explain->select.limit.number == 7);
    lm_lql_free(s->explain); /* not the owner: a no-op */
    lm_lql_free(s);
    lm_lql_free(NULL);
}

/* ---------------------------------------------------------------- lexing */

static void comments_quotes_and_case_are_handled(void **state)
{
    (void)state;
    struct lm_lql_stmt *s = parse_ok("-- leading comment\n"
                                     "sElEcT /* block\n comment */ \"Odd \"\"name\"\"\" "
                                     "FrOm \"f\" -- trailing\n"
                                     "WHERE \"where\" = 1 /* tail */;  -- done");
    assert_int_equal(s->kind, LM_LQL_SELECT);
    assert_pos(s->pos, 2, 1);
    assert_name(s->select.items[0].column, "Odd \"name\"", 3, 13);
    assert_true(s->select.items[0].column.quoted);
    assert_name(s->field, "f", 3, 33);
    assert_name(s->select.where->cmp.column, "where", 4, 7);
    lm_lql_free(s);

    /* Unquoted names keep their case; tabs and CRLF are whitespace. */
    s = parse_ok("SELECT\tIntensity\r\nFROM\tMyField");
    assert_name(s->select.items[0].column, "Intensity", 1, 8);
    assert_name(s->field, "MyField", 2, 6);
    lm_lql_free(s);

    /* Columns count characters, not bytes. */
    s = parse_ok("/* \xc3\xa9t\xc3\xa9 */ SHOW FIELDS");
    assert_pos(s->pos, 1, 11);
    lm_lql_free(s);

    /* A NUL-free text needs no terminator: only len bytes are read. */
    static const char part[] = {'S', 'H', 'O', 'W', ' ', 'F', 'I', 'E', 'L', 'D', 'S'};
    struct lm_error err;
    assert_int_equal(lm_lql_parse(part, sizeof part, &s, &err), 0);
    lm_lql_free(s);
}

static void numbers_read_integers_decimals_and_exponents(void **state)
{
    (void)state;
    static const struct { const char *text; double value; } cases[] = {
        {"0", 0},           {"42", 42},        {"3.25", 3.25},     {".5", 0.5},
        {"5.", 5},          {"1e-3", 1e-3},    {"1E+3", 1000},     {"2.5e2", 250},
        {".5e1", 5},        {"5.e1", 50},      {"-7", -7},         {"- 0.125", -0.125},
        {"1e-400", 0},      {"123456789012", 123456789012.0},
        {"0.1", 0.1},       {"-1.7976931348623157e308", -1.7976931348623157e308}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char cond[128];
        snprintf(cond, sizeof cond, "x = %s", cases[i].text);
        struct lm_lql_stmt *s;
        const struct lm_lql_expr *e = where_of(cond, &s);
        assert_literal(&e->cmp.a, cases[i].value);
        lm_lql_free(s);
    }
}

/* Random literals of every shape read exactly as strtod reads them (the lexer takes a
 * shortcut for short ones). */
static void numbers_read_as_strtod_reads_them(void **state)
{
    (void)state;
    uint64_t seed = 0x9E3779B97F4A7C15u;
    for (int i = 0; i < 20000; i++) {
        char num[64], text[96];
        size_t o = 0;
        seed = seed * 6364136223846793005u + 1442695040888963407u;
        uint64_t r = seed >> 11;
        int int_digits = (int)(r % 12), frac_digits = (int)(r / 12 % 12);
        bool dot = r / 144 % 4 != 0 || int_digits == 0;
        if (int_digits == 0 && frac_digits == 0)
            frac_digits = 1;
        for (int d = 0; d < int_digits; d++, r /= 7)
            num[o++] = (char)('0' + (d == 0 && r % 3 == 0 ? 0 : (r >> 3) % 10));
        if (dot) {
            num[o++] = '.';
            for (int d = 0; d < frac_digits; d++, r /= 5)
                num[o++] = (char)('0' + (r >> 2) % 10);
        }
        seed = seed * 6364136223846793005u + 1442695040888963407u;
        r = seed >> 11;
        if (r % 3 == 0)
            o += (size_t)snprintf(num + o, sizeof num - o, "e%s%d", r % 2 ? "-" : "+",
                                  (int)(r / 6 % 40));
        num[o] = '\0';
        snprintf(text, sizeof text, "SELECT * FROM f WHERE x = %s", num);
        struct lm_lql_stmt *s;
        struct lm_error err;
        if (lm_lql_parse(text, strlen(text), &s, &err) != 0)
            fail_msg("\"%s\": %s", num, err.message);
        double want = strtod(num, NULL);
        if (s->select.where->cmp.a.number != want)
            fail_msg("\"%s\" read as %.17g, strtod says %.17g", num,
                     s->select.where->cmp.a.number, want);
        lm_lql_free(s);
    }
}

/* ---------------------------------------------------------------- parameters */

static void parameters_are_numbered_in_order_and_bound(void **state)
{
    (void)state;
    struct lm_lql_stmt *s = parse_ok(
        "SELECT * FROM f NEAREST ? TO (?, 0, -?) WHERE x BETWEEN ? AND 3 LIMIT ?");
    assert_int_equal(s->n_params, 5);
    assert_ptr_equal(s->params[0], &s->select.nearest_k);
    assert_ptr_equal(s->params[1], &s->select.nearest_point[0]);
    assert_ptr_equal(s->params[2], &s->select.nearest_point[2]);
    assert_ptr_equal(s->params[3], &s->select.where->cmp.a);
    assert_ptr_equal(s->params[4], &s->select.limit);
    assert_true(s->params[0]->integer);
    assert_true(s->params[2]->negated);
    assert_pos(s->params[2]->pos, 1, 37);

    struct lm_error err;
    assert_int_equal(lm_lql_check_bound(s, &err), LM_EBADARG);
    assert_string_equal(err.message, "parameter 1 is not bound");
    assert_pos(err, 1, 25);

    assert_int_equal(lm_lql_bind_number(s, 1, 8), 0);
    assert_int_equal(lm_lql_bind_number(s, 2, 1.5), 0);
    assert_int_equal(lm_lql_bind_number(s, 3, 2.5), 0);
    assert_int_equal(lm_lql_bind_number(s, 4, -1), 0);
    assert_int_equal(lm_lql_check_bound(s, &err), LM_EBADARG);
    assert_string_equal(err.message, "parameter 5 is not bound");
    assert_int_equal(lm_lql_bind_number(s, 5, 100), 0);
    assert_int_equal(lm_lql_check_bound(s, &err), 0);

    assert_true(s->select.nearest_k.bound && s->select.nearest_k.number == 8);
    assert_true(s->select.nearest_point[0].bound);
    assert_true(s->select.nearest_point[0].number == 1.5);
    assert_true(s->select.nearest_point[2].number == -2.5); /* -? */
    assert_true(s->select.where->cmp.a.number == -1);
    assert_true(s->select.limit.number == 100);

    /* Rebinding overwrites; bad binds change nothing. */
    assert_int_equal(lm_lql_bind_number(s, 5, 3), 0);
    assert_true(s->select.limit.number == 3);
    assert_int_equal(lm_lql_bind_number(s, 0, 1), LM_EBADARG);
    assert_int_equal(lm_lql_bind_number(s, 6, 1), LM_EBADARG);
    assert_int_equal(lm_lql_bind_number(s, 2, NAN), LM_EBADARG);
    assert_int_equal(lm_lql_bind_number(s, 2, INFINITY), LM_EBADARG);
    assert_int_equal(lm_lql_bind_number(s, 5, 1.5), LM_EBADARG);  /* LIMIT wants integers */
    assert_int_equal(lm_lql_bind_number(s, 5, -1), LM_EBADARG);
    assert_int_equal(lm_lql_bind_number(s, 5, 1e300), LM_EBADARG);
    assert_true(s->select.limit.number == 3);
    assert_int_equal(lm_lql_bind_number(NULL, 1, 1), LM_EBADARG);
    lm_lql_free(s);

    /* Numbering restarts with each statement. */
    s = parse_ok("DELETE FROM f WHERE x < ?");
    assert_int_equal(s->n_params, 1);
    assert_int_equal(s->delete_where->cmp.a.param, 1);
    assert_int_equal(lm_lql_check_bound(s, NULL), LM_EBADARG);
    lm_lql_free(s);
}

/* Binds parameter i to i and returns the statement, so slots can be checked by value. */
static struct lm_lql_stmt *parse_bound(const char *text, uint32_t n_params)
{
    struct lm_lql_stmt *s = parse_ok(text);
    assert_int_equal(s->n_params, n_params);
    for (uint32_t i = 1; i <= n_params; i++) {
        assert_int_equal(s->params[i - 1]->param, i);
        assert_int_equal(lm_lql_bind_number(s, i, i), 0);
    }
    assert_int_equal(lm_lql_check_bound(s, NULL), 0);
    return s;
}

static void assert_bound(const struct lm_lql_value *v, double want)
{
    assert_true(v->bound);
    if (v->number != want)
        fail_msg("bound value is %g, expected %g", v->number, want);
}

static void parameters_reach_every_slot(void **state)
{
    (void)state;
    struct lm_lql_stmt *s = parse_bound("CREATE FIELD f (CHUNK ?, VOXEL ?)", 2);
    assert_bound(&s->create.chunk, 1);
    assert_bound(&s->create.voxel, 2);
    lm_lql_free(s);

    s = parse_bound("RAYCAST f FROM (?, ?, ?) DIR (?, ?, ?) MAX ?", 7);
    for (int i = 0; i < 3; i++) {
        assert_bound(&s->raycast.origin[i], 1 + i);
        assert_bound(&s->raycast.dir[i], 4 + i);
    }
    assert_bound(&s->raycast.max_dist, 7);
    lm_lql_free(s);

    s = parse_bound("RADIANCE f AT (?, ?, ?) TOWARD (?, ?, -?)", 6);
    for (int i = 0; i < 3; i++) {
        assert_bound(&s->radiance.at[i], 1 + i);
        assert_bound(&s->radiance.toward[i], i < 2 ? 4 + i : -6);
    }
    lm_lql_free(s);

    s = parse_bound("SELECT * FROM f WHERE INSIDE BOX (?, ?, ?) TO (?, ?, ?) OR NOT (WITHIN ? "
                    "OF (?, ?, ?) AND IN FRUSTUM (EYE (?, ?, ?), TARGET (?, ?, ?), UP (?, ?, "
                    "?), FOV ?, ASPECT ?, NEAR ?, FAR ?)) GROUP BY LOD ?",
                    24);
    const struct lm_lql_expr *box = s->select.where->list.args[0];
    const struct lm_lql_expr *and = s->select.where->list.args[1]->operand;
    const struct lm_lql_region *sphere = &and->list.args[0]->region;
    const struct lm_lql_region *fr = &and->list.args[1]->region;
    for (int i = 0; i < 3; i++) {
        assert_bound(&box->region.box.min[i], 1 + i);
        assert_bound(&box->region.box.max[i], 4 + i);
        assert_bound(&sphere->sphere.center[i], 8 + i);
        assert_bound(&fr->frustum.eye[i], 11 + i);
        assert_bound(&fr->frustum.target[i], 14 + i);
        assert_bound(&fr->frustum.up[i], 17 + i);
    }
    assert_bound(&sphere->sphere.radius, 7);
    assert_bound(&fr->frustum.fov_y, 20);
    assert_bound(&fr->frustum.aspect, 21);
    assert_bound(&fr->frustum.near_d, 22);
    assert_bound(&fr->frustum.far_d, 23);
    assert_bound(&s->select.lod, 24);
    assert_true(s->select.lod.integer);
    lm_lql_free(s);

    /* Statements without values have no parameters. */
    static const char *const none[] = {"DROP FIELD f", "SHOW FIELDS", "DESCRIBE f"};
    for (size_t i = 0; i < 3; i++) {
        s = parse_ok(none[i]);
        assert_int_equal(s->n_params, 0);
        assert_null(s->params);
        assert_int_equal(lm_lql_check_bound(s, NULL), 0);
        assert_int_equal(lm_lql_bind_number(s, 1, 0), LM_EBADARG);
        lm_lql_free(s);
    }
    struct lm_error err;
    assert_int_equal(lm_lql_check_bound(NULL, &err), LM_EBADARG);
}

/* ---------------------------------------------------------------- scripts */

static void parse_next_splits_a_script_and_keeps_positions(void **state)
{
    (void)state;
    const char *text = "SHOW FIELDS;;\n"
                       "  -- a comment\n"
                       "  SELECT * FROM f; /* c */ DROP FIELD g\n"
                       ";  ";
    size_t len = strlen(text);
    struct lm_lql_cursor cur = {0};
    struct lm_lql_stmt *s;
    struct lm_error err;

    assert_int_equal(lm_lql_parse_next(text, len, &cur, &s, &err), 0);
    assert_int_equal(s->kind, LM_LQL_SHOW_FIELDS);
    assert_int_equal(cur.offset, 12);
    assert_int_equal(s->offset, 0);
    assert_int_equal(s->length, 11);
    lm_lql_free(s);

    assert_int_equal(lm_lql_parse_next(text, len, &cur, &s, &err), 0);
    assert_int_equal(s->kind, LM_LQL_SELECT);
    assert_pos(s->pos, 3, 3);
    assert_name(s->field, "f", 3, 17);
    assert_int_equal(s->offset, 31);
    assert_int_equal(s->length, 15);
    assert_memory_equal(text + s->offset, "SELECT * FROM f", 15);
    lm_lql_free(s);

    assert_int_equal(lm_lql_parse_next(text, len, &cur, &s, &err), 0);
    assert_int_equal(s->kind, LM_LQL_DROP_FIELD);
    assert_name(s->field, "g", 3, 39);
    lm_lql_free(s);
    assert_int_equal(cur.line, 4);
    assert_int_equal(cur.column, 2);

    s = (struct lm_lql_stmt *)&cur; /* must be overwritten with NULL */
    assert_int_equal(lm_lql_parse_next(text, len, &cur, &s, &err), 0);
    assert_null(s);
    assert_int_equal(cur.offset, len);
    assert_int_equal(lm_lql_parse_next(text, len, &cur, &s, &err), 0);
    assert_null(s);
}

static void parse_next_skips_past_a_failed_statement(void **state)
{
    (void)state;
    const char *text = "SELECT * FORM f; SHOW FIELDS;\nSELECT 'x' FROM f WHERE y; DESCRIBE g\n"
                       "DROP x; SELECT \"open";
    size_t len = strlen(text);
    struct lm_lql_cursor cur = {0};
    struct lm_lql_stmt *s = NULL;
    struct lm_error err;

    assert_int_equal(lm_lql_parse_next(text, len, &cur, &s, &err), LM_ESYNTAX);
    assert_null(s);
    assert_pos(err, 1, 10);
    assert_int_equal(cur.offset, 16);
    assert_int_equal(lm_lql_parse_next(text, len, &cur, &s, &err), 0);
    assert_int_equal(s->kind, LM_LQL_SHOW_FIELDS);
    lm_lql_free(s);

    /* A lexical error: the cursor still finds the ';' after it. */
    assert_int_equal(lm_lql_parse_next(text, len, &cur, &s, &err), LM_ESYNTAX);
    assert_pos(err, 2, 8);
    assert_int_equal(lm_lql_parse_next(text, len, &cur, &s, &err), LM_ESYNTAX);
    assert_string_equal(err.message,
                        "expected ';' or end of input after the field name, found 'DROP'");
    assert_pos(err, 3, 1);
    assert_int_equal(lm_lql_parse_next(text, len, &cur, &s, &err), LM_ESYNTAX);
    assert_string_equal(err.message, "unterminated quoted identifier");
    assert_pos(err, 3, 16);
    assert_int_equal(cur.offset, len);
    assert_int_equal(lm_lql_parse_next(text, len, &cur, &s, &err), 0);
    assert_null(s);

    assert_int_equal(lm_lql_parse_next(NULL, 1, &cur, &s, &err), LM_EBADARG);
    assert_int_equal(lm_lql_parse_next(text, len, NULL, &s, &err), LM_EBADARG);
    cur = (struct lm_lql_cursor){0};
    assert_int_equal(lm_lql_parse_next(NULL, 0, &cur, &s, &err), 0);
    assert_null(s);
}

static void parse_takes_exactly_one_statement(void **state)
{
    (void)state;
    struct lm_lql_stmt *s = NULL;
    struct lm_error err;
    assert_int_equal(lm_lql_parse("SHOW FIELDS; ; -- fine\n", 23, &s, &err), 0);
    lm_lql_free(s);
    s = NULL;
    const char *two = "SHOW FIELDS;\n DESCRIBE f";
    assert_int_equal(lm_lql_parse(two, strlen(two), &s, &err), LM_ESYNTAX);
    assert_null(s);
    assert_pos(err, 2, 2);
    assert_string_equal(err.message, "expected end of input after the statement, found a "
                                     "second statement (use lm_lql_parse_next for scripts)");
    assert_int_equal(lm_lql_parse(" -- nothing\n", 12, &s, &err), LM_ESYNTAX);
    assert_pos(err, 1, 1);
    assert_string_equal(err.message, "expected a statement, found end of input");
    assert_int_equal(lm_lql_parse("", 0, &s, &err), LM_ESYNTAX);
    assert_int_equal(lm_lql_parse("SHOW FIELDS; 'x", 15, &s, &err), LM_ESYNTAX);
    assert_pos(err, 1, 14);
    assert_int_equal(lm_lql_parse("SHOW FIELDS", 11, NULL, &err), LM_EBADARG);
    assert_null(s);
}

static void complete_means_a_final_semicolon_outside_comments_and_quotes(void **state)
{
    (void)state;
    static const struct { const char *text; bool complete; } cases[] = {
        {"", false},
        {"SELECT * FROM f", false},
        {"SELECT * FROM f;", true},
        {"SELECT * FROM f;  \n", true},
        {"SELECT * FROM f; -- done", true},
        {"SELECT * FROM f; /* done */", true},
        {"SELECT * FROM f; SELECT", false},
        {"SELECT * FROM f /* ; */", false},
        {"SELECT * FROM f -- ;", false},
        {"SELECT * FROM f /* ; ", false},
        {"SELECT \";\" FROM f", false},
        {"SELECT \"a;", false},
        {"SELECT \"a\"\";\"", false},
        {";", true},
        {"SELECT 'x", true}, /* runs, and reports the quote */
    };
    assert_false(lm_lql_complete(NULL, 0));
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (lm_lql_complete(cases[i].text, strlen(cases[i].text)) != cases[i].complete)
            fail_msg("lm_lql_complete(\"%s\") != %d", cases[i].text, cases[i].complete);
}

/* ---------------------------------------------------------------- errors */

struct error_case {
    const char *text;
    int code;
    uint32_t line, column;
    const char *message;
};

static const struct error_case error_cases[] = {
    /* lexer */
    {"SELECT * FROM f WHERE x < 1 /* open", LM_ESYNTAX, 1, 29, "unterminated block comment"},
    {"DESCRIBE \"open", LM_ESYNTAX, 1, 10, "unterminated quoted identifier"},
    {"DESCRIBE \"\"", LM_ESYNTAX, 1, 10, "empty quoted identifier"},
    {"DESCRIBE a234567890123456789012345678901234567890123456789012345678901234",
     LM_ELIMIT, 1, 10, "identifier is longer than 63 characters"},
    {"DESCRIBE \"a234567890123456789012345678901234567890123456789012345678901234\"",
     LM_ELIMIT, 1, 10, "identifier is longer than 63 characters"},
    {"SELECT * FROM f WHERE x < 1e+", LM_ESYNTAX, 1, 27, "malformed number '1e+'"},
    {"SELECT * FROM f WHERE x < 12abc", LM_ESYNTAX, 1, 27, "malformed number '12abc'"},
    {"SELECT * FROM f WHERE x < 1.2.3", LM_ESYNTAX, 1, 27, "malformed number '1.2.3'"},
    {"SELECT * FROM f WHERE x < 0x10", LM_ESYNTAX, 1, 27, "malformed number '0x10'"},
    {"SELECT * FROM f WHERE x < 1e999", LM_ESYNTAX, 1, 27, "number '1e999' is out of range"},
    {"SELECT * FROM f WHERE x < #", LM_ESYNTAX, 1, 27, "unexpected character '#'"},
    {"SELECT * FROM f WHERE x < 'a'", LM_ESYNTAX, 1, 27,
     "unexpected character \"'\" (LQL has no string literals; \"...\" quotes an identifier)"},
    {"SELECT * FROM f WHERE x ! 1", LM_ESYNTAX, 1, 25, "unexpected character '!'"},
    {"SELECT * FROM f WHERE x < .", LM_ESYNTAX, 1, 27, "unexpected character '.'"},
    {"SELECT * FROM f WHERE x < \x01", LM_ESYNTAX, 1, 27, "unexpected character '\\x01'"},
    {"SELECT * FROM f WHERE x < \xc3\xa9", LM_ESYNTAX, 1, 27, "unexpected character '\\xc3'"},
    /* statements */
    {"SELEC * FROM f", LM_ESYNTAX, 1, 1,
     "expected a statement (SELECT, INSERT, CREATE, DROP, SHOW, DESCRIBE, DELETE, UPDATE, "
     "RAYCAST, RADIANCE or EXPLAIN), found 'SELEC'; did you mean SELECT?"},
    {"(", LM_ESYNTAX, 1, 1,
     "expected a statement (SELECT, INSERT, CREATE, DROP, SHOW, DESCRIBE, DELETE, UPDATE, "
     "RAYCAST, RADIANCE or EXPLAIN), found '('"},
    {"EXPLAIN EXPLAIN SHOW FIELDS", LM_ESYNTAX, 1, 9,
     "expected a statement (SELECT, INSERT, CREATE, DROP, SHOW, DESCRIBE, DELETE, UPDATE, "
     "RAYCAST, RADIANCE or EXPLAIN) after EXPLAIN, found 'EXPLAIN'"},
    /* CREATE FIELD */
    {"CREATE f", LM_ESYNTAX, 1, 8, "expected FIELD after CREATE, found 'f'"},
    {"CREATE FIELD (VOXEL 1)", LM_ESYNTAX, 1, 14,
     "expected a field name after CREATE FIELD, found '('"},
    {"CREATE FIELD f VOXEL 1", LM_ESYNTAX, 1, 16,
     "expected '(' after the field name, found 'VOXEL'"},
    {"CREATE FIELD f ()", LM_ESYNTAX, 1, 17,
     "expected VOXEL, CHUNK or a column definition after '(', found ')'"},
    {"CREATE FIELD f (VOXL 1)", LM_ESYNTAX, 1, 22,
     "expected a column type (f32, i32 or u8) after the column name, found '1'; did you "
     "mean VOXEL?"},
    {"CREATE FIELD f (\"VOXL\" 1)", LM_ESYNTAX, 1, 24,
     "expected a column type (f32, i32 or u8) after the column name, found '1'"},
    {"CREATE FIELD f (VOXEL 1, CHUNKS 8)", LM_ESYNTAX, 1, 33,
     "expected a column type (f32, i32 or u8) after the column name, found '8'; did you "
     "mean CHUNK?"},
    {"CREATE FIELD f (VOXEL 1, 2)", LM_ESYNTAX, 1, 26,
     "expected VOXEL, CHUNK or a column definition after ',', found '2'"},
    {"CREATE FIELD f (VOXEL)", LM_ESYNTAX, 1, 22, "expected a number after VOXEL, found ')'"},
    {"CREATE FIELD f (VOXEL 1 CHUNK 8)", LM_ESYNTAX, 1, 25,
     "expected ',' or ')' after the voxel size, found 'CHUNK'"},
    {"CREATE FIELD f (VOXEL 1, VOXEL 2)", LM_ESYNTAX, 1, 26,
     "duplicate VOXEL in the field definition"},
    {"CREATE FIELD f (VOXEL 1, CHUNK 8, CHUNK 8)", LM_ESYNTAX, 1, 35,
     "duplicate CHUNK in the field definition"},
    {"CREATE FIELD f (VOXEL 1, CHUNK 8.5)", LM_ESYNTAX, 1, 32,
     "expected a non-negative integer after CHUNK, found '8.5'"},
    {"CREATE FIELD f (VOXEL 1, CHUNK -8)", LM_ESYNTAX, 1, 32,
     "expected a non-negative integer after CHUNK, found '-'"},
    {"CREATE FIELD f (VOXEL 1, a f23)", LM_ESYNTAX, 1, 28,
     "expected a column type (f32, i32 or u8) after the column name, found 'f23'; did you "
     "mean f32?"},
    {"CREATE FIELD f (VOXEL 1, a f64)", LM_ESYNTAX, 1, 28,
     "expected a column type (f32, i32 or u8) after the column name, found 'f64'"},
    {"CREATE FIELD f (VOXEL 1, a f32 b)", LM_ESYNTAX, 1, 32,
     "expected ',' or ')' after the column definition, found 'b'"},
    {"CREATE FIELD f (CHUNK 8, a u8)", LM_ESYNTAX, 1, 30,
     "expected VOXEL <size> in the field definition, found ')'"},
    {"CREATE FIELD f (VOXEL 1", LM_ESYNTAX, 1, 24,
     "expected ',' or ')' after the voxel size, found end of input"},
    {"CREATE FIELD f (VOXEL 1) x", LM_ESYNTAX, 1, 26,
     "expected ';' or end of input after the field definition, found 'x'"},
    /* DROP, SHOW, DESCRIBE */
    {"DROP f", LM_ESYNTAX, 1, 6, "expected FIELD after DROP, found 'f'"},
    {"DROP FIELD", LM_ESYNTAX, 1, 11, "expected a field name after DROP FIELD, found end of input"},
    {"SHOW FIELD", LM_ESYNTAX, 1, 6, "expected FIELDS after SHOW, found 'FIELD'"},
    {"SHOW FIELDS f", LM_ESYNTAX, 1, 13, "expected ';' or end of input after SHOW FIELDS, found 'f'"},
    {"SHOW FIELDS \"\xc3\xa9\ttab\"", LM_ESYNTAX, 1, 13,
     "expected ';' or end of input after SHOW FIELDS, found '\"\\xc3\\xa9\\x09tab\"'"},
    {"SHOW FIELDS abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz", LM_ESYNTAX, 1, 13,
     "expected ';' or end of input after SHOW FIELDS, found "
     "'abcdefghijklmnopqrstuvwxyzabcdefghijklmn...'"},
    {"DESCRIBE 1", LM_ESYNTAX, 1, 10, "expected a field name after DESCRIBE, found '1'"},
    {"DESCRIBE FROM", LM_ESYNTAX, 1, 10,
     "expected a field name after DESCRIBE, found 'FROM' (FROM is a keyword; write \"FROM\" "
     "to use it as a name)"},
    /* INSERT */
    {"INSERT f VALUES (1)", LM_ESYNTAX, 1, 8, "expected INTO after INSERT, found 'f'"},
    {"INSERT INTO VALUES (1)", LM_ESYNTAX, 1, 13,
     "expected a field name after INSERT INTO, found 'VALUES' (VALUES is a keyword; write "
     "\"VALUES\" to use it as a name)"},
    {"INSERT INTO f (1)", LM_ESYNTAX, 1, 16, "expected a column name after '(', found '1'"},
    {"INSERT INTO f (x,)", LM_ESYNTAX, 1, 18, "expected a column name after ',', found ')'"},
    {"INSERT INTO f (x y)", LM_ESYNTAX, 1, 18,
     "expected ',' or ')' after the column name, found 'y'"},
    {"INSERT INTO f (x) (1)", LM_ESYNTAX, 1, 19,
     "expected VALUES after the column list, found '('"},
    {"INSERT INTO f VALUE (1)", LM_ESYNTAX, 1, 15,
     "expected '(' or VALUES after the field name, found 'VALUE'"},
    {"INSERT INTO f VALUES 1", LM_ESYNTAX, 1, 22, "expected '(' after VALUES, found '1'"},
    {"INSERT INTO f VALUES ()", LM_ESYNTAX, 1, 23, "expected a number after '(', found ')'"},
    {"INSERT INTO f VALUES (1,)", LM_ESYNTAX, 1, 25, "expected a number after ',', found ')'"},
    {"INSERT INTO f VALUES (1 2)", LM_ESYNTAX, 1, 25,
     "expected ',' or ')' after the value, found '2'"},
    {"INSERT INTO f VALUES (-x)", LM_ESYNTAX, 1, 24, "expected a number after '-', found 'x'"},
    {"INSERT INTO f VALUES (1), 2", LM_ESYNTAX, 1, 27, "expected '(' after ',', found '2'"},
    {"INSERT INTO f VALUES (1, 2), (3)", LM_ESYNTAX, 1, 30,
     "row 2 has 1 value but row 1 has 2"},
    {"INSERT INTO f (x, y) VALUES (1, 2, 3)", LM_ESYNTAX, 1, 29,
     "row 1 has 3 values but the column list names 2"},
    {"INSERT INTO f VALUES (1) (2)", LM_ESYNTAX, 1, 26,
     "expected ',', ';' or end of input after the row, found '('"},
    /* SELECT list and FROM */
    {"SELECT FROM f", LM_ESYNTAX, 1, 8,
     "expected '*', a column or an aggregate after SELECT, found 'FROM'"},
    {"SELECT x, FROM f", LM_ESYNTAX, 1, 11,
     "expected '*', a column or an aggregate after ',', found 'FROM'"},
    {"SELECT x FORM f", LM_ESYNTAX, 1, 10, "expected FROM after select list, found 'FORM'"},
    {"SELECT *, x FROM f", LM_ESYNTAX, 1, 9, "expected FROM after select list, found ','"},
    {"SELECT median(x) FROM f", LM_ESYNTAX, 1, 8,
     "unknown function 'median' (aggregates are count, sum, avg, min and max)"},
    {"SELECT count() FROM f", LM_ESYNTAX, 1, 14,
     "expected '*' or a column name after 'count(', found ')'"},
    {"SELECT sum(*) FROM f", LM_ESYNTAX, 1, 12,
     "expected a column name after 'sum(', found '*'"},
    {"SELECT avg(x FROM f", LM_ESYNTAX, 1, 14,
     "expected ')' after the aggregated column, found 'FROM'"},
    {"SELECT x AS FROM f", LM_ESYNTAX, 1, 13,
     "expected an alias after AS, found 'FROM' (FROM is a keyword; write \"FROM\" to use it "
     "as a name)"},
    {"SELECT * FROM", LM_ESYNTAX, 1, 14, "expected a field name after FROM, found end of input"},
    {"SELECT * FROM box", LM_ESYNTAX, 1, 15,
     "expected a field name after FROM, found 'box' (BOX is a keyword; write \"box\" to use "
     "it as a name)"},
    /* SELECT clauses */
    {"SELECT * FROM f WHER x < 1", LM_ESYNTAX, 1, 17,
     "expected NEAREST, WHERE, GROUP BY, ORDER BY, LIMIT, ';' or end of input after FROM "
     "clause, found 'WHER'; did you mean WHERE?"},
    {"SELECT * FROM f NEAREST 2.5 TO (0, 0, 0)", LM_ESYNTAX, 1, 25,
     "expected a non-negative integer after NEAREST, found '2.5'"},
    {"SELECT * FROM f NEAREST 2 (0, 0, 0)", LM_ESYNTAX, 1, 27,
     "expected TO after the neighbour count, found '('"},
    {"SELECT * FROM f NEAREST 2 TO 0", LM_ESYNTAX, 1, 30,
     "expected a point (x, y, z) after TO, found '0'"},
    {"SELECT * FROM f NEAREST 2 TO (0, 0, 0) LIMT 3", LM_ESYNTAX, 1, 40,
     "expected WHERE, GROUP BY, ORDER BY, LIMIT, ';' or end of input after NEAREST clause, "
     "found 'LIMT'; did you mean LIMIT?"},
    {"SELECT * FROM f WHERE x < 1 ORDER x", LM_ESYNTAX, 1, 35,
     "expected BY after ORDER, found 'x'"},
    {"SELECT * FROM f WHERE x < 1 GROUPS BY VOXEL", LM_ESYNTAX, 1, 29,
     "expected AND, OR, GROUP BY, ORDER BY, LIMIT, ';' or end of input after WHERE clause, "
     "found 'GROUPS'; did you mean GROUP BY?"},
    {"SELECT * FROM f GROUP VOXEL", LM_ESYNTAX, 1, 23, "expected BY after GROUP, found 'VOXEL'"},
    {"SELECT * FROM f GROUP BY VOXELS", LM_ESYNTAX, 1, 26,
     "expected VOXEL, CHUNK or LOD after GROUP BY, found 'VOXELS'; did you mean VOXEL?"},
    {"SELECT * FROM f GROUP BY LOD", LM_ESYNTAX, 1, 29,
     "expected a non-negative integer after LOD, found end of input"},
    {"SELECT * FROM f GROUP BY VOXEL WHERE x < 1", LM_ESYNTAX, 1, 32,
     "expected ORDER BY, LIMIT, ';' or end of input after GROUP BY clause, found 'WHERE'"},
    {"SELECT * FROM f ORDER BY 1", LM_ESYNTAX, 1, 26,
     "expected a column name after ORDER BY, found '1'"},
    {"SELECT * FROM f ORDER BY x, DESC", LM_ESYNTAX, 1, 29,
     "expected a column name after ',', found 'DESC' (DESC is a keyword; write \"DESC\" to "
     "use it as a name)"},
    {"SELECT * FROM f ORDER BY x DSC", LM_ESYNTAX, 1, 28,
     "expected ASC, DESC, ',', LIMIT, ';' or end of input after ORDER BY clause, found "
     "'DSC'; did you mean DESC?"},
    {"SELECT * FROM f ORDER BY x DESC ASC", LM_ESYNTAX, 1, 33,
     "expected ',', LIMIT, ';' or end of input after ORDER BY clause, found 'ASC'"},
    {"SELECT * FROM f LIMIT -1", LM_ESYNTAX, 1, 23,
     "expected a non-negative integer after LIMIT, found '-'"},
    {"SELECT * FROM f LIMIT 1e20", LM_ESYNTAX, 1, 23,
     "expected a non-negative integer after LIMIT, found '1e20'"},
    {"SELECT * FROM f LIMIT 5 WHERE x < 1", LM_ESYNTAX, 1, 25,
     "expected ';' or end of input after LIMIT clause, found 'WHERE'"},
    /* expressions */
    {"SELECT * FROM f WHERE", LM_ESYNTAX, 1, 22,
     "expected a condition after WHERE, found end of input"},
    {"SELECT * FROM f WHERE x < 1 AND", LM_ESYNTAX, 1, 32,
     "expected a condition after AND, found end of input"},
    {"SELECT * FROM f WHERE x < 1 OR 2", LM_ESYNTAX, 1, 32,
     "expected a condition after OR, found '2'"},
    {"SELECT * FROM f WHERE NOT )", LM_ESYNTAX, 1, 27,
     "expected a condition after NOT, found ')'"},
    {"SELECT * FROM f WHERE ()", LM_ESYNTAX, 1, 24, "expected a condition after '(', found ')'"},
    {"SELECT * FROM f WHERE (x < 1", LM_ESYNTAX, 1, 29,
     "expected ')' after expression (to close '(' at 1:23), found end of input"},
    {"SELECT * FROM f WHERE x < 1)", LM_ESYNTAX, 1, 28,
     "expected AND, OR, GROUP BY, ORDER BY, LIMIT, ';' or end of input after WHERE clause, "
     "found ')'"},
    {"SELECT * FROM f WHERE x", LM_ESYNTAX, 1, 24,
     "expected a comparison operator or BETWEEN after column 'x', found end of input"},
    {"SELECT * FROM f WHERE INSDE BOX (0,0,0) TO (1,1,1)", LM_ESYNTAX, 1, 29,
     "expected a comparison operator or BETWEEN after column 'INSDE', found 'BOX'; did you "
     "mean INSIDE?"},
    {"SELECT * FROM f WHERE x <= y", LM_ESYNTAX, 1, 28, "expected a number after '<=', found 'y'"},
    {"SELECT * FROM f WHERE x BETWEEN 1 OR 2", LM_ESYNTAX, 1, 35,
     "expected AND after the lower bound of BETWEEN, found 'OR'"},
    {"SELECT * FROM f WHERE x BETWEEN 1 AND", LM_ESYNTAX, 1, 38,
     "expected a number after AND, found end of input"},
    {"SELECT * FROM f WHERE INSIDE (0,0,0) TO (1,1,1)", LM_ESYNTAX, 1, 30,
     "expected BOX after INSIDE, found '('"},
    {"SELECT * FROM f WHERE INSIDE BOX (0,0,0) (1,1,1)", LM_ESYNTAX, 1, 42,
     "expected TO after the first corner of the box, found '('"},
    {"SELECT * FROM f WHERE INSIDE BOX (0 0,0)", LM_ESYNTAX, 1, 37,
     "expected ',' after the first coordinate, found '0'"},
    {"SELECT * FROM f WHERE INSIDE BOX (0,0 0)", LM_ESYNTAX, 1, 39,
     "expected ',' after the second coordinate, found '0'"},
    {"SELECT * FROM f WHERE INSIDE BOX (0,0,0,0)", LM_ESYNTAX, 1, 40,
     "expected ')' after the third coordinate, found ','"},
    {"SELECT * FROM f WHERE INSIDE BOX (0,,0)", LM_ESYNTAX, 1, 37,
     "expected a number after ',', found ','"},
    {"SELECT * FROM f WHERE INSIDE BOX (0,0,0) TO", LM_ESYNTAX, 1, 44,
     "expected a point (x, y, z) after TO, found end of input"},
    {"SELECT * FROM f WHERE WITHIN (0,0,0)", LM_ESYNTAX, 1, 30,
     "expected a number after WITHIN, found '('"},
    {"SELECT * FROM f WHERE WITHIN 1 (0,0,0)", LM_ESYNTAX, 1, 32,
     "expected OF after the radius, found '('"},
    {"SELECT * FROM f WHERE IN (EYE (0,0,0))", LM_ESYNTAX, 1, 26,
     "expected FRUSTUM after IN, found '('"},
    {"SELECT * FROM f WHERE IN FRUSTUM EYE", LM_ESYNTAX, 1, 34,
     "expected '(' after FRUSTUM, found 'EYE'"},
    {"SELECT * FROM f WHERE IN FRUSTUM ((0,0,0))", LM_ESYNTAX, 1, 35,
     "expected EYE after '(', found '('"},
    {"SELECT * FROM f WHERE IN FRUSTUM (EYE (0,0,0) TARGET (0,0,1))", LM_ESYNTAX, 1, 47,
     "expected ',' after the eye point, found 'TARGET'"},
    {"SELECT * FROM f WHERE IN FRUSTUM (EYE (0,0,0), TARGET (0,0,1), UP (0,1,0), 60)",
     LM_ESYNTAX, 1, 76, "expected FOV after ',', found '60'"},
    {"SELECT * FROM f WHERE IN FRUSTUM (EYE (0,0,0), TARGET (0,0,1), UP (0,1,0), FOV 60, "
     "ASPECT 1, NEAR 1, FAR 9", LM_ESYNTAX, 1, 107,
     "expected ')' after the far distance, found end of input"},
    /* RAYCAST, RADIANCE */
    {"RAYCAST FROM (0,0,0) DIR (0,0,1)", LM_ESYNTAX, 1, 9,
     "expected a field name after RAYCAST, found 'FROM' (FROM is a keyword; write \"FROM\" "
     "to use it as a name)"},
    {"RAYCAST f (0,0,0) DIR (0,0,1)", LM_ESYNTAX, 1, 11,
     "expected FROM after the field name, found '('"},
    {"RAYCAST f FROM (0,0,0) (0,0,1)", LM_ESYNTAX, 1, 24,
     "expected DIR after the ray origin, found '('"},
    {"RAYCAST f FROM (0,0,0) DIR (0,0,1) MAX", LM_ESYNTAX, 1, 39,
     "expected a number after MAX, found end of input"},
    {"RAYCAST f FROM (0,0,0) DIR (0,0,1) RETURN FRIST", LM_ESYNTAX, 1, 43,
     "expected FIRST or ALL after RETURN, found 'FRIST'; did you mean FIRST?"},
    {"RAYCAST f FROM (0,0,0) DIR (0,0,1) MAXX 5", LM_ESYNTAX, 1, 36,
     "expected MAX, RETURN, ';' or end of input after the ray direction, found 'MAXX'; did "
     "you mean MAX?"},
    {"RAYCAST f FROM (0,0,0) DIR (0,0,1) MAX 5 MAX 6", LM_ESYNTAX, 1, 42,
     "expected RETURN, ';' or end of input after MAX distance, found 'MAX'"},
    {"RAYCAST f FROM (0,0,0) DIR (0,0,1) RETURN ALL ALL", LM_ESYNTAX, 1, 47,
     "expected ';' or end of input after RETURN clause, found 'ALL'"},
    {"RADIANCE f (0,0,0) TOWARD (0,0,1)", LM_ESYNTAX, 1, 12,
     "expected AT after the field name, found '('"},
    {"RADIANCE f AT (0,0,0) DIR (0,0,1)", LM_ESYNTAX, 1, 23,
     "expected TOWARD after the point, found 'DIR'"},
    {"RADIANCE f AT (0,0,0) TOWARD (0,0,1) x", LM_ESYNTAX, 1, 38,
     "expected ';' or end of input after the direction, found 'x'"},
    /* DELETE, UPDATE */
    {"DELETE f WHERE TRUE", LM_ESYNTAX, 1, 8, "expected FROM after DELETE, found 'f'"},
    {"DELETE FROM WHERE TRUE", LM_ESYNTAX, 1, 13,
     "expected a field name after DELETE FROM, found 'WHERE' (WHERE is a keyword; write "
     "\"WHERE\" to use it as a name)"},
    {"DELETE FROM f", LM_ESYNTAX, 1, 14,
     "expected WHERE after the field name, found end of input (write WHERE TRUE to delete "
     "every sample)"},
    {"DELETE FROM f WHERE TRUE x", LM_ESYNTAX, 1, 26,
     "expected AND, OR, ';' or end of input after WHERE clause, found 'x'"},
    {"UPDATE SET r = 1 WHERE TRUE", LM_ESYNTAX, 1, 8,
     "expected a field name after UPDATE, found 'SET' (SET is a keyword; write \"SET\" to "
     "use it as a name)"},
    {"UPDATE f r = 1 WHERE TRUE", LM_ESYNTAX, 1, 10, "expected SET after the field name, found 'r'"},
    {"UPDATE f SET = 1 WHERE TRUE", LM_ESYNTAX, 1, 14,
     "expected a column name after SET, found '='"},
    {"UPDATE f SET r 1 WHERE TRUE", LM_ESYNTAX, 1, 16,
     "expected '=' after the column name, found '1'"},
    {"UPDATE f SET r = WHERE TRUE", LM_ESYNTAX, 1, 18, "expected a number after '=', found 'WHERE'"},
    {"UPDATE f SET r = 1, WHERE TRUE", LM_ESYNTAX, 1, 21,
     "expected a column name after ',', found 'WHERE' (WHERE is a keyword; write \"WHERE\" to "
     "use it as a name)"},
    {"UPDATE f SET r = 1", LM_ESYNTAX, 1, 19,
     "expected ',' or WHERE after the assignment, found end of input (write WHERE TRUE to "
     "update every sample)"},
    /* positions on later lines */
    {"SELECT *\n  FROM f\n  WHERE x <\n\n", LM_ESYNTAX, 3, 12,
     "expected a number after '<', found end of input"},
    {"SELECT *\n\tFROM f WHERE\ty ==", LM_ESYNTAX, 2, 18, "expected a number after '=', found '='"},
};

static void every_syntax_error_has_position_and_message(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof error_cases / sizeof error_cases[0]; i++) {
        const struct error_case *c = &error_cases[i];
        struct lm_lql_stmt *s = NULL;
        struct lm_error err;
        memset(&err, 0, sizeof err);
        int rc = lm_lql_parse(c->text, strlen(c->text), &s, &err);
        if (rc != c->code || err.code != c->code || err.line != c->line ||
            err.column != c->column || strcmp(err.message, c->message) != 0)
            fail_msg("case %zu \"%s\":\n  got      %d %u:%u \"%s\"\n  expected %d %u:%u \"%s\"",
                     i, c->text, rc, err.line, err.column, err.message, c->code, c->line,
                     c->column, c->message);
        assert_null(s);
        /* Without an lm_error the code is the same. */
        assert_int_equal(lm_lql_parse(c->text, strlen(c->text), &s, NULL), c->code);
    }
}

static void nul_bytes_are_errors_not_terminators(void **state)
{
    (void)state;
    static const char quoted[] = "DESCRIBE \"a\0b\"";
    struct lm_lql_stmt *s = NULL;
    struct lm_error err;
    assert_int_equal(lm_lql_parse(quoted, sizeof quoted - 1, &s, &err), LM_ESYNTAX);
    assert_string_equal(err.message, "quoted identifier holds a NUL byte");
    assert_pos(err, 1, 12);
    static const char bare[] = "SHOW FIELDS\0";
    assert_int_equal(lm_lql_parse(bare, sizeof bare - 1, &s, &err), LM_ESYNTAX);
    assert_string_equal(err.message, "unexpected character '\\x00'");
    assert_pos(err, 1, 12);
    assert_null(s);
}

static void limits_on_length_and_nesting(void **state)
{
    (void)state;
    char text[2048];
    struct lm_lql_stmt *s = NULL;
    struct lm_error err;

    /* 63-character names are fine. */
    snprintf(text, sizeof text, "DESCRIBE %063d", 0);
    text[9] = 'a';
    s = parse_ok(text);
    assert_int_equal(strlen(s->field.text), 63);
    lm_lql_free(s);

    /* A 256-character number is fine, 257 is not. */
    int n = snprintf(text, sizeof text, "SELECT * FROM f LIMIT ");
    memset(text + n, '0', 255);
    strcpy(text + n + 255, "7");
    s = parse_ok(text);
    assert_literal(&s->select.limit, 7);
    lm_lql_free(s);
    memset(text + n, '0', 256);
    strcpy(text + n + 256, "7");
    assert_int_equal(lm_lql_parse(text, strlen(text), &s, &err), LM_ELIMIT);
    assert_string_equal(err.message, "number is longer than 256 characters");
    assert_pos(err, 1, 23);

    /* LM_LQL_MAX_DEPTH levels of NOT and parentheses, and no more. */
    for (int depth = LM_LQL_MAX_DEPTH; depth <= LM_LQL_MAX_DEPTH + 1; depth++) {
        size_t o = (size_t)snprintf(text, sizeof text, "SELECT * FROM f WHERE ");
        for (int i = 0; i < depth; i++)
            o += (size_t)snprintf(text + o, sizeof text - o, i % 2 ? "NOT " : "(");
        o += (size_t)snprintf(text + o, sizeof text - o, "x < 1");
        for (int i = 0; i < depth; i++)
            if (i % 2 == 0)
                o += (size_t)snprintf(text + o, sizeof text - o, ")");
        int rc = lm_lql_parse(text, o, &s, &err);
        if (depth == LM_LQL_MAX_DEPTH) {
            assert_int_equal(rc, 0);
            lm_lql_free(s);
        } else {
            assert_int_equal(rc, LM_ELIMIT);
            assert_string_equal(err.message, "expression nested more than 64 levels deep");
            /* at the 65th level: after 32 "(" and 32 "NOT " */
            assert_pos(err, 1, 23 + 32 * 1 + 32 * 4);
        }
    }

    /* Long AND chains are flat, so they cost no depth. */
    size_t o = (size_t)snprintf(text, sizeof text, "SELECT * FROM f WHERE x = 0");
    for (int i = 1; i < 150; i++)
        o += (size_t)snprintf(text + o, sizeof text - o, " AND x = %d", i);
    s = parse_ok(text);
    assert_int_equal(s->select.where->list.n, 150);
    lm_lql_free(s);
}

/* ---------------------------------------------------------------- rendering */

static void format_error_draws_a_caret_under_the_column(void **state)
{
    (void)state;
    const char *text = "SELECT x\nFORM f";
    struct lm_lql_stmt *s;
    struct lm_error err;
    char buf[256];
    assert_int_equal(lm_lql_parse(text, strlen(text), &s, &err), LM_ESYNTAX);
    size_t n = lm_lql_format_error(text, &err, buf, sizeof buf);
    const char *want = "2:1: expected FROM after select list, found 'FORM'\n"
                       "FORM f\n"
                       "^";
    assert_string_equal(buf, want);
    assert_int_equal(n, strlen(want));

    /* Tabs are copied so the caret lines up; CR is dropped; UTF-8 counts once. */
    text = "SELECT *\r\n\tFROM f /* \xc3\xa9 */ WHER x\r\n";
    assert_int_equal(lm_lql_parse(text, strlen(text), &s, &err), LM_ESYNTAX);
    assert_pos(err, 2, 17);
    lm_lql_format_error(text, &err, buf, sizeof buf);
    assert_string_equal(buf, "2:17: expected NEAREST, WHERE, GROUP BY, ORDER BY, LIMIT, ';' "
                             "or end of input after FROM clause, found 'WHER'; did you mean "
                             "WHERE?\n"
                             "\tFROM f /* \xc3\xa9 */ WHER x\n"
                             "\t               ^");

    /* End of input: the caret sits just past the last token. */
    text = "SELECT * FROM\n\n";
    assert_int_equal(lm_lql_parse(text, strlen(text), &s, &err), LM_ESYNTAX);
    lm_lql_format_error(text, &err, buf, sizeof buf);
    assert_string_equal(buf, "1:14: expected a field name after FROM, found end of input\n"
                             "SELECT * FROM\n"
                             "             ^");

    /* Truncation: the full length is returned, the buffer holds what fits. */
    text = "SELECT x FORM f";
    assert_int_equal(lm_lql_parse(text, strlen(text), &s, &err), LM_ESYNTAX);
    n = lm_lql_format_error(text, &err, NULL, 0);
    assert_int_equal(n, strlen("1:10: expected FROM after select list, found 'FORM'\n"
                               "SELECT x FORM f\n"
                               "         ^"));
    char small[8];
    assert_int_equal(lm_lql_format_error(text, &err, small, sizeof small), n);
    assert_string_equal(small, "1:10: e");

    /* No text, or no position: the first line only; no error: empty. */
    lm_lql_format_error(NULL, &err, buf, sizeof buf);
    assert_string_equal(buf, "1:10: expected FROM after select list, found 'FORM'");
    struct lm_error plain = {.code = LM_EBADARG, .message = "no statement"};
    lm_lql_format_error(text, &plain, buf, sizeof buf);
    assert_string_equal(buf, "no statement");
    assert_int_equal(lm_lql_format_error(text, NULL, buf, sizeof buf), 0);
    assert_string_equal(buf, "");
    /* A column far past the end of its line: the caret just after the line. */
    err.column = 4000000000u;
    lm_lql_format_error(text, &err, buf, sizeof buf);
    assert_string_equal(buf, "1:4000000000: expected FROM after select list, found 'FORM'\n"
                             "SELECT x FORM f\n"
                             "               ^");
    /* A line past the end of the text: the message alone. */
    err.line = 9;
    lm_lql_format_error(text, &err, buf, sizeof buf);
    assert_string_equal(buf, "9:4000000000: expected FROM after select list, found 'FORM'");
}

static void suggest_finds_the_nearest_close_name(void **state)
{
    (void)state;
    static const char *const cols[] = {"x", "y", "z", "dx", "dy", "dz", "r", "g", "b",
                                       "intensity", "t", "label", NULL, "Weight"};
    const size_t n = sizeof cols / sizeof cols[0];
    assert_string_equal(lm_lql_suggest("intensty", cols, n), "intensity");
    assert_string_equal(lm_lql_suggest("INTENSITY", cols, n), "intensity");
    assert_string_equal(lm_lql_suggest("lable", cols, n), "label"); /* a swap is one edit */
    assert_string_equal(lm_lql_suggest("wieght", cols, n), "Weight");
    assert_string_equal(lm_lql_suggest("labels", cols, n), "label");
    assert_null(lm_lql_suggest("w", cols, n));       /* one edit in one letter is too far */
    assert_string_equal(lm_lql_suggest("dxx", cols, n), "dx");
    assert_null(lm_lql_suggest("abc", cols, n));
    assert_null(lm_lql_suggest("colour", cols, n));
    assert_null(lm_lql_suggest("intensity", cols, 0));
    assert_null(lm_lql_suggest(NULL, cols, n));
    assert_null(lm_lql_suggest("x", NULL, 3));
    static const char *const kws[] = {"FROM", "FORM"};
    assert_string_equal(lm_lql_suggest("FROM", kws, 2), "FROM");
    assert_string_equal(lm_lql_suggest("FRMO", kws, 2), "FROM"); /* ties: the earlier */
    static const char *const dirs[] = {"ASC", "DESC"};
    assert_string_equal(lm_lql_suggest("dsc", dirs, 2), "DESC"); /* same first letter */
}

static void keywords_are_sorted_upper_case_and_complete(void **state)
{
    (void)state;
    size_t n = 0;
    const char *const *kw = lm_lql_keywords(&n);
    assert_true(n > 50);
    assert_null(kw[n]);
    for (size_t i = 0; i < n; i++) {
        for (const char *c = kw[i]; *c; c++)
            assert_true((*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9'));
        if (i)
            assert_true(strcmp(kw[i - 1], kw[i]) < 0);
    }
    static const char *const want[] = {"SELECT", "FROM", "WHERE", "NEAREST", "RAYCAST",
                                       "RADIANCE", "FRUSTUM", "COUNT", "AVG", "EYE", "F32",
                                       "EXPLAIN", "TRUE", "LOD", "TOWARD"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        bool found = false;
        for (size_t j = 0; j < n; j++)
            found |= strcmp(kw[j], want[i]) == 0;
        if (!found)
            fail_msg("keyword %s missing", want[i]);
    }
    assert_ptr_equal(lm_lql_keywords(NULL), kw);
}

static void kind_names_read_like_the_statements(void **state)
{
    (void)state;
    assert_string_equal(lm_lql_kind_name(LM_LQL_CREATE_FIELD), "CREATE FIELD");
    assert_string_equal(lm_lql_kind_name(LM_LQL_SHOW_FIELDS), "SHOW FIELDS");
    assert_string_equal(lm_lql_kind_name(LM_LQL_EXPLAIN), "EXPLAIN");
    assert_string_equal(lm_lql_kind_name((enum lm_lql_kind)0), "?");
    static const char *const names[] = {"CREATE FIELD", "DROP FIELD", "SHOW FIELDS",
                                        "DESCRIBE", "INSERT", "SELECT", "RAYCAST",
                                        "RADIANCE", "DELETE", "UPDATE", "EXPLAIN"};
    for (int k = LM_LQL_CREATE_FIELD; k <= LM_LQL_EXPLAIN; k++)
        assert_string_equal(lm_lql_kind_name((enum lm_lql_kind)k), names[k - 1]);
}

static void format_stmt_writes_canonical_lql(void **state)
{
    (void)state;
    canonical("create field \"My Field\" (chunk 16, a f32, voxel .25, \"b\"\"c\" u8, \"select\" i32)",
              "CREATE FIELD \"My Field\" (VOXEL 0.25, CHUNK 16, a f32, \"b\"\"c\" u8, "
              "\"select\" i32)");
    canonical("drop field f", "DROP FIELD f");
    canonical("show fields;", "SHOW FIELDS");
    canonical("describe f", "DESCRIBE f");
    canonical("insert into f values (1,2,3),(4,5,-?)",
              "INSERT INTO f VALUES (1, 2, 3), (4, 5, -?)");
    canonical("insert into f (x, y) values (0.1, 1e-3)",
              "INSERT INTO f (x, y) VALUES (0.1, 0.001)");
    canonical("select count(*) as n, avg(r), x from f nearest 3 to (0,0,0) where not (x<1 or "
              "y>2) and z between 1 and 2 group by lod 2 order by n desc, x asc limit ?",
              "SELECT count(*) AS n, avg(r), x FROM f NEAREST 3 TO (0, 0, 0) WHERE NOT (x < 1 "
              "OR y > 2) AND z BETWEEN 1 AND 2 GROUP BY LOD 2 ORDER BY n DESC, x LIMIT ?");
    canonical("select * from f where (a=1 and b=2) and c=3 or (d<>4 or e>=5)",
              "SELECT * FROM f WHERE (a = 1 AND b = 2) AND c = 3 OR (d != 4 OR e >= 5)");
    canonical("select * from f where inside box (0,0,0) to (1,1,1) and within 2 of (1,2,3) "
              "and in frustum (eye (0,0,1), target (0,0,0), up (0,1,0), fov 60, aspect 1, "
              "near 0.5, far 9) or true group by chunk",
              "SELECT * FROM f WHERE INSIDE BOX (0, 0, 0) TO (1, 1, 1) AND WITHIN 2 OF (1, 2, "
              "3) AND IN FRUSTUM (EYE (0, 0, 1), TARGET (0, 0, 0), UP (0, 1, 0), FOV 60, "
              "ASPECT 1, NEAR 0.5, FAR 9) OR TRUE GROUP BY CHUNK");
    canonical("raycast f from (0,0,0) dir (0,0,1) max 1e300 return all",
              "RAYCAST f FROM (0, 0, 0) DIR (0, 0, 1) MAX 1e+300 RETURN ALL");
    canonical("raycast f from (0,0,0) dir (0,0,1) return first",
              "RAYCAST f FROM (0, 0, 0) DIR (0, 0, 1)");
    canonical("radiance f at (1,2,3) toward (0,0,-1)",
              "RADIANCE f AT (1, 2, 3) TOWARD (0, 0, -1)");
    canonical("delete from f where true", "DELETE FROM f WHERE TRUE");
    canonical("update f set r = 1, g = -0.5 where x < ?",
              "UPDATE f SET r = 1, g = -0.5 WHERE x < ?");
    canonical("explain select count as first from f group by voxel",
              "EXPLAIN SELECT count AS first FROM f GROUP BY VOXEL");
    canonical("select * from f where x = 0.30000000000000004 and y = -0",
              "SELECT * FROM f WHERE x = 0.30000000000000004 AND y = -0");

    struct lm_lql_stmt *s = parse_ok("SHOW FIELDS");
    char small[5];
    assert_int_equal(lm_lql_format_stmt(s, small, sizeof small), 11);
    assert_string_equal(small, "SHOW");
    assert_int_equal(lm_lql_format_stmt(s, NULL, 0), 11);
    lm_lql_free(s);
    assert_int_equal(lm_lql_format_stmt(NULL, small, sizeof small), 0);
    assert_string_equal(small, "");
}

/* ---------------------------------------------------------------- memory */

static long allocations_left = -1;

static _Bool fail_after(size_t n)
{
    (void)n;
    if (allocations_left < 0)
        return 1;
    return allocations_left-- > 0;
}

/* Parses text with the k-th allocation failing, for k = 0, 1, ... until it succeeds:
 * every failure must be -ENOMEM with nothing leaked. */
static void parse_failing_each_allocation(const char *text)
{
    bool succeeded = false;
    for (long k = 0; !succeeded && k < 1000; k++) {
        struct lm_lql_stmt *s = NULL;
        struct lm_error err;
        allocations_left = k;
        lm_alloc_set_hook(fail_after);
        int rc = lm_lql_parse(text, strlen(text), &s, &err);
        lm_alloc_set_hook(NULL);
        if (rc == 0) {
            succeeded = true;
            assert_true(allocations_left >= 0); /* no allocation failed */
            lm_lql_free(s);
        } else {
            assert_int_equal(rc, -ENOMEM);
            assert_string_equal(err.message, "out of memory");
            assert_null(s);
        }
    }
    allocations_left = -1;
    assert_true(succeeded);
}

static void out_of_memory_fails_cleanly_at_every_allocation(void **state)
{
    (void)state;
    static const char *const texts[] = {
        "SHOW FIELDS",
        "CREATE FIELD f (VOXEL 1, a f32, b i32, c u8, d f32, e f32, g f32)",
        "INSERT INTO f (x, y, z) VALUES (1,2,3),(4,5,6),(7,8,9),(1,2,3),(4,5,?)",
        ("SELECT count(*), sum(x) AS s, a, b, c, d FROM f WHERE (x < 1 OR y < 2) AND NOT z = 3 "
         "AND a = 1 AND b = 2 AND c = 3 AND d = ? ORDER BY a, b, c, d, e LIMIT ?"),
        "EXPLAIN UPDATE f SET a = 1, b = 2, c = 3, d = 4, e = ? WHERE TRUE",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        parse_failing_each_allocation(texts[i]);
}

/* A big INSERT grows its arrays many times, past the size where they move to blocks of
 * their own; the tree is still exact, and running out of memory there is clean too. */
static void large_insert_keeps_every_value(void **state)
{
    (void)state;
    enum { ROWS = 3000 };
    size_t cap = ROWS * 40 + 64, o = 0;
    char *text = lm_alloc(cap);
    assert_non_null(text);
    o += (size_t)snprintf(text + o, cap - o, "INSERT INTO f VALUES ");
    for (int r = 0; r < ROWS; r++)
        o += (size_t)snprintf(text + o, cap - o, "%s(%d, %d.5, -%d)", r ? ", " : "", r, r, r);
    struct lm_lql_stmt *s = parse_ok(text);
    assert_int_equal(s->insert.n_rows, ROWS);
    assert_int_equal(s->insert.width, 3);
    for (int r = 0; r < ROWS; r++) {
        assert_literal(&s->insert.values[r * 3], r);
        assert_literal(&s->insert.values[r * 3 + 1], r + 0.5);
        assert_literal(&s->insert.values[r * 3 + 2], -r);
    }
    lm_lql_free(s);
    parse_failing_each_allocation(text);
    lm_free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(create_field_holds_voxel_chunk_and_typed_columns),
        cmocka_unit_test(drop_show_and_describe_name_their_field),
        cmocka_unit_test(insert_without_columns_keeps_rows_in_order),
        cmocka_unit_test(insert_with_columns_matches_rows_to_them),
        cmocka_unit_test(select_star_with_where_and_limit),
        cmocka_unit_test(select_aggregates_map_to_their_kinds),
        cmocka_unit_test(select_nearest_comes_after_from),
        cmocka_unit_test(select_group_by_voxel_chunk_or_lod),
        cmocka_unit_test(select_order_by_keeps_direction_per_column),
        cmocka_unit_test(spatial_predicates_hold_their_numbers),
        cmocka_unit_test(comparisons_map_to_lm_cmp),
        cmocka_unit_test(not_binds_tighter_than_and_tighter_than_or),
        cmocka_unit_test(raycast_defaults_to_first_without_max),
        cmocka_unit_test(radiance_holds_point_and_direction),
        cmocka_unit_test(delete_needs_where_and_accepts_where_true),
        cmocka_unit_test(update_sets_columns_where),
        cmocka_unit_test(explain_wraps_a_statement_and_shares_parameters),
        cmocka_unit_test(comments_quotes_and_case_are_handled),
        cmocka_unit_test(numbers_read_integers_decimals_and_exponents),
        cmocka_unit_test(numbers_read_as_strtod_reads_them),
        cmocka_unit_test(parameters_are_numbered_in_order_and_bound),
        cmocka_unit_test(parameters_reach_every_slot),
        cmocka_unit_test(parse_next_splits_a_script_and_keeps_positions),
        cmocka_unit_test(parse_next_skips_past_a_failed_statement),
        cmocka_unit_test(parse_takes_exactly_one_statement),
        cmocka_unit_test(complete_means_a_final_semicolon_outside_comments_and_quotes),
        cmocka_unit_test(every_syntax_error_has_position_and_message),
        cmocka_unit_test(nul_bytes_are_errors_not_terminators),
        cmocka_unit_test(limits_on_length_and_nesting),
        cmocka_unit_test(format_error_draws_a_caret_under_the_column),
        cmocka_unit_test(suggest_finds_the_nearest_close_name),
        cmocka_unit_test(keywords_are_sorted_upper_case_and_complete),
        cmocka_unit_test(kind_names_read_like_the_statements),
        cmocka_unit_test(format_stmt_writes_canonical_lql),
        cmocka_unit_test(out_of_memory_fails_cleanly_at_every_allocation),
        cmocka_unit_test(large_insert_keeps_every_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
