"""Interpretation stage: checks (bounds, DPI along chains, artefacts) and the incremental phase
tests, written into the Record. A failure is recorded in the Record, never raised."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

from ..chains import Chain
from ..interpret import CheckConfig, PhaseConfig, PhaseTracker, check_record
from ..schema import PhaseDecision, Record, RecordError


class Interpreter:
    """Holds the chains, per-layer facts (activation) and the phase tracker of one run."""

    def __init__(
        self,
        chains: Sequence[Chain],
        layer_info: Mapping[str, Mapping[str, Any]],
        *,
        check_config: Optional[CheckConfig] = None,
        phase_config: Optional[PhaseConfig] = None,
    ) -> None:
        self.chains = list(chains)
        self.layer_info = dict(layer_info)
        self.check_config = check_config
        self.tracker = PhaseTracker(phase_config)

    def __call__(self, record: Record) -> None:
        try:
            record.checks, record.warnings = check_record(
                record, self.chains, layer_info=self.layer_info, config=self.check_config
            )
        except Exception as exc:  # noqa: BLE001
            record.errors.append(RecordError(f"checks failed: {exc!r}", stage="interpret"))
        try:
            record.phase_changes = self.tracker.update(record)
        except Exception as exc:  # noqa: BLE001
            record.errors.append(RecordError(f"phase tests failed: {exc!r}", stage="interpret"))

    @property
    def phases(self) -> Dict[Any, PhaseDecision]:
        return dict(self.tracker.latest)

    def state_dict(self) -> Dict[str, Any]:
        return {"phases": self.tracker.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if "phases" in state:
            self.tracker.load_state_dict(state["phases"])
