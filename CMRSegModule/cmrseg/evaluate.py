"""Evaluation the way the published study reports it.

Table 1: per structure and phase, Dice, Hausdorff distance (median over volumes of the 3D HD, and median over
volumes of each volume's median per-slice 2D HD, on the slices where both hold the structure: a slice missed
or added counts in the 3D HD and the Dice, not there) and sensitivity, under both basal-slice criteria
(applied to prediction and reference).
Table 3: R^2 and Bland-Altman bias +- 2 SD of LV EDV/ESV, RV EDV/ESV and myocardial mass at ED/ES.
Each method (e.g. "FCN" and "FCN+corr") is compared with the same expert reference. Beside them, where the
errors lie along the long axis (:mod:`cmrseg.error_regions`) and, where the data names them, the Dice by
pathology group (:mod:`cmrseg.evaluate_groups`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cmrseg.agreement import agreement, plot_agreement
from cmrseg.basal import apply_basal_rule, basal_end, basal_end_as
from cmrseg.error_regions import case_error_regions, error_region_markdown, error_region_table
from cmrseg.errors import CMRSegError
from cmrseg.evaluate_groups import group_markdown, group_table
from cmrseg.labels import STRUCTURES
from cmrseg.measures import frame_measures
from cmrseg.metrics import structure_metrics
from cmrseg.outputs import json_safe
from cmrseg.progress import ProgressCallback, report

log = logging.getLogger(__name__)

CRITERIA = ("50", "100")
PHASES = ("ED", "ES")
# Table 3 rows: (name, phase, measure attribute, unit)
CLINICAL = (
    ("LV EDV", "ED", "lv_ml", "ml"),
    ("LV ESV", "ES", "lv_ml", "ml"),
    ("RV EDV", "ED", "rv_ml", "ml"),
    ("RV ESV", "ES", "rv_ml", "ml"),
    ("Myo mass ED", "ED", "myo_mass_g", "g"),
    ("Myo mass ES", "ES", "myo_mass_g", "g"),
)


@dataclass
class Case:
    """One annotated frame: expert labels, one or more methods' labels on the same grid, and the spacing."""

    patient: str
    phase: str
    spacing: tuple[float, float, float]
    reference: np.ndarray
    methods: dict[str, np.ndarray]
    group: str | None = None  # the pathology group where the data names one (ACDC's Info.cfg)


def case_rows(case: Case) -> list[dict]:
    """Metric rows (one per method, criterion and structure) of one case."""
    rows = []
    base = basal_end(case.reference)
    for criterion in CRITERIA:
        reference, _ = apply_basal_rule(case.reference, criterion, base)
        for method, labels in case.methods.items():
            predicted, _ = apply_basal_rule(labels, criterion, basal_end_as(labels, case.reference))
            for structure in STRUCTURES:
                metrics = structure_metrics(predicted, reference, structure.label, case.spacing)
                rows.append({"patient": case.patient, "group": case.group, "phase": case.phase, "method": method,
                             "criterion": criterion, "structure": structure.key, **metrics})
    return rows


def case_volumes(case: Case, criterion: str) -> dict[str, dict[str, float]]:
    """Clinical volumes of the reference and every method under one basal criterion."""
    out = {}
    for name, labels in {"reference": case.reference, **case.methods}.items():
        cleaned, _ = apply_basal_rule(labels, criterion, basal_end_as(labels, case.reference))
        measured = frame_measures(cleaned, case.spacing)
        out[name] = {"lv_ml": measured.lv_ml, "rv_ml": measured.rv_ml, "myo_mass_g": measured.myo_mass_g}
    return out


def _median(values) -> float:
    """The median over every case with a value: a structure missed on one side (an infinite distance) counts
    as the largest, as it is; only undefined values (NaN: no slice to measure) are left out."""
    values = np.asarray(values, float)
    values = values[~np.isnan(values)]
    return float(np.median(values)) if values.size else float("nan")


def _sample_sd(values) -> float:
    """The sample standard deviation (n - 1), as the agreement statistics use; NaN for one value."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def table1(rows: list[dict]) -> list[dict]:
    """Summary per method, criterion, phase (ED, ES, both) and structure."""
    summary = []
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for method, criterion in ((m, c) for m in methods for c in CRITERIA):
        for phase in (*PHASES, "ED+ES"):
            for structure in STRUCTURES:
                chosen = [r for r in rows if r["method"] == method and r["criterion"] == criterion
                          and r["structure"] == structure.key and (phase == "ED+ES" or r["phase"] == phase)]
                if not chosen:
                    continue
                summary.append({
                    "method": method, "criterion": criterion, "phase": phase, "structure": structure.key,
                    "n": len(chosen),
                    "dice_mean": float(np.mean([r["dice"] for r in chosen])),
                    "dice_sd": _sample_sd([r["dice"] for r in chosen]),
                    "hd_median_mm": _median([r["hd_mm"] for r in chosen]),
                    "hd_2d_median_mm": _median([r["hd_2d_median_mm"] for r in chosen]),
                    "hd95_median_mm": _median([r["hd95_mm"] for r in chosen]),
                    "sensitivity_mean": float(np.nanmean([r["sensitivity"] for r in chosen])),
                    "hd_infinite": int(sum(not np.isfinite(r["hd_mm"]) for r in chosen)),
                })
    return summary


def table3(volumes: list[dict], methods: Iterable[str], plot_dir: Path | None = None) -> list[dict]:
    """Agreement rows per criterion, method and clinical parameter; ``volumes`` rows are per case."""
    summary = []
    for criterion in CRITERIA:
        for method in methods:
            for name, phase, attribute, unit in CLINICAL:
                chosen = [v for v in volumes if v["criterion"] == criterion and v["phase"] == phase]
                if len(chosen) < 3:
                    continue
                estimate = np.array([v["values"][method][attribute] for v in chosen])
                reference = np.array([v["values"]["reference"][attribute] for v in chosen])
                result = agreement(estimate, reference)
                summary.append({"criterion": criterion, "method": method, "parameter": name, "unit": unit,
                                **result.as_dict()})
                if plot_dir is not None:
                    slug = f"{method}_{name}_{criterion}".replace(" ", "_").replace("+", "plus")
                    plot_agreement(estimate, reference, f"{method} {name}", unit, plot_dir / f"{slug}.png")
    return summary


def distance_cell(row: dict, key: str) -> str:
    """A median distance, with how many of the cases were infinite (the structure missing on one side)."""
    infinite, value = row.get("hd_infinite", 0), row[key]
    if value is None and infinite and 2 * infinite >= row.get("n", 0):
        value = float("inf")  # an infinite median (half the cases or more missed it), as JSON could not keep it
    shown = "-" if value is None or np.isnan(value) else "inf" if np.isinf(value) else f"{value:.1f}"
    of = f" of {row['n']}" if "n" in row else ""
    return shown + (f" ({infinite}{of} inf)" if infinite else "")


def table1_markdown(summary: list[dict]) -> str:
    lines = ["| method | basal rule | phase | structure | n | Dice | HD 3D median (mm) | HD 2D median (mm) "
             "| HD95 median (mm) | Se |", "|" + "---|" * 10]
    for r in summary:
        lines.append(
            f"| {r['method']} | >= {r['criterion']} % | {r['phase']} | {r['structure']} | {r['n']} "
            f"| {r['dice_mean']:.3f} +- {r['dice_sd']:.3f} | {distance_cell(r, 'hd_median_mm')} "
            f"| {r['hd_2d_median_mm']:.1f} | {distance_cell(r, 'hd95_median_mm')} | {r['sensitivity_mean']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def table3_markdown(summary: list[dict]) -> str:
    lines = ["| method | basal rule | parameter | n | R^2 | bias +- 2 SD |", "|" + "---|" * 6]
    for r in summary:
        lines.append(f"| {r['method']} | >= {r['criterion']} % | {r['parameter']} | {r['n']} | {r['r2']:.3f} "
                     f"| {r['bias']:+.1f} +- {2 * r['sd']:.1f} {r['unit']} |")
    return "\n".join(lines) + "\n"


def evaluate_cases(cases: Iterable[Case], out_dir: str | Path, total: int | None = None,
                   progress: ProgressCallback | None = None, note: str | None = None) -> dict:
    """Compute both tables and the error regions for ``cases`` and write them (Markdown, JSON, plots) to
    ``out_dir``; ``note`` (e.g. that the patients trained the network) heads the tables and the JSON."""
    out_dir = Path(out_dir)
    rows, volumes, methods, region_rows = [], [], [], []
    report(progress, 0, total or 0, "Evaluating")
    for done, case in enumerate(cases, start=1):  # a model's cases are segmented as they come: counted here
        methods = list(case.methods)
        rows += case_rows(case)
        region_rows += case_error_regions(case)
        for criterion in CRITERIA:
            volumes.append({"patient": case.patient, "phase": case.phase, "criterion": criterion,
                            "values": case_volumes(case, criterion)})
        report(progress, done, total or 0, "Evaluating")
    if not rows:
        raise CMRSegError("Nothing to evaluate: no case had both a prediction and a reference.")
    out_dir.mkdir(parents=True, exist_ok=True)  # only now: a refused or failed case leaves no folder behind
    unphased = sorted({v["patient"] for v in volumes if v["phase"] not in ("ED", "ES")})
    if unphased:
        log.warning("%d cases (%s) are in Table 1 but not in Table 3, whose parameters belong to one phase: "
                    "their names say neither ED nor ES (_ED or _ES).", len(unphased),
                    ", ".join(unphased[:3]) + (", ..." if len(unphased) > 3 else ""))
    first = table1(rows)
    for stale in (out_dir / "plots").glob("*.png"):  # an earlier evaluation's (other methods): never beside these
        stale.unlink()
    third = table3(volumes, methods, out_dir / "plots")
    regions, groups = error_region_table(region_rows), group_table(rows)
    results = {"note": note, "table1": first, "table3": third, "regions": regions, "groups": groups,
               "cases": rows, "volumes": volumes}
    # strict JSON: an infinite distance (a structure missing on one side) or an undefined value is null
    (out_dir / "evaluation.json").write_text(json.dumps(json_safe(results), indent=1, allow_nan=False))
    if not third:
        log.warning("Table 3 is empty: its agreement statistics need at least 3 cases of one phase, ED or ES "
                    "(in --ref folders, a case's name says its phase: _ED or _ES).")
    heading = f"{note}\n\n" if note else ""
    (out_dir / "table1.md").write_text(heading + table1_markdown(first))
    (out_dir / "table3.md").write_text(heading + table3_markdown(third))
    (out_dir / "regions.md").write_text(error_region_markdown(regions))
    (out_dir / "groups.md").write_text(group_markdown(groups))  # always: never an earlier run's beside these
    return results


# ------------------------------------------------------------------------------------ case sources


def acdc_model_cases(data_root: Path, patients: list[str], segmenter, segmented: list | None = None
                     ) -> Iterable[Case]:
    """The model's segmentation of each patient's ED and ES frame against the expert masks, both segmented as
    one study, as ``cmrseg segment`` segments a patient (the heart located once, on ED); a frame in which the
    model finds no heart is scored, not refused.

    ``segmented``, when a list, receives each :class:`cmrseg.review_eval.SegmentedFrame` (for the review score).
    """
    from cmrseg.inference import segment_frames
    from cmrseg.io.acdc import ed_es_study, load_frame, patient_folder
    from cmrseg.review_eval import SegmentedFrame

    for patient in patients:
        frames = [load_frame(patient_folder(data_root, patient), phase) for phase in PHASES]
        evidence: dict = {}
        labels = segment_frames(ed_es_study(*frames), [0, 1], segmenter, evidence=evidence, require_lv=False)
        for index, (phase, frame) in enumerate(zip(PHASES, frames, strict=True)):
            if segmented is not None:
                segmented.append(SegmentedFrame(patient, phase, labels[index], evidence[index], frame.mask,
                                                frame.study.voxel_volume_ml))
            yield Case(patient, phase, frame.study.spacing, frame.mask, {"FCN": labels[index]},
                       frame.study.patient.group)


def acdc_folder_cases(data_root: Path, patients: list[str], folders: dict[str, Path]) -> Iterable[Case]:
    """Label maps written by ``cmrseg segment`` for ACDC frames (``patientNNN_frameMM_seg.nii.gz``)."""
    from cmrseg.io.acdc import load_frame, patient_folder
    from cmrseg.io.volume_files import read_volume_file

    for patient in patients:
        for phase in PHASES:
            frame = load_frame(patient_folder(data_root, patient), phase)
            name = f"{patient}_frame{frame.frame_number:02d}_seg.nii.gz"
            methods = {}
            for method, folder in folders.items():
                path = folder / name
                if not path.is_file():
                    raise CMRSegError(f"{path} is missing: every {method} label map of the split is needed.")
                labels = read_volume_file(path)
                if not labels.on_grid_of(frame.study):
                    raise CMRSegError(f"{path} is not on the grid of its image (matrix {labels.image.shape[1:]} "
                                      f"against {frame.mask.shape}, or its spacing, origin or axes differ).")
                methods[method] = labels.image[0].astype(np.uint8)
            yield Case(patient, phase, frame.study.spacing, frame.mask, methods, frame.study.patient.group)


def folder_cases(reference_dir: Path, folders: dict[str, Path]) -> Iterable[Case]:
    """Any reference folder: ``X.nii.gz`` (or ``X_gt.nii.gz``) against ``X_seg.nii.gz`` / ``X.nii.gz`` of each
    method folder. The phase is ED or ES when the name says so (``_ED``/``_ES``); a case of neither counts in
    Table 1's ED+ES rows only (Table 3's parameters belong to one phase)."""
    from cmrseg.io.volume_files import is_volume_file, read_volume_file, stem

    references = sorted(p for p in reference_dir.iterdir() if is_volume_file(p))
    if not references:
        raise CMRSegError(f"No NIfTI/NRRD label maps in {reference_dir}.")
    by_case: dict[str, list[Path]] = {}
    for path in references:
        by_case.setdefault(stem(path).removesuffix("_gt"), []).append(path)
    twice = {name: paths for name, paths in by_case.items() if len(paths) > 1}
    if twice:
        name, paths = next(iter(twice.items()))
        raise CMRSegError(f"{reference_dir} holds {len(twice)} cases more than once ({name}: "
                          f"{', '.join(p.name for p in paths)}); give a folder of reference label maps only.")
    for name, (path,) in by_case.items():
        reference = read_volume_file(path)
        reference_labels = _labels_of(reference, path)
        methods = {}
        for method, folder in folders.items():
            candidates = [folder / f"{name}_seg{s}" for s in (".nii.gz", ".nrrd")] + [folder / path.name]
            found = next((c for c in candidates if c.is_file()), None)
            if found is None:
                raise CMRSegError(f"No {method} label map for {path.name} in {folder}.")
            labels = read_volume_file(found)
            if not labels.on_grid_of(reference):  # voxel for voxel: matrix, spacing, origin and axes
                raise CMRSegError(f"{found} is not on the grid of its reference {path} (matrix "
                                  f"{labels.image.shape[1:]} against {reference.image.shape[1:]}, spacing "
                                  f"{labels.spacing} against {reference.spacing}, origin {np.round(labels.origin, 2)} "
                                  f"against {np.round(reference.origin, 2)}, or the axes' directions differ).")
            methods[method] = _labels_of(labels, found)
        tokens = name.upper().replace("-", "_").split("_")
        phase = "ED" if "ED" in tokens else "ES" if "ES" in tokens else "all"
        yield Case(name, phase, reference.spacing, reference_labels, methods)


def _labels_of(volume, path: Path) -> np.ndarray:
    """The label map of a one-frame file, refused unless it holds labels 0-3 (not an image)."""
    values = np.unique(volume.image)
    if volume.num_frames != 1 or not np.isin(values, np.arange(4)).all():
        raise CMRSegError(f"{path} is not a label map (one frame of labels 0-3: background, RV, myocardium, LV); "
                          f"it holds {volume.num_frames} frame(s) and values {values[:6].tolist()}...")
    return volume.image[0].astype(np.uint8)
