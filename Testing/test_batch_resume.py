"""A resumed ``cmrseg batch`` reuses a result only for the same study in the same state: a cine added to a
folder does not shift the others' results onto it, a replaced input is not answered with its old numbers,
a damaged folder fails its study alone, and a model file replaced under running workers is not used as the old.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from concurrent.futures import Future

import torch
from dicom_edit import edit

from cmrseg.batch import BatchOptions, CohortProgress, _record_finished_writes, run_in_process
from cmrseg.cohort import done_row, earlier_names, find_studies
from cmrseg.io.dicom_write import write_dicom_cine
from cmrseg.io.volume_files import write_study
from cmrseg.outputs import MANIFEST_NAME
from cmrseg.phantom import make_phantom
from cmrseg.training.split import file_sha256


def small_cine(seed: int):
    return make_phantom(seed=seed, frames=3, slices=6, matrix=(120, 128)).study


def add_cine(folder, seed, series_uid):
    """A phantom cine into ``folder`` beside the others there, all of series number 1."""
    for path in write_dicom_cine(small_cine(seed), folder / f"new{seed}", series_number=1):
        edit(path, SeriesInstanceUID=series_uid)
        path.rename(folder / f"{seed}_{path.name}")
    (folder / f"new{seed}").rmdir()


def resume(paths, out, segmenter) -> list[dict]:
    """What ``cmrseg batch`` does with these inputs and output folder."""
    return run_in_process(find_studies(paths, earlier_names(out)), out, segmenter, BatchOptions(report="none"))


def results_by_folder(out) -> dict[str, str]:
    return {p.parent.name: json.loads(p.read_text())["series_uid"] for p in out.glob("*/measures.json")}


def test_a_cine_added_to_a_folder_leaves_each_result_with_its_own_series(segmenter, tmp_path):
    """Cines of one folder with the same series number are named by position; a cine added there (sorting
    first) shifted the names, and the rerun took one patient's result for another's and never segmented the
    new one."""
    flat, out = tmp_path / "flat", tmp_path / "out"
    flat.mkdir(), out.mkdir()
    add_cine(flat, 31, "1.2.826.0.1.3680043.8.498.5")
    add_cine(flat, 32, "1.2.826.0.1.3680043.8.498.6")
    first = resume([flat], out, segmenter)
    assert [r["status"] for r in first] == ["done", "done"]
    before = results_by_folder(out)
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/*")}
    add_cine(flat, 33, "1.2.826.0.1.3680043.8.498.1")  # sorts before the others
    rows = resume([flat], out, segmenter)
    assert [r["status"] for r in rows] == ["done"] * 3
    after = results_by_folder(out)
    assert {k: v for k, v in after.items() if k in before} == before  # each earlier folder keeps its series
    assert sorted(after.values()) == sorted([*before.values(), "1.2.826.0.1.3680043.8.498.1"])
    assert all(p.stat().st_mtime_ns == stamp for p, stamp in stamps.items())  # the earlier results untouched
    jobs = find_studies([flat], earlier_names(out))
    assert {job.name: job.series_uid for job in jobs} == after


def test_a_replaced_input_or_a_damaged_folder_fails_its_study_and_nothing_else(segmenter, tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir(), out.mkdir()
    write_study(small_cine(34), data / "a.nii.gz")
    write_study(small_cine(35), data / "b.nii.gz")
    assert [r["status"] for r in resume([data / "a.nii.gz", data / "b.nii.gz"], out, segmenter)] == ["done"] * 2
    assert [r["status"] for r in resume([data / "a.nii.gz", data / "b.nii.gz"], out, segmenter)] == ["done"] * 2
    shutil.copy(data / "b.nii.gz", data / "a.nii.gz")  # a re-export at the same path
    os.utime(data / "a.nii.gz", ns=(1, 1))  # a modification time of its own even on a coarse clock
    (out / "b" / MANIFEST_NAME).write_text("")  # a power loss left it empty
    a, b = resume([data / "a.nii.gz", data / "b.nii.gz"], out, segmenter)
    assert a["status"] == "failed" and "a file was replaced, added or removed since" in a["reason"]
    assert b["status"] == "failed" and "is damaged" in b["reason"]
    assert a.get("lv_ef_pct") is None  # the old numbers are not reported as this study's


def test_a_result_that_does_not_record_its_files_state_is_reused_with_a_warning(segmenter, tmp_path, caplog):
    """Results of the previous release (or of cmrseg segment) were all refused on resume, for a wrong reason."""
    out = tmp_path / "out"
    out.mkdir()
    study = tmp_path / "a.nii.gz"
    write_study(small_cine(41), study)
    assert [r["status"] for r in resume([study], out, segmenter)] == ["done"]
    measures = json.loads((out / "a" / "measures.json").read_text())
    del measures["input_state"]
    (out / "a" / "measures.json").write_text(json.dumps(measures))
    with caplog.at_level(logging.WARNING, logger="cmrseg.cohort"):
        (row,) = resume([study], out, segmenter)
    assert row["status"] == "done" and "reused without checking them" in caplog.text


def test_every_study_of_an_acdc_root_is_found_and_what_is_beside_them_is_named(tmp_path, caplog):
    root = tmp_path / "database"
    for part, patient in (("training", "patient001"), ("testing", "patient101")):
        (root / part / patient).mkdir(parents=True)
        (root / part / patient / "Info.cfg").write_text("ED: 1\nES: 2\n")
    write_study(small_cine(36), root / "extra.nii.gz")
    with caplog.at_level(logging.WARNING, logger="cmrseg.cohort"):
        jobs = find_studies([root])
    assert [job.name for job in jobs] == ["patient001", "patient101"]
    assert "extra.nii.gz in it is not searched" in caplog.text


def test_a_batch_waits_for_its_writes_rather_than_holding_every_study_in_memory(tmp_path):
    jobs = find_studies([_cine_file(tmp_path, seed) for seed in (37, 38, 39)])
    progress = CohortProgress(jobs, tmp_path, {})
    writes = [(job, Future()) for job in jobs]
    measures = {"qc": {"status": "pass"}}
    threading.Timer(0.3, lambda: writes[0][1].set_result(done_row(jobs[0], measures, 1.0))).start()
    pending = list(writes)
    _record_finished_writes(pending, progress, 2)  # three unfinished: waits for the oldest
    assert [job.name for job, _ in pending] == [jobs[1].name, jobs[2].name]
    assert [row["name"] for row in progress.ordered()] == [jobs[0].name]


def _cine_file(folder, seed):
    path = folder / f"s{seed}.nii.gz"
    write_study(small_cine(seed), path)
    return path


def test_a_worker_loads_a_model_file_replaced_during_a_batch_again(model_path, tmp_path):
    from cmrseg.cluster import _segmenter, segment_task

    model = tmp_path / "model.pt"
    shutil.copy(model_path, model)
    loaded = _segmenter(str(model), "cpu")
    checkpoint = torch.load(model, map_location="cpu", weights_only=False)
    torch.save({**checkpoint, "retrained": True}, model)  # another file at the same path
    replaced = _segmenter(str(model), "cpu", file_sha256(model))
    assert loaded.model_sha256 == file_sha256(model_path) != replaced.model_sha256 == file_sha256(model)
    job = find_studies([_cine_file(tmp_path, 40)])[0]
    row = segment_task(job.as_dict(), str(tmp_path / "out"), BatchOptions().as_dict(), str(model), "cpu",
                       file_sha256(model_path))  # the batch started with the file as it was
    assert row["status"] == "failed" and "was replaced after the batch started" in row["reason"]
    assert not (tmp_path / "out").exists()
