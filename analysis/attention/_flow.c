/* Attention flow in C, without the GIL: exact maximum flow in the layered attention graph
 * of one query, for any list of sinks (input tokens). Used by analysis/attention/flow.py.
 *
 * The network (see flow.py): levels m = M..1 of T nodes each (M = the query's layer),
 * above them the source (the query at level M + 1) with arcs to level M of capacity
 * src[k] = R_M[q, k]; arcs (m, i) -> (m - 1, k) of capacity R_{m-1}[i, k] for m >= 2; and
 * from each level-1 node i one arc to the sink of capacity R_0[i, j] for sink j (the
 * other input tokens are dead ends and are left out). The capacities are read in place
 * from the [M + 1, T, T] array of residual-augmented layers.
 *
 * Network(layers, levels, query) holds what every sink shares: the nodes the query
 * reaches, each row's heaviest arcs, a bitset per node of its arcs with capacity.
 * Network.max_flows(sinks, out, work) computes sinks one after the other without the GIL;
 * several threads may call it at once, each with its own work array.
 *
 * Algorithm: Dinic (blocking flows in BFS level graphs, one current-arc cursor per node),
 * on dense per-block flow matrices F_b[i, k] (a node's reverse arcs are read through their
 * bitsets and the transposed offsets). Speed-ups that keep it exact:
 * - The first level graph is the layered graph itself (distances are levels): no search.
 * - A node tries its PREFERRED heaviest arcs first (the residual diagonal and the tokens it
 *   attends to most), then every arc in head order, so most of the flow takes a few wide
 *   arcs instead of many thin ones (each augmentation saturates an arc).
 * - Bitsets per node of the arcs with residual capacity (forward: not saturated; reverse:
 *   carrying flow), kept exact at every push, and per level of the live (or, in the BFS,
 *   unlabelled) nodes: a scan ANDs them and skips 64 heads at a time, so neither the DFS
 *   nor the BFS reads the saturated arcs of a dense cut one by one.
 * - Two cuts bound every sink's flow: the source's arcs (the query's row, total 1) and the
 *   sink's arcs from the nodes the query reaches. A phase stops as soon as the flow meets
 *   one (on real attention most sinks end there, in the first phase). Otherwise a BFS from
 *   the source finds the next level graph or proves the flow maximal (the nodes it reached
 *   are the source side of a minimum cut).
 * - Flow entries a sink touched are listed and reset afterwards, so a sink costs what its
 *   own flow touched, not T^2.
 *
 * Floats: a residual capacity <= FLOW_EPS counts as none, and the bottleneck arcs of an
 * augmenting path are set exactly saturated (F = C, or F = 0 for a reverse arc), so every
 * augmentation saturates an arc and Dinic's termination holds with floats. The value
 * returned is the flow found, equal to the minimum cut within FLOW_EPS per cut arc (the
 * capacities are rows of row-stochastic matrices, at most 1).
 *
 * Arrays come through the buffer protocol (numpy arrays, C-contiguous); no numpy headers.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FLOW_EPS 1e-15  /* residual capacities at or below this are treated as zero */
#define BOUND_TOL 1e-13 /* a flow this close to an upper-bound cut is maximal */
#ifndef PREFERRED
#define PREFERRED 4 /* heaviest arcs of a row, tried first */
#endif

/* ------------------------------------------------------------------------------ bitsets */

static inline int bit_get(const uint64_t *bits, Py_ssize_t k) {
    return (int)((bits[k / 64] >> (k % 64)) & 1);
}

static inline void bit_put(uint64_t *bits, Py_ssize_t k, int on) {
    uint64_t mask = (uint64_t)1 << (k % 64);
    bits[k / 64] = on ? bits[k / 64] | mask : bits[k / 64] & ~mask;
}

/* Smallest k >= from set in both a and b (b may be NULL: a alone), or t when none. */
static inline Py_ssize_t next_set(const uint64_t *a, const uint64_t *b, Py_ssize_t from,
                                  Py_ssize_t t) {
    if (from >= t) return t;
    Py_ssize_t w = from / 64, words = (t + 63) / 64;
    uint64_t x = (b ? a[w] & b[w] : a[w]) & (~(uint64_t)0 << (from % 64));
    while (!x) {
        if (++w >= words) return t;
        x = b ? a[w] & b[w] : a[w];
    }
    Py_ssize_t found = w * 64 + __builtin_ctzll((unsigned long long)x);
    return found < t ? found : t;
}

/* ------------------------------------------------------------------------------ network */

typedef struct {
    PyObject_HEAD
    Py_buffer layers; /* [M + 1][T][T] float64: R_0 .. R_M */
    Py_ssize_t t, tt, levels, words, query;
    const double *sink_layer, *inner, *src; /* R_0; R_1 .. R_{M-1}; R_M[q, :] */
    double src_total;
    unsigned char *reached;  /* [M][T]: node (m, i) reachable from the source at all */
    int64_t *preferred;      /* [M - 1][T][PREFERRED]: heaviest heads of a row, -1 = none */
    int64_t src_preferred[PREFERRED];
    uint64_t *capacity_bits; /* [M - 1][T][words]: inner arcs with capacity > FLOW_EPS */
} Network;

enum { ARC_SOURCE, ARC_SINK, ARC_FORWARD, ARC_REVERSE };

/* The state of one call: one sink at a time. */
typedef struct {
    const Network *net;
    Py_ssize_t t, tt, levels, words;
    double *sink_cap; /* [T]: R_0[i, j] */
    double *fs, *ft;  /* [T]: flow on source arcs, on sink arcs */
    double *flow;     /* [(M - 1) T T]: F_b[i, k] of block b = 1..M-1 at (b - 1) T T */
    uint64_t *forward_bits; /* [M - 1][T][words]: row (b - 1) T + i, bit k: F_b[i, k] < C */
    uint64_t *reverse_bits; /* [M - 1][T][words]: row (b - 1) T + k, bit i: F_b[i, k] > 0 */
    uint64_t *src_bits;     /* [words]: source arcs not saturated */
    int64_t *touched;       /* offsets into flow that are (or were) nonzero for this sink */
    Py_ssize_t touched_count, touched_size;
    /* node (m, i) = (m - 1) T + i for m = 1..M, then the source and the sink */
    Py_ssize_t nodes, source, sink;
    int64_t *dist, *cursor, *queue;
    uint64_t *live; /* [M][words]: per level, the nodes in the level graph */
    int64_t *path_node, *path_kind, *path_at, *path_at_t; /* the current path, per step */
    double *path_key, *path_entry, *path_min;
} Search;

static inline Py_ssize_t level_of(const Search *g, Py_ssize_t u) { return u / g->t + 1; }

static inline uint64_t *live_bits(const Search *g, Py_ssize_t m) {
    return g->live + (m - 1) * g->words;
}

static void set_dead(Search *g, Py_ssize_t v) {
    g->dist[v] = -1;
    if (v < g->source) bit_put(live_bits(g, level_of(g, v)), v % g->t, 0);
}

/* The live bitsets from dist: a node is live when dist >= 0. */
static void live_from_dist(Search *g) {
    memset(g->live, 0, (size_t)(g->levels * g->words) * sizeof(uint64_t));
    for (Py_ssize_t v = 0; v < g->source; v++)
        if (g->dist[v] >= 0) bit_put(live_bits(g, level_of(g, v)), v % g->t, 1);
}

static inline double step_residual(const Search *g, int64_t kind, int64_t at) {
    switch (kind) {
    case ARC_SOURCE: return g->net->src[at] - g->fs[at];
    case ARC_SINK: return g->sink_cap[at] - g->ft[at];
    case ARC_FORWARD: return g->net->inner[at] - g->flow[at];
    default: return g->flow[at];
    }
}

/* Writes F_b[i, k] (at = (b - 1) T T + i T + k; at_t = (b - 1) T T + k T + i, the offset
 * of its transpose) and its bits: forward row at / T (= (b - 1) T + i), bit k; reverse row
 * at_t / T (= (b - 1) T + k: node (b, k)'s arcs back up), bit i. */
static inline void set_flow(Search *g, int64_t at, int64_t at_t, double value) {
    const Py_ssize_t t = g->t;
    g->flow[at] = value;
    bit_put(g->forward_bits + (at / t) * g->words, at % t, g->net->inner[at] - value > FLOW_EPS);
    bit_put(g->reverse_bits + (at_t / t) * g->words, at_t % t, value > FLOW_EPS);
}

/* Adds delta along one step (exactly saturating it when saturate); 0, or -1: no memory. */
static int step_push(Search *g, int64_t kind, int64_t at, int64_t at_t, double delta,
                     int saturate) {
    switch (kind) {
    case ARC_SOURCE:
        g->fs[at] = saturate ? g->net->src[at] : g->fs[at] + delta;
        bit_put(g->src_bits, at, g->net->src[at] - g->fs[at] > FLOW_EPS);
        return 0;
    case ARC_SINK: g->ft[at] = saturate ? g->sink_cap[at] : g->ft[at] + delta; return 0;
    case ARC_FORWARD:
        if (g->flow[at] == 0.0) {
            if (g->touched_count == g->touched_size) {
                Py_ssize_t size = 2 * g->touched_size;
                int64_t *more = realloc(g->touched, (size_t)size * sizeof(int64_t));
                if (!more) return -1;
                g->touched = more, g->touched_size = size;
            }
            g->touched[g->touched_count++] = at;
        }
        set_flow(g, at, at_t, saturate ? g->net->inner[at] : g->flow[at] + delta);
        return 0;
    default: set_flow(g, at, at_t, saturate ? 0.0 : g->flow[at] - delta); return 0;
    }
}

/* Cursor slots of a node: [0, P) its preferred forward arcs, [P, P + T) every forward arc
 * by head, [P + T, P + 2T) its reverse arcs by head. A level-1 node has one forward arc
 * (to the sink) in slot 0. The source has forward slots only. */
#define SLOTS_FORWARD (PREFERRED)
#define SLOTS_REVERSE (PREFERRED + g->t)
#define SLOTS_END (PREFERRED + 2 * g->t)

/* The first admissible arc of u at or after its cursor (residual > FLOW_EPS, live head with
 * dist == dist[u] + 1); writes the step, moves the cursor there and returns the head, or
 * -1. forward_only: skip reverse arcs (the first phase, where none is admissible). */
static Py_ssize_t next_arc(Search *g, Py_ssize_t u, int forward_only, int64_t *kind,
                           int64_t *at, int64_t *at_t) {
    const Network *net = g->net;
    const Py_ssize_t t = g->t, tt = g->tt, words = g->words;
    const int64_t want = g->dist[u] + 1;
    Py_ssize_t c = g->cursor[u];
    if (u == g->source) {
        const uint64_t *live = live_bits(g, g->levels);
        const Py_ssize_t below = (g->levels - 1) * t;
        *kind = ARC_SOURCE;
        for (; c < SLOTS_FORWARD; c++) {
            int64_t k = net->src_preferred[c];
            if (k >= 0 && bit_get(live, k) && bit_get(g->src_bits, k) && g->dist[below + k] == want) {
                g->cursor[u] = c, *at = k;
                return below + k;
            }
        }
        for (Py_ssize_t k = next_set(g->src_bits, live, c - SLOTS_FORWARD, t); k < t;
             k = next_set(g->src_bits, live, k + 1, t)) {
            if (g->dist[below + k] == want) {
                g->cursor[u] = SLOTS_FORWARD + k, *at = k;
                return below + k;
            }
        }
        g->cursor[u] = SLOTS_END;
        return -1;
    }
    const Py_ssize_t m = level_of(g, u), i = u % t;
    if (c < SLOTS_REVERSE) {
        if (m == 1) {
            if (c == 0 && g->sink_cap[i] - g->ft[i] > FLOW_EPS && g->dist[g->sink] == want) {
                *kind = ARC_SINK, *at = i;
                return g->sink;
            }
        } else { /* forward arcs (m, i) -> (m - 1, k): F_{m-1}[i, k] */
            const uint64_t *live = live_bits(g, m - 1);
            const uint64_t *open = g->forward_bits + ((m - 2) * t + i) * words;
            const int64_t *preferred = net->preferred + ((m - 2) * t + i) * PREFERRED;
            const Py_ssize_t row = (m - 2) * tt + i * t, below = (m - 2) * t;
            *kind = ARC_FORWARD;
            for (; c < SLOTS_FORWARD; c++) {
                int64_t k = preferred[c];
                if (k >= 0 && bit_get(live, k) && bit_get(open, k) && g->dist[below + k] == want) {
                    g->cursor[u] = c, *at = row + k, *at_t = (m - 2) * tt + k * t + i;
                    return below + k;
                }
            }
            for (Py_ssize_t k = next_set(open, live, c - SLOTS_FORWARD, t); k < t;
                 k = next_set(open, live, k + 1, t)) {
                if (g->dist[below + k] == want) {
                    g->cursor[u] = SLOTS_FORWARD + k, *at = row + k;
                    *at_t = (m - 2) * tt + k * t + i;
                    return below + k;
                }
            }
        }
        c = SLOTS_REVERSE;
    }
    if (!forward_only && m < g->levels) { /* reverse arcs (m, i) -> (m + 1, k): F_m[k, i] */
        const uint64_t *live = live_bits(g, m + 1);
        const uint64_t *open = g->reverse_bits + ((m - 1) * t + i) * words;
        *kind = ARC_REVERSE;
        for (Py_ssize_t k = next_set(open, live, c - SLOTS_REVERSE, t); k < t;
             k = next_set(open, live, k + 1, t)) {
            if (g->dist[m * t + k] == want) {
                g->cursor[u] = SLOTS_REVERSE + k;
                *at = (m - 1) * tt + k * t + i, *at_t = (m - 1) * tt + i * t + k;
                return m * t + k;
            }
        }
    }
    g->cursor[u] = SLOTS_END;
    return -1;
}

/* Applies the pushes a path step collected while it was on the path. */
static inline int flush_step(Search *g, Py_ssize_t d, double pushed) {
    const double amount = pushed - g->path_entry[d];
    const int saturate = g->path_key[d] <= pushed;
    if (amount <= 0.0 && !saturate) return 0;
    return step_push(g, g->path_kind[d], g->path_at[d], g->path_at_t[d], amount, saturate);
}

/* One blocking flow in the level graph given by dist and live (DFS with current arcs);
 * adds to *value, stopping once *value >= bound - BOUND_TOL. 0, or -1: out of memory.
 *
 * Pushes along the path are applied lazily: `pushed` is the flow sent along the current
 * path so far; step d keeps key[d] = its residual when it joined + `pushed` at that time,
 * so its residual now is key[d] - pushed, and the bottleneck is the smallest key (prefix
 * minima kept in path_min). A step's total is applied when it leaves the path, so an
 * augmentation costs the steps it saturates, not the whole path. */
static int blocking_flow(Search *g, double *value, double bound, int forward_only) {
    for (Py_ssize_t v = 0; v < g->nodes; v++) g->cursor[v] = 0;
    Py_ssize_t depth = 0;
    double pushed = 0.0;
    g->path_node[0] = g->source;
    g->path_min[0] = INFINITY;
    for (;;) {
        Py_ssize_t u = g->path_node[depth];
        if (u == g->sink) {
            const double limit = g->path_min[depth];
            *value += limit - pushed;
            pushed = limit;
            Py_ssize_t first = 0;
            while (g->path_key[first] != limit) first++; /* the first saturated step */
            for (Py_ssize_t d = first; d < depth; d++)
                if (flush_step(g, d, pushed) < 0) return -1;
            depth = first; /* back to the tail of the first saturated arc */
            if (*value >= bound - BOUND_TOL) {
                for (Py_ssize_t d = 0; d < depth; d++)
                    if (flush_step(g, d, pushed) < 0) return -1;
                return 0;
            }
            continue;
        }
        int64_t kind, at, at_t = 0;
        Py_ssize_t v = next_arc(g, u, forward_only, &kind, &at, &at_t);
        if (v >= 0) {
            const double key = step_residual(g, kind, at) + pushed;
            g->path_kind[depth] = kind, g->path_at[depth] = at, g->path_at_t[depth] = at_t;
            g->path_key[depth] = key, g->path_entry[depth] = pushed;
            g->path_min[depth + 1] = key < g->path_min[depth] ? key : g->path_min[depth];
            g->path_node[++depth] = v;
            continue;
        }
        set_dead(g, u); /* a dead end for the rest of this phase */
        if (depth == 0) return 0;
        depth--;
        if (flush_step(g, depth, pushed) < 0) return -1;
        g->cursor[g->path_node[depth]]++; /* past the arc into the dead node */
    }
}

/* The next level graph: BFS from the source in the residual network, scanning only arcs
 * with residual capacity into heads not labelled yet (the live bits, all set at the start,
 * mean "unlabelled" here); nodes at or beyond the sink's distance are dropped. Returns 1
 * when the sink is reachable, else 0: the flow is maximal. */
static int level_graph(Search *g) {
    const Py_ssize_t t = g->t, words = g->words;
    for (Py_ssize_t v = 0; v < g->nodes; v++) g->dist[v] = -1;
    memset(g->live, 0xff, (size_t)(g->levels * words) * sizeof(uint64_t));
    Py_ssize_t head = 0, tail = 0;
    int64_t sink_dist = -1;
    g->dist[g->source] = 0;
    g->queue[tail++] = g->source;
    while (head < tail) {
        Py_ssize_t u = g->queue[head++];
        if (sink_dist >= 0 && g->dist[u] + 1 >= sink_dist) break;
        const int64_t next = g->dist[u] + 1;
        /* up to three (arc bits, head level) pairs to scan */
        const uint64_t *open[2] = {NULL, NULL};
        Py_ssize_t heads[2] = {0, 0};
        if (u == g->source) {
            open[0] = g->src_bits, heads[0] = g->levels;
        } else {
            const Py_ssize_t m = level_of(g, u), i = u % t;
            if (m == 1) {
                if (g->sink_cap[i] - g->ft[i] > FLOW_EPS && sink_dist < 0)
                    sink_dist = g->dist[g->sink] = next;
            } else {
                open[0] = g->forward_bits + ((m - 2) * t + i) * words, heads[0] = m - 1;
            }
            if (m < g->levels) open[1] = g->reverse_bits + ((m - 1) * t + i) * words, heads[1] = m + 1;
        }
        for (int s = 0; s < 2; s++) {
            if (!open[s]) continue;
            uint64_t *unlabelled = live_bits(g, heads[s]);
            for (Py_ssize_t k = next_set(open[s], unlabelled, 0, t); k < t;
                 k = next_set(open[s], unlabelled, k + 1, t)) {
                Py_ssize_t v = (heads[s] - 1) * t + k;
                g->dist[v] = next;
                bit_put(unlabelled, k, 0);
                g->queue[tail++] = v;
            }
        }
    }
    if (sink_dist < 0) return 0;
    for (Py_ssize_t v = 0; v < g->source; v++)
        if (g->dist[v] >= sink_dist) g->dist[v] = -1;
    live_from_dist(g);
    return 1;
}

/* Maximum flow into sink column j; the flow state is the initial one on entry and return. */
static int one_sink(Search *g, Py_ssize_t j, double *out) {
    const Network *net = g->net;
    const Py_ssize_t t = g->t, tt = g->tt;
    double sink_total = 0.0;
    for (Py_ssize_t i = 0; i < t; i++) {
        g->sink_cap[i] = net->sink_layer[i * t + j];
        if (net->reached[i]) sink_total += g->sink_cap[i];
    }
    double bound = sink_total < net->src_total ? sink_total : net->src_total, value = 0.0;
    int status = 0;
    if (bound > FLOW_EPS) {
        /* the first level graph: the layers themselves (unreached nodes carry nothing) */
        for (Py_ssize_t v = 0; v < g->source; v++)
            g->dist[v] = net->reached[v] ? g->levels - level_of(g, v) + 1 : -1;
        g->dist[g->source] = 0, g->dist[g->sink] = g->levels + 1;
        live_from_dist(g);
        status = blocking_flow(g, &value, bound, 1);
        while (status == 0 && value < bound - BOUND_TOL && level_graph(g)) {
            const double before = value;
            status = blocking_flow(g, &value, bound, 0);
            if (!(value > before)) break; /* the BFS's path is in the level graph: never */
        }
    }
    *out = value;
    for (Py_ssize_t k = 0; k < g->touched_count; k++) {
        int64_t at = g->touched[k], block = at / tt, i = (at % tt) / t, col = at % t;
        if (g->flow[at] != 0.0) set_flow(g, at, block * tt + col * t + i, 0.0);
    }
    g->touched_count = 0;
    memset(g->fs, 0, (size_t)t * sizeof(double));
    memset(g->ft, 0, (size_t)t * sizeof(double));
    for (Py_ssize_t k = 0; k < t; k++) bit_put(g->src_bits, k, net->src[k] > FLOW_EPS);
    return status;
}

/* Every sink of the list, one after the other. 1, or 0: out of memory. */
static int run_sinks(const Network *net, const int64_t *sinks, Py_ssize_t count, double *out,
                     double *work) {
    Search g = {0};
    const Py_ssize_t t = net->t, levels = net->levels, words = net->words;
    const size_t bit_rows = (size_t)((levels - 1) * t * words) * sizeof(uint64_t);
    g.net = net, g.t = t, g.tt = net->tt, g.levels = levels, g.words = words;
    g.nodes = levels * t + 2, g.source = levels * t, g.sink = levels * t + 1;
    g.flow = work;
    g.touched_size = 4096;
    g.sink_cap = malloc((size_t)t * sizeof(double));
    g.fs = calloc((size_t)t, sizeof(double));
    g.ft = calloc((size_t)t, sizeof(double));
    g.forward_bits = malloc(bit_rows + 8);
    g.reverse_bits = calloc(1, bit_rows + 8);
    g.src_bits = calloc((size_t)words, sizeof(uint64_t));
    g.touched = malloc((size_t)g.touched_size * sizeof(int64_t));
    g.dist = malloc((size_t)g.nodes * sizeof(int64_t));
    g.cursor = malloc((size_t)g.nodes * sizeof(int64_t));
    g.queue = malloc((size_t)g.nodes * sizeof(int64_t));
    g.live = malloc((size_t)(levels * words) * sizeof(uint64_t));
    g.path_node = malloc((size_t)(g.nodes + 1) * sizeof(int64_t));
    g.path_kind = malloc((size_t)(g.nodes + 1) * sizeof(int64_t));
    g.path_at = malloc((size_t)(g.nodes + 1) * sizeof(int64_t));
    g.path_at_t = malloc((size_t)(g.nodes + 1) * sizeof(int64_t));
    g.path_key = malloc((size_t)(g.nodes + 1) * sizeof(double));
    g.path_entry = malloc((size_t)(g.nodes + 1) * sizeof(double));
    g.path_min = malloc((size_t)(g.nodes + 2) * sizeof(double));
    int ok = g.sink_cap && g.fs && g.ft && g.forward_bits && g.reverse_bits && g.src_bits &&
             g.touched && g.dist && g.cursor && g.queue && g.live && g.path_node &&
             g.path_kind && g.path_at && g.path_at_t && g.path_key && g.path_entry && g.path_min;
    if (ok) {
        memcpy(g.forward_bits, net->capacity_bits, bit_rows);
        for (Py_ssize_t k = 0; k < t; k++) bit_put(g.src_bits, k, net->src[k] > FLOW_EPS);
        for (Py_ssize_t s = 0; s < count && ok; s++) ok = one_sink(&g, sinks[s], out + s) == 0;
        if (!ok) /* out of memory mid-sink: the touched list may be incomplete */
            memset(work, 0, (size_t)((levels - 1) * net->tt) * sizeof(double));
    }
    free(g.sink_cap);
    free(g.fs);
    free(g.ft);
    free(g.forward_bits);
    free(g.reverse_bits);
    free(g.src_bits);
    free(g.touched);
    free(g.dist);
    free(g.cursor);
    free(g.queue);
    free(g.live);
    free(g.path_node);
    free(g.path_kind);
    free(g.path_at);
    free(g.path_at_t);
    free(g.path_key);
    free(g.path_entry);
    free(g.path_min);
    return ok;
}

/* ------------------------------------------------------------------------ the Python type */

/* The PREFERRED largest positive entries of a row (ties: lower index first), -1 where fewer. */
static void heaviest(const double *row, Py_ssize_t t, int64_t *out) {
    double best[PREFERRED];
    for (int p = 0; p < PREFERRED; p++) out[p] = -1, best[p] = 0.0;
    for (Py_ssize_t k = 0; k < t; k++) {
        double x = row[k];
        if (!(x > best[PREFERRED - 1])) continue;
        int p = PREFERRED - 1;
        while (p > 0 && x > best[p - 1]) {
            best[p] = best[p - 1], out[p] = out[p - 1];
            p--;
        }
        best[p] = x, out[p] = k;
    }
}

/* What every sink shares; 1, or 0: out of memory. */
static int prepare(Network *net) {
    const Py_ssize_t t = net->t, tt = net->tt, levels = net->levels, words = net->words;
    net->reached = calloc((size_t)(levels * t), 1);
    net->preferred = malloc((size_t)((levels - 1) * t * PREFERRED + 1) * sizeof(int64_t));
    net->capacity_bits = calloc((size_t)((levels - 1) * t * words + 1), sizeof(uint64_t));
    if (!net->reached || !net->preferred || !net->capacity_bits) return 0;
    for (Py_ssize_t k = 0; k < t; k++) net->src_total += net->src[k];
    heaviest(net->src, t, net->src_preferred);
    for (Py_ssize_t r = 0; r < (levels - 1) * t; r++) {
        const double *row = net->inner + r * t;
        heaviest(row, t, net->preferred + r * PREFERRED);
        uint64_t *bits = net->capacity_bits + r * words;
        for (Py_ssize_t k = 0; k < t; k++)
            if (row[k] > FLOW_EPS) bits[k / 64] |= (uint64_t)1 << (k % 64);
    }
    /* the nodes the query reaches, level by level down from level M */
    unsigned char *top = net->reached + (levels - 1) * t;
    for (Py_ssize_t k = 0; k < t; k++) top[k] = net->src[k] > FLOW_EPS;
    for (Py_ssize_t m = levels; m >= 2; m--) {
        const double *block = net->inner + (m - 2) * tt;
        const unsigned char *above = net->reached + (m - 1) * t;
        unsigned char *below = net->reached + (m - 2) * t;
        for (Py_ssize_t i = 0; i < t; i++)
            if (above[i])
                for (Py_ssize_t k = 0; k < t; k++) below[k] |= block[i * t + k] > FLOW_EPS;
    }
    return 1;
}

static void network_dealloc(Network *self) {
    if (self->layers.obj) PyBuffer_Release(&self->layers);
    free(self->reached);
    free(self->preferred);
    free(self->capacity_bits);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int network_init(Network *self, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"layers", "levels", "query", NULL};
    PyObject *layers;
    Py_ssize_t levels, query;
    if (self->layers.obj) {
        PyErr_SetString(PyExc_TypeError, "Network is initialised once");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "Onn", keywords, &layers, &levels, &query))
        return -1;
    if (PyObject_GetBuffer(layers, &self->layers, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    const Py_buffer *view = &self->layers;
    if (view->ndim != 3 || strcmp(view->format, "d") != 0 || view->shape[1] != view->shape[2] ||
        view->shape[1] < 1 || levels < 1 || view->shape[0] != levels + 1) {
        PyErr_SetString(PyExc_ValueError,
                        "layers must be a C-contiguous float64 array [levels + 1, T, T], levels >= 1");
        return -1;
    }
    const Py_ssize_t t = view->shape[1];
    if (query < 0 || query >= t) {
        PyErr_Format(PyExc_ValueError, "query must be in 0..%zd, got %zd", t - 1, query);
        return -1;
    }
    self->t = t, self->tt = t * t, self->levels = levels, self->query = query;
    self->words = (t + 63) / 64;
    self->sink_layer = view->buf;
    self->inner = (const double *)view->buf + t * t;
    self->src = (const double *)view->buf + levels * t * t + query * t;
    if (!prepare(self)) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static PyObject *network_max_flows(Network *self, PyObject *args) {
    Py_buffer sinks, out, work;
    if (!self->layers.obj) {
        PyErr_SetString(PyExc_TypeError, "Network is not initialised");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "y*w*w*", &sinks, &out, &work)) return NULL;
    PyObject *result = NULL;
    const Py_ssize_t t = self->t, count = sinks.len / 8;
    const int64_t *sink = sinks.buf;
    if (sinks.len % 8 || out.len != count * 8) {
        PyErr_SetString(PyExc_ValueError, "sinks must be int64 and out float64 of the same length");
        goto done;
    }
    for (Py_ssize_t s = 0; s < count; s++) {
        if (sink[s] < 0 || sink[s] >= t) {
            PyErr_Format(PyExc_ValueError, "sink %lld is out of range 0..%zd", (long long)sink[s],
                         t - 1);
            goto done;
        }
    }
    if (work.len != (self->levels - 1) * self->tt * 8) {
        PyErr_SetString(PyExc_ValueError, "work must be float64 zeros of size work_size");
        goto done;
    }
    int ok;
    Py_BEGIN_ALLOW_THREADS
    ok = run_sinks(self, sink, count, out.buf, work.buf);
    Py_END_ALLOW_THREADS
    if (ok) {
        Py_INCREF(Py_None);
        result = Py_None;
    } else {
        PyErr_NoMemory();
    }
done:
    PyBuffer_Release(&sinks);
    PyBuffer_Release(&out);
    PyBuffer_Release(&work);
    return result;
}

static PyObject *network_work_size(Network *self, void *closure) {
    (void)closure;
    return PyLong_FromSsize_t((self->levels - 1) * self->tt);
}

static PyMethodDef network_methods[] = {
    {"max_flows", (PyCFunction)network_max_flows, METH_VARARGS,
     "max_flows(sinks, out, work)\n"
     "out[s] = maximum flow from the query into input token sinks[s] (int64). work: float64\n"
     "zeros of size work_size, zeros again on return; one per thread. Releases the GIL."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef network_getset[] = {
    {"work_size", (getter)network_work_size, NULL, "float64 entries of a work array", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject NetworkType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "analysis.attention._flow.Network",
    .tp_basicsize = sizeof(Network),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Network(layers, levels, query): the layered attention graph of one query.\n"
              "layers: C-contiguous float64 [levels + 1, T, T] (R_0 .. R_levels), entries in\n"
              "[0, 1]; the query sits above level `levels` (see analysis/attention/flow.py).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)network_init,
    .tp_dealloc = (destructor)network_dealloc,
    .tp_methods = network_methods,
    .tp_getset = network_getset,
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_flow",
                                    "Attention flow (layered max flow) in C (see flow.py).",
                                    -1, NULL, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__flow(void) {
    if (PyType_Ready(&NetworkType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&NetworkType);
    if (PyModule_AddObject(m, "Network", (PyObject *)&NetworkType) < 0) {
        Py_DECREF(&NetworkType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
