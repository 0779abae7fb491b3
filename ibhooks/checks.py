"""Compatibility module: the checks now live in :mod:`ibhooks.interpret` (typed findings, trait-driven),
the chain type in :mod:`ibhooks.chains`."""

from __future__ import annotations

from .chains import Chain, as_chains, validate_chains
from .interpret import (
    CHECKS,
    NON_SATURATING_ACTIVATIONS,
    SATURATING_ACTIVATIONS,
    CheckConfig,
    CheckContext,
    Findings,
    check_record,
)
from .schema.findings import WarningCode

#: Warning codes the checks produce (the values of :class:`~ibhooks.schema.WarningCode`).
WARNING_CODES = tuple(c.value for c in WarningCode)

__all__ = [
    "CHECKS",
    "Chain",
    "CheckConfig",
    "CheckContext",
    "Findings",
    "NON_SATURATING_ACTIVATIONS",
    "SATURATING_ACTIVATIONS",
    "WARNING_CODES",
    "as_chains",
    "check_record",
    "validate_chains",
]
