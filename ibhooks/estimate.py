"""Compatibility module: the typed objects now live in :mod:`ibhooks.schema`."""
from __future__ import annotations

from .schema.estimate import KINDS, SATURATION_TOL_BITS, Estimate, EstimatorTraits, jsonable, make_estimate
from .schema.record import LayerResult, Record, RecordError

_jsonable = jsonable  # the name used before the schema package

__all__ = ["KINDS", "SATURATION_TOL_BITS", "Estimate", "EstimatorTraits", "LayerResult", "Record", "RecordError",
           "make_estimate", "jsonable"]
