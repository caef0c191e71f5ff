/* metrics.h - server counters and latency histograms, rendered in the Prometheus text
 * exposition format for GET /metrics.
 * Owns: plain counters (no allocation).
 * Invariants: (1) counters only grow; gauges (clients) are set, not summed.
 *   (2) histogram buckets are cumulative when rendered; +Inf equals _count.
 * Threading: the loop thread only. Called by: server.c. */
#ifndef LM_NET_METRICS_H
#define LM_NET_METRICS_H

#include <stdint.h>

#include "buf.h"
#include "lumadb.h"

enum lm_net_route {
    LM_ROUTE_STATIC, LM_ROUTE_FIELDS, LM_ROUTE_FIELD, LM_ROUTE_SAMPLES, LM_ROUTE_QUERY,
    LM_ROUTE_METRICS, LM_ROUTE_HEALTHZ, LM_ROUTE_OTHER, LM_ROUTE_WS_QUERY, LM_ROUTE_WS_INSERT,
    LM_ROUTE_CLUSTER, LM_ROUTE__COUNT
};

#define LM_NET_HIST_BUCKETS 16
#define LM_NET_STATUS_SLOTS 14

struct lm_net_hist {
    uint64_t bucket[LM_NET_HIST_BUCKETS + 1]; /* last: above the largest bound */
    uint64_t count;
    double sum;
};

struct lm_net_metrics {
    uint64_t requests[LM_ROUTE__COUNT][LM_NET_STATUS_SLOTS];
    struct lm_net_hist latency[LM_ROUTE__COUNT];
    uint64_t ws_connections, ws_clients, ws_frames_sent, ws_frames_received;
    uint64_t bytes_streamed, chunks_streamed, samples_streamed, voxels_streamed, deltas_streamed;
    uint64_t errors_sent, rate_limited, unauthorized;
    uint64_t samples_inserted, inserts;
    uint64_t flow_paused, delta_scans, chunks_coalesced;
    uint64_t frames_encoded, frames_cached; /* chunk versions compressed / served from cache */
    uint64_t send_queue_bytes;  /* gauge: sum over clients */
};

/* Counts one request of `route` answered with `status` after `seconds`. */
void lm_net_metrics_observe(struct lm_net_metrics *m, enum lm_net_route route, int status,
                            double seconds);
/* Appends the text format; per-field gauges come from lm_field_list(db). */
void lm_net_metrics_render(const struct lm_net_metrics *m, lm_db *db, struct lm_net_buf *out);

#endif
