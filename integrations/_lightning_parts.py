"""Pieces of the Lightning callback that talk to Lightning's objects: a sink for the trainer's other
loggers, the default ``LightningModule.forward``, and the fit's validation DataLoader."""

from __future__ import annotations

from typing import Any, Mapping

from ibhooks.sinks.base import Sink


class _LoggerSink(Sink):
    """Scalars of each Record through ``logger.log_metrics`` (CSV, MLflow, ... loggers)."""

    name = "lightning_logger"

    def __init__(self, lightning_logger: Any) -> None:
        self.logger = lightning_logger

    def write(self, record: Any) -> None:
        from ibhooks import plotting

        items = plotting.metric_items(record)
        if items:
            self.logger.log_metrics(items, step=int(record.step))

    def close(self) -> None:
        save = getattr(self.logger, "save", None)
        if callable(save):
            save()


def _lightning_forward(pl_module: Any) -> Any:
    """``LightningModule.forward`` of the flavour ``pl_module`` comes from (the not-overridden default)."""
    for cls in type(pl_module).__mro__:
        if cls.__name__ == "LightningModule":
            return cls.forward
    return None


def _val_loader(trainer: Any) -> Any:
    """The first validation DataLoader of this fit, or None: already loaded, else from the data source
    (``val_dataloaders=`` of ``fit``, the datamodule, or the LightningModule)."""
    loaders = getattr(trainer, "val_dataloaders", None)
    if loaders is None:
        # Lightning >= 2.1 keeps the source on the validation loop (private: read defensively).
        val_loop = getattr(getattr(getattr(trainer, "fit_loop", None), "epoch_loop", None), "val_loop", None)
        source = getattr(val_loop, "_data_source", None)
        if source is None:
            source = getattr(getattr(trainer, "_data_connector", None), "_val_dataloader_source", None)
        try:
            if source is not None and source.is_defined():
                loaders = source.dataloader()
        except Exception:  # noqa: BLE001 - no validation data: passive mode (or an error for probe="val")
            loaders = None
    if isinstance(loaders, Mapping):
        loaders = next(iter(loaders.values()), None)
    if isinstance(loaders, (list, tuple)):
        loaders = loaders[0] if loaders else None
    return loaders
