/* metrics.c - Prometheus text rendering of server counters (see metrics.h). */
#include "metrics.h"

#include "alloc.h"

static const double bounds[LM_NET_HIST_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
static const int statuses[LM_NET_STATUS_SLOTS] = {200, 201, 400, 401, 403, 404, 405,
                                                  409, 413, 429, 500, 501, 503, 0};
static const char *const routes[LM_ROUTE__COUNT] = {
    "static", "fields", "field", "samples", "query", "metrics", "healthz", "other",
    "ws_query", "ws_insert", "cluster"};

void lm_net_metrics_observe(struct lm_net_metrics *m, enum lm_net_route route, int status,
                            double seconds)
{
    int s = LM_NET_STATUS_SLOTS - 1;
    for (int i = 0; i < LM_NET_STATUS_SLOTS - 1; i++)
        if (statuses[i] == status)
            s = i;
    m->requests[route][s]++;
    struct lm_net_hist *h = &m->latency[route];
    int b = 0;
    while (b < LM_NET_HIST_BUCKETS && seconds > bounds[b])
        b++;
    h->bucket[b]++;
    h->count++;
    h->sum += seconds;
}

static void counter(struct lm_net_buf *o, const char *name, const char *help, uint64_t v,
                    const char *type)
{
    lm_net_buf_printf(o, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name,
                      (unsigned long long)v);
}

void lm_net_metrics_render(const struct lm_net_metrics *m, lm_db *db, struct lm_net_buf *o)
{
    lm_net_buf_printf(o, "# HELP lumadb_http_requests_total HTTP and WebSocket requests by "
                         "route and status.\n# TYPE lumadb_http_requests_total counter\n");
    for (int r = 0; r < LM_ROUTE__COUNT; r++)
        for (int s = 0; s < LM_NET_STATUS_SLOTS; s++)
            if (m->requests[r][s])
                lm_net_buf_printf(o, "lumadb_http_requests_total{route=\"%s\",code=\"%s%d\"} %llu\n",
                                  routes[r], statuses[s] ? "" : "other", statuses[s] ? statuses[s] : 0,
                                  (unsigned long long)m->requests[r][s]);
    lm_net_buf_printf(o, "# HELP lumadb_request_duration_seconds Request latency.\n"
                         "# TYPE lumadb_request_duration_seconds histogram\n");
    for (int r = 0; r < LM_ROUTE__COUNT; r++) {
        const struct lm_net_hist *h = &m->latency[r];
        if (!h->count)
            continue;
        uint64_t cum = 0;
        for (int b = 0; b < LM_NET_HIST_BUCKETS; b++) {
            cum += h->bucket[b];
            lm_net_buf_printf(o, "lumadb_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                              routes[r], bounds[b], (unsigned long long)cum);
        }
        lm_net_buf_printf(o,
                          "lumadb_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n"
                          "lumadb_request_duration_seconds_sum{route=\"%s\"} %.9f\n"
                          "lumadb_request_duration_seconds_count{route=\"%s\"} %llu\n",
                          routes[r], (unsigned long long)h->count, routes[r], h->sum, routes[r],
                          (unsigned long long)h->count);
    }
    counter(o, "lumadb_ws_clients", "Connected WebSocket clients.", m->ws_clients, "gauge");
    counter(o, "lumadb_ws_connections_total", "WebSocket connections accepted.", m->ws_connections, "counter");
    counter(o, "lumadb_ws_frames_sent_total", "WebSocket frames sent.", m->ws_frames_sent, "counter");
    counter(o, "lumadb_ws_frames_received_total", "WebSocket frames received.", m->ws_frames_received, "counter");
    counter(o, "lumadb_bytes_streamed_total", "WebSocket payload bytes sent.", m->bytes_streamed, "counter");
    counter(o, "lumadb_chunks_streamed_total", "Chunk and voxel frames sent.", m->chunks_streamed, "counter");
    counter(o, "lumadb_samples_streamed_total", "Samples sent in chunk frames.", m->samples_streamed, "counter");
    counter(o, "lumadb_voxels_streamed_total", "Voxels sent in voxel frames.", m->voxels_streamed, "counter");
    counter(o, "lumadb_deltas_streamed_total", "Chunk frames sent as deltas.", m->deltas_streamed, "counter");
    counter(o, "lumadb_ws_errors_sent_total", "Error frames sent.", m->errors_sent, "counter");
    counter(o, "lumadb_rate_limited_total", "Requests refused by the per-address rate limit.", m->rate_limited, "counter");
    counter(o, "lumadb_unauthorized_total", "Requests refused for a missing or wrong token.", m->unauthorized, "counter");
    counter(o, "lumadb_samples_inserted_total", "Samples inserted through the server.", m->samples_inserted, "counter");
    counter(o, "lumadb_inserts_total", "Insert batches acknowledged.", m->inserts, "counter");
    counter(o, "lumadb_flow_paused_total", "Times a client's reads were paused for a full send queue.", m->flow_paused, "counter");
    counter(o, "lumadb_delta_scans_total", "Scans for changed chunks after writes.", m->delta_scans, "counter");
    counter(o, "lumadb_chunks_coalesced_total", "Changed chunks merged into a pending send.", m->chunks_coalesced, "counter");
    counter(o, "lumadb_chunk_encodes_total", "Chunk versions compressed for streaming.", m->frames_encoded, "counter");
    counter(o, "lumadb_chunk_cache_hits_total", "Chunk versions streamed from the frame cache.", m->frames_cached, "counter");
    counter(o, "lumadb_send_queue_bytes", "Bytes queued for WebSocket clients.", m->send_queue_bytes, "gauge");

    size_t n = 0;
    if (!db || lm_field_list(db, NULL, 0, &n) || !n)
        return;
    struct lm_field_info *f = lm_calloc(n, sizeof *f);
    size_t cap = n;
    if (!f || lm_field_list(db, f, cap, &n)) {
        lm_free(f);
        return;
    }
    static const char *const what[3] = {"samples", "chunks", "voxels"};
    for (int k = 0; k < 3; k++) {
        lm_net_buf_printf(o, "# HELP lumadb_field_%s %s stored per field.\n"
                             "# TYPE lumadb_field_%s gauge\n", what[k], what[k], what[k]);
        for (size_t i = 0; i < n && i < cap; i++) {
            uint64_t v = k == 0 ? f[i].n_samples : k == 1 ? f[i].n_chunks : f[i].n_voxels;
            lm_net_buf_printf(o, "lumadb_field_%s{field=\"%s\"} %llu\n", what[k], f[i].name,
                              (unsigned long long)v);
        }
    }
    counter(o, "lumadb_lsn", "Sequence number of the last change.", lm_db_lsn(db), "gauge");
    lm_free(f);
}
