"""One-call functional access to the estimators, without a monitor.

Example::

    import torch
    from ibhooks.functional import mutual_information, layer_information

    x = torch.randn(2000, 2)
    y = x + 0.5 * torch.randn(2000, 2)
    mutual_information(x, y, estimator="ksg", k=3).value          # bits
    i_xt, i_ty = layer_information(torch.tanh(x), (x[:, 0] > 0).long(), estimator="binning", n_bins=30)
    mutual_information(x, y, estimator="auto").estimator                 # "auto:ksg": the choice is named
    wide = torch.randn(512, 64, 8, 8)                                    # (n, ...) taken whole by kde
    layer_information(wide, estimator="kde", relative_noise=0.1)[0].quantity  # "I(X; T+N(0,0.1*var(T))) ..."

The estimators' kernels, plain functions of tensors that keep no state, are importable from here too
(loaded on first use), e.g. ``from ibhooks.functional import binned_layer_information, ksg_mi``.
"""
from __future__ import annotations

import importlib
import time
from typing import Any, Dict, Optional, Tuple, Union

import torch

from .estimate import Estimate
from .estimators.base import Estimator
from .estimators.registry import make_estimator


def _estimator(estimator: Union[str, Estimator], params: dict) -> Estimator:
    if isinstance(estimator, Estimator):
        if params:
            raise TypeError("pass estimator settings either to the Estimator instance or as keywords, "
                            "not both")
        return estimator
    return make_estimator((estimator, params))


def mutual_information(
    a: torch.Tensor, b: torch.Tensor, *, estimator: Union[str, Estimator] = "ksg", discrete_b: bool = False,
    **params: Any,
) -> Estimate:
    """Estimate I(A;B) in bits from paired rows of ``a`` (n, d_a) and ``b`` (n, d_b) or labels (n,).

    Args:
        a, b: Paired samples; ``b`` holds integer class labels when ``discrete_b`` is True.
        estimator: A registered name (``"ksg"``, ``"ross"``, ``"binning"``, ``"kde"``, ``"renyi"``,
            ``"infonce"``, ``"auto"`` (chosen from the widths: KSG/Ross when narrow, GCMI/classifier
            probe when wide; named in ``Estimate.estimator``), ...) or an
            :class:`~ibhooks.estimators.base.Estimator` instance.
        discrete_b: ``b`` is class labels (KSG then uses the Ross estimator).
        **params: Settings passed to the estimator's constructor (e.g. ``k=5``).

    Returns:
        An :class:`~ibhooks.estimate.Estimate` whose ``quantity`` says what was measured.
    """
    est = _estimator(estimator, params)
    start = time.perf_counter()
    out = est.mutual_information(a, b, discrete_b=discrete_b)
    return out.with_timing(time.perf_counter() - start)


def layer_information(
    t: torch.Tensor, y: Optional[torch.Tensor] = None, *, estimator: Union[str, Estimator] = "binning",
    layer: Optional[str] = None, **params: Any,
) -> Tuple[Estimate, Optional[Estimate]]:
    """Estimate ``(I(X;T), I(T;Y))`` for a layer output ``t`` (n, d), X uniform over its rows.

    ``y`` holds integer class labels (n,); without it the second element is ``None``. ``estimator``
    and ``**params`` are as in :func:`mutual_information` (``"auto"``: binning when D <= 12, else
    relative-noise KDE and the classifier probe, see :mod:`ibhooks.estimators.auto`); ``layer`` keys
    per-layer state (running bin range, warm-started critic, a relative noise fixed at the layer's
    first measurement, auto's choice) when an Estimator instance is reused.
    """
    est = _estimator(estimator, params)
    start = time.perf_counter()
    i_xt, i_ty = est.layer_information(t, y, layer=layer)
    seconds = time.perf_counter() - start
    return i_xt.with_timing(seconds), (i_ty.with_timing(seconds) if i_ty is not None else None)


#: Kernel name -> its module (imported on first use, so ``import ibhooks.functional`` stays light).
_KERNELS: Dict[str, str] = {
    **dict.fromkeys(("binned_layer_information", "binned_mutual_information", "bin_indices"), "binning"),
    **dict.fromkeys(("kde_layer_information", "kde_mutual_information", "kde_bounds", "kde_log_sums"), "kde"),
    **dict.fromkeys(("noisy_channel_layer_information", "noisy_channel_mutual_information",
                     "noisy_channel_log_ratios"), "noisy_channel"),
    **dict.fromkeys(("knn_layer_information", "ksg_mi", "ross_mi", "kl_entropy"), "knn"),
    **dict.fromkeys(("renyi_layer_information", "renyi_mutual_information", "renyi_entropy", "renyi_gram"),
                    "renyi"),
    **dict.fromkeys(("infonce_layer_information", "infonce_mi", "infonce_fit"), "infonce"),
}

__all__ = ["mutual_information", "layer_information", *_KERNELS]


def __getattr__(name: str) -> Any:  # the kernels, resolved lazily (PEP 562)
    if name in _KERNELS:
        return getattr(importlib.import_module(f"ibhooks.estimators.{_KERNELS[name]}"), name)
    raise AttributeError(f"module 'ibhooks.functional' has no attribute {name!r}")
