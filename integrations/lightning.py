"""Lightning callback: information-plane measurements of a ``LightningModule`` during ``fit``.

Usage::

    from ibhooks.integrations.lightning import IBCallback

    trainer = Trainer(callbacks=[IBCallback(probe="val", schedule=ibhooks.log_spaced(50, 10_000))],
                      logger=[TensorBoardLogger("tb"), WandbLogger(project="p")])
    trainer.fit(model, train_loader, val_loader)

What it does:

* builds an :class:`~ibhooks.IBMonitor` on the ``LightningModule`` in ``on_fit_start`` (after
  ``setup``/``configure_model``, the checkpoint restore and the DDP wrap, before any forward pass
  and so before a compiled model traces), and removes every hook in ``teardown`` and ``on_exception``;
* measures on the ``trainer.global_step`` schedule, once per optimizer step (gradient accumulation:
  passive mode keeps the first micro-batch of the step), with validation and the sanity check
  never captured;
* writes the JSONL run log (always, rank 0 only) and forwards Records to the trainer's loggers:
  TensorBoard (:class:`~ibhooks.integrations.tensorboard.TensorBoardSink` on the logger's
  ``SummaryWriter``), W&B (:class:`~ibhooks.integrations.wandb.WandbSink` on its ``wandb.Run``, with
  ``trainer/global_step`` as the step metric, the axis of the trainer's own metrics) and, for any other
  logger, the scalars through ``log_metrics``; every logger gets ``trainer.global_step`` as the step;
* saves the monitor's state (step, phase-test state, estimator state, run-log path) in the
  checkpoint's callback state, so ``trainer.fit(..., ckpt_path=...)`` appends to the same run log
  and reaches the same phase decisions as an uninterrupted run;
* with ``background=True`` (passed through to :class:`~ibhooks.IBMonitor`), everything after the
  snapshot runs on the monitor's worker thread; ``teardown`` and checkpoints wait for it.

Works with ``lightning.pytorch`` and the ``pytorch_lightning`` mirror; this module imports whichever is
already imported (both, if both are), else whichever is installed.
"""
from __future__ import annotations

import importlib
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

import torch

from ibhooks.monitor import IBMonitor
from ibhooks.capture.probe import default_batch_to_xy
from ibhooks.labels import as_labels
from ibhooks.sinks.base import Sink

from ._lightning_parts import _LoggerSink, _lightning_forward, _val_loader

__all__ = ["IBCallback"]

STATE_VERSION = 1
_TARGET_KEYS = ("y", "label", "labels", "target", "targets")


def _callback_bases() -> tuple:
    """``Callback`` of each Lightning flavour already imported (else the installed one), so that
    ``isinstance(cb, Callback)`` holds for whichever Trainer the user runs."""
    names = [m for m in ("lightning.pytorch", "pytorch_lightning") if m in sys.modules]
    if not names:
        for m in ("lightning.pytorch", "pytorch_lightning"):
            try:
                importlib.import_module(m)
            except ImportError:
                continue
            names = [m]
            break
    if not names:
        raise ImportError("IBCallback needs Lightning; install it with: pip install 'ibhooks[lightning]'")
    return tuple(importlib.import_module(m).Callback for m in names)


_Base: Any = type("_LightningCallbackBase", _callback_bases(), {})


def default_target_getter(batch: Any) -> Optional[torch.Tensor]:
    """``batch[1]`` of a tuple/list batch, ``batch[k]`` for the first of ``y, label(s), target(s)`` of a
    dict batch, else ``None`` (then only I(X;T) is measured in passive mode)."""
    if isinstance(batch, Mapping):
        return next((batch[k] for k in _TARGET_KEYS if k in batch), None)
    if isinstance(batch, (tuple, list)):
        return default_batch_to_xy(batch)[1]
    return None


class IBCallback(_Base):
    """Information-plane diagnostics for ``Trainer.fit``.

    Args:
        probe: ``"auto"`` (the first ``probe_samples`` validation samples if a validation loader
            exists, else passive mode), ``"val"`` (validation samples, an error if there are none),
            ``None`` (passive mode: activations and labels of the real training batches), or what
            :class:`~ibhooks.IBMonitor` takes: ``(x, y)`` tensors, an ``x`` tensor, a DataLoader.
            A probe is taken once, at the start of ``fit``, and fixed for the run.
        probe_samples: Rows of the probe, and the size of the passive reservoir (``max_samples``).
        target_getter: ``batch -> labels`` for passive mode (default: ``batch[1]``, or a ``y`` / ``label`` /
            ``target`` key of a dict batch). Labels that are not integer classes are not used (warned once).
        batch_to_xy: Splits a validation/probe batch into ``(x, y)`` (default: ``batch[0], batch[1]``).
        schedule: When to measure, over ``trainer.global_step``: a callable ``step -> bool`` or an int N.
        estimators: As for :class:`~ibhooks.IBMonitor`.
        layers: As for :class:`~ibhooks.IBMonitor`.
        log_dir: Folder of the JSONL run log; default ``trainer.log_dir`` (the first logger's folder, or
            ``default_root_dir``). On resume, the folder of the checkpointed run unless given.
        run_name: Run log name; default a timestamp, on resume the checkpointed run's name.
        loggers: Forward Records to the trainer's loggers (TensorBoard, W&B, others' ``log_metrics``).
        figures: Log the information-plane figure to TensorBoard / W&B.
        figure_every: Draw figures at every ``figure_every``-th measurement.
        gather_passive: Under DDP, pool the passive reservoirs of all ranks (an ``all_gather`` at each
            measurement step, on every rank); default rank 0's own batches only.
        measure_initial: In probe mode, measure at step 0 (before the first optimizer step) on a fresh run.
        **monitor_kwargs: Further :class:`~ibhooks.IBMonitor` arguments (``reduction``, ``selectors``,
            ``chains``, ``probe_forward``, ``passive_window``, ``memory_budget_mb``, ``seed``,
            ``verbose``, ``background`` ...).

    Raises:
        ValueError: Bad arguments (checked here), or ``probe="val"`` without a validation loader
            (at fit start).
    """

    def __init__(
        self,
        *,
        probe: Any = "auto",
        probe_samples: int = 1024,
        target_getter: Optional[Callable[[Any], Optional[torch.Tensor]]] = None,
        batch_to_xy: Optional[Callable[[Any], Any]] = None,
        schedule: Any = None,
        estimators: Any = ("auto",),
        layers: Any = "auto",
        log_dir: Union[str, Path, None] = None,
        run_name: Optional[str] = None,
        loggers: bool = True,
        figures: bool = True,
        figure_every: int = 1,
        gather_passive: bool = False,
        measure_initial: bool = True,
        **monitor_kwargs: Any,
    ) -> None:
        super().__init__()
        if isinstance(probe, str) and probe not in ("auto", "val"):
            raise ValueError(f"probe must be 'auto', 'val', None, tensors or a DataLoader; got {probe!r}")
        if not isinstance(probe_samples, int) or probe_samples < 2:
            raise ValueError(f"probe_samples must be an integer >= 2, got {probe_samples!r}")
        if not isinstance(figure_every, int) or figure_every < 1:
            raise ValueError(f"figure_every must be an integer >= 1, got {figure_every!r}")
        if target_getter is not None and not callable(target_getter):
            raise ValueError("target_getter must be a callable batch -> labels")
        reserved = {"model", "probe", "max_samples", "sinks", "resume", "measure_initial", "batch_to_xy",
                    "log_dir", "run_name", "schedule", "estimators", "layers", "gather_passive"}
        clash = sorted(reserved & set(monitor_kwargs))
        if clash:
            raise ValueError(f"IBCallback sets {clash} itself; pass them as IBCallback arguments instead")
        self.probe = probe
        self.probe_samples = probe_samples
        self.target_getter = target_getter or default_target_getter
        self.batch_to_xy = batch_to_xy
        self.schedule = schedule
        self.estimators = estimators
        self.layers = layers
        self.log_dir = None if log_dir is None else Path(log_dir)
        self.run_name = run_name
        self.loggers = loggers
        self.figures = figures
        self.figure_every = figure_every
        self.gather_passive = gather_passive
        self.measure_initial = measure_initial
        self.monitor_kwargs = monitor_kwargs
        self.monitor: Optional[IBMonitor] = None
        self._pending: Optional[Dict[str, Any]] = None
        self._last_step = 0
        self._window_y: Optional[List[Optional[torch.Tensor]]] = None  # labels of each micro-batch
        self._use_labels = True
        self._was_armed = False
        self._warned: set = set()

    # -- Lightning hooks -----------------------------------------------------------------------

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Nothing to build yet: the monitor is created in ``on_fit_start`` (see the module docstring)."""
        del trainer, pl_module, stage

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        # Strategies that restore the checkpoint after setup (FSDP, DeepSpeed) restore after this hook.
        if not getattr(trainer.strategy, "restore_checkpoint_after_setup", False):
            self._build(trainer, pl_module)

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if self.monitor is None or self.monitor._closed:
            self._build(trainer, pl_module)

    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        cap = self._capture()
        if cap is not None:  # validation batches (and the sanity check) are never captured
            self._was_armed = cap.armed
            cap.disarm()

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        cap = self._capture()
        if cap is not None and self._was_armed:
            cap.arm()
        self._was_armed = False

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        mon = self.monitor
        if mon is None or mon._closed:
            return
        step = int(trainer.global_step)
        if mon.mode == "passive":  # every micro-batch's labels, in order: the monitor pairs them by order
            self._window_y = (self._window_y or []) + [self._labels(batch)]
        if step == self._last_step:
            return  # accumulating gradients: no optimizer step yet
        self._last_step = step
        labels, self._window_y = self._window_y, None
        y: Any = None
        if labels and all(t is not None for t in labels):
            y = labels[0] if len(labels) == 1 else list(labels)
        try:
            mon.step(y=y, step=step, epoch=int(trainer.current_epoch))
        except (ValueError, TypeError) as exc:  # labels that do not fit the batch: drop them, go on
            self._use_labels = False
            self._warn(("labels",), f"ibhooks: labels from target_getter rejected ({exc}); I(T;Y) is not "
                       "measured from here on. Pass IBCallback(target_getter=lambda batch: labels).")

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self._close()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._close()

    def state_dict(self) -> Dict[str, Any]:
        if self.monitor is None:
            return dict(self._pending or {})
        return {
            "version": STATE_VERSION,
            "monitor": self.monitor.state_dict(),
            "log_dir": str(self.monitor.log_dir),
            "run_name": self.monitor.run_name,
        }

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        if not state_dict:
            return
        if int(state_dict.get("version", 0)) != STATE_VERSION:
            raise ValueError(f"IBCallback state version {state_dict.get('version')} is not {STATE_VERSION}")
        if self.monitor is not None and not self.monitor._closed:
            self.monitor.load_state_dict(state_dict["monitor"])
            self._last_step = self.monitor.step_count
        else:
            self._pending = dict(state_dict)

    # -- pieces --------------------------------------------------------------------------------

    @property
    def history(self) -> List[Any]:
        """The Records measured so far in this fit (empty on ranks other than 0)."""
        return list(self.monitor.history) if self.monitor is not None else []

    def _build(self, trainer: Any, pl_module: Any) -> None:
        if self.monitor is not None:
            self.monitor.close()
        log_dir = trainer.log_dir  # a broadcast under DDP: evaluated on every rank alike
        resume = self._pending
        if resume is not None:
            log_dir, run_name = self.log_dir or Path(resume["log_dir"]), self.run_name or resume["run_name"]
        else:
            log_dir, run_name = self.log_dir or Path(log_dir or trainer.default_root_dir), self.run_name
        probe = self._resolve_probe(trainer, pl_module)
        writer = bool(trainer.is_global_zero)
        sinks = self._sinks(trainer) if (writer and self.loggers) else []
        self.monitor = IBMonitor(
            pl_module,
            layers=self.layers,
            probe=probe,
            schedule=self.schedule,
            estimators=self.estimators,
            log_dir=log_dir,
            run_name=run_name,
            sinks=sinks,
            max_samples=self.probe_samples,
            batch_to_xy=self.batch_to_xy,
            resume=resume is not None,
            measure_initial=self.measure_initial and writer and resume is None,
            gather_passive=self.gather_passive,
            **{"verbose": writer, **self.monitor_kwargs},
        )
        if resume is not None:
            self.monitor.load_state_dict(resume["monitor"])
            self._pending = None
        self._last_step = int(trainer.global_step)
        self._window_y = None

    def _resolve_probe(self, trainer: Any, pl_module: Any) -> Any:
        if self.probe not in ("auto", "val"):
            return self.probe
        loader = _val_loader(trainer)
        has_forward = (type(pl_module).forward is not _lightning_forward(pl_module)
                       or "probe_forward" in self.monitor_kwargs)
        if loader is not None and has_forward:
            with torch.random.fork_rng(devices=[]):  # the user's val_dataloader() may draw from the RNG
                from ibhooks.capture.probe import Probe

                return Probe.from_any(loader, max_samples=self.probe_samples, batch_to_xy=self.batch_to_xy)
        why = ("no validation dataloader" if loader is None
               else f"{type(pl_module).__name__} defines no forward()")
        if self.probe == "val":
            raise ValueError(f"IBCallback(probe='val') but {why}; pass probe=(x, y), probe_forward=, or "
                             "probe=None for passive mode")
        if trainer.is_global_zero:
            self._warn(("auto",), f"ibhooks: {why}, so IBCallback measures in passive mode (training "
                       "batches). Pass probe=(x, y) for a fixed probe set.")
        return None

    def _sinks(self, trainer: Any) -> List[Sink]:
        sinks: List[Sink] = []
        for lg in trainer.loggers:
            kind = type(lg).__name__
            try:
                if "TensorBoard" in kind:
                    from ibhooks.integrations.tensorboard import TensorBoardSink

                    sinks.append(TensorBoardSink(writer=lg.experiment, figures=self.figures,
                                                 figure_every=self.figure_every))
                elif "Wandb" in kind:
                    from ibhooks.integrations.wandb import LIGHTNING_STEP, WandbSink

                    # on the logger's own step metric, so ib/ keys share the x axis of the trainer's metrics
                    sinks.append(WandbSink(run=lg.experiment, figures=self.figures, step_key=LIGHTNING_STEP,
                                           figure_every=self.figure_every))
                elif kind != "DummyLogger" and callable(getattr(lg, "log_metrics", None)):
                    sinks.append(_LoggerSink(lg))
            except Exception as exc:  # noqa: BLE001 - a logger we cannot feed must not stop training
                self._warn(("sink", kind),
                           f"ibhooks: cannot log to {kind} ({exc!r}); the JSONL run log is still written")
        return sinks

    def _labels(self, batch: Any) -> Optional[torch.Tensor]:
        if not self._use_labels:
            return None
        try:
            y = self.target_getter(batch)
        except Exception as exc:  # noqa: BLE001
            self._use_labels = False
            self._warn(("labels",), f"ibhooks: target_getter failed ({exc!r}); I(T;Y) is not measured")
            return None
        if y is None:
            return None
        try:
            y = as_labels(y.detach() if isinstance(y, torch.Tensor) else y, what="the batch target")
        except (TypeError, ValueError) as exc:
            self._use_labels = False
            self._warn(("labels",), f"ibhooks: {exc} I(T;Y) is not measured; pass IBCallback(target_getter=...)")
            return None
        return y

    def _capture(self) -> Any:
        mon = self.monitor
        return None if mon is None or mon._closed else mon._capture

    def _close(self) -> None:
        if self.monitor is not None:
            self.monitor.close()
        self._window_y = None

    def _warn(self, key: Sequence[str], message: str) -> None:
        key = tuple(key)
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, RuntimeWarning, stacklevel=3)
