"""Stopping a background run from its caller when no signal can reach it.

Slicer starts ``cmrseg`` through its launcher (``PythonSlicer``), which starts the real interpreter as a child
and forwards no signals, so killing the launcher leaves ``cmrseg`` running. The launcher does pass its standard
input on, so the caller stops the run by closing it: :func:`stop_when_stdin_closes` watches for end of input and
then stops this process as Ctrl-C would (outputs are complete or absent, see :mod:`cmrseg.outputs`).
"""

from __future__ import annotations

import _thread
import os
import signal
import sys
import threading
import time

GRACE_SECONDS = 5.0  # after the interrupt, the longest the run may take to clean up before it is ended hard


def _watch(fd: int, grace_s: float) -> None:
    # os.read on the descriptor, not sys.stdin: a daemon thread blocked inside the buffered reader's lock
    # makes the interpreter abort at exit.
    try:
        while os.read(fd, 65536):
            pass  # the caller writes nothing; anything it does write is ignored
    except OSError:
        pass
    _thread.interrupt_main()  # Ctrl-C in the main thread on every platform: scratch files are removed
    time.sleep(grace_s)
    os._exit(130)  # the main thread was stuck in native code: end without waiting


def stop_when_stdin_closes(grace_s: float = GRACE_SECONDS) -> threading.Thread:
    """Start a daemon thread that interrupts this process when its standard input reaches end of file.

    Call it from the main thread: a process started with SIGINT ignored (by a background shell job, nohup or a
    launcher; children inherit it) would otherwise drop the interrupt, so Ctrl-C is made to interrupt again.
    """
    if sys.stdin is None:
        raise RuntimeError("no standard input to watch")
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    thread = threading.Thread(target=_watch, args=(sys.stdin.fileno(), grace_s), name="cmrseg-stdin-watch",
                              daemon=True)
    thread.start()
    return thread
