"""scripts/ship-model's refusals: an unfinished network, an incomplete set of cross-validation folds and a
network that fails the built-in example are never shipped, and evaluations are reused only for the weights
they were made with."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import shutil
import sys
from pathlib import Path

import pytest
import torch

from cmrseg import phantom_check
from cmrseg.errors import CMRSegError
from cmrseg.model import build_model, load_model, save_checkpoint
from cmrseg.training.split import file_sha256, write_split

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))  # ship-model imports model_card from beside it
_loader = importlib.machinery.SourceFileLoader("ship_model", str(SCRIPTS / "ship-model"))
ship_model = importlib.util.module_from_spec(importlib.util.spec_from_loader("ship_model", _loader))
_loader.exec_module(ship_model)


def test_a_network_that_has_not_trained_all_its_epochs_is_refused(tmp_path):
    (tmp_path / "history.csv").write_text("epoch,dice_mean\n" + "".join(f"{e},0.9\n" for e in range(1, 11)))
    with pytest.raises(CMRSegError, match="has trained 10 of its 60 epochs; finish it"):
        ship_model.finished(tmp_path, {"epochs": 60})
    ship_model.finished(tmp_path, {"epochs": 10})  # all trained: a candidate


def test_an_ensemble_of_some_of_the_folds_is_refused(tmp_path):
    patients = [f"p{k:02d}" for k in range(25)]
    val, rest = patients[:5], patients[5:]
    folds = [{"train": [p for p in rest if p not in rest[4 * k:4 * k + 4]], "val": val,
              "test": rest[4 * k:4 * k + 4], "seed": 0} for k in range(5)]
    runs = []
    for k in (0, 1):
        write_split(folds[k], tmp_path / f"fold{k}" / "split.json")
        runs.append(tmp_path / f"fold{k}")
    with pytest.raises(CMRSegError, match="test 8 of the 20 patients they were trained on together"):
        ship_model.make_ensemble(runs)
    assert not (tmp_path / "ensemble_fold0+fold1" / "best.pt").exists()


def test_an_evaluation_is_reused_only_for_the_weights_it_was_made_with(tmp_path):
    result = tmp_path / "evaluation.json"
    result.write_text('{"table1": []}')
    assert ship_model.cached(result, "a" * 64) is None  # made by an earlier version: no record of its weights
    ship_model.remember(result, "a" * 64)
    assert ship_model.cached(result, "a" * 64) == {"table1": []}
    assert ship_model.cached(result, "b" * 64) is None


@pytest.mark.slow
def test_a_candidate_that_fails_the_built_in_example_is_never_eligible(model_path, tmp_path, capsys):
    shipped, untrained = tmp_path / "shipped", tmp_path / "untrained"
    shipped.mkdir()
    untrained.mkdir()
    shutil.copy(model_path, shipped / "best.pt")
    torch.manual_seed(0)
    save_checkpoint(untrained / "best.pt", build_model("compact"), {"training": {}}, preset="compact")
    _, metadata = load_model(model_path)
    own_correction = metadata.get("inference", {}).get("prior_correction", False)
    items = [{"run": run, "example": ship_model.example(run, file_sha256(run / "best.pt"), correction)}
             for run, correction in ((shipped, own_correction), (untrained, True))]  # True: written as it would ship
    assert ship_model.eligible(items) == items[:1]
    refusal = capsys.readouterr().err
    assert f"ship-model: {untrained} is not eligible: on the built-in example" in refusal
    assert "No left ventricle was found" in refusal  # an untrained network finds none: nothing to measure
    assert str(shipped) not in refusal
    passed = items[0]["example"]
    assert phantom_check.passed(passed) and phantom_check.failures(passed) == []
    assert {r["parameter"] for r in passed["parameters"] if r["ok"] is not None} == {"lv_ef_pct", "rv_ef_pct"}
    # The result is kept for these weights, so a rerun does not segment the example again.
    kept = shipped / f"example_prior_{own_correction}.json"
    assert ship_model.cached(kept, file_sha256(shipped / "best.pt")) == passed
