"""Cross-validated evaluation: each fold's network scores only its own test patients, in one table."""

from __future__ import annotations

import json
import shutil

import pytest

from cmrseg.cli import main
from cmrseg.io.acdc import list_patients
from cmrseg.model import load_model, save_checkpoint
from cmrseg.shipped import default_model_path
from cmrseg.training.split import file_sha256, write_split


def _fold_runs(acdc_root, tmp_path):
    """Two fold run folders on five patients, each fold testing one patient. Their networks are the shipped
    ensemble's first two members, each recorded as trained on its fold's split (real fold networks that find a
    heart take hours to train); they differ, so a patient met by the wrong one would show."""
    ensemble, metadata = load_model(default_model_path())
    names = [p.name for p in list_patients(acdc_root)][:5]
    folds = [{"train": names[2:3], "val": names[3:4], "test": names[0:1]},
             {"train": names[0:1], "val": names[4:5], "test": names[1:2]}]
    runs = []
    for k, split in enumerate(folds):
        run = tmp_path / f"fold{k}"
        path = write_split({"dataset": "ACDC", "data": str(acdc_root), **split}, run / "split.json")
        record = {**metadata["training"]["members"][k], "split_sha256": file_sha256(path)}
        member = {**metadata, "training": record}
        save_checkpoint(run / "best.pt", ensemble.members[k], member, preset="compact")
        runs.append(run)
    return runs, folds


def _dice(results: dict) -> dict:
    return {(c["patient"], c["phase"], c["structure"]): c["dice"] for c in results["cases"]
            if c["criterion"] == "50" and c["method"] == "FCN"}


@pytest.mark.slow
@pytest.mark.shared_data
def test_each_fold_network_scores_only_its_own_test_patients(acdc_root, tmp_path, capsys):
    runs, folds = _fold_runs(acdc_root, tmp_path)
    assert main(["evaluate", "--cross-validation", *map(str, runs), "--out", str(tmp_path / "cv"), "--fp32"]) == 0
    together = _dice(json.loads((tmp_path / "cv" / "evaluation.json").read_text()))
    assert {patient for patient, _, _ in together} == {p for fold in folds for p in fold["test"]}
    # Each fold alone, on its own test part: the same per-case Dice, so every patient met its own fold's network.
    alone = {}
    for k, run in enumerate(runs):
        out = tmp_path / f"alone{k}"
        argv = ["evaluate", "--split", str(run / "split.json"), "--model", str(run / "best.pt"), "--out", str(out),
                "--fp32"]
        assert main(argv) == 0
        results = json.loads((out / "evaluation.json").read_text())
        assert results["note"] is None  # its own test patients: held out, nothing to say
        alone |= _dice(results)
    assert together == pytest.approx(alone, abs=1e-9)
    capsys.readouterr()

    # Refused, one line each: a network not trained on its folder's split; folds testing the same patient.
    shutil.copy(runs[1] / "best.pt", runs[0] / "best.pt")
    assert main(["evaluate", "--cross-validation", *map(str, runs), "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cmrseg: error:") and "was not trained on" in err and err.count("\n") == 1
    assert main(["evaluate", "--cross-validation", str(runs[1]), str(runs[1]), "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert "test patient of both" in err and err.count("\n") == 1
    assert not (tmp_path / "bad").exists()


def test_a_fold_ensemble_has_no_test_part_and_the_error_says_what_to_run(tmp_path, capsys):
    split = write_split({"train": ["a", "b"], "val": ["c"], "test": [], "member_test": [["a"], ["b"]]},
                        tmp_path / "split.json")
    assert main(["evaluate", "--split", str(split), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cmrseg: error:") and err.count("\n") == 1
    assert "--part val" in err and "--cross-validation" in err
    assert not (tmp_path / "out").exists()
