"""The measurement pipeline: Snapshot -> estimation -> interpretation -> Record -> sinks, on the
training thread or one background worker."""

from .console import Console
from .estimation import label_entropy, run_estimators
from .history import SeriesHistory
from .interpretation import Interpreter
from .pipeline import MeasurementPipeline
from .runner import BackgroundRunner, SyncRunner
from .sinkset import SinkSet

__all__ = [
    "Console",
    "label_entropy",
    "run_estimators",
    "SeriesHistory",
    "Interpreter",
    "MeasurementPipeline",
    "BackgroundRunner",
    "SyncRunner",
    "SinkSet",
]
