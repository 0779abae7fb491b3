"""What the monitor says to the user: warnings once per kind, and (when verbose) short lines that do
not break a progress bar (``tqdm.write`` when tqdm is installed)."""

from __future__ import annotations

import logging
import sys
import threading
import warnings
from typing import Hashable, Set

logger = logging.getLogger("ibhooks")


class Console:
    """``warn_once(key, message)``: a RuntimeWarning and a log record the first time ``key`` is seen;
    ``say(text)``: a line on stderr when verbose. Safe to call from the background worker."""

    def __init__(self, verbose: bool = True) -> None:
        self.verbose = verbose
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
