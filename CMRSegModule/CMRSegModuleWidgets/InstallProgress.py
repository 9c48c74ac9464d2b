"""A progress dialog for package installs, shown only once something is installed (after the user agreed)."""

import qt
import slicer


class InstallProgress:
    """Callable as ``progress(done, total, text)``; pip's output keeps the dialog responsive while it runs
    (``slicer.util.logProcessOutput`` processes events for every line)."""

    def __init__(self, title: str = "CMRSeg: installing Python packages") -> None:
        self._title = title
        self._dialog = None

    def __call__(self, done: int, total: int, text: str) -> None:
        if self._dialog is None:
            self._dialog = slicer.util.createProgressDialog(windowTitle=self._title, maximum=total, autoClose=False)
            self._dialog.setCancelButton(None)  # pip cannot be stopped half-way safely
        self._dialog.maximum, self._dialog.value, self._dialog.labelText = total, done, text
        slicer.app.processEvents(qt.QEventLoop.ExcludeUserInputEvents)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        if self._dialog is not None:
            self._dialog.close()
            self._dialog = None
