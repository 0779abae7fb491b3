"""The monitor's results and checkpoint API (history, phases, figures, state dicts), kept apart from
the construction and training-loop code in :mod:`ibhooks.monitor`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Union

from .monitor_state import check_state, restore_state, save_state
from .schema import Record

if TYPE_CHECKING:  # pragma: no cover
    from .analyses import Analysis
    from .capture.passive import PassiveWindow
    from .capture.reservoir import PassiveReservoir
    from .estimators.base import Estimator
    from .pipeline import Interpreter, SeriesHistory, SinkSet


class MonitorResults:
    """Mixin of :class:`~ibhooks.IBMonitor`: reading results and saving / restoring state."""

    is_writer: bool
    log_path: Path
    run_name: str
    step_count: int
    history_series: "SeriesHistory"
    estimators: Dict[str, "Estimator"]
    sinks: "SinkSet"
    _interpreter: "Interpreter"
    _reservoir: Optional["PassiveReservoir"]
    _passive: Optional["PassiveWindow"]
    _analyses: List["Analysis"]

    def flush(self) -> None:  # pragma: no cover - IBMonitor defines it
        raise NotImplementedError

    def _config(self) -> Dict[str, Any]:  # pragma: no cover - IBMonitor defines it
        raise NotImplementedError

    def _header(self) -> Dict[str, Any]:  # pragma: no cover - IBMonitor defines it
        raise NotImplementedError

    @property
    def history(self) -> List[Record]:
        """Every Record of this run so far, read back from the run log (full Records live there; in
        memory the monitor keeps compact series only: :attr:`history_series`). Flushes first."""
        self.flush()
        if not self.is_writer or not self.log_path.exists():
            return []
        from .runlog import load_run

        return list(load_run(self.log_path).records)

    @property
    def last_record(self) -> Optional[Record]:
        """The latest Record processed (flushes first)."""
        self.flush()
        return self.history_series.last

    @property
    def phases(self) -> Dict[Any, Any]:
        """The latest phase decision per (layer, estimator, phase) (flushes first)."""
        self.flush()
        return self._interpreter.phases

    def _repr_html_(self) -> str:
        """The interactive plane of the run so far, for Jupyter (:func:`ibhooks.notebook.show`)."""
        from .notebook import show

        return show(self)._repr_html_()

    def state_dict(self) -> Dict[str, Any]:
        """The monitor's own state (step, phase-test state, estimator state, random streams, the
        configuration's fingerprint) as plain containers and tensors, loadable with
        ``torch.load(..., weights_only=True)``. Flushes first."""
        self.flush()
        return save_state(
            step=self.step_count,
            run_name=self.run_name,
            config=self._config(),
            interpreter=self._interpreter,
            estimators=self.estimators,
            reservoir=self._reservoir,
            analyses=self._analyses,
        )

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` (to resume a run: create the monitor with ``resume=True``). A state
        saved by a monitor with other layers, estimators or probe size is refused, naming the difference."""
        step = check_state(state, self._config())
        self.flush()
        self.step_count = step
        restore_state(
            state, interpreter=self._interpreter, estimators=self.estimators, reservoir=self._reservoir,
            analyses=self._analyses,
        )
        if self._passive is not None:
            self._passive.arm_for(self.step_count + 1)
        self.sinks.call("log_text", "resume", f"monitor state loaded at step {step}", step)

    def save_figures(self, out_dir: Union[str, Path]) -> Dict[str, Path]:
        """Draw every figure of this run so far into ``out_dir`` from its run log (needs the ``plot``
        extra). Flushes first."""
        from .plotting import save_all_figures

        return save_all_figures(self.history, out_dir, header=self._header())
