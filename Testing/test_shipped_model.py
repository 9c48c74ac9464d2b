"""The shipped model: it loads from the repository, describes itself, and reproduces its model card."""

from __future__ import annotations

import json

import pytest

from cmrseg.basal import apply_basal_rule, basal_end
from cmrseg.inference import default_model_path, segment_frames
from cmrseg.io.acdc import load_frame
from cmrseg.labels import BY_KEY
from cmrseg.metrics import dice
from cmrseg.model import read_checkpoint


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
    assert (len(split["train"]), len(split["val"]), len(split["test"])) == (70, 15, 15)
    assert not set(split["test"]) & set(split["train"])
    card = path.with_suffix(".md").read_text()
    assert "Bernard et al." in card and "## Test patients" in card


@pytest.mark.shared_data
@pytest.mark.slow
@pytest.mark.parametrize("patient", ["first", "last"])
def test_a_test_patient_is_segmented_as_the_model_card_says(acdc_root, segmenter, patient):
    metadata = segmenter.metadata
    cases = metadata["metrics"]["test_cases"]
    name = cases[0]["patient"] if patient == "first" else cases[-1]["patient"]
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
