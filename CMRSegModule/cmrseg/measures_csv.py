"""``measures.csv``: a run's study parameters, reference flags, quality check and per-frame volumes as rows a
spreadsheet opens."""

from __future__ import annotations

import csv
from pathlib import Path

from cmrseg.qc import judged_frame, unusable_parameters
from cmrseg.reference import flag_text


def write_measures_csv(measures: dict, path: Path) -> None:
    """One ``parameter,value`` row per study parameter, then per-frame volumes."""
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["parameter", "value"])
        for key, value in measures.get("study", {}).items():
            writer.writerow([key, "" if value is None else value])
        reference = measures.get("reference", {})
        for key, entry in reference.get("parameters", {}).items():
            writer.writerow([f"{key}_reference", flag_text(entry)])
        if reference:
            writer.writerow(["reference_note", reference["note"]])
        writer.writerow([])
        writer.writerow(["qc_status", measures["qc"]["status"]])
        values = measures.get("study") or measures["frames"][judged_frame(measures)]  # one frame: its volumes
        writer.writerow(["qc_not_usable", " ".join(unusable_parameters(measures["qc"], values))])
        for flag in measures["qc"]["flags"]:
            writer.writerow([f"qc_{flag['severity']}", flag["message"]])
        writer.writerow([])
        writer.writerow(["frame", "frame_number", "time_ms", "lv_ml", "rv_ml", "myo_ml", "myo_mass_g"])
        for index, frame in measures["frames"].items():
            writer.writerow([index, frame["frame_number"], "" if frame["time_ms"] is None else frame["time_ms"],
                             frame["lv_ml"], frame["rv_ml"], frame["myo_ml"], frame["myo_mass_g"]])
