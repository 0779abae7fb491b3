"""Progress feedback for measurements: a per-layer progress bar (tqdm when installed) and a one-line
summary of each finished measurement. tqdm is optional and imported only when a bar is asked for."""

from __future__ import annotations

import sys
from typing import Any, Optional, TextIO

from .schema import Record

__all__ = ["measurement_progress", "format_measurement_line", "NullProgress"]


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
) -> Any:
    """A progress bar over the layers of one measurement: ``tqdm`` (to stderr, cleared when done)
    when ``enabled`` and tqdm is importable, else a :class:`NullProgress`.

    Args:
        total_layers: Number of layers (x estimators) to be estimated.
        enabled: ``False`` gives the no-op bar.
        step: Training step, shown in the description.
        file: Stream for the bar (default ``sys.stderr``).

    Example::

        with measurement_progress(len(layers), verbose, step=step) as bar:
            for layer in layers:
                ...
                bar.update()
    """
    if not enabled or total_layers <= 0:
        return NullProgress()
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
    )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def format_measurement_line(record: Record) -> str:
    """One line about a finished measurement: step (and epoch), layers x estimators, wall time, and
    when there are any: artefact warnings, DPI violations (significant / not assessed for lack of an
    interval; violations within their uncertainty are left out), bound violations that are bugs, errors.

    Example: ``ibhooks: step 1200 (epoch 3): 5 layers x 1 estimator in 0.84 s; 2 warnings,
    DPI 1 significant / 2 not assessed``
    """
    where = f"step {record.step}" + (f" (epoch {record.epoch})" if record.epoch is not None else "")
    line = (f"ibhooks: {where}: {_plural(len(record.layers), 'layer')} x "
            f"{_plural(len(record.estimators), 'estimator')} in {record.seconds:.2f} s")
    extras = []
    if record.warnings:
        extras.append(_plural(len(record.warnings), "warning"))
    if record.checks is not None:
        dpi = record.checks.dpi_total()
        if dpi.significant or dpi.not_assessed:
            extras.append(f"DPI {dpi.significant} significant / {dpi.not_assessed} not assessed")
        if record.checks.bugs:
            extras.append(_plural(record.checks.bugs, "bound violation") + " (bug)")
    if record.errors:
        extras.append(_plural(len(record.errors), "error"))
    return line + ("; " + ", ".join(extras) if extras else "")
