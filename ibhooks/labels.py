"""The one validator of class labels (probe labels, ``step(y=...)``, estimator inputs)."""

from __future__ import annotations

from typing import Any, Optional

import torch


def as_labels(y: Any, n: Optional[int] = None, *, what: str = "y") -> torch.Tensor:
    """``y`` as a 1-D integer tensor of class labels (same device), or one ``ValueError``/``TypeError``
    naming the problem and the fix. ``n``: the number of rows the labels must pair with."""
    if not isinstance(y, torch.Tensor):
        if isinstance(y, (str, bytes)) or y is None:
            raise TypeError(f"{what} must be a tensor of integer class labels, got {type(y).__name__}")
        try:
            y = torch.as_tensor(y)
        except Exception as exc:  # noqa: BLE001
            raise TypeError(
                f"{what} must be a tensor of integer class labels, got {type(y).__name__}"
            ) from exc
    if y.dim() == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.dim() != 1:
        raise ValueError(
            f"{what} must be a 1-D tensor of integer class labels; got shape {tuple(y.shape)}. "
            "For one-hot labels pass y.argmax(1)."
        )
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise ValueError(
            f"{what} has dtype {y.dtype}; I(T;Y) needs 1-D integer class labels (torch.long): pass y.long() "
            "for integer-valued floats or y.argmax(1) for one-hot labels. For continuous targets use "
            "mutual_information(..., estimator='ksg')."
        )
    if n is not None and y.shape[0] != n:
        raise ValueError(
            f"{what} has {y.shape[0]} labels but there are {n} samples; they must be paired row by row"
        )
    return y
