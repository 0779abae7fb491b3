/* ibhooks.estimators._knn_kernel: the Python face of the optional compiled kNN kernel.
 *
 * Built by setup.py where a C compiler is present (optional: ibhooks falls back to scipy and numpy
 * without it; ibhooks/estimators/_knn_compiled.py is the numpy wrapper the estimators call). Every
 * function takes C-contiguous buffers (float64 or int64, as named), writes into preallocated outputs,
 * checks their sizes, and releases the GIL while it computes:
 *
 *   nearest(points, n, d, k, out_dist, out_rows)    per row of the (n, d) points, the distances to its
 *                                                   k nearest other rows (ascending) and, unless out_rows
 *                                                   is None, their rows
 *   count_within(points, n, d, radius, strict, out) per row i, #{rows within radius[i]}, itself included
 *   run_bounds(s, v, r, strict, lo, hi)             per query v_i, the run of the ascending s within r_i
 *   class_kth_1d(s, lab, k, out)                    rows sorted by (label, value): the k_i-th nearest
 *                                                   distance within the row's label
 *   rank_box_counts(p, xlo, xhi, ylo, yhi, out)     #{a in [xlo_i, xhi_i): ylo_i <= p[a] < yhi_i}
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "knn_kernel.h"

static int check_buffer(Py_buffer *buf, Py_ssize_t items, Py_ssize_t itemsize, const char *name) {
    if (buf->len != items * itemsize) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd bytes, got %zd", name, items * itemsize, buf->len);
        return -1;
    }
    return 0;
}

static PyObject *none_or_error(int failed) {
    if (failed) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *nearest(PyObject *self, PyObject *args) {
    Py_buffer pts, out, rows = {0};
    PyObject *rows_obj, *result = NULL;
    Py_ssize_t n;
    int d, k, failed;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*niiw*O", &pts, &n, &d, &k, &out, &rows_obj)) return NULL;
    if (rows_obj != Py_None && PyObject_GetBuffer(rows_obj, &rows, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0)
        goto done;
    if (n < 1 || d < 1 || k < 1 || k > MAX_K || k >= n) {
        PyErr_Format(PyExc_ValueError, "nearest: need n >= 2, d >= 1 and 1 <= k < n, k <= %d", MAX_K);
        goto done;
    }
    if (check_buffer(&pts, n * d, sizeof(double), "points") ||
        check_buffer(&out, n * k, sizeof(double), "out_dist") ||
        (rows.buf && check_buffer(&rows, n * k, sizeof(long long), "out_rows")))
        goto done;
    Py_BEGIN_ALLOW_THREADS
    Tree t;
    failed = tree_build(&t, (const double *)pts.buf, n, d);
    if (!failed) {
        knn_all(&t, k, (double *)out.buf, (long long *)rows.buf);
        tree_free(&t);
    }
    Py_END_ALLOW_THREADS
    result = none_or_error(failed);
done:
    PyBuffer_Release(&pts);
    PyBuffer_Release(&out);
    if (rows.buf) PyBuffer_Release(&rows);
    return result;
}

static PyObject *count_within(PyObject *self, PyObject *args) {
    Py_buffer pts, radius, out;
    PyObject *result = NULL;
    Py_ssize_t n;
    int d, strict, failed;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*niy*pw*", &pts, &n, &d, &radius, &strict, &out)) return NULL;
    if (n < 1 || d < 1) {
        PyErr_SetString(PyExc_ValueError, "count_within: need n >= 1 and d >= 1");
        goto done;
    }
    if (check_buffer(&pts, n * d, sizeof(double), "points") ||
        check_buffer(&radius, n, sizeof(double), "radius") || check_buffer(&out, n, sizeof(long long), "out"))
        goto done;
    Py_BEGIN_ALLOW_THREADS
    Tree t;
    failed = tree_build(&t, (const double *)pts.buf, n, d);
    if (!failed) {
        count_all(&t, (const double *)radius.buf, strict, (long long *)out.buf);
        tree_free(&t);
    }
    Py_END_ALLOW_THREADS
    result = none_or_error(failed);
done:
    PyBuffer_Release(&pts);
    PyBuffer_Release(&radius);
    PyBuffer_Release(&out);
    return result;
}

static PyObject *run_bounds(PyObject *self, PyObject *args) {
    Py_buffer sb, vb, rb, lob, hib;
    PyObject *result = NULL;
    int strict;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*y*y*pw*w*", &sb, &vb, &rb, &strict, &lob, &hib)) return NULL;
    Py_ssize_t n = sb.len / (Py_ssize_t)sizeof(double), m = vb.len / (Py_ssize_t)sizeof(double);
    if (check_buffer(&rb, m, sizeof(double), "radius") || check_buffer(&lob, m, sizeof(long long), "lo") ||
        check_buffer(&hib, m, sizeof(long long), "hi"))
        goto done;
    Py_BEGIN_ALLOW_THREADS
    run_bounds_sorted((const double *)sb.buf, n, (const double *)vb.buf, (const double *)rb.buf, m, strict,
                      (long long *)lob.buf, (long long *)hib.buf);
    Py_END_ALLOW_THREADS
    result = none_or_error(0);
done:
    PyBuffer_Release(&sb);
    PyBuffer_Release(&vb);
    PyBuffer_Release(&rb);
    PyBuffer_Release(&lob);
    PyBuffer_Release(&hib);
    return result;
}

static PyObject *class_kth_1d(PyObject *self, PyObject *args) {
    Py_buffer sb, lb, kb, ob;
    PyObject *result = NULL;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*y*y*w*", &sb, &lb, &kb, &ob)) return NULL;
    Py_ssize_t n = sb.len / (Py_ssize_t)sizeof(double);
    if (check_buffer(&lb, n, sizeof(long long), "labels") || check_buffer(&kb, n, sizeof(long long), "k") ||
        check_buffer(&ob, n, sizeof(double), "out"))
        goto done;
    Py_BEGIN_ALLOW_THREADS
    class_kth_sorted((const double *)sb.buf, (const long long *)lb.buf, (const long long *)kb.buf, n,
                     (double *)ob.buf);
    Py_END_ALLOW_THREADS
    result = none_or_error(0);
done:
    PyBuffer_Release(&sb);
    PyBuffer_Release(&lb);
    PyBuffer_Release(&kb);
    PyBuffer_Release(&ob);
    return result;
}

static PyObject *rank_box_counts(PyObject *self, PyObject *args) {
    Py_buffer buf[6];
    PyObject *result = NULL;
    int failed;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*w*", &buf[0], &buf[1], &buf[2], &buf[3], &buf[4], &buf[5]))
        return NULL;
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
    Py_BEGIN_ALLOW_THREADS
    failed = fenwick_box_counts(n, v[0], v[1], v[2], v[3], v[4], (long long *)buf[5].buf);
    Py_END_ALLOW_THREADS
    result = none_or_error(failed);
done:
    for (int b = 0; b < 6; b++) PyBuffer_Release(&buf[b]);
    return result;
}

static PyMethodDef methods[] = {
    {"nearest", nearest, METH_VARARGS,
     "nearest(points, n, d, k, out_dist, out_rows): max-norm distances (and rows, or None) of each row's k "
     "nearest other rows."},
    {"count_within", count_within, METH_VARARGS,
     "count_within(points, n, d, radius, strict, out): rows within radius[i] of row i (itself included)."},
    {"run_bounds", run_bounds, METH_VARARGS,
     "run_bounds(s, v, r, strict, lo, hi): per query the run of sorted s within r of v (exact ends)."},
    {"class_kth_1d", class_kth_1d, METH_VARARGS,
     "class_kth_1d(s, lab, k, out): per row sorted by (label, value), the k-th nearest same-label distance."},
    {"rank_box_counts", rank_box_counts, METH_VARARGS,
     "rank_box_counts(p, xlo, xhi, ylo, yhi, out): #{a in [xlo, xhi): ylo <= p[a] < yhi} per query."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_knn_kernel",
                                    "Exact max-norm k-NN distances and neighbour counts (compiled).", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__knn_kernel(void) { return PyModule_Create(&module); }
