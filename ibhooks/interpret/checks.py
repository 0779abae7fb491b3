"""The checks of one measurement and their registry: :func:`check_record`.

A check is a function ``CheckContext -> Findings`` (see :mod:`.base`); :data:`CHECKS` lists them in
the order they run. Adding a check = one function + one line in :data:`CHECKS`.
"""

from __future__ import annotations

from typing import Any, Callable, List, Mapping, Optional, Tuple

from ..chains import ChainsSpec, as_chains
from ..schema.findings import Checks, IBWarning
from ..schema.record import Record
from .artefacts import check_artefacts
from .base import CheckConfig, CheckContext, Findings
from .bounds import check_bounds
from .dpi import check_dpi

Check = Callable[[CheckContext], Findings]

#: The checks :func:`check_record` runs, in order (their warnings are listed in this order).
CHECKS: List[Check] = [
    check_artefacts,
    check_bounds,
    check_dpi,
]


def check_record(
    record: Record,
    chains: ChainsSpec = (),
    *,
    layer_info: Optional[Mapping[str, Mapping[str, Any]]] = None,
    config: Optional[CheckConfig] = None,
    strict: bool = False,
) -> Tuple[Checks, List[IBWarning]]:
    """Bounds, DPI and artefact checks of one Record.

    Args:
        record: The measurement.
        chains: Chains along which the DPI holds (anything :func:`ibhooks.chains.as_chains` accepts).
        layer_info: Optional ``{layer: {"activation": "tanh", ...}}``; the activation decides whether
            many values in the extreme bins mean saturation.
        config: Thresholds (:class:`CheckConfig`).
        strict: Raise ``ValueError`` for chain layers absent from ``record.layers``; when ``False``
            they are listed in ``Checks.chains[i].missing`` and their pairs skipped.

    Returns:
        ``(checks, warnings)``: the typed :class:`~ibhooks.schema.Checks` and the artefact, bound and
        DPI warnings (:class:`~ibhooks.schema.IBWarning`) in the order of :data:`CHECKS`.
    """
    if not isinstance(record, Record):
        raise TypeError(
            f"check_record needs a Record, got {type(record).__name__}; use Record.from_dict for a dict"
        )
    cfg = config if config is not None else CheckConfig()
    chains_t = as_chains(chains)
    if strict:
        for c in chains_t:
            c.validate(record.layers.keys())
    ctx = CheckContext(record=record, chains=chains_t, layer_info=dict(layer_info or {}), config=cfg)
    found = [check(ctx) for check in CHECKS]
    not_on_chain = next((f.not_on_chain for f in found if f.not_on_chain is not None), tuple(record.layers))
    checks = Checks(
        bounds_checked=sum(f.bounds_checked for f in found),
        bound_violations=tuple(v for f in found for v in f.bound_violations),
        dpi_pairs=cfg.dpi_pairs,
        chains=tuple(c for f in found for c in f.chains),
        dpi=tuple(t for f in found for t in f.dpi),
        dpi_violations=tuple(v for f in found for v in f.dpi_violations),
        not_on_chain=not_on_chain,
        tol_bits=cfg.tol_bits,
        z=cfg.z,
    )
    return checks, [w for f in found for w in f.warnings]


__all__ = ["CHECKS", "Check", "CheckConfig", "check_record"]
