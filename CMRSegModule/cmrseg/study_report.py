"""The report of one segmented study (``report.html`` and, on request, ``report.pdf``) from the run's
study, label maps and measures: what goes into the pages; the pages themselves are drawn by
:mod:`cmrseg.report` (HTML) and :mod:`cmrseg.report_pdf` (PDF)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cmrseg import __version__
from cmrseg.printout import basal_removed_text, frame_volume_texts


def write_study_report(path, study, labels, measures, segmenter, ed, es, curve, from_curve, pdf_path=None) -> None:
    rule = {"none": "none (all slices kept)", "50": ">= 50 % of the LV border enclosed by myocardium",
            "100": "100 % of the LV border enclosed by myocardium"}[measures["basal_rule"]]
    removed = basal_removed_text(measures)
    context = {
        "Patient": patient_line(study.patient),
        "Study": study.description or study.source,
        "Model": segmenter.description,
        "Basal-slice rule": rule + (f"; {removed}" if removed else ""),
        "ED / ES frames": (f"{study.frame_number(ed)} / {study.frame_number(es)} of {study.num_frames} ("
                           + ("numbered as the input numbers them" if study.frame_numbers is not None
                              else "counted from 0 in input order; numbered from 1, one higher")
                           + f"; {measures['ed_es_from']})" if ed is not None else "one frame only"),
        "Slice spacing": f"{study.spacing[2]:.2f} mm "
                         + ("(from slice positions)" if study.slice_files is not None else "(from the file header)"),
        "cmrseg": __version__,
    }
    if not measures.get("study"):  # no study parameters: the frame's volumes, which the table cannot hold
        for index, text in frame_volume_texts(measures).items():
            context[f"Frame {study.frame_number(int(index))} volumes"] = text
    if (measures.get("study") or {}).get("bsa_m2"):
        context["BSA"] = f"{measures['study']['bsa_m2']:.2f} m² ({measures['study']['bsa_method']})"
    overlays = []
    for index, name in ((ed, "End-diastole"), (es, "End-systole")):
        if index is not None and index in labels:
            overlays.append((f"{name} (frame {study.frame_number(index)})", study.frame(index), labels[index]))
    if ed is None:
        overlays = [(f"Frame {study.frame_number(i)}", study.frame(i), lab) for i, lab in labels.items()]
    curve_data = None
    if from_curve and len(curve) > 2:
        frames = sorted(curve)
        # the volumes of the table (after the basal rule), so that the curve at ED and ES reads as EDV and ESV
        lv, rv = ([measures["frames"][str(i)][key] for i in frames] for key in ("lv_ml", "rv_ml"))
        times, label = ((study.frame_times_ms[frames], "time (ms)") if study.frame_times_known
                        else (np.array([study.frame_number(i) for i in frames]), "frame"))
        curve_data = (times, lv, rv, frames.index(ed), frames.index(es), label)
    from cmrseg.report import write_report  # matplotlib: only when a report is drawn

    title = f"CMRSeg report: {study.description or Path(study.source).name}"
    review_frames = {i: (study.frame(i), labels[i]) for i in (ed, es) if i is not None and i in labels}
    write_report(path, title, measures.get("study", {}), context, overlays, curve_data, measures["qc"],
                 measures.get("review"), review_frames, measures.get("regional_wall_thickness"),
                 measures.get("volume_curve_rates"), measures.get("reference"), measures["basal_rule"])
    if pdf_path is not None:
        write_pdf(pdf_path, title, study, measures, context, overlays, curve_data)


def patient_line(patient) -> str:
    """Who the report is about, and the body size and sex/age behind its indexed values and ranges."""
    if patient is None:
        return "no patient data"
    parts = [f"ID {patient.patient_id}" if patient.patient_id else None, patient.sex,
             f"{patient.age_years:g} years" if patient.age_years is not None else None,
             f"{patient.height_cm:g} cm" if patient.height_cm is not None else None,
             f"{patient.weight_kg:g} kg" if patient.weight_kg is not None else None]
    return ", ".join(part for part in parts if part) or "no patient data"


def write_pdf(path, title, study, measures, context, overlays, curve_data) -> None:
    """report.pdf: the same content as report.html, laid out for printing and filing."""
    import base64

    from cmrseg.bullseye import regional_bullseyes
    from cmrseg.report import heart_box, slice_thumbnail, volume_curve_figure
    from cmrseg.report_pdf import write_pdf_report

    regional = measures.get("regional_wall_thickness")
    bullseyes = regional_bullseyes(regional) if regional else []
    curve_png = base64.b64decode(volume_curve_figure(*curve_data)) if curve_data is not None else None
    pages = []
    for heading, image, labels in overlays:
        box = heart_box(labels)
        pages.append((heading, [(f"slice {z}", slice_thumbnail(image[z], labels[z], box)) for z in range(len(image))]))
    write_pdf_report(path, title, measures.get("study", {}), context, measures["qc"], bullseyes, curve_png, pages,
                     measures.get("review"), measures.get("reference"))
