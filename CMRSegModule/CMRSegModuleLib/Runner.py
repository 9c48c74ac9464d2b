"""Running the segmentation for the module: ``cmrseg segment`` in a background process, or in-process.

The background path keeps Slicer responsive: :func:`prepareJob` writes the study to temporary files,
:func:`buildCommand` gives the ``python -m cmrseg segment ...`` command line (the widget starts it with
``qt.QProcess`` and kills it on Cancel), :class:`OutputParser` turns its output into progress and error
messages, and :func:`readResults` reads the label maps and measures it wrote. :func:`runInProcess` does the
same work by calling the core directly (for tests, the self test and scripting). Pure Python, no Qt.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from cmrseg.errors import CMRSegError

MODULE_DIR = Path(__file__).resolve().parents[1]  # holds the cmrseg package
INPUT_NAME = "cine.nrrd"
_PROGRESS = re.compile(r"^PROGRESS (\d+)/(\d+)\s*(.*)$")
_ERROR_PREFIX = "cmrseg: error:"


@dataclass
class RunSettings:
    """What the user chose. ``edFrame``/``esFrame`` are 0-based; ``None`` for both = found automatically."""

    edFrame: int | None = None
    esFrame: int | None = None
    device: str = "auto"  # auto, cpu or cuda
    modelPath: str | None = None  # None: the shipped model
    basalRule: str = "none"  # none, 50 or 100
    heightCm: float | None = None
    weightKg: float | None = None
    sex: str | None = None  # M, F or O as DICOM PatientSex; picks the reference ranges
    ageYears: float | None = None
    # True: height, weight, sex and age are the user's whole answer (None: not known), as the module's fields,
    # filled from the study and then edited, are; False: they add to what the study carries
    patientAsEntered: bool = False

    def checked(self, numFrames: int) -> RunSettings:
        """These settings validated for a study of ``numFrames`` frames (ED/ES dropped for a single volume).

        Raises:
            CMRSegError: only one of ED/ES given, a frame outside the study, ED = ES, an unknown device or
                basal rule, or a model file that does not exist.
        """
        from cmrseg.basal import RULES
        from cmrseg.validate import check_height_weight, check_sex_age

        check_height_weight(self.heightCm, self.weightKg)  # a height of 1.75 (metres) would give a BSA of 0.18
        check_sex_age(self.sex, self.ageYears)
        if self.device not in ("auto", "cpu", "cuda"):
            raise CMRSegError(f"Unknown device {self.device!r}; use auto, cpu or cuda.")
        if self.basalRule not in RULES:
            raise CMRSegError(f"Unknown basal-slice rule {self.basalRule!r}; use one of {', '.join(RULES)}.")
        if self.modelPath and not Path(self.modelPath).is_file():
            raise CMRSegError(f"Model file {self.modelPath} not found; choose a CMRSeg checkpoint (.pt).")
        if numFrames == 1:
            return replace(self, edFrame=None, esFrame=None)
        if (self.edFrame is None) != (self.esFrame is None):
            raise CMRSegError("Give both ED and ES frames, or neither (then they are found from the LV volume curve).")
        for name, frame in (("ED", self.edFrame), ("ES", self.esFrame)):
            if frame is not None and not 0 <= frame < numFrames:
                raise CMRSegError(f"The {name} frame {frame} is outside the study's frames 0 to {numFrames - 1}.")
        if self.edFrame is not None and self.edFrame == self.esFrame:
            raise CMRSegError(f"ED and ES are both frame {self.edFrame}; choose two different frames.")
        return self


@dataclass
class RunResult:
    """Label maps ``{frame: [z, y, x]}`` (ACDC values, basal rule applied) and what the run decided."""

    labels: dict[int, np.ndarray]
    edFrame: int | None
    esFrame: int | None
    model: str
    basalRule: str
    edEsFrom: str = ""
    measures: dict | None = None  # the core's StudyMeasures dict, when ED and ES exist
    review: dict | None = None  # the core's per-slice review score (cmrseg.review), when the model has one
    lvCurve: dict | None = None  # {frame: LV blood pool ml} of every segmented frame (basal rule applied)
    bsaMethod: str = "mosteller"  # the BSA formula of the run's indexed values
    segmentedMirrored: bool = False  # the network was shown the slices mirrored (the run's quality check says so)

    @property
    def singleFrame(self) -> bool:
        return self.edFrame is None or self.esFrame is None or self.edFrame == self.esFrame


@dataclass
class SegmentJob:
    """A prepared background run: its temporary folder, input file, output folder and settings."""

    workDir: Path
    inputPath: Path
    outDir: Path
    settings: RunSettings
    frameFiles: list[str] = field(default_factory=list)  # label-map file name of each frame

    def cleanup(self) -> None:
        shutil.rmtree(self.workDir, ignore_errors=True)


@dataclass(frozen=True)
class Progress:
    done: int
    total: int
    what: str

    @property
    def percent(self) -> int:
        return int(round(100 * self.done / self.total)) if self.total > 0 else 0


def patientWithSettings(patient, settings: RunSettings):
    """A copy of ``patient`` with the height, weight, sex and age the user entered: all four as entered with
    ``settings.patientAsEntered`` (an "Unknown" sex clears the study's), else where entered. Raises
    :class:`CMRSegError` for an entered height or weight that makes an impossible body-mass index with the
    study's other value."""
    from cmrseg.validate import check_given_with_read

    patient = replace(patient)
    entered = {"height_cm": settings.heightCm, "weight_kg": settings.weightKg, "sex": settings.sex,
               "age_years": settings.ageYears}
    for attribute, value in entered.items():
        if settings.patientAsEntered or value:
            setattr(patient, attribute, value)
    # a height entered beside the study's weight (or the reverse) that no patient has: refused, not indexed
    check_given_with_read(patient, bool(settings.heightCm), bool(settings.weightKg))
    return patient


def prepareJob(study, settings: RunSettings, workDir: str | Path | None = None) -> SegmentJob:
    """Check the settings and write the study (4D NRRD, or 3D for one frame) into a new temporary folder."""
    from cmrseg.io.volume_files import write_study
    from cmrseg.segment import output_names

    settings = settings.checked(study.num_frames)
    patientWithSettings(study.patient, settings)  # the entered values refused now, not after the run
    workDir = Path(tempfile.mkdtemp(prefix="CMRSeg-", dir=workDir))
    inputPath = workDir / INPUT_NAME
    try:
        write_study(study, inputPath, compress=False)  # runs in the GUI thread: uncompressed is ~50x faster
    except Exception:
        shutil.rmtree(workDir, ignore_errors=True)
        raise
    _, frameFiles = output_names([inputPath], study)
    return SegmentJob(workDir, inputPath, workDir / "out", settings, frameFiles)


def buildCommand(job: SegmentJob, pythonExecutable: str | None = None) -> list[str]:
    """The ``python -m cmrseg segment`` command line of a job (frames 0-based, as the command expects)."""
    settings = job.settings
    command = [pythonExecutable or defaultPythonExecutable(), "-m", "cmrseg", "segment", str(job.inputPath),
               "--out", str(job.outDir), "--device", settings.device, "--basal-rule", settings.basalRule,
               "--stop-when-stdin-closes"]  # Cancel closes stdin: the launcher forwards no signals
    if settings.modelPath:
        command += ["--model", str(settings.modelPath)]
    if settings.edFrame is not None and settings.esFrame is not None:
        command += ["--ed", str(settings.edFrame), "--es", str(settings.esFrame)]
    if settings.heightCm:
        command += ["--height", f"{settings.heightCm:g}"]
    if settings.weightKg:
        command += ["--weight", f"{settings.weightKg:g}"]
    if settings.sex:
        command += ["--sex", settings.sex]
    if settings.ageYears:
        command += ["--age", f"{settings.ageYears:g}"]
    return command


def childProcesses(pid: int) -> list[int]:
    """The process ids of all descendants of ``pid`` (Linux /proc, else ``pgrep``); children first."""
    children: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            children += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        try:
            found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, timeout=5)
            children = [int(c) for c in found.stdout.split()]
        except (OSError, subprocess.SubprocessError, ValueError):
            return []
    return [grand for child in children for grand in childProcesses(child)] + children


def killProcessTree(pid: int) -> None:
    """Kill ``pid`` and everything it started (the fallback when closing stdin did not stop a run)."""
    if sys.platform == "win32":
        subprocess.run(["taskkill", "/T", "/F", "/PID", str(pid)], capture_output=True)
        return
    for target in [*childProcesses(pid), pid]:
        try:
            os.kill(target, signal.SIGKILL)
        except ProcessLookupError:
            pass


def defaultPythonExecutable() -> str:
    """Slicer's ``PythonSlicer`` when on the PATH (inside Slicer), else this interpreter."""
    return shutil.which("PythonSlicer") or sys.executable


def processEnvironment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of the background process: ``cmrseg`` importable and output unbuffered."""
    environment = dict(os.environ if base is None else base)
    paths = [str(MODULE_DIR)] + [p for p in environment.get("PYTHONPATH", "").split(os.pathsep) if p]
    environment["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    environment["PYTHONUNBUFFERED"] = "1"
    return environment


def parseProgressLine(line: str) -> Progress | None:
    """``PROGRESS done/total what`` -> :class:`Progress`; anything else -> None."""
    match = _PROGRESS.match(line.strip())
    if match is None:
        return None
    return Progress(int(match.group(1)), int(match.group(2)), match.group(3).strip())


def parseErrorLine(line: str) -> str | None:
    """The message of a ``cmrseg: error: ...`` line, else None."""
    line = line.strip()
    return line[len(_ERROR_PREFIX):].strip() if line.startswith(_ERROR_PREFIX) else None


class OutputParser:
    """Collects the output of the background process as it arrives, in chunks that may split lines."""

    def __init__(self, keepLines: int = 40) -> None:
        self.keepLines = keepLines
        self.lastProgress: Progress | None = None
        self.errorMessage: str | None = None
        self.lines: list[str] = []
        self._pending = ""

    def feed(self, text: str) -> list[Progress]:
        """Add a chunk of output; return the progress reports completed in it."""
        self._pending += text.replace("\r\n", "\n")
        *complete, self._pending = self._pending.split("\n")
        return [p for p in (self._line(line) for line in complete) if p is not None]

    def finish(self) -> list[Progress]:
        """Handle a last line without a newline (call when the process has ended)."""
        pending, self._pending = self._pending, ""
        progress = self._line(pending) if pending.strip() else None
        return [progress] if progress is not None else []

    def failureMessage(self, exitCode: int) -> str:
        """What to tell the user when the process ended with ``exitCode`` != 0."""
        if self.errorMessage:
            return self.errorMessage
        tail = "\n".join(self.lines[-10:])
        return f"The segmentation process failed (exit code {exitCode}).\n{tail}".strip()

    def _line(self, line: str) -> Progress | None:
        progress = parseProgressLine(line)
        if progress is not None:
            self.lastProgress = progress
            return progress
        message = parseErrorLine(line)
        if message is not None:
            self.errorMessage = message
        if line.strip():
            self.lines = (self.lines + [line.rstrip()])[-self.keepLines:]
        return None


def readResults(job: SegmentJob) -> RunResult:
    """The ED/ES (or single-frame) label maps and measures a finished background run wrote."""
    return readOutputFolder(job.outDir, job.settings.basalRule)


def readOutputFolder(outDir: str | Path, basalRule: str = "none") -> RunResult:
    """The ED/ES (or single-frame) label maps and measures ``cmrseg segment`` wrote into ``outDir``."""
    from cmrseg.io.volume_files import read_volume_file

    outDir = Path(outDir)
    measuresPath = outDir / "measures.json"
    if not measuresPath.is_file():
        raise CMRSegError(f"The segmentation process wrote no results ({measuresPath} is missing).")
    measures = json.loads(measuresPath.read_text())
    ed, es = measures.get("ed_frame"), measures.get("es_frame")
    frames = [ed, es] if ed is not None and es is not None else [int(index) for index in measures["frames"]][:1]
    labels = {}
    for frame in frames:
        path = outDir / measures["frames"][str(frame)]["file"]
        labels[frame] = np.ascontiguousarray(read_volume_file(path).image[0], dtype=np.uint8)
    curve = {int(index): frame["lv_ml"] for index, frame in measures["frames"].items()}
    # runs before the setting was recorded name the formula only where it was used, with their parameters
    bsaMethod = measures.get("bsa_method") or (measures.get("study") or {}).get("bsa_method") or "mosteller"
    return RunResult(labels, ed, es, measures.get("model", ""), measures.get("basal_rule", basalRule),
                     measures.get("ed_es_from", ""), measures.get("study"), measures.get("review"), curve, bsaMethod,
                     qcSaysMirrored(measures.get("qc")))


def qcSaysMirrored(qc: dict | None) -> bool:
    """Whether a run's quality check says the network was shown the slices mirrored against the header."""
    return any(flag["code"] == "segmented_mirrored" for flag in (qc or {}).get("flags", []))


def runInProcess(study, settings: RunSettings, segmenter=None, progress=None) -> RunResult:
    """Segment ``study`` in this process, as ``cmrseg segment`` does (ED/ES, basal rule, measures).

    ``segmenter`` is a loaded :class:`cmrseg.inference.Segmenter`; by default the settings' model is loaded.
    """
    from cmrseg.inference import Segmenter
    from cmrseg.segment import segment_study
    from cmrseg.validate import validate_study

    settings = settings.checked(study.num_frames)
    # As in the background run: the user's frames or the volume curve, never frames stored on the study; and the
    # checks every file read passes (swapped slice and time axes, a label map, broken voxels), on a copy, since
    # they repair some things in place.
    study = validate_study(replace(study, image=study.image.copy(), ed_frame=None, es_frame=None,
                                   patient=patientWithSettings(study.patient, settings)))
    if segmenter is None:
        segmenter = Segmenter.load(settings.modelPath, device=settings.device)
    result = segment_study(study, segmenter, settings.edFrame, settings.esFrame, basal_rule=settings.basalRule,
                           progress=progress)
    ed, es = result.ed_frame, result.es_frame
    kept = [ed, es] if ed is not None else sorted(result.labels)[:1]
    labels = {i: result.labels[i] for i in kept}
    edEsFrom = "LV volume curve" if result.from_curve else "input or user"
    return RunResult(labels, ed, es, segmenter.description, settings.basalRule, edEsFrom, result.study_measures,
                     result.review, {i: m.lv_ml for i, m in result.per_frame.items()},
                     segmentedMirrored=qcSaysMirrored(result.qc))
