"""The one exception type for errors a user can cause."""

from __future__ import annotations


class CMRSegError(Exception):
    """A problem with the user's input or request; the message says what was wrong and what to do.

    The command line prints it without a traceback and exits non-zero.
    """
