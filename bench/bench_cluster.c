/* bench_cluster.c - replicated ingest on 3 local `lumadb node` processes beside
 * single-node durable ingest, commit latency, failover time after a leader kill, and
 * catch-up time of a node 1M samples behind (by the log and by a snapshot).
 *
 * Usage: bench_cluster [--clients N] [--quick]. Data directories are on /dev/shm (as in
 * the tests: Raft cannot turn fsync off, so tmpfs keeps this about the software). Prints
 * markdown tables. Node processes run the lumadb binary built beside this program. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "db.h"
#include "cluster/harness.h"
#include "lumadb.h"

#define FIELD "ingest"

static int n_clients = 8;
static bool quick;

/* Columns of one batch: position, direction, colour, intensity (40 bytes a sample). */
struct cols {
    size_t n;
    float *x, *y, *z, *dx, *dy, *dz, *r, *g, *b, *in;
};

static void cols_fill(struct cols *c, size_t n, uint64_t seed)
{
    c->n = n;
    float **all[10] = {&c->x, &c->y, &c->z, &c->dx, &c->dy, &c->dz, &c->r, &c->g, &c->b,
                       &c->in};
    for (int k = 0; k < 10; k++)
        *all[k] = malloc(n * sizeof(float));
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        c->x[i] = bench_rngf(&s) * 200 - 100;
        c->y[i] = bench_rngf(&s) * 200 - 100;
        c->z[i] = bench_rngf(&s) * 20;
        c->dx[i] = 0;
        c->dy[i] = 0.6f;
        c->dz[i] = -0.8f;
        c->r[i] = bench_rngf(&s);
        c->g[i] = bench_rngf(&s);
        c->b[i] = bench_rngf(&s);
        c->in[i] = bench_rngf(&s) * 4;
    }
}

static void cols_free(struct cols *c)
{
    float *all[10] = {c->x, c->y, c->z, c->dx, c->dy, c->dz, c->r, c->g, c->b, c->in};
    for (int k = 0; k < 10; k++)
        free(all[k]);
}

static struct lm_batch cols_batch(const struct cols *c)
{
    return (struct lm_batch){.n = c->n, .x = c->x, .y = c->y, .z = c->z, .dx = c->dx,
                             .dy = c->dy, .dz = c->dz, .r = c->r, .g = c->g, .b = c->b,
                             .intensity = c->in};
}

static const struct lm_field_opts *schema(void)
{
    static const struct lm_field_opts fo = {.voxel_size = 0.5f, .chunk_edge = 32};
    return &fo;
}

/* ---------------------------------------------------------------- ingest runs */

struct run {
    struct cluster *cl;     /* NULL: single node */
    lm_db *db;
    size_t batch;
    int writes;             /* per client */
    double *lat;            /* per write, seconds */
    int failures;
};

struct client_arg {
    struct run *run;
    int index;
};

static void *client_main(void *arg)
{
    struct client_arg *a = arg;
    struct run *run = a->run;
    struct cols c;
    cols_fill(&c, run->batch, 1234 + (uint64_t)a->index);
    struct lm_batch b = cols_batch(&c);
    lm_repl_client *cli = NULL;
    if (run->cl) {
        struct lm_repl_client_opts o = {.nodes = run->cl->addrs, .n_nodes = 3};
        if (lm_repl_client_open(&o, &cli, NULL))
            return NULL;
    }
    for (int w = 0; w < run->writes; w++) {
        double t0 = bench_now();
        int rc = cli ? lm_repl_client_insert(cli, FIELD, &b, NULL, NULL, NULL)
                     : lm_insert(run->db, FIELD, &b, NULL, NULL);
        run->lat[a->index * run->writes + w] = bench_now() - t0;
        if (rc)
            __atomic_fetch_add(&run->failures, 1, __ATOMIC_RELAXED);
    }
    lm_repl_client_close(cli);
    cols_free(&c);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Runs n_clients threads writing `writes` batches each; fills samples/s, p50, p99. */
static void ingest(struct run *run, double *rate, double *p50, double *p99)
{
    int total = n_clients * run->writes;
    run->lat = calloc((size_t)total, sizeof *run->lat);
    pthread_t t[64];
    struct client_arg args[64];
    double t0 = bench_now();
    for (int i = 0; i < n_clients; i++) {
        args[i] = (struct client_arg){run, i};
        pthread_create(&t[i], NULL, client_main, &args[i]);
    }
    for (int i = 0; i < n_clients; i++)
        pthread_join(t[i], NULL);
    double dt = bench_now() - t0;
    qsort(run->lat, (size_t)total, sizeof *run->lat, cmp_double);
    *rate = (double)total * (double)run->batch / dt;
    *p50 = run->lat[total / 2];
    *p99 = run->lat[(int)(total * 0.99)];
    free(run->lat);
    if (run->failures)
        fprintf(stderr, "bench: %d writes failed\n", run->failures);
}

static int writes_for(size_t batch)
{
    int w = batch == 1 ? 2500 : batch == 100 ? 500 : 25;
    return quick ? w / 5 : w;
}

static void start_cluster(struct cluster *cl, const char *const *extra)
{
    cl_init(cl, 3, extra);
    cl_start_all(cl);
    if (cl_wait_leader(cl, 20, -1) < 0) {
        fprintf(stderr, "bench: no leader\n");
        exit(1);
    }
    struct lm_error e;
    if (lm_repl_client_create_field(cl->c, FIELD, schema(), &e)) {
        fprintf(stderr, "bench: %s\n", e.message);
        exit(1);
    }
}

static void bench_ingest(void)
{
    static const size_t sizes[3] = {1, 100, 10000};
    char cells[3][8][48];
    const char *cols[] = {"batch (samples)", "single node, group commit (samples/s)",
                          "single p50 / p99 (ms)", "3 nodes replicated (samples/s)",
                          "replicated commit p50 / p99 (ms)", NULL};
    for (int s = 0; s < 3; s++) {
        char dir[128];
        snprintf(dir, sizeof dir, "/dev/shm/lumadb-bench-XXXXXX");
        if (!mkdtemp(dir))
            exit(1);
        struct lm_db_opts o = {.create = true, .sync = LM_SYNC_GROUP};
        lm_db *db;
        lm_db_open(dir, &o, &db, NULL);
        lm_field_create(db, FIELD, schema(), NULL);
        struct run single = {.db = db, .batch = sizes[s], .writes = writes_for(sizes[s])};
        double r1, a1, b1;
        ingest(&single, &r1, &a1, &b1);
        lm_db_close(db);
        tmpdir_remove(dir);

        struct cluster cl;
        start_cluster(&cl, NULL);
        struct run repl = {.cl = &cl, .batch = sizes[s], .writes = writes_for(sizes[s])};
        double r3, a3, b3;
        ingest(&repl, &r3, &a3, &b3);
        cl_stop(&cl, true);
        snprintf(cells[s][0], 48, "%zu", sizes[s]);
        snprintf(cells[s][1], 48, "%.0f", r1);
        snprintf(cells[s][2], 48, "%.2f / %.2f", a1 * 1e3, b1 * 1e3);
        snprintf(cells[s][3], 48, "%.0f", r3);
        snprintf(cells[s][4], 48, "%.2f / %.2f", a3 * 1e3, b3 * 1e3);
        fprintf(stderr, "bench: batch %zu done\n", sizes[s]);
    }
    char title[128];
    snprintf(title, sizeof title, "Ingest, %d concurrent writers (tmpfs)", n_clients);
    bench_table_header(title, cols);
    for (int s = 0; s < 3; s++) {
        const char *row[] = {cells[s][0], cells[s][1], cells[s][2], cells[s][3], cells[s][4],
                             NULL};
        bench_table_row(row);
    }
}

/* ---------------------------------------------------------------- failover */

static void bench_failover(void)
{
    struct cluster cl;
    start_cluster(&cl, NULL);
    const char *cols[] = {"kill -9 of the leader", "new leader ready after (ms)", NULL};
    bench_table_header("Failover (election timeout 200 ms, heartbeat 20 ms)", cols);
    struct cols c;
    cols_fill(&c, 100, 7);
    struct lm_batch b = cols_batch(&c);
    for (int round = 0; round < (quick ? 2 : 5); round++) {
        for (int k = 0; k < 20; k++)
            lm_repl_client_insert(cl.c, FIELD, &b, NULL, NULL, NULL);
        int leader = cl_wait_leader(&cl, 10, -1);
        double t0 = bench_now();
        cl_signal(&cl, leader, SIGKILL);
        int next = cl_wait_leader(&cl, 10, leader);
        double ms = (bench_now() - t0) * 1e3;
        char a[32], m[32];
        snprintf(a, sizeof a, "%d (node %d)", round + 1, leader + 1);
        snprintf(m, sizeof m, next < 0 ? "none in 10 s" : "%.0f", ms);
        const char *row[] = {a, m, NULL};
        bench_table_row(row);
        cl_start(&cl, leader);
        char why[600];
        cl_wait_converged(&cl, 30, why, sizeof why);
    }
    cols_free(&c);
    cl_stop(&cl, true);
}

/* ---------------------------------------------------------------- catch-up */

static double catch_up(const char *const *extra, size_t samples, int64_t *restored)
{
    struct cluster cl;
    start_cluster(&cl, extra);
    int leader = cl_wait_leader(&cl, 10, -1);
    int behind = (leader + 1) % 3;
    cl_signal(&cl, behind, SIGKILL);
    struct cols c;
    cols_fill(&c, 10000, 99);
    struct lm_batch b = cols_batch(&c);
    for (size_t done = 0; done < samples; done += c.n)
        if (lm_repl_client_insert(cl.c, FIELD, &b, NULL, NULL, NULL))
            fprintf(stderr, "bench: a write failed\n");
    cols_free(&c);
    int64_t target = cl_status(&cl, cl_wait_leader(&cl, 10, -1), "commit_index");
    double t0 = bench_now();
    cl_start(&cl, behind);
    double took = -1;
    while (bench_now() - t0 < 120) {
        int64_t at = cl_status(&cl, behind, "db_index");
        if (at >= target && cl_status(&cl, behind, "backlog") == 0) {
            took = bench_now() - t0;
            break;
        }
        cl_sleep_ms(5);
    }
    *restored = cl_status(&cl, behind, "snapshots_restored");
    cl_stop(&cl, true);
    return took;
}

static void bench_catch_up(void)
{
    size_t samples = quick ? 200000 : 1000000;
    const char *cols[] = {"node behind by", "path", "time to apply everything after restart (s)",
                          NULL};
    bench_table_header("Catch-up of a restarted node (process start included)", cols);
    static const char *const by_snapshot[] = {"--snapshot-threshold", "16",
                                              "--snapshot-trailing", "4", NULL};
    int64_t restored;
    char n[32], s1[32], s2[32];
    snprintf(n, sizeof n, "%zu samples", samples);
    double log_s = catch_up(NULL, samples, &restored);
    snprintf(s1, sizeof s1, "%.2f", log_s);
    const char *row1[] = {n, "log (AppendEntries)", s1, NULL};
    bench_table_row(row1);
    double snap_s = catch_up(by_snapshot, samples, &restored);
    snprintf(s2, sizeof s2, "%.2f (%lld restored)", snap_s, (long long)restored);
    const char *row2[] = {n, "snapshot (InstallSnapshot)", s2, NULL};
    bench_table_row(row2);
}

/* ---------------------------------------------------------------- one record */

/* What one entry costs where it runs: the leader's check on the loop thread and the
 * apply on the apply thread (a loop blocked this long would delay heartbeats). */
static void bench_apply(void)
{
    const char *cols[] = {"record", "check on the loop (ms)", "apply (ms)", NULL};
    bench_table_header("One insert record on a replica (best of 5)", cols);
    static const size_t sizes[3] = {100, 10000, 100000};
    for (int s = 0; s < 3; s++) {
        char dir[128];
        snprintf(dir, sizeof dir, "/dev/shm/lumadb-bench-XXXXXX");
        if (!mkdtemp(dir))
            exit(1);
        lm_db *db;
        lm__db_open_replica(dir, NULL, &db, NULL);
        struct lm__record cr = {.type = LM_REC_FIELD_CREATE, .field = FIELD, .opts = *schema()};
        void *p;
        size_t n;
        lm__db_encode(db, &cr, &p, &n, NULL);
        lm__db_apply_record(db, LM_REC_FIELD_CREATE, p, n, 1, NULL, NULL);
        lm_free(p);
        struct cols c;
        cols_fill(&c, sizes[s], 5);
        struct lm__record ir = {.type = LM_REC_INSERT, .field = FIELD, .batch = cols_batch(&c)};
        lm__db_encode(db, &ir, &p, &n, NULL);
        double check = 1e9, apply = 1e9;
        for (int k = 0; k < 5; k++) {
            double t0 = bench_now();
            lm__db_check_record(db, LM_REC_INSERT, p, n, true, NULL);
            double t1 = bench_now();
            lm__db_apply_record(db, LM_REC_INSERT, p, n, 2 + (uint64_t)k, NULL, NULL);
            double t2 = bench_now();
            check = t1 - t0 < check ? t1 - t0 : check;
            apply = t2 - t1 < apply ? t2 - t1 : apply;
        }
        lm_free(p);
        cols_free(&c);
        lm_db_close(db);
        tmpdir_remove(dir);
        char a[32], b[32], d[32];
        snprintf(a, sizeof a, "%zu samples", sizes[s]);
        snprintf(b, sizeof b, "%.3f", check * 1e3);
        snprintf(d, sizeof d, "%.3f", apply * 1e3);
        const char *row[] = {a, b, d, NULL};
        bench_table_row(row);
    }
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--clients") && i + 1 < argc)
            n_clients = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick"))
            quick = true;
    }
    if (n_clients < 1 || n_clients > 64)
        n_clients = 8;
    bench_apply();
    bench_ingest();
    bench_failover();
    bench_catch_up();
    return 0;
}
