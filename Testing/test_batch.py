"""``cmrseg batch``: studies found in folders and lists, one process with overlapped I/O, the cohort table,
failures recorded, resume after interruption, and the same outputs as ``cmrseg segment``."""

from __future__ import annotations

import csv
import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cmrseg.batch import BatchOptions, batch_lock, run_in_process
from cmrseg.cohort import (
    COHORT_FILE,
    COLUMNS,
    StudyJob,
    done_row,
    find_studies,
    read_list_file,
    studies_of_other_batches,
)
from cmrseg.errors import CMRSegError
from cmrseg.io.dicom_write import write_dicom_cine
from cmrseg.io.volume_files import read_volume_file, write_study
from cmrseg.outputs import JOURNAL_NAME, MANIFEST_NAME
from cmrseg.phantom import make_phantom
from cmrseg.segment import run_segment


def small_cine(seed: int):
    return make_phantom(seed=seed, frames=3, slices=6, matrix=(120, 128)).study


def read_cohort(out: Path) -> list[dict]:
    with open(out / COHORT_FILE, newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


def label_maps(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: read_volume_file(p).image for p in sorted(folder.glob("*_seg.nii.gz"))}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    """Three phantom cines (two 4D NIfTI, one DICOM folder) and one truncated file."""
    root = tmp_path_factory.mktemp("cohort")
    write_study(small_cine(11), root / "a.nii.gz")
    write_study(small_cine(12), root / "b.nii.gz")
    write_dicom_cine(small_cine(13), root / "dicom" / "c")
    data = (root / "a.nii.gz").read_bytes()
    (root / "broken.nii.gz").write_bytes(data[: len(data) // 2])
    return root


def test_studies_are_found_in_files_dicom_roots_and_lists(cohort, tmp_path):
    jobs = find_studies([cohort / "a.nii.gz", cohort / "dicom", cohort / "broken.nii.gz"])
    assert [job.name for job in jobs] == ["a", "c", "broken"]
    assert jobs[1].inputs == (str((cohort / "dicom" / "c").resolve()),) and jobs[1].series_uid
    assert all(Path(p).is_absolute() for job in jobs for p in job.inputs)
    listing = tmp_path / "studies.txt"
    listing.write_text(f"# the cohort\n\n{cohort / 'b.nii.gz'}\n{cohort / 'a.nii.gz'}\n{cohort / 'a.nii.gz'}\n")
    assert [job.name for job in find_studies(read_list_file(listing))] == ["b", "a"]  # a study given twice: once
    with pytest.raises(CMRSegError, match="does not exist"):
        find_studies([cohort / "missing"])


def test_studies_of_one_name_get_names_no_other_study_has(cohort, tmp_path):
    data = (cohort / "a.nii.gz").read_bytes()
    paths = [tmp_path / "r1" / "exam.nii.gz", tmp_path / "r1" / "exam_2.nii.gz", tmp_path / "r2" / "exam.nii.gz",
             tmp_path / "r3" / "Exam.nii.gz"]  # fmt: skip
    for path in paths:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
    # exam_2 is taken by a study of its own; Exam is exam on a case-insensitive filesystem
    assert [job.name for job in find_studies(paths)] == ["exam", "exam_2", "exam_3", "Exam_4"]


def test_inputs_are_recorded_without_links(cohort, tmp_path):
    """A study folder linked into a root is recorded by its real path, as measures.json records the input
    (a rerun took the linked path for another study's); given by both paths, it is one study."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "linked").symlink_to(cohort / "dicom" / "c")
    jobs = find_studies([root, cohort / "dicom" / "c"])
    assert [job.inputs for job in jobs] == [(str((cohort / "dicom" / "c").resolve()),)]


def test_an_output_folder_whose_table_is_not_a_cohort_table_is_refused(cohort, tmp_path):
    (tmp_path / COHORT_FILE).write_text("patient,age\np1,60\n")
    with pytest.raises(CMRSegError, match="is not a CMRSeg cohort table"):
        studies_of_other_batches(tmp_path, find_studies([cohort / "a.nii.gz"]))


def test_one_folder_with_two_cine_series_gives_two_studies(tmp_path):
    write_dicom_cine(small_cine(14), tmp_path / "exam", series_number=3)
    for path in write_dicom_cine(small_cine(15), tmp_path / "other", series_number=7):
        path.rename(tmp_path / "exam" / f"s7_{path.name}")  # a second cine series in the same folder
    (tmp_path / "other").rmdir()
    single = small_cine(16).single_frame(0)  # one phase: not a cine, skipped
    write_dicom_cine(single, tmp_path / "exam" / "scout", series_number=9)
    jobs = find_studies([tmp_path])
    assert sorted(job.name for job in jobs) == ["exam_s3", "exam_s7"]
    assert len({job.series_uid for job in jobs}) == 2


def test_a_cine_stored_as_one_series_per_slice_is_one_study(tmp_path, caplog):
    import pydicom

    from cmrseg.io.dicom_cine import read_dicom_cine

    study = small_cine(17)
    write_dicom_cine(study, tmp_path / "exam")
    for z, files in enumerate(zip(*read_dicom_cine(tmp_path / "exam").slice_files, strict=True)):
        for name in files:  # one series per slice position
            ds = pydicom.dcmread(tmp_path / "exam" / name)
            ds.SeriesInstanceUID, ds.SeriesNumber = f"1.2.826.0.1.3680043.8.498.{z + 1}", 20 + z
            ds.save_as(tmp_path / "exam" / name)
    (job,) = find_studies([tmp_path])
    assert job.name == "exam" and job.series_uid is None  # the reader's choice: the stack joined
    np.testing.assert_array_equal(read_dicom_cine(job.inputs[0]).image.shape, study.image.shape)
    # A larger cine below the same folder would be the reader's choice there: the joined stack is skipped,
    # with a warning, rather than a second job reading that other cine again.
    write_dicom_cine(make_phantom(seed=18, frames=5, slices=6, matrix=(120, 128)).study, tmp_path / "exam" / "other")
    with caplog.at_level(logging.WARNING, logger="cmrseg.cohort"):
        jobs = find_studies([tmp_path])
    assert [j.name for j in jobs] == ["exam_other"] and jobs[0].series_uid
    assert "joined from several series is read only where it is the largest cine" in caplog.text


@pytest.mark.shared_data
def test_an_acdc_root_gives_one_study_per_patient(acdc_root):
    jobs = find_studies([acdc_root])
    assert len(jobs) == 100 and jobs[0].name == "patient001" and jobs[-1].name == "patient100"


def test_a_batch_writes_what_segment_writes_records_failures_and_resumes(cohort, segmenter, tmp_path):
    jobs = find_studies([cohort / "a.nii.gz", cohort / "broken.nii.gz", cohort / "dicom", cohort / "b.nii.gz"])
    out = tmp_path / "batch"
    out.mkdir()
    rows = run_in_process(jobs, out, segmenter, BatchOptions())
    assert [(r["name"], r["status"]) for r in rows] == [("a", "done"), ("broken", "failed"), ("c", "done"),
                                                         ("b", "done")]  # fmt: skip
    assert "broken.nii.gz" in rows[1]["reason"]
    table = read_cohort(out)
    assert list(table[0]) == COLUMNS and [r["name"] for r in table] == ["a", "broken", "c", "b"]
    # Each study's outputs are exactly what `cmrseg segment` writes.
    for job in (jobs[0], jobs[2]):
        single = tmp_path / f"single-{job.name}"
        result = run_segment(list(job.inputs), single, segmenter, series_uid=job.series_uid)
        assert sorted(p.name for p in (out / job.name).iterdir()) == sorted(p.name for p in single.iterdir())
        batch_maps, single_maps = label_maps(out / job.name), label_maps(single)
        assert batch_maps.keys() == single_maps.keys() and batch_maps
        for name in batch_maps:
            np.testing.assert_array_equal(batch_maps[name], single_maps[name])
        measures = json.loads((out / job.name / "measures.json").read_text())
        assert measures["study"] == result.measures["study"]
        row = next(r for r in table if r["name"] == job.name)
        assert float(row["lv_ef_pct"]) == pytest.approx(measures["study"]["lv_ef_pct"])
        rates = measures.get("volume_curve_rates")  # cines segmented in every frame with trigger times
        assert row["lv_pfr_ml_s"] == ("" if rates is None else str(rates["lv_pfr_ml_s"]))
        assert row["qc_status"] == measures["qc"]["status"]
        flags = measures["reference"]["parameters"]
        for key in ("lv_ef_pct", "lv_edv_ml", "rv_edv_ml"):
            assert row[f"{key}_flag"] == (flags.get(key, {}).get("flag") or "")
    assert any(row["lv_ef_pct_flag"] for row in table)  # the DICOM study carries sex and age: flagged
    assert not (out / "broken").exists()  # a failed study leaves no folder behind

    # A rerun skips the finished studies (their files untouched), retries the failed one and redoes one whose
    # commit was killed half-way (its journal is rolled back). A folder with a file gone is left as it is.
    stamps = {name: {p: p.stat().st_mtime_ns for p in (out / name).iterdir()} for name in ("a", "c")}
    written = json.loads((out / "b" / MANIFEST_NAME).read_text())["files"]
    (out / "b" / JOURNAL_NAME).write_text(json.dumps({"scratch": ".cmrseg-run-killed", "old": [],
                                                      "new": [*written, MANIFEST_NAME]}))  # fmt: skip
    (out / "b" / "measures.json").unlink()  # the killed commit had not moved it in yet
    (out / "c" / "report.html").unlink()
    del stamps["c"][out / "c" / "report.html"]
    rows = run_in_process(jobs, out, segmenter, BatchOptions())
    assert {name: {p: p.stat().st_mtime_ns for p in (out / name).iterdir()} for name in ("a", "c")} == stamps
    assert [r["status"] for r in rows] == ["done", "failed", "failed", "done"]
    assert "files missing (report.html)" in rows[2]["reason"]
    assert (out / "b" / "measures.json").is_file() and not (out / "b" / JOURNAL_NAME).exists()
    # A result made with other settings is not reused, nor replaced.
    rows = run_in_process(jobs, out, segmenter, BatchOptions(basal_rule="50"))
    assert [r["status"] for r in rows] == ["failed"] * 4
    assert "other settings (basal_rule none, not 50)" in rows[0]["reason"]
    assert {p: p.stat().st_mtime_ns for p in (out / "a").iterdir()} == stamps["a"]


def test_the_command_skips_reports_on_request_and_refuses_bad_input(cohort, tmp_path, model_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "cmrseg", "batch", str(cohort / "a.nii.gz"), "--out", str(out),
               "--report", "none", "--model", str(model_path)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "[1/1] a: done" in done.stdout and "1 of 1 studies done" in done.stdout
    assert (out / "a" / "measures.json").is_file() and not (out / "a" / "report.html").exists()
    # A study that fails makes the exit status 1; the finished one is reused.
    with_broken = [*command[:5], str(cohort / "broken.nii.gz"), *command[5:]]
    failed = subprocess.run(with_broken, capture_output=True, text=True, timeout=300)
    assert failed.returncode == 1 and "1 of 2 studies done" in failed.stdout and "failed: broken" in failed.stdout
    # The table covers one cohort: a batch that leaves out studies the folder's table lists is refused.
    other = subprocess.run([*command[:4], str(cohort / "b.nii.gz"), *command[5:]], capture_output=True, text=True,
                           timeout=300)  # fmt: skip
    assert other.returncode == 2 and "lists 2 studies this batch does not name (a, broken)" in other.stderr
    assert not (out / "b").exists()
    with batch_lock(out):  # another batch is writing to the folder
        busy = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert busy.returncode == 2 and "Another cmrseg run is writing into" in busy.stderr
    refused = subprocess.run([sys.executable, "-m", "cmrseg", "batch", "--out", str(tmp_path / "x")],
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert refused.returncode == 2 and refused.stderr.startswith("cmrseg: error:") and "Traceback" not in refused.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    refused = subprocess.run([sys.executable, "-m", "cmrseg", "batch", str(empty), "--out", str(tmp_path / "y")],
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert refused.returncode == 2 and "No study found" in refused.stderr and not (tmp_path / "y").exists()


def test_the_cohort_row_names_the_values_the_quality_check_makes_unusable():
    import ring_hearts

    from cmrseg.labels import RV
    from cmrseg.measures import frame_measures, study_measures
    from cmrseg.qc import quality_check

    spacing = (3.0, 3.0, 10.0)
    ed = ring_hearts.ring_heart(9, 64, (32, 28), (32, 50), (9, 14, 9))
    es = ring_hearts.ring_heart(9, 64, (32, 28), (32, 50), (7, 14, 6))
    for frame in (ed, es):
        frame[3:][frame[3:] == RV] = 0  # the RV on 3 of the LV's 9 slices: missed at ED
    study = study_measures(frame_measures(ed, spacing), frame_measures(es, spacing)).as_dict()
    measures = {"study": study, "qc": quality_check({0: ed, 1: es}, 0, 1, study)}
    row = done_row(StudyJob("a", ("a.nii.gz",)), measures, 1.0)
    assert row["qc_status"] == "fail"
    assert row["qc_not_usable"] == "rv_edv_ml rv_sv_ml rv_ef_pct"  # (no indexed values: no height and weight)
    assert float(row["rv_ef_pct"]) == study["rv_ef_pct"]  # the value stays, for whoever corrects it
    row = done_row(StudyJob("b", ("b.nii.gz",)), {"study": study, "qc": {"status": "pass", "flags": []}}, 1.0)
    assert row["qc_not_usable"] == ""
