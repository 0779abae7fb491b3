"""The hand-off from capture to estimation: what one measurement saw."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import torch


@dataclass
class Snapshot:
    """Per-layer activations T (n, d) and labels Y of one measurement, taken on the training thread.

    Attributes:
        step: Training step of the measurement.
        mode: ``"probe"`` or ``"passive"``.
        activations: Layer name -> (n, d) float32 tensor (on the model's device).
        labels: (n,) integer labels, or ``None``.
        layer_errors: Layer name -> why it has no activations (never fired, no tensor, not batch-first).
        errors: Capture failures (the probe's forward raised, ...): the measurement records them.
        info: Notes for the Record (passive window steps, ...).
        epoch: Optional epoch the user passed.
        seconds: Time the snapshot took on the training thread.
        extras: Analysis name -> what its ``on_snapshot`` added (a held-out probe's activations, ...).
    """

    step: int
    mode: str
    activations: Dict[str, torch.Tensor] = field(default_factory=dict)
    labels: Optional[torch.Tensor] = None
    layer_errors: Dict[str, str] = field(default_factory=dict)
    errors: List[str] = field(default_factory=list)
    info: Dict[str, Any] = field(default_factory=dict)
    epoch: Optional[int] = None
    seconds: float = 0.0
    extras: Dict[str, Any] = field(default_factory=dict)

    @property
    def n_samples(self) -> int:
        return int(next(iter(self.activations.values())).shape[0]) if self.activations else 0

    def release(self) -> None:
        """Drop the tensors (after estimation)."""
        self.activations = {}
        self.labels = None
        self.extras = {}
