"""Patient-level train / validation / test split of ACDC, stratified by pathology group, written as JSON."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

from cmrseg.errors import CMRSegError
from cmrseg.io.acdc import list_patients, read_info

RATIOS = (0.70, 0.15, 0.15)
PARTS = ("train", "val", "test")


def shuffled_groups(data_root: str | Path, seed: int) -> dict[str, list[str]]:
    """The patient folder names of each pathology group (``Info.cfg``), groups in name order, each group's
    names sorted and then shuffled by one ``random.Random(seed)`` in that order."""
    by_group: dict[str, list[str]] = {}
    for folder in list_patients(data_root):
        by_group.setdefault(read_info(folder).get("Group", "unknown"), []).append(folder.name)
    rng = random.Random(seed)
    shuffled = {}
    for group in sorted(by_group):
        names = sorted(by_group[group])
        rng.shuffle(names)
        shuffled[group] = names
    return shuffled


def make_split(data_root: str | Path, seed: int = 0, ratios: tuple[float, float, float] = RATIOS) -> dict[str, Any]:
    """Split the patients of an ACDC root: within each group, shuffled by ``seed``, then cut by ``ratios``.

    Per group of ``n`` patients: ``round(n * ratios[1])`` validation, ``round(n * ratios[2])`` test, the
    rest training (ACDC's 20 per group give 14 / 3 / 3, in all 70 / 15 / 15).
    """
    by_group = shuffled_groups(data_root, seed)
    split: dict[str, list[str]] = {part: [] for part in PARTS}
    for names in by_group.values():
        n_val, n_test = round(len(names) * ratios[1]), round(len(names) * ratios[2])
        split["val"] += names[:n_val]
        split["test"] += names[n_val : n_val + n_test]
        split["train"] += names[n_val + n_test :]
    return {
        "dataset": "ACDC",
        "data": str(Path(data_root)),
        "seed": seed,
        "ratios": list(ratios),
        "stratified_by": "Group (Info.cfg)",
        "groups": {g: len(v) for g, v in by_group.items()},
        **{part: sorted(split[part]) for part in PARTS},
    }


def make_fold_splits(
    data_root: str | Path, folds: int = 5, seed: int = 0, val_per_group: int = 3,
    validation: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Cross-validation: every patient outside the validation part is tested once, by one fold.

    Patients are shuffled by ``seed`` within each pathology group and dealt round-robin into ``folds`` test
    parts, group after group, so the groups spread evenly over the parts and the parts differ in size by one
    at most. A fold trains on the patients outside its test part and the validation part.

    - Without ``validation``: each fold's validation part is ``val_per_group`` per group of its other
      patients (ACDC's 100 in 5 folds: test 20, validation 15, training 65 per fold).
    - With ``validation``: those patients validate every fold (choose the best epoch) and are never trained
      on, so a model made of all the folds' networks still has unseen patients to be chosen and calibrated on;
      the rest are dealt into the test parts (ACDC: 15 validation, test 17, training 68 per fold).

    The test part never chooses anything.
    """
    if folds < 2:
        raise CMRSegError(f"Cross-validation needs at least 2 folds; got {folds}.")
    by_group = shuffled_groups(data_root, seed)
    everyone = {name for names in by_group.values() for name in names}
    if validation is not None and not validation:
        raise CMRSegError("The validation part is empty; every fold needs patients to choose its best epoch.")
    unknown = sorted(set(validation or []) - everyone)
    if unknown:
        raise CMRSegError(f"Validation patients not in {data_root}: {', '.join(unknown[:5])}.")
    held = set(validation or [])
    dealt = [name for names in by_group.values() for name in names if name not in held]
    splits = []
    for fold in range(folds):
        test = set(dealt[fold::folds])
        if validation is None:  # the first val_per_group of each group outside the test part
            val = []
            for names in by_group.values():
                val += [name for name in names if name not in test][:val_per_group]
        else:
            val = list(validation)
        splits.append({
            "dataset": "ACDC",
            "data": str(Path(data_root)),
            "seed": seed,
            "scheme": f"{folds}-fold cross-validation, fold {fold}"
                      + (", one validation part for every fold" if validation is not None else ""),
            "stratified_by": "Group (Info.cfg)",
            "groups": {g: len(v) for g, v in by_group.items()},
            "train": sorted(everyone - test - set(val)),
            "val": sorted(val),
            "test": sorted(test),
        })
    return splits


def ensemble_split(splits: list[dict[str, Any]]) -> dict[str, Any]:
    """The split that networks trained on ``splits`` stand on as one ensemble: trained on every patient any of
    them was trained on, validated on the validation part they all share, tested on the patients none of them
    saw (none, for cross-validation folds), with each network's own test patients in ``member_test``. Refused
    when their validation parts differ: then no patient is unseen by all of them to choose and calibrate the
    ensemble on."""
    first = splits[0]
    if all(split == first for split in splits):
        return first
    if any(sorted(split["val"]) != sorted(first["val"]) for split in splits):
        raise CMRSegError("The networks were validated on different patients, so none is unseen by all of them "
                          "to choose and calibrate their ensemble on; train them around one validation part "
                          "(scripts/make-folds --validation-from).")
    trained = set().union(*(split["train"] for split in splits))
    named = set().union(*(set(split["train"]) | set(split["val"]) | set(split.get("test", [])) for split in splits))
    return {
        **{key: value for key, value in first.items() if key not in (*PARTS, "scheme")},
        "scheme": f"ensemble of {len(splits)} networks trained on different splits around one validation part",
        "train": sorted(trained),
        "val": sorted(first["val"]),
        "test": sorted(named - trained - set(first["val"])),
        "member_test": [sorted(split.get("test", [])) for split in splits],  # each network's own test patients
    }


def write_split(split: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(split, indent=1) + "\n")
    return path


def read_split(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        split = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CMRSegError(f"Cannot read the split file {path}: {exc}.") from exc
    if not isinstance(split, dict) or not all(isinstance(split.get(p), list) for p in ("train", "val")):
        raise CMRSegError(f"{path} is not a split file (it needs 'train' and 'val' lists of patient names).")
    for part in ("train", "val", "test"):
        names = split.get(part, [])
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:  # a patient counted twice would weigh twice in training and in every table of the part
            raise CMRSegError(f"{path} names {', '.join(repeated[:5])} more than once in its {part} part.")
    train, val, test = set(split["train"]), set(split["val"]), set(split.get("test", []))
    overlap = train & val | train & test | val & test
    if overlap:
        raise CMRSegError(f"{path} puts patients in more than one part: {', '.join(sorted(overlap)[:5])}.")
    return split


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def check_trained_on(checkpoint: str | Path, metadata: dict[str, Any], split_path: str | Path) -> None:
    """Refuse a network whose recorded training split is not the file ``split_path`` (its held-out patients
    would not be the ones that file names)."""
    if metadata.get("training", {}).get("split_sha256") != file_sha256(split_path):
        raise CMRSegError(f"{checkpoint} was not trained on {split_path}: its recorded split differs, so the "
                          "patients scored may be ones it learnt from; give the split it was trained on (its run "
                          "folder's split.json).")


def trained_patients(checkpoint: str | Path, metadata: dict[str, Any]) -> set[str] | None:
    """The patients a network was trained on, from the split file it records beside it (the shipped model's
    ``.split.json``, a run folder's ``split.json``); None when no such file is there."""
    recorded = metadata.get("training", {}).get("split_sha256")
    checkpoint = Path(checkpoint)
    for path in (checkpoint.with_suffix(".split.json"), checkpoint.parent / "split.json"):
        if recorded and path.is_file() and file_sha256(path) == recorded:
            return set(read_split(path).get("train", []))
    return None
