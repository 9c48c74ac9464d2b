"""Plausibility checks on a segmentation result: ``qc`` in measures.json, the report and the Slicer table.

Status ``fail``: the numbers cannot be right (a negative stroke volume, the RV missing on most slices, a gap
inside the LV); ``review``: unusual but possible (a physician should look before signing); ``pass``: none.
Flags name the phase and slice (index along the slice axis of the written label map) where they apply.

Thresholds and their reasoning (checked on the expert masks of the 100 shared ACDC patients, which the same
checks must pass; ``Testing/test_qc.py`` measures the rates):
- Stroke volume <= 0 (ESV >= EDV): impossible in a beating ventricle; usually ED and ES swapped or a
  structure lost at ED. ``fail``.
- RV on fewer than half of the slices that hold LV at ED: the RV spans at least as much of the SAX stack
  as the LV (ACDC experts: 0.57-1.0 of the LV slices). ``fail``. At ES, or in a frame of unknown phase (a
  single-frame input), on fewer than a quarter (ACDC experts at ES: 0.30-1.17). ``fail``.
- EDV below 20 ml (LV or RV): far below any adult range (lowest ACDC expert EDV 47 ml). ``fail``.
- ESV below 5 ml (LV or RV): a cavity does not vanish at end-systole (lowest ACDC expert ESV: LV 19 ml in a
  hypertrophic heart, RV 10 ml); the structure was lost at ES and its EF would read near 100 %. ``fail``.
- A ventricle at ES on fewer slices than it holds at ED: the base descends by a slice or two, no more (ACDC
  experts: LV on 0.70-1.0, RV on 0.43-1.0 of its ED slices). LV below a half, RV below a third: ``review``.
- A gap (empty slices between slices holding the structure): ventricles and the LV wall are continuous (no
  ACDC expert mask and no network result on the 30 validation and test patients has one); the structure's
  volume (the LV mass, for the myocardium) at that phase misses a slice. ``fail``.
- LV blood pool not enclosed by myocardium (< 50 % of its border touching myocardium, as the basal-slice
  rule measures it) on a mid-ventricular slice: ``review``.
- Outside physiological limits (not normal ranges): EDV 40-450 ml, LV ESV above 350 ml, EF 5-85 %,
  LV mass 30-350 g. ``review``.
- LV and RV stroke volume differing by more than 50 % of the larger: regurgitation or shunts can do it, so
  ``review`` (ACDC experts: median 21 %, 90th percentile 51 %).
- LV mass at ED and ES differing by more than 25 %: the myocardium does not change volume (ACDC experts:
  median 13 %, 95th percentile 26 %, from contouring conventions). ``review``.
- A structure reaching the edge of the image (its outermost rows or columns): the field of view may cut it
  off, and its volume then reads too small (no ACDC expert mask reaches the edge). ``review``.
- The RV to the patient's left of the LV (by the image orientation in the file): situs inversus, or an
  orientation in the file that is wrong (ACDC experts: the RV's centre 9.5-54 mm to the right of the LV's);
  the network was trained on the usual anatomy, and such a heart is segmented mirrored when that is where it
  finds the RV (:func:`cmrseg.inference.network_view`). ``review``.
- The slices segmented mirrored against the header (the network found the RV only so): ``review``.
- A single-frame jump in the LV volume curve (all frames segmented; the volumes after the basal rule, as the
  report's curve shows them): a frame deviating from the median of its four nearest frames by more than 25 %
  of the (median-filtered) curve's range and 5 ml. ``review``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from cmrseg.basal import enclosed_fraction
from cmrseg.labels import LV, MYO, RV

RV_COVERAGE_MIN = 0.5  # of the LV's slices, at ED
RV_COVERAGE_MIN_ANY_PHASE = 0.25  # at ES, or in a frame of unknown phase
EDV_FAIL_ML = 20.0
ESV_FAIL_ML = 5.0
ES_SLICES_MIN = {LV: 0.5, RV: 1 / 3}  # of the structure's own ED slices
EDV_RANGE_ML = (40.0, 450.0)
LV_ESV_MAX_ML = 350.0
EF_RANGE_PCT = (5.0, 85.0)
MASS_RANGE_G = (30.0, 350.0)
ENCLOSURE_MIN = 0.5
SV_MISMATCH = 0.5
MASS_MISMATCH = 0.25
CURVE_JUMP_FRACTION = 0.25
CURVE_JUMP_ML = 5.0


@dataclass
class Flag:
    code: str
    severity: str  # "review" or "fail"
    message: str
    phase: str | None = None  # "ED" or "ES"
    slice: int | None = None


def status_of(flags: list[Flag]) -> str:
    severities = {flag.severity for flag in flags}
    return "fail" if "fail" in severities else "review" if "review" in severities else "pass"


def _slices_with(labels: np.ndarray, label: int) -> np.ndarray:
    return np.flatnonzero((labels == label).any(axis=(1, 2)))


NAMES = {LV: "LV blood pool", RV: "RV blood pool", MYO: "myocardium"}


def structure_flags(labels: np.ndarray, phase: str | None) -> list[Flag]:
    """Checks on one frame's ``[z, y, x]`` label map (``phase`` ED, ES, or None when unknown): gaps, RV
    coverage, LV enclosure, the image edge."""
    flags = edge_flags(labels, phase)
    for label, name in NAMES.items():
        present = _slices_with(labels, label)
        if len(present) < 2:
            continue
        missing = sorted(set(range(present[0], present[-1] + 1)) - set(present.tolist()))
        if missing:
            flags.append(Flag(
                f"{name.split()[0].lower()}_gap", "fail",
                f"{name} is missing on slice(s) {', '.join(map(str, missing))} between slices that hold it "
                "(the ventricle is continuous): check those slices.", phase, missing[0]))
    lv_slices = _slices_with(labels, LV)
    if len(lv_slices):
        rv_slices = _slices_with(labels, RV)
        least = RV_COVERAGE_MIN if phase == "ED" else RV_COVERAGE_MIN_ANY_PHASE
        if len(rv_slices) < least * len(lv_slices):
            flags.append(Flag(
                "rv_coverage", "fail",
                f"RV blood pool on {len(rv_slices)} of the {len(lv_slices)} slices that hold LV"
                + (f" at {phase}" if phase else "") + f" (expected at least {least:.0%}): the RV was largely "
                "missed; its volumes" + (" and EF" if phase else "") + " are not usable.", phase))
    if len(lv_slices) >= 3:
        first, last = lv_slices[0], lv_slices[-1]
        third = (last - first) / 3.0
        for z in lv_slices:
            if not first + third <= z <= last - third:
                continue
            enclosed = enclosed_fraction(labels[z])
            if enclosed < ENCLOSURE_MIN:
                flags.append(Flag(
                    "lv_not_enclosed", "review",
                    f"On mid-ventricular slice {z} only {enclosed:.0%} of the LV blood pool's border touches "
                    "myocardium (expected all of it): check the myocardium there.", phase, int(z)))
    return flags


def edge_flags(labels: np.ndarray, phase: str | None) -> list[Flag]:
    """Structures on the outermost rows or columns of a slice: cut off by the field of view, perhaps."""
    rim = np.zeros(labels.shape[1:], dtype=bool)
    rim[[0, -1], :] = rim[:, [0, -1]] = True
    at_edge = {label: np.flatnonzero((labels[:, rim] == label).any(axis=1)) for label in NAMES}
    named = [NAMES[label] for label, slices in at_edge.items() if len(slices)]
    if not named:
        return []
    first = min(int(slices[0]) for slices in at_edge.values() if len(slices))
    return [Flag("at_image_edge", "review",
                 f"The {', '.join(named)} reach(es) the edge of the image (first on slice {first}): the field of "
                 "view may cut the heart off there, and its volumes would then read too small; check.", phase,
                 first)]


def side_flags(labels: np.ndarray, spacing: tuple[float, float, float], direction: np.ndarray,
               phase: str | None = "ED") -> list[Flag]:
    """The RV to the patient's left of the LV, by the direction of the image axes in patient coordinates
    (LPS: +x is the patient's left)."""
    centres = {}
    for label in (LV, RV):
        z, y, x = np.nonzero(labels == label)
        if not len(z):
            return []
        centres[label] = np.asarray(direction) @ (np.asarray(spacing) * np.array([x.mean(), y.mean(), z.mean()]))
    leftward = float(centres[RV][0] - centres[LV][0])
    if leftward <= 0:
        return []
    return [Flag("rv_side", "review",
                 f"The RV lies {leftward:.0f} mm to the patient's left of the LV, as the image orientation in the "
                 "file places them: situs inversus, or an orientation in the file that is wrong. The network "
                 "knows the usual anatomy (a heart it finds only mirrored is segmented mirrored): check the "
                 "orientation and the segmentation before using its numbers.", phase)]


def shortening_flags(ed_labels: np.ndarray, es_labels: np.ndarray) -> list[Flag]:
    """LV or RV at ES on far fewer slices than at ED: part of it was lost at ES."""
    flags = []
    for label, name in ((LV, "LV"), (RV, "RV")):
        at_ed, at_es = len(_slices_with(ed_labels, label)), len(_slices_with(es_labels, label))
        if at_ed and at_es < ES_SLICES_MIN[label] * at_ed:
            flags.append(Flag(
                f"{name.lower()}_es_coverage", "review",
                f"{name} blood pool on {at_es} slices at ES against {at_ed} at ED (expected at least "
                f"{ES_SLICES_MIN[label]:.0%} of them): it may have been missed at ES, which would overstate its "
                "EF; check the ES slices.", "ES"))
    return flags


# The parameters each failing check makes unusable, by phase where the check names one: a value the check calls
# not usable is marked so wherever it is shown, not only in the check's message above the table.
_VOLUMES = {"ED": ("edv_ml", "sv_ml", "ef_pct"), "ES": ("esv_ml", "sv_ml", "ef_pct"),
            None: ("edv_ml", "esv_ml", "sv_ml", "ef_pct")}
_SINGLE_FRAME = {"lv": "lv_ml", "rv": "rv_ml"}  # a single frame's mass is "myo_mass_g"
_INDEXED = {"edv_ml": "edv_index", "esv_ml": "esv_index", "sv_ml": "sv_index"}


def unusable_parameters(qc: dict | None, values: dict | None = None) -> dict[str, str]:
    """``{parameter key: code of the failing check}`` for the values a failing check makes unusable (study
    parameters, their BSA-indexed values, and a single frame's volumes); with ``values``, only those it holds
    as numbers (a value not given, shown ``-``, needs no mark)."""
    if values is not None:
        return {key: code for key, code in unusable_parameters(qc).items()
                if isinstance(values.get(key), (int, float)) and np.isfinite(values[key])}
    unusable: dict[str, str] = {}
    for flag in (qc or {}).get("flags", []):
        if flag["severity"] != "fail":
            continue
        code, phase = flag["code"], flag["phase"]
        if code == "myocardium_gap":  # the LV mass at the flag's phase
            for key in ((f"lv_mass_{phase.lower()}_g",) if phase else ("lv_mass_ed_g", "lv_mass_es_g")):
                unusable.setdefault(key, code)
            if phase in ("ED", None):
                unusable.setdefault("lv_mass_ed_index", code)
            unusable.setdefault("myo_mass_g", code)
            continue
        if code in ("rv_coverage", "lv_gap", "rv_gap"):  # the structure's volume at the flag's phase
            side = code[:2]
        elif code.endswith(("_edv_implausible", "_sv_not_positive")):
            side, phase = code[:2], None  # a ventricle lost at ED, or ED and ES reversed: none of its volumes
        elif code.endswith("_esv_implausible"):
            side, phase = code[:2], "ES"
        else:
            continue
        for key in _VOLUMES[phase]:
            unusable.setdefault(f"{side}_{key}", code)
            if key in _INDEXED:
                unusable.setdefault(f"{side}_{_INDEXED[key]}", code)
        unusable.setdefault(_SINGLE_FRAME[side], code)
    return unusable


def judged_frame(measures: dict) -> str:
    """The key in measures.json's ``frames`` of the frame a result without study parameters was checked on: ED
    when ED and ES are one frame (other frames segmented beside it are not judged), else its one frame."""
    return str(measures["ed_frame"]) if measures.get("ed_frame") is not None else next(iter(measures["frames"]))


NOT_USABLE = "NOT USABLE"


def unusable_text(code: str) -> str:
    """How a surface marks a value that a failing check makes unusable (one wording everywhere)."""
    return f"{NOT_USABLE} (quality check: {code})"


def _outside(value: float, low: float, high: float) -> bool:
    return not low <= value <= high


def measure_flags(study: dict) -> list[Flag]:
    """Checks on the study parameters (``StudyMeasures.as_dict()``)."""
    flags = []
    # Values are judged as the messages show them (one decimal), so that a message never names a value inside
    # the limits it says it is outside.
    for side in ("lv", "rv"):
        edv, esv, ef = (round(study[f"{side}_{key}"], 1) for key in ("edv_ml", "esv_ml", "ef_pct"))
        sv = edv - esv  # the study's SV and EF are left undefined when it is negative
        name = side.upper()
        if edv < EDV_FAIL_ML:
            flags.append(Flag(f"{side}_edv_implausible", "fail",
                              f"{name} EDV {edv:.1f} ml is far below any adult heart (< {EDV_FAIL_ML:g} ml): "
                              f"the {name} was largely missed; its volumes and EF are not usable.", "ED"))
        elif esv < ESV_FAIL_ML:
            flags.append(Flag(f"{side}_esv_implausible", "fail",
                              f"{name} ESV {esv:.1f} ml: a cavity does not vanish at end-systole (< "
                              f"{ESV_FAIL_ML:g} ml); the {name} was missed at ES, and its EF {ef:.1f} % is not "
                              "usable.", "ES"))
        elif sv <= 0:
            hint = " ED and ES look reversed." if side == "lv" else ""
            flags.append(Flag(f"{side}_sv_not_positive", "fail",
                              f"{name} stroke volume {sv:.1f} ml (ESV {esv:.1f} >= EDV {edv:.1f} ml) is "
                              f"impossible;{hint} {name} SV and EF are not reported."))
        else:
            if _outside(edv, *EDV_RANGE_ML):
                flags.append(Flag(f"{side}_edv_range", "review",
                                  f"{name} EDV {edv:.1f} ml is outside {EDV_RANGE_ML[0]:g}-{EDV_RANGE_ML[1]:g} ml.",
                                  "ED"))
            if _outside(ef, *EF_RANGE_PCT):
                flags.append(Flag(f"{side}_ef_range", "review",
                                  f"{name} EF {ef:.1f} % is outside {EF_RANGE_PCT[0]:g}-{EF_RANGE_PCT[1]:g} %."))
    if round(study["lv_esv_ml"], 1) > LV_ESV_MAX_ML:
        flags.append(Flag("lv_esv_range", "review",
                          f"LV ESV {study['lv_esv_ml']:.1f} ml is above {LV_ESV_MAX_ML:g} ml.", "ES"))
    mass = round(study["lv_mass_ed_g"], 1)
    if _outside(mass, *MASS_RANGE_G):
        flags.append(Flag("lv_mass_range", "review",
                          f"LV mass {mass:.1f} g at ED is outside {MASS_RANGE_G[0]:g}-{MASS_RANGE_G[1]:g} g.", "ED"))
    lv_sv, rv_sv = study["lv_sv_ml"], study["rv_sv_ml"]
    if lv_sv > 0 and rv_sv > 0 and abs(lv_sv - rv_sv) > SV_MISMATCH * max(lv_sv, rv_sv):
        flags.append(Flag("sv_mismatch", "review",
                          f"LV and RV stroke volumes differ: {lv_sv:.1f} vs {rv_sv:.1f} ml (more than "
                          f"{SV_MISMATCH:.0%}); regurgitation or a shunt, or a segmentation error."))
    ed_mass, es_mass = study["lv_mass_ed_g"], study["lv_mass_es_g"]
    if max(ed_mass, es_mass) > 0 and abs(ed_mass - es_mass) > MASS_MISMATCH * max(ed_mass, es_mass):
        flags.append(Flag("mass_mismatch", "review",
                          f"LV mass at ED {ed_mass:.1f} g and ES {es_mass:.1f} g differ by more than "
                          f"{MASS_MISMATCH:.0%}; the myocardium does not change volume: check both."))
    return flags


def judged_curve(lv_ml: dict[int, float]) -> dict[int, float] | None:
    """The LV volume curve the check judges, from every segmented frame's LV blood-pool volume: None when only
    ED and ES (or one frame) were segmented."""
    return dict(lv_ml) if len(lv_ml) > 2 else None


def curve_flags(curve: dict[int, float]) -> list[Flag]:
    """Single-frame jumps in the LV volume curve of a fully segmented cine.

    Each inner frame is compared with the median of its (up to four) nearest frames, so one outlier does not
    also flag its neighbours; the scale is the range of the median-filtered curve. The first and last
    frames are not judged: many cines do not cover the whole cycle, so they have neighbours on one side only.
    """
    frames = sorted(curve)
    if len(frames) < 5:
        return []
    volumes = np.array([curve[f] for f in frames])
    n = len(volumes)

    def window(i: int, offsets: tuple[int, ...]) -> list[float]:
        return [volumes[i + d] for d in offsets if 0 <= i + d < n]

    around = np.array([np.median(window(i, (-2, -1, 1, 2))) for i in range(n)])
    smooth = np.array([np.median(window(i, (-2, -1, 0, 1, 2))) for i in range(n)])
    limit = max(CURVE_JUMP_FRACTION * float(smooth.max() - smooth.min()), CURVE_JUMP_ML)
    return [
        Flag("curve_jump", "review",
             f"Frame {frames[i]}: LV volume {volumes[i]:.1f} ml jumps from the {around[i]:.1f} ml of the frames "
             "around it; check that frame.")
        for i in range(1, n - 1)
        if abs(volumes[i] - around[i]) > limit
    ]


def quality_check(
    labels: dict[int, np.ndarray],
    ed: int | None,
    es: int | None,
    study: dict | None,
    curve: dict[int, float] | None = None,
    geometry: tuple[tuple[float, float, float], np.ndarray] | None = None,
    segmented_mirrored: bool = False,
) -> dict:
    """The ``qc`` entry of measures.json: ``{"status": ..., "flags": [...]}``. ``geometry`` (the study's
    spacing and direction) lets it check the side of the RV; ``segmented_mirrored``: the network was shown the
    slices mirrored against the header (:func:`cmrseg.inference.network_view`)."""
    flags: list[Flag] = []
    if segmented_mirrored:
        flags.append(Flag("segmented_mirrored", "review",
                          "The network found the RV beside the LV only with the slices mirrored against the file's "
                          "orientation, and segmented them so: situs inversus, or pixel data stored mirrored. "
                          "Check the orientation and the segmentation before using its numbers.", None))
    # ED and ES one frame: checked as ED (RV coverage); without ED and ES (a single frame), of unknown phase
    phases = {es: "ES", ed: "ED"} if ed is not None else dict.fromkeys(labels)
    for index, phase in phases.items():
        if index in labels:
            flags += structure_flags(labels[index], phase)
    if ed is not None and ed != es and ed in labels and es in labels:
        flags += shortening_flags(labels[ed], labels[es])
    first = ed if ed is not None else next(iter(labels), None)
    if geometry is not None and first in labels:
        flags += side_flags(labels[first], *geometry, phases.get(first))
    if study is not None:
        flags += measure_flags(study)
    if curve is not None:
        flags += curve_flags(curve)
    return {"status": status_of(flags), "flags": [asdict(flag) for flag in flags]}
