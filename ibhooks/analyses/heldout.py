"""A held-out probe measured at the same steps as the training probe, through the same capture and the
same estimators, with a note where the two give different phase verdicts.

Wickstrom et al. (2023) found that compression shows mainly on training data: a plane measured on a
held-out set beside the training probe can read differently. This analysis runs a second probe (the
held-out set, any form the monitor's ``probe=`` takes) right after each snapshot, on the training thread
(eval mode, no_grad, RNG forked and restored, each module's train flag put back: training is
unchanged), through the monitor's own hooks and reductions. Its estimates come from the run's
estimators with the state they have for the training probe (a relative noise scale, a bin range): the
same instrument. That state is saved before and restored after, so the held-out data never changes the
training-probe readings.

Verdicts: two private :class:`~ibhooks.interpret.PhaseTracker` with the monitor's default settings, one
fed the training estimates and one the held-out estimates of each measurement (the analysis runs before
the monitor's own phase tests, so it keeps its own training tracker: both sides get the same tests).
Where one side has a phase detected and the other not, a note says so.

``record.analyses["heldout"]``::

    {"n": rows, "layers": {layer: {estimator: {"I_XT": Estimate dict, "I_TY": Estimate dict | None}}},
     "verdicts": [{"layer", "estimator", "phase", "train": status, "heldout": status}, ...],
     "notes": ["fc2 / binning: compression detected on the training probe, not on the held-out probe"],
     "errors": [...]}
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Dict, List, Mapping, Optional

from ..capture.probe import Probe
from ..capture.snapshot import Snapshot
from ..capture.taker import SnapshotTaker
from ..interpret import PhaseTracker
from ..schema import LayerResult, PhaseStatus, Record
from .base import Analysis, AnalysisContext

#: Default largest number of held-out rows (a seeded, stratified subset beyond it, as for the probe).
MAX_SAMPLES = 4096


def _status_word(status: PhaseStatus) -> str:
    return {PhaseStatus.DETECTED: "detected", PhaseStatus.CANDIDATE: "a candidate only",
            PhaseStatus.INSUFFICIENT_DATA: "not testable yet"}.get(status, "not detected")


def verdict_notes(verdicts: List[Dict[str, Any]]) -> List[str]:
    """One line per series whose phase is detected on one probe and not on the other."""
    notes = []
    for v in verdicts:
        train, held = PhaseStatus(v["train"]), PhaseStatus(v["heldout"])
        if (train is PhaseStatus.DETECTED) != (held is PhaseStatus.DETECTED):
            notes.append(f"{v['layer']} / {v['estimator']}: {v['phase']} {_status_word(train)} on the "
                         f"training probe, {_status_word(held)} on the held-out probe")
    return notes


class HeldOutProbe(Analysis):
    """Measures a held-out probe beside the training probe (probe mode only).

    Args:
        probe: The held-out set: ``(x, y)``, a tensor, a dict of inputs or a DataLoader (the forms of the
            monitor's ``probe=``, see :meth:`ibhooks.capture.probe.Probe.from_any`). Labels give I(T;Y).
        max_samples: Rows kept (a seeded stratified subset beyond it). Use as many rows as the training
            probe: I(X;T) is capped at log2 of the rows, so planes of different sizes do not compare.
        batch_to_xy: Splits a loader's batches into ``(x, y)`` (as the monitor's).
        seed: Seed of that subset (default: the monitor's seed).
    """

    name = "heldout"

    def __init__(self, probe: Any, max_samples: int = MAX_SAMPLES,
                 batch_to_xy: Optional[Callable[[Any], Any]] = None, seed: Optional[int] = None) -> None:
        if probe is None:
            raise ValueError("heldout needs probe=(x, y): the held-out inputs and labels, e.g. "
                             "analyses=[('heldout', {'probe': (x_test, y_test)})]")
        if not isinstance(max_samples, int) or isinstance(max_samples, bool) or max_samples < 2:
            raise ValueError(f"heldout: max_samples must be an integer >= 2, got {max_samples!r}")
        self._given = probe
        self.max_samples = max_samples
        self.batch_to_xy = batch_to_xy
        self.seed = seed
        self.probe: Optional[Probe] = None
        self._taker: Optional[SnapshotTaker] = None
        self._trackers = {"train": PhaseTracker(), "heldout": PhaseTracker()}

    def bind(self, context: AnalysisContext) -> None:
        super().bind(context)
        if context.probe is None:
            raise ValueError(
                "the 'heldout' analysis needs probe mode (a training probe, IBMonitor(..., probe=...)): in "
                "passive mode the training activations come from the training batches themselves; pass "
                "probe= to the monitor, or drop 'heldout' from analyses=")
        seed = context.seed if self.seed is None else self.seed
        self.probe = Probe.from_any(self._given, max_samples=self.max_samples, batch_to_xy=self.batch_to_xy,
                                    seed=seed)
        self._given = None  # the Probe keeps what it needs
        taker = context.taker
        self._taker = SnapshotTaker(context.model, context.capture, self.probe, None, context.console,
                                    probe_batch_size=taker.probe_batch_size,
                                    probe_forward=taker.probe_forward)
        self._check_forward(context)
        if self.probe.n != context.probe.n:
            context.console.warn_once(
                ("heldout_rows",),
                f"heldout: the held-out probe has {self.probe.n} rows, the training probe {context.probe.n}: "
                f"I(X;T) is capped at log2 of the rows (log2 {self.probe.n} vs log2 {context.probe.n}), so "
                "the two planes differ in scale; give both probes the same number of rows")

    def _check_forward(self, context: AnalysisContext) -> None:
        """Two held-out rows through the model (eval, no_grad, forked RNG): a wrong input fails here."""
        assert self.probe is not None
        try:
            self.probe.run(context.model, batch_size=2, limit=2, begin_pass=lambda rows: None,
                           forward=context.taker.probe_forward)
        except Exception as exc:
            raise ValueError(f"heldout: the held-out probe cannot be run through the model: {exc}") from exc

    def params(self) -> Dict[str, Any]:
        info = dict(self.probe.info) if self.probe is not None else {}
        return {"max_samples": self.max_samples, "rows": info.get("rows_used"), "subset": info.get("subset")}

    def on_snapshot(self, snapshot: Snapshot) -> None:
        if self._taker is None or snapshot.mode != "probe":
            return
        snapshot.extras[self.name] = self._taker.take(snapshot.step, snapshot.epoch)

    def analyse(self, snapshot: Snapshot, record: Record) -> Optional[Dict[str, Any]]:
        from ..pipeline.estimation import label_entropy, run_estimators

        held: Optional[Snapshot] = snapshot.extras.get(self.name)
        if held is None:
            return None
        ctx = self.context
        saved = {k: copy.deepcopy(e.state_dict()) for k, e in ctx.estimators.items()}
        try:
            layers, errors = run_estimators(held, ctx.estimators, ctx.layer_names, ctx.console)
        finally:
            for key, state in saved.items():  # the training probe's instrument, as it was
                ctx.estimators[key].load_state_dict(state)
        held_record = Record(step=record.step, mode=record.mode, n_samples=held.n_samples, layers=layers,
                             h_y=label_entropy(held.labels), epoch=record.epoch)
        train_record = Record(step=record.step, mode=record.mode, n_samples=record.n_samples,
                              layers=record.layers, h_y=record.h_y, epoch=record.epoch)
        self._trackers["train"].update(train_record)
        self._trackers["heldout"].update(held_record)
        verdicts = self._verdicts()
        return {
            "n": held.n_samples,
            "h_y": held_record.h_y,
            "layers": {layer: {key: res.to_dict() for key, res in per_est.items()}
                       for layer, per_est in layers.items()},
            "verdicts": verdicts,
            "notes": verdict_notes(verdicts),
            "errors": list(held.errors) + [e.to_dict() for e in errors],
        }

    def _verdicts(self) -> List[Dict[str, Any]]:
        train, held = self._trackers["train"].latest, self._trackers["heldout"].latest
        return [{"layer": k[0], "estimator": k[1], "phase": k[2], "train": train[k].status.value,
                 "heldout": held[k].status.value} for k in train if k in held]

    def state_dict(self) -> Dict[str, Any]:
        return {side: tracker.state_dict() for side, tracker in self._trackers.items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for side, tracker in self._trackers.items():
            if side in state:
                tracker.load_state_dict(state[side])

    def close(self) -> None:
        self._taker = None
        self.probe = None


def heldout_layers(result: Mapping[str, Any]) -> Dict[str, Dict[str, LayerResult]]:
    """``record.analyses["heldout"]`` -> ``{layer: {estimator: LayerResult}}`` (typed Estimates)."""
    return {layer: {key: LayerResult.from_dict(d) for key, d in per_est.items()}
            for layer, per_est in (result.get("layers") or {}).items()}
