"""A training run stopped inside an epoch (Ctrl-C, SIGTERM, or killed after a timed save) resumes from there and
ends exactly as an uninterrupted run does."""

from __future__ import annotations

import os
import signal

import pytest
import torch

import cmrseg.train as train_module
import cmrseg.training.loop as loop
from cmrseg.training.state import load_state

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]

# one training and one validation patient, tiny, three batches per epoch, two epochs
RUN = ["--max-patients", "1", "--size", "64", "--jitter-px", "4", "--batch-size", "4",
       "--iterations-per-epoch", "3", "--epochs", "2", "--threads", "1"]


def _train(out, *extra: str) -> int:
    return train_module.main(["--out", str(out), *extra])


@pytest.fixture(scope="module")
def reference(acdc_root, tmp_path_factory):
    """``last.pt`` of the run trained without a stop."""
    out = tmp_path_factory.mktemp("reference") / "run"
    assert _train(out, "--data", str(acdc_root), *RUN) == 0
    return load_state(out / "last.pt")


def _on_batch(monkeypatch, batch: int, action) -> None:
    """Do ``action`` while the ``batch``-th batch of the run (counted over its epochs, from 1) is prepared."""
    real, calls = loop.augment_batch, []

    def augment_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == batch:
            action()
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "augment_batch", augment_batch)


def _killed() -> None:
    raise KeyboardInterrupt  # as a second Ctrl-C: at once, between saves


def _assert_same_run(run: dict, reference: dict) -> None:
    assert run["epoch"] == reference["epoch"] == 2 and "partial" not in run
    for name, tensor in reference["model"].items():
        assert torch.equal(run["model"][name], tensor), name
    assert run["scheduler"]["last_epoch"] == reference["scheduler"]["last_epoch"] == 6
    drop = ("epoch_seconds",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in run["history"]] == [
        {k: v for k, v in r.items() if k not in drop} for r in reference["history"]
    ]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_after_the_batch_in_hand_saves_and_the_run_resumes_exactly(
    acdc_root, tmp_path, monkeypatch, capsys, reference, signum
):
    out = tmp_path / "run"
    # The signal arrives while batch 2 of epoch 1 is prepared: that batch is trained, saved, and the run stops.
    _on_batch(monkeypatch, 2, lambda: os.kill(os.getpid(), signum))
    before = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)]  # SIGINT is ignored in a background job
    assert _train(out, "--data", str(acdc_root), *RUN) == 130
    assert [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)] == before  # the handlers are given back
    err = capsys.readouterr().err
    assert "holds the run as it was in epoch 1 after batch 2 of 3: add --resume" in err
    state = load_state(out / "last.pt")
    assert state["epoch"] == 0 and state["partial"]["epoch"] == 1 and state["partial"]["step"] == 2
    assert state["scheduler"]["last_epoch"] == 2  # two optimizer steps taken, none half-way

    monkeypatch.undo()
    assert _train(out, "--resume", "--threads", "1") == 0
    assert "resuming in epoch 1 after batch 2 of 3." in capsys.readouterr().out
    _assert_same_run(load_state(out / "last.pt"), reference)


def test_timed_saves_let_a_run_killed_inside_an_epoch_resume_exactly(acdc_root, tmp_path, monkeypatch, capsys,
                                                                     reference):
    out = tmp_path / "run"
    # Saved after every batch (--checkpoint-minutes 0); killed while batch 2 of epoch 2 is prepared.
    _on_batch(monkeypatch, 5, _killed)
    assert _train(out, "--data", str(acdc_root), *RUN, "--checkpoint-minutes", "0") == 130
    assert "as it was in epoch 2 after batch 1 of 3" in capsys.readouterr().err
    state = load_state(out / "last.pt")
    assert state["epoch"] == 1 and state["partial"]["step"] == 1 and len(state["history"]) == 1

    monkeypatch.undo()
    assert _train(out, "--resume", "--threads", "1") == 0
    assert "resuming in epoch 2 after batch 1 of 3." in capsys.readouterr().out
    _assert_same_run(load_state(out / "last.pt"), reference)


def test_a_run_interrupted_while_it_is_set_up_leaves_no_folder(acdc_root, tmp_path, monkeypatch, capsys):
    import cmrseg.training.runner as runner

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "load_slices", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / "new", "--data", str(acdc_root), *RUN)
    assert not (tmp_path / "new").exists()
    assert _train(tmp_path / "new", "--data", str(acdc_root), *RUN, "--checkpoint-minutes", "-1") == 2
    assert "--checkpoint-minutes must be 0 or more" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()

    # Stopped at once in its first batch, before any save: the advice given is to start again, and that works.
    monkeypatch.undo()
    _on_batch(monkeypatch, 1, _killed)
    assert _train(tmp_path / "new", "--data", str(acdc_root), *RUN) == 130
    assert "stopped before the run was first saved: run the same command" in capsys.readouterr().err
    assert not (tmp_path / "new" / "last.pt").exists()
    monkeypatch.undo()
    assert _train(tmp_path / "new", "--data", str(acdc_root), *RUN) == 0


def test_a_stop_asked_for_in_the_last_batch_lets_the_run_finish(acdc_root, tmp_path, monkeypatch, capsys, reference):
    out = tmp_path / "run"
    _on_batch(monkeypatch, 6, lambda: os.kill(os.getpid(), signal.SIGINT))  # the last batch of the last epoch
    assert _train(out, "--data", str(acdc_root), *RUN) == 0
    assert "Done: best mean validation Dice" in capsys.readouterr().out
    _assert_same_run(load_state(out / "last.pt"), reference)
