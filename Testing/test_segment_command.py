"""``cmrseg segment`` end to end: outputs on the input grid, accuracy on real frames, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from cmrseg.cli import main
from cmrseg.curves import peak_rates
from cmrseg.io.acdc import load_frame
from cmrseg.io.dicom_write import write_dicom_cine
from cmrseg.io.segmentation_file import read_seg_nrrd
from cmrseg.io.study import Study
from cmrseg.io.volume_files import read_volume_file, write_study
from cmrseg.labels import LV, MYO, RV
from cmrseg.metrics import dice


def run(*args: str) -> int:
    return main([str(a) for a in args])


@pytest.mark.shared_data
@pytest.mark.slow
def test_acdc_frames_give_one_label_map_per_input_on_its_grid(acdc_root, model_path, tmp_path, capsys):
    patient = acdc_root / "patient014"
    ed, es = load_frame(patient, "ED"), load_frame(patient, "ES")
    inputs = [patient / f"patient014_frame{f.frame_number:02d}.nii.gz" for f in (ed, es)]
    assert run("segment", *inputs, "--out", tmp_path, "--model", model_path) == 0
    printed = capsys.readouterr().out
    assert "LV EF" in printed and "ED frame 0, ES frame 1 (input or user)" in printed  # from Info.cfg
    for frame, path in zip((ed, es), inputs, strict=True):
        output = tmp_path / path.name.replace(".nii.gz", "_seg.nii.gz")
        image = sitk.ReadImage(str(output))
        labels = sitk.GetArrayFromImage(image)
        assert image.GetSpacing() == pytest.approx(frame.study.spacing)
        assert set(np.unique(labels)) <= {0, 1, 2, 3}
        for label, minimum in ((LV, 0.85), (MYO, 0.7), (RV, 0.7)):
            assert dice(labels == label, frame.mask == label) > minimum
    measures = json.loads((tmp_path / "measures.json").read_text())
    assert measures["study"]["lv_ef_pct"] > 0 and measures["study"]["bsa_m2"] > 1
    assert measures["arithmetic"] in ("cpu fp32", "cpu bf16")  # recorded: a cohort may mix machines
    report = (tmp_path / "report.html").read_text()
    assert report.count("<img") >= 2
    assert "0 / 1 of 2 (counted from 0 in input order" in report  # the two files given, in their order
    assert "(from the file header)" in report  # NIfTI: the slice spacing is the header's, not measured
    seg = read_seg_nrrd(tmp_path / "patient014_frame01_ED.seg.nrrd")
    # each phase's segmentation is named after its own frame's file
    assert read_seg_nrrd(tmp_path / f"patient014_frame{es.frame_number:02d}_ES.seg.nrrd").segments
    assert not (tmp_path / "patient014_frame01_ES.seg.nrrd").exists()
    assert [s.name for s in seg.segments] == ["RV blood pool", "LV myocardium", "LV blood pool"]


@pytest.mark.slow
def test_phantom_dicom_study_finds_ed_es_from_the_volume_curve(phantom, model_path, tmp_path, capsys):
    write_dicom_cine(phantom.study, tmp_path / "dicom")
    assert run("segment", tmp_path / "dicom", "--out", tmp_path / "out", "--model", model_path,
               "--basal-rule", "50") == 0
    measures = json.loads((tmp_path / "out" / "measures.json").read_text())
    assert measures["ed_es_from"] == "LV volume curve"
    frames = phantom.study.num_frames
    assert measures["ed_frame"] in {(phantom.study.ed_frame + d) % frames for d in (-1, 0, 1)}
    assert measures["es_frame"] in {phantom.study.es_frame + d for d in (-1, 0, 1)}
    assert len(measures["frames"]) == phantom.study.num_frames
    label_files = sorted((tmp_path / "out").glob("dicom_frame*_seg.nii.gz"))
    assert len(label_files) == phantom.study.num_frames
    written = read_volume_file(label_files[0])
    np.testing.assert_allclose(written.origin, phantom.study.origin, atol=1e-3)
    np.testing.assert_allclose(written.direction, phantom.study.direction, atol=1e-6)
    report = (tmp_path / "out" / "report.html").read_text()
    assert 'alt="volume curve"' in report and "LV rates come from the volume curve before the basal-slice rule" in (
        report)
    # the frames as measures.json indexes them, and how a viewer counting phases from 1 numbers them
    assert (f"{measures['ed_frame']} / {measures['es_frame']} of {frames} (counted from 0 in input order; "
            "numbered from 1, one higher") in report
    # Regional wall thickness: the 16 AHA segments, shown as bull's-eyes.
    regional = measures["regional_wall_thickness"]
    assert [row["segment"] for row in regional] == list(range(1, 17)) and regional[0]["name"] == "basal anterior"
    assert all(3.0 < row["ed_mm"] < 15.0 for row in regional), regional
    assert report.count("<svg") == 2 and "ED wall thickness" in report
    # Peak ejection and filling rates from the real trigger times, as the curve in measures.json gives them.
    # With a basal-slice rule, from the curve before it: decided in each frame, the rule put steps into the
    # curve, each read as a peak rate (3 times the true rates in the review's synthetic cine).
    times = [measures["frames"][str(i)]["time_ms"] for i in range(frames)]
    lv = [measures["frames"][str(i)]["lv_ml_before_basal_rule"] for i in range(frames)]
    assert all(measures["frames"][str(i)]["lv_ml"] <= lv[i] for i in range(frames))
    expected = peak_rates(times, lv, measures["ed_frame"], measures["es_frame"])
    rates = measures["volume_curve_rates"]
    assert (rates["lv_per_ml_s"], rates["lv_pfr_ml_s"]) == pytest.approx(expected) and min(expected) > 0
    truth = phantom.label_volumes_ml()["LV"]  # the analytic heart's curve: the same rates within 25 %
    true_rates = peak_rates(phantom.study.frame_times_ms, truth, phantom.study.ed_frame, phantom.study.es_frame)
    assert rates["lv_per_ml_s"] == pytest.approx(true_rates[0], rel=0.25)
    assert rates["lv_pfr_ml_s"] == pytest.approx(true_rates[1], rel=0.25)


def test_existing_outputs_are_not_overwritten(phantom, model_path, tmp_path, capsys):
    study = phantom.study.single_frame(0)
    write_study(study, tmp_path / "frame.nii.gz")
    assert run("segment", tmp_path / "frame.nii.gz", "--out", tmp_path / "out", "--model", model_path) == 0
    before = (tmp_path / "out" / "frame_seg.nii.gz").read_bytes()
    assert run("segment", tmp_path / "frame.nii.gz", "--out", tmp_path / "out", "--model", model_path) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "out" / "frame_seg.nii.gz").read_bytes() == before


def test_a_single_frame_report_shows_its_volumes(phantom, model_path, tmp_path, capsys):
    """The report's table holds study parameters (EDV, EF...), which one frame has not: its volumes and mass are
    listed under it, as the printout gives them, instead of a table of dashes only."""
    import json

    write_study(phantom.study.single_frame(0), tmp_path / "frame.nii.gz")
    assert run("segment", tmp_path / "frame.nii.gz", "--out", tmp_path / "out", "--model", model_path) == 0
    printed = capsys.readouterr().out
    frame = json.loads((tmp_path / "out" / "measures.json").read_text())["frames"]["0"]
    text = f"LV {frame['lv_ml']:.1f} ml, RV {frame['rv_ml']:.1f} ml, LV mass {frame['myo_mass_g']:.1f} g"
    assert f"frame 0: {text}" in printed
    assert f"<b>Frame 0 volumes</b>: {text}</li>" in (tmp_path / "out" / "report.html").read_text()


def test_a_single_frames_volumes_carry_the_marks_of_its_failing_check():
    from cmrseg.printout import frame_volume_texts

    frame = {"lv_ml": 120.04, "rv_ml": 30.0, "myo_mass_g": 95.55}
    qc = {"status": "fail", "flags": [{"code": "rv_coverage", "severity": "fail", "phase": None, "slice": None,
                                       "message": ""}]}
    texts = frame_volume_texts({"ed_frame": None, "frames": {"3": frame}, "qc": qc})
    assert texts == {"3": "LV 120.0 ml, RV 30.0 ml (NOT USABLE (quality check: rv_coverage)), LV mass 95.5 g"}


def test_a_folder_without_a_cine_is_a_clear_error_and_writes_nothing(model_path, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not an image")
    assert run("segment", tmp_path, "--out", tmp_path / "out", "--model", model_path) == 2
    assert "cmrseg: error:" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_an_image_without_a_heart_is_refused(model_path, tmp_path, capsys):
    rng = np.random.default_rng(0)
    empty = Study(image=rng.normal(100, 1, (1, 8, 128, 128)).astype(np.float32), spacing=(1.5, 1.5, 8))
    write_study(empty, tmp_path / "noise.nii.gz")
    assert run("segment", tmp_path / "noise.nii.gz", "--out", tmp_path / "out", "--model", model_path) == 2
    assert "No left ventricle" in capsys.readouterr().err
    assert not any((tmp_path / "out").glob("*"))


def test_incompatible_weights_are_a_clear_error(phantom, tmp_path, capsys):
    write_study(phantom.study.single_frame(0), tmp_path / "frame.nii.gz")
    bogus = tmp_path / "weights.pt"
    bogus.write_bytes(b"definitely not a checkpoint")
    assert run("segment", tmp_path / "frame.nii.gz", "--out", tmp_path / "out", "--model", bogus) == 2
    assert "not a CMRSeg model checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_study_with_a_missing_slice_is_refused(phantom, model_path, tmp_path, capsys):
    files = write_dicom_cine(phantom.study, tmp_path / "dicom")
    for path in files:
        if "_z004_" in path.name:
            path.unlink()
    assert run("segment", tmp_path / "dicom", "--out", tmp_path / "out", "--model", model_path) == 2
    assert "missing" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_only_one_of_ed_and_es_is_refused(phantom, model_path, tmp_path, capsys):
    write_study(phantom.study, tmp_path / "cine.nii.gz")
    assert run("segment", tmp_path / "cine.nii.gz", "--out", tmp_path / "out", "--ed", "0", "--model", model_path) == 2
    assert "both ED and ES" in capsys.readouterr().err
