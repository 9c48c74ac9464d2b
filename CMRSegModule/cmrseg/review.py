"""Where the network is probably wrong: a per-slice review score that leads the physician to the slices
worth correcting, and an estimate of the error volume each slice carries.

Signals per slice (phase x slice of a segmented frame), all from one run of the model:
- ``disagreement``: voxels on which the ensemble's members do not all give the same label (ml), and
  ``disagreement_share``: the same as a share of the slice's heart volume (a Dice error is relative);
- ``entropy_share``: the summed normalised entropy of the mean probabilities, as a share of the heart volume;
- ``removed``: voxels the anatomical clean-up changed (a second piece, a filled hole) (ml);
- ``neighbour_change_share``: how much the structures' areas depart from the mean of the neighbouring
  slices, as a share of the heart volume;
- ``edge``: the first or last slice that holds heart (basal and apical slices are the hard ones);
- ``unenclosed``: the share of the LV blood pool's border not touching myocardium (as the basal rule measures);
- ``heart``: the slice's heart volume (small cross-sections are relatively harder) (ml).
Volumes enter as ``log(1 + ml)`` and shares as ``log(1 + share)``: a share of a tiny heart cross-section can be
tens of times the typical one, and fitted untransformed those few slices set the standardisation, so a score
refitted without one patient shifted by more than it varied within a patient (left out one patient at a time,
the shipped model's validation AUC was 0.76 untransformed and 0.89 transformed). The score is a logistic
regression on the signals that rank best alone on the validation patients of the model's split (never the
test patients), chosen and fitted by ``scripts/fit-review`` and stored beside the model
(``<model>.review.json``, with the coefficients, each signal's AUC alone, and the held-out metrics). Signals
that are strongly collinear (every share grows as the heart cross-section shrinks) gave unstable
coefficients when all entered at once. The expected error volume is a non-negative linear fit of the
per-slice error (ml) on all signals.

A slice "needs correction" when some structure with at least 0.5 ml in the prediction or the expert mask has
a 2-D Dice below 0.7 on it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cmrseg.basal import enclosed_fraction
from cmrseg.errors import CMRSegError
from cmrseg.labels import BACKGROUND, LV, MYO, NUM_CLASSES, STRUCTURES
from cmrseg.training.split import file_sha256

FEATURES = ("disagreement", "disagreement_share", "entropy_share", "removed", "neighbour_change_share", "edge",
            "unenclosed", "heart")
SHARE_OFFSET_ML = 0.5  # shares are of the slice's heart volume + this, so empty slices stay finite
NEEDS_CORRECTION_MIN_ML = 0.5
NEEDS_CORRECTION_DICE = 0.7
STRUCTURE_DOUBT_ML = 0.3  # a structure is named as doubtful on a slice when members disagree on this much of it


@dataclass
class FrameEvidence:
    """What the review score needs of one segmented frame (native grid)."""

    member_labels: np.ndarray  # [m, z, y, x] uint8: each network's label map before clean-up
    entropy: np.ndarray  # [z]: summed normalised entropy of the mean probabilities per slice (voxels)
    raw_labels: np.ndarray  # [z, y, x] uint8: the mean's label map before clean-up


def slice_entropy(probabilities: np.ndarray) -> np.ndarray:
    """Per slice, the sum over voxels of the entropy of ``[z, C, y, x]`` probabilities, divided by log(C)."""
    p = np.clip(probabilities, 1e-7, 1.0)
    entropy = -(p * np.log(p)).sum(axis=1) / np.log(NUM_CLASSES)
    return entropy.sum(axis=(1, 2)).astype(np.float64)


def _unenclosed(labels: np.ndarray) -> float:
    """The share of the LV blood pool's border not touching myocardium (0 without LV)."""
    enclosed = enclosed_fraction(labels)
    return 0.0 if np.isnan(enclosed) else 1.0 - enclosed


def slice_features(evidence: FrameEvidence, labels: np.ndarray, voxel_ml: float) -> np.ndarray:
    """The signals of :data:`FEATURES` for every slice of a frame: ``[z, len(FEATURES)]`` (raw, not logged)."""
    members = evidence.member_labels
    heart = (labels != BACKGROUND) | (members != BACKGROUND).any(axis=0)
    disagree = (members != members[0:1]).any(axis=0) & heart
    removed = evidence.raw_labels != labels
    slices = labels.shape[0]
    areas = np.stack([(labels == s.label).sum(axis=(1, 2)) for s in STRUCTURES], axis=1).astype(float)  # [z, 3]
    change = np.zeros(slices)
    for z in range(slices):
        neighbours = [areas[k] for k in (z - 1, z + 1) if 0 <= k < slices]
        change[z] = np.abs(areas[z] - np.mean(neighbours, axis=0)).sum() if neighbours else 0.0
    with_heart = np.flatnonzero(areas.sum(axis=1) > 0)
    edges = {int(with_heart[0]), int(with_heart[-1])} if len(with_heart) else set()
    rows = []
    for z in range(slices):
        heart_ml = areas[z].sum() * voxel_ml
        share = 1.0 / (heart_ml + SHARE_OFFSET_ML)
        rows.append([
            disagree[z].sum() * voxel_ml,
            disagree[z].sum() * voxel_ml * share,
            evidence.entropy[z] * voxel_ml * share,
            removed[z].sum() * voxel_ml,
            change[z] * voxel_ml * share,
            1.0 if z in edges else 0.0,
            _unenclosed(labels[z]),
            heart_ml,
        ])
    return np.asarray(rows, dtype=float)


TRANSFORM = "log1p of the volumes and shares"


def transformed(features: np.ndarray) -> np.ndarray:
    """Volumes and shares as ``log(1 + x)``; the flags and fractions as they are (what TRANSFORM names)."""
    out = np.array(features, dtype=float)
    for i, name in enumerate(FEATURES):
        if name in ("disagreement", "removed", "heart") or name.endswith("_share"):
            out[:, i] = np.log1p(np.maximum(out[:, i], 0.0))
    return out


# ---------------------------------------------------------------------------------------- truth


def slice_errors(labels: np.ndarray, reference: np.ndarray, voxel_ml: float) -> tuple[np.ndarray, np.ndarray]:
    """Per slice: whether it needs correction (the definition above) and its error volume (ml, all structures)."""
    needs, error = [], []
    for z in range(labels.shape[0]):
        flagged, wrong = False, 0.0
        for structure in STRUCTURES:
            a, b = labels[z] == structure.label, reference[z] == structure.label
            wrong += float((a ^ b).sum()) * voxel_ml
            if max(a.sum(), b.sum()) * voxel_ml >= NEEDS_CORRECTION_MIN_ML:
                dice = 2.0 * (a & b).sum() / max(a.sum() + b.sum(), 1)
                flagged |= dice < NEEDS_CORRECTION_DICE
        needs.append(flagged)
        error.append(wrong)
    return np.array(needs), np.array(error)


# ---------------------------------------------------------------------------------------- model


_MODEL_KEYS = ("signals", "mean", "scale", "coefficients", "intercept", "error_coefficients", "error_intercept")


@dataclass
class ReviewModel:
    """The fitted score: its signals, their standardisation and logistic coefficients; the error-volume fit."""

    signals: list[str]  # the names (of FEATURES) the score uses
    mean: np.ndarray
    scale: np.ndarray
    coefficients: np.ndarray  # one per signal
    intercept: float
    error_coefficients: np.ndarray  # non-negative, one per feature of FEATURES, on the transformed features
    error_intercept: float
    record: dict  # how it was fitted and what it measured; "interval_factors" for the parameter intervals

    def _standardised(self, features: np.ndarray) -> np.ndarray:
        columns = [FEATURES.index(name) for name in self.signals]
        return (transformed(features)[:, columns] - self.mean) / self.scale

    def score(self, features: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self._standardised(features) @ self.coefficients + self.intercept)))

    def expected_error_ml(self, features: np.ndarray) -> np.ndarray:
        return np.maximum(transformed(features) @ self.error_coefficients + self.error_intercept, 0.0)

    def contributions(self, features: np.ndarray) -> np.ndarray:
        """Each signal's part of the logit, per slice ``[n, len(signals)]`` (for "what is suspicious")."""
        return self._standardised(features) * self.coefficients

    def as_dict(self) -> dict:
        return {"features": list(FEATURES), "signals": list(self.signals), "mean": self.mean.tolist(),
                "scale": self.scale.tolist(), "coefficients": self.coefficients.tolist(),
                "intercept": self.intercept, "error_coefficients": self.error_coefficients.tolist(),
                "error_intercept": self.error_intercept, "transform": TRANSFORM, **self.record}

    @classmethod
    def from_dict(cls, data: dict) -> ReviewModel:
        if data.get("features") != list(FEATURES) or not set(data.get("signals", [])) <= set(FEATURES):
            raise CMRSegError("The review model was fitted on other signals than this cmrseg computes; refit it "
                              "(scripts/fit-review).")
        if data.get("transform") != TRANSFORM:  # its coefficients would be applied to other numbers
            raise CMRSegError("The review model was fitted on differently transformed signals than this cmrseg "
                              "uses; refit it (scripts/fit-review).")
        return cls(list(data["signals"]), np.array(data["mean"]), np.array(data["scale"]),
                   np.array(data["coefficients"]), float(data["intercept"]), np.array(data["error_coefficients"]),
                   float(data["error_intercept"]),
                   {k: v for k, v in data.items() if k not in (*_MODEL_KEYS, "features", "transform")})


def review_model_path(model_path: str | Path) -> Path:
    return Path(model_path).with_suffix(".review.json")


def load_review_model(model_path: str | Path) -> ReviewModel | None:
    """The review model fitted for a checkpoint, or None when it has none. One fitted for other weights (its
    recorded ``model_sha256`` is not the checkpoint's) is refused: its coefficients and interval factors were
    calibrated on that model's members and errors."""
    path = review_model_path(model_path)
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    if data.get("model_sha256") != file_sha256(model_path):
        raise CMRSegError(f"{path.name} was fitted for other weights than {Path(model_path).name}; refit it "
                          f"(scripts/fit-review {model_path}).")
    return ReviewModel.from_dict(data)


def fit_review_model(features: np.ndarray, needs: np.ndarray, error_ml: np.ndarray,
                     signals: list[str] | tuple[str, ...] = FEATURES, l2: float = 1.0,
                     record: dict | None = None) -> ReviewModel:
    """Logistic regression on ``signals`` (Newton's method, small L2) and a non-negative least-squares fit of
    the error volume on all features."""
    from scipy.optimize import nnls

    everything = transformed(features)
    x = everything[:, [FEATURES.index(name) for name in signals]]
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    y = needs.astype(float)
    w = np.zeros(z.shape[1])
    penalty = np.eye(z.shape[1]) * l2
    penalty[-1, -1] = 0.0
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-z @ w))
        gradient = z.T @ (p - y) + penalty @ w
        hessian = (z * (p * (1 - p))[:, None]).T @ z + penalty
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    design = np.hstack([everything, np.ones((len(x), 1))])
    # nnls keeps every coefficient >= 0; the intercept may be negative, so it enters as +1 and -1 columns.
    solution, _ = nnls(np.hstack([design, -design[:, -1:]]), error_ml)
    return ReviewModel(list(signals), mean, scale, w[:-1], float(w[-1]), solution[:-2],
                       float(solution[-2] - solution[-1]), record or {})


# ---------------------------------------------------------------------------------------- metrics


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (ties count half); NaN without both classes."""
    scores, positive = np.asarray(scores, float), np.asarray(positive, bool)
    pos, neg = scores[positive], scores[~positive]
    if not len(pos) or not len(neg):
        return float("nan")
    ranks = _ranks(np.concatenate([pos, neg]))
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def _ranks(values: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(values)


def top_share(scores: np.ndarray, positive: np.ndarray, weights: np.ndarray | None = None,
              fraction: float = 0.2) -> float:
    """The share of the positives (or of ``weights``) found among the top-scored ``fraction`` of slices."""
    scores = np.asarray(scores, float)
    values = np.asarray(positive, float) if weights is None else np.asarray(weights, float)
    top = np.argsort(-scores, kind="stable")[: max(1, int(round(fraction * len(scores))))]
    total = values.sum()
    return float(values[top].sum() / total) if total > 0 else float("nan")


# ---------------------------------------------------------------------------------------- per study


def review_slices(model: ReviewModel, labels: dict[int, np.ndarray], evidence: dict[int, FrameEvidence],
                  phases: dict[int, str], voxel_ml: float) -> list[dict]:
    """The ``review.slices`` entries of measures.json: every slice of the ED/ES frames, best first."""
    entries = []
    for frame, phase in phases.items():
        if frame not in evidence:
            continue
        features = slice_features(evidence[frame], labels[frame], voxel_ml)
        scores, errors = model.score(features), model.expected_error_ml(features)
        contributions = model.contributions(features)
        members = evidence[frame].member_labels
        for z in range(len(scores)):
            reasons = [model.signals[i] for i in np.argsort(-contributions[z]) if contributions[z, i] > 0.5]
            doubtful = [s.key for s in STRUCTURES
                        if (((members[:, z] == s.label) != (members[:1, z] == s.label)).any(axis=0).sum() * voxel_ml
                            >= STRUCTURE_DOUBT_ML)]
            entries.append({"phase": phase, "frame": frame, "slice": z, "score": round(float(scores[z]), 4),
                            "expected_error_ml": round(float(errors[z]), 2), "structures": doubtful,
                            "signals": reasons})
    return sorted(entries, key=lambda e: -e["score"])


# ---------------------------------------------------------------------------------------- parameter intervals

INTERVAL_PARAMETERS = ("lv_edv_ml", "lv_ef_pct", "rv_ef_pct", "lv_mass_ed_g")
INTERVAL_FLOORS = {"lv_edv_ml": 2.0, "lv_ef_pct": 1.0, "rv_ef_pct": 2.0, "lv_mass_ed_g": 2.0}  # spread floor
INTERVAL_LEVEL = 0.9
INTERVAL_BOUNDS = {"lv_edv_ml": (0.0, np.inf), "lv_ef_pct": (0.0, 100.0), "rv_ef_pct": (0.0, 100.0),
                   "lv_mass_ed_g": (0.0, np.inf)}


def study_parameters(ed: np.ndarray, es: np.ndarray, voxel_ml: float) -> dict[str, float]:
    """LV EDV, LV EF, RV EF and LV mass at ED of ED and ES label maps."""
    from cmrseg.labels import RV

    def volume(labels, label):
        return float((labels == label).sum()) * voxel_ml

    def ef(edv, esv):
        return 100.0 * (edv - esv) / edv if edv > 0 else float("nan")

    return {"lv_edv_ml": volume(ed, LV), "lv_ef_pct": ef(volume(ed, LV), volume(es, LV)),
            "rv_ef_pct": ef(volume(ed, RV), volume(es, RV)), "lv_mass_ed_g": volume(ed, MYO) * 1.05}


def member_parameters(ed: FrameEvidence, es: FrameEvidence, voxel_ml: float) -> list[dict[str, float]]:
    """Each ensemble member's parameters, from its own label maps after the same clean-up."""
    from cmrseg.postprocess import clean_labels

    return [study_parameters(clean_labels(a), clean_labels(b), voxel_ml)
            for a, b in zip(ed.member_labels, es.member_labels, strict=True)]


def spread(members: list[dict[str, float]], name: str) -> float:
    """The members' standard deviation of a parameter, with its floor (three members can agree by chance)."""
    return float(np.nanstd([m[name] for m in members])) + INTERVAL_FLOORS[name]


def parameter_intervals(value: dict, members: list[dict[str, float]], factors: dict[str, float]) -> dict:
    """``{name: {"value", "low", "high", "level"}}``: value +- factor x spread, the factor calibrated for the level."""
    result = {}
    for name in INTERVAL_PARAMETERS:
        if name not in factors or value.get(name) is None or not np.isfinite(value[name]):
            continue
        low, high = INTERVAL_BOUNDS[name]  # an interval never leaves what the parameter can be
        if not low <= value[name] <= high:
            continue  # e.g. a negative EF: the value itself is unusable (the QC says so); no interval can hold it
        half = factors[name] * spread(members, name)
        # unrounded: rounded here and again where shown, a value could read 59.9 beside the table's 59.8
        result[name] = {"value": float(value[name]), "low": max(float(value[name]) - half, low),
                        "high": min(float(value[name]) + half, high), "level": INTERVAL_LEVEL}
    return result


def calibrate_factors(normalised_errors: dict[str, list[float]]) -> dict[str, float]:
    """Per parameter, the factor that makes ``|expert - value| <= factor x spread`` hold for the level's share."""
    return {name: float(np.quantile(np.abs(errors), INTERVAL_LEVEL, method="higher"))
            for name, errors in normalised_errors.items() if errors}
