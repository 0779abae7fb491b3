"""The analysis noise of the KDE and noisy-channel estimators: an absolute variance, or one relative
to the layer's own scale and fixed per layer at its first measurement.

* absolute: ``noise_var=s2`` gives sigma^2 = s2 in the layer's units (Saxe et al.: 0.1 on tanh
  layers). A layer whose scale grows reads more and more.
* relative: ``relative_noise=beta`` gives sigma^2 = beta x v, v the mean over the D units of each
  unit's variance over the probe rows (``relative_to="unit"``, named ``var(T)``), or the total
  variance D x v (``relative_to="total"``, named ``trvar(T)``). The reading is then about geometry:
  how many probe rows the layer keeps apart at that relative resolution, and T and 10 T read the same.
  Per unit, two rows merge only when their whole distance is below about sigma, so in D dimensions
  only clusters much tighter than the spread of one unit merge; ``"total"`` compares distances with
  the layer's whole spread instead.

An estimator fixes v per layer at the layer's first measurement (:class:`LayerNoise`, kept in its
``state_dict``) so the instrument does not drift as the layer's scale changes during training; a call
without a layer name (a general pair) takes v from its own data. A layer with zero variance (constant
rows, where every reading is 0 at any noise) does not fix v: the first measurement with spread does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from ._common import require_number

#: The two meanings of a relative noise level (see the module).
RELATIVE_TO = ("unit", "total")
_SCALE_NAME = {"unit": "var(T)", "total": "trvar(T)"}


@dataclass(frozen=True)
class NoiseSpec:
    """An absolute ``noise_var`` or a relative ``beta`` (with what it is relative to); never both."""

    noise_var: Optional[float] = None
    beta: Optional[float] = None
    relative_to: str = "unit"

    @property
    def relative(self) -> bool:
        return self.beta is not None

    def scale(self, mean_unit_var: float, dim: int) -> float:
        """The variance v that ``beta`` multiplies, for a layer of ``dim`` units."""
        return mean_unit_var * (dim if self.relative_to == "total" else 1)

    def sigma2(self, scale: float) -> float:
        """sigma^2 for a fixed scale v (ignored when absolute)."""
        if self.beta is None:
            return float(self.noise_var)  # type: ignore[arg-type]
        return self.beta * scale if scale > 0 else self.beta  # constant rows: any sigma gives 0

    def label(self, *, identity: bool = False) -> str:
        """``N(0,0.1)`` or ``N(0,0.1*var(T))`` (``identity`` appends ``I`` to an absolute variance)."""
        if self.beta is None:
            return f"N(0,{self.noise_var:g}{'I' if identity else ''})"
        return f"N(0,{self.beta:g}*{_SCALE_NAME[self.relative_to]})"

    def params(self) -> Dict[str, Any]:
        """How the settings are recorded: ``noise_var`` alone, or ``relative_noise`` (+ ``relative_to``)."""
        if self.beta is None:
            return {"noise_var": self.noise_var}
        p: Dict[str, Any] = {"relative_noise": self.beta}
        if self.relative_to != "unit":
            p["relative_to"] = self.relative_to
        return p


def noise_spec(noise_var: Optional[float] = None, relative_noise: Optional[float] = None,
               relative_to: str = "unit", *, default: float = 0.1) -> NoiseSpec:
    """Validate the noise settings (one ValueError naming the fix). Neither given: ``noise_var=default``."""
    if noise_var is not None and relative_noise is not None:
        raise ValueError(
            f"pass either noise_var (absolute sigma^2, got {noise_var!r}) or relative_noise "
            f"(sigma^2 = beta x the layer's mean per-unit variance, got {relative_noise!r}), not both")
    if relative_to not in RELATIVE_TO:
        raise ValueError(f"relative_to must be one of {RELATIVE_TO}, got {relative_to!r}")
    if relative_noise is not None:
        return NoiseSpec(beta=require_number("relative_noise", relative_noise), relative_to=relative_to)
    return NoiseSpec(noise_var=require_number("noise_var", default if noise_var is None else noise_var))


class LayerNoise:
    """Per-layer scale v of a relative noise, fixed at each layer's first measurement with spread."""

    def __init__(self, spec: NoiseSpec) -> None:
        self.spec = spec
        self._scale: Dict[str, float] = {}

    def resolve(self, layer: Optional[str], mean_unit_var: float, dim: int) -> Tuple[float, Dict[str, Any]]:
        """sigma^2 for this measurement of ``layer`` and the params that record it (``noise_var``: the
        sigma^2 used; ``noise_scale``: the fixed v). Without a layer name v comes from this call."""
        if not self.spec.relative:
            return self.spec.sigma2(0.0), {}
        now = self.spec.scale(mean_unit_var, dim)
        scale = now if layer is None else self._scale.get(str(layer), now)
        if layer is not None and now > 0:
            self._scale.setdefault(str(layer), now)
        sigma2 = self.spec.sigma2(scale)
        return sigma2, {"noise_var": sigma2, "noise_scale": scale}

    def state_dict(self) -> Dict[str, Any]:
        return {"noise_scale": dict(self._scale)}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self._scale = {str(k): float(v) for k, v in (state.get("noise_scale") or {}).items()}
