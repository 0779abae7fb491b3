"""Snapshot -> estimation -> interpretation -> Record -> history and sinks: one measurement after the
capture. Runs on the training thread, or on the background worker (:mod:`.runner`)."""

from __future__ import annotations

import time
from typing import Callable, Mapping, Optional, Sequence

from ..analyses.base import Analysis
from ..analyses.runner import run_analyses
from ..capture.snapshot import Snapshot
from ..estimators.base import Estimator
from ..schema import Record, RecordError
from .console import Console
from .estimation import label_entropy, run_estimators
from .history import SeriesHistory
from .interpretation import Interpreter
from .sinkset import SinkSet


class MeasurementPipeline:
    """Turns Snapshots into Records, in order. Never raises into training: failures are recorded.

    Args:
        estimators: Monitor key -> estimator.
        layer_order: Monitored layers in network order.
        interpreter: Checks and phase tests.
        sinks: Where Records go (the JSONL run log first).
        history: The compact in-memory history.
        console: Warnings and the per-measurement line.
        describe: ``record -> str`` for the per-measurement line.
        analyses: Extra analyses run after estimation, before interpretation (:mod:`ibhooks.analyses`).
    """

    def __init__(
        self,
        estimators: Mapping[str, Estimator],
        layer_order: Sequence[str],
        interpreter: Interpreter,
        sinks: SinkSet,
        history: SeriesHistory,
        console: Console,
        describe: Optional[Callable[[Record], str]] = None,
        analyses: Sequence[Analysis] = (),
    ) -> None:
        self.analyses = list(analyses)
        self.estimators = dict(estimators)
        self.layer_order = list(layer_order)
        self.interpreter = interpreter
        self.sinks = sinks
        self.history = history
        self.console = console
        self.describe = describe

    def process(self, snapshot: Snapshot) -> Record:
        t0 = time.perf_counter()
        record = Record(
            step=snapshot.step, mode=snapshot.mode, n_samples=snapshot.n_samples, epoch=snapshot.epoch
        )
        record.info.update(snapshot.info)
        record.errors.extend(RecordError(e, stage="capture") for e in snapshot.errors)
        try:
            record.h_y = label_entropy(snapshot.labels)
            layers, errors = run_estimators(snapshot, self.estimators, self.layer_order, self.console)
            record.layers = layers
            record.errors.extend(errors)
        except Exception as exc:  # noqa: BLE001 - the monitor never crashes training
            record.errors.append(RecordError(f"estimation failed: {exc!r}", stage="estimate"))
        try:
            run_analyses(self.analyses, snapshot, record, self.console)
        finally:
            snapshot.release()
        self.interpreter(record)
        record.seconds = snapshot.seconds + (time.perf_counter() - t0)
        self.history.append(record)
        self.sinks.write(record)
        if self.describe is not None and self.console.verbose:
            try:
                self.console.say(self.describe(record))
            except Exception:  # noqa: BLE001
                pass
        return record
