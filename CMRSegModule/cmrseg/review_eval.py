"""Fitting and measuring the review score on ACDC patients (``scripts/fit-review``, ``cmrseg evaluate``).

The score is fitted on the validation patients of the model's split and measured on its test patients, the way
it is judged (for an ensemble of cross-validation folds, whose members together saw every patient outside the
validation part: each validation patient left out of the fit in turn). Measured: the AUC of the score for
"slice needs correction", the share of those slices among the top-scored 20 % of slices, and the share of the
total error volume those slices hold; each per phase too, beside two trivial rankings (smallest predicted heart
area first; edge slices first).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from cmrseg.progress import ProgressCallback, report
from cmrseg.review import (
    FEATURES,
    FrameEvidence,
    ReviewModel,
    auc,
    calibrate_factors,
    fit_review_model,
    slice_errors,
    slice_features,
    top_share,
)

SCORE_SIGNALS = 2  # how many signals enter the score: the best alone; see cmrseg.review


@dataclass
class SliceSet:
    """Every slice of the ED and ES frames of some patients: signals, truth, and where each came from."""

    features: np.ndarray  # [n, F]
    needs: np.ndarray  # [n] bool
    error_ml: np.ndarray  # [n]
    phase: np.ndarray  # [n] "ED" / "ES"
    patient: np.ndarray  # [n]

    def subset(self, mask: np.ndarray) -> SliceSet:
        return SliceSet(**{field.name: getattr(self, field.name)[mask] for field in fields(self)})


@dataclass
class SegmentedFrame:
    """One ACDC frame as the model segmented it, with its evidence and the expert mask."""

    patient: str
    phase: str
    labels: np.ndarray
    evidence: FrameEvidence
    mask: np.ndarray
    voxel_ml: float


def segment_patients(data_root: Path, patients: list[str], segmenter,
                     progress: ProgressCallback | None = None) -> list[SegmentedFrame]:
    """Segment each patient's ED and ES frame as ``cmrseg evaluate`` does, keeping what the review score needs."""
    from cmrseg.evaluate import acdc_model_cases

    frames: list[SegmentedFrame] = []
    for done, _ in enumerate(acdc_model_cases(data_root, patients, segmenter, frames)):
        if done % 2 == 0:  # a patient's ED and ES come together
            report(progress, done // 2, len(patients), "Segmenting for the review score")
    report(progress, len(patients), len(patients), "Segmenting for the review score")
    return frames


def slice_set(frames: list[SegmentedFrame]) -> SliceSet:
    """Every slice's signals and truth."""
    rows: dict[str, list] = {"features": [], "needs": [], "error_ml": [], "phase": [], "patient": []}
    for frame in frames:
        needs, error = slice_errors(frame.labels, frame.mask, frame.voxel_ml)
        rows["features"].append(slice_features(frame.evidence, frame.labels, frame.voxel_ml))
        rows["needs"].append(needs)
        rows["error_ml"].append(error)
        rows["phase"].append(np.full(len(needs), frame.phase))
        rows["patient"].append(np.full(len(needs), frame.patient))
    return SliceSet(**{key: np.concatenate(value) for key, value in rows.items()})


def ranking_metrics(scores: np.ndarray, slices: SliceSet) -> dict:
    """AUC, top-20 % recall and top-20 % error share, over all slices and per phase."""
    result = {}
    for name, mask in (("all", np.ones(len(scores), bool)), ("ED", slices.phase == "ED"),
                       ("ES", slices.phase == "ES")):
        result[name] = {
            "slices": int(mask.sum()),
            "needing_correction": int(slices.needs[mask].sum()),
            "auc": round(auc(scores[mask], slices.needs[mask]), 4),
            "top20_recall": round(top_share(scores[mask], slices.needs[mask]), 4),
            "top20_error_share": round(top_share(scores[mask], None, slices.error_ml[mask]), 4),
        }
    return result


def baseline_scores(slices: SliceSet) -> dict[str, np.ndarray]:
    """The trivial rankings the score must beat."""
    heart = slices.features[:, FEATURES.index("heart")]
    edge = slices.features[:, FEATURES.index("edge")]
    return {"smallest heart area first": -heart, "edge slices first": edge - 1e-6 * heart}


def signal_aucs(slices: SliceSet) -> dict[str, float]:
    """Each signal alone as a ranking (its AUC; below 0.5 means it ranks the wrong way round)."""
    return {name: round(auc(slices.features[:, i], slices.needs), 3) for i, name in enumerate(FEATURES)}


def fit(slices: SliceSet, record: dict | None = None) -> ReviewModel:
    """The review score on the signals that rank best alone on ``slices``, fitted there."""
    alone = signal_aucs(slices)
    signals = sorted(alone, key=alone.get, reverse=True)[:SCORE_SIGNALS]
    return fit_review_model(slices.features, slices.needs, slices.error_ml, signals, record=record)


def measure(model: ReviewModel, slices: SliceSet) -> dict:
    """The score's ranking metrics next to the baselines'; the expected error's correlation with the truth."""
    return measure_scores(model.score(slices.features), model.expected_error_ml(slices.features), slices)


def measure_scores(scores: np.ndarray, expected_ml: np.ndarray, slices: SliceSet) -> dict:
    result = {"review score": ranking_metrics(scores, slices)}
    for name, baseline in baseline_scores(slices).items():
        result[name] = ranking_metrics(baseline, slices)
    result["expected_error_correlation"] = round(float(np.corrcoef(expected_ml, slices.error_ml)[0, 1]), 4)
    return result


def held_out_scores(slices: SliceSet) -> tuple[np.ndarray, np.ndarray]:
    """Each patient's slices scored, and their error volume expected, by a fit on the other patients only."""
    scores, expected = np.empty(len(slices.needs)), np.empty(len(slices.needs))
    for patient in np.unique(slices.patient):
        held = slices.patient == patient
        model = fit(slices.subset(~held))
        scores[held] = model.score(slices.features[held])
        expected[held] = model.expected_error_ml(slices.features[held])
    return scores, expected


def leave_one_patient_out(frames: list[SegmentedFrame]) -> dict:
    """Held-out metrics where no test patient is left: each patient's slices scored, and its parameter intervals
    calibrated, by a fit (signals chosen too) on the other patients only; the metrics are of the pooled scores."""
    slices = slice_set(frames)
    covered: dict[str, list[float]] = {}
    for patient in np.unique(slices.patient):
        factors = calibrate_factors(interval_errors([f for f in frames if f.patient != patient])[0])
        for name, share in interval_coverage([f for f in frames if f.patient == patient], factors).items():
            covered.setdefault(name, []).append(share)
    metrics = measure_scores(*held_out_scores(slices), slices)
    metrics["interval_coverage"] = {name: round(float(np.mean(shares)), 3) for name, shares in covered.items()}
    return metrics


def format_metrics(metrics: dict) -> str:
    lines = ["| ranking | phase | slices | needing correction | AUC | top-20 % recall | top-20 % error share |",
             "|---|---|---|---|---|---|---|"]
    for name, phases in metrics.items():
        if name in ("expected_error_correlation", "interval_coverage"):
            continue
        for phase, m in phases.items():
            lines.append(f"| {name} | {phase} | {m['slices']} | {m['needing_correction']} | {m['auc']:.3f} | "
                         f"{m['top20_recall']:.1%} | {m['top20_error_share']:.1%} |")
    lines.append(f"\nExpected error volume vs true error volume per slice: r = {metrics['expected_error_correlation']}")
    if "interval_coverage" in metrics:
        lines.append(f"90 % parameter intervals, share of patients whose expert value they hold: "
                     f"{metrics['interval_coverage']}")
    return "\n".join(lines)


def interval_errors(frames: list[SegmentedFrame]) -> tuple[dict[str, list[float]], dict[str, list[tuple]]]:
    """Per patient and parameter: ``(expert - value) / spread``, and ``(value, spread, expert)`` for coverage."""
    from cmrseg.review import INTERVAL_PARAMETERS, member_parameters, spread, study_parameters

    by_patient: dict[str, dict[str, SegmentedFrame]] = {}
    for frame in frames:
        by_patient.setdefault(frame.patient, {})[frame.phase] = frame
    normalised: dict[str, list[float]] = {name: [] for name in INTERVAL_PARAMETERS}
    triples: dict[str, list[tuple]] = {name: [] for name in INTERVAL_PARAMETERS}
    for phases in by_patient.values():
        ed, es = phases["ED"], phases["ES"]
        value = study_parameters(ed.labels, es.labels, ed.voxel_ml)
        expert = study_parameters(ed.mask, es.mask, ed.voxel_ml)
        members = member_parameters(ed.evidence, es.evidence, ed.voxel_ml)
        for name in INTERVAL_PARAMETERS:
            width = spread(members, name)
            normalised[name].append((expert[name] - value[name]) / width)
            triples[name].append((value[name], width, expert[name]))
    return normalised, triples


def interval_coverage(frames: list[SegmentedFrame], factors: dict[str, float]) -> dict[str, float]:
    """The share of patients whose expert value lies inside the interval, per parameter."""
    _, triples = interval_errors(frames)
    return {name: round(float(np.mean([abs(expert - value) <= factors[name] * width
                                        for value, width, expert in rows])), 3)
            for name, rows in triples.items() if name in factors}
