/* Exact max-norm k-NN distances and radius counts on a small k-d tree, for the kNN estimators on CPU.
 *
 * An optional compiled kernel (built by setup.py when a C compiler is present; ibhooks falls back to
 * scipy's cKDTree without it). Two functions, each building its own tree over the n rows of a
 * C-contiguous float64 (n, d) buffer:
 *
 *   nearest(points, n, d, k, out_dist, out_rows)   the distances (ascending) to the k nearest *other*
 *                                                  rows of each row, and their rows unless out_rows is None
 *   count_within(points, n, d, radius, strict, out) out[i] = #{j: dist(i, j) < radius[i]} (strict) or
 *                                                  <= radius[i], the row itself included
 *
 * Distances are max_k |x_ik - x_jk|, the same floating-point operations as the blocked brute force, so
 * the values are identical to it. Pruning is exact too: node boxes are the tight bounds of their
 * points, and rounding is monotone, so fl(lo - q) <= fl(p - q) for every point p >= lo of the node
 * (and likewise for the upper side): a box's computed lower bound never exceeds the computed distance
 * of a point inside it, and its computed upper bound never falls below one.
 *
 * The tree splits the widest side of each box at the median (nth element) down to leaves of at most
 * LEAF rows, and stores the points in tree order; queries run in tree order (neighbouring queries
 * walk the same nodes). The GIL is released while it works.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifndef LEAF
#define LEAF 8
#endif
#define MAX_K 64

#if defined(_MSC_VER)
#define FORCE_INLINE static __forceinline
#else
#define FORCE_INLINE static inline __attribute__((always_inline))
#endif

typedef struct {
    Py_ssize_t start, stop; /* rows [start, stop) of the tree order */
    Py_ssize_t left, right; /* children; -1 for a leaf */
    Py_ssize_t parent;      /* -1 for the root */
} Node;

typedef struct {
    Py_ssize_t n;
    int d;
    double *pts;     /* n * d, tree order */
    Py_ssize_t *row; /* tree position -> input row */
    Node *nodes;
    double *lo, *hi; /* per node, d bounds */
    Py_ssize_t n_nodes;
} Tree;

static void tree_free(Tree *t) {
    free(t->pts);
    free(t->row);
    free(t->nodes);
    free(t->lo);
    free(t->hi);
}

/* Swap rows i and j of the points (d coordinates each) and of their input row numbers. */
FORCE_INLINE void swap_rows_d(Tree *t, Py_ssize_t i, Py_ssize_t j, const int d) {
    double *p = t->pts + i * d, *q = t->pts + j * d;
    for (int c = 0; c < d; c++) {
        double tmp = p[c];
        p[c] = q[c];
        q[c] = tmp;
    }
    Py_ssize_t tmp = t->row[i];
    t->row[i] = t->row[j];
    t->row[j] = tmp;
}

static void swap_rows(Tree *t, Py_ssize_t i, Py_ssize_t j) {
    switch (t->d) { /* constant d: the copies unroll */
    case 1: swap_rows_d(t, i, j, 1); break;
    case 2: swap_rows_d(t, i, j, 2); break;
    case 3: swap_rows_d(t, i, j, 3); break;
    case 4: swap_rows_d(t, i, j, 4); break;
    default: swap_rows_d(t, i, j, t->d);
    }
}

/* Partially order rows a..b by coordinate `dim` so that row m holds the m-th smallest (quickselect with
 * a median-of-three pivot; the points themselves move, so every pass reads memory in order). */
static void nth_element(Tree *t, Py_ssize_t a, Py_ssize_t b, Py_ssize_t m, int dim) {
    const int d = t->d;
    const double *key = t->pts + dim;
    while (b > a) {
        Py_ssize_t mid = a + (b - a) / 2;
        double x = key[a * d], y = key[mid * d], z = key[b * d];
        double pivot = (x < y) ? ((y < z) ? y : ((x < z) ? z : x)) : ((x < z) ? x : ((y < z) ? z : y));
        Py_ssize_t i = a, j = b;
        while (i <= j) { /* Hoare partition: equal keys split between both sides, so ties stay balanced */
            while (key[i * d] < pivot) i++;
            while (key[j * d] > pivot) j--;
            if (i <= j) {
                swap_rows(t, i, j);
                i++;
                j--;
            }
        }
        if (m <= j)
            b = j;
        else if (m >= i)
            a = i;
        else
            return;
    }
}

/* Split rows [start, stop) along `dim`: one branch-free pass puts the rows below the median of 9 sampled
 * keys first (3-4x faster than an exact median, whose quickselect mispredicts a branch per comparison).
 * When that split leaves a side under a quarter of the rows or under LEAF / 2 rows (skewed samples, many
 * ties), the exact median is taken instead: the tree stays within log_{4/3} n levels and every leaf of a
 * split node keeps >= LEAF / 2 rows. Returns the first row of the right side. */
static Py_ssize_t split_rows(Tree *t, Py_ssize_t start, Py_ssize_t stop, int dim) {
    const int d = t->d;
    const double *key = t->pts + dim;
    Py_ssize_t size = stop - start;
    double sample[9];
    for (int i = 0; i < 9; i++) {
        double v = key[(start + (size * (2 * i + 1)) / 18) * d];
        int j = i;
        for (; j > 0 && sample[j - 1] > v; j--) sample[j] = sample[j - 1];
        sample[j] = v;
    }
    double pivot = sample[4];
    Py_ssize_t store = start;
    switch (d) {
#define PARTITION(D)                                                                                           \
    for (Py_ssize_t i = start; i < stop; i++) {                                                                \
        int below = key[i * d] < pivot;                                                                        \
        swap_rows_d(t, i, store, D);                                                                           \
        store += below;                                                                                        \
    }
    case 1: PARTITION(1) break;
    case 2: PARTITION(2) break;
    case 3: PARTITION(3) break;
    case 4: PARTITION(4) break;
    default: PARTITION(d)
#undef PARTITION
    }
    Py_ssize_t smallest = size / 4 > LEAF / 2 ? size / 4 : LEAF / 2;
    if (store - start >= smallest && stop - store >= smallest) return store;
    Py_ssize_t mid = start + size / 2;
    nth_element(t, start, stop - 1, mid, dim);
    return mid;
}

/* The tight box [lo, hi] of m points (d coordinates each), kept in locals (no stores through pointers that
 * might alias the points) and specialised for d = 1..4. */
FORCE_INLINE void box_of_d(const double *pts, Py_ssize_t m, double *lo, double *hi, const int d) {
    double l[4] = {INFINITY, INFINITY, INFINITY, INFINITY}, h[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    for (Py_ssize_t i = 0; i < m; i++)
        for (int c = 0; c < d; c++) {
            double v = pts[i * d + c];
            l[c] = v < l[c] ? v : l[c];
            h[c] = v > h[c] ? v : h[c];
        }
    for (int c = 0; c < d; c++) {
        lo[c] = l[c];
        hi[c] = h[c];
    }
}

static void box_of(const double *pts, Py_ssize_t m, int d, double *lo, double *hi) {
    switch (d) {
    case 1: box_of_d(pts, m, lo, hi, 1); return;
    case 2: box_of_d(pts, m, lo, hi, 2); return;
    case 3: box_of_d(pts, m, lo, hi, 3); return;
    case 4: box_of_d(pts, m, lo, hi, 4); return;
    }
    for (int c = 0; c < d; c++) {
        lo[c] = INFINITY;
        hi[c] = -INFINITY;
    }
    for (Py_ssize_t i = 0; i < m; i++)
        for (int c = 0; c < d; c++) {
            double v = pts[i * d + c];
            lo[c] = v < lo[c] ? v : lo[c];
            hi[c] = v > hi[c] ? v : hi[c];
        }
}

static Py_ssize_t build_node(Tree *t, Py_ssize_t start, Py_ssize_t stop) {
    int d = t->d;
    Py_ssize_t id = t->n_nodes++;
    Node *nd = &t->nodes[id];
    double *lo = t->lo + id * d, *hi = t->hi + id * d;
    nd->start = start;
    nd->stop = stop;
    box_of(t->pts + start * d, stop - start, d, lo, hi);
    int dim = 0;
    for (int c = 1; c < d; c++)
        if (hi[c] - lo[c] > hi[dim] - lo[dim]) dim = c;
    if (stop - start <= LEAF || !(hi[dim] > lo[dim])) { /* small, or all rows equal */
        nd->left = nd->right = -1;
        return id;
    }
    Py_ssize_t mid = split_rows(t, start, stop, dim);
    Py_ssize_t left = build_node(t, start, mid);
    Py_ssize_t right = build_node(t, mid, stop);
    t->nodes[id].left = left;
    t->nodes[id].right = right;
    t->nodes[left].parent = t->nodes[right].parent = id;
    return id;
}

static int tree_build(Tree *t, const double *src, Py_ssize_t n, int d) {
    memset(t, 0, sizeof(*t));
    t->n = n;
    t->d = d;
    /* every leaf holds at least LEAF / 2 rows when n > LEAF, so there are fewer than 2 n / (LEAF / 2) + 1 nodes */
    Py_ssize_t max_nodes = 2 * (n / (LEAF / 2) + 1) + 1;
    t->pts = malloc(sizeof(double) * (size_t)(n * d > 0 ? n * d : 1));
    t->row = malloc(sizeof(Py_ssize_t) * (size_t)(n > 0 ? n : 1));
    t->nodes = malloc(sizeof(Node) * (size_t)max_nodes);
    t->lo = malloc(sizeof(double) * (size_t)(max_nodes * d));
    t->hi = malloc(sizeof(double) * (size_t)(max_nodes * d));
    if (!t->pts || !t->row || !t->nodes || !t->lo || !t->hi) {
        tree_free(t);
        return -1;
    }
    memcpy(t->pts, src, sizeof(double) * (size_t)(n * d));
    for (Py_ssize_t i = 0; i < n; i++) t->row[i] = i;
    build_node(t, 0, n);
    t->nodes[0].parent = -1;
    return 0;
}



/* The queries below take the dimension as a constant argument and are specialised for d = 1..4 (the
 * compiler unrolls the per-coordinate loops there: about 2x faster than a run-time d). */

/* Lower bound of the max-norm distance from q to the points inside the box [lo, hi]. */
FORCE_INLINE double box_lower(const double *lo, const double *hi, const double *q, const int d) {
    double b = 0.0;
    for (int c = 0; c < d; c++) {
        double a = lo[c] - q[c], e = q[c] - hi[c];
        b = a > b ? a : b;
        b = e > b ? e : b;
    }
    return b;
}

/* Upper bound of the max-norm distance from q to the points inside the box [lo, hi]. */
FORCE_INLINE double box_upper(const double *lo, const double *hi, const double *q, const int d) {
    double b = 0.0;
    for (int c = 0; c < d; c++) {
        double a = q[c] - lo[c], e = hi[c] - q[c];
        b = a > b ? a : b;
        b = e > b ? e : b;
    }
    return b;
}

FORCE_INLINE double point_dist(const double *p, const double *q, const int d) {
    double dist = 0.0;
    for (int c = 0; c < d; c++) {
        double v = fabs(q[c] - p[c]);
        dist = v > dist ? v : dist;
    }
    return dist;
}

#define STACK 512 /* > the tree depth + 1: at most log_{4/3} n < 2.41 log2 n < 160 levels for any n < 2^63 */

/* Offer the rows [start, stop) to the k best (ascending in best[], their tree positions in who[] if given),
 * skipping the row `self`. */
FORCE_INLINE void knn_scan(const Tree *t, Py_ssize_t start, Py_ssize_t stop, const double *q, Py_ssize_t self,
                           int k, double *best, Py_ssize_t *who, const int d) {
    for (Py_ssize_t j = start; j < stop; j++) {
        double dist = point_dist(t->pts + j * d, q, d);
        if (dist < best[k - 1] && j != self) {
            int i = k - 1;
            while (i > 0 && best[i - 1] > dist) {
                best[i] = best[i - 1];
                if (who) who[i] = who[i - 1];
                i--;
            }
            best[i] = dist;
            if (who) who[i] = j;
        }
    }
}

/* Search the subtree `root` (whose box is `bound` away from q) for rows nearer than best[k - 1]. Children
 * are visited nearer first; a node whose box is no nearer than the current k-th distance is skipped (its
 * rows could only tie with it, which leaves the k-th distance as it is). */
FORCE_INLINE void knn_subtree(const Tree *t, Py_ssize_t root, double bound, const double *q, Py_ssize_t self,
                              int k, double *best, Py_ssize_t *who, const int d) {
    Py_ssize_t stack_node[STACK];
    double stack_bound[STACK];
    int top = 1;
    stack_node[0] = root;
    stack_bound[0] = bound;
    while (top) {
        top--;
        if (stack_bound[top] >= best[k - 1]) continue;
        const Node *nd = &t->nodes[stack_node[top]];
        if (nd->left < 0) {
            knn_scan(t, nd->start, nd->stop, q, self, k, best, who, d);
            continue;
        }
        double bl = box_lower(t->lo + nd->left * d, t->hi + nd->left * d, q, d);
        double br = box_lower(t->lo + nd->right * d, t->hi + nd->right * d, q, d);
        int near_left = bl <= br; /* the nearer child is popped first */
        stack_node[top] = near_left ? nd->right : nd->left;
        stack_bound[top++] = near_left ? br : bl;
        stack_node[top] = near_left ? nd->left : nd->right;
        stack_bound[top++] = near_left ? bl : br;
    }
}

/* The k nearest other rows of the row at tree position `self`, which lies in the leaf `leaf`: best[0..k-1]
 * ascending and, with `who`, their tree positions. Bottom-up: the query's own leaf first (a tight bound at
 * once), then at each ancestor the sibling subtree, unless its box is no nearer than the k-th distance.
 * Every row of the tree lies in exactly one of those subtrees, so the search is exhaustive up to pruning. */
FORCE_INLINE void knn_query(const Tree *t, Py_ssize_t leaf, Py_ssize_t self, int k, double *best, Py_ssize_t *who,
                            const int d) {
    const double *q = t->pts + self * d;
    for (int j = 0; j < k; j++) {
        best[j] = INFINITY;
        if (who) who[j] = -1;
    }
    knn_scan(t, t->nodes[leaf].start, t->nodes[leaf].stop, q, self, k, best, who, d);
    for (Py_ssize_t cur = leaf, up = t->nodes[leaf].parent; up >= 0; cur = up, up = t->nodes[up].parent) {
        Py_ssize_t sib = t->nodes[up].left == cur ? t->nodes[up].right : t->nodes[up].left;
        double bound = box_lower(t->lo + sib * d, t->hi + sib * d, q, d);
        if (bound < best[k - 1]) knn_subtree(t, sib, bound, q, self, k, best, who, d);
    }
}

/* #{rows p: dist(p, q) < r} (strict) or <= r, q any point. */
FORCE_INLINE Py_ssize_t count_query(const Tree *t, const double *q, double r, int strict, const int d) {
    Py_ssize_t stack_node[STACK], count = 0;
    int top = 1;
    stack_node[0] = 0;
    while (top) {
        Py_ssize_t id = stack_node[--top];
        const Node *nd = &t->nodes[id];
        const double *lo = t->lo + id * d, *hi = t->hi + id * d;
        double lower = box_lower(lo, hi, q, d);
        if (strict ? !(lower < r) : !(lower <= r)) continue;
        double upper = box_upper(lo, hi, q, d);
        if (strict ? (upper < r) : (upper <= r)) {
            count += nd->stop - nd->start;
        } else if (nd->left >= 0) {
            stack_node[top++] = nd->right;
            stack_node[top++] = nd->left;
        } else {
            for (Py_ssize_t j = nd->start; j < nd->stop; j++) {
                double dist = point_dist(t->pts + j * d, q, d);
                count += strict ? (dist < r) : (dist <= r);
            }
        }
    }
    return count;
}

/* One function per dimension 1..4 and one for any d: the same code with d constant or not. */
#define SPECIALISE(suffix, D)                                                                                 \
    static void knn_all_##suffix(const Tree *t, int k, double *res, long long *res_rows) {                    \
        const int d = (D) ? (D) : t->d;                                                                        \
        double best[MAX_K];                                                                                    \
        Py_ssize_t who[MAX_K];                                                                                 \
        for (Py_ssize_t leaf = 0; leaf < t->n_nodes; leaf++) {                                                 \
            if (t->nodes[leaf].left >= 0) continue;                                                            \
            for (Py_ssize_t i = t->nodes[leaf].start; i < t->nodes[leaf].stop; i++) {                         \
                knn_query(t, leaf, i, k, best, res_rows ? who : NULL, d);                                      \
                Py_ssize_t row = t->row[i];                                                                    \
                memcpy(res + row * k, best, sizeof(double) * (size_t)k);                                       \
                if (res_rows)                                                                                  \
                    for (int j = 0; j < k; j++) res_rows[row * k + j] = (long long)t->row[who[j]];            \
            }                                                                                                  \
        }                                                                                                      \
    }                                                                                                          \
    static void count_all_##suffix(const Tree *t, const double *r, int strict, long long *res) {             \
        const int d = (D) ? (D) : t->d;                                                                        \
        for (Py_ssize_t i = 0; i < t->n; i++) {                                                                \
            Py_ssize_t row = t->row[i];                                                                        \
            res[row] = (long long)count_query(t, t->pts + i * d, r[row], strict, d);                           \
        }                                                                                                      \
    }
SPECIALISE(1, 1)
SPECIALISE(2, 2)
SPECIALISE(3, 3)
SPECIALISE(4, 4)
SPECIALISE(any, 0)

static void knn_all(const Tree *t, int k, double *res, long long *res_rows) {
    switch (t->d) {
    case 1: knn_all_1(t, k, res, res_rows); break;
    case 2: knn_all_2(t, k, res, res_rows); break;
    case 3: knn_all_3(t, k, res, res_rows); break;
    case 4: knn_all_4(t, k, res, res_rows); break;
    default: knn_all_any(t, k, res, res_rows);
    }
}

static void count_all(const Tree *t, const double *r, int strict, long long *res) {
    switch (t->d) {
    case 1: count_all_1(t, r, strict, res); break;
    case 2: count_all_2(t, r, strict, res); break;
    case 3: count_all_3(t, r, strict, res); break;
    case 4: count_all_4(t, r, strict, res); break;
    default: count_all_any(t, r, strict, res);
    }
}

static int check_buffer(Py_buffer *buf, Py_ssize_t items, Py_ssize_t itemsize, const char *name) {
    if (buf->len != items * itemsize) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd bytes, got %zd", name, items * itemsize, buf->len);
        return -1;
    }
    return 0;
}

/* nearest(points, n, d, k, out_dist, out_rows): per row, the distances (ascending) to its k nearest other
 * rows into out_dist (n * k float64) and, unless out_rows is None, their input rows (n * k int64). */
static PyObject *nearest(PyObject *self, PyObject *args) {
    Py_buffer pts, out, rows = {0};
    PyObject *rows_obj;
    Py_ssize_t n;
    int d, k;
    if (!PyArg_ParseTuple(args, "y*niiw*O", &pts, &n, &d, &k, &out, &rows_obj)) return NULL;
    PyObject *result = NULL;
    if (rows_obj != Py_None && PyObject_GetBuffer(rows_obj, &rows, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0)
        goto done;
    if (n < 1 || d < 1 || k < 1 || k > MAX_K || k >= n) {
        PyErr_Format(PyExc_ValueError, "nearest: need n >= 2, d >= 1 and 1 <= k < n, k <= %d", MAX_K);
        goto done;
    }
    if (check_buffer(&pts, n * d, sizeof(double), "points") || check_buffer(&out, n * k, sizeof(double), "out_dist") ||
        (rows.buf && check_buffer(&rows, n * k, sizeof(long long), "out_rows")))
        goto done;
    Tree t;
    int failed;
    Py_BEGIN_ALLOW_THREADS
    failed = tree_build(&t, (const double *)pts.buf, n, d);
    if (!failed) {
        knn_all(&t, k, (double *)out.buf, (long long *)rows.buf);
        tree_free(&t);
    }
    Py_END_ALLOW_THREADS
    if (failed) {
        PyErr_NoMemory();
        goto done;
    }
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&pts);
    PyBuffer_Release(&out);
    if (rows.buf) PyBuffer_Release(&rows);
    return result;
}

static PyObject *count_within(PyObject *self, PyObject *args) {
    Py_buffer pts, radius, out;
    Py_ssize_t n;
    int d, strict;
    if (!PyArg_ParseTuple(args, "y*niy*pw*", &pts, &n, &d, &radius, &strict, &out)) return NULL;
    PyObject *result = NULL;
    if (n < 1 || d < 1) {
        PyErr_SetString(PyExc_ValueError, "count_within: need n >= 1 and d >= 1");
        goto done;
    }
    if (check_buffer(&pts, n * d, sizeof(double), "points") ||
        check_buffer(&radius, n, sizeof(double), "radius") || check_buffer(&out, n, sizeof(long long), "out"))
        goto done;
    Tree t;
    int failed;
    Py_BEGIN_ALLOW_THREADS
    failed = tree_build(&t, (const double *)pts.buf, n, d);
    if (!failed) {
        count_all(&t, (const double *)radius.buf, strict, (long long *)out.buf);
        tree_free(&t);
    }
    Py_END_ALLOW_THREADS
    if (failed) {
        PyErr_NoMemory();
        goto done;
    }
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&pts);
    PyBuffer_Release(&radius);
    PyBuffer_Release(&out);
    return result;
}

/* The four one-sided tests of a run: kind 0 / 1 the strict lower / upper end, 2 / 3 the closed ones. Each
 * is false...false true...true over ascending s: fl(q - s_j) falls and fl(s_j - q) rises with s_j. */
FORCE_INLINE int run_test(const double *s, Py_ssize_t j, double q, double r, const int kind) {
    switch (kind) {
    case 0: return (q - s[j]) < r;
    case 1: return (s[j] - q) >= r;
    case 2: return (q - s[j]) <= r;
    default: return (s[j] - q) > r;
    }
}

/* First j in [0, n) where run_test holds (n if none), galloping out from `hint` and then bisecting: about
 * 2 log2 |answer - hint| tests, few when consecutive queries are close (they come in ascending order). */
FORCE_INLINE Py_ssize_t first_true(const double *s, Py_ssize_t n, Py_ssize_t hint, double q, double r,
                                   const int kind) {
    if (n == 0) return 0;
    Py_ssize_t lo, hi, step = 1; /* invariant: the test fails at lo (or lo == -1), holds at hi (or hi == n) */
    hint = hint < 0 ? 0 : (hint > n - 1 ? n - 1 : hint);
    if (run_test(s, hint, q, r, kind)) {
        hi = hint;
        for (;;) {
            lo = hi - step;
            if (lo < 0) {
                lo = -1;
                break;
            }
            if (!run_test(s, lo, q, r, kind)) break;
            hi = lo;
            step <<= 1;
        }
    } else {
        lo = hint;
        for (;;) {
            hi = lo + step;
            if (hi >= n) {
                hi = n;
                break;
            }
            if (run_test(s, hi, q, r, kind)) break;
            lo = hi;
            step <<= 1;
        }
    }
    while (hi - lo > 1) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (run_test(s, mid, q, r, kind))
            hi = mid;
        else
            lo = mid;
    }
    return hi;
}

/* run_bounds(s, v, r, strict, lo, hi): per query v_i, the run [lo_i, hi_i) of the ascending values s with
 * |v_i - s_j| < r_i (strict) or <= r_i, searched with that floating-point test itself, so the ends are
 * exact. Any query order is right; ascending queries are fastest (each search starts at the last end). */
static PyObject *run_bounds(PyObject *self, PyObject *args) {
    Py_buffer sb, vb, rb, lob, hib;
    int strict;
    if (!PyArg_ParseTuple(args, "y*y*y*pw*w*", &sb, &vb, &rb, &strict, &lob, &hib)) return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = sb.len / (Py_ssize_t)sizeof(double), m = vb.len / (Py_ssize_t)sizeof(double);
    if (check_buffer(&rb, m, sizeof(double), "radius") || check_buffer(&lob, m, sizeof(long long), "lo") ||
        check_buffer(&hib, m, sizeof(long long), "hi"))
        goto done;
    const double *sv = (const double *)sb.buf, *v = (const double *)vb.buf, *r = (const double *)rb.buf;
    long long *lo = (long long *)lob.buf, *hi = (long long *)hib.buf;
    Py_BEGIN_ALLOW_THREADS
    Py_ssize_t a = 0, b = 0;
    for (Py_ssize_t i = 0; i < m; i++) {
        double q = v[i], ri = r[i];
        a = strict ? first_true(sv, n, a, q, ri, 0) : first_true(sv, n, a, q, ri, 2);
        b = strict ? first_true(sv, n, b, q, ri, 1) : first_true(sv, n, b, q, ri, 3);
        lo[i] = a;
        hi[i] = b > a ? b : a;
    }
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&sb);
    PyBuffer_Release(&vb);
    PyBuffer_Release(&rb);
    PyBuffer_Release(&lob);
    PyBuffer_Release(&hib);
    return result;
}

/* class_kth_1d(s, lab, k, out): rows sorted by (label, value), s their values and lab their labels; per row
 * i, out[i] = the distance to its k[i]-th nearest other row of the same label (inf where k[i] < 1 or the
 * label has too few rows). In 1-D the nearer rows of a label on either side come in order of distance, so
 * the k-th is found by merging the two sides: O(k) per row. Distances are s_i - s_l and s_r - s_i for
 * s_l <= s_i <= s_r, exactly the brute force's |s_i - s_j|. */
static PyObject *class_kth_1d(PyObject *self, PyObject *args) {
    Py_buffer sb, lb, kb, ob;
    if (!PyArg_ParseTuple(args, "y*y*y*w*", &sb, &lb, &kb, &ob)) return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = sb.len / (Py_ssize_t)sizeof(double);
    if (check_buffer(&lb, n, sizeof(long long), "labels") || check_buffer(&kb, n, sizeof(long long), "k") ||
        check_buffer(&ob, n, sizeof(double), "out"))
        goto done;
    const double *sv = (const double *)sb.buf;
    const long long *lab = (const long long *)lb.buf, *kk = (const long long *)kb.buf;
    double *out = (double *)ob.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t l = i - 1, r = i + 1;
        double dist = INFINITY;
        for (long long t = 0; t < kk[i]; t++) {
            int left_ok = l >= 0 && lab[l] == lab[i], right_ok = r < n && lab[r] == lab[i];
            double dl = left_ok ? sv[i] - sv[l] : INFINITY, dr = right_ok ? sv[r] - sv[i] : INFINITY;
            if (!left_ok && !right_ok) {
                dist = INFINITY;
                break;
            }
            if (dl <= dr) {
                dist = dl;
                l--;
            } else {
                dist = dr;
                r++;
            }
        }
        out[i] = dist;
    }
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&sb);
    PyBuffer_Release(&lb);
    PyBuffer_Release(&kb);
    PyBuffer_Release(&ob);
    return result;
}

/* rank_box_counts(p, xlo, xhi, ylo, yhi, out): for a permutation p of 0..n-1 (x-rank -> y-rank) and
 * per query i the rank runs [xlo_i, xhi_i) and [ylo_i, yhi_i), out[i] = #{a in [xlo_i, xhi_i): ylo_i <=
 * p[a] < yhi_i} (all int64, n each). Offline: one sweep over the x-ranks inserts p[a] into a Fenwick tree
 * over the y-ranks, and each query reads its y-run there at xlo_i (subtracted) and at xhi_i (added):
 * O(n log n), no comparison of coordinates at all (the runs already encode the exact distance tests). */
static void fenwick_counts(Py_ssize_t n, const long long *p, const long long *xlo, const long long *xhi,
                           const long long *ylo, const long long *yhi, long long *out, Py_ssize_t *head,
                           Py_ssize_t *next, int *fen) {
    /* events: query i at boundary xlo_i (slot 2i) and at xhi_i (slot 2i + 1), in singly linked lists */
    for (Py_ssize_t b = 0; b <= n; b++) head[b] = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        out[i] = 0;
        next[2 * i] = head[xlo[i]];
        head[xlo[i]] = 2 * i;
        next[2 * i + 1] = head[xhi[i]];
        head[xhi[i]] = 2 * i + 1;
    }
    memset(fen, 0, sizeof(int) * (size_t)(n + 1));
    for (Py_ssize_t b = 0; b <= n; b++) {
        for (Py_ssize_t e = head[b]; e >= 0; e = next[e]) { /* ranks < b are inserted */
            Py_ssize_t i = e >> 1;
            long long inside = 0;
            for (Py_ssize_t j = yhi[i]; j > 0; j -= j & -j) inside += fen[j];
            for (Py_ssize_t j = ylo[i]; j > 0; j -= j & -j) inside -= fen[j];
            out[i] += (e & 1) ? inside : -inside;
        }
        if (b < n)
            for (Py_ssize_t j = p[b] + 1; j <= n; j += j & -j) fen[j]++;
    }
}

static PyObject *rank_box_counts(PyObject *self, PyObject *args) {
    Py_buffer buf[6];
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*w*", &buf[0], &buf[1], &buf[2], &buf[3], &buf[4], &buf[5]))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = buf[0].len / (Py_ssize_t)sizeof(long long);
    for (int b = 0; b < 6; b++)
        if (check_buffer(&buf[b], n, sizeof(long long), "rank_box_counts argument")) goto done;
    const long long *v[5];
    for (int b = 0; b < 5; b++) v[b] = (const long long *)buf[b].buf;
    for (Py_ssize_t i = 0; i < n; i++) /* the sweep indexes with these: refuse anything out of range */
        if (v[0][i] < 0 || v[0][i] >= n || v[1][i] < 0 || v[1][i] > v[2][i] || v[2][i] > n || v[3][i] < 0 ||
            v[3][i] > v[4][i] || v[4][i] > n) {
            PyErr_SetString(PyExc_ValueError, "rank_box_counts: ranks and runs must lie in [0, n]");
            goto done;
        }
    Py_ssize_t *head = malloc(sizeof(Py_ssize_t) * (size_t)(n + 1));
    Py_ssize_t *next = malloc(sizeof(Py_ssize_t) * (size_t)(2 * n + 1));
    int *fen = malloc(sizeof(int) * (size_t)(n + 1));
    if (head && next && fen) {
        Py_BEGIN_ALLOW_THREADS
        fenwick_counts(n, v[0], v[1], v[2], v[3], v[4], (long long *)buf[5].buf, head, next, fen);
        Py_END_ALLOW_THREADS
        result = Py_None;
        Py_INCREF(result);
    } else {
        PyErr_NoMemory();
    }
    free(head);
    free(next);
    free(fen);
done:
    for (int b = 0; b < 6; b++) PyBuffer_Release(&buf[b]);
    return result;
}

static PyMethodDef methods[] = {
    {"nearest", nearest, METH_VARARGS,
     "nearest(points, n, d, k, out_dist, out_rows): max-norm distances (and rows, or None) of each row's k "
     "nearest other rows."},
    {"class_kth_1d", class_kth_1d, METH_VARARGS,
     "class_kth_1d(s, lab, k, out): per row sorted by (label, value), the k-th nearest same-label distance."},
    {"run_bounds", run_bounds, METH_VARARGS,
     "run_bounds(s, v, r, strict, lo, hi): per query the run of sorted s within r of v (exact ends)."},
    {"rank_box_counts", rank_box_counts, METH_VARARGS,
     "rank_box_counts(p, xlo, xhi, ylo, yhi, out): #{a in [xlo, xhi): ylo <= p[a] < yhi} per query."},
    {"count_within", count_within, METH_VARARGS,
     "count_within(points, n, d, radius, strict, out): rows within radius[i] of row i (itself included)."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_knn_kernel",
                                    "Exact max-norm k-NN distances and radius counts (compiled k-d tree).", -1,
                                    methods};

PyMODINIT_FUNC PyInit__knn_kernel(void) { return PyModule_Create(&module); }
