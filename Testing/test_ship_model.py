"""scripts/ship-model's refusals: an unfinished network, an incomplete set of cross-validation folds and a
network that fails the built-in example are never shipped, and evaluations are reused only for the weights,
code and settings they were made with."""

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
model_card = sys.modules["model_card"]
ship_evaluation = sys.modules["ship_evaluation"]
_loader = importlib.machinery.SourceFileLoader("refresh_metrics", str(SCRIPTS / "refresh-model-metrics"))
refresh_metrics = importlib.util.module_from_spec(importlib.util.spec_from_loader("refresh_metrics", _loader))
_loader.exec_module(refresh_metrics)


def test_a_network_that_has_not_trained_all_its_epochs_is_refused(tmp_path):
    (tmp_path / "history.csv").write_text("epoch,dice_mean\n" + "".join(f"{e},0.9\n" for e in range(1, 11)))
    with pytest.raises(CMRSegError, match="has trained 10 of its 60 epochs; finish it"):
        ship_model.finished(tmp_path, {"epochs": 60})
    ship_model.finished(tmp_path, {"epochs": 10})  # all trained: a candidate


def _training_state(run: Path, epoch: int, planned: int, partial: bool = False) -> None:
    """A real ``last.pt`` after ``epoch`` of a run planning ``planned`` epochs (``partial``: saved inside the next)."""
    from cmrseg.training.state import save_state

    model = build_model("compact")
    optimizer = torch.optim.Adam(model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    save_state(run / "last.pt", model=model, optimizer=optimizer, scheduler=scheduler, epoch=epoch,
               config={"epochs": planned}, history=[], best={}, class_weights=torch.ones(4), wall_seconds=1.0,
               partial={"epoch": epoch + 1, "step": 3} if partial else None)


def test_a_run_is_judged_finished_by_its_training_state(tmp_path):
    """The training state says how far a run got and what it plans now; history.csv alone passed a run resumed
    with more epochs (its best.pt still saying 60) while it trained on."""
    _training_state(tmp_path, 60, 60)
    ship_model.finished(tmp_path, {"epochs": 60})  # all trained: a candidate
    _training_state(tmp_path, 59, 60, partial=True)
    with pytest.raises(CMRSegError, match="has trained 59 of its 60 epochs and part of the next; finish it"):
        ship_model.finished(tmp_path, {"epochs": 60})
    _training_state(tmp_path, 70, 120)  # resumed with --epochs 120, still training
    (tmp_path / "history.csv").write_text("epoch,dice_mean\n" + "".join(f"{e},0.9\n" for e in range(1, 71)))
    with pytest.raises(CMRSegError, match="has trained 70 of its 120 epochs; finish it"):
        ship_model.finished(tmp_path, {"epochs": 60})
    _training_state(tmp_path, 120, 120)  # finished, but best.pt is from the plan of 60
    with pytest.raises(CMRSegError, match="best network of a plan of 60 epochs, but the run was resumed to 120"):
        ship_model.finished(tmp_path, {"epochs": 60})


def test_the_best_epoch_is_the_one_training_chose_not_a_tie_in_the_rounded_history(tmp_path):
    (tmp_path / "history.csv").write_text("epoch,dice_LV,dice_RV,dice_Myo,dice_mean,epoch_seconds\n"
                                          "1,0.9,0.8,0.85,0.85,10\n2,0.91,0.79,0.85,0.85,10\n")
    best = model_card.best_validation_epoch(tmp_path, {"best_epoch": 2})
    assert (best["epoch"], best["dice_LV"], best["epochs"], best["seconds"]) == (2, 0.91, 2, 20.0)


def test_the_card_names_the_gpu_a_network_trained_on():
    gpu = {"cpu_count": 16, "processor": "x86_64", "torch": "2.13.0", "gpu": "NVIDIA H200"}
    assert model_card.machine_text(gpu) == "an NVIDIA H200 GPU (16-core x86_64 host, torch 2.13.0)"
    assert model_card.machine_text({k: v for k, v in gpu.items() if k != "gpu"}) == \
        "a 16-core CPU (x86_64, torch 2.13.0)"


def test_the_card_says_why_the_prior_correction_is_on_or_off():
    """An ensemble's correction is never tried (its members have their own weights): the card said 'chosen'."""
    def item(name, weights):
        return {"metadata": {"architecture": {"name": name}, "training": {"class_weights": weights}}}

    assert model_card.correction_reason(item("ensemble", None)).startswith("never for an ensemble")
    assert model_card.correction_reason(item("dense_unet", [1.0, 1.0, 1.0, 1.0])).startswith("trained without")
    assert model_card.correction_reason(item("dense_unet", [0.5, 2.0, 1.5, 1.0])).startswith("chosen on the")


def test_candidates_are_evaluated_in_fp32_whatever_the_machine_has(model_path):
    """The card's tables are then what `cmrseg evaluate --fp32` gives anywhere (bf16 moves a case's Dice a little)."""
    assert ship_evaluation.load_fp32(model_path, False).bf16 is False
    assert "`cmrseg evaluate --fp32 --out DIR`" in model_card.reproduce_line({"test": {}})


def test_a_refreshed_card_keeps_all_but_its_held_out_tables_reproduce_line_and_levers():
    card = "\n".join(["# card", "- Split: ...", "- Inference: old reason.", "", "## Test patients (15 patients)",
                      "", "| old | table |", "",
                      "## Candidates compared", "", "| old candidates |", "",
                      "Chosen by `scripts/ship-model a`. Reproduce the test tables: `cmrseg evaluate --out DIR`.",
                      "", "## Levers measured", "", "| old levers |", ""])
    new = refresh_metrics.replace_held_out(card, ["## Test patients (15 patients)", "", "| new | table |"],
                                           "Recomputed.", "Reproduce the test tables: `cmrseg evaluate --fp32`.",
                                           "- Inference: a new reason, longer than the old one.")
    assert "- Split: ...\n- Inference: a new reason, longer than the old one.\n\n## Test patients" in new
    assert "| new | table |\n\nRecomputed.\n\n## Candidates compared\n\n| old candidates |" in new
    assert "Chosen by `scripts/ship-model a`. Reproduce the test tables: `cmrseg evaluate --fp32`.\n" in new
    assert "| old table |" not in new and "| old levers |" not in new
    assert new.endswith(model_card.LEVERS.read_text().rstrip() + "\n")
    with pytest.raises(CMRSegError, match="not a card scripts/ship-model wrote"):
        refresh_metrics.replace_held_out("# card\n", [], "", "")


def test_a_refresh_keeps_the_weights_bit_for_bit_or_writes_nothing():
    a = {"w": torch.tensor([1.0, 2.0], dtype=torch.float16)}
    assert refresh_metrics.same_weights(a, {"w": a["w"].clone()})
    assert not refresh_metrics.same_weights(a, {"w": a["w"].float()})  # the dtype counts too
    assert not refresh_metrics.same_weights(a, {"w": torch.tensor([1.0, 2.5], dtype=torch.float16)})


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


def test_an_evaluation_is_reused_only_for_the_weights_code_and_settings_it_was_made_with(tmp_path, monkeypatch):
    result = tmp_path / "evaluation.json"
    result.write_text('{"table1": []}')
    made = ship_evaluation.made_with("a" * 64, patients=["p1", "p2"], prior_correction=False)
    assert ship_evaluation.cached(result, made) is None  # made by an earlier version: no record of what made it
    ship_evaluation.remember(result, made)
    same = ship_evaluation.made_with("a" * 64, patients=["p1", "p2"], prior_correction=False)
    assert ship_evaluation.cached(result, same) == {"table1": []}
    for other in (ship_evaluation.made_with("b" * 64, patients=["p1", "p2"], prior_correction=False),
                  ship_evaluation.made_with("a" * 64, patients=["p1", "p3"], prior_correction=False),
                  ship_evaluation.made_with("a" * 64, patients=["p1", "p2"], prior_correction=True)):
        assert ship_evaluation.cached(result, other) is None
    # Other code (a changed metric, tolerance or post-processing) never reuses it either.
    monkeypatch.setattr(ship_evaluation, "code_sha256", lambda: "c" * 64)
    assert ship_evaluation.cached(result, ship_evaluation.made_with("a" * 64, patients=["p1", "p2"],
                                                                     prior_correction=False)) is None


def test_the_code_hash_changes_with_any_python_file_of_the_package(tmp_path, monkeypatch):
    assert (ship_evaluation.PACKAGE / "metrics.py").is_file()  # the real package is what is hashed
    (tmp_path / "io").mkdir()
    (tmp_path / "metrics.py").write_text("A = 1\n")
    (tmp_path / "io" / "reader.py").write_text("B = 1\n")
    monkeypatch.setattr(ship_evaluation, "PACKAGE", tmp_path)
    hashes = []
    for change in (None, ("metrics.py", "A = 2\n"), ("io/reader.py", "B = 2\n")):
        if change:
            (tmp_path / change[0]).write_text(change[1])
        ship_evaluation.code_sha256.cache_clear()
        hashes.append(ship_evaluation.code_sha256())
    ship_evaluation.code_sha256.cache_clear()
    assert len(set(hashes)) == 3


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
    assert ship_evaluation.cached(kept, ship_evaluation.made_with(file_sha256(shipped / "best.pt"),
                                                        prior_correction=own_correction)) == passed


def test_a_stored_example_result_is_judged_by_the_tolerances_of_today():
    # Stored when the ED LV tolerance was 0.80 (marked ok then); today's is higher, so it fails.
    stored = {"dice": [{"phase": "ED", "structure": "LV", "dice": 0.90, "tolerance": 0.80, "ok": True}],
              "parameters": [{"parameter": "rv_ef_pct", "cmrseg": 60.0, "truth": 53.4, "ok": True},
                             {"parameter": "lv_edv_ml", "cmrseg": 200.0, "truth": 100.0, "ok": None}]}
    assert phantom_check.TOLERANCE_DICE[("ED", "LV")] > 0.90
    assert phantom_check.failures(stored) == [
        f"ED LV Dice 0.900 below {phantom_check.TOLERANCE_DICE[('ED', 'LV')]:.2f}",
        "rv_ef_pct 60.0 against the analytic 53.4 (5 points or more off)"]
    assert not ship_model.eligible([{"run": Path("old"), "example": stored}])


def test_a_shipped_single_network_is_a_candidate_with_its_history(tmp_path, monkeypatch):
    models = tmp_path / "Models"
    split = {"train": ["p1"], "val": ["p2"], "test": ["p3"], "seed": 0}
    target = save_checkpoint(models / "cmrseg_dense_unet.pt", build_model("compact"), {"training": {"epochs": 2}},
                             preset="compact")
    write_split(split, target.with_suffix(".split.json"))
    target.with_suffix(".history.csv").write_text("run,epoch,dice_mean\nnet,1,0.5\nnet,2,0.6\n")
    monkeypatch.setattr(ship_model, "default_model_path", lambda: target)
    previous = ship_model.shipped_candidate(split, tmp_path / "runs")
    assert previous == tmp_path / "runs" / "previous_shipped"
    ship_model.finished(previous, {"epochs": 2})  # all its epochs are on record: no refusal


def test_a_run_whose_split_file_is_not_the_one_it_was_trained_on_is_refused(tmp_path, monkeypatch):
    run = tmp_path / "run"
    write_split({"train": ["p1"], "val": ["p2"], "test": ["p3"], "seed": 0}, run / "split.json")
    trained_on = {"training": {"split_sha256": file_sha256(run / "split.json")}}
    save_checkpoint(run / "best.pt", build_model("compact"), trained_on, preset="compact")
    write_split({"train": ["p3"], "val": ["p2"], "test": ["p1"], "seed": 0}, run / "split.json")  # rewritten
    monkeypatch.setattr(sys, "argv", ["ship-model", str(run), "--dry-run"])
    with pytest.raises(CMRSegError, match=f"{run / 'best.pt'} was not trained on {run / 'split.json'}"):
        ship_model.main()  # before anything is evaluated: p1 would count as held out
