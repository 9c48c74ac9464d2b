"""Slice packs: the training slices of a split in one file, the same slices as from the ACDC folder, and a
training run from one."""

from __future__ import annotations

import pytest
import torch

import cmrseg.train as train_module
from cmrseg.errors import CMRSegError
from cmrseg.preprocess import PreprocessConfig
from cmrseg.training.data import load_slices
from cmrseg.training.pack import LEVELS, slices_from_pack
from cmrseg.training.pack import main as pack_main
from cmrseg.training.split import write_split
from cmrseg.training.state import load_state

SMALL = PreprocessConfig(size=(64, 64))
JITTER = 8  # the small_pack fixture's


@pytest.mark.shared_data
def test_a_pack_gives_the_slices_of_the_acdc_folder_to_within_its_7_bits(acdc_root, small_pack):
    for patients, margin in ((["patient042", "patient001"], JITTER), (["patient077"], 0)):
        direct = load_slices(acdc_root, patients, SMALL, margin)
        from_pack = load_slices(small_pack / "acdc.pack", patients, SMALL, margin, context=1)
        assert from_pack.volumes == direct.volumes and from_pack.margin == margin and from_pack.context == 1
        assert torch.equal(from_pack.labels, direct.labels)
        error = (from_pack.images.float() - direct.images.float()).abs().max()
        assert 0 < error <= 0.5 / LEVELS + 2**-11  # half a 7-bit step, plus both sides' float16 rounding
        assert from_pack.images.dtype == direct.images.dtype == torch.float16


@pytest.mark.shared_data
def test_a_pack_refuses_other_pre_processing_and_patients_it_does_not_hold(small_pack):
    with pytest.raises(CMRSegError, match="pre-processed with"):
        slices_from_pack(small_pack / "acdc.pack", ["patient001"], PreprocessConfig(size=(96, 96)), JITTER, 0)
    with pytest.raises(CMRSegError, match="holds no training slices of patient077: make it"):
        slices_from_pack(small_pack / "acdc.pack", ["patient077"], SMALL, JITTER, 0)
    with pytest.raises(CMRSegError, match="holds no validation slices of patient100: make it"):
        slices_from_pack(small_pack / "acdc.pack", ["patient077", "patient100"], SMALL, 0, 0)
    for margin in (JITTER + 2, 0):  # a run with another --jitter-px asks for its training patients with it
        with pytest.raises(CMRSegError, match=f"made with --jitter-px {JITTER}, not {margin}"):
            slices_from_pack(small_pack / "acdc.pack", ["patient001"], SMALL, margin, 0)


@pytest.mark.shared_data
def test_making_a_pack_never_overwrites_and_refuses_what_it_cannot_write(acdc_root, small_pack, tmp_path, capsys):
    pack = small_pack / "acdc.pack"
    before = pack.read_bytes()
    split = ["--split", str(small_pack / "split.json")]
    assert pack_main([str(acdc_root), *split, "--out", str(pack)]) == 2
    assert "exists; choose another --out" in capsys.readouterr().err and pack.read_bytes() == before
    assert pack_main([str(acdc_root), *split, "--out", str(tmp_path / "no" / "x.pack")]) == 2
    assert "does not exist" in capsys.readouterr().err
    write_split({"train": ["patient001"], "val": [], "test": []}, tmp_path / "noval.json")
    assert pack_main([str(acdc_root), "--split", str(tmp_path / "noval.json"), "--out", str(tmp_path / "x.pack")]) == 2
    assert "no training or no validation patients" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [tmp_path / "noval.json"]  # nothing half-written


@pytest.mark.slow
@pytest.mark.shared_data
def test_training_from_a_pack_needs_its_split_and_then_runs(small_pack, tmp_path, capsys):
    common = ["--data", str(small_pack / "acdc.pack"), "--size", "64", "--jitter-px", str(JITTER), "--batch-size", "4",
              "--iterations-per-epoch", "2", "--epochs", "1", "--threads", "1"]
    assert train_module.main(["--out", str(tmp_path / "nosplit"), *common]) == 2
    assert "is a slice pack: give the split" in capsys.readouterr().err
    assert not (tmp_path / "nosplit").exists()
    assert train_module.main(["--out", str(tmp_path / "run"), *common, "--split", str(small_pack / "split.json")]) == 0
    state = load_state(tmp_path / "run" / "last.pt")
    assert state["epoch"] == 1 and 0 <= state["history"][0]["dice_mean"] <= 1
    assert " slices of 4 frames, validating on 2 frames" in capsys.readouterr().out
    # oversampling needs the groups in the ACDC folder's Info.cfg files, which a pack does not hold
    assert train_module.main(["--out", str(tmp_path / "over"), *common, "--split", str(small_pack / "split.json"),
                              "--oversample", "ES=2"]) == 2
    assert "give that folder as --data, not the slice pack" in capsys.readouterr().err
    assert not (tmp_path / "over").exists()
