"""The shipped model: it loads from the repository, describes itself, and reproduces its model card."""

from __future__ import annotations

import dataclasses
import itertools
import json

import numpy as np
import pytest

from cmrseg.basal import apply_basal_rule, basal_end
from cmrseg.inference import default_model_path, segment_frames
from cmrseg.io.acdc import load_frame
from cmrseg.labels import BY_KEY, STRUCTURES
from cmrseg.metrics import dice
from cmrseg.model import read_checkpoint
from cmrseg.training.split import file_sha256, make_fold_splits, write_split


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
@pytest.mark.parametrize("part", ["validation_cases", "test_cases", "cross_validation_cases"])
@pytest.mark.parametrize("patient", ["first", "last"])
def test_a_patient_is_segmented_as_the_model_card_says(acdc_root, segmenter, part, patient):
    cases = segmenter.metadata["metrics"].get(part)
    if cases is None:
        pytest.skip(f"the shipped model's card has no {part.replace('_', ' ')}")
    name = cases[0]["patient"] if patient == "first" else cases[-1]["patient"]
    if part == "cross_validation_cases":  # segmented by the one member not trained on the patient
        member = next(c["member"] for c in cases if c["patient"] == name)
        segmenter = dataclasses.replace(segmenter, model=segmenter.networks[member])
    for phase in ("ED", "ES"):
        frame = load_frame(acdc_root / name, phase)
        labels = segment_frames(frame.study, [0], segmenter)[0]
        # The card's per-case values use the >= 50 % basal rule on both sides, as cmrseg evaluate does.
        labels = apply_basal_rule(labels, "50", basal_end(labels))[0]
        reference = apply_basal_rule(frame.mask, "50", basal_end(frame.mask))[0]
        for case in (c for c in cases if c["patient"] == name and c["phase"] == phase):
            label = BY_KEY[case["structure"]].label
            # Same data, weights and code as the card's evaluation: the same Dice up to CPU rounding.
            assert dice(labels == label, reference == label) == pytest.approx(case["dice"], abs=0.005)


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
