"""Running the analyses of a measurement with failures contained (recorded, warned once)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Sequence

from .base import Analysis

if TYPE_CHECKING:  # pragma: no cover
    from ..capture.snapshot import Snapshot
    from ..pipeline.console import Console
    from ..schema import Record


def run_on_snapshot(analyses: Sequence[Analysis], snapshot: "Snapshot", console: "Console") -> None:
    """Each analysis's training-thread step; a failure goes into ``snapshot.errors``."""
    for analysis in analyses:
        try:
            analysis.on_snapshot(snapshot)
        except Exception as exc:  # noqa: BLE001 - the monitor never crashes training
            msg = f"analysis {analysis.name!r} failed on the snapshot: {type(exc).__name__}: {exc}"
            snapshot.errors.append(msg)
            console.warn_once(("analysis-snapshot", analysis.name, type(exc).__name__),
                              msg + " (recorded in the run log; training continues)")


def run_analyses(
    analyses: Sequence[Analysis], snapshot: "Snapshot", record: "Record", console: "Console"
) -> None:
    """Each analysis's result into ``record.analyses``; a failure into ``record.errors``."""
    from ..schema import RecordError

    for analysis in analyses:
        t0 = time.perf_counter()
        try:
            result = analysis.analyse(snapshot, record)
        except Exception as exc:  # noqa: BLE001
            msg = f"{type(exc).__name__}: {exc}"
            record.errors.append(RecordError(f"analysis {analysis.name!r} failed: {msg}", stage="analyse"))
            console.warn_once(("analysis", analysis.name, type(exc).__name__),
                              f"analysis {analysis.name!r} failed at step {record.step}: {msg} "
                              "(recorded in the run log; training continues)")
            continue
        if result is not None:
            record.analyses[analysis.name] = result
            record.info.setdefault("analysis_seconds", {})[analysis.name] = round(time.perf_counter() - t0, 6)
