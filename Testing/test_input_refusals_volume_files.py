"""Hostile and careless NIfTI, NRRD and MetaImage inputs: each is refused with one ``cmrseg: error:`` line,
exit 2, nothing written, or read as the README says. Inputs are derived from ACDC files or the phantom."""

from __future__ import annotations

import gzip
import struct
import time
import warnings
from dataclasses import replace

import numpy as np
import pytest
from refusals import ACDC_ED, cine_copy, segment_refused

from cmrseg.errors import CMRSegError
from cmrseg.io.load import load_study
from cmrseg.io.volume_files import write_study
from cmrseg.validate import InputWarning


@pytest.fixture
def acdc_ed_bytes(acdc_root) -> bytes:
    return gzip.decompress((acdc_root / ACDC_ED).read_bytes())



def test_a_nifti_cut_in_half_is_refused(acdc_root, acdc_ed_bytes, tmp_path, capsys):
    half = tmp_path / "half.nii"
    half.write_bytes(acdc_ed_bytes[: len(acdc_ed_bytes) // 2])
    assert "truncated" in segment_refused(capsys, tmp_path, half)
    compressed = (acdc_root / ACDC_ED).read_bytes()
    half_gz = tmp_path / "half.nii.gz"
    half_gz.write_bytes(compressed[: len(compressed) // 2])
    assert "truncated or corrupt" in segment_refused(capsys, tmp_path, half_gz)


def test_flipped_bytes_inside_the_gzip_stream_are_refused(acdc_root, tmp_path, capsys):
    data = bytearray((acdc_root / ACDC_ED).read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
    damaged = tmp_path / "damaged.nii.gz"
    damaged.write_bytes(bytes(data))
    assert "truncated or corrupt" in segment_refused(capsys, tmp_path, damaged)


def _nifti_with(raw: bytes, path, **fields) -> object:
    data = bytearray(raw)
    for offset, (fmt, values) in fields.items():
        struct.pack_into(fmt, data, int(offset.strip("_")), *values)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("spacing, expected", [(0.0, "finite and positive"), (float("nan"), "finite and positive"),
                                               (1e-6, "outside the plausible"), (0.0015, "looks like metres")])
def test_a_broken_pixel_spacing_is_refused_not_replaced(acdc_ed_bytes, tmp_path, capsys, spacing, expected):
    path = _nifti_with(acdc_ed_bytes, tmp_path / "spacing.nii", _80=("<2f", (spacing, spacing)))
    started = time.perf_counter()
    assert expected in segment_refused(capsys, tmp_path, path)
    assert time.perf_counter() - started < 20  # refused up front, never a long resampling


def test_an_sform_with_a_zero_axis_is_refused_in_one_line(acdc_ed_bytes, tmp_path, capsys):
    """It read 'off by nan' after a numpy warning line."""
    path = _nifti_with(acdc_ed_bytes, tmp_path / "zero.nii", _252=("<2h", (0, 1)), _280=("<12f", [0.0] * 12))
    message = segment_refused(capsys, tmp_path, path)
    assert "the sform's axes have lengths [0.0, 0.0, 0.0]" in message


def test_complex_voxels_are_refused(acdc_ed_bytes, tmp_path, capsys):
    """Read before as their real part, with only numpy's warning."""
    path = _nifti_with(acdc_ed_bytes, tmp_path / "complex.nii", _70=("<2h", (32, 64)))  # complex64
    assert "holds complex voxels (NIfTI datatype 32)" in segment_refused(capsys, tmp_path, path)


def test_a_blank_frame_of_a_cine_is_named(oblique_phantom, tmp_path, capsys):
    study = cine_copy(oblique_phantom)
    study.image[2] = 0
    path = write_study(study, tmp_path / "cine.nii.gz")
    assert f"frame 2 of {path} is blank: every voxel is 0" in segment_refused(capsys, tmp_path, path)


def test_a_blank_image_is_called_blank(acdc_ed_bytes, tmp_path, capsys):
    blank = bytearray(acdc_ed_bytes)
    offset = int(struct.unpack_from("<f", blank, 108)[0])
    blank[offset:] = bytes(len(blank) - offset)
    path = tmp_path / "blank.nii"
    path.write_bytes(bytes(blank))
    assert segment_refused(capsys, tmp_path, path).endswith("is blank: every voxel is 0. Give the cine image itself.")


def test_scanner_rounding_in_the_sform_is_accepted_and_straightened(acdc_ed_bytes, tmp_path):
    rotation = np.array([[0.8, -0.6, 0.0], [0.6, 0.8, 0.0], [0.0, 0.0, 1.0]])
    matrix = rotation @ np.diag([1.5625, 1.5625, 10.0])
    matrix[:, 1] += 1e-4 * 1.5625 * rotation[:, 0]  # columns 1e-4 off perpendicular, as seen in a GE export
    srow = np.hstack([matrix, np.zeros((3, 1))]).ravel()
    path = _nifti_with(acdc_ed_bytes, tmp_path / "rounded.nii", _252=("<2h", (0, 1)), _280=("<12f", srow))
    with pytest.warns(InputWarning, match="orthonormalised"):
        study = load_study(path)
    np.testing.assert_allclose(study.direction.T @ study.direction, np.eye(3), atol=1e-9)
    np.testing.assert_allclose(study.spacing, (1.5625, 1.5625, 10.0), rtol=1e-4)
    matrix[:, 1] += 2e-2 * 1.5625 * rotation[:, 0]  # far beyond rounding
    srow = np.hstack([matrix, np.zeros((3, 1))]).ravel()
    path = _nifti_with(acdc_ed_bytes, tmp_path / "skewed.nii", _252=("<2h", (0, 1)), _280=("<12f", srow))
    with pytest.raises(CMRSegError, match="not perpendicular"):
        load_study(path)


def test_a_voxel_size_the_sform_contradicts_is_refused(acdc_ed_bytes, tmp_path, capsys):
    # The slices placed 10 mm apart by the sform, but 8 mm (a slice thickness) as the voxel size: every
    # volume would be 20 % low. (ACDC's own sform has unit scale: no spacing to compare, as above.)
    srow = np.hstack([np.diag([1.5625, 1.5625, 10.0]), np.zeros((3, 1))]).ravel()
    agreeing = _nifti_with(acdc_ed_bytes, tmp_path / "agreeing.nii", _252=("<2h", (0, 1)), _280=("<12f", srow))
    assert load_study(agreeing).spacing == pytest.approx((1.5625, 1.5625, 10.0))
    path = _nifti_with(acdc_ed_bytes, tmp_path / "thickness.nii", _252=("<2h", (0, 1)), _280=("<12f", srow),
                       _88=("<f", (8.0,)))
    message = segment_refused(capsys, tmp_path, path)
    assert "[1.562, 1.562, 8.0] mm disagrees with" in message and "[1.562, 1.562, 10.0] mm" in message
    # An sform of zeros (code set, matrix not): no spacing to compare; ITK places the voxels by the qform.
    zeros = _nifti_with(acdc_ed_bytes, tmp_path / "zeros.nii", _252=("<2h", (1, 1)), _256=("<6f", [0.0] * 6),
                        _280=("<12f", [0.0] * 12))
    assert load_study(zeros).spacing == pytest.approx((1.5625, 1.5625, 10.0))


def test_a_qform_and_an_sform_that_disagree_are_named_with_the_one_read(acdc_ed_bytes, tmp_path):
    """ACDC's sform (code 2) turns the x and y axes 180 degrees about z, and its quaternion (0, 0, 1) says the
    same; with the qform's code set as well, the two agree. A quaternion of no turn disagrees by 180 degrees,
    and ITK (so CMRSeg and 3D Slicer) then reads the qform: said in the warning, and shown by the direction."""
    agreeing = _nifti_with(acdc_ed_bytes, tmp_path / "agreeing.nii", _252=("<2h", (1, 2)))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", "the header's two orientations disagree", InputWarning)
        assert np.allclose(load_study(agreeing).direction, np.eye(3))  # RAS diag(-1, -1, 1) is LPS identity
    turned = _nifti_with(acdc_ed_bytes, tmp_path / "turned.nii", _252=("<2h", (1, 2)), _256=("<3f", (0.0, 0.0, 0.0)))
    with pytest.warns(InputWarning, match=r"disagree \(.* 180 degrees apart\)\. CMRSeg reads the qform"):
        study = load_study(turned)
    assert np.allclose(study.direction, np.diag([-1.0, -1.0, 1.0]))
    scanner = _nifti_with(acdc_ed_bytes, tmp_path / "scanner.nii", _252=("<2h", (1, 1)), _256=("<3f", (0.0, 0.0, 0.0)))
    with pytest.warns(InputWarning, match="CMRSeg reads the sform"):
        assert np.allclose(load_study(scanner).direction, np.eye(3))
    # An sform sheared by a gantry tilt of 10 degrees: ITK takes the qform instead, whatever the sform's code.
    # A writer's qform is the sheared sform's nearest rotation (no warning); a qform of no turn is not.
    sheared = np.diag([-1.5625, -1.5625, 10.0])
    sheared[1, 2] = 10.0 * np.tan(np.radians(10.0))
    lengths = np.linalg.norm(sheared, axis=0)
    u, _, vt = np.linalg.svd(sheared / lengths)
    fields = dict(_252=("<2h", (1, 1)), _280=("<12f", np.hstack([sheared, np.zeros((3, 1))]).ravel()),
                  _80=("<3f", tuple(lengths)))
    tilted = _nifti_with(acdc_ed_bytes, tmp_path / "tilted.nii", **fields, _256=("<3f", quaternion_of(u @ vt)))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", "the header's two orientations disagree", InputWarning)
        with pytest.warns(InputWarning, match="leans 10 degrees .* volumes use the 10 mm between the slice planes"):
            assert load_study(tilted).spacing == pytest.approx((1.5625, 1.5625, 10.0))  # not 10.15: 1.5 % more
    not_turned = _nifti_with(acdc_ed_bytes, tmp_path / "not_turned.nii", **fields, _256=("<3f", (0.0, 0.0, 0.0)))
    with pytest.warns(InputWarning, match=r"up to 180 degrees apart\)\. CMRSeg reads the qform"):
        assert np.allclose(load_study(not_turned).direction, np.diag([-1.0, -1.0, 1.0]))


def test_slices_shifted_in_plane_are_measured_between_their_planes(acdc_ed_bytes, tmp_path):
    """A converter that steps the sform's third axis from slice origin to slice origin, with the slices
    shifted in-plane (here 4.7 mm per 10 mm slice, a 25-degree lean), and gives that step as the voxel size
    (11.03 mm): ITK reads the qform and that voxel size, and every volume would be 10 % too large. The slice
    spacing is the 10 mm between the slice planes, as the DICOM reader measures it; a voxel size that already
    gives it is read as it is."""
    srow = np.diag([-1.5625, -1.5625, 10.0])
    srow[0, 2] = -10.0 * np.tan(np.radians(25.0))
    lengths = np.linalg.norm(srow, axis=0)
    u, _, vt = np.linalg.svd(srow / lengths)
    fields = dict(_252=("<2h", (1, 1)), _280=("<12f", np.hstack([srow, np.zeros((3, 1))]).ravel()),
                  _256=("<3f", quaternion_of(u @ vt)))
    step = _nifti_with(acdc_ed_bytes, tmp_path / "step.nii", **fields, _80=("<3f", tuple(lengths)))
    with pytest.warns(InputWarning, match="leans 25 degrees .* 10 mm between the slice planes, not the header's "
                                          "slice step of 11.03 mm"):
        study = load_study(step)
    assert study.spacing == pytest.approx((1.5625, 1.5625, 10.0))
    plane = _nifti_with(acdc_ed_bytes, tmp_path / "plane.nii", **fields, _80=("<3f", (1.5625, 1.5625, 10.0)))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", ".*between the slice planes", InputWarning)
        assert load_study(plane).spacing == pytest.approx((1.5625, 1.5625, 10.0))
        # ACDC's own sform (code 2) has unit scale: it places no slice, and its 10 mm voxel size stands.
        (tmp_path / "acdc.nii").write_bytes(acdc_ed_bytes)
        assert load_study(tmp_path / "acdc.nii").spacing == pytest.approx((1.5625, 1.5625, 10.0))


def test_slices_in_an_axial_coronal_or_sagittal_plane_are_named_in_a_warning(acdc_root, oblique_phantom, tmp_path):
    """No short-axis slice lies in a patient axis plane: ACDC's files (no real patient orientation) are named,
    and so is a stack turned to lie coronal; a double-oblique stack, as a scanner writes it, is not."""
    with pytest.warns(InputWarning, match="patient001.*slices lie in a patient axial plane.*no real patient"):
        load_study(acdc_root / "patient001")
    write_study(oblique_phantom.study, tmp_path / "oblique.nii.gz")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", ".*slices lie in a patient", InputWarning)
        load_study(tmp_path / "oblique.nii.gz")
    coronal = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # the slice normal along y
    write_study(replace(oblique_phantom.study, direction=coronal), tmp_path / "coronal.nii.gz")
    with pytest.warns(InputWarning, match="slices lie in a patient coronal plane"):
        load_study(tmp_path / "coronal.nii.gz")


def quaternion_of(rotation: np.ndarray) -> tuple[float, float, float]:
    """``(b, c, d)`` of a proper rotation's quaternion ``(a, b, c, d)``, ``a >= 0``, as a NIfTI writer stores it
    (computed from the largest of its four squares, so that no division is by a small number)."""
    r = rotation
    squares = [1 + np.trace(r), 1 + r[0, 0] - r[1, 1] - r[2, 2], 1 + r[1, 1] - r[0, 0] - r[2, 2],
               1 + r[2, 2] - r[0, 0] - r[1, 1]]
    largest = int(np.argmax(squares))
    q = 0.5 * np.sqrt(squares[largest])
    sums = {"ab": r[2, 1] - r[1, 2], "ac": r[0, 2] - r[2, 0], "ad": r[1, 0] - r[0, 1],
            "bc": r[0, 1] + r[1, 0], "bd": r[0, 2] + r[2, 0], "cd": r[1, 2] + r[2, 1]}  # 4 x the products
    name = "abcd"[largest]
    quaternion = {name: q}
    for other in "abcd".replace(name, ""):
        quaternion[other] = sums["".join(sorted(name + other))] / (4 * q)
    a, b, c, d = (quaternion[k] for k in "abcd")
    return (b, c, d) if a >= 0 else (-b, -c, -d)


def test_a_truncated_nrrd_is_refused(oblique_phantom, tmp_path, capsys):
    path = write_study(oblique_phantom.study, tmp_path / "cine.nrrd")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    assert "truncated or corrupt" in segment_refused(capsys, tmp_path, path)


@pytest.mark.parametrize("geometry,named", [
    ("spacings: 1.8 nan 8 237.5", "the voxel size [1.8, nan, 8.0] mm"),
    ("spacings: 1.8 1.8 -8 237.5", "the voxel size [1.8, 1.8, -8.0] mm"),
    ("", "no voxel size"),
    ("space dimension: 4\nspace directions: (1.8,0,0,0) (0,1.8,0,0) (0,0,0,0) (0,0,0,237.5)",
     "the voxel size [1.8, 1.8, 0.0] mm"),
])  # fmt: skip
def test_a_nrrd_without_a_valid_voxel_size_is_refused(oblique_phantom, tmp_path, capsys, geometry, named):
    """ITK reads a missing or NaN NRRD voxel size as 1 mm: a volume that looks right and is wrong (a NaN row
    spacing read LV EDV 37 ml for 80 ml, and a plausible EF)."""
    path = write_study(oblique_phantom.study, tmp_path / "cine.nrrd", compress=False)
    header, data = path.read_bytes().split(b"\n\n", 1)
    lines = [line for line in header.decode().splitlines() if not line.startswith("space")]
    path.write_bytes("\n".join([*lines, *([geometry] if geometry else [])]).encode() + b"\n\n" + data)
    message = segment_refused(capsys, tmp_path, path)
    assert f"the header gives {named}" in message and "finite and positive" in message


@pytest.mark.parametrize("spacing", [None, "1.8 1.8 nan 237.5"])
def test_a_metaimage_without_a_valid_element_spacing_is_refused(oblique_phantom, tmp_path, capsys, spacing):
    path = write_study(oblique_phantom.study, tmp_path / "cine.mha", compress=False)
    header, data = path.read_bytes().split(b"ElementDataFile", 1)
    lines = [line for line in header.decode().splitlines() if not line.startswith("ElementSpacing")]
    lines += [f"ElementSpacing = {spacing}"] if spacing else []
    path.write_bytes("\n".join(lines).encode() + b"\nElementDataFile" + data)
    message = segment_refused(capsys, tmp_path, path)
    assert ("no ElementSpacing" if spacing is None else f"ElementSpacing {spacing}") in message


@pytest.mark.slow
def test_a_cine_with_its_slice_and_time_axes_swapped_is_refused(acdc_root, tmp_path, capsys):
    """ACDC patient090's cine (12 frames x 7 slices) written with time as the third axis and the slices as the
    fourth: every volume would be one slice's summed over the cycle."""
    study = load_study([acdc_root / "patient090" / "patient090_4d.nii.gz"])
    swapped = replace(study, image=np.ascontiguousarray(np.swapaxes(study.image, 0, 1)), frame_times_ms=None)
    write_study(swapped, tmp_path / "swapped.nii.gz")
    message = segment_refused(capsys, tmp_path, tmp_path / "swapped.nii.gz")
    assert "the slice and time axes look swapped" in message
    # As written, the same cine reads: its neighbouring slices differ 5.5 times as much as its neighbouring frames.
    write_study(study, tmp_path / "as_written.nii.gz")
    assert load_study([tmp_path / "as_written.nii.gz"]).image.shape == (12, 7, 224, 154)
