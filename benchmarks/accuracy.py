"""Accuracy against analytic truth: ibhooks' estimators next to peer libraries, on tasks whose true
mutual information the script computes itself. Prints one table (value, error, time per call) and
a summary of where ibhooks is better and where it is not.

    python benchmarks/accuracy.py               # quick (default): one or two cases per family, <= ~8 min
    python benchmarks/accuracy.py --full        # the full grid, n = 2,048, tens of minutes on 2 cores

Tasks (all values in bits):

* ``gauss``: X, Y in R^d, Y = rho X + sqrt(1 - rho^2) Z per coordinate, so I(X;Y) = -d/2 log2(1 - rho^2)
  exactly; d and the total I grow.
* ``mixture``: a label Y uniform over K classes, T | Y=k ~ N(mu_k, I_d). I(T;Y) = H(Y) + E log p(Y|T),
  by Monte Carlo from the exact density (standard error printed). Estimators that add their own
  noise (kde, noisy_channel) measure I(T + N(0, s^2 I); Y), whose truth is the same formula with
  variance 1 + s^2: each row is scored against the truth of what it measures.
* ``tanh``: X uniform over the 2^k patterns of k +-1 bits, T = tanh(W x) + N(0, s^2 I) (a noisy
  layer, Saxe et al.'s sigma^2 = 0.1 and a less noisy 0.01), Y a linear-threshold label of x.
  I(X;T) and I(T;Y) by Monte Carlo from the exact 2^k-component Gaussian mixture. kde and
  noisy_channel see the noiseless layer outputs tanh(W x) of the 2^k patterns (their setting:
  they add the noise themselves); kNN, binning and the peers see r noisy draws per pattern.

Peers (benchmark-only, ``pip install -e ".[bench]"``; each skipped with a note when not importable):
scikit-learn's ``mutual_info_regression`` / ``mutual_info_classif`` (one feature at a time: used only
where d = 1), NPEET (``npeet-plus``: ``mi`` = KSG, ``micd`` = KL entropy difference for a discrete Y),
infomeasure (``mi(approach="ksg")``). Times are single calls after a warm-up, on whatever load the
machine has: read them as orders of magnitude. No numbers here are asserted anywhere.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import statistics
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from scipy.special import logsumexp

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ibhooks.functional import layer_information, mutual_information  # noqa: E402
from ibhooks.estimators.registry import available  # noqa: E402

import _bmi_tasks as bmi  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

LN2 = math.log(2.0)


# ---------------------------------------------------------------- peers (optional)


def _import(name: str) -> Tuple[Optional[Any], str]:
    try:
        mod = importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 - any failure to import means: skip this peer
        return None, f"not importable ({type(exc).__name__}: {str(exc).splitlines()[0][:60]})"
    version = getattr(mod, "__version__", None)
    if version is None:
        try:
            from importlib.metadata import version as _v

            version = _v({"npeet_plus": "npeet-plus", "sklearn": "scikit-learn"}.get(name, name))
        except Exception:  # noqa: BLE001
            version = "?"
    return mod, f"{version}"


PEERS: Dict[str, Tuple[Optional[Any], str]] = {}
#: ibhooks estimators left out with --skip (e.g. infonce, slow on a loaded CPU).
SKIP_METHODS: set = set()


def load_peers(disabled: List[str]) -> None:
    for key, module in (
        ("sklearn", "sklearn.feature_selection"),
        ("npeet", "npeet_plus"),
        ("infomeasure", "infomeasure"),
    ):
        if key in disabled:
            PEERS[key] = (None, "disabled with --no-peer")
            continue
        mod, note = _import(module)
        if key == "sklearn" and mod is not None:
            note = _import("sklearn")[1]
        PEERS[key] = (mod, note)
    PEERS["cca"] = (bmi, "numpy Gaussian/CCA reference (benchmarks/_bmi_tasks.py)")


def peer(key: str) -> Optional[Any]:
    return PEERS.get(key, (None, ""))[0]


# ---------------------------------------------------------------- truth


def gauss_truth(d: int, rho: float) -> float:
    return -0.5 * d * math.log2(1 - rho * rho)


def mixture_truth(means: np.ndarray, var: float, samples: int, seed: int) -> Tuple[float, float]:
    """I(T;Y) in bits, Y uniform over the K rows of ``means``, T | Y=k ~ N(mu_k, var I): Monte Carlo of
    H(Y) + E log p(Y|T) from the exact density. Returns (value, standard error)."""
    rng = np.random.default_rng(seed)
    k, d = means.shape
    y = rng.integers(0, k, samples)
    t = means[y] + math.sqrt(var) * rng.standard_normal((samples, d))
    d2 = ((t[:, None, :] - means[None, :, :]) ** 2).sum(-1)  # (S, K)
    logits = -d2 / (2 * var)
    terms = (logits[np.arange(samples), y] - logsumexp(logits, axis=1) + math.log(k)) / LN2
    return float(terms.mean()), float(terms.std() / math.sqrt(samples))


def mixture_info(
    centres: np.ndarray, var: float, labels: Optional[np.ndarray], samples: int, seed: int, block: int = 2048
) -> Dict[str, Tuple[float, float]]:
    """I(X;T) and I(T;Y) (bits, with standard errors) for X uniform over the M rows of ``centres``,
    T = centres[X] + N(0, var I), Y = labels[X]: Monte Carlo over the exact M-component mixture."""
    rng = np.random.default_rng(seed)
    m, d = centres.shape
    log_m = math.log(m)
    if labels is not None:
        classes = np.unique(labels)
        log_ny = {c: math.log(int((labels == c).sum())) for c in classes}
    rx, ry = [], []
    c_sq = (centres**2).sum(1)
    for start in range(0, samples, block):
        b = min(block, samples - start)
        x = rng.integers(0, m, b)
        t = centres[x] + math.sqrt(var) * rng.standard_normal((b, d))
        d2 = (t**2).sum(1)[:, None] + c_sq[None, :] - 2 * t @ centres.T
        a = -np.maximum(d2, 0) / (2 * var)  # log K(t, c_j) up to a shared constant
        lse = logsumexp(a, axis=1)
        rx.append(a[np.arange(b), x] - lse + log_m)
        if labels is not None:
            own = labels[x]
            same = labels[None, :] == own[:, None]
            lse_y = logsumexp(np.where(same, a, -np.inf), axis=1)
            ry.append(lse_y - np.array([log_ny[c] for c in own]) + log_m - lse)
    out = {}
    for key, r in (("xt", rx), ("ty", ry)):
        if r:
            v = np.concatenate(r) / LN2
            out[key] = (float(v.mean()), float(v.std() / math.sqrt(v.size)))
    return out


# ---------------------------------------------------------------- rows


@dataclass
class Row:
    task: str
    case: str
    quantity: str
    truth: float
    truth_se: float
    method: str  # "ibhooks:ksg", "npeet:mi", ...
    value: Optional[float]
    seconds: Optional[float]
    note: str = ""
    scored: bool = True  # part of the best-of summary (False: a different quantity)

    @property
    def lib(self) -> str:
        return self.method.split(":", 1)[0]

    @property
    def error(self) -> Optional[float]:
        return None if self.value is None else self.value - self.truth


def timed(fn: Callable[[], float]) -> Tuple[Optional[float], Optional[float], str]:
    """(value, seconds, error note) of one call."""
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            v = float(fn())
    except Exception as exc:  # noqa: BLE001 - a failing method is a row with its reason
        return None, None, f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:60]}"
    return v, time.perf_counter() - t0, ""


def add(
    rows: List[Row],
    task: str,
    case: str,
    quantity: str,
    truth: Tuple[float, float],
    method: str,
    fn: Optional[Callable[[], float]],
    note: str = "",
    scored: bool = True,
    skip: str = "",
    seconds: Optional[float] = None,
) -> None:
    lib = method.split(":", 1)[0]
    if method.split(":", 1)[-1] in SKIP_METHODS:
        skip = skip or "--skip"
    if lib != "ibhooks" and peer(lib) is None:
        rows.append(
            Row(
                task,
                case,
                quantity,
                truth[0],
                truth[1],
                method,
                None,
                None,
                f"skipped: {lib} {PEERS.get(lib, (None, 'unknown'))[1]}",
                False,
            )
        )
        return
    if skip or fn is None:
        rows.append(
            Row(task, case, quantity, truth[0], truth[1], method, None, None, f"skipped: {skip}", False)
        )
        return
    v, s, err = timed(fn)
    if seconds is not None and v is not None:
        s = seconds  # the value came from a call timed elsewhere (one call gives I(X;T) and I(T;Y))
    rows.append(
        Row(task, case, quantity, truth[0], truth[1], method, v, s, err or note, scored and v is not None)
    )


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def _labels(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64))


# ---------------------------------------------------------------- tasks


def task_gauss(rows: List[Row], d: int, total: float, n: int, seed: int, fast: bool) -> None:
    rho = math.sqrt(1 - 2 ** (-2 * total / d))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    y = rho * x + math.sqrt(1 - rho * rho) * rng.standard_normal((n, d))
    truth = (gauss_truth(d, rho), 0.0)
    case, q = f"d={d} I={total:g} n={n}", "I(X;Y)"
    xt, yt = _t(x), _t(y)
    add(
        rows,
        "gauss",
        case,
        q,
        truth,
        "ibhooks:ksg",
        lambda: mutual_information(xt, yt, estimator="ksg", k=3).value,
    )
    add(
        rows,
        "gauss",
        case,
        q,
        truth,
        "ibhooks:binning",
        lambda: mutual_information(xt, yt, estimator="binning", n_bins=30).value,
        "I(bin30(X); bin30(Y)), plug-in",
    )
    add(
        rows,
        "gauss",
        case,
        q,
        truth,
        "ibhooks:infonce",
        lambda: mutual_information(xt, yt, estimator="infonce").value,
        "lower bound (<= log2 K)",
        skip="" if not fast else "--quick",
    )
    add(
        rows,
        "gauss",
        case,
        q,
        truth,
        "ibhooks:renyi",
        lambda: mutual_information(xt, yt, estimator="renyi").value,
        "matrix Renyi alpha=1.01: not Shannon MI",
        scored=False,
        skip="" if not fast else "--quick",
    )
    for est in NEW_PAIR_ESTIMATORS:
        add(rows, "gauss", case, q, truth, f"ibhooks:{est}",
            lambda est=est: mutual_information(xt, yt, estimator=est).value,
            skip="" if est in available() else "not registered")
    add(rows, "gauss", case, q, truth, "cca:gaussian", lambda: bmi.cca_bits(x, y), "Gaussian MI from covariances")
    add(rows, "gauss", case, q, truth, "npeet:mi", lambda: peer("npeet").mi(x, y, k=3, base=2), "KSG k=3")
    add(
        rows,
        "gauss",
        case,
        q,
        truth,
        "infomeasure:ksg",
        lambda: peer("infomeasure").mi(x, y, approach="ksg", k=3, base=2),
        "KSG k=3",
    )
    add(
        rows,
        "gauss",
        case,
        q,
        truth,
        "sklearn:mi_regression",
        lambda: peer("sklearn").mutual_info_regression(x, y[:, 0], n_neighbors=3, random_state=0)[0] / LN2,
        "KSG k=3, one feature",
        skip="" if d == 1 else "per feature only (d > 1)",
    )


def task_mixture(
    rows: List[Row], d: int, k: int, n: int, seed: int, mc: int, fast: bool, noise_var: float = 0.1
) -> None:
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((k, d)) * (1.5 / math.sqrt(d)) * 2.0
    y = rng.integers(0, k, n)
    t = means[y] + rng.standard_normal((n, d))
    truth = mixture_truth(means, 1.0, mc, seed + 1)
    truth_noisy = mixture_truth(means, 1.0 + noise_var, mc, seed + 1)
    case, q, qn = f"d={d} K={k} n={n}", "I(T;Y)", f"I(T+N(0,{noise_var:g});Y)"
    tt, yt = _t(t), _labels(y)
    add(
        rows,
        "mixture",
        case,
        q,
        truth,
        "ibhooks:ross",
        lambda: mutual_information(tt, yt, estimator="ross", k=3).value,
        "kNN (Ross 2014) k=3",
    )
    add(
        rows,
        "mixture",
        case,
        q,
        truth,
        "ibhooks:binning",
        lambda: mutual_information(tt, yt, estimator="binning", discrete_b=True, n_bins=30).value,
        "I(bin30(T); Y), plug-in",
    )
    add(
        rows,
        "mixture",
        case,
        qn,
        truth_noisy,
        "ibhooks:kde",
        lambda: mutual_information(tt, yt, estimator="kde", discrete_b=True, noise_var=noise_var).value,
        "Saxe difference of upper bounds",
    )
    add(
        rows,
        "mixture",
        case,
        qn,
        truth_noisy,
        "ibhooks:noisy_channel",
        lambda: (
            mutual_information(tt, yt, estimator="noisy_channel", discrete_b=True, noise_var=noise_var).value
        ),
        "exact mixture over the n rows, MC",
    )
    add(
        rows,
        "mixture",
        case,
        q,
        truth,
        "ibhooks:infonce",
        lambda: mutual_information(tt, yt, estimator="infonce", discrete_b=True).value,
        "lower bound",
        skip="" if not fast else "--quick",
    )
    for est in NEW_LABEL_ESTIMATORS:
        add(rows, "mixture", case, q, truth, f"ibhooks:{est}",
            lambda est=est: mutual_information(tt, yt, estimator=est, discrete_b=True).value,
            skip="" if est in available() else "not registered")
    add(
        rows,
        "mixture",
        case,
        q,
        truth,
        "npeet:micd",
        lambda: peer("npeet").micd(t, y.reshape(-1, 1), k=3, base=2, warning=False),
        "H(T) - H(T|Y), KL k=3",
    )
    add(
        rows,
        "mixture",
        case,
        q,
        truth,
        "sklearn:mi_classif",
        lambda: peer("sklearn").mutual_info_classif(t, y, n_neighbors=3, random_state=0)[0] / LN2,
        "Ross k=3, one feature",
        skip="" if d == 1 else "per feature only (d > 1)",
    )
    add(
        rows,
        "mixture",
        case,
        q,
        truth,
        "infomeasure:-",
        None,
        skip="no estimator for a continuous T with a discrete Y",
    )


def task_tanh(
    rows: List[Row], bits: int, d: int, var: float, draws: int, seed: int, mc: int, fast: bool
) -> None:
    rng = np.random.default_rng(seed)
    patterns = ((np.arange(2**bits)[:, None] >> np.arange(bits)[None, :]) & 1) * 2.0 - 1.0  # (M, bits) +-1
    w = rng.standard_normal((bits, d)) * (2.0 / math.sqrt(bits))
    centres = np.tanh(patterns @ w)  # the noiseless layer: one row per pattern
    labels = (patterns @ rng.standard_normal(bits) > 0).astype(np.int64)
    truth = mixture_info(centres, var, labels, mc, seed + 1)
    xi = np.repeat(np.arange(2**bits), draws)  # r noisy draws per pattern
    t_noisy = centres[xi] + math.sqrt(var) * rng.standard_normal((xi.size, d))
    y_noisy = labels[xi]
    case = f"k={bits} d={d} s2={var:g}"
    c_t, lab_t = _t(centres), _labels(labels)
    tn_t, xi_t, yn_t = _t(t_noisy), _labels(xi), _labels(y_noisy)
    q_xt, q_ty = "I(X;T)", "I(T;Y)"
    both: Dict[str, Tuple[Any, float]] = {}  # one layer_information call gives I(X;T) and I(T;Y)
    for est in ("noisy_channel", "kde"):
        try:
            t0 = time.perf_counter()
            both[est] = (
                layer_information(c_t, lab_t, estimator=est, noise_var=var),
                time.perf_counter() - t0,
            )
        except Exception as exc:  # noqa: BLE001 - reported in the rows below
            both[est] = (exc, 0.0)

    def layer(est: str, which: int, lower: bool = False) -> float:
        out = both[est][0]
        if isinstance(out, Exception):
            raise out
        return out[which].diagnostics["lower_bound"] if lower else out[which].value

    add(
        rows,
        "tanh",
        case,
        q_xt,
        truth["xt"],
        "ibhooks:noisy_channel",
        lambda: layer("noisy_channel", 0),
        f"2^{bits} clean rows, adds the noise itself",
        seconds=both["noisy_channel"][1],
    )
    add(
        rows,
        "tanh",
        case,
        q_xt,
        truth["xt"],
        "ibhooks:kde(upper)",
        lambda: layer("kde", 0),
        "pairwise KL bound",
        seconds=both["kde"][1],
    )
    add(
        rows,
        "tanh",
        case,
        q_xt,
        truth["xt"],
        "ibhooks:kde(lower)",
        lambda: layer("kde", 0, lower=True),
        "Bhattacharyya bound (same call)",
        seconds=both["kde"][1],
    )
    add(
        rows,
        "tanh",
        case,
        q_xt,
        truth["xt"],
        "ibhooks:ross",
        lambda: mutual_information(tn_t, xi_t, estimator="ross", k=3).value,
        f"{draws} noisy draws per pattern",
    )
    add(
        rows,
        "tanh",
        case,
        q_xt,
        truth["xt"],
        "ibhooks:binning",
        lambda: mutual_information(tn_t, xi_t, estimator="binning", discrete_b=True, n_bins=30).value,
        "I(bin30(T); X) on the draws",
    )
    add(
        rows,
        "tanh",
        case,
        q_xt,
        truth["xt"],
        "npeet:micd",
        lambda: peer("npeet").micd(t_noisy, xi.reshape(-1, 1), k=3, base=2, warning=False),
        "on the draws",
    )
    add(
        rows,
        "tanh",
        case,
        q_ty,
        truth["ty"],
        "ibhooks:noisy_channel",
        lambda: layer("noisy_channel", 1),
        "with the pattern labels (same call)",
        seconds=both["noisy_channel"][1],
    )
    add(
        rows,
        "tanh",
        case,
        q_ty,
        truth["ty"],
        "ibhooks:kde",
        lambda: layer("kde", 1),
        "difference of upper bounds (same call)",
        seconds=both["kde"][1],
    )
    add(
        rows,
        "tanh",
        case,
        q_ty,
        truth["ty"],
        "ibhooks:ross",
        lambda: mutual_information(tn_t, yn_t, estimator="ross", k=3).value,
        "on the draws",
    )
    add(
        rows,
        "tanh",
        case,
        q_ty,
        truth["ty"],
        "ibhooks:binning",
        lambda: mutual_information(tn_t, yn_t, estimator="binning", discrete_b=True, n_bins=30).value,
        "on the draws",
    )
    add(
        rows,
        "tanh",
        case,
        q_ty,
        truth["ty"],
        "ibhooks:infonce",
        lambda: mutual_information(tn_t, yn_t, estimator="infonce", discrete_b=True).value,
        "lower bound, draws",
        skip="" if not fast else "--quick",
    )
    for est in NEW_LABEL_ESTIMATORS:
        add(rows, "tanh", case, q_ty, truth["ty"], f"ibhooks:{est}",
            lambda est=est: mutual_information(tn_t, yn_t, estimator=est, discrete_b=True).value, "on the draws",
            skip="" if est in available() else "not registered")
    add(
        rows,
        "tanh",
        case,
        q_ty,
        truth["ty"],
        "npeet:micd",
        lambda: peer("npeet").micd(t_noisy, y_noisy.reshape(-1, 1), k=3, base=2, warning=False),
        "on the draws",
    )
    add(
        rows,
        "tanh",
        case,
        q_ty,
        truth["ty"],
        "sklearn:mi_classif",
        lambda: peer("sklearn").mutual_info_classif(t_noisy, y_noisy, n_neighbors=3, random_state=0)[0] / LN2,
        "one feature",
        skip="" if d == 1 else "per feature only (d > 1)",
    )


#: Estimators added by issue 14 (skipped when not registered): I(T;Y) with labels, I(A;B) for pairs.
NEW_LABEL_ESTIMATORS = ("gaussian", "gcmi", "classifier_probe", "auto")
NEW_PAIR_ESTIMATORS = ("gaussian", "gcmi", "auto")
BMI_FAMILIES = ("gauss", "student", "spiral", "halfcube", "sparse", "highmi")


def task_bmi(rows: List[Row], family: str, d: int, param: float, n: int, seed: int, fast: bool) -> None:
    """One BMI-benchmark case (see benchmarks/_bmi_tasks.py for the generators and their truths)."""
    rng = np.random.default_rng(seed)
    if family == "student":
        rho, nu = 0.6, param
        x, y = bmi.student_pair(n, d, rho, nu, rng)
        truth, case = bmi.student_bits(d, rho, nu), f"d={d} nu={nu:g} n={n}"
    elif family == "sparse":
        rho, m = param, 2
        x, y = bmi.gauss_pair(n, d, rho, rng, m)
        truth, case = bmi.gauss_bits(rho, m), f"d={d} m={m} rho={rho:g} n={n}"
    else:  # spiral, halfcube, highmi: Gaussian pairs of total MI ``param`` bits, maybe transformed
        rho = math.sqrt(1 - 2 ** (-2 * param / d))
        x, y = bmi.gauss_pair(n, d, rho, rng)
        truth, case = bmi.gauss_bits(rho, d), f"d={d} I={param:g} n={n}"
        if family == "spiral":
            x = bmi.spiral(x)
        elif family == "halfcube":
            x, y = bmi.halfcube(x), bmi.halfcube(y)
    xt, yt, tr, q = _t(x), _t(y), (truth, 0.0), "I(X;Y)"
    add(rows, family, case, q, tr, "ibhooks:ksg", lambda: mutual_information(xt, yt, estimator="ksg").value)
    for est in NEW_PAIR_ESTIMATORS:
        add(rows, family, case, q, tr, f"ibhooks:{est}", lambda est=est: mutual_information(xt, yt, estimator=est).value,
            skip="" if est in available() else "not registered")
    add(rows, family, case, q, tr, "ibhooks:infonce", lambda: mutual_information(xt, yt, estimator="infonce").value,
        "lower bound (<= log2 K)", skip="--quick" if fast else "")
    add(rows, family, case, q, tr, "npeet:mi", lambda: peer("npeet").mi(x, y, k=3, base=2), "KSG k=3")
    add(rows, family, case, q, tr, "cca:gaussian", lambda: bmi.cca_bits(x, y), "Gaussian MI from covariances")


def print_family_summary(rows: List[Row]) -> None:
    """Per family (mean |error| over its cases, median time): the library's best, auto, best peer."""
    print("\n## per task family: mean |error| (bits) over its cases and median time per call")
    head = f"{'family':<26}{'cases':>6}  {'library best':<30}{'auto':<22}{'best peer':<30}"
    print(head)
    print("-" * len(head))
    fams: Dict[str, Dict[str, List[Row]]] = {}
    for r in rows:
        if r.scored and r.value is not None:
            fams.setdefault(f"{r.task} {r.quantity}" if r.task in ("mixture", "tanh") else r.task, {}).setdefault(r.method, []).append(r)
    for fam, methods in fams.items():
        n_cases = len({r.case + r.quantity for rs in methods.values() for r in rs})
        stats = {m: (statistics.mean(abs(r.error or 0) for r in rs), statistics.median(r.seconds or 0 for r in rs))
                 for m, rs in methods.items() if len(rs) == n_cases}

        def cell(keys: List[str]) -> str:
            if not keys:
                return "-"
            m = min(keys, key=lambda k: stats[k][0])
            return f"{m.split(':', 1)[1] if m.startswith('ibhooks') else m} {stats[m][0]:.3f} ({_ms(stats[m][1])} ms)"

        ours = [m for m in stats if m.startswith("ibhooks:") and m != "ibhooks:auto"]
        peers = [m for m in stats if not m.startswith("ibhooks:")]
        auto = ["ibhooks:auto"] if "ibhooks:auto" in stats else []
        print(f"{fam:<26}{n_cases:>6}  {cell(ours):<30}{cell(auto):<22}{cell(peers):<30}")
    print("# only methods that ran on every case of a family are compared; auto = estimator='auto'")


# ---------------------------------------------------------------- output


def _f(v: Optional[float], fmt: str = ".3f") -> str:
    return "-" if v is None else format(v, fmt)


def _ms(s: Optional[float]) -> str:
    if s is None:
        return "-"
    ms = s * 1e3
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def print_table(rows: List[Row]) -> None:
    head = (
        f"{'task':<9}{'case':<27}{'quantity':<18}{'truth':>8}{'method':<25}{'value':>8}{'error':>8}"
        f"{'ms':>8}  note"
    )
    head = head.replace("truthmethod", "truth  method")
    print(head)
    print("-" * len(head))
    last = None
    for r in rows:
        key = (r.task, r.case)
        if last is not None and key != last:
            print()
        last = key
        truth = f"{r.truth:.3f}" + ("" if r.truth_se < 5e-4 else f"±{r.truth_se:.3f}")
        print(
            f"{r.task:<9}{r.case:<27}{r.quantity:<18}{truth:>12}  {r.method:<23}{_f(r.value):>8}"
            f"{_f(r.error, '+.3f'):>8}{_ms(r.seconds):>8}  {r.note}"
        )


def _speed(ours: float, theirs: float) -> str:
    if not ours or not theirs:
        return "-"
    return f"ibhooks {theirs / ours:.2g}x faster" if ours < theirs else f"ibhooks {ours / theirs:.2g}x slower"


def _verdict(ours: Row, theirs: Row) -> Tuple[str, int]:
    """(text, +1 ibhooks better / -1 peer better / 0 tie): a tie is within 0.02 bit + 2 MC standard errors."""
    eo, et = abs(ours.error or 0), abs(theirs.error or 0)
    margin = 0.02 + 2 * ours.truth_se
    if eo + margin < et:
        return "ibhooks better", 1
    if et + margin < eo:
        return "peer better", -1
    return "tie", 0


def print_summary(rows: List[Row]) -> None:
    groups: Dict[Tuple[str, str, str], List[Row]] = {}
    for r in rows:
        groups.setdefault((r.task, r.case, r.quantity), []).append(r)
    print(
        "\n## where ibhooks is better and where it is not "
        "(|error| in bits; a tie is within 0.02 bit + 2 MC s.e.)"
    )
    print(
        "# kNN = ibhooks' ksg (continuous pairs) or ross (a discrete label), the same family as the peers; "
        "best other = the ibhooks estimator with the smallest error\n# among the rest, chosen after the fact "
        "(an oracle: read it as 'an ibhooks estimator can do this well here', not as a default)"
    )
    head = (
        f"{'task':<9}{'case':<27}{'quantity':<18}{'ibhooks kNN':>12}  {'best other ibhooks':<24}"
        f"{'best peer':<30}{'kNN vs peer':<16}{'any ibhooks vs peer'}"
    )
    print(head)
    print("-" * len(head))
    tally = {"kNN": [0, 0, 0], "any": [0, 0, 0]}
    for (task, case, q), rs in groups.items():
        scored = [r for r in rs if r.scored and r.value is not None]
        knn = next((r for r in scored if r.method in ("ibhooks:ksg", "ibhooks:ross")), None)
        others = [r for r in scored if r.lib == "ibhooks" and r is not knn]
        peers = [r for r in scored if r.lib != "ibhooks"]
        if knn is None and not others:
            continue
        best_other = min(others, key=lambda r: abs(r.error or 0)) if others else None
        best_peer = min(peers, key=lambda r: abs(r.error or 0)) if peers else None
        best_ours = min([r for r in (knn, best_other) if r is not None], key=lambda r: abs(r.error or 0))
        v_knn = v_any = "-"
        if best_peer is not None:
            if knn is not None:
                v_knn, k = _verdict(knn, best_peer)
                tally["kNN"][1 - k] += 1
            v_any, k = _verdict(best_ours, best_peer)
            tally["any"][1 - k] += 1
        knn_s = f"{abs(knn.error or 0):.3f}" if knn is not None else "-"
        other_s = (
            f"{best_other.method.split(':', 1)[1]} {abs(best_other.error or 0):.3f}" if best_other else "-"
        )
        peer_s = f"{best_peer.method} {abs(best_peer.error or 0):.3f}" if best_peer else "(no peer applies)"
        print(f"{task:<9}{case:<27}{q:<18}{knn_s:>12}  {other_s:<24}{peer_s:<30}{v_knn:<16}{v_any}")
    for key, (w, t, lo) in tally.items():
        print(f"# {key + ' vs best peer:':<22} ibhooks better in {w}, tie in {t}, peer better in {lo}")
    print(
        "# kde / noisy_channel rows are scored against the truth of the noisy quantity I(T+N; .) they "
        "measure; on the tanh task they see the 2^k noiseless\n# layer outputs and add the known noise "
        "themselves (the "
        "information-plane setting), while kNN, binning and the peers see noisy draws"
    )

    like = [
        ("ibhooks:ksg", ("npeet:mi", "infomeasure:ksg", "sklearn:mi_regression")),
        ("ibhooks:ross", ("npeet:micd", "sklearn:mi_classif")),
    ]
    print(
        "\n## like for like (same family of estimator): mean |error| and median time per call "
        "over the cases both ran"
    )
    for ours, peers_ in like:
        for p in peers_:
            pairs = []
            for rs in groups.values():
                a = next((r for r in rs if r.method == ours and r.value is not None), None)
                b = next((r for r in rs if r.method == p and r.value is not None), None)
                if a and b:
                    pairs.append((a, b))
            if not pairs:
                print(f"{ours:<14} vs {p:<22} no case where both ran")
                continue
            ea = statistics.mean(abs(a.error or 0) for a, _ in pairs)
            eb = statistics.mean(abs(b.error or 0) for _, b in pairs)
            ta = statistics.median(a.seconds or 0 for a, _ in pairs)
            tb = statistics.median(b.seconds or 0 for _, b in pairs)
            print(
                f"{ours:<14} vs {p:<22} {len(pairs):>2} cases: |error| {ea:.3f} vs {eb:.3f} bits, "
                f"time {_ms(ta)} vs {_ms(tb)} ms ({_speed(ta, tb)})"
            )


def main(argv: Optional[List[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="one or two small cases per family (the default)")
    mode.add_argument("--full", action="store_true", help="the full grid")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads for the run")
    ap.add_argument(
        "--no-peer",
        action="append",
        default=[],
        choices=["sklearn", "npeet", "infomeasure"],
        help="leave a peer out (as if it were not installed)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip", action="append", default=[], help="leave an ibhooks estimator out (e.g. infonce)")
    args = ap.parse_args(argv)
    SKIP_METHODS.update(args.skip)
    torch.set_num_threads(args.threads)
    load_peers(args.no_peer)
    print(
        f"# ibhooks accuracy benchmark  torch={torch.__version__}  threads={torch.get_num_threads()}  "
        f"quick={not args.full}  load average={' '.join(f'{v:.2f}' for v in os.getloadavg())}"
    )
    for key, (mod, note) in PEERS.items():
        print(f"#   peer {key:<12} {'available ' + note if mod is not None else 'SKIPPED: ' + note}")
    # warm-up: lazy imports and first-call costs stay out of the timings
    w = torch.randn(64, 2)
    for est in ("ksg", "binning", "kde", "noisy_channel", "ross"):
        try:
            layer_information(w, (w[:, 0] > 0).long(), estimator=est)
        except Exception:  # noqa: BLE001
            pass
    if peer("npeet") is not None:
        peer("npeet").mi(w.numpy(), w.numpy(), k=3)
    if peer("infomeasure") is not None:
        peer("infomeasure").mi(
            w.numpy().astype(np.float64), w.numpy().astype(np.float64), approach="ksg", k=3
        )
    rows: List[Row] = []
    q, s = not args.full, args.seed
    mc = 20_000 if q else 200_000
    if q:
        grid_g = [(1, 1.0), (4, 2.0)]
        grid_m = [(1, 2), (4, 4)]
        grid_t = [(6, 3, 0.1)]
        n_g, n_m, draws = 512, 512, 8
    else:
        grid_g = [(d, i) for d in (1, 2, 5, 10) for i in (0.5, 2.0, 5.0)]
        grid_m = [(d, k) for d in (1, 2, 5, 10) for k in (2, 4)]
        grid_t = [(8, 3, 0.1), (8, 10, 0.1), (10, 5, 0.01)]
        n_g, n_m, draws = 2048, 2048, 8
    for d, total in grid_g:
        task_gauss(rows, d, total, n_g, s, q)
    for d, k in grid_m:
        task_mixture(rows, d, k, n_m, s, mc, q)
    for bits, d, var in grid_t:
        task_tanh(rows, bits, d, var, draws, s, mc, q)
    if q:
        grid_b = [("student", 2, 3.0), ("spiral", 2, 1.0), ("halfcube", 2, 1.0), ("sparse", 10, 0.8),
                  ("highmi", 3, 6.0)]
    else:
        grid_b = [("student", d, nu) for d in (2, 5) for nu in (3.0, 5.0)] + \
            [("spiral", d, i) for d in (2, 5) for i in (1.0, 2.0)] + \
            [("halfcube", d, i) for d in (2, 5) for i in (1.0, 2.0)] + \
            [("sparse", 25, r) for r in (0.6, 0.9)] + [("highmi", d, 10.0) for d in (3, 5)]
    for family, d, param in grid_b:
        task_bmi(rows, family, d, param, n_g, s, q)
    print()
    print_table(rows)
    print_summary(rows)
    print_family_summary(rows)
    print(f"# load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
