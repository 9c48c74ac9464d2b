"""Ensembles of dense U-Nets: mean probabilities, checkpoints (float16 storage), loading for inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cmrseg.errors import CMRSegError
from cmrseg.inference import Segmenter
from cmrseg.model import Ensemble, build_model, load_model, save_checkpoint
from cmrseg.model.checkpoint import combine_checkpoints
from cmrseg.training.split import ensemble_split, file_sha256, write_split

LABELS = {"0": "background", "1": "RV", "2": "Myo", "3": "LV"}
PREPROCESSING = {"target_spacing_mm": 1.5, "size": [96, 96]}


def _network(seed: int):
    torch.manual_seed(seed)
    model = build_model("compact")
    # Non-trivial batch-norm statistics, so that members differ in more than their initial weights.
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def _checkpoint(tmp_path, seed: int, split: str = "abc", **changes):
    metadata = {"labels": LABELS, "preprocessing": dict(PREPROCESSING),
                "training": {"split_file": "split.json", "split_sha256": split, "epochs_trained": 10 + seed,
                             "best_epoch": 10 + seed, "epochs": 20, "loss": "wce"}}
    metadata.update(changes)
    return save_checkpoint(tmp_path / f"m{seed}.pt", _network(seed), metadata, preset="compact")


def test_softmax_of_the_output_is_the_mean_of_the_members_probabilities():
    a, b = _network(1), _network(2)
    ensemble = Ensemble.of([a, b]).eval()
    x = torch.rand(2, 1, 96, 96)
    with torch.no_grad():
        expected = (torch.softmax(a(x), 1) + torch.softmax(b(x), 1)) / 2
        got = torch.softmax(ensemble(x), 1)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    assert not torch.allclose(torch.softmax(a(x), 1), expected, atol=1e-3)  # the members do differ


def test_an_ensemble_of_one_network_decides_as_that_network():
    a = _network(3)
    x = torch.rand(1, 1, 96, 96)
    with torch.no_grad():
        assert torch.equal(Ensemble.of([a]).eval()(x).argmax(1), a(x).argmax(1))
    with pytest.raises(CMRSegError, match="at least one"):
        Ensemble([])


def test_an_ensemble_of_mixed_input_widths_refuses_one_input_for_all():
    wide = build_model("compact", in_channels=3)
    ensemble = Ensemble.of([_network(4), wide]).eval()
    with torch.no_grad(), pytest.raises(CMRSegError, match=r"\[1, 3\] input channels"):
        ensemble(torch.rand(1, 1, 96, 96))


def test_combined_checkpoint_round_trips_in_half_the_size(tmp_path):
    paths = [_checkpoint(tmp_path, 1), _checkpoint(tmp_path, 2)]
    ensemble, metadata = combine_checkpoints(paths)
    full = save_checkpoint(tmp_path / "ens32.pt", ensemble, metadata, preset="compact")
    half = save_checkpoint(tmp_path / "ens16.pt", ensemble, metadata, preset="compact", half=True)
    assert half.stat().st_size < 0.55 * full.stat().st_size
    loaded, meta = load_model(half)
    assert isinstance(loaded, Ensemble) and len(loaded.members) == 2
    assert meta["architecture"]["name"] == "ensemble" and meta["labels"] == LABELS
    assert meta["training"]["epochs_trained"] == [11, 12]
    assert [m["source"] for m in meta["training"]["members"]] == [str(p) for p in paths]
    # which weights each member is, so that a rewritten run file is never taken for it
    assert [m["source_sha256"] for m in meta["training"]["members"]] == [file_sha256(p) for p in paths]
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    x = torch.rand(2, 1, 96, 96)
    with torch.no_grad():
        reference, stored = torch.softmax(ensemble(x), 1), torch.softmax(loaded(x), 1)
    # float16 storage changes probabilities far less than bfloat16 inference does
    assert (stored - reference).abs().max() < 5e-3


def test_members_must_share_labels_preprocessing_and_split(tmp_path):
    good = _checkpoint(tmp_path, 1)
    with pytest.raises(CMRSegError, match="other pre-processing"):
        combine_checkpoints([good, _checkpoint(tmp_path, 2, preprocessing={"target_spacing_mm": 1.0})])
    with pytest.raises(CMRSegError, match="another split"):
        combine_checkpoints([good, _checkpoint(tmp_path, 3, split="def")])
    ensemble, metadata = combine_checkpoints([good])
    nested = save_checkpoint(tmp_path / "ens.pt", ensemble, metadata)
    with pytest.raises(CMRSegError, match="not a single dense U-Net"):
        combine_checkpoints([good, nested])


def test_fold_networks_combine_only_with_the_split_they_stand_on_together(tmp_path):
    folds = [{"dataset": "ACDC", "data": "acdc", "train": ["p1", "p2"], "val": ["p5"], "test": ["p3", "p4"]},
             {"dataset": "ACDC", "data": "acdc", "train": ["p1", "p3"], "val": ["p5"], "test": ["p2", "p4"]}]
    split = ensemble_split(folds)
    # Trained on what any fold trained on; p4, tested by both, is the one patient neither has seen.
    assert (split["train"], split["val"], split["test"]) == (["p1", "p2", "p3"], ["p5"], ["p4"])
    assert split["data"] == "acdc" and "around one validation part" in split["scheme"]
    assert ensemble_split([folds[0], folds[0]]) == folds[0]
    with pytest.raises(CMRSegError, match="validated on different patients"):
        ensemble_split([folds[0], {**folds[1], "val": ["p4"], "test": ["p2", "p5"]}])

    path = write_split(split, tmp_path / "split.json")
    members = [_checkpoint(tmp_path, 1, split="sha-of-fold0"), _checkpoint(tmp_path, 2, split="sha-of-fold1")]
    with pytest.raises(CMRSegError, match="another split"):
        combine_checkpoints(members)
    _, metadata = combine_checkpoints(members, split_record={"split_file": path.name,
                                                            "split_sha256": file_sha256(path)})
    assert metadata["training"]["split_file"] == "split.json"
    assert metadata["training"]["split_sha256"] == file_sha256(path)
    assert [m["split_sha256"] for m in metadata["training"]["members"]] == ["sha-of-fold0", "sha-of-fold1"]


def test_segmenter_runs_an_ensemble_checkpoint(tmp_path):
    ensemble, metadata = combine_checkpoints([_checkpoint(tmp_path, 1), _checkpoint(tmp_path, 2)])
    path = save_checkpoint(tmp_path / "ens.pt", ensemble, metadata, preset="compact", half=True)
    segmenter = Segmenter.load(path, device="cpu")
    # best.pt holds each run's best epoch, not its last: the description says which of how many
    assert "ensemble of 2 dense U-Nets" in segmenter.description and "epochs 11+12 of 20" in segmenter.description
    assert "epoch 11 of 20" in Segmenter.load(_checkpoint(tmp_path, 1), device="cpu").description
    probabilities = segmenter.network_probabilities(np.random.default_rng(0).random((3, 96, 96), np.float32))
    assert probabilities.shape == (3, 4, 96, 96)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
