"""Does the synthetic twin's error predict the real error? On tasks with a known I(T;Y), each estimator
runs on the task's n rows (real error = estimate - truth) and on the Gaussian twin fitted to those rows
(twin error = twin estimate - twin truth, as ``analyses=["calibration"]`` records it). Per estimator
the script prints sign agreement, Pearson and Spearman correlations of the two errors, the mean
|real error| before and after subtracting the twin error, and how often the ``large`` flags agree.

    python benchmarks/calibration.py --quick     # a few tasks, well under a minute
    python benchmarks/calibration.py             # 30 tasks, about 5 minutes of one core

Task families (Y uniform over K classes, drawn per row; T in R^d; all values in bits):

* ``gauss``: T | Y=k ~ N(mu_k, I), mu_k ~ N(0, s^2/d I) (squared distance between means about 2 s^2
  whatever d). Truth by Monte Carlo over the exact posterior (:func:`ibhooks.analyses._twin.from_moments`).
* ``halfcube``, ``spiral``: the ``gauss`` rows mapped by the BMI benchmark's diffeomorphisms
  (benchmarks/_bmi_tasks.py: x -> sign(x)|x|^1.5; the spiral rotation of (x_1, x_2) by 0.5 |x|^2):
  I(T;Y) is unchanged by a bijection.
* ``tanh``: a wide deterministic layer tanh(x W) of the ``gauss`` rows, W (d, 4d) Gaussian with
  gain 1.5 / sqrt(d): injective, so I(T;Y) is the ``gauss`` truth, but T lies on a curved d-dimensional
  sheet in 4d dimensions.
* ``student``: T = mu_Y + e / sqrt(W / 3), e ~ N(0, I), W ~ chi2_3 (multivariate t, 3 dof); truth by
  Monte Carlo over the exact t-mixture posterior.

Estimators: binning (30 bins over the layer's range; its I(bin T; Y) is scored against I(T;Y), what a
user reads it as), the classifier probe, Gaussian and Gaussian-copula I(T;Y), Ross's kNN estimator,
and on ``gauss`` only the noise-based kde and noisy_channel with relative_noise=0.1 (each scored
against I(T + N(0, s2 I); Y) for its own s2, known there in closed form). No number is asserted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from scipy import stats

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ibhooks.analyses._twin import fit_twin, from_moments  # noqa: E402
from ibhooks.analyses.calibration import is_large, label_estimate, noise_of  # noqa: E402
from ibhooks.estimators.registry import make_estimator  # noqa: E402

import _bmi_tasks as bmi  # noqa: E402

LN2 = math.log(2.0)
NU = 3.0  # Student-t degrees of freedom
NOISE_ESTIMATORS = ("kde", "noisy_channel")
ESTIMATORS: Dict[str, Tuple[str, dict]] = {
    "binning": ("binning", {"n_bins": 30}),
    "classifier_probe": ("classifier_probe", {}),
    "gaussian": ("gaussian", {}),
    "gcmi": ("gcmi", {}),
    "ross": ("ross", {}),
    "kde": ("kde", {"relative_noise": 0.1}),
    "noisy_channel": ("noisy_channel", {"relative_noise": 0.1}),
}


@dataclass(frozen=True)
class Task:
    family: str
    d: int
    n: int
    k: int
    sep: float

    @property
    def name(self) -> str:
        return f"{self.family} d={self.d} n={self.n} K={self.k} s={self.sep:g}"


@dataclass
class Row:
    task: str
    family: str
    estimator: str
    truth: float
    estimate: float
    twin_truth: float
    twin_estimate: float
    truth_se: float
    twin_se: float
    seconds: float

    @property
    def real_error(self) -> float:
        return self.estimate - self.truth

    @property
    def twin_error(self) -> float:
        return self.twin_estimate - self.twin_truth


# ---------------------------------------------------------------- tasks and their truth


def sample_task(task: Task, seed: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(t (n, D) float32, labels (n,), class means (K, d) float64) of one draw of ``task``."""
    rng = np.random.default_rng(seed)
    mu = rng.standard_normal((task.k, task.d)) * task.sep / math.sqrt(task.d)
    y = rng.integers(0, task.k, task.n)
    while len(np.unique(y)) < task.k:  # every class present (small n, many classes)
        y = rng.integers(0, task.k, task.n)
    e = rng.standard_normal((task.n, task.d))
    if task.family == "student":
        e = e / np.sqrt(rng.chisquare(NU, size=(task.n, 1)) / NU)
    x = mu[y] + e
    if task.family == "halfcube":
        x = bmi.halfcube(x)
    elif task.family == "spiral":
        x = bmi.spiral(x)
    elif task.family == "tanh":
        w = rng.standard_normal((task.d, 4 * task.d)) * 1.5 / math.sqrt(task.d)
        x = np.tanh(x @ w)
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y), torch.tensor(mu)


def gauss_truth(mu: torch.Tensor, noise_var: float, samples: int, seed: int) -> Tuple[float, float]:
    pop = from_moments(mu, (1.0 + noise_var) * torch.eye(mu.shape[1], dtype=torch.float64),
                       torch.ones(mu.shape[0], dtype=torch.float64))
    return pop.label_information(torch.Generator().manual_seed(seed), samples=samples)


def student_truth(mu: torch.Tensor, samples: int, seed: int) -> Tuple[float, float]:
    """I(T;Y) of the t mixture (shared identity dispersion, nu = 3) by Monte Carlo, bits and se."""
    gen = torch.Generator().manual_seed(seed)
    k, d = mu.shape
    terms = []
    for start in range(0, samples, 8192):  # a loop over chunks of draws
        m = min(8192, samples - start)
        y = torch.randint(0, k, (m,), generator=gen)
        w = torch.distributions.Chi2(torch.full((m, 1), NU, dtype=torch.float64)).sample()
        t = mu[y] + torch.randn(m, d, generator=gen, dtype=torch.float64) / (w / NU).sqrt()
        sq = torch.cdist(t, mu) ** 2
        logp = torch.log_softmax(-(NU + d) / 2 * torch.log1p(sq / NU), dim=1)
        terms.append((logp.exp() * (logp + math.log(k))).sum(1))
    r = torch.cat(terms)
    return float(r.mean()) / LN2, float(r.std()) / math.sqrt(r.numel()) / LN2


# ---------------------------------------------------------------- one task


def run_estimator(name: str, t: torch.Tensor, y: torch.Tensor) -> Tuple[float, float]:
    """(I(T;Y) estimate in bits, the noise variance it measured with) by a fresh instance."""
    est = make_estimator(ESTIMATORS[name])
    if name == "ross":
        e = est.mutual_information(t, y, discrete_b=True)
    else:
        e = label_estimate(est, t, y, None)
    return float(e.value), noise_of(e)


def run_task(task: Task, names: Sequence[str], seed: int, means: str, mc: int) -> List[Row]:
    t, y, mu = sample_task(task, seed)
    twin = fit_twin(t, y, means=means)
    rows_twin = twin.sample(y, torch.Generator().manual_seed(seed + 1))
    truths: Dict[Tuple[str, float], Tuple[float, float]] = {}

    def truth(kind: str, s2: float) -> Tuple[float, float]:
        key = (kind, round(s2, 12))
        if key not in truths:
            if kind == "twin":
                truths[key] = twin.label_information(torch.Generator().manual_seed(seed + 3), samples=mc,
                                                     noise_var=s2)
            elif task.family == "student":
                truths[key] = student_truth(mu, mc, seed + 2)
            else:
                truths[key] = gauss_truth(mu, s2, mc, seed + 2)
        return truths[key]

    out: List[Row] = []
    for name in names:
        if name in NOISE_ESTIMATORS and task.family != "gauss":
            continue
        t0 = time.perf_counter()
        value, s2 = run_estimator(name, t, y)
        twin_value, twin_s2 = run_estimator(name, rows_twin, y)
        seconds = time.perf_counter() - t0
        real, tw = truth("real", s2), truth("twin", twin_s2)
        out.append(Row(task.name, task.family, name, real[0], value, tw[0], twin_value, real[1], tw[1],
                       seconds))
    return out


def grid(quick: bool) -> List[Task]:
    if quick:
        return [Task("gauss", 4, 256, 2, 2.5), Task("gauss", 32, 256, 10, 2.5), Task("tanh", 8, 256, 4, 2.5),
                Task("student", 8, 256, 4, 2.5), Task("halfcube", 8, 256, 4, 1.5)]
    tasks = [Task("gauss", d, 512, k, s) for d in (4, 32, 128) for k in (2, 10) for s in (1.0, 2.5)]
    tasks += [Task("gauss", 32, n, 10, 2.5) for n in (256, 1024)]
    tasks += [Task(f, d, 512, k, 1.5) for f in ("halfcube", "spiral", "tanh", "student") for d in (8, 64)
              for k in (2, 10)]
    return tasks


# ---------------------------------------------------------------- summary


def summary(rows: Sequence[Row], large_bits: float, large_fraction: float) -> List[Dict[str, object]]:
    out = []
    for name in dict.fromkeys(r.estimator for r in rows):
        rs = [r for r in rows if r.estimator == name]
        real = np.array([r.real_error for r in rs])
        twin = np.array([r.twin_error for r in rs])
        sign = float(np.mean(np.sign(real) == np.sign(twin)))
        ok = len(rs) >= 3 and real.std() > 0 and twin.std() > 0
        flags = [is_large(r.real_error, r.truth, large_bits, large_fraction)
                 == is_large(r.twin_error, r.twin_truth, large_bits, large_fraction) for r in rs]
        out.append({
            "estimator": name, "tasks": len(rs), "sign_agreement": sign,
            "pearson": float(stats.pearsonr(real, twin)[0]) if ok else float("nan"),
            "spearman": float(stats.spearmanr(real, twin)[0]) if ok else float("nan"),
            "mae_real": float(np.abs(real).mean()), "mae_corrected": float(np.abs(real - twin).mean()),
            "flag_agreement": float(np.mean(flags)), "seconds": float(sum(r.seconds for r in rs)),
        })
    return out


def print_tables(rows: Sequence[Row], summ: Sequence[Dict[str, object]], detail: bool) -> None:
    if detail:
        print(f"{'task':<34} {'estimator':<17} {'truth':>7} {'real err':>9} {'twin truth':>10} "
              f"{'twin err':>9}")
        for r in rows:
            print(f"{r.task:<34} {r.estimator:<17} {r.truth:7.3f} {r.real_error:+9.3f} {r.twin_truth:10.3f} "
                  f"{r.twin_error:+9.3f}")
        print()
    print("| estimator | tasks | sign agreement | Pearson | Spearman | mean abs real error | "
          "after subtracting twin error | large-flag agreement | seconds |")
    print("|---|---|---|---|---|---|---|---|---|")
    for s in summ:
        print(f"| {s['estimator']} | {s['tasks']} | {s['sign_agreement']:.2f} | {s['pearson']:+.2f} | "
              f"{s['spearman']:+.2f} | {s['mae_real']:.3f} | {s['mae_corrected']:.3f} | "
              f"{s['flag_agreement']:.2f} | {s['seconds']:.0f} |")


def main(argv: Optional[Sequence[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="five small tasks")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads for the run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--means", choices=("sample", "debiased"), default="debiased",
                    help="the twin's class means")
    ap.add_argument("--mc", type=int, default=50_000, help="Monte Carlo draws of each truth")
    ap.add_argument("--estimators", default=",".join(ESTIMATORS), help="comma-separated subset")
    ap.add_argument("--family", action="append", default=[], help="only these task families")
    ap.add_argument("--detail", action="store_true", help="print every task's errors too")
    ap.add_argument("--json", help="write the rows and the summary to this file")
    ap.add_argument("--large-bits", type=float, default=0.1)
    ap.add_argument("--large-fraction", type=float, default=0.1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = [s for s in args.estimators.split(",") if s]
    unknown = [s for s in names if s not in ESTIMATORS]
    if unknown:
        ap.error(f"unknown estimators {unknown}; choose from {list(ESTIMATORS)}")
    tasks = [t for t in grid(args.quick) if not args.family or t.family in args.family]
    t0 = time.perf_counter()
    rows: List[Row] = []
    for i, task in enumerate(tasks):
        rows += run_task(task, names, args.seed + 1000 * i, args.means, args.mc)
        print(f"[{i + 1}/{len(tasks)}] {task.name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr,
              flush=True)
    summ = summary(rows, args.large_bits, args.large_fraction)
    print(f"# calibration twin vs real error: {len(tasks)} tasks, twin means={args.means}, "
          f"{time.perf_counter() - t0:.0f} s\n")
    print_tables(rows, summ, args.detail)
    if args.json:
        with open(args.json, "w") as fh:
            rows_out = [dict(asdict(r), real_error=r.real_error, twin_error=r.twin_error) for r in rows]
            json.dump({"rows": rows_out, "summary": summ, "args": vars(args)}, fh, indent=1)


if __name__ == "__main__":
    main()
