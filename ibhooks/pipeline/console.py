"""What the monitor says to the user: warnings once per kind, and (when verbose) short lines that do
not break a progress bar (``tqdm.write`` when tqdm is installed) and a progress bar over the layers of a
measurement that takes over a second."""

from __future__ import annotations

import logging
import sys
import threading
import warnings
from typing import Any, Hashable, Optional, Set

from ..progress import measurement_progress

logger = logging.getLogger("ibhooks")


class Console:
    """``warn_once(key, message)``: a RuntimeWarning and a log record the first time ``key`` is seen;
    ``say(text)``: a line on stderr when verbose; ``progress(total, step)``: a bar over the units of one
    measurement, shown once it has run ``progress_delay`` seconds. Safe to call from the background worker.

    Args:
        verbose: ``False`` silences ``say`` and ``progress`` (warnings still go out once each).
        progress_delay: Seconds a measurement runs before its bar appears (a faster one prints nothing).
    """

    def __init__(self, verbose: bool = True, progress_delay: float = 1.0) -> None:
        if progress_delay < 0:
            raise ValueError(f"progress_delay must be >= 0 seconds, got {progress_delay!r}")
        self.verbose = verbose
        self.progress_delay = float(progress_delay)
        self._warned: Set[Hashable] = set()
        self._lock = threading.Lock()

    def warn_once(self, key: Hashable, message: str) -> bool:
        with self._lock:
            if key in self._warned:
                return False
            self._warned.add(key)
        logger.warning(message)
        warnings.warn(f"ibhooks: {message}", RuntimeWarning, stacklevel=3)
        return True

    def say(self, text: str) -> None:
        if not self.verbose:
            return
        try:
            from tqdm import tqdm  # keeps a user's progress bar whole

            tqdm.write(text, file=sys.stderr)
        except ImportError:
            print(text, file=sys.stderr)

    def progress(self, total: int, step: Optional[int] = None) -> Any:
        """A tqdm bar to stderr over ``total`` units (layer x estimator) of the measurement at ``step``:
        appears after ``progress_delay`` seconds, below a user's own bar, and is removed when closed.
        A no-op bar when not verbose or tqdm is missing. Use it on the training thread only."""
        return measurement_progress(total, self.verbose, step=step, delay=self.progress_delay)
