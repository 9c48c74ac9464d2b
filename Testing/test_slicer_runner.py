"""The module's runner: ``cmrseg segment`` command lines, progress parsing, a real background run, in-process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cmrseg import labels
from cmrseg.errors import CMRSegError
from cmrseg.io.volume_files import read_volume_file
from CMRSegModuleLib.Runner import (
    MODULE_DIR,
    OutputParser,
    Progress,
    RunSettings,
    SegmentJob,
    buildCommand,
    parseErrorLine,
    parseProgressLine,
    patientWithSettings,
    prepareJob,
    processEnvironment,
    readResults,
    runInProcess,
)


def run_job(job: SegmentJob) -> tuple[int, OutputParser, list[Progress]]:
    """Run a job's command as the widget does (merged output read as it comes, stdin kept open), without Qt."""
    parser, events = OutputParser(), []
    with subprocess.Popen(buildCommand(job, sys.executable), env=processEnvironment(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, stdin=subprocess.PIPE, cwd=job.workDir) as process:
        for chunk in iter(lambda: process.stdout.read1(256), b""):
            events += parser.feed(chunk.decode("utf-8", "replace"))
        code = process.wait(timeout=600)
    events += parser.finish()
    return code, parser, events


# ------------------------------------------------------------------------------------------ no model needed


def test_command_line_for_chosen_frames_model_and_patient(oblique_phantom, tmp_path):
    settings = RunSettings(edFrame=0, esFrame=2, device="cpu", modelPath=str(tmp_path / "m.pt"), basalRule="50",
                           heightCm=172.5, weightKg=68.0, sex="F", ageYears=58.0)
    (tmp_path / "m.pt").write_bytes(b"")
    job = prepareJob(oblique_phantom.study, settings, workDir=tmp_path)
    command = buildCommand(job, "/opt/python")
    assert command[:5] == ["/opt/python", "-m", "cmrseg", "segment", str(job.inputPath)]
    assert command[command.index("--out") + 1] == str(job.outDir)
    assert command[command.index("--device") + 1] == "cpu"
    assert command[command.index("--basal-rule") + 1] == "50"
    assert command[command.index("--model") + 1] == str(tmp_path / "m.pt")
    assert command[command.index("--ed") + 1] == "0" and command[command.index("--es") + 1] == "2"
    assert command[command.index("--height") + 1] == "172.5" and command[command.index("--weight") + 1] == "68"
    assert command[command.index("--sex") + 1] == "F" and command[command.index("--age") + 1] == "58"
    job.cleanup()
    assert not job.workDir.exists()


def test_automatic_frames_and_shipped_model_add_no_options(oblique_phantom, tmp_path):
    job = prepareJob(oblique_phantom.study, RunSettings(), workDir=tmp_path)
    command = buildCommand(job)
    for option in ("--ed", "--es", "--model", "--height", "--weight", "--sex", "--age"):
        assert option not in command
    assert command[0] == sys.executable or command[0].endswith("PythonSlicer")


def test_the_study_is_written_as_a_4d_nrrd_the_command_reads_back(oblique_phantom, tmp_path):
    study = oblique_phantom.study
    job = prepareJob(study, RunSettings(), workDir=tmp_path)
    assert job.inputPath.name == "cine.nrrd" and job.workDir.parent == tmp_path
    back = read_volume_file(job.inputPath)
    np.testing.assert_array_equal(back.image, study.image)
    np.testing.assert_allclose(back.spacing, study.spacing)
    np.testing.assert_allclose(back.origin, study.origin, atol=1e-6)
    np.testing.assert_allclose(back.direction, study.direction, atol=1e-9)
    assert job.frameFiles == [f"cine_frame{i:02d}_seg.nii.gz" for i in range(study.num_frames)]


def test_one_volume_is_written_as_3d_and_its_frames_are_ignored(oblique_phantom, tmp_path):
    job = prepareJob(oblique_phantom.study.single_frame(1), RunSettings(edFrame=0, esFrame=1), workDir=tmp_path)
    assert job.settings.edFrame is None and job.frameFiles == ["cine_seg.nii.gz"]
    assert read_volume_file(job.inputPath).num_frames == 1


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (RunSettings(edFrame=1), "both ED and ES"),
        (RunSettings(edFrame=1, esFrame=9), "outside"),
        (RunSettings(edFrame=2, esFrame=2), "different frames"),
        (RunSettings(device="tpu"), "Unknown device"),
        (RunSettings(basalRule="75"), "basal-slice rule"),
        (RunSettings(modelPath="/nonexistent/model.pt"), "not found"),
        (RunSettings(heightCm=1.75, weightKg=80.0), "not a plausible height in cm"),  # metres
        (RunSettings(sex="X"), "is not a sex"),
    ],
)
def test_settings_are_checked_before_anything_is_written(oblique_phantom, tmp_path, settings, message):
    with pytest.raises(CMRSegError, match=message):
        prepareJob(oblique_phantom.study, settings, workDir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_environment_makes_cmrseg_importable_from_the_module_folder():
    environment = processEnvironment({"PYTHONPATH": "/elsewhere", "PATH": "/bin"})
    assert environment["PYTHONPATH"].split(":")[:2] == [str(MODULE_DIR), "/elsewhere"]
    assert environment["PYTHONUNBUFFERED"] == "1" and environment["PATH"] == "/bin"
    assert (MODULE_DIR / "cmrseg" / "__init__.py").is_file()


def test_progress_and_error_lines_are_parsed_across_split_chunks():
    assert parseProgressLine("PROGRESS 3/20 Segmenting frames") == Progress(3, 20, "Segmenting frames")
    assert parseProgressLine("INFO: something") is None
    assert Progress(1, 4, "x").percent == 25 and Progress(0, 0, "x").percent == 0
    assert parseErrorLine("cmrseg: error: Model file x not found.") == "Model file x not found."
    parser = OutputParser()
    assert parser.feed("PROGRESS 0/2 Segm") == []
    assert parser.feed("enting frames\r\nINFO: hello\nPROGRESS 2/2 Segmenting frames\n") == [
        Progress(0, 2, "Segmenting frames"), Progress(2, 2, "Segmenting frames")]
    assert parser.feed("cmrseg: error: bad input") == []
    parser.finish()
    assert parser.errorMessage == "bad input" and parser.failureMessage(2) == "bad input"
    assert parser.lastProgress == Progress(2, 2, "Segmenting frames")
    other = OutputParser()
    other.feed("Traceback (most recent call last):\nRuntimeError: boom\n")
    assert "exit code 1" in other.failureMessage(1) and "RuntimeError: boom" in other.failureMessage(1)


def test_a_failing_background_run_gives_a_clear_error(tmp_path):
    work = tmp_path / "job"
    work.mkdir()
    (work / "cine.nrrd").write_text("not an image")
    job = SegmentJob(work, work / "cine.nrrd", work / "out", RunSettings(modelPath=str(tmp_path / "missing.pt")))
    code, parser, events = run_job(job)
    assert code == 2
    assert parser.errorMessage.startswith("Model file") and "missing.pt" in parser.errorMessage
    assert "Traceback" not in "\n".join(parser.lines)
    with pytest.raises(CMRSegError, match="no results"):
        readResults(job)


# ------------------------------------------------------------------------------------- with a model checkpoint


def test_a_corrupt_input_gives_a_clear_error(model_path, tmp_path):
    work = tmp_path / "job"
    work.mkdir()
    (work / "cine.nrrd").write_text("NRRD0004\nthis is not a real header\n")
    job = SegmentJob(work, work / "cine.nrrd", work / "out", RunSettings(modelPath=str(model_path)))
    code, parser, _ = run_job(job)
    assert code == 2 and "Cannot read" in parser.errorMessage


@pytest.mark.slow
def test_background_run_on_a_phantom_matches_the_in_process_run(oblique_phantom, model_path,
                                                                segmenter, tmp_path):
    study = oblique_phantom.study
    settings = RunSettings(device="cpu", modelPath=str(model_path))
    job = prepareJob(study, settings, workDir=tmp_path)
    code, parser, events = run_job(job)
    assert code == 0, parser.failureMessage(code)
    assert events and events[-1] == Progress(study.num_frames, study.num_frames, "Segmenting frames")
    result = readResults(job)
    assert result.edEsFrom == "LV volume curve" and result.basalRule == "none"
    assert result.edFrame != result.esFrame and set(result.labels) == {result.edFrame, result.esFrame}
    assert Path(model_path).name in result.model
    for array in result.labels.values():
        assert array.shape == study.image.shape[1:] and array.dtype == np.uint8
        assert set(np.unique(array)) <= {0, 1, 2, 3}
    assert result.measures["lv_edv_ml"] >= result.measures["lv_esv_ml"]
    # every frame's LV volume, for the quality check's curve (as the command judged it)
    assert sorted(result.lvCurve) == list(range(study.num_frames))
    # The in-process path (same core steps, no files) gives the same frames and label maps.
    local = runInProcess(study, settings, segmenter)
    assert (local.edFrame, local.esFrame) == (result.edFrame, result.esFrame)
    assert sorted(local.lvCurve) == sorted(result.lvCurve)
    for frame, array in result.labels.items():
        assert np.mean(local.labels[frame] == array) > 0.999
    assert local.measures["lv_edv_ml"] == pytest.approx(result.measures["lv_edv_ml"], rel=0.01)


def test_in_process_run_with_chosen_frames_and_basal_rule(oblique_phantom, segmenter):
    study = oblique_phantom.study
    result = runInProcess(study, RunSettings(edFrame=0, esFrame=2, basalRule="100"), segmenter)
    assert (result.edFrame, result.esFrame, result.edEsFrom) == (0, 2, "input or user")
    assert sorted(result.labels) == [0, 2] and result.basalRule == "100"
    lv_ml = float((result.labels[0] == labels.LV).sum()) * study.voxel_volume_ml
    assert result.measures["lv_edv_ml"] == pytest.approx(lv_ml)
    single = runInProcess(study.single_frame(0), RunSettings(), segmenter)
    assert single.singleFrame and list(single.labels) == [0] and single.measures is None


@pytest.mark.shared_data
def test_the_in_process_run_checks_the_study_as_the_command_does(acdc_root, segmenter):
    """A cine with its slice and time axes swapped (ACDC patient090) is refused in process too, with the
    command's message, before any model is loaded; a broken voxel is repaired in the run's copy only."""
    from dataclasses import replace

    from cmrseg.io.load import load_study

    study = load_study([acdc_root / "patient090" / "patient090_4d.nii.gz"])
    swapped = replace(study, image=np.ascontiguousarray(np.swapaxes(study.image, 0, 1)), frame_times_ms=None)
    with pytest.raises(CMRSegError, match="the slice and time axes look swapped"):
        runInProcess(swapped, RunSettings())
    broken = study.single_frame(0)
    broken.image[0, 0, 0, 0] = np.nan
    result = runInProcess(broken, RunSettings(), segmenter)
    assert result.singleFrame and (result.labels[0] == labels.LV).any()
    assert np.isnan(broken.image[0, 0, 0, 0])  # the caller's study as it was


def test_the_patient_is_what_the_user_left_in_the_fields():
    """The module's fields start from the study's values: "Unknown" sex or an emptied height means none (the
    study's male ranges and DICOM height stayed in use before). Elsewhere entered values add to the study's."""
    from cmrseg.io.study import PatientInfo

    study = PatientInfo(height_cm=180.0, weight_kg=80.0, sex="M", age_years=60.0)
    cleared = patientWithSettings(study, RunSettings(weightKg=85.0, ageYears=61.0, patientAsEntered=True))
    assert (cleared.height_cm, cleared.weight_kg, cleared.sex, cleared.age_years) == (None, 85.0, None, 61.0)
    added = patientWithSettings(study, RunSettings(weightKg=85.0))
    assert (added.height_cm, added.weight_kg, added.sex, added.age_years) == (180.0, 85.0, "M", 60.0)
    assert (study.height_cm, study.sex) == (180.0, "M")  # the study's own record is not changed
    # A height entered in inches beside the study's weight: a body-mass index no patient has, refused.
    with pytest.raises(CMRSegError, match="height given, with the weight read from the input.*163"):
        patientWithSettings(study, RunSettings(heightCm=70.0))
