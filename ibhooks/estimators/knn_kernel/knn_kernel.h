/* Shared declarations of ibhooks' optional compiled kNN kernel (module.c binds them to Python).
 *
 * kdtree.c: exact max-norm k-NN distances and radius counts on a k-d tree.
 * ranks.c:  one-dimensional searches on sorted values and counts over rank runs.
 * Plain C99 with no Python or numpy headers; every function is exact against the blocked brute force
 * of ibhooks/estimators/knn.py (see each file's header for why).
 */
#ifndef IBHOOKS_KNN_KERNEL_H
#define IBHOOKS_KNN_KERNEL_H

#include <stddef.h>

typedef ptrdiff_t idx_t;

/* Each k-NN query keeps its k best in a fixed array of this many. */
#define MAX_K 64

#if defined(_MSC_VER)
#define FORCE_INLINE static __forceinline
#else
#define FORCE_INLINE static inline __attribute__((always_inline))
#endif

typedef struct {
    idx_t start, stop; /* rows [start, stop) of the tree order */
    idx_t left, right; /* children; -1 for a leaf */
    idx_t parent;      /* -1 for the root */
} Node;

typedef struct {
    idx_t n;
    int d;
    double *pts; /* n * d, tree order */
    idx_t *row;  /* tree position -> input row */
    Node *nodes;
    double *lo, *hi; /* per node, d bounds */
    idx_t n_nodes;
} Tree;

/* kdtree.c */
int tree_build(Tree *t, const double *src, idx_t n, int d); /* 0, or -1 when out of memory */
void tree_free(Tree *t);
/* Per row, the k (< n, <= MAX_K) distances to its nearest other rows, ascending, into res (n * k) and,
 * unless res_rows is NULL, their input rows (n * k). */
void knn_all(const Tree *t, int k, double *res, long long *res_rows);
/* Per row i, #{rows within r[i] of it} (strict: < r[i], else <= r[i]; the row itself included). */
void count_all(const Tree *t, const double *r, int strict, long long *res);

/* ranks.c */
/* Per query v[i] (m of them), the run [lo[i], hi[i]) of the ascending s (n) within r[i] of it. */
void run_bounds_sorted(const double *s, idx_t n, const double *v, const double *r, idx_t m, int strict,
                       long long *lo, long long *hi);
/* Rows sorted by (label, value): per row, the distance to its k[i]-th nearest other row of its label. */
void class_kth_sorted(const double *s, const long long *lab, const long long *k, idx_t n, double *out);
/* Per query i, #{a in [xlo[i], xhi[i]): ylo[i] <= p[a] < yhi[i]} for a permutation p of 0..n-1; the
 * runs must lie in [0, n]. 0, or -1 when out of memory. */
int fenwick_box_counts(idx_t n, const long long *p, const long long *xlo, const long long *xhi,
                       const long long *ylo, const long long *yhi, long long *out);

#endif
