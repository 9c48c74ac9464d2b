"""2.5-D input (cmrseg.neighbours): each slice with its neighbours in the stack as channels, in training and in
inference, and a one-slice network widened to it that starts as exactly itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import cmrseg.train as train_module
from cmrseg.inference import Segmenter
from cmrseg.io.acdc import load_frame
from cmrseg.model import Ensemble, build_model, load_model, read_checkpoint
from cmrseg.neighbours import context_of, neighbour_indices, with_neighbours
from cmrseg.preprocess import preprocess_frame
from cmrseg.shipped import default_model_path
from cmrseg.training.data import SliceSet
from cmrseg.training.warm_start import FIRST_CONVOLUTION, initial_weights

SHIPPED_SPLIT = default_model_path().with_suffix(".split.json")


def test_each_slice_comes_with_its_neighbours_clamped_at_the_stack_ends():
    assert neighbour_indices(10, 4, 1).tolist() == [[10, 10, 11], [10, 11, 12], [11, 12, 13], [12, 13, 13]]
    assert neighbour_indices(0, 3, 2).tolist() == [[0, 0, 0, 1, 2], [0, 0, 1, 2, 2], [0, 1, 2, 2, 2]]
    assert neighbour_indices(0, 3, 0).tolist() == [[0], [1], [2]]
    stack = np.arange(3, dtype=np.float32)[:, None, None] * np.ones((1, 2, 2), np.float32)
    assert with_neighbours(stack, 1)[:, :, 0, 0].tolist() == [[0, 0, 1], [0, 1, 2], [1, 2, 2]]


def test_training_crops_give_the_neighbours_of_their_own_stack_in_either_order():
    # Two stacks (frames) of 3 and 4 slices, each slice's pixels its own index; labels likewise.
    values = torch.arange(7, dtype=torch.float16)[:, None, None].expand(7, 8, 8).clone()
    data = SliceSet(values, values.to(torch.uint8), [("a_ED", 0, 3), ("b_ED", 3, 4)], margin=0, context=1)
    images, labels = data.crops(torch.arange(7))  # validation: fixed order
    assert images.shape == (7, 3, 8, 8)
    assert images[:, :, 0, 0].tolist() == [[0, 0, 1], [0, 1, 2], [1, 2, 2], [3, 3, 4], [3, 4, 5], [4, 5, 6],
                                           [5, 6, 6]]  # never a slice of the other stack
    assert labels[:, 0, 0].tolist() == list(range(7))
    seen = set()
    for seed in range(20):
        images, labels = data.crops(torch.arange(7), torch.Generator().manual_seed(seed))
        for k, channels in enumerate(images[:, :, 0, 0].tolist()):
            forward = data.neighbours[k].tolist()
            assert channels in (forward, forward[::-1])
            seen.add(channels == forward)
        assert labels[:, 0, 0].tolist() == list(range(7))  # the centre slice's labels, whatever the order
    assert seen == {True, False}
    one_slice = SliceSet(values, values.to(torch.uint8), [("a_ED", 0, 3), ("b_ED", 3, 4)], margin=0)
    assert one_slice.crops(torch.tensor([4]))[0].shape == (1, 1, 8, 8)


@pytest.mark.shared_data
def test_a_widened_network_starts_as_itself_and_inference_reads_each_slices_neighbours(acdc_root):
    frame = load_frame(acdc_root / "patient003", "ED")
    ensemble, metadata = load_model(default_model_path())
    member = ensemble.members[1]
    one = Segmenter(member, metadata, torch.device("cpu"), Segmenter.load(default_model_path()).config)
    slices, _ = preprocess_frame(frame.image, frame.study.spacing, one.config, None)
    expected = one.member_probabilities(slices)[0]

    widened = build_model("compact", in_channels=3)
    widened.load_state_dict(initial_weights(default_model_path(), 1, SHIPPED_SPLIT, context=1))
    widened.eval()
    assert context_of(widened) == 1 and context_of(member) == 0
    three = Segmenter(widened, metadata, torch.device("cpu"), one.config)
    np.testing.assert_allclose(three.member_probabilities(slices)[0], expected, atol=1e-4)  # zero for neighbours

    # Reading only the neighbour on the first channel, slice k is segmented as slice k - 1 was (0 at the end).
    weights = widened.state_dict()
    first = weights[FIRST_CONVOLUTION]
    first[:, 0], first[:, 1] = first[:, 1].clone(), 0
    widened.load_state_dict(weights)
    shifted = three.member_probabilities(slices)[0]
    np.testing.assert_allclose(shifted[1:], expected[:-1], atol=1e-4)
    np.testing.assert_allclose(shifted[0], expected[0], atol=1e-4)

    # In one ensemble with the one-slice member, each network still gets its own input.
    mixed = Segmenter(Ensemble.of([member, widened]).eval(), metadata, torch.device("cpu"), one.config)
    both = mixed.member_probabilities(slices)
    np.testing.assert_allclose(both[0], expected, atol=1e-4)
    np.testing.assert_allclose(both[1], shifted, atol=1e-4)


@pytest.mark.slow
@pytest.mark.shared_data
def test_a_2_5_d_run_starts_from_a_shipped_network_and_refuses_other_widths(acdc_root, tmp_path, capsys):
    shipped = default_model_path()
    tiny = ["--data", str(acdc_root), "--max-patients", "1", "--batch-size", "4", "--iterations-per-epoch", "1",
            "--epochs", "1", "--lr", "1e-12", "--loss", "wce+dice", "--class-weighting", "none", "--threads", "1",
            "--split", str(SHIPPED_SPLIT)]
    out = tmp_path / "context1"
    assert train_module.main(["--out", str(out), *tiny, "--init", str(shipped), "--init-member", "1",
                              "--neighbour-slices", "1"]) == 0
    assert "1 neighbour slices on each side" in capsys.readouterr().out
    meta, _ = read_checkpoint(out / "best.pt")
    assert meta["architecture"]["args"]["in_channels"] == 3
    assert meta["training"]["config"]["neighbour_slices"] == 1
    assert "--neighbour-slices 1" in meta["training"]["command"]
    # It begins as the shipped network (neighbour weights zero), which segments its validation patient.
    assert meta["metrics"]["validation"]["dice_mean"] > 0.8
    network, _ = load_model(out / "best.pt")
    assert context_of(network) == 1

    assert train_module.main(["--out", str(tmp_path / "wider"), *tiny, "--init", str(out / "best.pt"),
                              "--neighbour-slices", "2"]) == 2
    assert "reads 1 neighbour slices on each side" in capsys.readouterr().err
    assert train_module.main(["--out", str(tmp_path / "too_many"), *tiny, "--neighbour-slices", "4"]) == 2
    assert "error: --neighbour-slices 4: give 0 (one slice) to 3 on each side." in capsys.readouterr().err
    assert not (tmp_path / "wider").exists() and not (tmp_path / "too_many" / "last.pt").exists()
