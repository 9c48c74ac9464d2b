"""Cross-validated evaluation: each fold's network segments only its own test patients, and one set of tables
covers them all (``cmrseg evaluate --cross-validation runs/fold0 ... runs/fold4``).

A fold run is a ``cmrseg train`` output folder (``best.pt`` and the ``split.json`` it was trained on, as
``scripts/make-folds`` and ``--split`` give). Refused: a checkpoint that was not trained on its folder's
split (its recorded split sha256 differs), and folds whose test parts share a patient.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from cmrseg.errors import CMRSegError
from cmrseg.evaluate import Case, acdc_model_cases
from cmrseg.model.checkpoint import read_checkpoint
from cmrseg.training.split import check_trained_on, read_split


def fold_runs(runs: Iterable[str | Path]) -> list[tuple[Path, dict]]:
    """``(best.pt, split)`` of every fold run, checked as the module says."""
    folds, tested = [], {}
    for run in map(Path, runs):
        checkpoint, split_path = run / "best.pt", run / "split.json"
        if not (checkpoint.is_file() and split_path.is_file()):
            raise CMRSegError(f"{run} is not a training run folder: best.pt and split.json are needed.")
        split = read_split(split_path)
        metadata, _ = read_checkpoint(checkpoint)
        check_trained_on(checkpoint, metadata, split_path)
        test = split.get("test") or []
        if not test:
            raise CMRSegError(f"{split_path} has no test patients.")
        for patient in test:
            if patient in tested:
                raise CMRSegError(f"{patient} is a test patient of both {tested[patient]} and {run}; "
                                  "cross-validation folds test each patient once.")
            tested[patient] = run
        folds.append((checkpoint, split))
    if len(folds) < 2:
        raise CMRSegError("Cross-validation needs at least two fold runs.")
    return folds


def cross_validation_cases(runs: Iterable[str | Path], data: str | Path | None, load_segmenter) -> Iterator[Case]:
    """Every fold's test patients (ED and ES) segmented by that fold's network; ``data`` overrides the ACDC root
    the splits name; ``load_segmenter(path)`` loads a checkpoint."""
    for checkpoint, split in fold_runs(runs):
        root = Path(data or split.get("data", ""))
        if not root.is_dir():
            raise CMRSegError(f"The ACDC data {root} of {checkpoint.parent / 'split.json'} is not a folder; "
                              "give it with --data.")
        yield from acdc_model_cases(root, split["test"], load_segmenter(checkpoint))

