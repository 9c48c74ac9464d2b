"""What the commands print: a study's parameters with their reference flags, the quality check, the slices
worth checking first, and the summary of ``cmrseg info``."""

from __future__ import annotations


def basal_removed_text(measures: dict) -> str:
    """Which slices lost their LV blood pool to the basal-slice rule, at ED and ES (every frame without them);
    empty when no rule was applied."""
    removed = measures.get("basal_rule_removed_slices")
    if measures["basal_rule"] == "none" or removed is None:
        return ""
    if measures.get("ed_frame") is not None:
        named = [("ED", measures["ed_frame"]), ("ES", measures["es_frame"])]
    else:
        named = [(f"frame {measures['frames'][key]['frame_number']}", int(key)) for key in removed]
    parts = []
    for name, index in named:
        slices = removed.get(str(index), [])
        parts.append(f"{name} " + (f"slice(s) {', '.join(map(str, slices))}" if slices else "none"))
    return "LV blood pool removed: " + "; ".join(parts)


def format_measures(measures: dict) -> str:
    from cmrseg.qc import unusable_parameters
    from cmrseg.reference import applied_text, value_notes
    from cmrseg.report import INDEXED, PARAMETERS

    removed = basal_removed_text(measures)
    lines = [f"Model: {measures['model']}", f"Basal-slice rule: {measures['basal_rule']}"
             + (f" ({removed})" if removed else "")]
    study = measures.get("study")
    if not study:  # one frame (or ED and ES one frame): its volumes, marked where the check judged them
        lines += [f"frame {index}: {text}" for index, text in frame_volume_texts(measures).items()]
        return "\n".join(lines)
    # the numbers that name the frames in the output files and the report, not the 0-based indices
    lines.append(f"ED frame {measures['ed_frame_number']}, ES frame {measures['es_frame_number']} "
                 f"({measures['ed_es_from']})")
    reference = measures.get("reference", {})
    unusable = unusable_parameters(measures.get("qc"), study)
    for key, name, unit in PARAMETERS:
        indexed = study.get(INDEXED.get(key, ""))
        extra = f"   ({indexed:.1f} {unit}/m2)" if indexed is not None else ""
        value = f"{study[key]:8.1f}" if study[key] is not None else f"{'-':>8}"
        checks = "; ".join(value_notes(reference, key, INDEXED.get(key), unusable))
        lines.append(f"  {name:14} {value} {unit}{extra}" + (f"   {checks}" if checks else ""))
    if reference:
        lines.append(f"Reference ranges ({reference['limits']}; sources in measures.json): {applied_text(reference)}")
    return "\n".join(lines)


def frame_volume_texts(measures: dict) -> dict[str, str]:
    """``{frame key: "LV 123.4 ml, RV ..., LV mass ... g"}`` of a result without study parameters (one frame, or
    ED and ES one frame), each value marked where the quality check makes it unusable (on the frame it judged)."""
    from cmrseg.qc import judged_frame, unusable_parameters, unusable_text

    judged, texts = judged_frame(measures), {}
    for index, frame in measures["frames"].items():
        unusable = unusable_parameters(measures.get("qc"), frame) if index == judged else {}
        shown = {key: f"{frame[key]:.1f} {unit}" + (f" ({unusable_text(unusable[key])})" if key in unusable else "")
                 for key, unit in (("lv_ml", "ml"), ("rv_ml", "ml"), ("myo_mass_g", "g"))}  # fmt: skip
        texts[index] = f"LV {shown['lv_ml']}, RV {shown['rv_ml']}, LV mass {shown['myo_mass_g']}"
    return texts


def format_qc(qc: dict) -> str:
    """The quality check, prominently: a status line and one line per flag."""
    headline = {"pass": "PASS (no implausible finding)", "review": "REVIEW (check the flagged findings)",
                "fail": "FAIL (some numbers above are not usable as they are)"}[qc["status"]]
    lines = [f"Quality check: {headline}"]
    for flag in qc["flags"]:
        where = flag["phase"] or ""
        if flag["slice"] is not None:
            where += f" slice {flag['slice']}"
        lines.append(f"  [{flag['severity'].upper()}] {where + ': ' if where else ''}{flag['message']}")
    return "\n".join(lines)


def format_review(review: dict, qc: dict | None = None, count: int = 5) -> str:
    """The slices most worth checking (the review score, highest first), and the parameters' intervals: a value
    the quality check ``qc`` makes unusable is marked so, without an interval."""
    from cmrseg.qc import unusable_parameters, unusable_text

    lines = [f"Slices most worth checking (review score; all {len(review['slices'])} in measures.json):"]
    for entry in review["slices"][:count]:
        what = ", ".join(entry["structures"] + entry["signals"]) or "-"
        lines.append(f"  {entry['phase']} slice {entry['slice']:2d}: score {entry['score']:.2f}, "
                     f"~{entry['expected_error_ml']:.1f} ml to correct ({what})")
    intervals = review.get("intervals", {})
    if intervals:
        lines.append("90 % intervals from the ensemble's spread (calibrated on validation patients):")
        unusable = unusable_parameters(qc)
        for name, interval in intervals.items():
            shown = (unusable_text(unusable[name]) if name in unusable
                     else f"[{interval['low']:.1f}, {interval['high']:.1f}]")
            lines.append(f"  {name:14} {interval['value']:8.1f}  {shown}")
    return "\n".join(lines)


def format_summary(summary: dict) -> str:
    times = summary["frame_times_ms"]
    lines = [
        f"Source:       {summary['source']}",
        f"Series:       {summary['description'] or '-'}",
        f"Frames:       {summary['frames']}",
        f"Slices:       {summary['slices']}",
        "Matrix:       {} x {} (rows x columns)".format(*summary["matrix_rows_cols"]),
        "Spacing:      {} x {} mm in-plane, {} mm between slices".format(*summary["spacing_xyz_mm"]),
        "Origin (LPS): {}".format(", ".join(f"{v:.2f}" for v in summary["origin_lps_mm"])),
    ]
    names = ("row direction", "column direction", "slice normal")
    for name, axis in zip(names, summary["direction_columns_lps"], strict=True):
        lines.append(f"  {name + ':':18}{' '.join(f'{v:+.4f}' for v in axis)}")
    if times is None:
        lines.append("Frame times:  unknown (the input gives no trigger times)")
    elif len(times) > 1:
        lines.append(f"Frame times:  {times[0]:.1f} .. {times[-1]:.1f} ms ({len(times)} frames)")
    if summary["ed_frame"] is not None or summary["es_frame"] is not None:
        lines.append(f"ED / ES:      frame {summary['ed_frame']} / frame {summary['es_frame']} (0-based)")
    patient = summary["patient"]
    lines.append("Patient:      " + (", ".join(f"{k} {v}" for k, v in patient.items()) if patient else "no data"))
    return "\n".join(lines)
