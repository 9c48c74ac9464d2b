"""The model card's account of a fold ensemble (scripts/model_card.py): the command line it prints for each
member must name the split file that scripts/make-folds writes for that member."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cmrseg.training.split import ensemble_split, file_sha256, make_fold_splits, write_split

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


def test_a_fine_tuned_distilled_network_names_the_committed_files_it_started_and_learned_from():
    shipped = "CMRSegModule/Resources/Models/cmrseg_dense_unet.pt"
    sha256 = file_sha256(model_card.REPO / shipped)
    commit = model_card.git("log", "-1", "--format=%h", "--", shipped)
    config = {"init": shipped, "init_member": 1, "distil_from": shipped, "distil_weight": 0.5}
    training = {"config": config, "init_sha256": sha256, "teacher_sha256": sha256}
    tuned, distilled = model_card.origin_lines(Path("runs/student"), training)
    assert tuned.startswith(f"- `student` was fine-tuned from network 1 of `{shipped}` as of commit {commit} ")
    assert distilled == (f"- `student` learned the probabilities of `{shipped}` as of commit {commit} (sha256 "
                         f"{sha256[:16]}...), that term 0.5 of its loss and the expert labels the rest.")
    assert model_card.augmentation_name({"config": {"augmentation": "strong", **config}}) == (
        "strong, fine-tuned from network 1, distilled (weight 0.5)")
    assert model_card.origin_lines(Path("runs/plain"), {"config": {"augmentation": "strong"}}) == []
    with pytest.raises(SystemExit, match="the distillation teacher .* is neither the file there"):
        model_card.distillation_line(Path("runs/student"), {**training, "teacher_sha256": "0" * 64})


def test_a_recorded_training_command_names_the_split_the_card_ships():
    old = "cmrseg train --data d --seed 1 --out OUT"  # recorded before commands named their split
    assert model_card.with_split(old, "S.json") == "cmrseg train --data d --seed 1 --split S.json --out OUT"
    new = "cmrseg train --data d --seed 1 --split runs/x/split.json --out OUT"
    assert model_card.with_split(new, "S.json") == "cmrseg train --data d --seed 1 --split S.json --out OUT"
