"""Where the pipeline runs: on the training thread (:class:`SyncRunner`) or on one background worker
thread with a bounded FIFO queue (:class:`BackgroundRunner`; order matters for the phase tests).

The worker never touches the model and never draws from the global RNG (estimators use their own
generators), so training stays bit-identical. A full queue makes the training thread wait; the wait
is written into the Record (``info["queue_wait_seconds"]``).
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Optional

from ..capture.snapshot import Snapshot
from ..schema import Record
from .console import Console
from .pipeline import MeasurementPipeline


class SyncRunner:
    """Runs each Snapshot through the pipeline at once; ``submit`` returns its Record."""

    background = False

    def __init__(self, pipeline: MeasurementPipeline) -> None:
        self.pipeline = pipeline

    def submit(self, snapshot: Snapshot) -> Optional[Record]:
        return self.pipeline.process(snapshot)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


_STOP = object()


class BackgroundRunner:
    """One daemon worker thread; ``submit`` returns ``None`` at once (or after waiting for a free slot)."""

    background = True

    def __init__(self, pipeline: MeasurementPipeline, console: Console, *, queue_size: int = 2) -> None:
        self.pipeline = pipeline
        self._console = console
        self._slots = threading.BoundedSemaphore(queue_size)
        self._queue: "queue.Queue[object]" = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="ibhooks-measurements", daemon=True)
        self._thread.start()
        self._closed = False

    def submit(self, snapshot: Snapshot) -> Optional[Record]:
        if self._closed:
            raise RuntimeError("the background worker is closed")
        t0 = time.perf_counter()
        self._slots.acquire()
        waited = time.perf_counter() - t0
        if waited > 1e-3:
            snapshot.info["queue_wait_seconds"] = waited
            self._console.warn_once(
                ("queue_full",),
                (
                    f"the measurement queue was full at step {snapshot.step}: the training thread waited "
                    f"{waited:.2f} s for the worker (measure less often, or raise queue_size)"
                ),
            )
        self._queue.put(snapshot)
        return None

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                if isinstance(item, threading.Event):
                    item.set()
                    continue
                try:
                    self.pipeline.process(item)  # type: ignore[arg-type]
                except Exception as exc:  # noqa: BLE001 - the pipeline records its own failures
                    self._console.warn_once(
                        ("worker", type(exc).__name__), f"background measurement failed: {exc!r}"
                    )
                finally:
                    self._slots.release()
            finally:
                self._queue.task_done()

    def flush(self) -> None:
        """Wait until every submitted measurement has been processed."""
        if self._closed or not self._thread.is_alive():
            return
        done = threading.Event()
        self._queue.put(done)
        done.wait()

    def close(self) -> None:
        if self._closed:
            return
        self.flush()
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout=60)
