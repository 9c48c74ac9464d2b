"""The main job: a cine study in; ED/ES label maps, measures and a report out (``cmrseg segment``).

The outputs appear in the output folder as a complete set or not at all (:mod:`cmrseg.outputs`); existing
outputs are kept unless ``overwrite``, which replaces the previous CMRSeg set as a whole.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cmrseg import __version__
from cmrseg.basal import apply_basal_rule, basal_end
from cmrseg.curves import volume_curve_rates
from cmrseg.errors import CMRSegError
from cmrseg.inference import Segmenter, arithmetic, choose_ed_es, lv_volume_curve, network_view, segment_frames
from cmrseg.io.load import load_study
from cmrseg.io.segmentation_file import write_seg_nrrd
from cmrseg.io.study import Study
from cmrseg.io.volume_files import is_volume_file, stem, write_frame
from cmrseg.measures import FrameMeasures, frame_measures, study_measures
from cmrseg.measures_csv import write_measures_csv
from cmrseg.outputs import OutputFolder, json_safe, locked_output, read_manifest, refuse_changed_outputs
from cmrseg.progress import ProgressCallback
from cmrseg.qc import judged_curve, quality_check
from cmrseg.reference import compare_with_ranges, sex_code
from cmrseg.regional import regional_wall_thickness
from cmrseg.review import (
    load_review_model,
    member_parameters,
    parameter_intervals,
    review_model_path,
    review_slices,
)
from cmrseg.validate import check_given_with_read, check_height_weight, check_sex_age

log = logging.getLogger(__name__)

REPORT_KINDS = ("html", "pdf", "none")  # pdf: report.html and report.pdf


@dataclass
class SegmentationResult:
    study: Study
    labels: dict[int, np.ndarray]  # frame index -> [z, y, x] (after the basal rule)
    ed_frame: int | None
    es_frame: int | None
    measures: dict
    outputs: list[Path] = field(default_factory=list)


def frames_to_segment(study: Study, ed: int | None, es: int | None, all_frames: bool) -> tuple[list[int], bool]:
    """The frames to segment and whether ED/ES come from the volume curve (all frames segmented); ``ed`` and
    ``es`` are the user's, else the input's."""
    if (ed is None) != (es is None):
        raise CMRSegError("Give both ED and ES frames, or neither (then they are found from the LV volume curve).")
    for name, frame in (("ED", ed), ("ES", es)):
        if frame is not None and not 0 <= frame < study.num_frames:
            raise CMRSegError(f"The {name} frame {frame} is outside the study's {study.num_frames} frames "
                              f"(0 to {study.num_frames - 1}).")
    if ed is not None and not all_frames:
        return sorted({ed, es}), False
    return list(range(study.num_frames)), ed is None


def output_names(inputs: list[Path], study: Study) -> tuple[str, list[str]]:
    """Base name for study-level files, and the label-map file name of each frame.

    Frames of a cine are named by the input's own frame numbers (ACDC's 1-based numbers), else by index.
    """
    if frames_as_files(inputs, study):
        names = [f"{stem(p)}_seg.nii.gz" for p in inputs]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise CMRSegError(f"Frames given as files of one name would write the same {repeated[0]}: give the files "
                              "names of their own (e.g. the frame number).")
        return stem(inputs[0]), names
    base = stem(inputs[0]) if is_volume_file(inputs[0]) else (inputs[0].resolve().name or "study")
    return base, [f"{base}_frame{study.frame_number(index):02d}_seg.nii.gz" for index in range(study.num_frames)]


def frames_as_files(inputs: list[Path], study: Study) -> bool:
    """Whether each frame came as its own 3D file (e.g. ACDC's ED and ES files)."""
    return len(inputs) == study.num_frames and all(is_volume_file(p) for p in inputs)


def phase_files_base(loaded: LoadedStudy, frame: int) -> str:
    """Name base of the ED or ES segmentation file: the frame's own input file when each frame came as one (so
    that the ES file is not named after the ED frame's), else the study's."""
    return stem(loaded.inputs[frame]) if frames_as_files(loaded.inputs, loaded.study) else loaded.base


def check_frames(ed: int | None, es: int | None) -> None:
    """The user's ED/ES choice, before any work."""
    for name, frame in (("ED", ed), ("ES", es)):
        if frame is not None and frame < 0:
            raise CMRSegError(f"The {name} frame {frame} is negative; frames are counted from 0.")
    if ed is not None and ed == es:
        log.warning("ED and ES are both frame %d: volumes and mass are reported, stroke volume and EF are not.", ed)


def run_segment(
    inputs: list[str | Path],
    out_dir: str | Path,
    segmenter: Segmenter,
    ed: int | None = None,
    es: int | None = None,
    all_frames: bool = False,
    basal_rule: str = "none",
    bsa_method: str = "mosteller",
    series_uid: str | None = None,
    height_cm: float | None = None,
    weight_kg: float | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    report: str = "html",
    sex: str | None = None,
    age_years: float | None = None,
    dicom_seg: bool = False,
    dicom_sr: bool = False,
    input_state: str | None = None,
) -> SegmentationResult:
    """Segment a study and write its outputs into ``out_dir`` as one complete set (see :mod:`cmrseg.outputs`).

    ``report`` is ``"html"`` (report.html), ``"pdf"`` (report.html and report.pdf) or ``"none"``;
    ``dicom_seg`` adds DICOM SEG files of ED and ES, ``dicom_sr`` a DICOM SR of the parameters (DICOM inputs only);
    ``input_state`` is recorded for a batch's resume (:func:`cmrseg.cohort.files_state`).
    """
    check_height_weight(height_cm, weight_kg)
    check_sex_age(sex, age_years)
    check_frames(ed, es)
    if (dicom_seg or dicom_sr) and ed is not None and ed == es:
        raise CMRSegError("The DICOM SEG and SR hold an ED and an ES frame: give two different frames, or leave out "
                          "--dicom-seg and --dicom-sr.")
    if (dicom_seg or dicom_sr) and importlib.util.find_spec("highdicom") is None:
        raise CMRSegError("DICOM SEG and SR need highdicom: pip install 'cmrseg[pacs]' (or highdicom).")
    with locked_output(out_dir) as folder:
        loaded = load_for_output(folder, inputs, series_uid, height_cm, weight_kg, overwrite, progress, sex, age_years)
        if dicom_seg or dicom_sr:  # before the work: a study that cannot have them is refused
            from cmrseg.io.dicom_seg import check_study_for_seg, check_study_for_sr

            (check_study_for_seg if dicom_seg else check_study_for_sr)(loaded.study)
        result = segment_study(loaded.study, segmenter, ed, es, all_frames, basal_rule, bsa_method, progress)
        measures = measures_document(loaded, result, segmenter, basal_rule, bsa_method, all_frames, input_state)
        outputs = write_outputs(folder, loaded, result, measures, segmenter, overwrite, report, dicom_seg, dicom_sr)
    return SegmentationResult(loaded.study, result.labels, result.ed_frame, result.es_frame, measures, outputs)


@dataclass
class LoadedStudy:
    """A study read for a run, with the names its outputs get."""

    inputs: list[Path]
    study: Study
    base: str  # file name base of the study-level outputs
    frame_files: list[str]  # label-map file name of each frame
    series_uid: str | None = None  # the DICOM series asked for (None: the reader's choice)


def load_for_output(
    folder: OutputFolder,
    inputs: list[str | Path],
    series_uid: str | None = None,
    height_cm: float | None = None,
    weight_kg: float | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    sex: str | None = None,
    age_years: float | None = None,
) -> LoadedStudy:
    """Read the study for a run into the locked output ``folder`` (refused when it holds a result already)."""
    if read_manifest(folder.path) and not overwrite:
        raise CMRSegError(f"{folder.path} already holds a CMRSeg result; choose another --out or pass --overwrite.")
    refuse_changed_outputs(folder.path)  # before the work, not after it
    inputs = [Path(p) for p in inputs]
    study = load_study(inputs, series_uid=series_uid, progress=progress)
    if height_cm is not None:
        study.patient.height_cm = height_cm
    if weight_kg is not None:
        study.patient.weight_kg = weight_kg
    check_given_with_read(study.patient, height_cm is not None, weight_kg is not None)
    if sex is not None:
        study.patient.sex = sex_code(sex)
    if age_years is not None:
        study.patient.age_years = age_years
    base, frame_files = output_names(inputs, study)
    folder.refuse_foreign([*frame_files, "measures.json", "measures.csv"])  # before the work: the rest at the commit
    return LoadedStudy(inputs, study, base, frame_files, series_uid)


def measures_document(loaded: LoadedStudy, result: StudySegmentation, segmenter: Segmenter, basal_rule: str,
                      bsa_method: str, all_frames: bool, input_state: str | None = None) -> dict:
    """The content of measures.json (JSON-safe: no NaN), with the settings that made it (a resumed batch
    reuses a result only when they are the batch's)."""
    study, ed, es = loaded.study, result.ed_frame, result.es_frame
    return json_safe({
        "cmrseg_version": __version__,
        "model": segmenter.description,
        "model_sha256": segmenter.model_sha256,
        # where and in what precision the network ran (results of another differ in a few boundary voxels)
        "arithmetic": arithmetic(segmenter.device, segmenter.bf16),
        "input": [str(p.resolve()) for p in loaded.inputs],
        "series_uid": loaded.series_uid,  # as asked for (None: the reader's choice)
        "series_read": list(study.series_uids),  # the DICOM series measured
        "input_state": input_state,  # the batch's record of the input files (None from cmrseg segment)
        "image_sha256": study.image_sha256(),
        # what the indexing and the reference ranges used (given or read); never an identifier
        "patient": {key: value for key, value in study.patient.as_dict().items()
                    if key in ("height_cm", "weight_kg", "sex", "age_years")},
        "basal_rule": basal_rule,
        "bsa_method": bsa_method,
        "all_frames": all_frames,
        # per frame index: the slices (indices along the slice axis) whose LV blood pool the rule removed
        "basal_rule_removed_slices": {str(i): slices for i, slices in (result.basal_removed or {}).items()},
        "ed_frame": ed,
        "es_frame": es,
        "ed_frame_number": study.frame_number(ed) if ed is not None else None,
        "es_frame_number": study.frame_number(es) if es is not None else None,
        "ed_es_from": "LV volume curve" if result.from_curve else "input or user",
        "segmentation_seconds": round(result.seconds, 3),
        "qc": result.qc,
        **({"review": result.review} if result.review is not None else {}),
        **({"regional_wall_thickness": result.regional} if result.regional is not None else {}),
        **({"volume_curve_rates": result.curve_rates} if result.curve_rates is not None else {}),
        "frames": {
            str(i): {"frame_number": study.frame_number(i), "file": loaded.frame_files[i],
                     "time_ms": study.frame_time_ms(i), "lv_ml": m.lv_ml, "rv_ml": m.rv_ml,
                     "myo_ml": m.myo_ml, "myo_mass_g": m.myo_mass_g,
                     # the LV curve the peak rates come from
                     **({"lv_ml_before_basal_rule": result.curve[i]} if basal_rule != "none" else {})}
            for i, m in result.per_frame.items()
        },
        **({"study": result.study_measures} if result.study_measures is not None else {}),
        **({"reference": compare_with_ranges(result.study_measures, study.patient.sex, study.patient.age_years)}
           if result.study_measures is not None else {}),
    })


def write_outputs(
    folder: OutputFolder,
    loaded: LoadedStudy,
    result: StudySegmentation,
    measures: dict,
    segmenter: Segmenter,
    overwrite: bool = False,
    report: str = "html",
    dicom_seg: bool = False,
    dicom_sr: bool = False,
) -> list[Path]:
    """Write the label maps, segmentations, measures and report into ``folder`` as one complete set."""
    if report not in REPORT_KINDS:
        raise CMRSegError(f"Unknown report kind {report!r}; choose one of {', '.join(REPORT_KINDS)}.")
    study, labels, ed, es = loaded.study, result.labels, result.ed_frame, result.es_frame
    base, frame_files = loaded.base, loaded.frame_files
    frames = sorted(labels)
    targets = [frame_files[i] for i in frames] + ["measures.json", "measures.csv"]
    targets += {"html": ["report.html"], "pdf": ["report.html", "report.pdf"], "none": []}[report]
    if ed is not None and ed != es:
        seg_files = {phase: f"{phase_files_base(loaded, frame)}_{phase}.seg.nrrd"
                     for phase, frame in (("ED", ed), ("ES", es))}
        targets += list(seg_files.values())
        targets += [f"{base}_ED.seg.dcm", f"{base}_ES.seg.dcm"] if dicom_seg else []
        targets += [f"{base}_measures.sr.dcm"] if dicom_sr else []
    folder.refuse_foreign(targets)
    existing = folder.existing(targets)
    if existing and not overwrite:
        raise CMRSegError(
            f"{folder.path} already holds {', '.join(existing)}; choose another --out or pass --overwrite.")
    scratch = folder.scratch()
    try:
        for i in frames:
            write_frame(labels[i], study, scratch / frame_files[i])
        if ed is not None and ed != es:
            write_seg_nrrd(labels[ed], study, scratch / seg_files["ED"])
            write_seg_nrrd(labels[es], study, scratch / seg_files["ES"])
            if dicom_seg:
                from cmrseg.io.dicom_seg import write_dicom_seg

                for phase, frame in (("ED", ed), ("ES", es)):
                    write_dicom_seg(labels[frame], study.source, study.slice_files[frame],
                                    scratch / f"{base}_{phase}.seg.dcm", segmenter.description,
                                    frames=study.slice_frames[frame] if study.slice_frames else None, phase=phase)
            if dicom_sr:
                from cmrseg.io.dicom_sr import write_dicom_sr

                write_dicom_sr(measures["study"], study.source, study.slice_files[ed], study.slice_files[es],
                               scratch / f"{base}_measures.sr.dcm", segmenter.description, measures["qc"])
        (scratch / "measures.json").write_text(json.dumps(measures, indent=2, allow_nan=False))
        write_measures_csv(measures, scratch / "measures.csv")
        if report != "none":
            from cmrseg.study_report import write_study_report  # the figures' libraries: only for a report

            write_study_report(scratch / "report.html", study, labels, measures, segmenter, ed, es, result.curve,
                               result.from_curve, scratch / "report.pdf" if report == "pdf" else None)
    except OSError as exc:
        raise CMRSegError(f"Could not write the outputs into {folder.path} ({exc.strerror or exc}); "
                          "nothing was changed.") from exc
    return folder.commit(targets)


@dataclass
class StudySegmentation:
    """What segmenting a study decided and measured, before anything is written."""

    labels: dict[int, np.ndarray]  # frame index -> [z, y, x] (basal rule applied)
    ed_frame: int | None
    es_frame: int | None
    from_curve: bool  # ED/ES chosen from the LV volume curve
    curve: dict[int, float]  # LV blood-pool volume (ml) of every segmented frame, before the basal rule
    per_frame: dict[int, FrameMeasures]
    study_measures: dict | None  # StudyMeasures as a dict, when ED and ES differ
    seconds: float
    qc: dict  # cmrseg.qc.quality_check
    review: dict | None = None  # cmrseg.review: per-slice scores of the ED/ES frames, when the model has a fit
    regional: list | None = None  # cmrseg.regional: AHA segments 1-16, wall thickness at ED/ES and thickening
    curve_rates: dict | None = None  # cmrseg.curves: peak ejection/filling rates, when every frame has a time
    basal_removed: dict[int, list[int]] | None = None  # frame index -> slices whose LV pool the basal rule removed


def segment_study(
    study: Study,
    segmenter: Segmenter,
    ed: int | None = None,
    es: int | None = None,
    all_frames: bool = False,
    basal_rule: str = "none",
    bsa_method: str = "mosteller",
    progress: ProgressCallback | None = None,
) -> StudySegmentation:
    """Segment the ED/ES frames (given, from the input, or from the volume curve) and measure them."""
    ed = study.ed_frame if ed is None else ed
    es = study.es_frame if es is None else es
    frames, from_curve = frames_to_segment(study, ed, es, all_frames)
    started = time.perf_counter()
    review_model = load_review_model(segmenter.source) if segmenter.source else None
    evidence: dict | None = {} if review_model is not None else None  # only what the review score will use
    # The network's view is decided on ED where it is known: the heart's RV is easiest to tell beside the LV there.
    view = network_view(study, frames[0] if ed is None else ed, segmenter)
    labels = segment_frames(study, frames, segmenter, progress, evidence=evidence, view=view)
    seconds = time.perf_counter() - started
    curve = lv_volume_curve(labels, study.voxel_volume_ml)
    if from_curve and len(frames) > 1:
        ed, es = choose_ed_es(curve)
    elif from_curve:  # a single frame (ED and ES unknown): volumes only
        log.warning("One frame only: volumes are reported, but no ED/ES, stroke volume or ejection fraction.")
    base_index = basal_end(labels[ed]) if ed is not None else None
    ruled = {i: apply_basal_rule(lab, basal_rule, base_index) for i, lab in labels.items()}
    labels = {i: kept for i, (kept, _) in ruled.items()}
    per_frame = {i: frame_measures(lab, study.spacing) for i, lab in labels.items()}
    measures = None
    if ed is not None and ed != es:
        measures = study_measures(per_frame[ed], per_frame[es], study.patient, bsa_method).as_dict()
    qc = quality_check(labels, ed, es, measures, judged_curve({i: m.lv_ml for i, m in per_frame.items()}),
                       (study.spacing, study.direction), segmented_mirrored=view.mirrored)
    review = None
    if review_model is not None:
        phases = {ed: "ED", es: "ES"} if ed is not None else {frame: "frame" for frame in labels}
        review = {"slices": review_slices(review_model, labels, evidence, phases, study.voxel_volume_ml),
                  "model": review_model_path(segmenter.source).name}
        factors = review_model.record.get("interval_factors")
        if factors and measures is not None and ed in evidence and es in evidence:
            members = member_parameters(evidence[ed], evidence[es], study.voxel_volume_ml)
            review["intervals"] = parameter_intervals(measures, members, factors)
    regional = rates = None
    if ed is not None and ed != es:
        regional = regional_wall_thickness(labels[ed], labels[es], study.spacing, study.direction)
        segmented = sorted(labels)
        if len(segmented) > 2 and study.frame_times_known:
            # the LV curve without the basal-slice rule: decided in each frame, the rule takes a basal slice's
            # blood pool out of some frames and not others, and each such step would read as a peak rate
            rates = volume_curve_rates(study.frame_times_ms[segmented], [curve[i] for i in segmented],
                                       [per_frame[i].rv_ml for i in segmented], segmented.index(ed),
                                       segmented.index(es))  # fmt: skip
    return StudySegmentation(labels, ed, es, from_curve, curve, per_frame, measures, seconds, qc, review, regional,
                             rates, {i: removed for i, (_, removed) in ruled.items()})
