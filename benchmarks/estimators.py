"""Time and peak memory of the ibhooks estimators against plain numpy/scipy references of the same
formulas, run in the same process on the same data. Prints one table with ratios and the agreement
of the values (|ours - reference| in bits).

    python benchmarks/estimators.py --quick            # small n, a couple of minutes on a laptop CPU
    python benchmarks/estimators.py                    # n = 1k..16k, d in {1, 10, 50}
    python benchmarks/estimators.py --device cuda

References: binning = np.digitize + np.unique over rows (the SZT recipe), H(T) and I(T;Y); KDE =
float64 scipy cdist + logsumexp, both bounds; KSG and Ross = scipy cKDTree (max-norm); matrix Renyi = numpy Gram + eigvalsh.
Peak memory is the high-water mark of the process RSS above its level at the start of the call,
sampled every millisecond by a background thread (CPU), or torch.cuda.max_memory_allocated (CUDA).
No numbers here are asserted anywhere: timings depend on the machine and its load.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import threading
import time
from typing import Any, Callable, List, Optional, Tuple

import numpy as np
import torch
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist
from scipy.special import digamma, logsumexp

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from ibhooks.estimators.registry import make_estimator  # noqa: E402
from ibhooks.estimators import _knn_compiled  # noqa: E402

LN2 = math.log(2.0)
_PAGE = os.sysconf("SC_PAGE_SIZE")


# ---------------------------------------------------------------- measurement


def _fix_malloc_threshold() -> None:
    """Pin glibc's mmap threshold (128 KiB) so freed large buffers go back to the OS and the RSS
    high-water mark of each call is its own (the dynamic threshold would keep them in the heap)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def _peak_memory(fn: Callable[[], float], device: str) -> Tuple[float, float]:
    """(value, peak extra MiB) of one call of ``fn``."""
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        value = fn()
        torch.cuda.synchronize()
        return value, (torch.cuda.max_memory_allocated() - base) / 2**20
    base, peak, stop = _rss(), [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.001)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    try:
        value = fn()
    finally:
        stop.set()
        th.join()
    return value, max(0.0, (max(peak[0], _rss()) - base) / 2**20)


def measure(fn: Callable[[], float], device: str, repeats: int = 1) -> Tuple[float, float, float]:
    """(value, best seconds, peak extra MiB) of ``fn``: one call with the memory sampler, then timed
    calls without it (calls under 50 ms repeat until 0.5 s has passed, at most 200 times)."""
    value, mem = _peak_memory(fn, device)
    best, r = float("inf"), 0
    while r < repeats or (best < 0.05 and r < 200 and best * r < 0.5):
        r += 1
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return value, best, mem


# ---------------------------------------------------------------- references (numpy / scipy)


def ref_binning(t: np.ndarray, y: np.ndarray, n_bins: int = 30) -> float:
    lo, hi = t.min(), t.max()
    edges = np.linspace(lo, hi, n_bins + 1)[1:-1]
    idx = np.digitize(t, edges)
    _, inv, counts = np.unique(idx, axis=0, return_inverse=True, return_counts=True)
    p = counts / counts.sum()
    h_t = -(p * np.log2(p)).sum()
    _, cj = np.unique(np.column_stack([inv.ravel(), y]), axis=0, return_counts=True)
    pj = cj / cj.sum()
    py = np.bincount(y) / len(y)
    return float(h_t - (-(pj * np.log2(pj)).sum() + (py * np.log2(py)).sum()))  # returns I(T;Y); H(T) also done


def ref_kde(t: np.ndarray, noise_var: float = 0.1) -> float:
    """Both pairwise bounds (KL upper, Bhattacharyya lower) as ibhooks computes them; returns the upper."""
    d = cdist(t.astype(np.float64), t.astype(np.float64), "sqeuclidean")
    low = (math.log(len(t)) - logsumexp(-d / (8 * noise_var), axis=1).mean()) / LN2
    up = (math.log(len(t)) - logsumexp(-d / (2 * noise_var), axis=1).mean()) / LN2
    assert low <= up
    return float(up)


def ref_ksg(x: np.ndarray, y: np.ndarray, k: int = 3) -> float:
    x = (x - x.mean(0)) / x.std(0, ddof=1)
    y = (y - y.mean(0)) / y.std(0, ddof=1)
    n, z = len(x), np.hstack([x, y])
    dist, _ = cKDTree(z).query(z, k=k + 1, p=np.inf)
    r = np.nextafter(dist[:, -1], 0)
    nx = cKDTree(x).query_ball_point(x, r, p=np.inf, return_length=True) - 1
    ny = cKDTree(y).query_ball_point(y, r, p=np.inf, return_length=True) - 1
    return float((digamma(k) + digamma(n) - np.mean(digamma(nx + 1) + digamma(ny + 1))) / LN2)


def ref_ross(t: np.ndarray, y: np.ndarray, k: int = 3) -> float:
    t = (t - t.mean(0)) / t.std(0, ddof=1)
    n = len(t)
    radius = np.empty(n)
    counts = np.bincount(y)[y]
    for label in np.unique(y):  # one tree per class, as scikit-learn does
        m = y == label
        dist, _ = cKDTree(t[m]).query(t[m], k=k + 1, p=np.inf)
        radius[m] = np.nextafter(dist[:, -1], 0)
    m_all = cKDTree(t).query_ball_point(t, radius, p=np.inf, return_length=True)
    return float((digamma(n) + digamma(k) - digamma(counts).mean() - digamma(m_all).mean()) / LN2)


def ref_renyi(t: np.ndarray, sigma: float, alpha: float = 1.01) -> float:
    t = t.astype(np.float64)
    sq = (t * t).sum(1)
    d = np.maximum(sq[:, None] + sq[None, :] - 2 * t @ t.T, 0)
    k = np.exp(-d / (2 * sigma * sigma))
    lam = np.clip(np.linalg.eigvalsh(k / np.trace(k)), 0, None)
    lam = lam / lam.sum()
    return float(np.log2((lam ** alpha).sum()) / (1 - alpha))


# ---------------------------------------------------------------- cases


def make_data(n: int, d: int, seed: int = 0) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    t = torch.tanh(x + 0.5 * torch.randn(n, d, generator=g))
    y = (x[:, 0] > 0).long() + (x[:, -1] > 0.5).long()
    return x, t, y


Row = Tuple[str, int, int, float, float, Optional[float], Optional[float], Optional[float], Optional[float]]


def run_case(name: str, n: int, d: int, device: str, repeats: int, ref_mem_limit_gb: float,
             params: Optional[dict] = None) -> Row:
    x, t, y = make_data(n, d)
    xd, td, yd = x.to(device), t.to(device), y.to(device)
    tn, xn, yn = t.double().numpy(), x.double().numpy(), y.numpy()
    params = dict(params or {})
    ref: Optional[Callable[[], float]] = None
    ref_bytes = 0.0
    if name == "binning":
        est = make_estimator(("binning", params))
        ours = lambda: est.layer_information(td, yd)[1].value  # noqa: E731  (H(T) and I(T;Y))
        ref = lambda: ref_binning(tn, yn)  # noqa: E731
    elif name == "kde":
        est = make_estimator(("kde", params))
        ours = lambda: est.layer_information(td)[0].value  # noqa: E731
        ref, ref_bytes = (lambda: ref_kde(tn)), 3 * 8.0 * n * n
    elif name == "ksg":
        est = make_estimator(("ksg", params))
        ours = lambda: est.mutual_information(xd, td).value  # noqa: E731
        ref = lambda: ref_ksg(xn, tn)  # noqa: E731
    elif name == "ross":
        est = make_estimator(("ross", params))
        ours = lambda: est.mutual_information(td, yd).value  # noqa: E731
        ref = lambda: ref_ross(tn, yn)  # noqa: E731
    elif name == "renyi":
        est = make_estimator(("renyi", dict({"sigma": 1.0, "batch_size": n}, **params)))
        ours = lambda: est.layer_information(td)[0].value  # noqa: E731
        ref, ref_bytes = (lambda: ref_renyi(tn, 1.0)), 4 * 8.0 * n * n
    elif name in ("noisy_channel", "infonce"):
        est = make_estimator((name, params))
        ours = lambda: est.layer_information(td, yd)[0].value  # noqa: E731
    else:
        raise ValueError(name)
    ours()  # warm-up (lazy imports, allocator)
    v, s, m = measure(ours, device, repeats)
    if ref is None:
        return name, n, d, s, m, None, None, None, None
    if ref_bytes > ref_mem_limit_gb * 2**30:
        return name, n, d, s, m, None, None, None, ref_bytes / 2**30
    rv, rs, rm = measure(ref, "cpu", repeats)
    return name, n, d, s, m, rs, rm, abs(v - rv), None


def _interleaved(fns: List[Callable[[], Any]], repeats: int, clock: Callable[[], float] = time.perf_counter
                 ) -> List[float]:
    """Best time of each of ``fns`` on ``clock`` (wall by default; ``time.process_time`` for the CPU time
    of this process), timed in turn (ours, theirs, ours, ...) so that a changing load on a shared machine
    hits both alike; each at least ``repeats`` times and for at least 0.3 s."""
    best = [float("inf")] * len(fns)
    for f in fns:
        f()  # warm-up
    r, t_start = 0, time.perf_counter()
    while r < repeats or (time.perf_counter() - t_start < 0.3 * len(fns) and r < 50):
        r += 1
        for i, f in enumerate(fns):
            t0 = clock()
            f()
            best[i] = min(best[i], clock() - t0)
    return best


def npeet_ratios(ns: List[int], ds: List[int], repeats: int, cpu_time: bool = False
                 ) -> List[Tuple[str, int, int, float, float, float]]:
    """KSG and Ross (default neighbors='auto') against NPEET's ``mi`` / ``micd`` on the same data in this
    process (npeet-plus, the bench extra; skipped with a note when not importable). Both are timed in
    turn, best of several calls; |diff| is |ours - NPEET| in bits (KSG: the same estimator, so only
    their different tie-breaking noise separates them; Ross vs NPEET's H(T) - H(T|Y): different
    estimators of the same quantity)."""
    try:
        import npeet_plus as npeet
    except ImportError as exc:
        print(f"# NPEET comparison skipped: {exc}")
        return []
    clock = time.process_time if cpu_time else time.perf_counter
    print(f"# {'CPU' if cpu_time else 'wall'} time, best of >= {repeats} calls each; load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"{'estimator':<10}{'n':>7}{'d':>4}{'ours ms':>10}{'npeet ms':>10}{'npeet/ours':>12}"
          f"{'|diff| bits':>13}  search")
    out = []
    for d in ds:
        for n in ns:
            x, t, y = make_data(n, d)
            xn, tn, yn = x.double().numpy(), t.double().numpy(), y.numpy().reshape(-1, 1)
            for name, ours, ref in (
                ("ksg", lambda: make_estimator("ksg").mutual_information(x, t),
                 lambda: npeet.mi(xn, tn, k=3)),
                ("ross", lambda: make_estimator("ross").mutual_information(t, y),
                 lambda: npeet.micd(tn, yn, k=3, warning=False)),
            ):
                e = ours()
                s_ours, s_ref = _interleaved([ours, ref], repeats, clock)
                diff = abs(e.value - float(ref()))
                search = e.diagnostics["neighbor_search"] + (f" ({e.diagnostics['tree_engine']})"
                                                             if "tree_engine" in e.diagnostics else "")
                print(f"{name:<10}{n:>7}{d:>4}{_ms(s_ours):>10}{_ms(s_ref):>10}{s_ref / s_ours:>12.2f}"
                      f"{diff:>13.2e}  {search}")
                sys.stdout.flush()
                out.append((name, n, d, s_ours, s_ref, diff))
    return out


def large_kde(n: int, block_mib: int, device: str) -> None:
    """Blocked KDE at large n: time and peak extra memory under a ``max_block_bytes`` cap."""
    _, t, _ = make_data(n, 10)
    t = t.to(device)
    est = make_estimator(("kde", {"max_block_bytes": block_mib * 2**20}))
    est.layer_information(t[:256])  # warm-up
    value, seconds, extra = measure(lambda: est.layer_information(t)[0].value, device, 1)
    what = "peak CUDA memory" if device == "cuda" else "peak RSS above the level before the call"
    print(f"# blocked KDE at n={n}, d=10, max_block_bytes={block_mib} MiB: {seconds:.1f} s, I_up = {value:.3f} "
          f"bits, {what}: {extra:.0f} MiB (one dense float64 n x n matrix would be {8 * n * n / 2**20:.0f} MiB)")


def _ms(s: float) -> str:
    ms = s * 1e3
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def print_table(rows: List[Row]) -> None:
    head = f"{'estimator':<14}{'n':>7}{'d':>4}{'ours ms':>10}{'ref ms':>10}{'ref/ours':>10}{'ours MiB':>10}" \
           f"{'ref MiB':>10}{'|diff| bits':>13}"
    print(head)
    print("-" * len(head))
    for name, n, d, s, m, rs, rm, diff, skipped_gb in rows:
        if rs is None:
            why = f"skipped: ~{skipped_gb:.1f} GiB" if skipped_gb else "no reference"
            print(f"{name:<14}{n:>7}{d:>4}{_ms(s):>10}{'':>10}{'':>10}{m:>10.0f}   {why}")
        else:
            print(f"{name:<14}{n:>7}{d:>4}{_ms(s):>10}{_ms(rs):>10}{rs / s:>10.1f}{m:>10.0f}{rm:>10.0f}{diff:>13.2e}")
    sys.stdout.flush()


def main(argv: Optional[List[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small n and d only")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--ref-mem-limit-gb", type=float, default=2.0, help="skip references needing more memory")
    ap.add_argument("--kde-large-n", type=int, default=20_000, help="n of the blocked KDE memory check (0: off)")
    ap.add_argument("--kde-block-mib", type=int, default=64, help="max_block_bytes of that check, MiB")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads for the run (0: leave as is)")
    ap.add_argument("--max-n", type=int, default=0, help="leave out sizes above this n (0: none; the test "
                    "suite's smoke run uses 1024)")
    ap.add_argument("--repeats", type=int, default=3, help="timed calls per case (at least)")
    ap.add_argument("--npeet-only", action="store_true", help="only the KSG / Ross vs NPEET ratios")
    ap.add_argument("--no-kernel", action="store_true", help="switch the compiled kNN kernel off for the run "
                    "(the scipy / numpy fallback a machine without a C compiler gets)")
    ap.add_argument("--cpu-time", action="store_true", help="time the NPEET comparison in CPU time of this "
                    "process (time.process_time; with --threads 1 less disturbed by a shared machine's load)")
    args = ap.parse_args(argv)
    _fix_malloc_threshold()
    if args.no_kernel:
        _knn_compiled.AVAILABLE = False
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda but CUDA is not available")
    if args.quick:
        grid = {"binning": ([1024, 4096], [2, 10]), "kde": ([1024, 4096], [10]), "ksg": ([1024, 4096], [1, 10]),
                "ross": ([1024, 4096], [10]), "renyi": ([512, 1024], [10]),
                "noisy_channel": ([1024], [10]), "infonce": ([1024], [10])}
    else:
        ns = [1024, 2048, 4096, 8192, 16384]
        grid = {"binning": (ns, [1, 10, 50]), "kde": (ns, [1, 10, 50]), "ksg": (ns, [1, 10]),
                "ross": (ns, [1, 10]), "renyi": ([512, 1024, 2048], [10]),
                "noisy_channel": ([1024, 4096], [10]), "infonce": ([1024, 4096], [10])}
    repeats = max(1, args.repeats)
    if args.max_n:
        grid = {k: ([n for n in ns if n <= args.max_n] or ns[:1], ds) for k, (ns, ds) in grid.items()}
    print(f"# ibhooks estimator benchmark  device={args.device}  torch={torch.__version__}  "
          f"threads={torch.get_num_threads()}  quick={args.quick}")
    if args.npeet_only or args.device == "cpu":
        npeet_ns = [1024] if args.quick else [2000, 16000]
        npeet_ratios([n for n in npeet_ns if not args.max_n or n <= args.max_n] or [1024], [1, 2], repeats,
                     args.cpu_time)
    if args.npeet_only:
        return
    if args.kde_large_n:  # first, while the process is small
        large_kde(args.kde_large_n, args.kde_block_mib, args.device)
    rows: List[Row] = []
    for name, (ns, ds) in grid.items():
        for d in ds:
            for n in ns:
                rows.append(run_case(name, n, d, args.device, repeats, args.ref_mem_limit_gb))
    print_table(rows)

    binning_4096 = [r for r in rows if r[0] == "binning" and r[1] == 4096 and r[2] == 10 and r[5]]
    if binning_4096:
        r = binning_4096[0]
        print(f"# binning n=4096 d=10: {r[5] / r[3]:.1f}x the np.unique reference (target >= 20x)")


if __name__ == "__main__":
    main()
