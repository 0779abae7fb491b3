"""Progress feedback for measurements: a per-layer progress bar (tqdm when installed) and a one-line
summary of each finished measurement. tqdm is optional and imported only when a bar is asked for."""

from __future__ import annotations

import sys
from typing import Any, Optional, TextIO

from .estimate import Record

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


def format_measurement_line(record: Record) -> str:
    """One line about a finished measurement: step (and epoch), layers x estimators, wall time, and
    counts of warnings, DPI violations and errors when there are any.

    Example: ``ibhooks: step 1200 (epoch 3): 5 layers x 1 estimator in 0.84 s; 2 warnings``
    """
    n_layers = len(record.layers)
    n_est = len(record.estimators)
    where = f"step {record.step}" + (f" (epoch {record.epoch})" if record.epoch is not None else "")
    est = f"{n_est} estimator" + ("" if n_est == 1 else "s")
    line = (
        f"ibhooks: {where}: {n_layers} layer{'' if n_layers == 1 else 's'} x {est} in {record.seconds:.2f} s"
    )
    extras = []
    n_warn = len(record.warnings or [])
    if n_warn:
        extras.append(f"{n_warn} warning{'' if n_warn == 1 else 's'}")
    dpi = (record.checks or {}).get("dpi") if isinstance(record.checks, dict) else None
    n_dpi = len(dpi.get("violations") or []) if isinstance(dpi, dict) else 0
    if n_dpi:
        extras.append(f"{n_dpi} DPI violation{'' if n_dpi == 1 else 's'}")
    n_err = len(record.errors or [])
    if n_err:
        extras.append(f"{n_err} error{'' if n_err == 1 else 's'}")
    return line + ("; " + ", ".join(extras) if extras else "")
