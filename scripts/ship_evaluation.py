"""How scripts/ship-model and scripts/refresh-model-metrics evaluate a model: on the ACDC patients beside the
repository, always in fp32, with each result cached beside what made it (weights, code, settings, arithmetic)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from pathlib import Path

from model_card import DATA, REPO

from cmrseg import evaluate
from cmrseg.inference import Segmenter
from cmrseg.io.acdc import patient_folder
from cmrseg.progress import LinePrinter

PACKAGE = REPO / "CMRSegModule" / "cmrseg"


@functools.cache
def code_sha256() -> str:
    """sha256 over the cmrseg package's Python files: the code that segments, measures and checks."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        digest.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def made_with(checkpoint_sha256: str, **settings) -> str:
    """What a cached result was made with: the weights, the code, the settings and the arithmetic (one line of
    JSON)."""
    return json.dumps({"checkpoint": checkpoint_sha256, "code": code_sha256(), "arithmetic": arithmetic(), **settings},
                      sort_keys=True)


def arithmetic() -> str:
    """Where the candidates are evaluated here, always in fp32 (``cpu fp32``, ``cuda fp32``): the published
    tables are then what ``cmrseg evaluate --fp32`` gives on any machine (bf16, where native, moves a case's
    Dice a little: up to 0.002 on the test cases of the ensemble shipped on 2026-11-28)."""
    from cmrseg.inference import arithmetic, resolve_device

    return arithmetic(resolve_device("auto"), False)


def load_fp32(checkpoint: Path, prior_correction: bool) -> Segmenter:
    return Segmenter.load(checkpoint, device="auto", prior_correction=prior_correction, bf16=False)


def cached(path: Path, stamp: str) -> dict | None:
    """An earlier result of this script (a JSON file) made with exactly ``stamp`` (:func:`made_with`), so that a
    rerun need not repeat it; a result of other weights, code, patients or settings is never reused."""
    record = path.with_suffix(".made-with")
    if path.is_file() and record.is_file() and record.read_text().strip() == stamp:
        return json.loads(path.read_text())
    return None


def remember(path: Path, stamp: str) -> None:
    path.with_suffix(".made-with").write_text(stamp + "\n")


def run_evaluation(checkpoint: Path, sha256: str, patients: list[str], prior_correction: bool, out: Path) -> dict:
    stamp = made_with(sha256, patients=sorted(patients), prior_correction=prior_correction, data=str(DATA))
    earlier = cached(out / "evaluation.json", stamp)
    if earlier:
        return earlier
    segmenter = load_fp32(checkpoint, prior_correction)
    patient_folder(DATA, patients[0])  # a clear error when the data is not beside the repository
    cases = list(evaluate.acdc_model_cases(DATA, patients, segmenter))
    results = evaluate.evaluate_cases(cases, out, len(cases), LinePrinter(min_interval=30))
    remember(out / "evaluation.json", stamp)
    return results


def cross_validated(checkpoint: Path, sha256: str, member_test: list[list[str]], prior_correction: bool,
                    out: Path) -> dict:
    """The tables over every member's test patients, each segmented by that member of this very checkpoint
    (the weights that ship, float16 included), never by a file that may have changed since."""
    stamp = made_with(sha256, member_test=member_test, prior_correction=prior_correction, data=str(DATA))
    earlier = cached(out / "evaluation.json", stamp)
    if earlier:
        return earlier
    ensemble = load_fp32(checkpoint, prior_correction)
    cases = [case for member, patients in enumerate(member_test) for case in evaluate.acdc_model_cases(
        DATA, patients, dataclasses.replace(ensemble, model=ensemble.networks[member]))]
    results = evaluate.evaluate_cases(cases, out, len(cases), LinePrinter(min_interval=30))
    remember(out / "evaluation.json", stamp)
    return results


def tables(results: dict) -> dict:
    return {"table1": results["table1"], "table3": results["table3"]}


def case_values(results: dict) -> list[dict]:
    """Per patient, phase and structure: Dice and HD95 under the >= 50 % basal rule (what the tests re-segment)."""
    return [{k: r[k] for k in ("patient", "phase", "structure", "dice", "hd95_mm")}
            for r in results["cases"] if r["method"] == "FCN" and r["criterion"] == "50"]


def held_out_metrics(item: dict) -> dict:
    """A candidate's held-out tables and cases as a checkpoint records them: its test patients, or for an
    ensemble of folds each cross-validated case with the member that segmented it (the one not trained on it)."""
    if item["test"] is not None:
        return {"test": tables(item["test"]), "test_cases": case_values(item["test"])}
    member = {p: k for k, patients in enumerate(item["split"]["member_test"]) for p in patients}
    return {"cross_validation": tables(item["cross_validation"]), "cross_validation_cases": [
        dict(case, member=member[case["patient"]]) for case in case_values(item["cross_validation"])]}
