"""Saving a training run inside its epochs: on a timer, and when asked to stop.

An epoch of a large network on a CPU takes many minutes; a run stopped in it (a session that ends, Ctrl-C, a
``kill``) would lose all of it. :class:`EpochCheckpoints` has the training loop save where it stands every few
minutes, and turns Ctrl-C and SIGTERM into a request that the loop honours after the batch in hand (never
half-way through an optimizer step): it saves, then raises :class:`TrainingStopped`. A second Ctrl-C stops at
once, keeping what was saved before.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from cmrseg.training.loop import EpochPosition


class TrainingStopped(Exception):
    """The run was asked to stop and has saved where it stood."""


class EpochCheckpoints:
    """Calls ``save`` with the epoch's position every ``every_seconds`` (after every batch when 0; never on a
    timer when None) and when a stop was requested, then raises :class:`TrainingStopped` for a stop."""

    def __init__(self, save: Callable[[EpochPosition], None], every_seconds: float | None) -> None:
        self._save = save
        self._every = every_seconds
        self._last = time.monotonic()
        self.stop_requested = False
        self._previous: dict[int, Any] = {}

    def due(self) -> bool:
        return self.stop_requested or (self._every is not None and time.monotonic() - self._last >= self._every)

    def save(self, position: EpochPosition) -> None:
        self._save(position)
        self._last = time.monotonic()
        self.stop_if_requested()

    def stop_if_requested(self) -> None:
        if self.stop_requested:
            raise TrainingStopped

    def _request_stop(self, signum: int, frame: Any) -> None:  # noqa: ARG002 - signal handler signature
        if self.stop_requested:  # asked twice: stop now
            raise KeyboardInterrupt
        self.stop_requested = True
        with contextlib.suppress(OSError):  # os.write: print could re-enter a write the signal interrupted
            os.write(2, b"Stopping after this batch, once it is saved (Ctrl-C again stops at once).\n")

    def __enter__(self) -> EpochCheckpoints:
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._request_stop)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()
