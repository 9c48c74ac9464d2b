"""NIfTI and NRRD (3D frames and 4D cine) to and from :class:`Study`, through SimpleITK.

Spacing always comes from the header's voxel sizes (SimpleITK ``GetSpacing``), never from the affine:
the ACDC affines have unit scale.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from cmrseg.errors import CMRSegError
from cmrseg.io.file_checks import (
    NiftiHeader,
    check_metaimage,
    check_nifti,
    check_nrrd,
    nrrd_frames_axis,
    nrrd_time_axis,
    orthonormal_nifti_copy,
    slice_plane_distance,
)
from cmrseg.io.study import Study
from cmrseg.validate import ORTHONORMAL_TOLERANCE, InputWarning

SLICE_DISTANCE_TOLERANCE = 1e-3  # relative: float32 rounding in the header is far below it

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


def is_volume_file(path: str | Path) -> bool:
    name = Path(path).name.lower()
    return name.endswith(VOLUME_SUFFIXES) and not name.endswith(".seg.nrrd")


def stem(path: str | Path) -> str:
    """File name without any of the volume suffixes (``x.nii.gz`` -> ``x``)."""
    name = Path(path).name
    for suffix in VOLUME_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(path).stem


def _itk_read(path: Path) -> sitk.Image:
    # ITK warns about the unit-scale sform of every ACDC file; the spacing we use comes from pixdim.
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        return sitk.ReadImage(str(path))
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(True)


def read_image(path: str | Path, nifti: NiftiHeader | None = None) -> sitk.Image:
    """The image of a file; a NIfTI sform off orthonormal by scanner rounding is straightened (with a warning)."""
    path = Path(path)
    if not path.is_file():
        raise CMRSegError(f"{path} does not exist or is not a file.")
    try:
        return _itk_read(path)
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[-1]
        if nifti is None or "orthonormal" not in reason:
            raise CMRSegError(f"Cannot read {path} as an image ({reason}).") from exc
    lengths = np.linalg.norm(nifti.srow[:, :3], axis=0)
    if not np.all(np.isfinite(lengths) & (lengths > 0)):
        raise CMRSegError(f"{path}: the sform's axes have lengths {[round(float(n), 6) for n in lengths]}; one of "
                          "them is zero or no number, so the orientation in the header is broken.")
    matrix = nifti.srow[:, :3] / lengths
    deviation = float(np.max(np.abs(matrix.T @ matrix - np.eye(3))))
    if not np.isfinite(deviation) or deviation > ORTHONORMAL_TOLERANCE:
        raise CMRSegError(
            f"{path}: the image axes in the sform are not perpendicular (off by {deviation:.2g}, more than the "
            f"{ORTHONORMAL_TOLERANCE:g} of scanner rounding); the orientation in the header is broken."
        )
    warnings.warn(f"{path}: sform axes off orthogonal by {deviation:.1g} (scanner rounding); orthonormalised.",
                  InputWarning, stacklevel=2)
    with tempfile.TemporaryDirectory(prefix="cmrseg-nifti-") as folder:
        copy = orthonormal_nifti_copy(path, nifti, Path(folder) / "image.nii")
        try:
            return _itk_read(copy)
        except RuntimeError as exc:
            raise CMRSegError(f"Cannot read {path} as an image ({str(exc).strip().splitlines()[-1]}).") from exc


def check_file(path: Path) -> tuple[NiftiHeader | None, dict[str, str]]:
    """Integrity checks of NIfTI, NRRD and MetaImage files (see :mod:`cmrseg.io.file_checks`): the NIfTI header, the
    NRRD header's fields."""
    name = path.name.lower()
    if not path.is_file():
        raise CMRSegError(f"{path} does not exist or is not a file.")
    if name.endswith((".nii", ".nii.gz")):
        return check_nifti(path), {}
    if name.endswith((".nrrd", ".nhdr")):
        return None, check_nrrd(path)
    if name.endswith((".mha", ".mhd")):
        check_metaimage(path)
    return None, {}


# A cine covers one heartbeat (20 beats per minute at the slowest) in a few phases at least, each phase at
# least 10 ms long (a time step below that is a sequence's repetition time stored in its place).
MIN_FRAME_STEP_MS = 10.0
MAX_FRAME_STEP_MS = 500.0
MAX_CYCLE_MS = 3000.0


def _frame_times_ms(image: sitk.Image, nifti: NiftiHeader | None, path: Path) -> np.ndarray | None:
    """Frame times in ms of a 4D image, or ``None`` when the file does not say what its time axis means.

    NIfTI names its time unit; the step is the header's own (ITK's time spacing is already converted to
    seconds, and must not be converted again). ITK writes ms values under the unit "seconds", so a "second"
    longer than 5 s (no cardiac frame is) is read as ms. Other formats and NIfTI without a time unit give
    ``None``, as do steps no cine has (below :data:`MIN_FRAME_STEP_MS`, above :data:`MAX_FRAME_STEP_MS`, or
    more than :data:`MAX_CYCLE_MS` in all), with a warning.
    """
    if nifti is None or nifti.time_unit_ms is None or len(nifti.pixdim) < 4:
        return None
    step = nifti.pixdim[3]
    if not np.isfinite(step) or step <= 0:
        return None
    per_unit = nifti.time_unit_ms
    if per_unit == 1000.0 and step > 5.0:
        per_unit = 1.0
    return _plausible_times(np.arange(image.GetSize()[3]) * step * per_unit, path)


def _plausible_times(times: np.ndarray, path: Path) -> np.ndarray | None:
    """Evenly spaced frame times in ms, or None (with a warning) when their step is no cine's."""
    step = float(times[1] - times[0]) if len(times) > 1 else MIN_FRAME_STEP_MS
    if not MIN_FRAME_STEP_MS <= step <= MAX_FRAME_STEP_MS or times[-1] > MAX_CYCLE_MS:
        warnings.warn(f"{path}: frames {step:g} ms apart ({times[-1]:g} ms in all) are no "
                      "cine's timing (a time step left at its default of 1 s, or the repetition time stored in "
                      "its place, say): the frame times are taken as unknown.", InputWarning, stacklevel=2)
        return None
    return times


def read_volume_file(path: str | Path) -> Study:
    """A 3D frame (``t = 1``) or a 4D cine (time as the 4th axis) from NIfTI / NRRD / MetaImage."""
    path = Path(path)
    nifti, nrrd = check_file(path)
    time_axis = nrrd_time_axis(nrrd)
    image = read_image(path, nifti) if time_axis is None else _read_frames_as_list(path, nrrd, time_axis)
    array = sitk.GetArrayFromImage(image)  # [z, y, x] or [t, z, y, x]: the file's voxel order
    if nifti is not None and nifti.nonfinite is not None:  # ITK made them 0: back to NaN, repaired or refused later
        array = array.astype(np.float32)
        array.reshape(-1)[nifti.nonfinite] = np.nan
    dim = image.GetDimension()
    frames_axis = nrrd_frames_axis(nrrd) if time_axis is None else time_axis
    if frames_axis is not None and dim == 3:  # a Slicer volume sequence: ITK gives its frames as components
        return _study(np.moveaxis(array, -1, 0), image, _sequence_times_ms(nrrd, frames_axis, path), path)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise CMRSegError(f"{path} has {image.GetNumberOfComponentsPerPixel()} components per voxel; expected 1.")
    if dim == 2:
        raise CMRSegError(f"{path} is a single 2D image; CMRSeg needs a stack of short-axis slices (3D or 4D).")
    if dim not in (3, 4):
        raise CMRSegError(f"{path} has {dim} dimensions; expected a 3D frame or a 4D cine.")
    if dim == 4 and nrrd:  # a NRRD in four-dimensional (or no) space: its fourth axis may be timed
        return _study(array, image, _sequence_times_ms(nrrd, 3, path), path)
    study = _study(array, image, _frame_times_ms(image, nifti, path) if dim == 4 else None, path)
    return _between_slice_planes(study, nifti, path) if nifti is not None else study


def _between_slice_planes(study: Study, nifti: NiftiHeader, path: Path) -> Study:
    """The study with its slice spacing measured between the slice planes of a leaning sform (slices shifted
    in-plane against each other): ITK reads such a file's qform and takes the header's voxel size as the slice
    spacing, which a converter may have set to the distance from slice origin to slice origin, longer by
    1 / cos(lean): every volume and the mass would be that much too large (11 % at 25 degrees)."""
    distance = slice_plane_distance(nifti)
    if distance is None:
        return study
    step = float(np.linalg.norm(nifti.srow[:, 2]))  # from slice origin to slice origin
    taken = study.spacing[2]
    if abs(taken - step) > SLICE_DISTANCE_TOLERANCE * step or abs(taken - distance) <= SLICE_DISTANCE_TOLERANCE * step:
        return study  # the slice spacing read is not the sform's step, or the step does not lean
    lean = float(np.degrees(np.arccos(min(1.0, distance / step))))
    warnings.warn(f"{path}: the sform shifts the slices in-plane against each other (its slice axis leans "
                  f"{lean:.0f} degrees from the slice normal): volumes use the {distance:.4g} mm between the slice "
                  f"planes, not the header's slice step of {taken:.4g} mm.", InputWarning, stacklevel=3)
    study.spacing = (*study.spacing[:2], distance)
    return study


def _read_frames_as_list(path: Path, fields: dict[str, str], axis: int) -> sitk.Image:
    """A 4D NRRD whose frame axis is a domain axis in three-dimensional space, read through a copy whose
    header calls that axis a ``list`` (as a Slicer volume sequence's): ITK gives its frames as components."""
    raw = path.read_bytes()
    end = raw.find(b"\n\n")
    end = len(raw) if end < 0 else end
    kinds = fields.get("kinds", "").split() or ["domain"] * 4
    kinds[axis] = "list"
    lines = [line for line in raw[:end].decode("latin-1").splitlines()
             if not line.lower().startswith(("kinds:", "data file:", "datafile:"))]
    lines.append("kinds: " + " ".join(kinds))
    detached = fields.get("data file") or fields.get("datafile")
    if detached:
        lines.append(f"data file: {(path.parent / detached).resolve()}")
    with tempfile.TemporaryDirectory(prefix="cmrseg-nrrd-") as folder:
        copy = Path(folder) / ("image.nhdr" if detached else "image.nrrd")
        copy.write_bytes("\n".join(lines).encode("latin-1") + b"\n\n" + (b"" if detached else raw[end + 2 :]))
        try:
            return _itk_read(copy)
        except RuntimeError as exc:
            raise CMRSegError(f"Cannot read {path} as an image ({str(exc).strip().splitlines()[-1]}).") from exc


def _sequence_times_ms(fields: dict[str, str], axis: int, path: Path) -> np.ndarray | None:
    """The frame times of a 4D NRRD whose frame axis is labelled (or of kind) time, in ms or s: a Slicer
    volume sequence's ``axis N index values``, or the axis's ``spacings`` step; else None (frames are then
    numbered)."""
    labels, units = (_quoted(fields.get(key, "")) for key in ("labels", "units"))
    kinds = fields.get("kinds", "").lower().split()
    per_unit = {"ms": 1.0, "s": 1000.0}.get(units[axis] if axis < len(units) else "")
    is_time = (axis < len(labels) and labels[axis].lower() == "time") or (axis < len(kinds) and kinds[axis] == "time")
    if not is_time or per_unit is None:
        return None
    try:
        values = np.array([float(v) for v in fields.get(f"axis {axis} index values", "").split()])
        spacings = [float(v) for v in fields.get("spacings", "").split()]
    except ValueError:
        return None
    if len(values):
        return values * per_unit if np.all(np.isfinite(values)) else None
    if len(spacings) != 4 or not np.isfinite(spacings[axis]) or spacings[axis] <= 0:
        return None
    sizes = [int(n) for n in fields["sizes"].split()]
    return _plausible_times(np.arange(sizes[axis]) * spacings[axis] * per_unit, path)


def _quoted(value: str) -> list[str]:
    return [part for i, part in enumerate(value.split('"')) if i % 2 == 1]


def _study(array: np.ndarray, image: sitk.Image, frame_times_ms: np.ndarray | None, path: Path) -> Study:
    """The study of an image array ``[z, y, x]`` or ``[t, z, y, x]`` with the geometry of ``image``."""
    dim = image.GetDimension()
    return Study(
        image=array.astype(np.float32),
        spacing=image.GetSpacing()[:3],
        origin=image.GetOrigin()[:3],
        direction=np.array(image.GetDirection()).reshape(dim, dim)[:3, :3],
        frame_times_ms=frame_times_ms,
        source=str(path),
    )


def frame_to_image(array: np.ndarray, study: Study) -> sitk.Image:
    """A 3D ``[z, y, x]`` array as a SimpleITK image with the study's geometry."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.SetSpacing(study.spacing)
    image.SetOrigin(study.origin)
    image.SetDirection(tuple(np.asarray(study.direction).ravel()))
    return image


def write_frame(array: np.ndarray, study: Study, path: str | Path, overwrite: bool = False,
                compress: bool = True) -> Path:
    """Write one frame (image or label map) on the study's grid as NIfTI or NRRD (chosen by suffix)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise CMRSegError(f"{path} already exists; choose another output or allow overwriting.")
    if array.shape != study.image.shape[1:]:
        raise CMRSegError(f"Array of shape {array.shape} does not match the study grid {study.image.shape[1:]}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(frame_to_image(array, study), str(path), useCompression=compress)
    return path


def write_study(study: Study, path: str | Path, overwrite: bool = False, compress: bool = True) -> Path:
    """Write a whole study as one 3D (``t = 1``) or 4D NIfTI / NRRD file."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise CMRSegError(f"{path} already exists; choose another output or allow overwriting.")
    if study.num_frames == 1:
        return write_frame(study.image[0], study, path, overwrite=overwrite, compress=compress)
    image = sitk.GetImageFromArray(np.ascontiguousarray(study.image), isVector=False)
    times = study.frame_times_ms
    dt = float(np.median(np.diff(times))) if len(times) > 1 and np.all(np.diff(times) > 0) else 1.0
    image.SetSpacing((*study.spacing, dt))
    image.SetOrigin((*study.origin, float(times[0])))
    direction = np.eye(4)
    direction[:3, :3] = study.direction
    image.SetDirection(tuple(direction.ravel()))
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path), useCompression=compress)
    return path
