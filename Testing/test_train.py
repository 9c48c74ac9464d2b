"""The training command: split, schedule, a short real training run, resume, and the checkpoint it ships."""

from __future__ import annotations

import argparse
import csv
import json
from dataclasses import asdict

import pytest
import torch

import cmrseg.train as train_module
import cmrseg.training.runner as runner
from cmrseg.augment import AUGMENTATIONS, NO_AUGMENTATION
from cmrseg.errors import CMRSegError
from cmrseg.io.acdc import list_patients, read_info
from cmrseg.losses import LOSSES, WEIGHTINGS, SegmentationLoss
from cmrseg.model import PRESETS, build_model, load_model, read_checkpoint
from cmrseg.preprocess import PreprocessConfig
from cmrseg.shipped import default_model_path
from cmrseg.training.config import (
    AUGMENTATION_NAMES,
    LOSS_NAMES,
    PRESET_NAMES,
    WEIGHTING_NAMES,
    TrainConfig,
    reproducing_command,
    resolve_config,
)
from cmrseg.training.data import epoch_order, load_slices
from cmrseg.training.loop import Runtime
from cmrseg.training.sampling import parse_oversample, slice_weights, weighted_order
from cmrseg.training.schedule import lr_factor
from cmrseg.training.split import ensemble_split, file_sha256, make_fold_splits, make_split, read_split, write_split
from cmrseg.training.state import load_state


def test_schedule_warms_up_then_decays_to_one_percent():
    factors = [lr_factor(step, total_steps=100, warmup_steps=10) for step in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[9:], factors[10:], strict=False))
    assert factors[-1] == pytest.approx(0.01, abs=0.002)


def test_epoch_order_visits_every_slice_before_repeating():
    order = epoch_order(10, 4, 5, torch.Generator().manual_seed(0))
    assert order.shape == (5, 4)
    assert sorted(order.flatten()[:10].tolist()) == list(range(10))


def test_oversampling_is_parsed_strictly_and_refused_with_a_clear_error(capsys):
    assert parse_oversample("es=2, HCM=1.5") == {"ES": 2.0, "HCM": 1.5}
    for bad in ("ES", "ES=0", "ES=-1", "ES=two", "ES=nan", "XX=2", "ES=2,ES=3", ""):
        with pytest.raises(CMRSegError, match="--oversample"):
            parse_oversample(bad)
    assert train_module.main(["--out", "x", "--data", "d", "--oversample", "HCM=two"]) == 2
    assert capsys.readouterr().err.startswith("cmrseg train: error: --oversample 'HCM=two'")


@pytest.mark.parametrize("option", ["--lr inf", "--lr nan", "--lr 0", "--weight-decay -5", "--warmup-epochs nan",
                                    "--jitter-px -10", "--max-patients -1", "--spacing-mm 0", "--threads -1"])
def test_numeric_settings_that_cannot_train_are_refused_before_any_work(capsys, tmp_path, option):
    """An infinite rate trained a network of NaN saved as best.pt; others failed deep in the run, or dropped a
    patient (--max-patients -1 took all but one)."""
    name, value = option.split()
    assert train_module.main(["--out", str(tmp_path / "run"), "--data", "d", name, value]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cmrseg train: error: {name} ") and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()


@pytest.mark.shared_data
def test_oversampling_draws_the_named_phases_and_groups_in_proportion(acdc_root):
    groups = {read_info(p)["Group"]: p.name for p in list_patients(acdc_root)}
    data = load_slices(acdc_root, [groups["HCM"], groups["NOR"]], PreprocessConfig(size=(32, 32)))
    weights = slice_weights(data, acdc_root, "ES=2,HCM=3")
    expected = {"HCM_ED": 3.0, "HCM_ES": 6.0, "NOR_ED": 1.0, "NOR_ES": 2.0}
    volumes = {name.replace(groups["HCM"], "HCM").replace(groups["NOR"], "NOR"): (first, count)
               for name, first, count in data.volumes}
    for name, (first, count) in volumes.items():
        assert weights[first : first + count].tolist() == [expected[name]] * count
    order = weighted_order(weights, 50, 400, torch.Generator().manual_seed(0))
    drawn = torch.bincount(order.flatten(), minlength=len(data)).double() / order.numel()
    for name, (first, count) in volumes.items():
        share = expected[name] * count / float(weights.sum())
        assert float(drawn[first : first + count].sum()) == pytest.approx(share, abs=0.01)


def test_command_line_choices_match_the_implementations():
    assert set(PRESET_NAMES) == set(PRESETS)
    assert LOSS_NAMES == LOSSES and WEIGHTING_NAMES == WEIGHTINGS
    assert set(AUGMENTATION_NAMES) == set(AUGMENTATIONS)


def test_augmentation_settings_are_chosen_by_name_and_repeated_in_the_command():
    parser = train_module.add_train_arguments(argparse.ArgumentParser())
    config = resolve_config(parser.parse_args(["--out", "x", "--data", "d", "--augmentation", "strong"]), None)
    assert AUGMENTATIONS[config.augmentation].max_scale > AUGMENTATIONS["standard"].max_scale
    assert "--augmentation strong" in reproducing_command(config)
    config = resolve_config(parser.parse_args(["--out", "x", "--data", "d", "--no-augment"]), None)
    assert AUGMENTATIONS[config.augmentation] == NO_AUGMENTATION
    # A run recorded before augmentation had names (a yes/no flag) resumes with the standard setting.
    old = {k: v for k, v in asdict(TrainConfig(data="/d")).items() if k != "augmentation"} | {"augment": True}
    assert resolve_config(parser.parse_args(["--out", "x", "--resume"]), old).augmentation == "standard"
    old["augment"] = False
    assert resolve_config(parser.parse_args(["--out", "x", "--resume"]), old).augmentation == "none"
    # A new run trains the shipped model's best single recipe unless told otherwise.
    new = resolve_config(parser.parse_args(["--out", "x", "--data", "d"]), None)
    assert (new.loss, new.class_weighting, new.augmentation, new.epochs) == ("wce+dice", "none", "strong", 60)


def test_resume_refuses_changed_settings():
    parser = train_module.add_train_arguments(argparse.ArgumentParser())
    stored = {**asdict(TrainConfig(data="/d")), "loss": "wce"}
    args = parser.parse_args(["--out", "x", "--resume", "--epochs", "9"])
    assert resolve_config(args, stored).epochs == 9  # more epochs may be asked for
    args = parser.parse_args(["--out", "x", "--resume", "--loss", "wce+dice"])
    with pytest.raises(CMRSegError, match="different settings: --loss wce\\+dice"):
        resolve_config(args, stored)
    with pytest.raises(CMRSegError, match="multiple of 16"):
        resolve_config(parser.parse_args(["--out", "x", "--data", "d", "--size", "100"]), None)
    with pytest.raises(CMRSegError, match="--data"):
        resolve_config(parser.parse_args(["--out", "x"]), None)


@pytest.mark.shared_data
def test_split_is_stratified_70_15_15_and_seeded(acdc_root, tmp_path):
    split = make_split(acdc_root, seed=0)
    assert (len(split["train"]), len(split["val"]), len(split["test"])) == (70, 15, 15)
    assert not set(split["train"]) & set(split["val"]) | set(split["val"]) & set(split["test"])
    groups = {p.name: read_info(p)["Group"] for p in list_patients(acdc_root)}
    for part, per_group in (("train", 14), ("val", 3), ("test", 3)):
        counts = {g: sum(groups[p] == g for p in split[part]) for g in set(groups.values())}
        assert set(counts.values()) == {per_group}, (part, counts)
    assert make_split(acdc_root, seed=0) == split and make_split(acdc_root, seed=1) != split
    assert read_split(write_split(split, tmp_path / "split.json")) == split
    for part in ("val", "test"):  # a patient in two parts is refused: it would not be held out
        overlapping = dict(split, **{part: split[part] + [split["train" if part == "val" else "val"][0]]})
        with pytest.raises(CMRSegError, match="in more than one part"):
            read_split(write_split(overlapping, tmp_path / "overlap.json"))
    repeated = dict(split, test=split["test"] + split["test"][:1])  # counted twice in every table of the part
    with pytest.raises(CMRSegError, match=f"names {split['test'][0]} more than once in its test part"):
        read_split(write_split(repeated, tmp_path / "repeated.json"))


@pytest.mark.shared_data
def test_five_folds_test_every_patient_once_and_never_choose_with_it(acdc_root, tmp_path):
    folds = make_fold_splits(acdc_root, folds=5, seed=0)
    groups = {p.name: read_info(p)["Group"] for p in list_patients(acdc_root)}
    tested = [name for split in folds for name in split["test"]]
    assert sorted(tested) == sorted(groups)  # every patient once
    for split in folds:
        assert (len(split["train"]), len(split["val"]), len(split["test"])) == (65, 15, 20)
        parts = [set(split[part]) for part in ("train", "val", "test")]
        assert sum(len(p) for p in parts) == len(set().union(*parts)) == 100  # no patient in two parts
        for part, per_group in (("train", 13), ("val", 3), ("test", 4)):
            counts = {g: sum(groups[p] == g for p in split[part]) for g in set(groups.values())}
            assert set(counts.values()) == {per_group}, (part, counts)
        assert read_split(write_split(split, tmp_path / "fold.json")) == split  # what cmrseg train --split reads
    assert make_fold_splits(acdc_root, folds=5, seed=0) == folds and make_fold_splits(acdc_root, 5, seed=1) != folds


@pytest.mark.shared_data
def test_folds_around_one_validation_part_test_everyone_else_once_and_never_train_on_it(acdc_root):
    validation = make_split(acdc_root, seed=0)["val"]
    folds = make_fold_splits(acdc_root, folds=5, seed=0, validation=validation)
    groups = {p.name: read_info(p)["Group"] for p in list_patients(acdc_root)}
    tested = [name for split in folds for name in split["test"]]
    assert sorted(tested) == sorted(set(groups) - set(validation))  # everyone else once
    for split in folds:
        assert split["val"] == sorted(validation)
        assert (len(split["train"]), len(split["val"]), len(split["test"])) == (68, 15, 17)
        parts = [set(split[part]) for part in ("train", "val", "test")]
        assert sum(len(p) for p in parts) == len(set().union(*parts)) == 100
        counts = {g: sum(groups[p] == g for p in split["test"]) for g in set(groups.values())}
        assert set(counts.values()) <= {3, 4}, counts  # 17 per group outside validation, spread over 5 folds
    with pytest.raises(CMRSegError, match="patient999"):
        make_fold_splits(acdc_root, folds=5, validation=[*validation, "patient999"])
    with pytest.raises(CMRSegError, match="validation part is empty"):
        make_fold_splits(acdc_root, folds=5, validation=[])
    # All five networks together: trained on the 85, chosen and calibrated on the 15, no patient left to test.
    together = ensemble_split(folds)
    assert (len(together["train"]), together["val"], together["test"]) == (85, sorted(validation), [])
    assert together["member_test"] == [sorted(split["test"]) for split in folds]  # who tested whom, for the card
    with pytest.raises(CMRSegError, match="validated on different patients"):
        ensemble_split(make_fold_splits(acdc_root, folds=5, seed=0))


@pytest.mark.slow
@pytest.mark.shared_data
def test_compact_network_overfits_a_fixed_real_batch(acdc_root):
    torch.set_num_threads(1)
    data = load_slices(acdc_root, ["patient001", "patient002"], PreprocessConfig(size=(96, 96)))
    images, labels = data.crops(torch.arange(0, len(data), len(data) // 8)[:8])
    assert set(labels.unique().tolist()) == {0, 1, 2, 3}
    torch.manual_seed(0)
    runtime = Runtime(torch.device("cpu"), "bf16")
    model = build_model("compact").to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = SegmentationLoss("wce+dice", torch.tensor([0.2, 1.0, 1.0, 1.0]))
    losses = []
    for _ in range(20):
        with runtime.autocast():
            logits = model(runtime.to_input(images))
        loss = loss_fn(logits.float(), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]
    assert sum(losses[-5:]) < sum(losses[:5])


def _train(out, *extra: str) -> int:
    """``cmrseg train`` on one training and one validation patient, tiny and fast."""
    argv = ["--out", str(out), "--threads", "1", *extra]
    return train_module.main(argv)


FAST = ["--max-patients", "1", "--size", "64", "--jitter-px", "4", "--batch-size", "4", "--iterations-per-epoch", "2"]


@pytest.mark.slow
@pytest.mark.shared_data
def test_training_run_resumes_exactly_and_ships_a_loadable_model(acdc_root, tmp_path, monkeypatch, capsys):
    data = ["--data", str(acdc_root), *FAST, "--epochs", "3"]
    # Uninterrupted reference run.
    assert _train(tmp_path / "ref", *data) == 0
    # The same run, killed during its third epoch ...
    real_epoch, calls = runner.train_epoch, []

    def killed_in_epoch_3(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(runner, "train_epoch", killed_in_epoch_3)
    assert _train(tmp_path / "run", *data) == 130
    assert "holds the run as it was after epoch 2: add --resume" in capsys.readouterr().err
    monkeypatch.setattr(runner, "train_epoch", real_epoch)
    assert load_state(tmp_path / "run" / "last.pt")["epoch"] == 2
    # ... refuses a fresh start in the same folder, and resumes at epoch 3 with the stored settings.
    assert _train(tmp_path / "run", *data) == 2
    assert "already holds a training run" in capsys.readouterr().err
    assert _train(tmp_path / "run", "--resume") == 0
    assert "resuming at epoch 3" in capsys.readouterr().out

    ref, run = load_state(tmp_path / "ref" / "last.pt"), load_state(tmp_path / "run" / "last.pt")
    assert run["epoch"] == ref["epoch"] == 3
    for name, tensor in ref["model"].items():
        assert torch.equal(run["model"][name], tensor), name
    assert run["scheduler"]["last_epoch"] == ref["scheduler"]["last_epoch"] == 6
    drop = ("epoch_seconds",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in run["history"]] == [
        {k: v for k, v in r.items() if k not in drop} for r in ref["history"]
    ]
    with open(tmp_path / "run" / "history.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert {"train_loss", "val_loss", "dice_LV", "dice_RV", "dice_Myo", "dice_mean", "lr"} <= set(rows[0])
    assert len(json.loads((tmp_path / "run" / "history.json").read_text())) == 3
    assert _train(tmp_path / "run", "--resume") == 0  # a finished run stays finished
    assert "already finished" in capsys.readouterr().out

    model, meta = load_model(tmp_path / "run" / "best.pt")
    assert meta["architecture"]["preset"] == "compact"
    assert PreprocessConfig.from_dict(meta["preprocessing"]) == PreprocessConfig(size=(64, 64))
    training = meta["training"]
    assert training["loss"] == "wce+dice" and training["epochs"] == 3
    assert 1 <= training["best_epoch"] <= training["epochs_trained"] <= 3
    assert len(training["split_sha256"]) == 64 and training["machine"]["torch"] == torch.__version__
    assert training["command"].startswith("cmrseg train --data ") and "--max-patients 1 " in training["command"]
    # the run's split named: its seed alone would make another split when the run was given one
    assert f"--split {tmp_path / 'run' / 'split.json'} --out OUT" in training["command"]
    assert set(meta["metrics"]["validation"]) >= {"dice_LV", "dice_RV", "dice_Myo", "dice_mean", "val_loss"}
    assert meta["labels"] == {"0": "background", "1": "RV", "2": "Myo", "3": "LV"}
    with torch.no_grad():
        assert model(torch.rand(1, 1, 64, 64)).shape == (1, 4, 64, 64)
    assert (tmp_path / "run" / "best.pt").stat().st_size < 10_000_000  # weights only

    # Stopped after last.pt and before best.pt of epoch 1: the resumed run writes that best.pt, and ends as the
    # uninterrupted one did.
    real_save = runner.save_checkpoint

    def killed_before_best(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "save_checkpoint", killed_before_best)
    assert _train(tmp_path / "run2", *data) == 130
    monkeypatch.setattr(runner, "save_checkpoint", real_save)
    assert load_state(tmp_path / "run2" / "last.pt")["epoch"] == 1 and not (tmp_path / "run2" / "best.pt").exists()
    assert _train(tmp_path / "run2", "--resume") == 0
    ref_best, run_best = read_checkpoint(tmp_path / "ref" / "best.pt"), read_checkpoint(tmp_path / "run2" / "best.pt")
    assert run_best[0]["training"]["best_epoch"] == ref_best[0]["training"]["best_epoch"]
    for name, tensor in ref_best[1].items():
        assert torch.equal(run_best[1][name], tensor), name

    # More epochs for a finished run: the cosine is re-planned over the new total from the next step on.
    capsys.readouterr()
    assert _train(tmp_path / "run", "--resume", "--epochs", "4") == 0
    assert "now spans 4 epochs (was 3)" in capsys.readouterr().out
    steps = 2  # FAST's --iterations-per-epoch
    lr = load_state(tmp_path / "run" / "last.pt")["history"][3]["lr"]
    assert lr == pytest.approx(1e-3 * lr_factor(3 * steps, 4 * steps, 2 * steps))  # the 3-epoch plan had 1e-5


@pytest.mark.slow
@pytest.mark.shared_data
def test_fine_tuning_starts_from_a_shipped_network_and_only_on_its_split(acdc_root, tmp_path, capsys):
    shipped = default_model_path()
    shipped_split = shipped.with_name("cmrseg_dense_unet.split.json")
    tiny = ["--data", str(acdc_root), "--max-patients", "1", "--batch-size", "4", "--iterations-per-epoch", "1",
            "--epochs", "1", "--lr", "1e-12", "--loss", "wce+dice", "--class-weighting", "none"]
    assert _train(tmp_path / "no_member", *tiny, "--split", str(shipped_split), "--init", str(shipped)) == 2
    members = len(read_checkpoint(shipped)[0]["architecture"]["args"]["members"])
    assert f"ensemble of {members} networks; choose one with --init-member 0..{members - 1}" in capsys.readouterr().err
    # A new split would put some of the shipped network's training patients among validation and test.
    assert _train(tmp_path / "other_split", *tiny, "--init", str(shipped), "--init-member", "1") == 2
    assert "trained on another split" in capsys.readouterr().err

    out = tmp_path / "tuned"
    assert _train(out, *tiny, "--split", str(shipped_split), "--init", str(shipped), "--init-member", "1") == 0
    assert "Started from the weights of" in capsys.readouterr().out
    tuned, meta = load_model(out / "best.pt")
    ensemble, _ = load_model(shipped)
    tuned_weights = dict(tuned.named_parameters())  # (batch-norm statistics move with the one training step)
    for name, tensor in ensemble.members[1].named_parameters():
        assert torch.allclose(tuned_weights[name].float(), tensor.float(), atol=1e-3), name
    # A fresh network scores near 0 after one step; the shipped one segments its validation patient.
    assert meta["metrics"]["validation"]["dice_mean"] > 0.8
    assert meta["training"]["init_sha256"] == file_sha256(shipped)
    assert "--init-member 1" in meta["training"]["command"]
