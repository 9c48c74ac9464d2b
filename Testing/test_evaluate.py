"""``cmrseg evaluate``: the paper's table layouts with known answers, and a real run on ACDC patients."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cmrseg.cli import main
from cmrseg.evaluate import distance_cell, table1, table1_markdown
from cmrseg.io.study import Study
from cmrseg.io.volume_files import write_frame
from cmrseg.labels import LV
from cmrseg.outputs import json_safe
from cmrseg.training.split import read_split


def write_cases(phantom, folder, frames_by_phase, change=None):
    study: Study = phantom.study
    for phase, frames in frames_by_phase.items():
        for case, frame in enumerate(frames):
            labels = phantom.labels[frame].copy()
            if change is not None:
                labels = change(labels)
            write_frame(labels, study, folder / f"case{case}_{phase}.nii.gz")


def remove_lv_voxels(labels: np.ndarray, count: int = 500) -> np.ndarray:
    indices = np.flatnonzero(labels == LV)[:count]
    labels.flat[indices] = 0
    return labels


def test_folder_evaluation_has_known_answers(phantom, tmp_path, capsys):
    frames = {"ED": [0, 1, 19], "ES": [6, 7, 8]}
    write_cases(phantom, tmp_path / "ref", frames)
    write_cases(phantom, tmp_path / "pred", frames)  # identical to the reference
    write_cases(phantom, tmp_path / "corr", frames, remove_lv_voxels)
    code = main(["evaluate", "--ref", str(tmp_path / "ref"), "--pred", str(tmp_path / "pred"),
                 "--corrected", str(tmp_path / "corr"), "--out", str(tmp_path / "eval")])
    assert code == 0
    results = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    for row in results["table1"]:
        if row["method"] == "FCN":
            assert row["dice_mean"] == 1.0 and row["hd_median_mm"] == 0.0 and row["sensitivity_mean"] == 1.0
    lv_rows = [r for r in results["table1"] if r["method"] == "FCN+corr" and r["structure"] == "LV"]
    assert all(r["dice_mean"] < 1.0 for r in lv_rows)
    voxel_ml = phantom.study.voxel_volume_ml
    for row in results["table3"]:
        if row["method"] == "FCN":
            assert row["bias"] == pytest.approx(0.0) and row["sd"] == pytest.approx(0.0)
        elif row["parameter"] in ("LV EDV", "LV ESV") and row["criterion"] == "50":
            # Exactly 500 LV voxels fewer in every case (no basal slice is affected at >= 50 %).
            assert row["bias"] == pytest.approx(-500 * voxel_ml, rel=1e-6)
    assert {r["parameter"] for r in results["table3"]} == {
        "LV EDV", "LV ESV", "RV EDV", "RV ESV", "Myo mass ED", "Myo mass ES"}
    assert (tmp_path / "eval" / "table1.md").read_text().startswith("| method | basal rule |")
    assert len(list((tmp_path / "eval" / "plots").glob("*.png"))) == 2 * 2 * 6
    assert "FCN+corr" in capsys.readouterr().out


def test_progress_counts_every_case_and_a_case_of_no_phase_is_named_where_table_3_leaves_it_out(phantom, tmp_path,
                                                                                                 capsys):
    frames = {"ED": [0, 1, 19], "ES": [6, 7, 8], "mid": [3]}
    write_cases(phantom, tmp_path / "ref", frames)
    write_cases(phantom, tmp_path / "pred", frames)
    assert main(["evaluate", "--ref", str(tmp_path / "ref"), "--pred", str(tmp_path / "pred"),
                 "--out", str(tmp_path / "eval")]) == 0
    printed = capsys.readouterr()
    assert "PROGRESS 0/7" in printed.out + printed.err and "PROGRESS 7/7" in printed.out + printed.err
    assert "1 cases (case0_mid) are in Table 1 but not in Table 3" in printed.err
    results = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert {r["n"] for r in results["table3"]} == {3}
    assert next(r for r in results["table1"] if r["phase"] == "ED+ES")["n"] == 7


def test_an_evaluation_writes_only_into_an_empty_folder_or_an_earlier_evaluations(phantom, tmp_path, capsys):
    frames = {"ED": [0, 1, 19], "ES": [6, 7, 8]}
    for folder in ("ref", "pred", "corr"):
        write_cases(phantom, tmp_path / folder, frames)
    out = tmp_path / "eval"
    out.mkdir()
    (out / "table1.md").write_text("my notes")  # a user's file of an evaluation's name: it was replaced
    args = ["evaluate", "--ref", str(tmp_path / "ref"), "--pred", str(tmp_path / "pred"), "--out", str(out)]
    assert main(args) == 2 and "holds table1.md, and no earlier evaluation" in capsys.readouterr().err
    assert (out / "table1.md").read_text() == "my notes"
    (out / "table1.md").unlink()
    assert main([*args, "--corrected", str(tmp_path / "corr")]) == 0
    assert any("FCNpluscorr" in p.name for p in (out / "plots").glob("*.png"))
    (out / "review.md").write_text("an earlier model evaluation's review score")
    (out / ".DS_Store").write_text("a file browser's")  # hidden: not in the way
    assert main(args) == 0  # written again, without the earlier run's plots of a method it no longer has
    assert not any("FCNpluscorr" in p.name for p in (out / "plots").glob("*.png"))
    assert not (out / "review.md").exists()  # nor its review score, which this evaluation did not make
    assert len(list((out / "plots").glob("*.png"))) == 2 * 6
    capsys.readouterr()


def test_missing_prediction_is_a_clear_error(phantom, tmp_path, capsys):
    write_cases(phantom, tmp_path / "ref", {"ED": [0]})
    (tmp_path / "pred").mkdir()
    assert main(["evaluate", "--ref", str(tmp_path / "ref"), "--pred", str(tmp_path / "pred"),
                 "--out", str(tmp_path / "eval")]) == 2
    assert "No FCN label map for case0_ED.nii.gz" in capsys.readouterr().err


def test_folders_that_cannot_be_compared_are_refused_before_any_table(phantom, tmp_path, capsys):
    write_cases(phantom, tmp_path / "ref", {"ED": [0], "ES": [6]})
    write_cases(phantom, tmp_path / "pred", {"ED": [0], "ES": [6]})
    out = tmp_path / "eval"

    def refused(ref, pred) -> str:
        assert main(["evaluate", "--ref", str(ref), "--pred", str(pred), "--out", str(out)]) == 2
        assert not out.exists()
        return capsys.readouterr().err

    # A prediction on another grid (a crop): an IndexError deep in the metrics before.
    cropped = tmp_path / "cropped"
    cropped.mkdir()
    for name in ("case0_ED", "case0_ES"):
        study = phantom.study
        labels = phantom.labels[0 if name.endswith("ED") else 6][:, :, :-4]
        grid = Study(image=labels[None].astype(np.float32), spacing=study.spacing)
        write_frame(labels, grid, cropped / f"{name}.nii.gz")
    assert "is not on the grid of its reference" in refused(tmp_path / "ref", cropped)
    # The same voxels stored mirrored (another x direction and origin): the arrays differ, the anatomy does not;
    # compared array to array they scored a Dice of 0.1.
    mirrored = tmp_path / "mirrored"
    mirrored.mkdir()
    for name, frame in (("case0_ED", 0), ("case0_ES", 6)):
        study = phantom.study
        direction = study.direction.copy()
        direction[:, 0] *= -1
        origin = np.asarray(study.origin) + study.direction[:, 0] * study.spacing[0] * (study.matrix[1] - 1)
        grid = Study(image=study.image[:1], spacing=study.spacing, origin=tuple(origin), direction=direction)
        write_frame(phantom.labels[frame][:, :, ::-1], grid, mirrored / f"{name}.nii.gz")
    assert "or the axes' directions differ" in refused(tmp_path / "ref", mirrored)
    # An ACDC patient folder: images beside the _gt masks would be counted twice, an image as a label map.
    acdc_like = tmp_path / "acdc_like"
    acdc_like.mkdir()
    for name in ("case0_ED", "case0_ES"):
        (acdc_like / f"{name}_gt.nii.gz").write_bytes((tmp_path / "ref" / f"{name}.nii.gz").read_bytes())
        write_frame((phantom.study.image[0] * 0 + 7).astype(np.int16), phantom.study, acdc_like / f"{name}.nii.gz")
    assert "holds 2 cases more than once (case0_ED: case0_ED.nii.gz, case0_ED_gt.nii.gz)" in refused(
        acdc_like, tmp_path / "pred")
    (acdc_like / "case0_ED_gt.nii.gz").unlink(), (acdc_like / "case0_ES_gt.nii.gz").unlink()
    assert "is not a label map" in refused(acdc_like, tmp_path / "pred")
    # The output folder is checked first, not after every case is compared.
    out.write_text("a file")
    assert main(["evaluate", "--ref", str(tmp_path / "ref"), "--pred", str(tmp_path / "pred"), "--out", str(out)]) == 2
    assert "is an existing file" in capsys.readouterr().err


def test_the_json_is_strict_and_the_sd_is_the_sample_sd(phantom, tmp_path):
    """A structure missed in a case (an infinite distance) is null in evaluation.json (other JSON readers
    refuse the Infinity Python writes); Table 1's SD is the sample SD, as the agreement statistics use."""
    frames = {"ED": [0, 1, 19], "ES": [6, 7, 8]}
    write_cases(phantom, tmp_path / "ref", frames)
    write_cases(phantom, tmp_path / "pred", frames, remove_lv_voxels)
    missed = phantom.labels[6].copy()
    missed[missed == LV] = 0  # the ES LV of case 0 missed altogether
    write_frame(missed, phantom.study, tmp_path / "pred" / "case0_ES.nii.gz", overwrite=True)
    assert main(["evaluate", "--ref", str(tmp_path / "ref"), "--pred", str(tmp_path / "pred"),
                 "--out", str(tmp_path / "eval")]) == 0  # fmt: skip
    text = (tmp_path / "eval" / "evaluation.json").read_text()
    assert "Infinity" not in text and "NaN" not in text
    results = json.loads(text)
    lv_es = [c for c in results["cases"] if c["structure"] == "LV" and c["phase"] == "ES" and c["criterion"] == "50"]
    assert sorted(c["hd_mm"] is None for c in lv_es) == [False, False, True]
    row = next(r for r in results["table1"] if r["phase"] == "ES" and r["structure"] == "LV" and r["criterion"] == "50")
    assert row["hd_infinite"] == 1
    assert row["dice_sd"] == pytest.approx(np.std([c["dice"] for c in lv_es], ddof=1))


@pytest.mark.shared_data
@pytest.mark.slow
def test_model_on_acdc_patients_reproduces_both_tables(acdc_root, model_path, tmp_path):
    from cmrseg.review import load_review_model

    fitted = load_review_model(model_path).record["fitted_patients"][0]  # the review score's measure is in-sample
    split = {"train": [], "val": [], "test": ["patient003", "patient024", fitted], "data": str(acdc_root)}
    (tmp_path / "split.json").write_text(json.dumps(split))
    code = main(["evaluate", "--split", str(tmp_path / "split.json"), "--model", str(model_path),
                 "--out", str(tmp_path / "eval")])
    assert code == 0
    results = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    both = {(r["criterion"], r["structure"]): r for r in results["table1"] if r["phase"] == "ED+ES"}
    assert both[("50", "LV")]["n"] == 6
    assert both[("50", "LV")]["dice_mean"] > 0.85
    table3 = (tmp_path / "eval" / "table3.md").read_text()
    assert "LV EDV" in table3 and "Myo mass ES" in table3
    review = json.loads((tmp_path / "eval" / "review.json").read_text())  # the shipped model has a review fit
    score = review["review score"]
    assert score["all"]["slices"] == score["ED"]["slices"] + score["ES"]["slices"] > 0
    assert 0 <= score["all"]["auc"] <= 1
    assert set(review["interval_coverage"]) == {"lv_edv_ml", "lv_ef_pct", "rv_ef_pct", "lv_mass_ed_g"}
    assert review["in_sample_patients"] == [fitted]
    # The network's own split lies beside it: the tables say which of these patients trained it.
    shipped_train = read_split(model_path.with_suffix(".split.json"))["train"]
    trained = sorted({"patient003", "patient024", fitted} & set(shipped_train))
    assert trained and results["note"].startswith(f"In-sample: the network was trained on {len(trained)} of these 3")
    assert ", ".join(trained) in results["note"]
    assert (tmp_path / "eval" / "table1.md").read_text().startswith("In-sample")
    assert (tmp_path / "eval" / "review.md").read_text().startswith(
        "In-sample: the review score was fitted on 1 of these 3 patients")


def test_a_structure_missed_in_a_case_counts_in_the_distance_medians():
    rows = [{"method": "FCN", "criterion": "50", "phase": "ED", "structure": "LV", "dice": d, "hd_mm": hd,
             "hd95_mm": hd, "hd_2d_median_mm": hd, "sensitivity": s}
            for d, hd, s in ((0.95, 2.0, 0.9), (0.95, 4.0, 0.9), (0.0, float("inf"), 0.0))]
    summary = table1(rows)
    both = next(r for r in summary if r["phase"] == "ED")
    # the missed case counts in the median as the largest distance (left out, it made the median 3.0)
    assert both["hd_median_mm"] == 4.0 and both["hd_infinite"] == 1 and both["dice_mean"] == pytest.approx(1.9 / 3)
    line = table1_markdown([both]).splitlines()[2]
    assert "| 4.0 (1 of 3 inf) | 4.0 | 4.0 (1 of 3 inf) |" in line  # HD 3D, HD 2D, HD95
    rows[1]["hd_mm"] = float("inf")  # two of three missed: the median is infinite, and says so
    assert distance_cell(table1(rows)[0], "hd_median_mm") == "inf (2 of 3 inf)"
    stored = json.loads(json.dumps(json_safe(table1(rows)[0])))  # as evaluation.json keeps it (inf as null)
    assert stored["hd_median_mm"] is None and distance_cell(stored, "hd_median_mm") == "inf (2 of 3 inf)"


def test_tables_say_when_the_patients_scored_trained_the_network_or_nobody_knows():
    from cmrseg.evaluate_command import in_sample_note

    assert in_sample_note({"patient001", "patient002"}, ["patient003", "patient004"]) is None
    assert in_sample_note({"patient001", "patient002"}, ["patient002", "patient003"]).startswith(
        "In-sample: the network was trained on 1 of these 2 patients (patient002)")
    assert in_sample_note(None, ["patient003"]).startswith("Held out? The network does not say")
