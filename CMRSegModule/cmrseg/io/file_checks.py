"""Integrity of NIfTI, NRRD and MetaImage files before SimpleITK reads them.

ITK fills a truncated file with zeros, replaces a zero or NaN voxel size by 1 mm and cannot open NIfTI whose
sform is off orthonormal by scanner rounding. These checks read the header themselves: the data must have the
size the header promises (every byte of a gzip stream is decoded, so a damaged stream fails its checksum),
voxel sizes must be finite and positive, and the size must fit the caps of :mod:`cmrseg.validate`.
"""

from __future__ import annotations

import gzip
import re
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cmrseg.errors import CMRSegError
from cmrseg.validate import InputWarning, check_dimensions

NIFTI_TIME_UNITS_MS = {8: 1000.0, 16: 1.0, 24: 0.001}  # xyzt_units time code -> ms per unit (s, ms, us)


@dataclass
class NiftiHeader:
    dims: tuple[int, ...]  # dim[1..dim[0]]
    pixdim: tuple[float, ...]  # pixdim[1..dim[0]]
    time_unit_ms: float | None  # ms per time unit, None when the header gives no time unit
    sform_code: int
    srow: np.ndarray  # 3 x 4
    nifti2: bool
    endian: str
    nonfinite: np.ndarray | None = None  # flat indices (file order) of NaN/Inf voxels of float data, None if none
    qform_code: int = 0
    quatern: tuple[float, float, float] = (0.0, 0.0, 0.0)  # quatern_b, _c, _d
    qfac: float = 1.0  # pixdim[0]: -1 flips the third axis of the qform


def _read_all(path: Path) -> bytes:
    try:
        if path.name.lower().endswith(".gz"):
            with gzip.open(path, "rb") as stream:
                return stream.read()
        return path.read_bytes()
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise CMRSegError(
            f"{path} is truncated or corrupt ({str(exc) or type(exc).__name__}); copy or export it again."
        ) from exc


def _nifti_header(data: bytes, path: Path) -> NiftiHeader:
    if len(data) < 348:
        raise CMRSegError(f"{path} is too short for a NIfTI header ({len(data)} bytes); it is truncated.")
    for endian in ("<", ">"):
        size = struct.unpack(f"{endian}i", data[:4])[0]
        if size in (348, 540):
            break
    else:
        raise CMRSegError(f"Cannot read {path}: it has no valid NIfTI header (header size field {data[:4].hex()}).")
    if size == 540:  # NIfTI-2: 64-bit fields
        if len(data) < 540:
            raise CMRSegError(f"{path} is too short for a NIfTI-2 header; it is truncated.")
        dim = struct.unpack(f"{endian}8q", data[16:80])
        datatype = struct.unpack(f"{endian}h", data[12:14])[0]
        bitpix = struct.unpack(f"{endian}h", data[14:16])[0]
        pixdim = struct.unpack(f"{endian}8d", data[104:168])
        vox_offset = struct.unpack(f"{endian}q", data[168:176])[0]
        qform_code, sform_code = struct.unpack(f"{endian}2i", data[344:352])
        quatern = struct.unpack(f"{endian}3d", data[352:376])
        srow = np.array(struct.unpack(f"{endian}12d", data[400:496])).reshape(3, 4)
        units = struct.unpack(f"{endian}i", data[500:504])[0]
    else:
        dim = struct.unpack(f"{endian}8h", data[40:56])
        datatype = struct.unpack(f"{endian}h", data[70:72])[0]
        bitpix = struct.unpack(f"{endian}h", data[72:74])[0]
        pixdim = struct.unpack(f"{endian}8f", data[76:108])
        vox_offset = int(struct.unpack(f"{endian}f", data[108:112])[0])
        units = data[123]
        qform_code, sform_code = struct.unpack(f"{endian}2h", data[252:256])
        quatern = struct.unpack(f"{endian}3f", data[256:268])
        srow = np.array(struct.unpack(f"{endian}12f", data[280:328]), dtype=float).reshape(3, 4)
    ndim = dim[0]
    if datatype in NIFTI_COMPLEX_TYPES:
        raise CMRSegError(f"{path} holds complex voxels (NIfTI datatype {datatype}); CMRSeg reads magnitude images: "
                          "save the magnitude.")
    if not 1 <= ndim <= 7 or any(n < 1 for n in dim[1 : ndim + 1]) or bitpix <= 0:
        raise CMRSegError(f"{path} has an invalid NIfTI header (dim {list(dim)}, bitpix {bitpix}).")
    dims = tuple(int(n) for n in dim[1 : ndim + 1])
    shape = (dims + (1, 1, 1))[:4]
    check_dimensions((shape[3], shape[2], shape[1], shape[0]), str(path))
    offset = max(vox_offset, size)
    expected = int(np.prod(dims, dtype=np.int64)) * bitpix // 8
    if len(data) - offset < expected:
        raise CMRSegError(
            f"{path} is truncated: its header promises {expected:,} bytes of voxel data but the file holds "
            f"{max(len(data) - offset, 0):,}. Copy or export it again."
        )
    return NiftiHeader(
        dims=dims,
        pixdim=tuple(float(p) for p in pixdim[1 : ndim + 1]),
        time_unit_ms=NIFTI_TIME_UNITS_MS.get(units & 0x38),
        sform_code=int(sform_code),
        srow=srow,
        nifti2=size == 540,
        endian=endian,
        nonfinite=_nonfinite_voxels(data, offset, datatype, int(np.prod(dims, dtype=np.int64)), endian),
        qform_code=int(qform_code),
        quatern=tuple(float(q) for q in quatern),
        qfac=-1.0 if pixdim[0] < 0 else 1.0,
    )


NIFTI_FLOAT_TYPES = {16: "f4", 64: "f8"}
NIFTI_COMPLEX_TYPES = (32, 1792, 2048)


def _nonfinite_voxels(data: bytes, offset: int, datatype: int, count: int, endian: str) -> np.ndarray | None:
    """Where float voxel data are NaN or Inf: ITK reads them as 0, which would pass for dark image (a hole in
    the blood pool, a volume too small) instead of being repaired or refused as corrupt."""
    if datatype not in NIFTI_FLOAT_TYPES:
        return None
    values = np.frombuffer(data, dtype=np.dtype(endian + NIFTI_FLOAT_TYPES[datatype]), count=count, offset=offset)
    bad = np.flatnonzero(~np.isfinite(values))
    return bad if bad.size else None


def check_nifti(path: Path) -> NiftiHeader:
    """Read and check a .nii / .nii.gz file's header and data size; returns the header."""
    header = _nifti_header(_read_all(path), path)
    spatial = header.pixdim[:3]
    if not all(np.isfinite(p) and p > 0 for p in spatial):
        raise CMRSegError(
            f"{path}: the voxel size in the header is {list(spatial)} mm; sizes must be finite and positive."
        )
    _check_sform_agrees(header, path)
    _warn_if_orientations_disagree(header, path)
    return header


ORIENTATION_TOLERANCE_DEGREES = 1.0
ITK_SFORM_SKEW_TOLERANCE = 1e-4  # ITK takes the qform for an sform further off perpendicular


def qform_axes(header: NiftiHeader) -> np.ndarray:
    """The qform's axis directions (columns, RAS) from its quaternion, as the NIfTI standard defines them."""
    b, c, d = np.asarray(header.quatern, dtype=float) / max(1.0, *np.abs(header.quatern))  # no overflow below
    if b * b + c * c + d * d > 1.0:  # a turn of 180 degrees, as the standard reads (b, c, d) past unit length
        b, c, d = np.array([b, c, d]) / np.sqrt(b * b + c * c + d * d)
    a = np.sqrt(max(0.0, 1.0 - (b * b + c * c + d * d)))
    axes = np.array([[a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
                     [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
                     [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b]])
    axes[:, 2] *= header.qfac
    return axes / np.linalg.norm(axes, axis=0)


def _warn_if_orientations_disagree(header: NiftiHeader, path: Path) -> None:
    """Warn when the header's two orientations (qform and sform) point the image's axes apart: tools that read
    the other one show the image turned or mirrored, and the RV side check and the AHA segments read the
    orientation."""
    if header.qform_code <= 0 or header.sform_code <= 0:
        return
    lengths = np.linalg.norm(header.srow[:, :3], axis=0)
    if not np.all(np.isfinite(lengths)) or np.any(lengths < 1e-6) or not np.all(np.isfinite(header.quatern)):
        return
    sform_axes = header.srow[:, :3] / lengths
    u, _, vt = np.linalg.svd(sform_axes)
    turn = u @ vt  # the sform's nearest rotation: a shear (an uncorrected gantry tilt) is not an orientation
    cosines = np.sum(qform_axes(header) * turn, axis=0)
    degrees = float(np.degrees(np.arccos(np.clip(cosines, -1.0, 1.0))).max())
    if degrees <= ORIENTATION_TOLERANCE_DEGREES:
        return
    # ITK 5.4 reads the sform when its code is 1 (scanner) and its axes are perpendicular, else the qform.
    perpendicular = float(np.max(np.abs(sform_axes.T @ sform_axes - np.eye(3)))) <= ITK_SFORM_SKEW_TOLERANCE
    used, other = ("sform", "qform") if header.sform_code == 1 and perpendicular else ("qform", "sform")
    warnings.warn(f"{path}: the header's two orientations disagree (the qform's and the sform's axes lie up to "
                  f"{degrees:.0f} degrees apart). CMRSeg reads the {used}, as ITK and 3D Slicer do; a tool that "
                  f"reads the {other} shows the image turned or mirrored. Check the orientation: the RV side check "
                  "and the AHA segments depend on it.", InputWarning, stacklevel=3)


SFORM_SPACING_TOLERANCE = 0.01  # relative


def _sform_lengths(header: NiftiHeader) -> np.ndarray | None:
    """The lengths of the sform's three axes, when it places the voxels at all: None without an sform, for a
    degenerate one (ITK then takes the qform) and for one of unit scale (every axis 1 mm, as in ACDC's files),
    which carries no spacing."""
    if header.sform_code <= 0:
        return None
    lengths = np.linalg.norm(header.srow[:, :3], axis=0)
    if not np.all(np.isfinite(lengths)) or np.any(lengths < 1e-6) or np.allclose(lengths, 1.0, atol=1e-3):
        return None
    return lengths


def slice_plane_distance(header: NiftiHeader) -> float | None:
    """The distance between the slice planes that the sform places the slices at: its third axis's length when
    that axis is perpendicular to the slices, shorter when it leans (the slices shifted in-plane against each
    other, as a gantry tilt or a converter that steps from slice origin to slice origin writes them). None
    without an sform that carries spacing."""
    if _sform_lengths(header) is None:
        return None
    columns = header.srow[:, :3]
    distance = abs(float(np.linalg.det(columns))) / float(np.linalg.norm(np.cross(columns[:, 0], columns[:, 1])))
    return distance if distance > 1e-6 else None


def _check_sform_agrees(header: NiftiHeader, path: Path) -> None:
    """Refuse a header whose sform places the voxels at other distances than its voxel size says (a slice
    thickness written as the voxel size, say: every volume would be off by their ratio). An sform of unit scale
    (every axis 1 mm, as in ACDC's files) carries no spacing and is not compared. A leaning third axis may be
    given as its length or as the distance between the slice planes."""
    placed = _sform_lengths(header)
    if placed is None or len(header.pixdim) < 3:
        return
    given = np.array(header.pixdim[:3])
    distance = slice_plane_distance(header)
    if distance is not None and abs(distance - given[2]) <= SFORM_SPACING_TOLERANCE * given[2]:
        placed[2] = distance
    if np.max(np.abs(placed - given) / given) > SFORM_SPACING_TOLERANCE:
        raise CMRSegError(
            f"{path}: the header's voxel size {np.round(given, 3).tolist()} mm disagrees with the spacing its sform "
            f"places the voxels at, {np.round(placed, 3).tolist()} mm; the volumes would depend on which is right. "
            "Convert the images again (the slice spacing, not the thickness, is the third voxel size)."
        )


def orthonormal_nifti_copy(path: Path, header: NiftiHeader, target: Path) -> Path:
    """An uncompressed copy of ``path`` whose sform columns are made orthogonal (their lengths kept)."""
    matrix = header.srow[:, :3]
    lengths = np.linalg.norm(matrix, axis=0)
    u, _, vt = np.linalg.svd(matrix / lengths)
    srow = header.srow.copy()
    srow[:, :3] = (u @ vt) * lengths
    data = bytearray(_read_all(path))
    if header.nifti2:
        struct.pack_into(f"{header.endian}12d", data, 400, *srow.ravel())
    else:
        struct.pack_into(f"{header.endian}12f", data, 280, *srow.ravel())
    target.write_bytes(bytes(data))
    return target


def check_nrrd(path: Path) -> dict[str, str]:
    """A NRRD file's (attached or detached) raw or gzip data must have the size its header promises. Returns
    the header's fields (keys in lower case)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CMRSegError(f"Cannot read {path} ({exc}).") from exc
    end = raw.find(b"\n\n")
    if not raw.startswith(b"NRRD") or end < 0:
        if path.name.lower().endswith(".nhdr") and raw.startswith(b"NRRD"):
            end = len(raw)
        else:
            raise CMRSegError(f"Cannot read {path}: it has no valid NRRD header.")
    fields = {}
    for line in raw[:end].decode("latin-1").splitlines()[1:]:
        if ":" in line and not line.startswith("#"):
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.lstrip("=").strip()
    try:
        sizes = [int(n) for n in fields["sizes"].split()]
    except (KeyError, ValueError) as exc:
        raise CMRSegError(f"{path}: the NRRD header has no valid 'sizes' field.") from exc
    frames = nrrd_frames_axis(fields)
    frames = nrrd_time_axis(fields) if frames is None else frames
    _check_nrrd_voxel_size(fields, len(sizes), frames, path)
    shape = ([*sizes[:frames], *sizes[frames + 1:], sizes[frames]] if frames is not None
             else sizes + [1, 1, 1, 1])[:4]  # x, y, z, t  # fmt: skip
    check_dimensions((shape[3], shape[2], shape[1], shape[0]), str(path))
    sizes_bytes = {"char": 1, "uchar": 1, "int8": 1, "uint8": 1, "short": 2, "ushort": 2, "int16": 2,
                   "uint16": 2, "int": 4, "uint": 4, "int32": 4, "uint32": 4, "float": 4, "double": 8,
                   "int64": 8, "uint64": 8, "signed char": 1, "unsigned char": 1, "unsigned short": 2,
                   "unsigned int": 4, "longlong": 8, "ulonglong": 8}
    item = sizes_bytes.get(fields.get("type", "").lower())
    encoding = fields.get("encoding", "raw").lower()
    if item is None or encoding not in ("raw", "gzip", "gz"):
        return fields  # other encodings (ascii, bzip2) are left to ITK
    expected = int(np.prod(sizes, dtype=np.int64)) * item
    detached = fields.get("data file") or fields.get("datafile")
    if detached:
        data_path = path.parent / detached
        if not data_path.is_file():
            raise CMRSegError(f"{path} names the data file {detached}, which does not exist.")
        payload = data_path.read_bytes()
    else:
        payload = raw[end + 2 :]
    if encoding in ("gzip", "gz"):
        try:
            payload = gzip.decompress(payload)
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise CMRSegError(f"{path}: the compressed voxel data are truncated or corrupt ({exc}).") from exc
    if len(payload) < expected:
        raise CMRSegError(
            f"{path} is truncated: its header promises {expected:,} bytes of voxel data but it holds "
            f"{len(payload):,}. Copy or export it again."
        )
    return fields


def _check_nrrd_voxel_size(fields: dict[str, str], dimension: int, frames: int | None, path: Path) -> None:
    """Each spatial axis needs a finite, positive voxel size from ``space directions`` or ``spacings`` (ITK
    puts 1 mm in place of a missing or NaN one: a volume then looks right and is wrong)."""
    vectors = _space_directions(fields)
    kinds = fields.get("kinds", "").lower().split()
    in_space = len(vectors) == dimension
    if in_space:  # the axes with a direction (in four-dimensional space, time last)
        axes = [axis for axis, vector in enumerate(vectors) if vector != "none"][:3]
    else:  # no space: the domain axes but the frames (ITK's four-dimensional image: time last)
        axes = [axis for axis in range(dimension) if axis != frames
                and (len(kinds) != dimension or kinds[axis] in ("domain", "space"))][:3]
    try:
        spacings = [float(v) for v in fields.get("spacings", "").split()]
    except ValueError:
        spacings = []
    sizes = []
    for axis in axes:
        if in_space:
            try:
                sizes.append(float(np.linalg.norm([float(v) for v in vectors[axis].strip("()").split(",")])))
            except ValueError:
                sizes.append(float("nan"))
        else:
            sizes.append(spacings[axis] if len(spacings) == dimension else float("nan"))
    if not all(np.isfinite(size) and size > 0 for size in sizes):
        given = "no voxel size" if not vectors and not spacings else f"the voxel size {sizes} mm"
        raise CMRSegError(f"{path}: the header gives {given} (its 'space directions' and 'spacings'); sizes must "
                          "be finite and positive.")


def check_metaimage(path: Path) -> None:
    """A MetaImage (.mha / .mhd) header must give a finite, positive ElementSpacing for its three spatial axes
    (ITK puts 1 mm in place of a missing one)."""
    try:
        with open(path, "rb") as stream:
            head = stream.read(65536).decode("latin-1")
    except OSError as exc:
        raise CMRSegError(f"Cannot read {path} ({exc}).") from exc
    fields = {}
    for line in head.splitlines():
        key, _, value = line.partition("=")
        fields[key.strip().lower()] = value.strip()
        if key.strip().lower() == "elementdatafile":
            break
    text = fields.get("elementspacing") or fields.get("elementsize") or ""
    try:
        spatial = min(int(fields.get("ndims", "3")), 3)
        sizes = [float(v) for v in text.split()][:spatial]
    except ValueError:
        spatial, sizes = 3, []
    if len(sizes) < spatial or not all(np.isfinite(size) and size > 0 for size in sizes):
        given = f"ElementSpacing {text}" if text else "no ElementSpacing"
        raise CMRSegError(f"{path}: the header gives {given}; the voxel sizes must be finite and positive.")


def nrrd_frames_axis(fields: dict[str, str]) -> int | None:
    """The axis of a Slicer volume sequence NRRD that lists its frames (``kinds`` one ``list`` and three
    ``domain``: last as Slicer writes it now, first in older files), else None."""
    kinds = fields.get("kinds", "").lower().split()
    if len(kinds) == 4 and kinds.count("list") == 1 and kinds.count("domain") == 3:
        return kinds.index("list")
    return None


# The NRRD axis kinds ITK counts as axes of space; a fourth of them in a three-dimensional space is refused.
_DOMAIN_KINDS = ("domain", "space", "time")


def nrrd_time_axis(fields: dict[str, str]) -> int | None:
    """The frame axis of a 4D NRRD in three-dimensional space whose fourth axis is a domain axis without a
    space direction (``kinds: domain domain domain time``, as pynrrd and other tools write a cine), which ITK
    does not read as it is; else None."""
    directions = _space_directions(fields)
    kinds = fields.get("kinds", "").lower().split() or ["domain"] * len(directions)
    if fields.get("dimension", "").strip() != "4" or len(directions) != 4 or len(kinds) != 4:
        return None
    spatial = [axis for axis, direction in enumerate(directions) if direction != "none"]
    if len(spatial) != 3 or not all(kind in _DOMAIN_KINDS for kind in kinds):
        return None
    return ({0, 1, 2, 3} - set(spatial)).pop()


def _space_directions(fields: dict[str, str]) -> list[str]:
    """The header's ``space directions``, one per axis: a vector ``(x,y,z)`` or ``none``."""
    return re.findall(r"\([^)]*\)|none", fields.get("space directions", "").lower())
