"""Input checks between the readers and the pipeline: one policy for DICOM, NIfTI, NRRD and ACDC folders.

A study that cannot give a right answer is refused with a :class:`CMRSegError` that names the frame, slice
(and file, where the reader knows it); what can be repaired without changing the answer (a few isolated
non-finite voxels, rounding noise in the direction cosines) is repaired with a one-line
:class:`InputWarning`. Every limit below is stated with its reasoning.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from cmrseg.errors import CMRSegError
from cmrseg.io.study import PatientInfo, Study

# Geometry. Clinical cine SAX has 0.6-2.5 mm pixels and 5-10 mm slice gaps (3D cines down to ~1 mm);
# the ranges leave room on both sides but catch metres (0.0015) and microns (1500) and a zeroed header.
IN_PLANE_MM = (0.2, 5.0)
SLICE_GAP_MM = (0.5, 30.0)
# Scanner affines carry float32 rounding; directions off orthonormal by up to this (per dot product /
# column norm) are orthonormalised with a warning. 1e-3 is ~0.06 degrees: invisible at any pixel size.
ORTHONORMAL_TOLERANCE = 1e-3
# Size caps, checked before any pixel is read or resampled (a cine of 100 frames x 40 slices x 512^2 is
# ~4 GB of float32; anything beyond is not a clinical cine SAX).
MAX_MATRIX = 1024
MAX_SLICES = 100
MAX_FRAMES = 200
MAX_VOXELS = 1_100_000_000
# Non-finite voxels: up to this fraction of a slice (e.g. one bad voxel in 256 x 256) are replaced by the
# slice's median and reported; more means the slice is corrupt and the study is refused.
MAX_NONFINITE_FRACTION = 1e-3
# Slice intensity (99th percentile) against the other slices of its frame: the 100 ACDC patients span
# 0.60-1.81 x the frame's median; a factor of 10 only catches broken rescaling or blank slices.
SLICE_INTENSITY_FACTOR = 10.0
# The same slice position in other frames of a cine is the same anatomy with the same coil: its 99th
# percentile varies by a few percent over the cycle; a factor of 3 catches rescaling errors of one file.
FRAME_INTENSITY_FACTOR = 3.0
# An MR image has hundreds of grey values; a label map or binary mask has a handful.
MIN_GREY_VALUES = 16
# Slice and time axes: in a cine SAX, neighbouring slices (5-10 mm apart) differ far more than neighbouring frames
# (tens of ms apart): the mean voxel difference between neighbouring slices is 5.5-10 times that between
# neighbouring frames in the shared real cines (ACDC patient090, Sunnybrook SCD0000101 and SCD0000201; 3.7-6.4
# cut to 5 frames), and 0.10-0.18 times with the two axes swapped. Below this ratio the axes are taken as swapped.
# The margin is thinnest for what the shared data lacks: the built-in phantoms read 0.8-1.2 (5-20 frames, slices
# 4-10 mm), and real cines with their slices interpolated six-fold (a stand-in for a 3D cine) 0.7-1.3. Checked
# only with enough of both (an ED/ES pair's frames are far apart in the cycle).
SWAPPED_AXES_RATIO = 0.5
SWAPPED_AXES_MIN_LENGTH = 5
# A short-axis plane is double oblique: its normal (the LV's long axis) lies tens of degrees from every patient axis.
# Slices within this of an axial, coronal or sagittal plane come from a file without a real patient orientation
# (every ACDC file) or from another kind of series.
AXIS_ALIGNED_DEGREES = 1.0
# Patient size.
HEIGHT_CM = (50.0, 250.0)
WEIGHT_KG = (2.0, 400.0)
# Body-mass index (kg/m^2) no patient has: a height or weight in other units (inches, pounds) that each
# pass their own range, such as 70 (inches) and 80 kg (BMI 163), which would index every volume 60 % high.
BMI_RANGE = (10.0, 100.0)
AGE_YEARS = (0.0, 130.0)


class InputWarning(UserWarning):
    """Something in the input was repaired or ignored; the study is read all the same."""


def check_dimensions(shape: tuple[int, ...], source: str) -> None:
    """Refuse sizes no cine SAX has, before allocating or resampling anything. ``shape`` is ``[t, z, y, x]``."""
    frames, slices, rows, columns = (int(n) for n in shape)
    problems = []
    if rows > MAX_MATRIX or columns > MAX_MATRIX:
        problems.append(f"a {rows} x {columns} matrix (at most {MAX_MATRIX} x {MAX_MATRIX})")
    if slices > MAX_SLICES:
        problems.append(f"{slices} slices (at most {MAX_SLICES})")
    if frames > MAX_FRAMES:
        problems.append(f"{frames} frames (at most {MAX_FRAMES})")
    if frames * slices * rows * columns > MAX_VOXELS:
        problems.append(f"{frames * slices * rows * columns:,} voxels (at most {MAX_VOXELS:,})")
    if problems:
        raise CMRSegError(f"{source} has {' and '.join(problems)}; that is not a short-axis cine stack.")


def check_spacing(spacing: tuple[float, float, float], source: str) -> None:
    """Pixel and slice spacing must be finite and within the plausible ranges above."""
    names = ("column spacing", "row spacing", "slice spacing")
    limits = (IN_PLANE_MM, IN_PLANE_MM, SLICE_GAP_MM)
    for value, name, (low, high) in zip(spacing, names, limits, strict=True):
        if not math.isfinite(value) or value <= 0:
            raise CMRSegError(f"{source}: the {name} is {value} mm; the header's voxel size is broken.")
        if not low <= value <= high:
            hint = ""
            if value < low and low <= value * 1000 <= high:
                hint = " It looks like metres; the header's units are wrong."
            elif value > high and low <= value / 1000 <= high:
                hint = " It looks like microns; the header's units are wrong."
            raise CMRSegError(
                f"{source}: the {name} is {value:g} mm, outside the plausible {low:g}-{high:g} mm of a "
                f"short-axis cine.{hint} Fix the header's voxel size."
            )


def orthonormal_direction(direction: np.ndarray, source: str) -> np.ndarray:
    """The direction matrix, orthonormalised when it is off by rounding only; refused beyond that."""
    direction = np.asarray(direction, dtype=float)
    if direction.shape != (3, 3) or not np.all(np.isfinite(direction)):
        raise CMRSegError(f"{source}: the image orientation is not a finite 3 x 3 matrix.")
    deviation = float(np.max(np.abs(direction.T @ direction - np.eye(3))))
    if deviation <= 1e-6:
        return direction
    if deviation > ORTHONORMAL_TOLERANCE:
        raise CMRSegError(
            f"{source}: the image axes are not perpendicular unit vectors (off by {deviation:.2g}, more than the "
            f"{ORTHONORMAL_TOLERANCE:g} of scanner rounding); the orientation in the header is broken."
        )
    u, _, vt = np.linalg.svd(direction)
    warnings.warn(
        f"{source}: image axes off orthonormal by {deviation:.1g} (scanner rounding); orthonormalised.",
        InputWarning,
        stacklevel=2,
    )
    return u @ vt


def warn_if_axis_aligned(study: Study) -> None:
    """Warn when the slices lie in an axial, coronal or sagittal plane, as no short-axis slice does: the in-plane
    view is then assumed (the RV left of the LV as displayed), not read from the file. A heart stored turned
    against it, where the network still finds an RV, is segmented worse without a flag (the RV of the 15
    validation patients, ED / ES Dice: 0.94 / 0.84 as stored; 0.85 / 0.77 turned a quarter, 0.77 / 0.71 flipped
    upside down)."""
    normal = np.asarray(study.direction, dtype=float)[:, 2]
    axis = int(np.argmax(np.abs(normal)))
    if np.degrees(np.arccos(min(1.0, abs(float(normal[axis]))))) > AXIS_ALIGNED_DEGREES:
        return
    plane = ("sagittal", "coronal", "axial")[axis]  # LPS: a normal along x (left) is sagittal
    warnings.warn(
        f"{study.source or 'The study'}: its slices lie in a patient {plane} plane, which short-axis slices never "
        "do: the file carries no real patient orientation (as ACDC's), or it is not a short-axis series. The slices "
        "are taken as displayed with the RV left of the LV; if they are stored turned or flipped, the RV is "
        "segmented worse and the quality check cannot tell. Check the orientation of the result.",
        InputWarning,
        stacklevel=2,
    )


def _where(study: Study, t: int, z: int) -> str:
    where = f"frame {t}, slice {z}" if study.num_frames > 1 else f"slice {z}"
    if study.slice_files is not None:
        frame = f", frame {study.slice_frames[t][z]}" if study.slice_frames is not None else ""
        where += f" (file {study.slice_files[t][z]}{frame})"
    return where


def repair_nonfinite(study: Study) -> None:
    """Replace a few isolated NaN/Inf voxels by their slice's median; refuse slices with more."""
    bad = ~np.isfinite(study.image)
    if not bad.any():
        return
    per_slice = bad.sum(axis=(2, 3))
    limit = MAX_NONFINITE_FRACTION * study.matrix[0] * study.matrix[1]
    worst = np.unravel_index(int(per_slice.argmax()), per_slice.shape)
    if per_slice[worst] > limit:
        raise CMRSegError(
            f"{study.source}: {int(per_slice[worst])} of {study.matrix[0] * study.matrix[1]} voxels of "
            f"{_where(study, *worst)} are not finite (NaN or Inf); at most {MAX_NONFINITE_FRACTION:.1%} of a slice "
            f"is repaired. {int(bad.sum())} non-finite voxels in all: the data are corrupt."
        )
    for t, z in zip(*np.nonzero(per_slice), strict=True):
        plane = study.image[t, z]
        plane[~np.isfinite(plane)] = np.median(plane[np.isfinite(plane)])
    slices = ", ".join(_where(study, int(t), int(z)) for t, z in zip(*np.nonzero(per_slice), strict=True))
    warnings.warn(
        f"{study.source}: {int(bad.sum())} non-finite voxel(s) replaced by their slice's median in {slices}.",
        InputWarning,
        stacklevel=2,
    )


def slice_levels(image: np.ndarray) -> np.ndarray:
    """The 99th percentile of every slice ``[t, z]`` (on every second pixel: the level, not the detail)."""
    sample = image[:, :, ::2, ::2]
    return np.percentile(sample.reshape(sample.shape[0], sample.shape[1], -1), 99, axis=2)


def _most_off(ratio: np.ndarray) -> int:
    """The index of the ratio furthest from 1 (brighter or darker alike)."""
    return int(np.argmax(np.abs(np.log(np.maximum(ratio, 1e-30)))))


def check_intensities(study: Study) -> None:
    """Refuse blank or constant slices and slices whose level is implausible against their neighbours."""
    image = study.image
    flat = image.max(axis=(2, 3)) == image.min(axis=(2, 3))
    if flat.any():
        t, z = (int(i) for i in np.argwhere(flat)[0])
        raise CMRSegError(
            f"{study.source}: {_where(study, t, z)} is blank (every voxel {float(image[t, z, 0, 0]):g}); "
            f"{int(flat.sum())} such slice(s). A result must not hinge on a missing slice: export the series again."
        )
    levels = slice_levels(image)
    if study.num_frames > 1:
        for t in range(study.num_frames):
            others = np.median(np.delete(levels, t, axis=0), axis=0)  # same slice, other frames
            ratio = levels[t] / np.maximum(others, 1e-12)
            z = _most_off(ratio)
            if not 1 / FRAME_INTENSITY_FACTOR <= ratio[z] <= FRAME_INTENSITY_FACTOR:
                raise CMRSegError(
                    f"{study.source}: {_where(study, t, z)} is {ratio[z]:.3g} x as bright as the same slice in the "
                    f"other frames (allowed 1/{FRAME_INTENSITY_FACTOR:g}-{FRAME_INTENSITY_FACTOR:g}); its intensity "
                    "scaling (e.g. RescaleSlope) is broken. Replace the file or export the series again."
                )
    for t in range(study.num_frames):
        ratio = levels[t] / max(float(np.median(levels[t])), 1e-12)
        z = _most_off(ratio)
        if not 1 / SLICE_INTENSITY_FACTOR <= ratio[z] <= SLICE_INTENSITY_FACTOR:
            raise CMRSegError(
                f"{study.source}: {_where(study, t, z)} is {ratio[z]:.3g} x as bright as the other slices of its "
                f"frame (allowed 1/{SLICE_INTENSITY_FACTOR:g}-{SLICE_INTENSITY_FACTOR:g}); the slice is corrupt "
                "or wrongly scaled."
            )


def check_not_label_map(study: Study) -> None:
    """Refuse label maps and binary masks given as the image, in any frame (frames given as files, one of them
    a segmentation)."""
    files = study.source.split(", ")  # frames given as files: one each (cmrseg.io.load)
    for t in range(study.num_frames):
        values = np.unique(study.image[t])
        if len(values) < MIN_GREY_VALUES and np.all(values == np.round(values)):
            where = files[t] if len(files) == study.num_frames > 1 else study.source
            if len(values) == 1:
                frame = f"frame {t} of " if study.num_frames > 1 and where == study.source else ""
                raise CMRSegError(f"{frame}{where} is blank: every voxel is {values[0]:g}. Give the cine image itself.")
            raise CMRSegError(
                f"{where} holds only {len(values)} distinct values "
                f"({', '.join(f'{v:g}' for v in values[:8])}): it is a label map or mask, not an MR image. Give the "
                "cine image itself."
            )


def check_slice_and_time_axes(study: Study) -> None:
    """Refuse a cine whose neighbouring slices are more alike than its neighbouring frames: the file stores time
    as its third axis and the slices as its fourth, and every volume would be summed over time."""
    frames, slices = study.image.shape[:2]
    if min(frames, slices) < SWAPPED_AXES_MIN_LENGTH:
        return
    image = study.image

    def differences(stack: np.ndarray) -> np.ndarray:  # mean |difference| of each neighbouring pair of images
        return np.abs(np.diff(stack.astype(np.float32), axis=0)).mean(axis=(1, 2))

    between_slices = np.median([differences(image[t]) for t in range(frames)])
    between_frames = np.median([differences(image[:, z]) for z in range(slices)])
    if between_slices < SWAPPED_AXES_RATIO * between_frames:
        raise CMRSegError(
            f"{study.source or 'The study'}: its neighbouring slices differ less than its neighbouring frames (mean "
            f"voxel difference {between_slices:.3g} against {between_frames:.3g}): the slice and time axes look "
            "swapped (a cine short-axis file holds the slices as its third axis and time as its fourth). Write "
            "the file with that axis order."
        )


def validate_study(study: Study) -> Study:
    """Check (and where harmless, repair) a freshly read study in place; returns it."""
    source = study.source or "the study"
    check_dimensions(study.image.shape, source)
    check_spacing(study.spacing, source)
    study.direction = orthonormal_direction(study.direction, source)
    if not np.all(np.isfinite(study.origin)):
        raise CMRSegError(f"{source}: the image origin {study.origin} is not finite; the header is broken.")
    repair_nonfinite(study)
    check_not_label_map(study)
    check_intensities(study)
    check_slice_and_time_axes(study)
    warn_if_axis_aligned(study)
    study.patient = plausible_patient(study.patient, source)
    return study


# ---------------------------------------------------------------------------------------- patient


def _unit_hint(value: float, what: str) -> str:
    if what == "height" and 0.5 <= value <= 2.5:
        return f" It looks like metres: give {value * 100:g}."
    if what == "height" and 500 <= value <= 2500:
        return f" It looks like millimetres: give {value / 10:g}."
    if what == "weight" and 2000 <= value <= 400000:
        return f" It looks like grams: give {value / 1000:g}."
    return ""


def check_height_weight(height_cm: float | None, weight_kg: float | None) -> None:
    """Refuse implausible user-given height (cm) and weight (kg), saying what was probably meant."""
    checks = ((height_cm, "height", "cm", HEIGHT_CM), (weight_kg, "weight", "kg", WEIGHT_KG))
    for value, what, unit, (low, high) in checks:
        if value is None:
            continue
        if not math.isfinite(value) or not low <= value <= high:
            raise CMRSegError(
                f"--{what} {value:g} is not a plausible {what} in {unit} ({low:g}-{high:g} {unit})."
                + _unit_hint(value, what)
            )
    if implausible_bmi(height_cm, weight_kg):
        raise CMRSegError(f"--height {height_cm:g} and --weight {weight_kg:g}: {_bmi_problem(height_cm, weight_kg)}")


def implausible_bmi(height_cm: float | None, weight_kg: float | None) -> bool:
    """Whether a height (cm) and weight (kg), both given, make a body-mass index no patient has."""
    if height_cm is None or weight_kg is None:
        return False
    low, high = BMI_RANGE
    return not low <= weight_kg / (height_cm / 100.0) ** 2 <= high


def _bmi_problem(height_cm: float, weight_kg: float) -> str:
    return (f"a height of {height_cm:g} cm and a weight of {weight_kg:g} kg give a body-mass index of "
            f"{weight_kg / (height_cm / 100.0) ** 2:.0f} kg/m2 (plausible {BMI_RANGE[0]:g}-{BMI_RANGE[1]:g}): one of "
            "them is probably in other units (a height in inches, a weight in pounds).")


def check_sex_age(sex: str | None, age_years: float | None) -> None:
    """Refuse a user-given sex other than M, F or O, and an implausible age in years."""
    if sex is not None and sex.strip().upper() not in ("M", "F", "O", "MALE", "FEMALE", "OTHER"):
        raise CMRSegError(f"--sex {sex!r} is not a sex: give M, F or O (as DICOM PatientSex).")
    low, high = AGE_YEARS
    if age_years is not None and not (math.isfinite(age_years) and low <= age_years <= high):
        raise CMRSegError(f"--age {age_years:g} is not a plausible age in years ({low:g}-{high:g}).")


def plausible_patient(patient: PatientInfo, source: str) -> PatientInfo:
    """Height and weight read from the input: implausible values are dropped with a warning."""
    for attribute, what, unit, (low, high) in (("height_cm", "height", "cm", HEIGHT_CM),
                                               ("weight_kg", "weight", "kg", WEIGHT_KG)):
        value = getattr(patient, attribute)
        if value is not None and not (math.isfinite(value) and low <= value <= high):
            warnings.warn(
                f"{source}: the {what} {value:g} {unit} in the input is implausible and is ignored (no BSA indexing "
                f"unless --{what} is given).",
                InputWarning,
                stacklevel=2,
            )
            setattr(patient, attribute, None)
    if implausible_bmi(patient.height_cm, patient.weight_kg):
        warnings.warn(
            f"{source}: {_bmi_problem(patient.height_cm, patient.weight_kg)} Both are ignored (no BSA indexing "
            "unless --height and --weight are given).",
            InputWarning,
            stacklevel=2,
        )
        patient.height_cm = patient.weight_kg = None
    return patient


def check_given_with_read(patient: PatientInfo, height_given: bool, weight_given: bool) -> None:
    """Refuse a user-given height or weight that makes an impossible body-mass index with the other value as
    read from the input."""
    if height_given != weight_given and implausible_bmi(patient.height_cm, patient.weight_kg):
        given, read = ("height", "weight") if height_given else ("weight", "height")
        raise CMRSegError(f"The {given} given, with the {read} read from the input: "
                          f"{_bmi_problem(patient.height_cm, patient.weight_kg)}")
