"""Extra per-measurement analyses beside the estimators: the extension point for calibration, geometry,
the information-bottleneck bound, robustness sweeps, a held-out probe, ...

An :class:`Analysis` is bound once to the monitor's parts (:class:`AnalysisContext`), may act on the
training thread right after a snapshot is taken (:meth:`Analysis.on_snapshot`, e.g. a second probe
pass), and turns the snapshot plus the Record's estimates into one JSON-able dict stored in
``record.analyses[name]`` (:meth:`Analysis.analyse`, on the training thread or the background worker,
before interpretation). A failure is recorded in the Record; training goes on.

Adding one: a new module in this package with an ``Analysis`` subclass, plus one line in
:mod:`.registry`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Dict, List, Mapping, Optional, Sequence

import torch.nn as nn

from ..chains import Chain
from ..estimators.base import Estimator

if TYPE_CHECKING:  # pragma: no cover
    from ..capture.hooks import Capture
    from ..capture.probe import Probe
    from ..capture.snapshot import Snapshot
    from ..capture.taker import SnapshotTaker
    from ..pipeline.console import Console
    from ..schema import Record


@dataclass
class AnalysisContext:
    """What an analysis may use, fixed at the monitor's construction.

    Attributes:
        model: The (unwrapped) model. Only touch it on the training thread (``on_snapshot``).
        layer_names: Monitored layers in network order.
        modules: Layer name -> module.
        estimators: Monitor key -> estimator (the instruments of the run).
        probe: The probe (``None`` in passive mode).
        taker: The snapshot taker (its ``capture`` records the monitored layers).
        capture: The capture stage.
        chains: Chains along which the DPI is checked.
        console: Warnings (``warn_once``) and lines (``say``).
        seed: The monitor's seed: analyses draw from their own generators seeded from it.
        layer_info: Layer name -> facts such as ``{"activation": "tanh"}``.
    """

    model: nn.Module
    layer_names: List[str]
    modules: Dict[str, nn.Module]
    estimators: Dict[str, Estimator]
    probe: Optional["Probe"]
    taker: "SnapshotTaker"
    capture: "Capture"
    chains: List[Chain]
    console: "Console"
    seed: int = 0
    layer_info: Dict[str, Dict[str, Any]] = field(default_factory=dict)


class Analysis:
    """Base class of an extra analysis. Subclasses set ``name`` and override :meth:`analyse`."""

    name: ClassVar[str] = "analysis"

    def bind(self, context: AnalysisContext) -> None:
        """Called once at the monitor's construction; validate here (one clear error)."""
        self.context = context

    def on_snapshot(self, snapshot: "Snapshot") -> None:
        """Training thread, right after a snapshot is taken (default: nothing). Put extra tensors into
        ``snapshot.extras[self.name]``; never change the model's parameters, buffers or RNG streams."""

    def analyse(self, snapshot: "Snapshot", record: "Record") -> Optional[Dict[str, Any]]:
        """The JSON-able result stored in ``record.analyses[self.name]`` (``None``: nothing to store).
        ``record.layers`` already holds this measurement's estimates."""
        raise NotImplementedError

    @classmethod
    def figure_view(cls, result: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
        """The part of a logged ``result`` that figures draw, kept by figure sinks between measurements
        (:class:`~ibhooks.sinks.drawing.FigureHistory`); ``None`` (default): figures draw none of it."""
        return None

    def params(self) -> Dict[str, Any]:
        """Settings that define the analysis (written to the run-log header and the fingerprint)."""
        return {}

    def state_dict(self) -> Dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:  # noqa: B027 - optional
        pass

    def close(self) -> None:  # noqa: B027 - optional
        """Release what the analysis holds (at ``monitor.close()``)."""


def describe_analyses(analyses: Sequence[Analysis]) -> List[Dict[str, Any]]:
    """``[{"name": ..., "params": ...}]`` for the run-log header."""
    return [{"name": a.name, "params": a.params()} for a in analyses]
