/* One-dimensional searches on sorted values and counts over rank runs (part of the compiled kNN kernel).
 *
 * Along one coordinate the rows within |v - s_j| < r (or <= r) of a query form one run of the sorted
 * values, because fl(v - s_j) falls and fl(s_j - v) rises with s_j: its ends are found by searching on
 * that floating-point test itself, so they are exact. A 2-D max-norm box is then a pair of rank runs,
 * counted by a Fenwick-tree sweep; the k-th nearest row of the same label in 1-D is found by merging the
 * label's rows on either side.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "knn_kernel.h"

/* The four one-sided tests of a run: kind 0 / 1 the strict lower / upper end, 2 / 3 the closed ones. Each
 * is false...false true...true over ascending s: fl(q - s_j) falls and fl(s_j - q) rises with s_j. */
FORCE_INLINE int run_test(const double *s, idx_t j, double q, double r, const int kind) {
    switch (kind) {
    case 0: return (q - s[j]) < r;
    case 1: return (s[j] - q) >= r;
    case 2: return (q - s[j]) <= r;
    default: return (s[j] - q) > r;
    }
}

/* First j in [0, n) where run_test holds (n if none), galloping out from `hint` and then bisecting: about
 * 2 log2 |answer - hint| tests, few when consecutive queries are close (they come in ascending order). */
FORCE_INLINE idx_t first_true(const double *s, idx_t n, idx_t hint, double q, double r,
                                   const int kind) {
    if (n == 0) return 0;
    idx_t lo, hi, step = 1; /* invariant: the test fails at lo (or lo == -1), holds at hi (or hi == n) */
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
        idx_t mid = lo + (hi - lo) / 2;
        if (run_test(s, mid, q, r, kind))
            hi = mid;
        else
            lo = mid;
    }
    return hi;
}

/* Any query order is right; ascending queries are fastest (each search starts at the last end). */
void run_bounds_sorted(const double *sv, idx_t n, const double *v, const double *r, idx_t m, int strict,
                       long long *lo, long long *hi) {
    idx_t a = 0, b = 0;
    for (idx_t i = 0; i < m; i++) {
        double q = v[i], ri = r[i];
        a = strict ? first_true(sv, n, a, q, ri, 0) : first_true(sv, n, a, q, ri, 2);
        b = strict ? first_true(sv, n, b, q, ri, 1) : first_true(sv, n, b, q, ri, 3);
        lo[i] = a;
        hi[i] = b > a ? b : a;
    }
}

/* In 1-D the nearer rows of a label on either side come in order of distance, so the k-th is found by
 * merging the two sides: O(k) per row. Distances are s_i - s_l and s_r - s_i for s_l <= s_i <= s_r,
 * exactly the brute force's |s_i - s_j|; inf where k[i] < 1 or the label has too few rows. */
void class_kth_sorted(const double *sv, const long long *lab, const long long *kk, idx_t n, double *out) {
    for (idx_t i = 0; i < n; i++) {
        idx_t l = i - 1, r = i + 1;
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
}

/* For a permutation p of 0..n-1 (x-rank -> y-rank) and per query i the rank runs [xlo_i, xhi_i) and
 * [ylo_i, yhi_i), out[i] = #{a in [xlo_i, xhi_i): ylo_i <= p[a] < yhi_i}. Offline: one sweep over the x-ranks inserts p[a] into a Fenwick tree
 * over the y-ranks, and each query reads its y-run there at xlo_i (subtracted) and at xhi_i (added):
 * O(n log n), no comparison of coordinates at all (the runs already encode the exact distance tests). */
static void fenwick_counts(idx_t n, const long long *p, const long long *xlo, const long long *xhi,
                           const long long *ylo, const long long *yhi, long long *out, idx_t *head,
                           idx_t *next, int *fen) {
    /* events: query i at boundary xlo_i (slot 2i) and at xhi_i (slot 2i + 1), in singly linked lists */
    for (idx_t b = 0; b <= n; b++) head[b] = -1;
    for (idx_t i = 0; i < n; i++) {
        out[i] = 0;
        next[2 * i] = head[xlo[i]];
        head[xlo[i]] = 2 * i;
        next[2 * i + 1] = head[xhi[i]];
        head[xhi[i]] = 2 * i + 1;
    }
    memset(fen, 0, sizeof(int) * (size_t)(n + 1));
    for (idx_t b = 0; b <= n; b++) {
        for (idx_t e = head[b]; e >= 0; e = next[e]) { /* ranks < b are inserted */
            idx_t i = e >> 1;
            long long inside = 0;
            for (idx_t j = yhi[i]; j > 0; j -= j & -j) inside += fen[j];
            for (idx_t j = ylo[i]; j > 0; j -= j & -j) inside -= fen[j];
            out[i] += (e & 1) ? inside : -inside;
        }
        if (b < n)
            for (idx_t j = p[b] + 1; j <= n; j += j & -j) fen[j]++;
    }
}

int fenwick_box_counts(idx_t n, const long long *p, const long long *xlo, const long long *xhi,
                       const long long *ylo, const long long *yhi, long long *out) {
    idx_t *head = malloc(sizeof(idx_t) * (size_t)(n + 1));
    idx_t *next = malloc(sizeof(idx_t) * (size_t)(2 * n + 1));
    int *fen = malloc(sizeof(int) * (size_t)(n + 1));
    int ok = head && next && fen;
    if (ok) fenwick_counts(n, p, xlo, xhi, ylo, yhi, out, head, next, fen);
    free(head);
    free(next);
    free(fen);
    return ok ? 0 : -1;
}
