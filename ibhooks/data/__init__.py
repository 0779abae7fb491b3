"""Data shipped with ibhooks: the 12-bit task of Shwartz-Ziv & Tishby (2017).

``var_u.mat`` comes from github.com/ravidziv/IDNNs (MIT licence, (c) Ravid Shwartz-Ziv), folder
``data/``; it is byte-identical to ``datasets/var_u.mat`` in artemyk/ibsgd (Saxe et al. 2018).
4096 rows: all 12-bit binary patterns (row i = binary expansion of i, MSB first) and one
deterministic binary label per pattern (2118 ones, H(Y) = 0.99916 bits).
"""
from __future__ import annotations

from pathlib import Path
from typing import Tuple

import torch

from .._optional import require

SZT_PATH = Path(__file__).with_name("var_u.mat")


def load_szt() -> Tuple[torch.Tensor, torch.Tensor]:
    """The SZT task as ``(x, y)``: x float32 (4096, 12) in {0, 1}, y int64 (4096,) in {0, 1}."""
    sio = require("scipy.io", purpose="reading the SZT .mat file")
    d = sio.loadmat(str(SZT_PATH))
    x = torch.as_tensor(d["F"].astype("float32"))
    y = torch.as_tensor(d["y"].ravel().astype("int64"))
    return x, y
