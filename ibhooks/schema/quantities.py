"""The two quantities of the information plane, defined once.

``Quantity.I_XT`` is the key used in Records, run logs and metric names; ``.label`` is how figures
and text write it; ``.phase`` is the phase whose trend test reads it.
"""

from __future__ import annotations

from enum import Enum
from typing import Tuple


class Quantity(str, Enum):
    """I(X;T) (input information of a layer) or I(T;Y) (label information)."""

    I_XT = "I_XT"
    I_TY = "I_TY"

    @property
    def label(self) -> str:
        """Human form: ``"I(X;T)"`` / ``"I(T;Y)"``."""
        return "I(X;T)" if self is Quantity.I_XT else "I(T;Y)"

    @property
    def short(self) -> str:
        """Axis-sized form used in metric names and compact tables: ``"I_XT"`` / ``"I_TY"``."""
        return self.value

    @property
    def phase(self) -> str:
        """The phase whose test reads this quantity: compression (I(X;T) falls), fitting (I(T;Y) rises)."""
        return "compression" if self is Quantity.I_XT else "fitting"

    def __str__(self) -> str:  # f"{q}" gives the key, as in the run log
        return self.value

    @classmethod
    def parse(cls, value: object) -> "Quantity":
        """Accept a Quantity, its key (``"I_XT"``) or its label (``"I(X;T)"``)."""
        if isinstance(value, Quantity):
            return value
        text = str(value)
        for q in cls:
            if text in (q.value, q.label):
                return q
        raise ValueError(f"unknown quantity {value!r}; use 'I_XT' or 'I_TY'")


#: Both quantities, I(X;T) first (the order of every figure and table).
QUANTITIES: Tuple[Quantity, Quantity] = (Quantity.I_XT, Quantity.I_TY)
