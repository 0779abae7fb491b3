"""When to measure. A schedule is any callable ``step -> bool``; these build the common ones.

Steps count completed training steps: ``monitor.step()`` after the first optimizer step is step 1.
"""
from __future__ import annotations

import math
from typing import Callable, FrozenSet, Union

Schedule = Callable[[int], bool]


class every_n:  # noqa: N801 - reads like a function at the call site
    """Measure every ``n`` steps (steps n, 2n, 3n, ...), plus step ``start`` if given."""

    def __init__(self, n: int, start: int = 0) -> None:
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"every_n(n) needs an integer n >= 1, got {n!r}")
        self.n = n
        self.start = int(start)

    def __call__(self, step: int) -> bool:
        return step >= self.start and (step - self.start) % self.n == 0

    def __repr__(self) -> str:
        return f"every_n({self.n}, start={self.start})"


class log_spaced:  # noqa: N801
    """``num`` log-spaced steps in [1, max_steps] (duplicates merged), plus step 0: the thinning of
    Shwartz-Ziv & Tishby / Saxe et al. (dense early, sparse late)."""

    def __init__(self, num: int, max_steps: int) -> None:
        if not isinstance(num, int) or num < 1:
            raise ValueError(f"log_spaced(num, max_steps) needs an integer num >= 1, got {num!r}")
        if not isinstance(max_steps, int) or max_steps < 1:
            raise ValueError(f"log_spaced(num, max_steps) needs an integer max_steps >= 1, got {max_steps!r}")
        self.num = num
        self.max_steps = max_steps
        if num == 1:
            steps = {max_steps}
        else:
            top = math.log(max_steps)
            steps = {int(math.floor(math.exp(top * i / (num - 1)) + 1e-9)) for i in range(num)}
        self.steps: FrozenSet[int] = frozenset(steps | {0})

    def __call__(self, step: int) -> bool:
        return step in self.steps

    def __repr__(self) -> str:
        return f"log_spaced({self.num}, {self.max_steps})"


def as_schedule(spec: Union[Schedule, int, None]) -> Schedule:
    """Accept a schedule callable or an int N (= every_n(N)); reject anything else clearly."""
    if spec is None:
        return every_n(100)
    if isinstance(spec, bool):
        raise ValueError("schedule must be a callable step -> bool or an int N (every N steps), not a bool")
    if isinstance(spec, int):
        return every_n(spec)
    if not callable(spec):
        raise ValueError(
            f"schedule must be a callable step -> bool (e.g. ibhooks.every_n(100) or "
            f"ibhooks.log_spaced(200, max_steps)) or an int, got {type(spec).__name__}"
        )
    try:
        result = spec(1)
    except Exception as exc:  # noqa: BLE001 - report what the user's callable did
        raise ValueError(f"schedule callable raised {exc!r} when called with step=1; it must take an int step") from exc
    if not isinstance(result, (bool, int)) and type(result).__name__ not in ("bool_",):
        raise ValueError(f"schedule(step) must return a bool, got {type(result).__name__}")
    return spec
