"""The model card's account of a fold ensemble (scripts/model_card.py): the command line it prints for each
member must name the split file that scripts/make-folds writes for that member."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cmrseg.training.split import ensemble_split, make_fold_splits, write_split

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import model_card  # noqa: E402  (a script's module, beside ship-model)


@pytest.mark.shared_data
def test_each_fold_member_is_named_by_the_make_folds_file_of_its_split(acdc_root, tmp_path, monkeypatch):
    monkeypatch.setattr(model_card, "DATA", acdc_root)
    validation = make_fold_splits(acdc_root, folds=5)[0]["val"]
    folds = make_fold_splits(acdc_root, folds=5, validation=validation)
    other = make_fold_splits(acdc_root, folds=4, seed=3, validation=validation)[1]  # no file make-folds writes
    runs = []
    for name, split in (("a", folds[2]), ("b", folds[0]), ("c", other)):
        write_split(split, tmp_path / name / "split.json")
        runs.append(tmp_path / name)
    item = {"split": ensemble_split([folds[2], folds[0], other]),
            "metadata": {"architecture": {"name": "ensemble"},
                         "training": {"members": [{"source": str(run / "best.pt")} for run in runs]}}}
    count, files = model_card.fold_files(item)
    assert count == 5
    assert files == {runs[0]: "runs/folds/fold2.json", runs[1]: "runs/folds/fold0.json",
                     runs[2]: f"{runs[2]}/split.json"}
    single = {"split": folds[0], "metadata": {"architecture": {"name": "dense_unet"}}}
    assert model_card.fold_files(single) == (0, {})  # one network on one split: no fold files to name
