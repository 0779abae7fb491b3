"""The coverage table: which layers are monitored, how, and what was skipped, sized for a screen.

The rows are the dicts ``IBMonitor.coverage`` builds, one per module of the model: ``name``, ``type``,
``status`` (``"monitored"``, ``"error"`` or ``"skipped"``), ``reason`` and, for monitored layers,
``shape`` (``["B", ...]``), ``reduction``, ``dim``, ``activation``, ``chain`` and optionally
``estimator``. By default the table has one line per monitored layer (full names: they are what a
user types into ``layers=``) and one line counting the skipped modules by kind of reason (the text
before the first ``":"``); ``all=True`` lists every module with its reason.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, List, Mapping, Sequence

_STATUSES = ("monitored", "error", "skipped")


def _text(value: Any) -> str:
    if value is None or value == "" or value == []:
        return "-"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _shape(row: Mapping[str, Any]) -> str:
    shape = row.get("shape")
    return "x".join(str(s) for s in shape) if shape else "-"


def _reduction(row: Mapping[str, Any]) -> str:
    red, dim = row.get("reduction"), row.get("dim")
    if red is None and dim is None:
        return "-"
    return f"{_text(red)} -> {_text(dim)}" if dim is not None else _text(red)


def _table(header: Sequence[str], lines: List[List[str]]) -> List[str]:
    """Left-aligned columns as wide as their widest cell (nothing is cut); the last column is free."""
    widths = [max(len(r[i]) for r in [list(header)] + lines) for i in range(len(header) - 1)]
    out = []
    for r in [list(header)] + lines:
        cells = [c.ljust(w) for c, w in zip(r[:-1], widths)] + [r[-1]]
        out.append(("  " + "  ".join(cells)).rstrip())
    return out


def skipped_summary(rows: Sequence[Mapping[str, Any]]) -> str:
    """One line: how many modules were skipped, counted by kind of reason (most frequent first)."""
    kinds = Counter(str(r.get("reason") or "no reason given").split(":")[0].strip()
                    for r in rows if r.get("status") == "skipped")
    if not kinds:
        return "  skipped: none"
    counts = ", ".join(f"{n} {kind}" for kind, n in kinds.most_common())
    return f"  skipped {sum(kinds.values())} modules: {counts} (coverage_table(all=True) lists them)"


def _check(rows: Sequence[Mapping[str, Any]]) -> None:
    if isinstance(rows, (str, bytes)) or not isinstance(rows, Sequence):
        raise TypeError("render_coverage needs a list of row dicts (IBMonitor.coverage), "
                        f"got {type(rows).__name__}")
    for i, r in enumerate(rows):
        if not isinstance(r, Mapping) or "name" not in r or r.get("status") not in _STATUSES:
            raise ValueError(f"coverage row {i} must be a dict with 'name' and a 'status' in {_STATUSES}, "
                             f"got {r!r}; pass IBMonitor.coverage")


def render_coverage(rows: Sequence[Mapping[str, Any]], *, all: bool = False) -> str:  # noqa: A002
    """Render coverage rows as text.

    Default: a column header, one line per monitored (or failed) layer with its full name, type,
    output shape, reduction and dim, estimator (if the rows carry one) and chain (or, for a failed
    layer, the error), then one line counting the skipped modules by kind. ``all=True``: every
    module, with its status and reason.
    """
    _check(rows)
    with_estimator = any("estimator" in r for r in rows)
    header = ["layer", "type", "output", "reduction -> dim"] + (["estimator"] if with_estimator else [])
    lines: List[List[str]] = []
    for r in rows:
        if r["status"] == "skipped" and not all:
            continue
        cells = [str(r["name"]), _text(r.get("type")), _shape(r), _reduction(r)]
        if with_estimator:
            cells.append(_text(r.get("estimator")))
        if r["status"] == "monitored":
            last = f"chain {r['chain']}" if r.get("chain") else "-"
        else:
            last = f"{r['status']}: {_text(r.get('reason'))}"
        lines.append(cells + [last])
    header = header + ["chain / status"]
    out = _table(header, lines) if lines else ["  (no layer monitored)"]
    if not all:
        out.append(skipped_summary(rows))
    return "\n".join(out)

