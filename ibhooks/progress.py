"""Progress feedback for measurements: a per-layer progress bar (tqdm when installed) and a one-line
summary of each finished measurement (:class:`MeasurementLines` says which warnings are new in the run).
tqdm is optional and imported only when a bar is asked for."""

from __future__ import annotations

import sys
from typing import Any, Dict, List, Optional, Sequence, Set, TextIO, Tuple

from .schema import IBWarning, Record

__all__ = ["measurement_progress", "format_measurement_line", "MeasurementLines", "NullProgress"]

WarningId = Tuple[str, Optional[str]]  # (code, layer): what "new in this run" is judged by


class NullProgress:
    """A progress bar that does nothing (tqdm missing, or progress disabled). Same surface as the
    parts of tqdm the monitor uses: ``update``, ``set_postfix_str``, ``set_description``, ``close``,
    and use as a context manager."""

    n = 0
    total: Optional[int] = None

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        del s, refresh

    def set_description(self, desc: Optional[str] = None, refresh: bool = True) -> None:
        del desc, refresh

    def close(self) -> None:
        pass

    def __enter__(self) -> "NullProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def measurement_progress(
    total_layers: int,
    enabled: bool = True,
    *,
    step: Optional[int] = None,
    file: Optional[TextIO] = None,
    delay: float = 0.0,
) -> Any:
    """A progress bar over the layers of one measurement: ``tqdm`` (to stderr, cleared when done)
    when ``enabled`` and tqdm is importable, else a :class:`NullProgress`.

    Args:
        total_layers: Number of layers (x estimators) to be estimated.
        enabled: ``False`` gives the no-op bar.
        step: Training step, shown in the description.
        file: Stream for the bar (default ``sys.stderr``).
        delay: Show the bar only once this many seconds have passed (the monitor uses 1 s, so a fast
            measurement prints nothing); a bar never shown also prints nothing when closed.

    Example::

        with measurement_progress(len(layers), verbose, step=step) as bar:
            for layer in layers:
                ...
                bar.update()
    """
    if not enabled or total_layers <= 0:
        return NullProgress()
    if delay < 0:
        raise ValueError(f"delay must be >= 0 seconds, got {delay!r}")
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return NullProgress()
    desc = "ibhooks" if step is None else f"ibhooks step {step}"
    return tqdm(
        total=int(total_layers),
        desc=desc,
        unit="layer",
        leave=False,
        file=file if file is not None else sys.stderr,
        dynamic_ncols=True,
        delay=float(delay),
    )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def warning_id(warning: IBWarning) -> WarningId:
    """``(code, layer)``: a warning is new in a run when no earlier measurement had this pair."""
    return (warning.code.value, warning.layer)


def _describe_new(new: Sequence[WarningId], max_codes: int = 3, max_layers: int = 3) -> str:
    """``at_cap in fc1 fc2; saturating_units in fc3`` (codes in order of appearance, lists cut short)."""
    by_code: Dict[str, List[str]] = {}
    for code, layer in new:
        layers = by_code.setdefault(code, [])
        if layer is not None and layer not in layers:
            layers.append(layer)
    parts = []
    for code, layers in list(by_code.items())[:max_codes]:
        more = len(layers) - max_layers
        shown = " ".join(layers[:max_layers]) + (f" +{more}" if more > 0 else "")
        parts.append(f"{code} in {shown}" if layers else code)
    if len(by_code) > max_codes:
        parts.append(f"+{len(by_code) - max_codes} more codes")
    return "; ".join(parts)


def format_measurement_line(record: Record, new: Optional[Sequence[WarningId]] = None) -> str:
    """One line about a finished measurement: step (and epoch), layers x estimators, wall time, and
    when there are any: artefact warnings (with ``new``, which of them are new in the run: see
    :class:`MeasurementLines`), DPI violations (significant / not assessed for lack of an interval;
    violations within their uncertainty are left out), bound violations that are bugs, errors.

    Example: ``ibhooks: step 1200 (epoch 3): 5 layers x 1 estimator in 0.84 s; 2 warnings (1 new:
    at_cap in fc3), DPI 1 significant / 2 not assessed``
    """
    where = f"step {record.step}" + (f" (epoch {record.epoch})" if record.epoch is not None else "")
    line = (f"ibhooks: {where}: {_plural(len(record.layers), 'layer')} x "
            f"{_plural(len(record.estimators), 'estimator')} in {record.seconds:.2f} s")
    extras = []
    if record.warnings:
        text = _plural(len(record.warnings), "warning")
        if new is not None:
            text += f" ({len(new)} new: {_describe_new(new)})" if new else " (0 new)"
        extras.append(text)
    if record.checks is not None:
        dpi = record.checks.dpi_total()
        if dpi.significant or dpi.not_assessed:
            extras.append(f"DPI {dpi.significant} significant / {dpi.not_assessed} not assessed")
        if record.checks.bugs:
            extras.append(_plural(record.checks.bugs, "bound violation") + " (bug)")
    if record.errors:
        extras.append(_plural(len(record.errors), "error"))
    return line + ("; " + ", ".join(extras) if extras else "")


class MeasurementLines:
    """``record -> line`` for one run (:func:`format_measurement_line`), remembering which warnings the
    run has shown: a warning is new when its ``(code, layer)`` was in no earlier Record given to this
    object. One instance per run; call it in step order (the pipeline does)."""

    def __init__(self) -> None:
        self.seen: Set[WarningId] = set()

    def new_warnings(self, record: Record) -> List[WarningId]:
        """``(code, layer)`` of each warning of ``record`` whose pair no earlier Record had (two warnings
        of one pair, e.g. from two estimators, are both new); marks them seen."""
        ids = [warning_id(w) for w in record.warnings]
        new = [key for key in ids if key not in self.seen]
        self.seen.update(ids)
        return new

    def __call__(self, record: Record) -> str:
        return format_measurement_line(record, new=self.new_warnings(record))
