/* Shortest paths and betweenness for analysis/graph.py, in C, without the GIL.
 *
 * brandes(): for each source in [start, stop) one Dijkstra run and Brandes' dependency
 * accumulation, written to follow networkx's _single_source_dijkstra_path_basic and
 * _accumulate_basic step by step (same path counting, same exact float comparisons of
 * path lengths, same order of the heap: distance, then insertion count), so the result
 * equals nx.betweenness_centrality(G, weight=...) on the same graph, raw (unscaled).
 * It also writes the distance rows of those sources. Self-loops are not in the CSR (they
 * never shorten a path); a zero-length one (weight 1) still changes networkx's counts, so
 * the nodes that have one are passed apart (loops) and replayed as networkx meets them.
 *
 * Pruning (prune=1, every length > 0, each row's edges sorted by length): once every node
 * the source can reach has a tentative distance, the largest of those is an upper bound B on
 * every final distance. An edge u -> v with D(u) + len > B can then neither shorten a path
 * nor tie one, and neither can the longer edges after it in u's sorted row, so the scan of
 * u's row stops there. reach_counts() gives how many nodes each source reaches.
 *
 * reach_counts(): strongly connected components (iterative Tarjan, which emits a component
 * after every component it reaches), then the components each one reaches as bitsets.
 *
 * Arrays come through the buffer protocol (numpy arrays, C-contiguous); no numpy headers.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Indexed binary min-heap of nodes keyed by (tentative distance, insertion count), keys
 * stored in the heap's own arrays. A node whose distance improves moves up in place: the
 * same order networkx's heap of (distance, count, pred, node) entries pops in, without its
 * stale duplicates. */
typedef struct {
    double *key;    /* heap position -> distance */
    int64_t *rank;  /* heap position -> insertion count */
    int64_t *node;  /* heap position -> node */
    int64_t *pos;   /* node -> heap position, -1 when not in the heap */
    Py_ssize_t size;
} Heap;

static inline int heap_before(double key_a, int64_t rank_a, double key_b, int64_t rank_b) {
    return (key_a < key_b) | ((key_a == key_b) & (rank_a < rank_b));
}

/* Writes node v with (key, rank) into heap position i. */
static inline void heap_put(Heap *h, Py_ssize_t i, int64_t v, double key, int64_t rank) {
    h->key[i] = key;
    h->rank[i] = rank;
    h->node[i] = v;
    h->pos[v] = i;
}

/* Moves the node at position from to position to. */
static inline void heap_move(Heap *h, Py_ssize_t to, Py_ssize_t from) {
    heap_put(h, to, h->node[from], h->key[from], h->rank[from]);
}

/* Marks position i as the sentinel: it sorts after every node. */
static inline void heap_sentinel(Heap *h, Py_ssize_t i) {
    h->key[i] = INFINITY;
    h->rank[i] = INT64_MAX;
}

/* Puts node v with (key, rank) at position i or above. */
static inline void heap_up(Heap *h, Py_ssize_t i, int64_t v, double key, int64_t rank) {
    while (i > 0) {
        Py_ssize_t parent = (i - 1) / 2;
        if (!heap_before(key, rank, h->key[parent], h->rank[parent])) break;
        heap_move(h, i, parent);
        i = parent;
    }
    heap_put(h, i, v, key, rank);
}

/* Adds v, or moves it up after its key decreased. */
static inline void heap_push_or_decrease(Heap *h, int64_t v, double key, int64_t rank) {
    Py_ssize_t i = h->pos[v];
    if (i < 0) {
        i = h->size++;
        heap_sentinel(h, h->size); /* keep the sentinel after the last node */
    }
    heap_up(h, i, v, key, rank);
}

/* Removes and returns the first node. The slot after the last one holds a sentinel that
 * sorts after everything, so choosing the smaller child needs no bounds test, and the
 * choice is made without a branch. */
static inline int64_t heap_pop(Heap *h) {
    int64_t top = h->node[0];
    h->pos[top] = -1;
    if (--h->size == 0) {
        heap_sentinel(h, 0);
        return top;
    }
    Py_ssize_t last = h->size, i = 0;
    double key = h->key[last];
    int64_t rank = h->rank[last], v = h->node[last];
    heap_sentinel(h, last); /* the sentinel moves down with the end */
    for (;;) {
        Py_ssize_t child = 2 * i + 1;
        if (child >= last) break;
        child += heap_before(h->key[child + 1], h->rank[child + 1], h->key[child], h->rank[child]);
        if (!heap_before(h->key[child], h->rank[child], key, rank)) break;
        heap_move(h, i, child);
        i = child;
    }
    heap_put(h, i, v, key, rank);
    return top;
}

/* Largest tentative distance still in the heap (0 when empty). */
static inline double heap_max_key(const Heap *h) {
    double most = 0.0;
    for (Py_ssize_t i = 0; i < h->size; i++)
        if (h->key[i] > most) most = h->key[i];
    return most;
}

/* Checks a CSR graph's buffers; returns n or -1 with a ValueError set. */
static Py_ssize_t check_csr(const Py_buffer *indptr, const Py_buffer *indices) {
    if (indptr->len % 8 || indices->len % 8 || indptr->len < 8) {
        PyErr_SetString(PyExc_ValueError, "indptr and indices must be int64 arrays, indptr non-empty");
        return -1;
    }
    Py_ssize_t n = indptr->len / 8 - 1, m = indices->len / 8;
    const int64_t *ptr = indptr->buf, *idx = indices->buf;
    if (ptr[0] != 0 || ptr[n] != m) {
        PyErr_SetString(PyExc_ValueError, "indptr must start at 0 and end at len(indices)");
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (ptr[i + 1] < ptr[i]) {
            PyErr_SetString(PyExc_ValueError, "indptr must not decrease");
            return -1;
        }
    }
    for (Py_ssize_t e = 0; e < m; e++) {
        if (idx[e] < 0 || idx[e] >= n) {
            PyErr_SetString(PyExc_ValueError, "an index in indices is out of range");
            return -1;
        }
    }
    return n;
}

#define BOUND_REFRESH 8 /* pops between recomputations of the pruning bound */

static int brandes_range(Py_ssize_t n, const int64_t *ptr, const int64_t *idx, const double *len,
                         const unsigned char *loop, const int64_t *reach, Py_ssize_t start,
                         Py_ssize_t stop, int prune, double *dist_out, double *bc) {
    Py_ssize_t m = ptr[n];
    double *seen = malloc(n * sizeof(double));
    double *sigma = malloc(n * sizeof(double));
    double *delta = malloc(n * sizeof(double));
    char *done = malloc(n);
    int64_t *stack = malloc(n * sizeof(int64_t));
    int64_t *head = malloc(n * sizeof(int64_t));
    int64_t *pred = malloc(n * sizeof(int64_t));
    /* predecessor entries: one per edge, plus one per zero-length self-loop */
    int64_t *pool_next = malloc((m + n + 1) * sizeof(int64_t));
    int64_t *pool_from = malloc((m + n + 1) * sizeof(int64_t));
    /* n nodes at most, plus the sentinel slot and the one read beside it */
    Heap heap = {malloc((n + 2) * sizeof(double)), malloc((n + 2) * sizeof(int64_t)),
                 malloc(n * sizeof(int64_t)), malloc(n * sizeof(int64_t)), 0};
    int ok = seen && sigma && delta && done && stack && head && pred && pool_next && pool_from &&
             heap.key && heap.rank && heap.node && heap.pos;
    for (Py_ssize_t s = start; ok && s < stop; s++) {
        for (Py_ssize_t i = 0; i < n; i++) {
            seen[i] = INFINITY;
            sigma[i] = 0.0;
            delta[i] = 0.0;
            done[i] = 0;
            head[i] = -1;
            heap.pos[i] = -1;
        }
        Py_ssize_t pool = 0, count = 0, seen_count = 1, until_refresh = 0;
        int64_t pushes = 0, need = prune ? reach[s] : -1;
        double bound = INFINITY;
        sigma[s] = 1.0;
        seen[s] = 0.0;
        pred[s] = s;
        heap.size = 0;
        heap_sentinel(&heap, 0);
        heap_sentinel(&heap, 1);
        heap_push_or_decrease(&heap, s, 0.0, pushes++);
        while (heap.size) {
            int64_t v = heap_pop(&heap);
            double d = seen[v];
            sigma[v] += sigma[pred[v]];
            /* A zero-length self-loop v -> v: networkx's scan of v meets it as a tie
               (d + 0 == seen[v]), doubles sigma[v] and makes v a predecessor of itself.
               Its scan reaches it among the targets in order, so ties to targets below v
               add the sigma from before the loop, ties to targets above v the doubled one. */
            const int has_loop = loop && loop[v];
            const double sigma_before = sigma[v];
            if (has_loop) {
                sigma[v] += sigma[v];
                pool_from[pool] = v;
                pool_next[pool] = head[v];
                head[v] = pool++;
            }
            stack[count++] = v;
            done[v] = 1;
            if (seen_count == need && --until_refresh <= 0) {
                /* every reachable node has a tentative distance: none ends farther than
                   the largest one still in the heap, and settled ones are final */
                bound = heap_max_key(&heap);
                if (bound < d) bound = d;
                until_refresh = BOUND_REFRESH;
            }
            int64_t end = ptr[v + 1];
            if (bound != INFINITY) { /* rows sorted by length: the edges with d + len <= bound */
                int64_t low = ptr[v];
                while (low < end) {
                    int64_t mid = low + (end - low) / 2;
                    if (d + len[mid] <= bound) low = mid + 1;
                    else end = mid;
                }
            }
            for (int64_t e = ptr[v]; e < end; e++) {
                int64_t w = idx[e];
                double vw = d + len[e];
                /* A settled w has seen[w] <= d <= vw (lengths >= 0), so it can only tie, as
                   networkx's "w not in D" test also ensures. */
                if (__builtin_expect(vw > seen[w], 1)) continue;
                if (vw < seen[w]) {
                    if (seen[w] == INFINITY && ++seen_count == need) until_refresh = 0;
                    seen[w] = vw;
                    pred[w] = v;
                    heap_push_or_decrease(&heap, w, vw, pushes++);
                    sigma[w] = 0.0;
                    head[w] = pool; /* P[w] = [v] */
                    pool_from[pool] = v;
                    pool_next[pool++] = -1;
                } else {
                    sigma[w] += has_loop && w < v ? sigma_before : sigma[v]; /* P[w].append(v) */
                    pool_from[pool] = v;
                    pool_next[pool] = head[w];
                    head[w] = pool++;
                }
            }
        }
        double *row = dist_out + (s - start) * n;
        for (Py_ssize_t i = 0; i < n; i++) row[i] = done[i] ? seen[i] : INFINITY;
        while (count) {
            int64_t w = stack[--count];
            double coeff = (1.0 + delta[w]) / sigma[w];
            for (int64_t k = head[w]; k >= 0; k = pool_next[k]) delta[pool_from[k]] += sigma[pool_from[k]] * coeff;
            if (w != s) bc[w] += delta[w];
        }
    }
    free(seen);
    free(sigma);
    free(delta);
    free(done);
    free(stack);
    free(head);
    free(pred);
    free(pool_next);
    free(pool_from);
    free(heap.key);
    free(heap.rank);
    free(heap.node);
    free(heap.pos);
    return ok;
}

/* None after a kernel ran, or MemoryError (NULL) when it could not allocate. */
static PyObject *none_or_no_memory(int ok) {
    if (!ok) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *brandes(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer indptr, indices, lengths, reach, dist, bc, loops = {0};
    Py_ssize_t start, stop;
    int prune;
    if (!PyArg_ParseTuple(args, "y*y*y*y*nnpw*w*|y*", &indptr, &indices, &lengths, &reach, &start,
                          &stop, &prune, &dist, &bc, &loops))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = check_csr(&indptr, &indices);
    if (n < 0) goto done;
    if (loops.obj && loops.len != n) {
        PyErr_SetString(PyExc_ValueError, "loops must be a uint8 array of length n");
        goto done;
    }
    if (lengths.len != indices.len || reach.len != n * 8 || bc.len != n * 8) {
        PyErr_SetString(PyExc_ValueError, "lengths, reach or betweenness has the wrong size");
        goto done;
    }
    if (start < 0 || stop < start || stop > n || dist.len != (stop - start) * n * 8) {
        PyErr_SetString(PyExc_ValueError, "need 0 <= start <= stop <= n and a [stop-start, n] float64 dist");
        goto done;
    }
    const double *len = lengths.buf;
    for (Py_ssize_t e = 0; e < indices.len / 8; e++) {
        if (!(len[e] >= 0.0) || isinf(len[e])) {
            PyErr_SetString(PyExc_ValueError, "lengths must be finite and >= 0");
            goto done;
        }
    }
    int ok;
    Py_BEGIN_ALLOW_THREADS
    ok = brandes_range(n, indptr.buf, indices.buf, len, loops.obj ? loops.buf : NULL, reach.buf,
                       start, stop, prune, dist.buf, bc.buf);
    Py_END_ALLOW_THREADS
    result = none_or_no_memory(ok);
done:
    PyBuffer_Release(&indptr);
    PyBuffer_Release(&indices);
    PyBuffer_Release(&lengths);
    PyBuffer_Release(&reach);
    PyBuffer_Release(&dist);
    PyBuffer_Release(&bc);
    if (loops.obj) PyBuffer_Release(&loops);
    return result;
}

static int reach_range(Py_ssize_t n, const int64_t *ptr, const int64_t *idx, int64_t *out) {
    Py_ssize_t words = (n + 63) / 64;
    int64_t *index = malloc(n * sizeof(int64_t)), *low = malloc(n * sizeof(int64_t));
    int64_t *comp = malloc(n * sizeof(int64_t)), *stack = malloc(n * sizeof(int64_t));
    int64_t *call = malloc(n * sizeof(int64_t)), *edge = malloc(n * sizeof(int64_t));
    int64_t *size = calloc(n, sizeof(int64_t)), *members = malloc(n * sizeof(int64_t));
    int64_t *first = malloc((n + 1) * sizeof(int64_t));
    char *on_stack = calloc(n, 1);
    uint64_t *bits = calloc((size_t)n * words, sizeof(uint64_t));
    int ok = index && low && comp && stack && call && edge && size && members && first && on_stack && bits;
    if (ok) {
        Py_ssize_t counter = 0, top = 0, components = 0;
        for (Py_ssize_t i = 0; i < n; i++) index[i] = -1;
        for (Py_ssize_t root = 0; root < n; root++) {
            if (index[root] >= 0) continue;
            Py_ssize_t depth = 0;
            call[0] = root;
            edge[0] = ptr[root];
            index[root] = low[root] = counter++;
            stack[top++] = root;
            on_stack[root] = 1;
            while (depth >= 0) {
                int64_t v = call[depth];
                if (edge[depth] < ptr[v + 1]) {
                    int64_t w = idx[edge[depth]++];
                    if (index[w] < 0) {
                        index[w] = low[w] = counter++;
                        stack[top++] = w;
                        on_stack[w] = 1;
                        call[++depth] = w;
                        edge[depth] = ptr[w];
                    } else if (on_stack[w] && index[w] < low[v]) {
                        low[v] = index[w];
                    }
                    continue;
                }
                if (low[v] == index[v]) { /* v roots a component: pop it */
                    int64_t w;
                    do {
                        w = stack[--top];
                        on_stack[w] = 0;
                        comp[w] = components;
                        size[components]++;
                    } while (w != v);
                    components++;
                }
                if (--depth >= 0 && low[v] < low[call[depth]]) low[call[depth]] = low[v];
            }
        }
        /* members of each component, contiguous */
        first[0] = 0;
        for (Py_ssize_t c = 0; c < components; c++) first[c + 1] = first[c] + size[c];
        for (Py_ssize_t c = 0; c < components; c++) size[c] = 0;
        for (Py_ssize_t v = 0; v < n; v++) members[first[comp[v]] + size[comp[v]]++] = v;
        /* components reach only earlier ones (Tarjan's order) */
        for (Py_ssize_t c = 0; c < components; c++) {
            uint64_t *mine = bits + c * words;
            mine[c / 64] |= (uint64_t)1 << (c % 64);
            for (int64_t k = first[c]; k < first[c + 1]; k++) {
                int64_t v = members[k];
                for (int64_t e = ptr[v]; e < ptr[v + 1]; e++) {
                    int64_t other = comp[idx[e]];
                    if (other == c) continue;
                    const uint64_t *theirs = bits + other * words;
                    for (Py_ssize_t word = 0; word < words; word++) mine[word] |= theirs[word];
                }
            }
            int64_t total = 0;
            for (Py_ssize_t word = 0; word < words; word++) {
                uint64_t x = mine[word];
                while (x) {
                    int bit = __builtin_ctzll(x);
                    total += size[word * 64 + bit];
                    x &= x - 1;
                }
            }
            for (int64_t k = first[c]; k < first[c + 1]; k++) out[members[k]] = total;
        }
    }
    free(index);
    free(low);
    free(comp);
    free(stack);
    free(call);
    free(edge);
    free(size);
    free(members);
    free(first);
    free(on_stack);
    free(bits);
    return ok;
}

static PyObject *reach_counts(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer indptr, indices, out;
    if (!PyArg_ParseTuple(args, "y*y*w*", &indptr, &indices, &out)) return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = check_csr(&indptr, &indices);
    if (n < 0) goto done;
    if (out.len != n * 8) {
        PyErr_SetString(PyExc_ValueError, "out must be an int64 array of length n");
        goto done;
    }
    int ok;
    Py_BEGIN_ALLOW_THREADS
    ok = reach_range(n, indptr.buf, indices.buf, out.buf);
    Py_END_ALLOW_THREADS
    result = none_or_no_memory(ok);
done:
    PyBuffer_Release(&indptr);
    PyBuffer_Release(&indices);
    PyBuffer_Release(&out);
    return result;
}

static PyMethodDef methods[] = {
    {"brandes", brandes, METH_VARARGS,
     "brandes(indptr, indices, lengths, reach, start, stop, prune, dist_out, betweenness_out,\n"
     "        loops=None)\n"
     "Dijkstra + Brandes from sources start..stop-1 (networkx's semantics); writes their\n"
     "distance rows to dist_out [stop-start, n] and adds raw betweenness to betweenness_out.\n"
     "loops: uint8 [n], 1 where a node has a zero-length self-loop (not in the CSR)."},
    {"reach_counts", reach_counts, METH_VARARGS,
     "reach_counts(indptr, indices, out)\nout[s] = number of nodes reachable from s, s included."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_paths",
                                    "Shortest paths and betweenness in C (see analysis/graph.py).",
                                    -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__paths(void) { return PyModule_Create(&module); }
