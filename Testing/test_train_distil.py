"""Distillation (``cmrseg train --distil-from``): the loss it adds, the teacher's probabilities, and a real run."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import cmrseg.train as train_module
import cmrseg.training.runner as runner
from cmrseg.augment import AUGMENTATIONS
from cmrseg.errors import CMRSegError
from cmrseg.inference import Segmenter
from cmrseg.labels import CHECKPOINT_LABELS
from cmrseg.losses import SegmentationLoss
from cmrseg.model import build_model, load_model, read_checkpoint, save_checkpoint
from cmrseg.preprocess import PreprocessConfig
from cmrseg.training.config import TrainConfig
from cmrseg.training.data import SliceSet
from cmrseg.training.distil import Teacher, load_teacher
from cmrseg.training.loop import Runtime, train_epoch
from cmrseg.training.split import file_sha256, write_split
from cmrseg.training.state import load_state

CPU = Runtime(torch.device("cpu"), "fp32", channels_last=False)
ONES = torch.ones(4)  # a run's class weights: none


def _network(seed: int = 0, in_channels: int = 1) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("compact", base_filters=4, in_channels=in_channels).eval()


def test_the_loss_adds_the_divergence_from_the_teacher_in_its_share():
    teacher = Teacher(_network(), 0.3, CPU, slice(None))
    images = torch.rand(2, 1, 32, 32)
    target = teacher.probabilities(images)
    label_loss = torch.tensor(0.8)
    # A network that outputs the teacher's probabilities has no divergence: only the labels' share is left.
    assert float(teacher.mixed_loss(label_loss, torch.log(target), images)) == pytest.approx(0.7 * 0.8, abs=1e-5)
    # Against uniform probabilities the divergence is log C minus the teacher's entropy, per pixel.
    entropy = float(-(target * torch.log(target)).sum(dim=1).mean())
    uniform = torch.zeros_like(target, requires_grad=True)
    mixed = teacher.mixed_loss(label_loss, uniform, images)
    assert float(mixed.detach()) == pytest.approx(0.7 * 0.8 + 0.3 * (math.log(4) - entropy), rel=1e-5)
    mixed.backward()
    assert uniform.grad is not None and float(uniform.grad.abs().sum()) > 0


def test_training_with_a_teacher_leaves_the_teacher_as_it_was():
    teacher_network = _network(seed=1)
    before = {k: v.clone() for k, v in teacher_network.state_dict().items()}  # weights and batch-norm statistics
    teacher = Teacher(teacher_network, 0.5, CPU, slice(None))
    student = _network(seed=2)
    rng = np.random.default_rng(0)
    slices = SliceSet(torch.from_numpy(rng.random((8, 40, 40), dtype=np.float32)).half(),
                      torch.from_numpy(rng.integers(0, 4, (8, 40, 40), dtype=np.uint8)), [("v", 0, 8)], margin=4)
    optimizer = torch.optim.Adam(student.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    student_before = [p.clone() for p in student.parameters()]
    train_epoch(student, slices, SegmentationLoss("wce"), optimizer, scheduler, CPU, AUGMENTATIONS["strong"],
                torch.Generator().manual_seed(0), batch_size=4, iterations=2, teacher=teacher)
    assert not teacher_network.training
    for name, tensor in teacher_network.state_dict().items():
        assert torch.equal(tensor, before[name]), name
    assert all(p.grad is None for p in teacher_network.parameters())
    assert any(not torch.equal(p, q) for p, q in zip(student.parameters(), student_before, strict=True))


def _checkpoint(path: Path, network, split: Path, size: int = 32, prior_correction: bool = False,
                labels: dict | None = None) -> Path:
    metadata = {
        "labels": labels or CHECKPOINT_LABELS,
        "preprocessing": PreprocessConfig(size=(size, size)).as_dict(),
        "training": {"split_sha256": file_sha256(split), "class_weights": [0.05, 1.6, 1.2, 0.9]},
        "inference": {"prior_correction": prior_correction},
    }
    return save_checkpoint(path, network, metadata, preset="compact")


def test_the_teacher_gives_what_its_inference_gives_and_must_match_the_run(tmp_path):
    split = write_split({"train": ["patient001"], "val": ["patient002"], "test": []}, tmp_path / "split.json")
    config = TrainConfig(data="x", size=32, distil_from=str(tmp_path / "teacher.pt"), distil_weight=0.5)
    _checkpoint(tmp_path / "teacher.pt", _network(), split, prior_correction=True)
    teacher, sha256 = load_teacher(config, split, CPU, ONES)
    assert sha256 == file_sha256(tmp_path / "teacher.pt") and teacher.scale is not None
    # the probabilities inference would output, class-weight prior correction included
    segmenter = Segmenter.load(tmp_path / "teacher.pt", device="cpu", bf16=False)
    slices = np.random.default_rng(0).random((3, 32, 32), dtype=np.float32)
    expected = segmenter.corrected(segmenter.member_probabilities(slices).mean(axis=0))
    got = teacher.probabilities(torch.from_numpy(slices)[:, None]).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)

    # a run with class weights learns the target as weighted cross-entropy would scale it
    weights = torch.tensor([0.5, 2.0, 1.0, 1.0])
    weighted = load_teacher(config, split, CPU, weights)[0].probabilities(torch.from_numpy(slices)[:, None]).numpy()
    scaled = expected * weights.numpy()[None, :, None, None]
    np.testing.assert_allclose(weighted, scaled / scaled.sum(axis=1, keepdims=True), atol=1e-5)

    # a 2.5-D run reads its centre channel into a one-slice teacher
    wide = load_teacher(TrainConfig(**{**config.__dict__, "neighbour_slices": 1}), split, CPU, ONES)[0]
    stack = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(wide.probabilities(stack), teacher.probabilities(stack[:, 1:2]))

    other = write_split({"train": ["patient002"], "val": ["patient001"], "test": []}, tmp_path / "other.json")
    with pytest.raises(CMRSegError, match="trained on another split"):
        load_teacher(config, other, CPU, ONES)
    with pytest.raises(CMRSegError, match="must match"):
        load_teacher(TrainConfig(**{**config.__dict__, "size": 48}), split, CPU, ONES)
    _checkpoint(tmp_path / "other_labels.pt", _network(), split, labels={"0": "background", "1": "LV"})
    with pytest.raises(CMRSegError, match="has the labels"):
        load_teacher(TrainConfig(**{**config.__dict__, "distil_from": str(tmp_path / "other_labels.pt")}), split, CPU,
                     ONES)
    _checkpoint(tmp_path / "wide.pt", _network(in_channels=3), split)
    with pytest.raises(CMRSegError, match="a teacher must read one slice or the run's 0"):
        load_teacher(TrainConfig(**{**config.__dict__, "distil_from": str(tmp_path / "wide.pt")}), split, CPU, ONES)


def test_the_distillation_weight_needs_a_teacher_and_a_share(capsys, tmp_path):
    for extra in (["--distil-weight", "0.5"], ["--distil-from", "t.pt", "--distil-weight", "0"],
                  ["--distil-from", "t.pt", "--distil-weight", "1.5"]):
        assert train_module.main(["--data", "x", "--out", str(tmp_path / "run"), *extra]) == 2
        assert "give a share in (0, 1], with --distil-from" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


PACKED = ["--size", "64", "--jitter-px", "8", "--batch-size", "4", "--iterations-per-epoch", "2", "--threads", "1"]


@pytest.mark.slow
@pytest.mark.shared_data
def test_a_distilled_run_records_its_teacher_resumes_exactly_and_refuses_a_changed_one(
    small_pack, tmp_path, monkeypatch, capsys
):
    data = ["--data", str(small_pack / "acdc.pack"), "--split", str(small_pack / "split.json"), *PACKED]
    assert train_module.main(["--out", str(tmp_path / "teacher"), *data, "--epochs", "1"]) == 0
    teacher = tmp_path / "teacher" / "best.pt"
    student = [*data, "--epochs", "2", "--distil-from", str(teacher), "--distil-weight", "0.7"]
    # a teacher trained on another split is refused before anything is written
    reordered = write_split({"train": ["patient042", "patient001"], "val": ["patient077"], "test": []},
                            tmp_path / "reordered.json")
    assert train_module.main(["--out", str(tmp_path / "wrong"), *student, "--split", str(reordered)]) == 2
    assert "trained on another split" in capsys.readouterr().err and not (tmp_path / "wrong").exists()

    assert train_module.main(["--out", str(tmp_path / "ref"), *student]) == 0
    assert f"Distilling from {teacher} (weight 0.7)" in capsys.readouterr().out
    real_epoch, calls = runner.train_epoch, []

    def killed_in_epoch_2(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(runner, "train_epoch", killed_in_epoch_2)
    assert train_module.main(["--out", str(tmp_path / "run"), *student]) == 130
    monkeypatch.setattr(runner, "train_epoch", real_epoch)
    assert train_module.main(["--out", str(tmp_path / "run"), "--resume", "--threads", "1"]) == 0
    ref, run = load_state(tmp_path / "ref" / "last.pt"), load_state(tmp_path / "run" / "last.pt")
    for name, tensor in ref["model"].items():
        assert torch.equal(run["model"][name], tensor), name
    assert ref["teacher_sha256"] == file_sha256(teacher)
    training = read_checkpoint(tmp_path / "ref" / "best.pt")[0]["training"]
    assert training["teacher_sha256"] == file_sha256(teacher)
    assert f"--distil-from {teacher} --distil-weight 0.7" in training["command"]

    # the teacher's file replaced: the run cannot go on as it began
    network, metadata = load_model(teacher)
    torch.nn.init.zeros_(next(network.parameters()))
    save_checkpoint(teacher, network, metadata)
    assert train_module.main(["--out", str(tmp_path / "run"), "--resume", "--epochs", "3", "--threads", "1"]) == 2
    assert "is not the model this run was distilling from" in capsys.readouterr().err
    # nor can a run that was not distilling start to
    assert train_module.main(["--out", str(tmp_path / "teacher"), "--resume", "--epochs", "2", "--threads", "1",
                              "--distil-from", str(teacher)]) == 2
    assert "this run was not distilling; --distil-from needs a new run" in capsys.readouterr().err

