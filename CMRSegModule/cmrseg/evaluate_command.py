"""``cmrseg evaluate``: the tables of a model, or of label-map folders, against expert masks, and what they are
(held out or not)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cmrseg import evaluate
from cmrseg.error_regions import error_region_markdown
from cmrseg.errors import CMRSegError
from cmrseg.evaluate_groups import group_markdown
from cmrseg.inference import Segmenter, default_model_path
from cmrseg.outputs import check_output_folder
from cmrseg.progress import LinePrinter
from cmrseg.training.split import read_split, trained_patients


def run_evaluate(args: argparse.Namespace) -> int:
    """Score a model, or label-map folders, against expert masks and write the tables (see the command's help)."""
    check_evaluation_folder(Path(args.out))  # before segmenting every case, not after
    segmented: list = []  # the model's frames with their review evidence, when the model is run
    review_model, note = None, None
    folders = {"FCN": Path(args.pred)} if args.pred else {}
    if args.corrected:
        if not args.pred:
            raise CMRSegError("--corrected needs --pred (the automatic label maps to compare it with).")
        folders["FCN+corr"] = Path(args.corrected)
    if args.cross_validation:
        if folders or args.ref or args.split or args.model:
            raise CMRSegError("--cross-validation takes each fold's model and split from its run folder; "
                              "leave out --model, --split, --pred, --corrected and --ref.")
        from cmrseg.cross_validation import cross_validation_cases, fold_runs

        def load(path):
            return Segmenter.load(path, device=args.device, bf16=False if args.fp32 else None)

        total = len(evaluate.PHASES) * sum(len(split["test"]) for _, split in fold_runs(args.cross_validation))
        cases = cross_validation_cases(args.cross_validation, args.data, load)
    elif args.ref:
        if not folders:
            raise CMRSegError("--ref compares label-map folders: give --pred (and optionally --corrected).")
        cases = list(evaluate.folder_cases(Path(args.ref), folders))
        total = len(cases)
    else:
        split_path = Path(args.split) if args.split else default_model_path().with_suffix(".split.json")
        split = read_split(split_path)
        patients = split.get(args.part, [])
        if not patients:
            why = (": its networks are cross-validation folds that together trained on every patient outside the "
                   "validation part. Use --part val, or --cross-validation with the fold runs for the held-out "
                   "tables" if "member_test" in split else "")
            raise CMRSegError(f"{split_path} has no '{args.part}' patients{why}.")
        data = Path(args.data or split.get("data", ""))
        if not args.data and not data.is_absolute():  # shipped splits name the data relative to the repository
            data = Path(__file__).resolve().parents[2] / data
        if folders:
            cases = evaluate.acdc_folder_cases(data, patients, folders)
        else:
            from cmrseg.review import load_review_model

            segmenter = Segmenter.load(args.model, device=args.device, bf16=False if args.fp32 else None)
            note = in_sample_note(trained_patients(segmenter.source, segmenter.metadata), patients)
            review_model = load_review_model(segmenter.source)  # before the long part: a stale fit is refused
            cases = evaluate.acdc_model_cases(data, patients, segmenter, segmented)
        total = len(evaluate.PHASES) * len(patients)
    results = evaluate.evaluate_cases(cases, args.out, total, LinePrinter(), note)
    if note:
        print(note + "\n")
    print(evaluate.table1_markdown([r for r in results["table1"] if r["phase"] == "ED+ES"]))
    print(evaluate.table3_markdown(results["table3"]))
    print(error_region_markdown(results["regions"]))
    if results["groups"]:
        print(group_markdown(results["groups"]))
    if review_model is not None and segmented:
        from cmrseg.review_eval import format_metrics, interval_coverage, measure, slice_set

        metrics = measure(review_model, slice_set(segmented))
        factors = review_model.record.get("interval_factors")
        if factors:
            metrics["interval_coverage"] = interval_coverage(segmented, factors)
        text = format_metrics(metrics)
        fitted_on = sorted(set(patients) & set(review_model.record.get("fitted_patients", [])))
        if fitted_on:  # not a held-out measure: say so where it is read
            metrics["in_sample_patients"] = fitted_on
            text = (f"In-sample: the review score was fitted on {len(fitted_on)} of these {len(patients)} patients, "
                    "so this measures the fit, not a held-out result.\n\n" + text)
        (Path(args.out) / "review.md").write_text(text + "\n")
        (Path(args.out) / "review.json").write_text(json.dumps(metrics, indent=1))
        print(text)
    else:  # an earlier evaluation's review score is not this one's
        for name in REVIEW_FILES:
            (Path(args.out) / name).unlink(missing_ok=True)
    print(f"Tables, per-case results and plots in {args.out}")
    return 0


def in_sample_note(trained: set[str] | None, patients: list[str]) -> str | None:
    """What the tables of a network scored on ``patients`` are, where they are not a held-out result."""
    if trained is None:
        return ("Held out? The network does not say which patients trained it (no file of the split it records "
                "lies beside it): these are held-out results only if none of these patients trained it.")
    learnt = sorted(set(patients) & trained)
    if not learnt:
        return None
    return (f"In-sample: the network was trained on {len(learnt)} of these {len(patients)} patients "
            f"({', '.join(learnt[:5])}{', ...' if len(learnt) > 5 else ''}), so these tables measure its fit, "
            "not a held-out result.")


# what an evaluation writes into its --out (cmrseg.evaluate.evaluate_cases and the review score's files)
EVALUATION_FILES = {"evaluation.json", "table1.md", "table3.md", "regions.md", "groups.md", "plots", "review.md",
                    "review.json", "evaluation.made-with"}  # the last: scripts/ship-model's record of its runs
REVIEW_FILES = ("review.md", "review.json")


def check_evaluation_folder(out: Path) -> None:
    """An empty or new folder, or an earlier evaluation's (written again): never one holding other files, which
    an evaluation's files of the same names would replace."""
    check_output_folder(out)
    present = {path.name for path in out.iterdir() if not path.name.startswith(".")} if out.is_dir() else set()
    in_the_way = sorted(present - EVALUATION_FILES) or (sorted(present) if "evaluation.json" not in present else [])
    if in_the_way:
        named = ", ".join(in_the_way[:3]) + (", ..." if len(in_the_way) > 3 else "")
        raise CMRSegError(f"{out} holds {named}, and no earlier evaluation: choose an empty or new --out.")
