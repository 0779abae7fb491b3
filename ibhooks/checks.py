"""Checks and interpretation of one measurement: pure functions of a :class:`~ibhooks.Record`.

* **Within-layer bounds**, per layer and estimator: ``0 <= I(T;Y) <= min(I(X;T), H(Y))``,
  ``0 <= I(X;T) <= cap``. For estimates of kind ``"exact"`` (binning: exact for the binned variable
  with X uniform over the probe rows) these hold exactly, so a violation is a **bug**; so is any
  value above the estimator's own cap. Otherwise a violation is an **estimator inconsistency**,
  reported with its size and whether it exceeds the estimates' uncertainty.
* **DPI along chains** (X -> T1 -> T2 -> ...): ``I(X;T1) >= I(X;T2) >= ...`` and the same for I(T;Y),
  per estimator. It holds for the true quantities of the network, not necessarily for estimates:
  binning and fixed-sigma KDE add their noise for analysis only and do not propagate it through the
  network (Saxe et al. 2018, App. C), so a violation says the *estimate*, not the network, is wrong.
* **Artefact warnings**: saturating units and clipping under binning, estimates at their cap, too
  few samples for the dimension, many duplicate rows.

``check_record`` returns ``(checks, warnings)``, both JSON-serialisable, which the monitor stores in
``record.checks`` and ``record.warnings``.
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from .estimate import Estimate, Record, _jsonable

QUANTITIES = ("I_XT", "I_TY")
_QLABEL = {"I_XT": "I(X;T)", "I_TY": "I(T;Y)"}

#: Warning codes produced by :func:`check_record`.
WARNING_CODES = (
    "saturating_units",
    "outside_range",
    "at_cap",
    "too_few_samples",
    "duplicate_rows",
    "bound_violation",
    "dpi_violation",
)

#: Activations whose outputs saturate (bounded above and/or below by a flat asymptote).
SATURATING_ACTIVATIONS = frozenset(
    {"tanh", "sigmoid", "logistic", "hardtanh", "softsign", "hardsigmoid", "softmax", "relu6", "hardswish",
     "erf"}
)
#: Activations that do not saturate: their extreme bins are not a saturation artefact (ReLU's
#: lowest bin holds its exact zeros, which binning counts correctly).
NON_SATURATING_ACTIVATIONS = frozenset(
    {"relu", "leakyrelu", "prelu", "rrelu", "elu", "selu", "celu", "gelu", "silu", "swish", "mish",
     "softplus", "linear", "identity", "none"}
)


# --------------------------------------------------------------------------------------------
# Chains
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chain:
    """A Markov chain of layers X -> T1 -> T2 -> ..., along which the DPI holds.

    Attributes:
        name: A label, e.g. ``"features"`` or ``"residual stream"``.
        layers: Layer names (as in ``Record.layers``) in forward order; no repeats.
        source: Where it came from, e.g. ``"declared"`` (by the user) or how capture detected it.
    """

    name: str
    layers: Tuple[str, ...]
    source: str = "declared"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Chain.name must be a non-empty string, got {self.name!r}")
        if isinstance(self.layers, str):
            raise ValueError(
                f"Chain {self.name!r}: layers must be a sequence of layer names, "
                f"got the string {self.layers!r}"
            )
        layers = tuple(self.layers)
        bad = [x for x in layers if not isinstance(x, str) or not x]
        if bad:
            raise ValueError(f"Chain {self.name!r}: layer names must be non-empty strings, got {bad!r}")
        if not layers:
            raise ValueError(f"Chain {self.name!r} has no layers")
        dup = sorted({x for x in layers if layers.count(x) > 1})
        if dup:
            raise ValueError(
                f"Chain {self.name!r} lists layer(s) {dup} more than once; a chain visits each layer once"
            )
        object.__setattr__(self, "layers", layers)

    def validate(self, known_layers: Iterable[str]) -> None:
        """Raise ``ValueError`` naming any layer of the chain that is not in ``known_layers``."""
        known = list(known_layers)
        unknown = [x for x in self.layers if x not in set(known)]
        if unknown:
            shown = ", ".join(repr(k) for k in known[:20]) + (", ..." if len(known) > 20 else "")
            raise ValueError(
                f"Chain {self.name!r} names unknown layer(s) {unknown}; "
                f"the monitored layers are: {shown or '(none)'}. "
                "Use the names of monitored layers (as in Record.layers), in forward order."
            )

    def pairs(self, mode: str = "adjacent") -> List[Tuple[str, str]]:
        """``(upstream, downstream)`` pairs: consecutive layers (``"adjacent"``) or all i < j (``"all"``)."""
        if mode == "adjacent":
            return list(zip(self.layers[:-1], self.layers[1:]))
        if mode == "all":
            return [(a, b) for i, a in enumerate(self.layers) for b in self.layers[i + 1 :]]
        raise ValueError(f"mode must be 'adjacent' or 'all', got {mode!r}")

    def to_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "layers": list(self.layers), "source": self.source}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Chain":
        return cls(name=str(d["name"]), layers=tuple(d["layers"]), source=str(d.get("source", "declared")))


ChainSpec = Union[Chain, Mapping[str, Any], Sequence[str]]


def as_chains(spec: Union[None, Mapping[str, Sequence[str]], Sequence[ChainSpec]]) -> Tuple[Chain, ...]:
    """Normalise user chain declarations to a tuple of :class:`Chain`.

    Accepts ``None``, ``{"name": [layers...]}``, or a sequence whose items are ``Chain``s, other
    objects with ``.name`` and ``.layers`` (e.g. the capture's own chain type), ``{"name": ...,
    "layers": [...]}`` dicts, or plain lists of layer names (named ``chain0``, ...). A chain given
    twice is kept once; a name used again for other layers becomes ``name#2``, ``name#3``, ...
    """
    if spec is None:
        return ()
    chains: List[Chain] = []
    if isinstance(spec, Mapping):
        chains = [Chain(str(k), tuple(v)) for k, v in spec.items()]
    else:
        if isinstance(spec, (str, Chain)):
            spec = [spec]  # type: ignore[list-item]
        for i, item in enumerate(spec):
            if isinstance(item, Chain):
                chains.append(item)
            elif isinstance(item, Mapping):
                chains.append(Chain.from_dict(item))
            elif hasattr(item, "name") and hasattr(item, "layers"):
                chains.append(Chain(str(item.name), tuple(item.layers), str(getattr(item, "source", "declared"))))
            elif isinstance(item, str):
                raise ValueError(
                    f"chain #{i} is the string {item!r}; give a chain as a list of layer names, "
                    "e.g. chains=[['fc1', 'fc2', 'fc3']]"
                )
            else:
                chains.append(Chain(f"chain{i}", tuple(item)))
    out: List[Chain] = []
    for c in chains:
        if any(o.layers == c.layers and o.name == c.name for o in out):
            continue  # the same chain given twice
        name, k = c.name, 2
        while any(o.name == name for o in out):
            name, k = f"{c.name}#{k}", k + 1
        out.append(c if name == c.name else Chain(name, c.layers, c.source))
    return tuple(out)


def validate_chains(chains: Union[None, Mapping[str, Sequence[str]], Sequence[ChainSpec]],
                    known_layers: Iterable[str]) -> Tuple[Chain, ...]:
    """:func:`as_chains` then :meth:`Chain.validate` against ``known_layers``; returns the chains."""
    known = list(known_layers)
    out = as_chains(chains)
    for c in out:
        c.validate(known)
    return out


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckConfig:
    """Thresholds of :func:`check_record`.

    Attributes:
        tol_bits: Float tolerance: a difference of at most this is no violation.
        z: An inconsistency is ``significant`` when its size exceeds ``z`` times the combined
            standard error of the estimates involved (plus ``tol_bits``).
        dpi_pairs: ``"adjacent"`` (T_i vs T_{i+1}) or ``"all"`` (every i < j) chain pairs.
        extreme_bins_threshold: Fraction of unit values in the two extreme bins above which a
            binned layer is flagged as saturating.
        outside_range_threshold: Fraction of values outside a fixed bin range above which the layer
            is flagged as clipped.
        duplicate_rows_threshold: Fraction of duplicate rows above which a layer is flagged.
        samples_per_dim: Sample-size rule for non-exact estimators: n >= ``samples_per_dim * d`` ...
        orthant_max_dim: ... and n >= 2**min(d, ``orthant_max_dim``) (each sign pattern of a
            low-dimensional T seen once; capped at 2**10 = 1024 samples).
    """

    tol_bits: float = 1e-6
    z: float = 1.96
    dpi_pairs: str = "adjacent"
    extreme_bins_threshold: float = 0.25
    outside_range_threshold: float = 0.01
    duplicate_rows_threshold: float = 0.5
    samples_per_dim: float = 10.0
    orthant_max_dim: int = 10

    def __post_init__(self) -> None:
        if self.dpi_pairs not in ("adjacent", "all"):
            raise ValueError(f"dpi_pairs must be 'adjacent' or 'all', got {self.dpi_pairs!r}")
        if self.tol_bits < 0 or self.z < 0:
            raise ValueError("tol_bits and z must be >= 0")

    def to_dict(self) -> Dict[str, Any]:
        return _jsonable(asdict(self))

    def required_samples(self, dim: int) -> int:
        """The sample-size rule for a non-exact estimator of a ``dim``-dimensional T."""
        return int(max(math.ceil(self.samples_per_dim * dim), 2 ** min(max(dim, 0), self.orthant_max_dim)))


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _estimate_of(res: Any, qty: str) -> Optional[Estimate]:
    if res is None or getattr(res, "error", None):
        return None
    e = res.i_xt if qty == "I_XT" else res.i_ty
    if e is None or e.value is None or not math.isfinite(e.value):
        return None
    if e.diagnostics.get("not_mutual_information"):
        return None  # e.g. kNN's differential entropy h(T) in the I(X;T) slot: no MI bound applies
    return e


def _combined_se(*ests: Optional[Estimate]) -> Optional[float]:
    """sqrt(sum se^2) over the estimates given; ``None`` if any has unknown uncertainty."""
    tot = 0.0
    for e in ests:
        if e is None:
            continue
        s = e.stderr
        if s is None or not math.isfinite(s):
            return None
        tot += s * s
    return math.sqrt(tot)


def _significance(size: float, unc: Optional[float], exact: bool, cfg: CheckConfig) -> Optional[bool]:
    if exact:
        return size > cfg.tol_bits
    if unc is None:
        return None
    return size > cfg.z * unc + cfg.tol_bits


def _sig_text(sig: Optional[bool], unc: Optional[float], exact: bool, cfg: CheckConfig) -> str:
    if exact:
        return "exact estimates have no sampling uncertainty, so any violation beyond float tolerance is real"
    if unc is None:
        return "uncertainty unknown (the estimates carry no ci), significance not assessed"
    word = "exceeds" if sig else "is within"
    return f"it {word} {cfg.z:g} x the combined standard error {unc:.3g} bits"


def _norm_activation(a: Any) -> Optional[str]:
    if a is None:
        return None
    if not isinstance(a, str):
        a = type(a).__name__ if not isinstance(a, type) else a.__name__
    return re.sub(r"[^a-z0-9]", "", a.lower().rsplit(".", 1)[-1]) or None


def _is_binning(e: Estimate) -> bool:
    return "bin" in (e.estimator or "").lower() or "n_bins" in e.params


def _dpi_note(estimator: str, kinds: Sequence[str] = ()) -> str:
    """Why a cross-layer violation can happen under ``estimator``, plus a caveat for bound kinds."""
    name = (estimator or "").lower()
    if "bin" in name:
        note = (
            "Binning is applied to each layer for analysis only: its quantisation noise is not "
            "propagated through the network, so binned layers need not obey the DPI (Saxe et al. 2018, "
            "App. C). The estimate, not the network, is inconsistent."
        )
    elif name.startswith("kde") or name.startswith("noisy_channel"):
        note = (
            "The fixed-sigma noise of this estimator is added to each layer for analysis only; it is not "
            "propagated through the network, so the estimates need not obey the DPI (Saxe et al. 2018, "
            "App. C). The estimate, not the network, is inconsistent."
        )
    else:
        note = (
            "The true information is non-increasing along a chain of a network; a violation is an artefact "
            f"(bias or noise) of the {estimator or 'estimator'} estimates, not a property of the network."
        )
    bounds = sorted({k.replace("_", " ") for k in kinds if k in ("upper_bound", "lower_bound")})
    if bounds:
        note += (
            f" The values are {' / '.join(bounds)}s, whose tightness can differ between layers, "
            "so their ordering does not by itself contradict the DPI."
        )
    return note


def _warning(layer: str, estimator: str, quantity: Optional[str], code: str, severity: str, message: str,
             evidence: Dict[str, Any], remedy: str) -> Dict[str, Any]:
    return {
        "layer": layer,
        "estimator": estimator,
        "quantity": quantity,
        "code": code,
        "severity": severity,
        "message": message,
        "evidence": evidence,
        "remedy": remedy,
    }


# --------------------------------------------------------------------------------------------
# Within-layer bounds
# --------------------------------------------------------------------------------------------


def _bounds(layer: str, est: str, res: Any, h_y_record: Optional[float], cfg: CheckConfig
            ) -> Tuple[int, List[Dict[str, Any]]]:
    ixt, ity = _estimate_of(res, "I_XT"), _estimate_of(res, "I_TY")
    # (name, lhs value, rhs value, estimates involved, always-a-bug, text)
    rules: List[Tuple[str, float, float, Tuple[Optional[Estimate], ...], bool, str]] = []
    if ixt is not None:
        rules.append(("I_XT >= 0", 0.0, ixt.value, (ixt,), False, f"I(X;T) = {ixt.value:.6g} bits < 0"))
        if ixt.cap is not None:
            rules.append(("I_XT <= cap", ixt.value, ixt.cap, (ixt,), True,
                          f"I(X;T) = {ixt.value:.6g} bits > its cap {ixt.cap:.6g} bits"))
    if ity is not None:
        rules.append(("I_TY >= 0", 0.0, ity.value, (ity,), False, f"I(T;Y) = {ity.value:.6g} bits < 0"))
        if ixt is not None:
            rules.append(("I_TY <= I_XT", ity.value, ixt.value, (ity, ixt), False,
                          f"I(T;Y) = {ity.value:.6g} bits > I(X;T) = {ixt.value:.6g} bits"))
        h_y = ity.diagnostics.get("H_Y", h_y_record) if isinstance(ity.diagnostics, dict) else h_y_record
        if h_y is not None and math.isfinite(h_y):
            rules.append(("I_TY <= H_Y", ity.value, float(h_y), (ity,), False,
                          f"I(T;Y) = {ity.value:.6g} bits > H(Y) = {float(h_y):.6g} bits"))
        if ity.cap is not None:
            rules.append(("I_TY <= cap", ity.value, ity.cap, (ity,), True,
                          f"I(T;Y) = {ity.value:.6g} bits > its cap {ity.cap:.6g} bits"))
    out: List[Dict[str, Any]] = []
    for name, lhs, rhs, ests, cap_rule, text in rules:
        size = lhs - rhs
        if size <= cfg.tol_bits:
            continue
        exact = all(e.kind == "exact" for e in ests if e is not None)
        unc = 0.0 if exact else _combined_se(*ests)
        bug = exact or cap_rule
        sig = True if cap_rule else _significance(size, unc, exact, cfg)
        if bug:
            why = ("an estimator never reports above its own cap" if cap_rule and not exact else
                   "this inequality holds exactly for the estimated quantity")
            msg = (f"BUG in estimator {est!r} at layer {layer!r}: {text} (by {size:.3g} bits); {why}, "
                   "so this is a bug, not noise. Please report it with the record.")
        else:
            msg = (f"Estimator inconsistency of {est!r} at layer {layer!r}: {text} (by {size:.3g} bits); "
                   f"{_sig_text(sig, unc, exact, cfg)}.")
        out.append({
            "layer": layer,
            "estimator": est,
            "bound": name,
            "lhs_bits": lhs,
            "rhs_bits": rhs,
            "size_bits": size,
            "uncertainty_bits": unc,
            "significant": sig,
            "kind": "bug" if bug else "estimator_inconsistency",
            "message": msg,
        })
    return len(rules), out


# --------------------------------------------------------------------------------------------
# Artefact warnings
# --------------------------------------------------------------------------------------------


def _artefacts(
    layer: str, est: str, res: Any, info: Mapping[str, Any], cfg: CheckConfig
) -> List[Dict[str, Any]]:
    warns: List[Dict[str, Any]] = []
    activation = _norm_activation(info.get("activation"))
    act_text = f"{info.get('activation')} " if activation else ""
    act_head = f"{info.get('activation')}, " if activation else "activation unknown, "
    for qty in QUANTITIES:
        e = _estimate_of(res, qty)
        if e is None:
            continue
        diag = e.diagnostics if isinstance(e.diagnostics, dict) else {}
        q = _QLABEL[qty]
        if qty == "I_XT" and _is_binning(e):
            n_bins = e.params.get("n_bins")
            rng = diag.get("range_used")
            frac_ext = diag.get("fraction_in_extreme_bins")
            if (frac_ext is not None and frac_ext >= cfg.extreme_bins_threshold
                    and activation not in NON_SATURATING_ACTIVATIONS):
                known = activation in SATURATING_ACTIVATIONS
                warns.append(_warning(
                    layer, est, qty, "saturating_units", "warning",
                    f"Layer {layer!r} ({act_head}binned with {n_bins} bins over {rng}): "
                    f"{frac_ext:.0%} of its unit values fall in the two extreme bins"
                    + ("" if known else " (saturating units if the activation is bounded, e.g. tanh/sigmoid)")
                    + ". Saturated units make binned I(X;T) fall without any loss of information "
                    "(Saxe et al. 2018), so an apparent compression of this layer under binning may be "
                    "an artefact.",
                    {"fraction_in_extreme_bins": frac_ext, "threshold": cfg.extreme_bins_threshold,
                     "n_bins": n_bins, "range_used": rng, "activation": info.get("activation")},
                    "Confirm the trend with an estimator that does not bin (e.g. KDE or kNN), or with bins "
                    "equal in net input; read compression of this layer under binning with caution.",
                ))
            frac_out = diag.get("fraction_outside_range")
            if frac_out is not None and frac_out > cfg.outside_range_threshold:
                warns.append(_warning(
                    layer, est, qty, "outside_range", "warning",
                    f"Layer {layer!r}: {frac_out:.1%} of its {act_text}activations lie outside the fixed "
                    f"bin range {rng} and are clipped into the end bins (the ReLU/[-1,1] trap, "
                    "ravidziv/IDNNs#12): binned I(X;T) is underestimated and can show a fake compression.",
                    {"fraction_outside_range": frac_out, "threshold": cfg.outside_range_threshold,
                     "range_used": rng, "n_bins": n_bins, "activation": info.get("activation")},
                    "Bin over the layer's own range (range=\"layer\", or \"running\" where available), "
                    "widen the fixed range to cover the activations, or use another estimator (KDE, kNN).",
                ))
        if e.saturated or (e.cap is not None and e.value >= e.cap - 1e-9):
            by_n = e.n > 1 and e.cap is not None and abs(e.cap - math.log2(e.n)) < 1e-6
            remedy = (f"Use more probe samples: the cap is log2 n = {e.cap:.4g} bits for n = {e.n}."
                      if by_n else
                      "Raise the estimator's cap: more probe samples (log2 n) or, for contrastive bounds, "
                      "a larger K (cap log2 K).")
            warns.append(_warning(
                layer, est, qty, "at_cap", "info" if by_n and e.kind == "exact" else "warning",
                f"Layer {layer!r}: {q} = {e.value:.4g} bits from {est!r} is at the estimator's cap "
                f"{e.cap:.4g} bits; the true value may be higher, and changes above the cap cannot show.",
                {"value": e.value, "cap": e.cap, "n": e.n, "quantity": e.quantity, "kind": e.kind},
                remedy,
            ))
        if qty == "I_XT" and e.kind != "exact" and e.n > 0 and e.dim > 0:
            need = cfg.required_samples(e.dim)
            if e.n < need:
                warns.append(_warning(
                    layer, est, qty, "too_few_samples", "warning",
                    f"Layer {layer!r}: {est!r} estimates from n = {e.n} samples of a {e.dim}-dimensional T; "
                    f"the rule n >= max({cfg.samples_per_dim:g}*d, 2^min(d,{cfg.orthant_max_dim})) "
                    f"asks for {need}. "
                    "kNN/KDE-type estimates are strongly biased at this sample size.",
                    {"n": e.n, "dim": e.dim, "required": need,
                     "rule": f"n >= max({cfg.samples_per_dim:g}*d, 2**min(d, {cfg.orthant_max_dim}))"},
                    f"Use at least {need} probe samples, or reduce T (a random projection or PCA to a few "
                    "dimensions) before estimating.",
                ))
        frac_dup = diag.get("fraction_duplicate_rows")
        if qty == "I_XT" and frac_dup is not None and frac_dup >= cfg.duplicate_rows_threshold:
            if e.kind == "exact":
                msg = (f"Layer {layer!r}: {frac_dup:.0%} of the {e.n} rows coincide with another after "
                       f"{'binning' if _is_binning(e) else 'discretisation'} "
                       f"({diag.get('distinct_rows')} distinct). I(X;T) here measures how the discretisation "
                       "merges inputs (clustering at this resolution), not a loss of information by the "
                       "deterministic network.")
                remedy = ("Compare with finer bins or a noise-based estimator before reading a drop of "
                          "I(X;T) as compression.")
                sev = "info"
            else:
                msg = (f"Layer {layer!r}: {frac_dup:.0%} of the {e.n} rows of T duplicate another; ties make "
                       "nearest-neighbour distances zero and bias kNN/KDE estimates.")
                remedy = ("Add a tiny jitter, use a mixed discrete-continuous estimator, or use binning "
                          "for this layer.")
                sev = "warning"
            warns.append(_warning(
                layer, est, qty, "duplicate_rows", sev, msg,
                {"fraction_duplicate_rows": frac_dup, "distinct_rows": diag.get("distinct_rows"), "n": e.n,
                 "threshold": cfg.duplicate_rows_threshold},
                remedy,
            ))
    return warns


# --------------------------------------------------------------------------------------------
# DPI along chains
# --------------------------------------------------------------------------------------------


def _dpi(record: Record, chains: Sequence[Chain], cfg: CheckConfig
         ) -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
    violations: List[Dict[str, Any]] = []
    summary: Dict[str, Dict[str, Dict[str, int]]] = {}
    chain_out: List[Dict[str, Any]] = []
    for chain in chains:
        present = [x for x in chain.layers if x in record.layers]
        missing = [x for x in chain.layers if x not in record.layers]
        chain_out.append({**chain.to_dict(), "missing": missing})
        ests: List[str] = []
        for x in present:
            for name in record.layers[x]:
                if name not in ests:
                    ests.append(name)
        for est in ests:
            for qty in QUANTITIES:
                cell = summary.setdefault(est, {}).setdefault(
                    qty, {"pairs_checked": 0, "violated": 0, "significant": 0, "skipped": 0})
                for a, b in chain.pairs(cfg.dpi_pairs):
                    ea = _estimate_of(record.layers.get(a, {}).get(est), qty)
                    eb = _estimate_of(record.layers.get(b, {}).get(est), qty)
                    if ea is None or eb is None:
                        cell["skipped"] += 1
                        continue
                    cell["pairs_checked"] += 1
                    size = eb.value - ea.value
                    if size <= cfg.tol_bits:
                        continue
                    cell["violated"] += 1
                    exact = ea.kind == "exact" and eb.kind == "exact"
                    unc = 0.0 if exact else _combined_se(ea, eb)
                    sig = _significance(size, unc, exact, cfg)
                    if sig:
                        cell["significant"] += 1
                    q = _QLABEL[qty]
                    violations.append({
                        "chain": chain.name,
                        "estimator": est,
                        "quantity": qty,
                        "upstream": a,
                        "downstream": b,
                        "upstream_bits": ea.value,
                        "downstream_bits": eb.value,
                        "size_bits": size,
                        "uncertainty_bits": unc,
                        "significant": sig,
                        "kind": "estimator_inconsistency",
                        "estimate_kinds": [ea.kind, eb.kind],
                        "message": (
                            f"DPI violated along chain {chain.name!r} under {est!r}: {q} of {b!r} = "
                            f"{eb.value:.4g} bits exceeds {q} of the earlier layer {a!r} = {ea.value:.4g} "
                            f"bits by {size:.3g} bits; "
                            f"{_sig_text(sig, unc, exact, cfg)}. {_dpi_note(est, (ea.kind, eb.kind))}"
                        ),
                    })
    totals = {"pairs_checked": 0, "violated": 0, "significant": 0, "skipped": 0}
    for per_q in summary.values():
        for cell in per_q.values():
            for k in totals:
                totals[k] += cell[k]
    on_chain = {x for c in chains for x in c.layers}
    not_checked = [x for x in record.layers if x not in on_chain]
    return {
        "pairs": cfg.dpi_pairs,
        "chains": chain_out,
        "summary": summary,
        "totals": totals,
        "violations": violations,
        "not_checked": not_checked,
    }, violations


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def check_record(
    record: Record,
    chains: Union[None, Mapping[str, Sequence[str]], Sequence[ChainSpec]] = (),
    *,
    layer_info: Optional[Mapping[str, Mapping[str, Any]]] = None,
    config: Optional[CheckConfig] = None,
    strict: bool = True,
) -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
    """Bounds, DPI and artefact checks of one Record.

    Args:
        record: The measurement.
        chains: :class:`Chain`s (or declarations accepted by :func:`as_chains`) along which the DPI holds.
        layer_info: Optional ``{layer: {"activation": "tanh", ...}}``; the activation decides
            whether many values in the extreme bins mean saturation.
        config: Thresholds (:class:`CheckConfig`).
        strict: Raise ``ValueError`` for chain layers absent from ``record.layers``; when ``False``
            they are listed under ``checks["dpi"]["chains"][i]["missing"]`` and skipped.

    Returns:
        ``(checks, warnings)``, JSON-serialisable::

            checks = {
              "version": 1, "step": int, "tol_bits": float, "z": float,
              "bounds": {"checked": int, "violated": int, "bugs": int, "significant": int,
                         "violations": [{"layer", "estimator", "bound", "lhs_bits", "rhs_bits", "size_bits",
                                         "uncertainty_bits", "significant", "kind", "message"}]},
              "dpi": {"pairs": "adjacent" | "all",
                      "chains": [{"name", "layers", "source", "missing"}],
                      "summary": {estimator: {"I_XT" | "I_TY": {"pairs_checked", "violated", "significant",
                                                                 "skipped"}}},
                      "totals": {"pairs_checked", "violated", "significant", "skipped"},
                      "violations": [{"chain", "estimator", "quantity", "upstream", "downstream",
                                      "upstream_bits", "downstream_bits", "size_bits", "uncertainty_bits",
                                      "significant", "kind", "estimate_kinds", "message"}],
                      "not_checked": [layer, ...]},
              "warning_counts": {code: int},
            }
            warnings = [{"layer", "estimator", "quantity", "code", "severity", "message", "evidence",
                         "remedy"}]

        ``bound`` is one of ``"I_XT >= 0"``, ``"I_XT <= cap"``, ``"I_TY >= 0"``, ``"I_TY <= I_XT"``,
        ``"I_TY <= H_Y"``, ``"I_TY <= cap"``; ``kind`` is ``"bug"`` (exact estimates, or a value above
        the estimator's own cap) or ``"estimator_inconsistency"``; for DPI violations ``kind`` is
        always ``"estimator_inconsistency"`` (the message adds that bound-kind values, see
        ``estimate_kinds``, need not be ordered even when the DPI holds). ``significant`` is ``None``
        when the uncertainty is unknown. ``severity`` is ``"error"`` (bugs), ``"warning"`` or ``"info"``.
    """
    cfg = config if config is not None else CheckConfig()
    chains_t = as_chains(chains)
    if strict:
        for c in chains_t:
            c.validate(record.layers.keys())
    info_all = layer_info or {}

    warnings: List[Dict[str, Any]] = []
    b_checked, b_viol = 0, []
    for layer, per_est in record.layers.items():
        info = info_all.get(layer, {}) or {}
        for est, res in per_est.items():
            if res is None or res.error:
                continue
            n_rules, v = _bounds(layer, est, res, record.h_y, cfg)
            b_checked += n_rules
            b_viol.extend(v)
            warnings.extend(_artefacts(layer, est, res, info, cfg))

    for v in b_viol:
        warnings.append(_warning(
            v["layer"], v["estimator"], v["bound"].split(" ")[0], "bound_violation",
            "error" if v["kind"] == "bug" else "warning", v["message"],
            {k: v[k] for k in ("bound", "lhs_bits", "rhs_bits", "size_bits", "uncertainty_bits",
                               "significant")},
            "Report the bug with this record (estimator, params, layer shape)." if v["kind"] == "bug" else
            "Treat this layer's estimates as unreliable at this measurement: more probe samples, or a "
            "different estimator setting.",
        ))

    dpi, dpi_viol = _dpi(record, chains_t, cfg)
    grouped: Dict[Tuple[str, str], List[Dict[str, Any]]] = {}
    for v in dpi_viol:
        if v["significant"]:
            grouped.setdefault((v["chain"], v["estimator"]), []).append(v)
    for (chain, est), vs in grouped.items():
        worst = max(vs, key=lambda v: v["size_bits"])
        pairs = ", ".join(f"{_QLABEL[v['quantity']]} {v['upstream']}->{v['downstream']} +{v['size_bits']:.3g}"
                          for v in vs)
        warnings.append(_warning(
            worst["downstream"], est, worst["quantity"], "dpi_violation", "warning",
            f"{len(vs)} significant DPI violation(s) along chain {chain!r} under {est!r} ({pairs} bits). "
            + _dpi_note(est, sorted({k for v in vs for k in v["estimate_kinds"]})),
            {"chain": chain, "violations": [
                {k: v[k] for k in ("quantity", "upstream", "downstream", "size_bits", "uncertainty_bits")}
                for v in vs]},
            "Do not read the ordering of these layers in the information plane as real; compare with an "
            "estimator whose noise is part of the network, or with more probe samples.",
        ))

    counts: Dict[str, int] = {}
    for w in warnings:
        counts[w["code"]] = counts.get(w["code"], 0) + 1
    checks = {
        "version": 1,
        "step": record.step,
        "tol_bits": cfg.tol_bits,
        "z": cfg.z,
        "bounds": {
            "checked": b_checked,
            "violated": len(b_viol),
            "bugs": sum(1 for v in b_viol if v["kind"] == "bug"),
            "significant": sum(1 for v in b_viol if v["significant"]),
            "violations": b_viol,
        },
        "dpi": dpi,
        "warning_counts": counts,
    }
    return _jsonable(checks), _jsonable(warnings)


__all__ = [
    "Chain",
    "CheckConfig",
    "as_chains",
    "validate_chains",
    "check_record",
    "WARNING_CODES",
    "SATURATING_ACTIVATIONS",
    "NON_SATURATING_ACTIVATIONS",
]
