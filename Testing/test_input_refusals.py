"""Hostile and careless inputs: each is refused with one ``cmrseg: error:`` line, exit 2, nothing written.

Inputs are derived inside the tests from the shared ACDC data or from the synthetic phantom. DICOM inputs are in
``test_input_refusals_dicom.py``, NIfTI / NRRD / MetaImage files in ``test_input_refusals_volume_files.py``.
"""

from __future__ import annotations

import shutil
import struct
import time

import numpy as np
import pytest
from refusals import ACDC_ED, cine_copy, refused, segment_refused

from cmrseg.cli import main
from cmrseg.errors import CMRSegError
from cmrseg.io.acdc import load_frame
from cmrseg.io.load import load_study
from cmrseg.io.volume_files import write_study
from cmrseg.validate import InputWarning

# ------------------------------------------------------------------------------------------ voxel values



@pytest.mark.parametrize("suffix", [".nrrd", ".nii.gz"])  # ITK reads a NIfTI NaN as 0: found in the raw data
def test_a_single_nan_voxel_is_repaired_and_reported(oblique_phantom, tmp_path, suffix):
    study = cine_copy(oblique_phantom)
    study.image[1, 4, 50, 60] = np.nan
    path = write_study(study, tmp_path / f"cine{suffix}")
    with pytest.warns(InputWarning, match="1 non-finite voxel"):
        read = load_study(path)
    assert np.isfinite(read.image).all()
    clean = oblique_phantom.study.image
    mask = np.ones(clean.shape, bool)
    mask[1, 4, 50, 60] = False
    np.testing.assert_array_equal(read.image[mask], clean[mask])  # nothing else changed


@pytest.mark.parametrize("step_ms", [1000.0, 600.0])
def test_a_time_step_no_cine_has_leaves_the_frame_times_unknown(oblique_phantom, tmp_path, step_ms):
    """A 4D NIfTI whose time step was left at 1 s gave an 8 s heartbeat and filling rates 8 times too low."""
    study = cine_copy(oblique_phantom)
    study.frame_times_ms = np.arange(study.num_frames) * step_ms
    path = write_study(study, tmp_path / "cine.nii.gz")
    with pytest.warns(InputWarning, match=f"frames {step_ms:g} ms apart .* taken as unknown"):
        read = load_study(path)
    assert not read.frame_times_known
    study.frame_times_ms = np.arange(study.num_frames) * 40.0  # a cine's timing is kept
    read = load_study(write_study(study, tmp_path / "fast.nii.gz"))
    assert read.frame_times_known and read.frame_times_ms[1] == pytest.approx(40.0)


@pytest.mark.parametrize(("unit_code", "step", "expected_ms"), [
    (16, 40.0, 40.0),  # ms
    (24, 40000.0, 40.0),  # microseconds
    (8, 0.04, 40.0),  # seconds
    (8, 40.0, 40.0),  # ms under the unit "seconds", as ITK writes them
    (8, 0.003349, None),  # a repetition time (3.3 ms) stored as the time step: no cine's frames
])
def test_the_nifti_time_step_is_read_in_its_own_unit(oblique_phantom, tmp_path, unit_code, step, expected_ms):
    """The step is the header's, in the header's unit: ITK's time spacing is already in seconds, and converting
    it again made a 40 ms step 0.04 ms (peak filling rates 1000 times too high)."""

    study = cine_copy(oblique_phantom)
    path = write_study(study, tmp_path / "cine.nii")
    header = bytearray(path.read_bytes())
    header[123] = (header[123] & 0x07) | unit_code  # xyzt_units: keep the space unit, set the time unit
    struct.pack_into("<f", header, 76 + 4 * 4, step)  # pixdim[4], the time step
    path.write_bytes(bytes(header))
    if expected_ms is None:
        with pytest.warns(InputWarning, match="ms apart .* repetition time .* taken as unknown"):
            read = load_study(path)
        assert not read.frame_times_known
        return
    read = load_study(path)
    np.testing.assert_allclose(np.diff(read.frame_times_ms), expected_ms, rtol=1e-6)


@pytest.mark.parametrize("value", [np.nan, 0.0])
def test_a_nan_or_blank_slice_is_refused_naming_it(oblique_phantom, tmp_path, capsys, value):
    study = cine_copy(oblique_phantom)
    study.image[2, 4] = value
    path = write_study(study, tmp_path / "cine.nii.gz")
    message = segment_refused(capsys, tmp_path, path)
    assert "frame 2, slice 4" in message


def test_a_patient_folder_without_the_experts_masks_is_read(acdc_root, tmp_path):
    """Info.cfg and the frames are a patient folder; the masks are the expert's, which a new patient has not."""
    source = acdc_root / "patient001"
    folder = tmp_path / "patient001"
    folder.mkdir()
    for path in source.iterdir():
        if not path.name.endswith(("_gt.nii.gz", "_4d.nii.gz")):
            shutil.copy(path, folder / path.name)
    study = load_study(folder)
    for index, phase in enumerate(("ED", "ES")):
        np.testing.assert_array_equal(study.image[index], load_frame(source, phase).image)


def test_a_label_map_given_as_the_image_is_refused(acdc_root, tmp_path, capsys):
    message = segment_refused(capsys, tmp_path, acdc_root / "patient001/patient001_frame01_gt.nii.gz")
    assert "label map" in message
    # ... also as a later frame, beside the image (frames given as files): the EF came from a label map
    patient = acdc_root / "patient001"
    message = segment_refused(capsys, tmp_path, patient / "patient001_frame01.nii.gz",
                              patient / "patient001_frame12_gt.nii.gz")  # fmt: skip
    assert message.startswith(f"cmrseg: error: {patient / 'patient001_frame12_gt.nii.gz'} holds only 4 distinct")


# ------------------------------------------------------------------------------------------ files and options


def test_overwrite_never_replaces_a_file_the_user_made(oblique_phantom, tmp_path, capsys):
    """Refused before any work, and the user's file is as it was, read-only or not."""
    path = write_study(oblique_phantom.study, tmp_path / "cine.nii.gz")
    out = tmp_path / "out"
    out.mkdir()
    (out / "measures.csv").write_text("my own measurements\n")
    code = main(["segment", str(path), "--out", str(out), "--overwrite"])
    err = capsys.readouterr().err
    assert code == 2 and "holds measures.csv, which no CMRSeg run wrote there" in err.splitlines()[-1]
    assert "Segmenting" not in err  # refused before the network ran
    assert sorted(p.name for p in out.iterdir()) == ["measures.csv"]
    assert (out / "measures.csv").read_text() == "my own measurements\n"


def test_a_malformed_info_cfg_is_refused(acdc_root, tmp_path, capsys):
    patient = tmp_path / "patient001"
    shutil.copytree(acdc_root / "patient001", patient)
    (patient / "Info.cfg").write_text("ED: one\nES: 12\n")
    assert "1-based frame number" in segment_refused(capsys, tmp_path, patient)
    (patient / "Info.cfg").write_text("ED: 1\nES: 12\nHeight: tall\n")
    assert "Height" in segment_refused(capsys, tmp_path, patient)
    (patient / "Info.cfg").write_text("ED: 1\nES: 1\n")  # was found only after the work, at the files' names
    assert "names frame 1 as both ED and ES" in segment_refused(capsys, tmp_path, patient)


def test_two_folders_are_refused_as_such(acdc_root, tmp_path, capsys):
    message = segment_refused(capsys, tmp_path, acdc_root / "patient001", acdc_root / "patient002")
    assert "give one DICOM or ACDC folder at a time" in message


def test_frames_as_files_of_one_name_are_refused_before_any_work(acdc_root, tmp_path, capsys):
    for folder, frame in (("a", "01"), ("b", "12")):
        (tmp_path / folder).mkdir()
        shutil.copy(acdc_root / f"patient001/patient001_frame{frame}.nii.gz", tmp_path / folder / "frame.nii.gz")
    message = segment_refused(capsys, tmp_path, tmp_path / "a" / "frame.nii.gz", tmp_path / "b" / "frame.nii.gz")
    assert "would write the same frame_seg.nii.gz" in message


def test_dicom_seg_and_sr_of_one_frame_are_refused_before_any_work(tmp_path, capsys):
    message = segment_refused(capsys, tmp_path, tmp_path, extra=("--ed", "0", "--es", "0", "--dicom-sr"))
    assert "hold an ED and an ES frame: give two different frames" in message


@pytest.mark.parametrize("argv", [["segment", "x"], ["segment", "x", "--out", "y", "--basal-rule", "75"], ["bogus"],
                                  ["review", "x", "--port", "99999"], ["benchmark", "--repeats", "0"],
                                  ["phantom", "--out", "y", "--seed", "-1"]])
def test_a_command_line_mistake_is_one_error_line(capsys, argv):
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and err.startswith("cmrseg: error: ") and err.count("\n") == 1, err


def test_acdc_frames_or_masks_off_each_others_grid_are_refused(acdc_root, tmp_path, capsys):
    sitk = pytest.importorskip("SimpleITK")
    patient = tmp_path / "patient002"
    shutil.copytree(acdc_root / "patient002", patient)

    def moved(name: str, **change) -> None:  # the same voxels, placed elsewhere
        image = sitk.ReadImage(str(patient / name))
        if "origin" in change:
            image.SetOrigin(tuple(o + d for o, d in zip(image.GetOrigin(), change["origin"], strict=True)))
        if "spacing" in change:
            image.SetSpacing(change["spacing"])
        sitk.WriteImage(image, str(patient / name))

    for name in ("patient002_frame12.nii.gz", "patient002_frame12_gt.nii.gz"):
        moved(name, origin=(0.0, 0.0, 10.0))  # ES, with its mask, one slice off ED
    assert "are not on one grid" in segment_refused(capsys, tmp_path, patient)
    moved("patient002_frame12_gt.nii.gz", origin=(0.0, 0.0, -10.0))  # the mask back, its image still off
    with pytest.raises(CMRSegError, match="patient002_frame12_gt.nii.gz does not match its image's grid"):
        load_frame(patient, "ES")  # where the expert's mask is read (evaluation); segmenting reads none
    moved("patient002_frame01_gt.nii.gz", spacing=(1.0, 1.0, 10.0))
    with pytest.raises(CMRSegError, match="does not match its image's grid"):
        load_frame(patient, "ED")


def test_the_same_file_twice_is_refused(acdc_root, tmp_path, capsys):
    image = acdc_root / ACDC_ED
    message = segment_refused(capsys, tmp_path, image, image)
    assert "given twice" in message and ".cmrseg" not in message


@pytest.mark.parametrize("ed, es", [("25", "1"), ("1", "2")])
def test_an_ed_or_es_frame_beyond_the_study_is_refused(acdc_root, tmp_path, capsys, ed, es):
    """patient001 as a study of its ED and ES frames: frames 0 and 1."""
    message = segment_refused(capsys, tmp_path, acdc_root / "patient001", extra=("--ed", ed, "--es", es))
    frame = "ED frame 25" if ed == "25" else "ES frame 2"
    assert f"The {frame} is outside the study's 2 frames (0 to 1)" in message


@pytest.mark.parametrize("option, value, expected", [
    ("--height", "1.75", "looks like metres: give 175"), ("--height", "nan", "plausible height"),
    ("--height", "0", "plausible height"), ("--weight", "80000", "looks like grams"), ("--weight", "-3", "weight"),
])
def test_implausible_height_or_weight_is_refused(acdc_root, tmp_path, capsys, option, value, expected):
    assert expected in segment_refused(capsys, tmp_path, acdc_root / "patient001", extra=(option, value))


def test_output_locations_that_cannot_work_are_refused_before_any_work(acdc_root, tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("mine")
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    cases = [(a_file, "existing file"), (dangling, "does not exist"), (tmp_path / "no" / "parent", "parent folder"),
             ("/proc/cmrseg-out", "cannot write")]
    for out, expected in cases:
        message = refused(capsys, "segment", acdc_root / "patient001", "--out", out)
        assert expected in message
    assert a_file.read_text() == "mine"


def test_a_checkpoint_declaring_a_huge_network_is_refused_without_allocating(tmp_path, capsys):
    import torch

    metadata = {"format": "cmrseg-checkpoint", "version": 1,
                "architecture": {"name": "dense_unet", "args": {"base_filters": 4096, "depth": 5}}}
    import json

    torch.save({"format": "cmrseg-checkpoint", "version": 1, "metadata": json.dumps(metadata),
                "state_dict": {"w": torch.zeros(1)}}, tmp_path / "huge.pt")
    started = time.perf_counter()
    message = refused(capsys, "benchmark", "--models", tmp_path / "huge.pt")
    assert "parameters" in message or "do not fit" in message
    assert time.perf_counter() - started < 30


def test_benchmark_with_a_bad_model_file_is_one_error_line(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    assert "not a CMRSeg model checkpoint" in refused(capsys, "benchmark", "--models", bad)


def test_warnings_are_one_line_without_source(oblique_phantom, tmp_path):
    import subprocess
    import sys

    study = cine_copy(oblique_phantom)
    study.image[1, 4, 50, 60] = np.inf
    path = write_study(study, tmp_path / "cine.nrrd")
    done = subprocess.run([sys.executable, "-m", "cmrseg", "info", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    err = [line for line in done.stderr.splitlines() if not line.startswith("PROGRESS")]
    assert len(err) == 1 and err[0].startswith("cmrseg: warning: ") and "non-finite voxel" in err[0], err


@pytest.mark.slow
def test_a_single_nan_voxel_gives_the_clean_result(oblique_phantom, model_path, tmp_path):
    import json

    study = cine_copy(oblique_phantom)
    clean = write_study(study, tmp_path / "clean.nrrd")
    study.image[1, 4, 50, 60] = np.nan
    damaged = write_study(study, tmp_path / "damaged.nrrd")
    results = []
    for path in (clean, damaged):
        assert main(["segment", str(path), "--out", str(tmp_path / path.stem), "--model", str(model_path)]) == 0
        results.append(json.loads((tmp_path / path.stem / "measures.json").read_text())["study"])
    for key in ("lv_edv_ml", "lv_esv_ml", "lv_ef_pct", "rv_ef_pct"):
        assert results[1][key] == pytest.approx(results[0][key], abs=0.5)


def test_ed_equal_to_es_says_that_sv_and_ef_are_not_computed(acdc_root, model_path, tmp_path, capsys):
    assert main(["segment", str(acdc_root / "patient001"), "--ed", "0", "--es", "0", "--out",
                 str(tmp_path / "out"), "--model", str(model_path)]) == 0
    assert "stroke volume and EF are not" in capsys.readouterr().err
