"""Progress reporting for long work, shared by the command line and the Slicer module.

Core functions accept ``progress: ProgressCallback | None`` and call it as ``progress(done, total, what)``.
The command line prints machine-readable lines (``PROGRESS done/total what``) that the Slicer module
parses from the background process.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

ProgressCallback = Callable[[int, int, str], None]


class LinePrinter:
    """Prints ``PROGRESS done/total what`` to stderr, at most every ``min_interval`` seconds (and the last)."""

    def __init__(self, min_interval: float = 0.5, stream=None) -> None:
        self.min_interval = min_interval
        self.stream = stream if stream is not None else sys.stderr
        self._last = 0.0

    def __call__(self, done: int, total: int, what: str) -> None:
        now = time.monotonic()
        if done < total and now - self._last < self.min_interval:
            return
        self._last = now
        print(f"PROGRESS {done}/{total} {what}", file=self.stream, flush=True)


def report(progress: ProgressCallback | None, done: int, total: int, what: str) -> None:
    if progress is not None:
        progress(done, total, what)
