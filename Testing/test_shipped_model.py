"""The shipped model: it loads from the repository, describes itself, and reproduces its model card."""

from __future__ import annotations

import dataclasses
import itertools
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from cmrseg.evaluate import acdc_model_cases, evaluate_cases
from cmrseg.inference import Segmenter, default_model_path, segment_frames
from cmrseg.io.acdc import load_frame
from cmrseg.labels import STRUCTURES
from cmrseg.metrics import dice
from cmrseg.model import read_checkpoint
from cmrseg.training.split import file_sha256, make_fold_splits, read_split, write_split

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))  # the model card's own functions and ship-model's evaluation
import model_card  # noqa: E402
import ship_evaluation  # noqa: E402


def test_shipped_model_is_small_self_describing_and_ships_its_split():
    path = default_model_path()
    assert path.is_file(), "the shipped weights belong in CMRSegModule/Resources/Models"
    assert path.stat().st_size < 20e6
    metadata, _ = read_checkpoint(path)
    architecture = metadata["architecture"]
    assert architecture["name"] in ("dense_unet", "ensemble")
    if architecture["name"] == "ensemble":  # what each member was trained with stays on record
        assert len(metadata["training"]["members"]) == len(architecture["args"]["members"]) >= 2
        assert all("command" in member for member in metadata["training"]["members"])
    assert metadata["labels"] == {"0": "background", "1": "RV", "2": "Myo", "3": "LV"}
    assert metadata["training"]["split_file"] == path.with_suffix(".split.json").name
    split = json.loads(path.with_suffix(".split.json").read_text())
    assert not set(split["val"]) & (set(split["train"]) | set(split["test"]))
    assert not set(split["test"]) & set(split["train"])
    card = path.with_suffix(".md").read_text()
    assert "Bernard et al." in card
    if split["test"]:
        assert (len(split["train"]), len(split["val"]), len(split["test"])) == (70, 15, 15)
        assert "## Test patients" in card
    else:  # cross-validation folds: every training patient is the test patient of exactly one member
        tested = [p for part in split["member_test"] for p in part]
        assert sorted(tested) == sorted(split["train"])
        assert len(split["member_test"]) == len(architecture["args"]["members"])
        assert (len(split["train"]), len(split["val"])) == (85, 15)
        assert "## Cross-validated estimate" in card and "cross_validation" in metadata["metrics"]
        cases = metadata["metrics"]["cross_validation_cases"]  # each by the one member not trained on it
        assert {case["patient"] for case in cases} == set(split["train"])
        assert all(case["patient"] in split["member_test"][case["member"]] for case in cases)


@pytest.mark.shared_data
def test_each_fold_member_was_trained_on_the_fold_that_leaves_out_its_test_patients(acdc_root, tmp_path,
                                                                                       monkeypatch):
    path = default_model_path()
    split = json.loads(path.with_suffix(".split.json").read_text())
    if "member_test" not in split:
        pytest.skip("the shipped model is not an ensemble of cross-validation folds")
    metadata, _ = read_checkpoint(path)
    monkeypatch.chdir(path.parents[3])  # the split names the data relative to the repository, as make-folds did
    folds = make_fold_splits(split["data"], folds=len(split["member_test"]), seed=split["seed"],
                             validation=split["val"])
    by_sha256 = {file_sha256(write_split(fold, tmp_path / f"fold{k}.json")): fold for k, fold in enumerate(folds)}
    for member, tested in zip(metadata["training"]["members"], split["member_test"], strict=True):
        fold = by_sha256[member["split_sha256"]]  # the file make-folds writes, byte for byte
        assert sorted(fold["test"]) == tested and not set(fold["train"]) & set(tested)


@pytest.mark.shared_data
@pytest.mark.slow
@pytest.mark.parametrize("part", ["validation", "test", "cross_validation"])
def test_every_patient_is_segmented_and_scored_as_the_model_card_says(acdc_root, model_path, tmp_path, part):
    """Every patient of a part re-segmented in fp32 (the card's arithmetic) and scored by cmrseg evaluate's own
    code gives the checkpoint's per-case values and tables (which the card prints: the test below)."""
    metadata, _ = read_checkpoint(model_path)
    if part not in metadata["metrics"]:
        pytest.skip(f"the shipped model records no {part.replace('_', ' ')} tables")
    segmenter = Segmenter.load(model_path, device="cpu", bf16=False)
    split = read_split(model_path.with_suffix(".split.json"))
    if part == "cross_validation":  # each patient by the one member not trained on it
        cases = [case for member, patients in enumerate(split["member_test"]) for case in acdc_model_cases(
            acdc_root, patients, dataclasses.replace(segmenter, model=segmenter.networks[member]))]
    else:
        cases = list(acdc_model_cases(acdc_root, split["val" if part == "validation" else "test"], segmenter))
    results = evaluate_cases(cases, tmp_path, len(cases))
    expected = {(c["patient"], c["phase"], c["structure"]): c for c in metadata["metrics"][f"{part}_cases"]}
    found = {(c["patient"], c["phase"], c["structure"]): c for c in ship_evaluation.case_values(results)}
    assert found.keys() == expected.keys()
    for key, case in found.items():  # same data, weights, code and arithmetic: the same up to CPU rounding
        assert case["dice"] == pytest.approx(expected[key]["dice"], abs=0.002), key
        assert case["hd95_mm"] == pytest.approx(expected[key]["hd95_mm"], abs=1.5), key
    table = {(r["phase"], r["structure"]): r for r in metadata["metrics"][part]["table1"]
             if r["method"] == "FCN" and r["criterion"] == "50"}
    for row in (r for r in results["table1"] if r["method"] == "FCN" and r["criterion"] == "50"):
        assert row["dice_mean"] == pytest.approx(table[(row["phase"], row["structure"])]["dice_mean"], abs=0.001)


def test_the_model_card_prints_the_checkpoints_own_tables():
    """The card's held-out tables are the metrics recorded in the checkpoint, line for line."""
    path = default_model_path()
    metadata, _ = read_checkpoint(path)
    card = path.with_suffix(".md").read_text().splitlines()
    part = "test" if "test" in metadata["metrics"] else "cross_validation"
    tables = metadata["metrics"][part]
    for line in [*model_card.dice_table(tables["table1"]), *model_card.parameter_table(tables["table3"])]:
        assert line in card, f"the card does not print the checkpoint's {part} row {line!r}"
    assert "--fp32" in next(line for line in card if "Reproduce the " in line)


def test_the_levers_table_names_the_shipped_model_with_its_own_validation_dice():
    """scripts/model_levers.md (the card's 'Levers measured') must be brought up to date when a model ships."""
    levers = default_model_path().parents[3] / "scripts" / "model_levers.md"
    lines = levers.read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("| "))
    table = itertools.takewhile(lambda line: line.startswith("|"), lines[first:])  # the first table only
    header, _, *rows = [[cell.strip() for cell in line.strip("|\n ").split("|")] for line in table]
    shipped = [row for row in rows if row[header.index("kept")] == "shipped"]
    assert len(shipped) == 1, "exactly one lever row is the shipped model"
    metadata, _ = read_checkpoint(default_model_path())
    correction = str(metadata.get("inference", {}).get("prior_correction", False))
    dice_values = metadata["metrics"]["validation_dice"][correction]
    expected = " / ".join(f"{dice_values[s]:.3f}" for s in ("LV", "RV", "Myo"))
    assert shipped[0][header.index("validation")] == expected


@pytest.mark.shared_data
@pytest.mark.slow
def test_segmentations_are_not_displaced_against_the_images(acdc_root, segmenter):
    """On ACDC (masks on the images' own grid) the Dice against the expert masks moved one pixel either way
    along x and along y falls symmetrically: a parabola through the three values peaks within 0.2 pixel of
    no shift. (The Sunnybrook contour origin, cmrseg.contour_origin, is measured against this alignment.)"""
    split = json.loads(default_model_path().with_suffix(".split.json").read_text())
    frames = [load_frame(acdc_root / patient, phase) for patient in split["val"][:2] for phase in ("ED", "ES")]
    labels = [segment_frames(frame.study, [0], segmenter)[0] for frame in frames]

    def mean_dice(axis: int, step: int) -> float:
        return float(np.mean([dice(found == s.label, np.roll(frame.mask, step, axis=axis) == s.label)
                              for frame, found in zip(frames, labels, strict=True) for s in STRUCTURES]))

    for axis in (1, 2):  # y, x of [z, y, x]
        before, here, after = (mean_dice(axis, step) for step in (-1, 0, 1))
        assert here > max(before, after)
        vertex = 0.5 * (before - after) / (before - 2 * here + after)
        print(f"axis {axis}: Dice {before:.3f} / {here:.3f} / {after:.3f} at -1 / 0 / +1, peak {vertex:+.3f} pixel")
        assert abs(vertex) < 0.2, f"axis {axis}: segmentations displaced by {vertex:+.2f} pixel"
