"""scripts/train-budget: runs side by side within a budget, their epochs scaled alike when they do not fit."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import subprocess
import sys

import pytest
import torch

from cmrseg.model import load_model, read_checkpoint
from conftest import REPO_ROOT

_loader = importlib.machinery.SourceFileLoader("train_budget", str(REPO_ROOT / "scripts" / "train-budget"))
train_budget = importlib.util.module_from_spec(importlib.util.spec_from_loader("train_budget", _loader))
_loader.exec_module(train_budget)


def test_every_run_shrinks_by_the_factor_that_lets_the_slowest_finish():
    # a: 2 of 100 epochs done, the last in 10 s; of 480 s left a restart costs the epoch in progress (10 s) and the
    # start again (its first epoch's 20 s extra): 45 more fit, 47 of its 100. b would fit twice over.
    scale, epochs = train_budget.scaled_epochs({"a": 100, "b": 50}, {"a": [30.0, 10.0], "b": [20.0, 5.0]}, 480.0)
    assert scale == pytest.approx(0.47) and epochs == {"a": 47, "b": 23}
    # its start before the first epoch (20 s: torch, the GPU, the pack) is paid again too: 43 more, 45 of 100
    scale, epochs = train_budget.scaled_epochs({"a": 100}, {"a": [30.0, 10.0]}, 480.0, startup={"a": 20.0})
    assert scale == pytest.approx(0.45) and epochs == {"a": 45}
    scale, epochs = train_budget.scaled_epochs({"a": 10, "b": 8}, {"a": [3.0, 1.0], "b": [2.0, 1.0]}, 480.0)
    assert scale == 1.0 and epochs == {"a": 10, "b": 8}
    # never fewer epochs than a run has trained, plus the one it is in
    scale, epochs = train_budget.scaled_epochs({"a": 100}, {"a": [30.0, 30.0, 30.0]}, 0.0)
    assert scale == pytest.approx(0.03) and epochs == {"a": 4}


def test_only_the_epoch_count_changes_in_a_resumed_run():
    words = ["--data", "P", "--epochs", "60", "--seed", "1"]
    assert train_budget.with_epochs(words, 15) == ["--data", "P", "--epochs", "15", "--seed", "1"]
    assert words[3] == "60"


def _two_seeds(small_pack, tmp_path, epochs: int, budget: int) -> tuple[dict, list[str], dict]:
    """Two tiny runs (seeds 0 and 1) of ``epochs`` from the small pack under ``budget`` seconds: the plan, the
    command that ran them and the summary it wrote."""
    common = ["--data", str(small_pack / "acdc.pack"), "--split", str(small_pack / "split.json"), "--size", "64",
              "--jitter-px", "8", "--batch-size", "4", "--iterations-per-epoch", "2", "--epochs", str(epochs)]
    plan = {"seed0": [*common, "--seed", "0"], "seed1": [*common, "--seed", "1"]}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    command = [sys.executable, str(REPO_ROOT / "scripts" / "train-budget"), str(tmp_path / "plan.json"),
               "--budget", str(budget), "--out", str(tmp_path / "runs"), "--device", "cpu"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=budget + 300)
    assert done.returncode == 0, done.stderr
    return plan, command, json.loads((tmp_path / "runs" / "budget.json").read_text())


@pytest.mark.slow
@pytest.mark.shared_data
def test_runs_side_by_side_finish_and_leave_float16_copies(small_pack, tmp_path):
    plan, _, summary = _two_seeds(small_pack, tmp_path, epochs=3, budget=600)
    assert summary["scale"] == 1.0
    runs = {name: (run["epochs_trained"], run["exit"]) for name, run in summary["runs"].items()}
    assert runs == {"seed0": (3, 0), "seed1": (3, 0)}
    for name in plan:
        run = tmp_path / "runs" / name
        half, full = read_checkpoint(run / "best16.pt"), read_checkpoint(run / "best.pt")
        assert half[0] == full[0]
        for key, tensor in full[1].items():
            if tensor.is_floating_point():
                assert half[1][key].dtype == torch.float16 and torch.equal(half[1][key], tensor.half()), key
        model, _ = load_model(run / "best16.pt")
        assert next(model.parameters()).dtype == torch.float32  # loaded back as float32 for inference


@pytest.mark.slow
@pytest.mark.shared_data
def test_runs_that_do_not_fit_are_all_shortened_alike_and_resumed(small_pack, tmp_path):
    plan, command, summary = _two_seeds(small_pack, tmp_path, epochs=2000, budget=90)
    assert 0 < summary["scale"] < 1  # 2000 epochs (about a second each here) never fit in 65 seconds
    planned = {name: run["epochs_planned"] for name, run in summary["runs"].items()}
    assert planned["seed0"] == planned["seed1"] < 2000
    for name in plan:
        log = (tmp_path / "runs" / f"{name}.log").read_text()
        assert f"now spans {planned[name]} epochs (was 2000)" in log
        assert (tmp_path / "runs" / name / "best16.pt").is_file()
    # a second start into the same folder is refused before anything runs
    again = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert again.returncode != 0 and "give another --out (nothing there is overwritten)" in again.stderr
    assert json.loads((tmp_path / "runs" / "budget.json").read_text()) == summary


def test_plans_that_cannot_run_as_asked_are_refused(tmp_path):
    def refusal(plan) -> str:
        (tmp_path / "plan.json").write_text(json.dumps(plan))
        done = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "train-budget"), str(tmp_path / "plan.json"),
                               "--budget", "600", "--out", str(tmp_path / "runs")], capture_output=True, text=True)
        assert done.returncode != 0 and not (tmp_path / "runs").exists()
        return done.stderr

    assert "must give --epochs N" in refusal({"a": ["--data", "P"]})
    assert "must give --epochs N" in refusal({"a": ["--epochs", "x"]})
    assert "this script sets them" in refusal({"a": ["--epochs", "3", "--out", "elsewhere"]})
    assert "this script sets them" in refusal({"a": ["--epochs", "3", "--dev", "cpu"]})  # an abbreviation
    assert "not those of cmrseg train" in refusal({"a": ["--epochs", "3", "--presett", "medium"]})
    assert "list of strings" in refusal({"a": "--epochs 3"})
    assert "not a plain folder name" in refusal({"../a": ["--epochs", "3"]})
    data = ["--epochs", "3", "--data", str(tmp_path)]
    assert "give a share in (0, 1], with --distil-from" in refusal({"a": [*data, "--distil-weight", "0.5"]})
    assert f"--distil-from {tmp_path / 'gone.pt'} does not exist" in refusal(
        {"a": [*data, "--distil-from", str(tmp_path / "gone.pt")]})
