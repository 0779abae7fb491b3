"""Lazy imports of optional dependencies with an error that names the extra to install."""
from __future__ import annotations

import importlib
from types import ModuleType

_EXTRA_OF = {
    "matplotlib": "plot",
    "scipy": "stats",
    "tensorboard": "tensorboard",
    "torch.utils.tensorboard": "tensorboard",
    "wandb": "wandb",
    "lightning": "lightning",
    "lightning.pytorch": "lightning",
    "pytorch_lightning": "lightning",
    "tqdm": "all",
}


def require(module: str, *, purpose: str = "") -> ModuleType:
    """Import ``module`` or raise ImportError saying which ``pip install ibhooks[extra]`` provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = _EXTRA_OF.get(module, _EXTRA_OF.get(module.split(".")[0], "all"))
        why = f" for {purpose}" if purpose else ""
        raise ImportError(
            f"{module} is needed{why} but is not installed; install it with: pip install 'ibhooks[{extra}]'"
        ) from exc


def available(module: str) -> bool:
    try:
        importlib.import_module(module)
        return True
    except ImportError:
        return False
