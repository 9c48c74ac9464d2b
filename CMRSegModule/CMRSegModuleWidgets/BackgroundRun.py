"""The widget's background run: start ``cmrseg segment`` in a QProcess, show its progress, finish or cancel it.

A mixin of ``CMRSegModuleWidget``: it uses the widget's ``ui``, ``logic``, ``_run``, ``_finishedProcess``,
``_showNewResult`` and ``_updateGui``.
"""

import logging

import qt
import slicer

from CMRSegModuleLib import Runner

CANCEL_GRACE_MS = 2000  # after closing the run's stdin, kill its process tree if it still runs


class BackgroundRunMixin:
    def _startProcess(self, inputNode, job, study, command, environment) -> None:
        process = qt.QProcess()
        processEnvironment = qt.QProcessEnvironment.systemEnvironment()
        for key, value in environment.items():
            processEnvironment.insert(key, value)
        process.setProcessEnvironment(processEnvironment)
        process.setProcessChannelMode(qt.QProcess.MergedChannels)
        process.setWorkingDirectory(str(job.workDir))  # not Slicer's folder, which is first on sys.path
        process.readyReadStandardOutput.connect(self._onProcessOutput)
        process.finished.connect(self._onProcessFinished)
        process.errorOccurred.connect(self._onProcessError)
        parser = Runner.OutputParser()
        self._run = {"process": process, "job": job, "study": study, "parser": parser, "cancelled": False,
                     "inputNode": inputNode}  # the result belongs to this input, whatever is selected later
        self.ui.progressBar.value = 0
        self.ui.progressBar.show()
        self.ui.statusLabel.text = "Starting the segmentation..."
        logging.info("CMRSeg: " + " ".join(command))
        process.start(command[0], command[1:])
        self._updateGui()

    def _onProcessOutput(self) -> None:
        if self._run is None:
            return
        text = self._run["process"].readAllStandardOutput().data().decode("utf-8", "replace")
        for progress in self._run["parser"].feed(text):
            self.ui.progressBar.value = progress.percent
            self.ui.statusLabel.text = f"{progress.what}: {progress.done} of {progress.total}"

    def _onProcessFinished(self, *args, failed: bool = False) -> None:
        if self._run is None:
            return
        self._onProcessOutput()
        run, self._run = self._run, None
        self._finishedProcess = run["process"]  # not destroyed inside its own finished() signal
        run["parser"].finish()
        crashed = run["process"].exitStatus() != qt.QProcess.NormalExit  # exitCode() is only valid otherwise
        exitCode = 1 if failed or crashed else run["process"].exitCode()
        self.ui.progressBar.hide()
        try:
            if run["cancelled"]:
                self.ui.statusLabel.text = "Cancelled; the scene is unchanged."
            elif exitCode != 0:
                self.ui.statusLabel.text = "The segmentation failed."
                slicer.util.errorDisplay(run["parser"].failureMessage(exitCode), windowTitle="CMRSeg")
            else:
                with slicer.util.tryWithErrorDisplay("Could not load the segmentation results.", waitCursor=True):
                    review = self.logic.finishBackgroundRun(run["job"], run["study"], run["inputNode"])
                self._showNewResult(review)
        finally:
            run["job"].cleanup()
            self._updateGui()

    def _onProcessError(self, error) -> None:
        if self._run is not None and error == qt.QProcess.FailedToStart:  # no finished() follows
            self._run["parser"].errorMessage = f"Could not start {self._run['process'].program()}."
            self._onProcessFinished(failed=True)

    def _cancelRun(self) -> None:
        """Close the run's stdin (cmrseg stops within a second, cleaning up); kill the whole tree after 2 s."""
        if self._run is None:
            return
        self._run["cancelled"] = True
        process = self._run["process"]
        process.closeWriteChannel()  # the launcher forwards stdin but no signals: see cmrseg.stopping
        pid = process.processId()

        def killIfRunning():
            if process.state() != qt.QProcess.NotRunning:
                Runner.killProcessTree(pid)

        qt.QTimer.singleShot(CANCEL_GRACE_MS, killIfRunning)

