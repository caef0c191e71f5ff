/* cull.c - the choice of cull implementation, argument checks, and the selection of
 * the cut under a budget from the per-node classification (shared by every table). */
#include "cull.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

#include "alloc.h"
#include "cpu_features.h"
#include "device.h"
#include "lumadb.h"

const struct lm_cull_table *lm_cull_scalar(void) { return &lm__cull_scalar_table; }

const struct lm_cull_table *lm_cull_avx2(void)
{
#if defined(__x86_64__)
    if (lm_cpu_has_avx2())
        return &lm__cull_avx2_table;
#endif
    return NULL;
}

const struct lm_cull_table *lm_cull_best(void)
{
    const struct lm_cull_table *t = lm_cull_avx2();
    return t ? t : lm_cull_scalar();
}

float lm__cull_error(float error0, unsigned level)
{
    return level ? ldexpf(error0, (int)level) : 0.0f;
}

/* ---------------------------------------------------------------- checks */

static bool finite_all(const float *v, int n)
{
    for (int i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return false;
    return true;
}

static int check(const struct lm_cull_input *in, float tau, const uint32_t *out,
                 size_t budget, const struct lm_cull_result *res)
{
    if (!in || !res || (budget && !out) || !(tau >= 0) || !(in->k >= 0) ||
        !(in->error0 >= 0) || !finite_all(&in->planes[0][0], 24) || !finite_all(in->eye, 3))
        return LM_EBADARG;
    if (in->n && (!in->min_x || !in->min_y || !in->min_z || !in->max_x || !in->max_y ||
                  !in->max_z || !in->level || !in->parent))
        return LM_EBADARG;
    if (in->n > INT32_MAX)
        return LM_ELIMIT;
    for (size_t i = 0; i < in->n; i++)
        if (in->parent[i] < -1 || in->parent[i] >= (int64_t)in->n ||
            in->level[i] > LM_CULL_MAX_LEVEL)
            return LM_EBADARG;
    return 0;
}

/* ---------------------------------------------------------------- budget */

/* Node i is in the cut at t when visible, sse <= t, and t < its parent's sse (roots:
 * always). Raising t moves the cut toward the roots; it changes only where t passes
 * some node's sse (the node comes in) or its parent's (it goes out). */
static bool in_cut(const struct lm_cull_input *in, const uint8_t *vis, const float *sse,
                   const float *hp, size_t i, float t)
{
    return vis[i] && sse[i] <= t && (t < hp[i] || in->parent[i] < 0);
}

struct event {
    float at;
    int delta;
};

static int cmp_event(const void *a, const void *b)
{
    float x = ((const struct event *)a)->at, y = ((const struct event *)b)->at;
    return (x > y) - (x < y);
}

/* The smallest t >= tau whose cut fits the budget (+inf when none does). */
static int fit_budget(const struct lm_cull_input *in, const uint8_t *vis, const float *sse,
                      const float *hp, float tau, size_t budget, float *t_out)
{
    size_t count = 0, n_ev = 0;
    for (size_t i = 0; i < in->n; i++)
        count += in_cut(in, vis, sse, hp, i, tau);
    *t_out = tau;
    if (count <= budget)
        return 0;
    struct event *ev = lm_alloc(2 * in->n * sizeof *ev);
    if (!ev)
        return -ENOMEM;
    for (size_t i = 0; i < in->n; i++) {
        if (!vis[i] || !(sse[i] < hp[i] || in->parent[i] < 0))
            continue; /* never in the cut */
        if (sse[i] > tau)
            ev[n_ev++] = (struct event){sse[i], +1};
        if (in->parent[i] >= 0 && hp[i] > tau)
            ev[n_ev++] = (struct event){hp[i], -1};
    }
    qsort(ev, n_ev, sizeof *ev, cmp_event);
    *t_out = INFINITY;
    for (size_t e = 0; e < n_ev;) {
        float at = ev[e].at;
        for (; e < n_ev && ev[e].at == at; e++)
            count += (size_t)(ptrdiff_t)ev[e].delta;
        if (count <= budget) {
            *t_out = at;
            break;
        }
    }
    lm_free(ev);
    return 0;
}

int lm_cull_select(const struct lm_cull_table *t, const struct lm_cull_input *in, float tau,
                   size_t budget, uint32_t *out, struct lm_cull_result *res)
{
    int rc = t ? check(in, tau, out, budget, res) : LM_EBADARG;
    if (rc)
        return rc;
    size_t n = in->n;
    uint8_t *vis = lm_alloc(n ? n : 1);
    float *sse = lm_alloc((n ? n : 1) * sizeof *sse), *hp = lm_alloc((n ? n : 1) * sizeof *hp);
    float t_used = tau;
    if (!vis || !sse || !hp) {
        rc = -ENOMEM;
        goto out;
    }
    if (n && t->classify(in, vis, sse, hp)) { /* the device could not run it */
        lm_cull_best()->classify(in, vis, sse, hp);
        lm_device_trace(lm_cull_best()->name);
    }
    if ((rc = fit_budget(in, vis, sse, hp, tau, budget, &t_used)))
        goto out;
    struct lm_cull_result r = {.tau_used = t_used};
    for (size_t i = 0; i < n; i++) {
        if (!in_cut(in, vis, sse, hp, i, t_used))
            continue;
        if (r.n < budget)
            out[r.n++] = (uint32_t)i;
        r.wanted++;
    }
    *res = r;
out:
    lm_free(vis);
    lm_free(sse);
    lm_free(hp);
    return rc;
}
