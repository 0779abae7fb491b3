"""Base for estimators that measure only I(T;Y) (classifier probe, Gaussian, Gaussian copula).

These estimators have no meaningful I(X;T) for a deterministic layer (X uniform over the probe
rows): a probe or a Gaussian model says nothing about H(T) of the rows. So ``layer_information``,
whose contract is ``(I(X;T), I(T;Y))`` with I(X;T) first, raises a clear error, and the main method
is :meth:`LabelInformationEstimator.label_information`. The monitor's ``estimators="auto"`` pairs
such an estimator with an I(X;T) estimator (noisy channel, KDE, binning) and takes I(T;Y) from it;
code that combines estimators can test ``measures_xt``.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar, Optional

import torch

from ..schema.estimate import Estimate
from .base import Estimator, LayerInformation


class LabelInformationEstimator(Estimator):
    """An estimator of I(T;Y) (and of I(A;B) for some pairs) that does not estimate I(X;T)."""

    #: False: ``layer_information`` cannot give I(X;T); use ``label_information`` for I(T;Y).
    measures_xt: ClassVar[bool] = False

    @abstractmethod
    def label_information(self, t: torch.Tensor, y: torch.Tensor, *, layer: Optional[str] = None) -> Estimate:
        """Estimate I(T;Y) in bits for a layer output ``t`` (n, d) and integer class labels ``y`` (n,)."""

    def layer_information(
        self, t: torch.Tensor, y: Optional[torch.Tensor] = None, *, layer: Optional[str] = None
    ) -> LayerInformation:
        raise NotImplementedError(
            f"estimator {self.name!r} measures only I(T;Y), not I(X;T) (X uniform over the probe rows): "
            f"call label_information(t, y), or pair it with an I(X;T) estimator such as 'noisy_channel', "
            f"'kde' or 'binning' (estimators='auto' does this)"
        )
