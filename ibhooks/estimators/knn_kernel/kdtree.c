/* Exact max-norm k-NN distances and radius counts on a k-d tree (part of the compiled kNN kernel).
 *
 * Distances are max_k |x_ik - x_jk|, the same floating-point operations as the blocked brute force, so
 * the values are identical to it. Pruning is exact too: node boxes are the tight bounds of their
 * points, and rounding is monotone, so fl(lo - q) <= fl(p - q) for every point p >= lo of the node
 * (and likewise for the upper side): a box's computed lower bound never exceeds the computed distance
 * of a point inside it, and its computed upper bound never falls below one.
 *
 * The tree splits the widest side of each box near the median down to leaves of at most LEAF rows and
 * stores the points in tree order; each row's k-NN search starts from its own leaf, and queries run in
 * tree order (neighbouring queries walk the same nodes).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "knn_kernel.h"

#ifndef LEAF
#define LEAF 8
#endif

void tree_free(Tree *t) {
    free(t->pts);
    free(t->row);
    free(t->nodes);
    free(t->lo);
    free(t->hi);
}

/* Swap rows i and j of the points (d coordinates each) and of their input row numbers. */
FORCE_INLINE void swap_rows_d(Tree *t, idx_t i, idx_t j, const int d) {
    double *p = t->pts + i * d, *q = t->pts + j * d;
    for (int c = 0; c < d; c++) {
        double tmp = p[c];
        p[c] = q[c];
        q[c] = tmp;
    }
    idx_t tmp = t->row[i];
    t->row[i] = t->row[j];
    t->row[j] = tmp;
}

static void swap_rows(Tree *t, idx_t i, idx_t j) {
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
static void nth_element(Tree *t, idx_t a, idx_t b, idx_t m, int dim) {
    const int d = t->d;
    const double *key = t->pts + dim;
    while (b > a) {
        idx_t mid = a + (b - a) / 2;
        double x = key[a * d], y = key[mid * d], z = key[b * d];
        double pivot = (x < y) ? ((y < z) ? y : ((x < z) ? z : x)) : ((x < z) ? x : ((y < z) ? z : y));
        idx_t i = a, j = b;
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
static idx_t split_rows(Tree *t, idx_t start, idx_t stop, int dim) {
    const int d = t->d;
    const double *key = t->pts + dim;
    idx_t size = stop - start;
    double sample[9];
    for (int i = 0; i < 9; i++) {
        double v = key[(start + (size * (2 * i + 1)) / 18) * d];
        int j = i;
        for (; j > 0 && sample[j - 1] > v; j--) sample[j] = sample[j - 1];
        sample[j] = v;
    }
    double pivot = sample[4];
    idx_t store = start;
    switch (d) {
#define PARTITION(D)                                                                                           \
    for (idx_t i = start; i < stop; i++) {                                                                \
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
    idx_t smallest = size / 4 > LEAF / 2 ? size / 4 : LEAF / 2;
    if (store - start >= smallest && stop - store >= smallest) return store;
    idx_t mid = start + size / 2;
    nth_element(t, start, stop - 1, mid, dim);
    return mid;
}

/* The tight box [lo, hi] of m points (d coordinates each), kept in locals (no stores through pointers that
 * might alias the points) and specialised for d = 1..4. */
FORCE_INLINE void box_of_d(const double *pts, idx_t m, double *lo, double *hi, const int d) {
    double l[4] = {INFINITY, INFINITY, INFINITY, INFINITY}, h[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    for (idx_t i = 0; i < m; i++)
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

static void box_of(const double *pts, idx_t m, int d, double *lo, double *hi) {
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
    for (idx_t i = 0; i < m; i++)
        for (int c = 0; c < d; c++) {
            double v = pts[i * d + c];
            lo[c] = v < lo[c] ? v : lo[c];
            hi[c] = v > hi[c] ? v : hi[c];
        }
}

static idx_t build_node(Tree *t, idx_t start, idx_t stop) {
    int d = t->d;
    idx_t id = t->n_nodes++;
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
    idx_t mid = split_rows(t, start, stop, dim);
    idx_t left = build_node(t, start, mid);
    idx_t right = build_node(t, mid, stop);
    t->nodes[id].left = left;
    t->nodes[id].right = right;
    t->nodes[left].parent = t->nodes[right].parent = id;
    return id;
}

int tree_build(Tree *t, const double *src, idx_t n, int d) {
    memset(t, 0, sizeof(*t));
    t->n = n;
    t->d = d;
    /* every leaf holds at least LEAF / 2 rows when n > LEAF, so there are fewer than 2 n / (LEAF / 2) + 1 nodes */
    idx_t max_nodes = 2 * (n / (LEAF / 2) + 1) + 1;
    t->pts = malloc(sizeof(double) * (size_t)(n * d > 0 ? n * d : 1));
    t->row = malloc(sizeof(idx_t) * (size_t)(n > 0 ? n : 1));
    t->nodes = malloc(sizeof(Node) * (size_t)max_nodes);
    t->lo = malloc(sizeof(double) * (size_t)(max_nodes * d));
    t->hi = malloc(sizeof(double) * (size_t)(max_nodes * d));
    if (!t->pts || !t->row || !t->nodes || !t->lo || !t->hi) {
        tree_free(t);
        return -1;
    }
    memcpy(t->pts, src, sizeof(double) * (size_t)(n * d));
    for (idx_t i = 0; i < n; i++) t->row[i] = i;
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
FORCE_INLINE void knn_scan(const Tree *t, idx_t start, idx_t stop, const double *q, idx_t self,
                           int k, double *best, idx_t *who, const int d) {
    for (idx_t j = start; j < stop; j++) {
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
FORCE_INLINE void knn_subtree(const Tree *t, idx_t root, double bound, const double *q, idx_t self,
                              int k, double *best, idx_t *who, const int d) {
    idx_t stack_node[STACK];
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
FORCE_INLINE void knn_query(const Tree *t, idx_t leaf, idx_t self, int k, double *best, idx_t *who,
                            const int d) {
    const double *q = t->pts + self * d;
    for (int j = 0; j < k; j++) {
        best[j] = INFINITY;
        if (who) who[j] = -1;
    }
    knn_scan(t, t->nodes[leaf].start, t->nodes[leaf].stop, q, self, k, best, who, d);
    for (idx_t cur = leaf, up = t->nodes[leaf].parent; up >= 0; cur = up, up = t->nodes[up].parent) {
        idx_t sib = t->nodes[up].left == cur ? t->nodes[up].right : t->nodes[up].left;
        double bound = box_lower(t->lo + sib * d, t->hi + sib * d, q, d);
        if (bound < best[k - 1]) knn_subtree(t, sib, bound, q, self, k, best, who, d);
    }
}

/* #{rows p: dist(p, q) < r} (strict) or <= r, q any point. */
FORCE_INLINE idx_t count_query(const Tree *t, const double *q, double r, int strict, const int d) {
    idx_t stack_node[STACK], count = 0;
    int top = 1;
    stack_node[0] = 0;
    while (top) {
        idx_t id = stack_node[--top];
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
            for (idx_t j = nd->start; j < nd->stop; j++) {
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
        idx_t who[MAX_K];                                                                                 \
        for (idx_t leaf = 0; leaf < t->n_nodes; leaf++) {                                                 \
            if (t->nodes[leaf].left >= 0) continue;                                                            \
            for (idx_t i = t->nodes[leaf].start; i < t->nodes[leaf].stop; i++) {                         \
                knn_query(t, leaf, i, k, best, res_rows ? who : NULL, d);                                      \
                idx_t row = t->row[i];                                                                    \
                memcpy(res + row * k, best, sizeof(double) * (size_t)k);                                       \
                if (res_rows)                                                                                  \
                    for (int j = 0; j < k; j++) res_rows[row * k + j] = (long long)t->row[who[j]];            \
            }                                                                                                  \
        }                                                                                                      \
    }                                                                                                          \
    static void count_all_##suffix(const Tree *t, const double *r, int strict, long long *res) {             \
        const int d = (D) ? (D) : t->d;                                                                        \
        for (idx_t i = 0; i < t->n; i++) {                                                                \
            idx_t row = t->row[i];                                                                        \
            res[row] = (long long)count_query(t, t->pts + i * d, r[row], strict, d);                           \
        }                                                                                                      \
    }
SPECIALISE(1, 1)
SPECIALISE(2, 2)
SPECIALISE(3, 3)
SPECIALISE(4, 4)
SPECIALISE(any, 0)

void knn_all(const Tree *t, int k, double *res, long long *res_rows) {
    switch (t->d) {
    case 1: knn_all_1(t, k, res, res_rows); break;
    case 2: knn_all_2(t, k, res, res_rows); break;
    case 3: knn_all_3(t, k, res, res_rows); break;
    case 4: knn_all_4(t, k, res, res_rows); break;
    default: knn_all_any(t, k, res, res_rows);
    }
}

void count_all(const Tree *t, const double *r, int strict, long long *res) {
    switch (t->d) {
    case 1: count_all_1(t, r, strict, res); break;
    case 2: count_all_2(t, r, strict, res); break;
    case 3: count_all_3(t, r, strict, res); break;
    case 4: count_all_4(t, r, strict, res); break;
    default: count_all_any(t, r, strict, res);
    }
}
