"""A cohort: which studies a ``cmrseg batch`` input holds, and the ``cohort.csv`` with one row per study.

Studies are found as follows (each input path, or each line of ``--list``):

- a NIfTI/NRRD file is one study (a 4D cine), named by its file name without the suffix;
- an ACDC patient folder (with ``Info.cfg``) is one study; a folder holding ACDC patient folders (an ACDC root)
  gives one study per patient;
- any other folder is scanned for DICOM (recursively, headers only): every cine series in it (more than one
  slice position and more than one phase) is one study, read from the folder that holds its files. Series
  with a single phase (localisers, late enhancement, single-shot) are skipped and listed. A study is named by
  that folder's path below the input (``/`` becomes ``_``), with ``_s<SeriesNumber>`` added when one folder
  holds several cine series.

Inputs are recorded as absolute paths; a study given twice is segmented once. Names are made unique
(``_2``, ``_3``, ...) and used as output folder names; they come from file and folder names, not from the
DICOM header, so no patient identifier is added that the paths do not already carry. A study that an earlier
run into the same output folder segmented keeps that run's name (a cine added to a folder would otherwise
shift the numbered names of the others). Each study also gets the state of its files (paths, sizes and
modification times, hashed): a resumed batch reuses a result only when its files are as they were.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import re
import warnings
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from cmrseg.errors import CMRSegError
from cmrseg.io import acdc
from cmrseg.io.volume_files import is_volume_file, stem
from cmrseg.measures import StudyMeasures
from cmrseg.qc import unusable_parameters
from cmrseg.reference import load_ranges

log = logging.getLogger(__name__)

PARAMETER_COLUMNS = [f.name for f in fields(StudyMeasures)]
RATE_COLUMNS = ["lv_per_ml_s", "lv_pfr_ml_s", "rv_per_ml_s", "rv_pfr_ml_s"]  # cmrseg.curves, cines with times
# low / normal / high against the reference range (cmrseg.reference), blank where none applied.
FLAG_COLUMNS = [f"{key}_flag" for key in PARAMETER_COLUMNS if key in {r.parameter for r in load_ranges()}]
# qc_not_usable: the parameters the quality check makes unusable (space-separated keys, cmrseg.qc)
COLUMNS = ["name", "input", "status", "reason", "qc_status", "qc_not_usable", "ed_frame", "es_frame", "ed_frame_number",
           "es_frame_number", *PARAMETER_COLUMNS, *FLAG_COLUMNS, *RATE_COLUMNS, "seconds"]  # fmt: skip
COHORT_FILE = "cohort.csv"


@dataclass(frozen=True)
class StudyJob:
    """One study of a batch: what ``cmrseg segment`` would be given, and the name of its output folder."""

    name: str
    inputs: tuple[str, ...]
    series_uid: str | None = None
    input_state: str | None = None  # files_state() of the files the study is read from

    def as_dict(self) -> dict:
        return asdict(self)


def read_list_file(path: str | Path) -> list[str]:
    """The paths of a ``--list`` file: one per line; blank lines and lines starting with # are ignored.
    Relative paths are taken relative to the list file's folder."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CMRSegError(f"Cannot read the list file {path}: {exc}.") from exc
    entries = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    if not entries:
        raise CMRSegError(f"The list file {path} names no study.")
    return [str(path.parent / entry) if not os.path.isabs(entry) else entry for entry in entries]


def find_studies(paths: list[str | Path], earlier: dict | None = None) -> list[StudyJob]:
    """The studies the given paths hold (see the module docstring), in the order given; those in ``earlier``
    (:func:`earlier_names` of the output folder) keep the names they had.

    Raises:
        CMRSegError: a path does not exist, or no study was found at all.
    """
    jobs: list[StudyJob] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise CMRSegError(f"{path} does not exist.")
        # absolute and without links: the same on every worker of a cluster, and as measures.json records it
        found = [StudyJob(job.name, tuple(str(Path(p).resolve()) for p in job.inputs), job.series_uid,
                          job.input_state) for job in _studies_in(path.resolve())]  # fmt: skip
        if not found:
            log.warning("No study found in %s (no NIfTI/NRRD cine, ACDC patient or cine DICOM series).", path)
        jobs += found
    if not jobs:
        raise CMRSegError("No study found in the inputs: give DICOM folders, ACDC patient folders or 4D cine files.")
    return _unique_names(_without_repeats(jobs), earlier or {})


def files_state(files: list[Path]) -> str:
    """A hash of the files' paths, sizes and modification times: it changes when a file is replaced, added or
    removed (as a build tool tells a changed input), without reading the images again."""
    lines = []
    for path in sorted(set(files)):
        stat = path.stat()
        lines.append(f"{path}\t{stat.st_size}\t{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _folder_files(folder: Path) -> list[Path]:
    """The files below ``folder`` a study may be read from (through linked folders, as the DICOM scan reads
    them): not hidden ones (a file browser's .DS_Store)."""
    from cmrseg.io.dicom_scan import files_under

    return [p for p in files_under(folder) if not any(part.startswith(".") for part in p.relative_to(folder).parts)]


def _studies_in(path: Path) -> list[StudyJob]:
    if path.is_file():
        if is_volume_file(path):
            return [StudyJob(_safe(stem(path)), (str(path),), None, files_state([path]))]
        raise CMRSegError(f"{path} is not a NIfTI/NRRD cine or a folder.")
    if acdc.is_patient_folder(path):
        return [StudyJob(_safe(path.name), (str(path),), None, files_state(_folder_files(path)))]
    patients = _acdc_patients(path)
    if patients:
        return [StudyJob(_safe(p.name), (str(p),), None, files_state(_folder_files(p))) for p in patients]
    return _dicom_studies(path)


def _acdc_patients(folder: Path) -> list[Path]:
    """The ACDC patient folders in ``folder`` and in its ``training`` and ``testing`` folders (an ACDC root);
    anything else there is named in a warning, not searched (give it as an input of its own)."""
    parts = [folder, *(folder / part for part in ("training", "testing") if (folder / part).is_dir())]
    patients = [p for part in parts for p in sorted(part.iterdir()) if acdc.is_patient_folder(p)]
    if patients:
        others = [p.name for part in parts for p in sorted(part.iterdir()) if p not in patients and p not in parts
                  and not p.name.startswith(".") and (p.is_dir() or is_volume_file(p))]  # fmt: skip
        if others:
            log.warning("%s is read as an ACDC root: %s in it %s not searched for studies; give %s as inputs of "
                        "their own.", folder, ", ".join(others[:5]) + (", ..." if len(others) > 5 else ""),
                        "is" if len(others) == 1 else "are", "it" if len(others) == 1 else "them")
    return patients


def _dicom_studies(root: Path) -> list[StudyJob]:
    from cmrseg.io.dicom_scan import scan_dicom_folder
    from cmrseg.io.dicom_series import cine_stacks, stack_size

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unreadable files are reported when the study itself is read
        series = cine_stacks(scan_dicom_folder(root))
    cines = [s for s in series if s.num_positions > 1 and s.num_phases > 1]
    for skipped in (s for s in series if s not in cines):
        log.info("Skipped %s under %s: not a multi-slice cine.", skipped.describe(), root)
    by_folder: dict[Path, list] = {}
    for cine in cines:
        folder = Path(os.path.commonpath([str(h.path.parent) for h in cine.instances]))
        by_folder.setdefault(folder, []).append(cine)
    jobs = []
    for folder, members in by_folder.items():
        relative = folder.relative_to(root)
        base = _safe("_".join(relative.parts) if relative.parts else root.resolve().name)
        for cine in members:
            # a stack joined from several series has no UID of its own: the reader reads it only as its choice,
            # the largest cine anywhere under its folder
            rivals = [c for c in cines if c is not cine and any(folder in h.path.parents for h in c.instances)]
            if cine.parts and any(stack_size(c) >= stack_size(cine) for c in rivals):
                log.warning("Skipped %s under %s: a stack joined from several series is read only where it is "
                            "the largest cine under its folder; move it to a folder of its own.", cine.describe(),
                            folder)
                continue
            uid = None if cine.parts else cine.series_uid
            # a joined stack is read as the reader's choice under its folder: any cine added there may change it
            files = _folder_files(folder) if cine.parts else [h.path for h in cine.instances]
            name = base
            if len(members) > 1:
                name += f"_s{cine.series_number if cine.series_number is not None else members.index(cine) + 1}"
            jobs.append(StudyJob(name, (str(folder),), uid, files_state(files)))
    return jobs


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "study"


def _without_repeats(jobs: list[StudyJob]) -> list[StudyJob]:
    """Each study once: one given twice (a root and a folder in it, a path also in ``--list``) would otherwise
    be segmented twice and weigh twice in the cohort's statistics."""
    seen, kept = set(), []
    for job in jobs:
        if (job.inputs, job.series_uid) in seen:
            log.warning("%s is given more than once; it is segmented once.", " ".join(job.inputs))
            continue
        seen.add((job.inputs, job.series_uid))
        kept.append(job)
    return kept


def _unique_names(jobs: list[StudyJob], earlier: dict) -> list[StudyJob]:
    """A study in ``earlier`` keeps its name there; a repeated name gets the first ``_2``, ``_3``, ... that no
    study is named, nor an earlier result's folder, compared case-insensitively (output folders on a
    case-insensitive filesystem are the same folder)."""
    kept = {job: earlier[(job.inputs, job.series_uid)] for job in jobs if (job.inputs, job.series_uid) in earlier}
    reserved = {name.lower() for name in earlier.values()}
    given = {job.name.lower() for job in jobs} | reserved
    taken = {name.lower() for name in kept.values()}
    unique = []
    for job in jobs:
        name, number = kept.get(job, job.name), 1
        while job not in kept and (name.lower() in taken or name.lower() in reserved
                                   or (number > 1 and name.lower() in given)):  # fmt: skip
            number += 1
            name = f"{job.name}_{number}"
        taken.add(name.lower())
        unique.append(job if name == job.name else replace(job, name=name))
    return unique


def earlier_names(out: Path) -> dict[tuple[tuple[str, ...], str | None], str]:
    """``(inputs, series_uid) -> folder name`` of the results an earlier batch left in ``out``."""
    names = {}
    for measures_file in sorted(out.glob("*/measures.json")) if out.is_dir() else []:
        try:
            measures = json.loads(measures_file.read_text(encoding="utf-8"))
            key = (tuple(measures["input"]), measures.get("series_uid"))
        except (OSError, ValueError, TypeError, KeyError):
            continue  # not a result: its study fails with the reason when its name comes up
        names.setdefault(key, measures_file.parent.name)
    return names


def done_row(job: StudyJob, measures: dict, seconds: float | None) -> dict:
    """The cohort row of a segmented study, from its ``measures.json`` document."""
    study = measures.get("study") or {}
    unusable = unusable_parameters(measures["qc"], study)
    row = {"name": job.name, "input": " ".join(job.inputs), "status": "done", "reason": "",
           "qc_status": measures["qc"]["status"], "seconds": "" if seconds is None else round(seconds, 2),
           "qc_not_usable": " ".join(key for key in PARAMETER_COLUMNS if key in unusable)}
    for key in ("ed_frame", "es_frame", "ed_frame_number", "es_frame_number"):
        row[key] = measures.get(key)
    row.update({key: study.get(key) for key in PARAMETER_COLUMNS})
    flags = (measures.get("reference") or {}).get("parameters", {})
    row.update({f"{key}_flag": flags.get(key, {}).get("flag") for key in PARAMETER_COLUMNS})
    rates = measures.get("volume_curve_rates") or {}
    row.update({key: rates.get(key) for key in RATE_COLUMNS})
    return row


def failed_row(job: StudyJob, reason: str) -> dict:
    return {"name": job.name, "input": " ".join(job.inputs), "status": "failed", "reason": reason}


def finished_row(job: StudyJob, study_dir: Path, settings: dict) -> dict | None:
    """What an earlier run left in ``study_dir`` (resume): the done row of a complete result of this study, of
    its files as they are now (``input_state``), made with these ``settings`` (measures.json's model_sha256,
    basal_rule, bsa_method, all_frames); a failed row
    naming why, when the folder holds a result that is not that (left as it is: a batch never replaces
    files); None when it holds none (a run stopped before its commit leaves none)."""
    from cmrseg.outputs import JOURNAL_NAME, read_manifest

    try:
        listed = read_manifest(study_dir)
    except CMRSegError as exc:  # one damaged folder fails its study, not the batch
        return failed_row(job, str(exc))
    if (study_dir / JOURNAL_NAME).exists() or not listed:
        return None  # nothing committed (the run on it rolls a half-done commit back)
    missing = [name for name in listed if not (study_dir / name).is_file()]
    if missing:
        return failed_row(job, f"{study_dir} holds an earlier result with files missing ({', '.join(missing)}); "
                               "it is left as it is: move the folder away to segment this study again")  # fmt: skip
    try:
        measures = json.loads((study_dir / "measures.json").read_text())
    except (OSError, ValueError) as exc:
        return failed_row(job, f"{study_dir} holds an earlier result whose measures.json cannot be read ({exc}); "
                               "it is left as it is")  # fmt: skip
    if measures.get("input") != list(job.inputs) or measures.get("series_uid") != job.series_uid:
        other = " ".join(measures.get("input") or [])
        series = f", series {measures['series_uid']}" if measures.get("series_uid") else ""
        return failed_row(job, f"{study_dir} holds the result of another input ({other}{series}); it is left as "
                               "it is")  # fmt: skip
    if any(key not in measures for key in settings):
        return failed_row(job, f"{study_dir} holds a result of an earlier cmrseg, which did not record the model "
                               "and settings it was made with; it is left as it is: move the folder away to "
                               "segment this study again")  # fmt: skip
    if measures.get("input_state") is None:  # a result of an earlier cmrseg, or of cmrseg segment
        log.warning("%s: its result does not record the state of its input files; reused without checking them.",
                    study_dir)
    elif measures["input_state"] != job.input_state:
        return failed_row(job, f"{study_dir} holds a result of this study's files as they were before (a file was "
                               "replaced, added or removed since); it is left as it is: move the folder away to "
                               "segment this study again")  # fmt: skip
    changed = [f"{key} {measures[key]}, not {value}" for key, value in settings.items() if measures[key] != value]
    if changed:
        return failed_row(job, f"{study_dir} holds a result made with other settings ({'; '.join(changed)}); it is "
                               "left as it is: move the folder away to segment this study again")  # fmt: skip
    return done_row(job, measures, None)


def studies_of_other_batches(out: Path, jobs: list[StudyJob]) -> list[str]:
    """The studies ``out``'s cohort.csv lists whose input ``jobs`` does not give (one table is one cohort)."""
    path = out / COHORT_FILE
    if not path.is_file():
        return []
    try:
        with open(path, newline="", encoding="utf-8") as stream:
            reader = csv.DictReader(stream)
            rows = list(reader)
            columns = reader.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CMRSegError(f"Cannot read {path} ({exc}); choose another --out.") from exc
    if not {"name", "input"} <= set(columns):
        raise CMRSegError(f"{path} is not a CMRSeg cohort table (no name and input columns); choose another --out.")
    inputs = {" ".join(job.inputs) for job in jobs}
    return [row["name"] or "?" for row in rows if row["input"] not in inputs]


def write_cohort_csv(rows: list[dict], path: Path) -> Path:
    """Write the cohort table atomically (a reader never sees half a file)."""
    scratch = path.with_name(f".{path.name}.tmp")
    with open(scratch, "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: "" if row.get(key) is None else row.get(key) for key in COLUMNS})
    os.replace(scratch, path)
    return path
