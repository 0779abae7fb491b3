"""The estimator extension point.

An estimator is a class with a registry ``name`` that turns tensors into :class:`~ibhooks.Estimate`s.
It never sees modules or hooks. Implement :meth:`Estimator.layer_information` (X uniform over the
rows of ``t``, so I(X;T) is a property of ``t`` alone) and, where it makes sense,
:meth:`Estimator.mutual_information` for a general pair; declare ``traits``. Then add one line to
``registry.py``.

The pattern the built-in estimators follow (as torchmetrics does): the math lives in plain kernel
functions of tensors that keep no state (``binned_layer_information``, ``ksg_mi``, ...), each taking a
``provenance`` (:class:`~ibhooks.estimators._common.Provenance`: name, settings, traits) to stamp on
its Estimates; the class holds the settings and any per-layer state and calls its kernel with
``provenance=self.provenance()``. Randomness comes from a ``torch.Generator`` seeded from the
estimator's own ``seed``, never from torch's or numpy's global streams.
"""
from __future__ import annotations

from abc import ABC
from typing import Any, ClassVar, Dict, Optional, Tuple

import torch

from ..schema.estimate import Estimate, EstimatorTraits
from ._common import Provenance

LayerInformation = Tuple[Estimate, Optional[Estimate]]


class Estimator(ABC):
    """Base class. Subclasses set ``name`` and override one or both estimation methods.

    Estimators may keep per-layer state (a running bin range, a warm-started critic); the ``layer``
    argument names the layer so that state stays separate, and :meth:`state_dict` /
    :meth:`load_state_dict` carry it through checkpoints (tensors and plain Python values only).
    """

    name: ClassVar[str] = ""
    #: What this estimator is (discretises, adds noise, exact, its cap ...). Every Estimate it makes
    #: carries these traits; checks and warnings read them instead of the estimator's name.
    traits: ClassVar[EstimatorTraits] = EstimatorTraits()
    #: Works from the whole (n, ...) activation (pairwise distances through the Gram matrix), so a wide
    #: layer needs no lossy pooling and stays on its DPI chain (the capture then keeps it whole).
    whole_activations: ClassVar[bool] = False

    def layer_information(
        self, t: torch.Tensor, y: Optional[torch.Tensor] = None, *, layer: Optional[str] = None
    ) -> LayerInformation:
        """Estimate ``(I(X;T), I(T;Y))`` for a layer output ``t`` of shape (n, d), X uniform over rows.

        ``y`` holds integer class labels of shape (n,). Returns ``I(T;Y)`` as ``None`` without labels.
        """
        raise NotImplementedError(f"estimator {self.name!r} does not estimate layer information")

    def mutual_information(self, a: torch.Tensor, b: torch.Tensor, *, discrete_b: bool = False) -> Estimate:
        """Estimate I(A;B) from paired samples (rows). ``discrete_b`` marks B as class labels."""
        raise NotImplementedError(f"estimator {self.name!r} does not estimate I(A;B) for a general pair")

    def check_sample_size(self, n: int) -> None:
        """Refuse, with one ``ValueError`` naming the fix, a sample size ``n`` this estimator can never
        work with (e.g. kNN with ``k >= n``). Called by the monitor at construction when ``n`` is known
        (the probe's rows); the default accepts every ``n``."""
        del n

    def instrument_for(self, layer: str, dim: Optional[int]) -> str:
        """What this estimator measures ``layer`` (``dim`` values per row) with, for the coverage table:
        its name, or the choice of an estimator that chooses per layer (``auto``)."""
        del layer, dim
        return self.name

    def params(self) -> Dict[str, Any]:
        """The settings that define this estimator, for the record."""
        return {}

    def provenance(self) -> Provenance:
        """Name, settings and traits that this estimator's kernels stamp on every Estimate."""
        return Provenance(self.name, self.traits, self.params())

    def state_dict(self) -> Dict[str, Any]:
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        del state

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"
