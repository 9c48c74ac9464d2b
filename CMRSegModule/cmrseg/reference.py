"""Adult normal ranges of the clinical parameters, and each value's flag (low / normal / high) and z-score.

The ranges are read from ``Resources/ReferenceRanges/adult_cmr_reference_ranges.csv``: one row per parameter,
sex and age band, with the source's mean and SD, its papillary-muscle convention and the citation. A range is
mean +/- 1.96 SD, the central 95 % of a normal distribution. A range applies only to the patient's sex and
inside the source's ages; a value with no applicable range gets no flag, and says why.
"""

from __future__ import annotations

import csv
import functools
import math
from dataclasses import dataclass
from pathlib import Path

from cmrseg.errors import CMRSegError

RANGES_FILE = Path(__file__).resolve().parents[1] / "Resources" / "ReferenceRanges" / "adult_cmr_reference_ranges.csv"
LIMIT_SD = 1.96
# The network draws papillary muscles and trabeculations inside the blood pool (the ACDC convention).
CMRSEG_PAPILLARY_MUSCLES = "blood pool"
SEXES = ("F", "M")
# The measures that are clinical parameters (volumes, EF, mass, indexed values); BSA and the like are not.
PARAMETER_SUFFIXES = ("_ml", "_pct", "_g", "_index")


@dataclass(frozen=True)
class ReferenceRange:
    """One row of the ranges file."""

    parameter: str  # a field of cmrseg.measures.StudyMeasures
    sex: str
    age_min: float
    age_max: float
    mean: float
    sd: float
    unit: str
    papillary_muscles: str  # "blood pool", "myocardium" or "not stated"
    source: str
    where: str

    @property
    def lower(self) -> float:
        return self.mean - LIMIT_SD * self.sd

    @property
    def upper(self) -> float:
        return self.mean + LIMIT_SD * self.sd

    def covers_age(self, age_years: float) -> bool:
        return self.age_min <= age_years <= self.age_max


@functools.cache
def load_ranges(path: Path = RANGES_FILE) -> tuple[ReferenceRange, ...]:
    """The rows of a ranges file, checked (sex, positive SD, ordered ages, a source on every row)."""
    try:
        with open(path, newline="", encoding="utf-8") as stream:
            rows = list(csv.DictReader(stream))
    except OSError as exc:
        raise CMRSegError(f"Cannot read the reference ranges {path}: {exc.strerror}.") from exc
    ranges = []
    for number, row in enumerate(rows, start=2):
        try:
            entry = ReferenceRange(
                parameter=row["parameter"], sex=row["sex"], age_min=float(row["age_min"]),
                age_max=float(row["age_max"]), mean=float(row["mean"]), sd=float(row["sd"]), unit=row["unit"],
                papillary_muscles=row["papillary_muscles"], source=row["source"], where=row["where"],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CMRSegError(f"{path} line {number} is not a complete reference-range row.") from exc
        if entry.sex not in SEXES or entry.sd <= 0 or entry.age_min > entry.age_max or not entry.source:
            raise CMRSegError(f"{path} line {number} has a bad sex, SD, age band or no source.")
        ranges.append(entry)
    return tuple(ranges)


def sex_code(value: str | None) -> str | None:
    """DICOM PatientSex or user input as ``M``, ``F``, ``O``, or None when not given."""
    text = (value or "").strip().upper()
    return {"MALE": "M", "FEMALE": "F", "OTHER": "O"}.get(text, text) or None


def compare_with_ranges(measures: dict, sex: str | None, age_years: float | None,
                        ranges: tuple[ReferenceRange, ...] | None = None) -> dict:
    """Each parameter of ``measures`` (a StudyMeasures dict) against the ranges for this sex and age.

    Returns ``{"applied", "sex", "age_years", "limits", "note", "parameters": {key: entry}, "without_range"}``;
    an entry holds value, mean, sd, lower, upper, z, flag (``low``/``normal``/``high``, or None with
    ``reason`` when the patient's age is outside the source's), unit, source and convention notes.
    """
    ranges = load_ranges() if ranges is None else ranges
    sex = sex_code(sex)
    result = {"applied": False, "sex": sex, "age_years": age_years,
              "limits": f"mean +/- {LIMIT_SD} SD of the source", "parameters": {}, "without_range": []}
    if sex is None:
        return result | {"note": "Sex unknown: reference ranges not applied (give the patient's sex, e.g. --sex F)."}
    if sex not in SEXES:
        return result | {"note": f"Sex {sex!r}: the sources give ranges for women and men only; not applied."}
    notes = [] if age_years is not None else ["Age unknown: each source's adult range is used whatever the age."]
    missing_index = False
    for key, value in measures.items():
        if not key.endswith(PARAMETER_SUFFIXES):
            continue
        rows = [r for r in ranges if r.parameter == key and r.sex == sex]
        if not rows:
            result["without_range"].append(key)
            continue
        if value is None or not math.isfinite(value):
            missing_index |= key.endswith("_index")  # no BSA: no height or weight
            continue
        row = next((r for r in rows if age_years is None or r.covers_age(age_years)), None)
        if row is None:
            bands = ", ".join(f"{r.age_min:g}-{r.age_max:g}" for r in rows)
            result["parameters"][key] = {"value": value, "flag": None, "unit": rows[0].unit,
                                         "reason": f"age {age_years:g} outside the source's {bands} years"}
            continue
        result["parameters"][key] = _entry(value, row)
    if missing_index:
        notes.append("Height or weight unknown: the BSA-indexed ranges are not applied.")
    result["applied"] = any(entry["flag"] is not None for entry in result["parameters"].values())
    return result | {"note": " ".join(notes)}


def _entry(value: float, row: ReferenceRange) -> dict:
    z = (value - row.mean) / row.sd
    # judged as shown (one decimal), so that a flag never contradicts the printed value and limits
    shown, lower, upper = (round(x, 1) for x in (value, row.lower, row.upper))
    flag = "low" if shown < lower else "high" if shown > upper else "normal"
    entry = {"value": value, "mean": row.mean, "sd": row.sd, "lower": row.lower, "upper": row.upper, "z": z,
             "flag": flag, "unit": row.unit, "age_band": [row.age_min, row.age_max],
             "papillary_muscles": row.papillary_muscles, "source": row.source, "where": row.where}
    if row.parameter.startswith("lv_") and row.papillary_muscles == "myocardium":
        entry["convention"] = ("the source counts papillary muscles in the myocardium, CMRSeg in the blood pool: "
                               "CMRSeg's LV volumes are the larger by their volume")
    return entry


def flag_text(entry: dict | None) -> str:
    """``normal (51.2-70.8 %, z -0.4)``, ``no range`` or the reason a range was not applied; a range whose
    source counts the papillary muscles otherwise than CMRSeg says so beside it, where its flag is read."""
    if entry is None:
        return "no range"
    if entry["flag"] is None:
        return entry["reason"]
    caveat = "; its source counts papillary muscles as myocardium" if "convention" in entry else ""
    return (f"{entry['flag']} ({entry['lower']:.1f}-{entry['upper']:.1f} {entry['unit']}, z {entry['z']:+.1f}"
            f"{caveat})")


def value_checks(reference: dict | None, key: str, indexed_key: str | None) -> list[tuple[str, dict]]:
    """``(text, entry)`` for a parameter and its BSA-indexed value where each has a range entry: the text is
    :func:`flag_text`, prefixed ``indexed: `` for the indexed value (one wording for every report)."""
    entries = (reference or {}).get("parameters", {})
    return [(label + flag_text(entries[k]), entries[k]) for label, k in (("", key), ("indexed: ", indexed_key))
            if k in entries]


def value_notes(reference: dict | None, key: str, indexed_key: str | None, unusable: dict[str, str]) -> list[str]:
    """The texts shown beside a parameter: that the quality check makes it unusable (``unusable``:
    :func:`cmrseg.qc.unusable_parameters`), then its :func:`value_checks`."""
    from cmrseg.qc import unusable_text

    marks = [unusable_text(unusable[key])] if key in unusable else []
    return marks + [text for text, _ in value_checks(reference, key, indexed_key)]


def applied_text(reference: dict) -> str:
    """``applied for F, 50 years`` or ``not applied``, then the note (what was missing)."""
    if reference["applied"]:
        age = f", {reference['age_years']:g} years" if reference["age_years"] is not None else ""
        text = f"applied for {reference['sex']}{age}"
    else:
        text = "not applied"
    return f"{text}. {reference['note']}" if reference["note"] else text


def sources(reference: dict) -> list[str]:
    """The distinct sources behind the applied ranges, each with its papillary-muscle convention."""
    seen = {}
    for entry in reference.get("parameters", {}).values():
        if entry.get("source"):
            seen.setdefault(entry["source"], entry["papillary_muscles"])
    return [f"{source} [papillary muscles: {convention}]" for source, convention in seen.items()]
