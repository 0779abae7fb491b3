"""Readable layer labels for dashboards: ``"T3 layer2 (Tanh, 5)"``.

``T<i>`` is the layer's position in network order (input -> output, zero-padded so that dashboards that
sort by name keep that order), then the module name (a bare Sequential index ``3`` is written ``[3]``,
as in ``model[3]``), then the module type (or activation) and the dimension of T from the run header's
coverage rows. User-given names replace the module name.
"""
from __future__ import annotations

import re
from typing import Any, Dict, Mapping, Optional, Sequence

__all__ = ["layer_labels", "path_safe"]


def _coverage_rows(header: Optional[Mapping[str, Any]]) -> Dict[str, Mapping[str, Any]]:
    rows = (header or {}).get("coverage") or []
    return {str(r.get("name")): r for r in rows if isinstance(r, Mapping) and r.get("name") is not None}


def layer_labels(layers: Sequence[str], header: Optional[Mapping[str, Any]] = None,
                 names: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """``{layer: label}`` for ``layers`` in network order.

    Args:
        layers: Monitored layer names, input to output.
        header: Run header; its ``coverage`` rows give each layer's type / activation and dimension.
        names: User-given names (``{"net.3": "hidden 2"}``) used instead of the module names.
    """
    rows = _coverage_rows(header)
    width = len(str(len(layers)))
    out: Dict[str, str] = {}
    for i, layer in enumerate(layers, start=1):
        row = rows.get(layer, {})
        shown = (names or {}).get(layer) or (f"[{layer}]" if layer.isdigit() else layer)
        kind = row.get("type") or row.get("activation")
        act = row.get("activation")
        if kind and act and str(act).lower() not in str(kind).lower():
            kind = f"{kind}, {act}"
        dim = row.get("dim")
        extra = ", ".join(str(x) for x in (kind, dim) if x not in (None, ""))
        out[layer] = f"T{i:0{width}d} {shown}" + (f" ({extra})" if extra else "")
    return out


def path_safe(label: str) -> str:
    """``label`` as one folder name (path separators and control characters replaced)."""
    return re.sub(r"[\\/:*?\"<>|\x00-\x1f]+", "_", label).strip() or "_"
