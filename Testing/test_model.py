"""The dense U-Net (shapes, size, determinism) and its self-describing checkpoints."""

from __future__ import annotations

import json

import pytest
import torch

from cmrseg.errors import CMRSegError
from cmrseg.model import DenseUNet, build_model, count_parameters, load_model, read_checkpoint, save_checkpoint
from cmrseg.model.checkpoint import FORMAT, VERSION
from cmrseg.model.dense_unet import COMPACT_PARAMETERS, PAPER_PARAMETERS, preset_args


@pytest.fixture(scope="module")
def compact() -> DenseUNet:
    torch.manual_seed(0)
    return build_model("compact").eval()


@pytest.mark.parametrize("shape", [(176, 176), (128, 128), (96, 96), (96, 160)])
def test_output_has_one_logit_map_per_class_at_input_size(compact, shape):
    with torch.no_grad():
        out = compact(torch.rand(2, 1, *shape))
    assert out.shape == (2, 4, *shape)
    assert out.dtype == torch.float32


def test_paper_preset_has_the_published_widths_and_stated_size():
    model = build_model("paper")
    widths = [block[0].out_channels for block in model.encoder]
    assert widths == [48, 96, 192, 384, 768]
    assert [up.out_channels for up in model.upsample] == [4, 4, 4, 4]
    assert [up.kernel_size for up in model.upsample] == [(4, 4)] * 4
    assert count_parameters(model) == PAPER_PARAMETERS == 17_224_712
    assert count_parameters(build_model("compact")) == COMPACT_PARAMETERS


def test_dense_block_concatenates_all_earlier_maps():
    model = build_model("compact")
    block = model.skips[0]  # 16 input maps, 3 layers of growth 4
    assert [layer[0].in_channels for layer in block.layers] == [16, 20, 24]
    assert block.out_channels == 28
    assert block(torch.rand(1, 16, 8, 8)).shape == (1, 28, 8, 8)


def test_size_not_divisible_by_16_is_refused(compact):
    with pytest.raises(CMRSegError, match="multiples of 16"):
        compact(torch.rand(1, 1, 100, 96))


def test_eval_mode_is_deterministic(compact):
    x = torch.rand(3, 1, 96, 96)
    with torch.no_grad():
        assert torch.equal(compact(x), compact(x))
        # batch norm uses running statistics: a sample's output does not depend on the rest of the batch
        torch.testing.assert_close(compact(x[:1]), compact(x)[:1], rtol=1e-4, atol=1e-5)


def test_presets_and_overrides():
    assert preset_args("compact")["base_filters"] == 16
    assert preset_args("paper", depth=4)["depth"] == 4
    with pytest.raises(CMRSegError, match="Unknown model preset"):
        preset_args("huge")
    with pytest.raises(CMRSegError, match="Unknown dense U-Net argument"):
        preset_args("paper", width=3)


def test_checkpoint_round_trip_restores_weights_and_metadata(compact, tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", compact, {"labels": {"1": "RV"}, "metrics": {"dice": 0.9}}, "compact")
    model, meta = load_model(path)
    assert meta["format"] == FORMAT and meta["version"] == VERSION
    assert meta["architecture"] == {"name": "dense_unet", "preset": "compact", "args": compact.args}
    assert meta["metrics"] == {"dice": 0.9} and "cmrseg_version" in meta
    assert not model.training
    x = torch.rand(1, 1, 96, 96)
    with torch.no_grad():
        assert torch.equal(model(x), compact(x))
    raw = torch.load(path, weights_only=True)  # plain data only
    assert set(raw) == {"format", "version", "metadata", "state_dict"}
    assert json.loads(raw["metadata"])["architecture"]["args"]["base_filters"] == 16


def test_files_that_are_not_checkpoints_are_refused(tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("not a model")
    with pytest.raises(CMRSegError, match="not a CMRSeg model checkpoint"):
        load_model(text)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(CMRSegError, match="format marker"):
        load_model(other)
    with pytest.raises(CMRSegError, match="does not exist"):
        load_model(tmp_path / "missing.pt")


class _Payload:  # a pickled object would run code on load; weights_only refuses it
    pass


def test_pickled_objects_are_not_loaded(tmp_path):
    path = tmp_path / "code.pt"
    torch.save({"format": FORMAT, "version": VERSION, "obj": _Payload()}, path)
    with pytest.raises(CMRSegError, match="not a CMRSeg model checkpoint"):
        read_checkpoint(path)


def test_wrong_format_version_is_refused(compact, tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", compact, {})
    raw = torch.load(path, weights_only=True)
    raw["version"] = VERSION + 1
    torch.save(raw, path)
    with pytest.raises(CMRSegError, match="format version 2"):
        load_model(path)


def with_architecture(path, **changes):
    """The checkpoint at ``path`` rewritten with its architecture metadata changed."""
    raw = torch.load(path, weights_only=True)
    meta = json.loads(raw["metadata"])
    meta["architecture"].update(changes.pop("architecture", {}))
    meta["architecture"]["args"].update(changes)
    raw["metadata"] = json.dumps(meta)
    torch.save(raw, path)
    return path


def test_weights_that_do_not_fit_the_architecture_are_refused(compact, tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", compact, {})
    with pytest.raises(CMRSegError, match="do not match the network"):
        load_model(with_architecture(path, base_filters=8))
    with pytest.raises(CMRSegError, match="Unknown network architecture"):
        load_model(with_architecture(path, architecture={"name": "transformer"}))
    # A network reads one slice or one with as many neighbours on either side: 2 channels has no centre slice.
    path = save_checkpoint(tmp_path / "m2.pt", compact, {})
    with pytest.raises(CMRSegError, match="2 channels"):
        load_model(with_architecture(path, in_channels=2))
    assert build_model("compact", in_channels=3).args["in_channels"] == 3
