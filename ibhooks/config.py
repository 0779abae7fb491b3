"""The monitor's settings, grouped in small frozen objects that validate themselves.

``IBMonitor(model, capture=CaptureConfig(max_samples=2048), run_log=RunLogConfig(log_dir="runs"))``
is the same as the flat keywords ``IBMonitor(model, max_samples=2048, log_dir="runs")``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

from .capture.reduction import ReductionSpec, parse_reduction
from .capture.selectors import Selector


def _positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _flag(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")


@dataclass(frozen=True)
class CaptureConfig:
    """What is captured and how much.

    Attributes:
        reduction: ``"auto"``, ``"flatten"``, ``"mean"``, ``"project:k"``, or a dict layer -> spec.
        selectors: Dict layer -> index / key / callable choosing the tensor of a tuple/dict output.
        max_samples: Rows of the probe taken, and the size of the passive reservoir.
        probe_batch_size: Rows per chunk of the probe's forward pass. ``None`` (default): chosen from
            the monitored outputs' size once their shapes are known, about 8 MiB of them per chunk on a
            CPU (256 MiB on a GPU), 8 to 4,096 rows: one pass for a small MLP, small chunks for a convnet.
        memory_budget_mb: Ceiling for stored activations; checked at construction.
        seed: Seed of the monitor's own random streams (projections, subsampling).
    """

    reduction: Union[ReductionSpec, Mapping[str, ReductionSpec]] = "auto"
    selectors: Optional[Mapping[str, Selector]] = None
    max_samples: int = 4096
    probe_batch_size: Optional[int] = None
    memory_budget_mb: float = 512.0
    seed: int = 0

    def __post_init__(self) -> None:
        _positive_int("max_samples", self.max_samples)
        if self.probe_batch_size is not None:
            _positive_int("probe_batch_size", self.probe_batch_size)
        mb = self.memory_budget_mb
        if isinstance(mb, bool) or not isinstance(mb, (int, float)) or not math.isfinite(mb) or mb <= 0:
            raise ValueError(f"memory_budget_mb must be a positive number of MiB, got {mb!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if isinstance(self.reduction, Mapping):
            for k, v in self.reduction.items():
                parse_reduction(v)
        else:
            parse_reduction(self.reduction)
        if self.selectors is not None and not isinstance(self.selectors, Mapping):
            raise ValueError(
                f"selectors must be a dict layer -> index | key | callable, got {self.selectors!r}"
            )


@dataclass(frozen=True)
class PassiveConfig:
    """Passive mode (no probe): which training batches are pooled into a measurement.

    Attributes:
        window: Training steps before a measurement whose batches are pooled (at least).
        gather: Under torch.distributed, pool the reservoirs of all ranks into rank 0's before each
            measurement (an ``all_gather``: every rank must call ``step()`` at every step).
        min_rows: Pool at least this many rows per measurement: once the batch size is known, the window
            widens to ``ceil(min_rows / batch)`` steps (one batch alone would cap every layer at
            log2(batch) bits). ``None``: ``min(max_samples, 1024)``; 1 keeps ``window`` as given.
    """

    window: int = 1
    gather: bool = False
    min_rows: Optional[int] = None

    def __post_init__(self) -> None:
        _positive_int("passive_window", self.window)
        _flag("gather_passive", self.gather)
        if self.min_rows is not None:
            _positive_int("passive_min_rows", self.min_rows)


@dataclass(frozen=True)
class RunLogConfig:
    """Where the run log (always written) and file-based sinks go.

    Attributes:
        log_dir: Folder of the JSONL run log.
        run_name: Run log name (``<log_dir>/<run_name>.jsonl``); default a timestamp.
        resume: Append to an existing run log of the same ``run_name`` (after ``load_state_dict``);
            refused when that log was written with another configuration.
        overwrite: Replace an existing run log of the same name (never done silently).
        figure_every: Sinks that draw figures (TensorBoard, W&B) draw them every this many
            measurements, and always at ``close()``.
    """

    log_dir: Union[str, Path] = "ibhooks_runs"
    run_name: Optional[str] = None
    resume: bool = False
    overwrite: bool = False
    figure_every: int = 10

    def __post_init__(self) -> None:
        if not isinstance(self.log_dir, (str, Path)):
            raise ValueError(f"log_dir must be a path (str or pathlib.Path), got {self.log_dir!r}")
        if self.run_name is not None:
            if not isinstance(self.run_name, str) or not self.run_name or self.run_name in (".", ".."):
                raise ValueError(f"run_name must be a plain non-empty name, got {self.run_name!r}")
            if "/" in self.run_name or "\\" in self.run_name or Path(self.run_name).is_absolute():
                raise ValueError(
                    f"run_name must be a plain name without path separators, got {self.run_name!r}; "
                    "put folders in log_dir="
                )
        _flag("resume", self.resume)
        _flag("overwrite", self.overwrite)
        if self.resume and self.overwrite:
            raise ValueError(
                "resume=True and overwrite=True contradict each other: resume appends to the run "
                "log, overwrite replaces it; pass one"
            )
        _positive_int("figure_every", self.figure_every)


@dataclass(frozen=True)
class ExecutionConfig:
    """Where measurements run after the snapshot.

    Attributes:
        background: Hand estimation, checks, phases, sinks, figures and fsync to one worker thread;
            ``step()`` returns at once (``None``), ``flush()`` waits for queued work.
        queue_size: Measurements that may wait for the worker; a full queue makes ``step()`` wait
            (and the Record says how long).
        verbose: Print the coverage table and one line per measurement.
    """

    background: bool = False
    queue_size: int = 2
    verbose: bool = True

    def __post_init__(self) -> None:
        _flag("background", self.background)
        _positive_int("queue_size", self.queue_size)
        _flag("verbose", self.verbose)


#: flat keyword of IBMonitor -> (config group, field)
FLAT_KEYWORDS: Dict[str, "tuple[str, str]"] = {
    "reduction": ("capture", "reduction"),
    "selectors": ("capture", "selectors"),
    "max_samples": ("capture", "max_samples"),
    "probe_batch_size": ("capture", "probe_batch_size"),
    "memory_budget_mb": ("capture", "memory_budget_mb"),
    "seed": ("capture", "seed"),
    "passive_window": ("passive", "window"),
    "gather_passive": ("passive", "gather"),
    "passive_min_rows": ("passive", "min_rows"),
    "log_dir": ("run_log", "log_dir"),
    "run_name": ("run_log", "run_name"),
    "resume": ("run_log", "resume"),
    "overwrite": ("run_log", "overwrite"),
    "figure_every": ("run_log", "figure_every"),
    "background": ("execution", "background"),
    "queue_size": ("execution", "queue_size"),
    "verbose": ("execution", "verbose"),
}

CONFIG_TYPES = {
    "capture": CaptureConfig,
    "passive": PassiveConfig,
    "run_log": RunLogConfig,
    "execution": ExecutionConfig,
}


def build_configs(groups: Mapping[str, Any], flat: Mapping[str, Any]) -> Dict[str, Any]:
    """Config objects from the ``capture=``/``passive=``/... objects and the flat keywords given.

    A flat keyword and a config object may not both set the same setting.
    """
    out: Dict[str, Any] = {}
    for group, cls in CONFIG_TYPES.items():
        given = groups.get(group)
        if given is not None and not isinstance(given, cls):
            raise TypeError(f"{group}= must be an ibhooks.{cls.__name__}, got {type(given).__name__}")
        values = {f.name: getattr(given, f.name) for f in fields(cls)} if given is not None else {}
        for key, value in flat.items():
            g, name = FLAT_KEYWORDS[key]
            if g != group:
                continue
            if given is not None:
                raise ValueError(
                    f"{key}= was given both as a keyword and inside {group}={cls.__name__}(...); pass it once"
                )
            values[name] = value
        out[group] = cls(**values)
    return out


__all__ = [
    "CaptureConfig",
    "PassiveConfig",
    "RunLogConfig",
    "ExecutionConfig",
    "build_configs",
    "FLAT_KEYWORDS",
]
