"""Compatibility module: the probe runner now lives in :mod:`ibhooks.capture.probe`."""
from .capture.probe import *  # noqa: F401,F403
from .capture.probe import BatchToXY, Probe, ProbeForwardError, default_batch_to_xy, isolated, model_device, unwrap_model  # noqa: F401
