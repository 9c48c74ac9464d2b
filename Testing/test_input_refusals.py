"""Hostile and careless inputs: each is refused with one ``cmrseg: error:`` line, exit 2, nothing written.

Inputs are derived inside the tests from the shared ACDC data or from the synthetic phantom.
"""

from __future__ import annotations

import gzip
import shutil
import struct
import time

import numpy as np
import pydicom
import pytest
from dicom_edit import edit

from cmrseg.cli import main
from cmrseg.errors import CMRSegError
from cmrseg.io.acdc import load_frame
from cmrseg.io.dicom_scan import DicomReadWarning
from cmrseg.io.dicom_write import write_dicom_cine
from cmrseg.io.load import load_study
from cmrseg.io.study import Study
from cmrseg.io.volume_files import write_study
from cmrseg.validate import InputWarning

ACDC_ED = "patient001/patient001_frame01.nii.gz"


def refused(capsys, *args) -> str:
    """Run ``cmrseg segment`` (output in the last argument's folder) and return its one error line."""
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if not line.startswith("PROGRESS")]
    assert code == 2, err
    assert lines[-1].startswith("cmrseg: error: "), err
    assert "Traceback" not in err
    return lines[-1]


def segment_refused(capsys, tmp_path, *inputs, extra=()) -> str:
    message = refused(capsys, "segment", *inputs, "--out", tmp_path / "out", *extra)
    assert not (tmp_path / "out").exists(), "a refused run must write nothing"
    return message


@pytest.fixture
def acdc_ed_bytes(acdc_root) -> bytes:
    return gzip.decompress((acdc_root / ACDC_ED).read_bytes())


# ------------------------------------------------------------------------------------------ DICOM


@pytest.fixture
def dicom_cine(tmp_path, oblique_phantom):
    return write_dicom_cine(oblique_phantom.study, tmp_path / "dicom")


@pytest.mark.parametrize("slope, expected", [("NaN", "RescaleSlope nan"), ("0", "RescaleSlope 0"),
                                             ("1e30", "as bright as the same slice")])
def test_one_dicom_file_with_a_broken_rescale_slope_is_refused_by_name(dicom_cine, tmp_path, capsys, slope, expected):
    victim = dicom_cine[len(dicom_cine) // 2]
    ds = pydicom.dcmread(victim)
    ds.RescaleSlope = slope
    ds.save_as(victim)
    message = segment_refused(capsys, tmp_path, tmp_path / "dicom")
    assert expected in message and victim.name in message


@pytest.mark.parametrize("attribute,value", [("PixelSpacing", ["nan", "1.8"]),
                                             ("ImagePositionPatient", ["0", "nan", "0"]),
                                             ("ImageOrientationPatient", ["1", "0", "0", "0", "inf", "0"])])
def test_one_dicom_file_with_a_geometry_that_is_no_number_is_refused_by_name(dicom_cine, tmp_path, capsys,
                                                                            attribute, value):
    """A NaN spacing or position passed the checks that compare files (NaN compares unequal to nothing)."""
    victim = dicom_cine[len(dicom_cine) // 2]
    edit(victim, **{attribute: value})
    message = segment_refused(capsys, tmp_path, tmp_path / "dicom")
    assert "lack the image geometry" in message and "not finite numbers" in message and victim.name in message


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_a_trigger_time_that_is_no_number_counts_as_missing(dicom_cine, tmp_path, value):
    """It stopped the reader (an internal error, and a whole batch); it is read as a missing TriggerTime: the
    phases are ordered by InstanceNumber, and the frame times are unknown."""
    edit(dicom_cine[3], TriggerTime=value)
    with pytest.warns(DicomReadWarning, match="instances without TriggerTime; phases are ordered by InstanceNumber"):
        study = load_study(tmp_path / "dicom")
    assert study.num_frames == 4 and not study.frame_times_known


def test_two_images_of_one_sop_instance_uid_are_refused(dicom_cine, tmp_path, capsys):
    """An ES image carrying an ED image's UID: its SEG referenced the ED image, and the SR counted one image less."""
    first, other = dicom_cine[0], dicom_cine[5]
    uid = pydicom.dcmread(first).SOPInstanceUID
    ds = pydicom.dcmread(other)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.save_as(other)
    message = segment_refused(capsys, tmp_path, tmp_path / "dicom")
    assert "two images with one SOPInstanceUID" in message and first.name in message and other.name in message


def test_a_ct_series_is_refused(dicom_cine, tmp_path, capsys):
    for path in dicom_cine:
        ds = pydicom.dcmread(path)
        ds.Modality = "CT"
        ds.save_as(path)
    assert "Modality CT" in segment_refused(capsys, tmp_path, tmp_path / "dicom")


def test_patient_size_in_centimetres_is_read_as_centimetres(dicom_cine, tmp_path):
    for path in dicom_cine:
        ds = pydicom.dcmread(path)
        ds.PatientSize = "172"
        ds.save_as(path)
    assert load_study(tmp_path / "dicom").patient.height_cm == pytest.approx(172)


def _set_patient_size(paths, **values) -> None:
    for path in paths:
        edit(path, **values)


def test_a_height_and_weight_no_patient_has_together_are_not_used(dicom_cine, tmp_path, capsys):
    # Each within its own range, but a height in inches: BMI 163, which would index every volume 60 % high.
    message = segment_refused(capsys, tmp_path, tmp_path / "dicom", extra=("--height", "70", "--weight", "80"))
    assert "body-mass index of 163" in message and "inches" in message
    # Read so from the files: both ignored, with a warning (no BSA indexing) ...
    _set_patient_size(dicom_cine, PatientSize="70", PatientWeight="80")
    with pytest.warns(InputWarning, match="body-mass index of 163.*Both are ignored"):
        patient = load_study(tmp_path / "dicom").patient
    assert patient.height_cm is None and patient.weight_kg is None
    # ... and a height given beside the weight read from the files is refused.
    _set_patient_size(dicom_cine, PatientSize=None, PatientWeight="80")
    message = segment_refused(capsys, tmp_path, tmp_path / "dicom", extra=("--height", "70"))
    assert "height given, with the weight read from the input" in message and "163" in message
    assert load_study(tmp_path / "dicom").patient.weight_kg == pytest.approx(80)


# ------------------------------------------------------------------------------------------ NIfTI / NRRD


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
    study = _cine(oblique_phantom)
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


# ------------------------------------------------------------------------------------------ voxel values


def _cine(oblique_phantom) -> Study:
    study = oblique_phantom.study
    return Study(image=study.image.copy(), spacing=study.spacing, origin=study.origin, direction=study.direction,
                 frame_times_ms=study.frame_times_ms)


@pytest.mark.parametrize("suffix", [".nrrd", ".nii.gz"])  # ITK reads a NIfTI NaN as 0: found in the raw data
def test_a_single_nan_voxel_is_repaired_and_reported(oblique_phantom, tmp_path, suffix):
    study = _cine(oblique_phantom)
    study.image[1, 4, 50, 60] = np.nan
    path = write_study(study, tmp_path / f"cine{suffix}")
    with pytest.warns(InputWarning, match="1 non-finite voxel"):
        read = load_study(path)
    assert np.isfinite(read.image).all()
    clean = oblique_phantom.study.image
    mask = np.ones(clean.shape, bool)
    mask[1, 4, 50, 60] = False
    np.testing.assert_array_equal(read.image[mask], clean[mask])  # nothing else changed


@pytest.mark.parametrize("step_ms", [1000.0, 600.0])
def test_a_time_step_no_cine_has_leaves_the_frame_times_unknown(oblique_phantom, tmp_path, step_ms):
    """A 4D NIfTI whose time step was left at 1 s gave an 8 s heartbeat and filling rates 8 times too low."""
    study = _cine(oblique_phantom)
    study.frame_times_ms = np.arange(study.num_frames) * step_ms
    path = write_study(study, tmp_path / "cine.nii.gz")
    with pytest.warns(InputWarning, match=f"frames {step_ms:g} ms apart .* taken as unknown"):
        read = load_study(path)
    assert not read.frame_times_known
    study.frame_times_ms = np.arange(study.num_frames) * 40.0  # a cine's timing is kept
    read = load_study(write_study(study, tmp_path / "fast.nii.gz"))
    assert read.frame_times_known and read.frame_times_ms[1] == pytest.approx(40.0)


@pytest.mark.parametrize(("unit_code", "step", "expected_ms"), [
    (16, 40.0, 40.0),  # ms
    (24, 40000.0, 40.0),  # microseconds
    (8, 0.04, 40.0),  # seconds
    (8, 40.0, 40.0),  # ms under the unit "seconds", as ITK writes them
    (8, 0.003349, None),  # a repetition time (3.3 ms) stored as the time step: no cine's frames
])
def test_the_nifti_time_step_is_read_in_its_own_unit(oblique_phantom, tmp_path, unit_code, step, expected_ms):
    """The step is the header's, in the header's unit: ITK's time spacing is already in seconds, and converting
    it again made a 40 ms step 0.04 ms (peak filling rates 1000 times too high)."""
    import struct

    study = _cine(oblique_phantom)
    path = write_study(study, tmp_path / "cine.nii")
    header = bytearray(path.read_bytes())
    header[123] = (header[123] & 0x07) | unit_code  # xyzt_units: keep the space unit, set the time unit
    struct.pack_into("<f", header, 76 + 4 * 4, step)  # pixdim[4], the time step
    path.write_bytes(bytes(header))
    if expected_ms is None:
        with pytest.warns(InputWarning, match="ms apart .* repetition time .* taken as unknown"):
            read = load_study(path)
        assert not read.frame_times_known
        return
    read = load_study(path)
    np.testing.assert_allclose(np.diff(read.frame_times_ms), expected_ms, rtol=1e-6)


@pytest.mark.parametrize("value", [np.nan, 0.0])
def test_a_nan_or_blank_slice_is_refused_naming_it(oblique_phantom, tmp_path, capsys, value):
    study = _cine(oblique_phantom)
    study.image[2, 4] = value
    path = write_study(study, tmp_path / "cine.nii.gz")
    message = segment_refused(capsys, tmp_path, path)
    assert "frame 2, slice 4" in message


def test_a_patient_folder_without_the_experts_masks_is_read(acdc_root, tmp_path):
    """Info.cfg and the frames are a patient folder; the masks are the expert's, which a new patient has not."""
    source = acdc_root / "patient001"
    folder = tmp_path / "patient001"
    folder.mkdir()
    for path in source.iterdir():
        if not path.name.endswith(("_gt.nii.gz", "_4d.nii.gz")):
            shutil.copy(path, folder / path.name)
    study = load_study(folder)
    for index, phase in enumerate(("ED", "ES")):
        np.testing.assert_array_equal(study.image[index], load_frame(source, phase).image)


def test_a_label_map_given_as_the_image_is_refused(acdc_root, tmp_path, capsys):
    message = segment_refused(capsys, tmp_path, acdc_root / "patient001/patient001_frame01_gt.nii.gz")
    assert "label map" in message
    # ... also as a later frame, beside the image (frames given as files): the EF came from a label map
    patient = acdc_root / "patient001"
    message = segment_refused(capsys, tmp_path, patient / "patient001_frame01.nii.gz",
                              patient / "patient001_frame12_gt.nii.gz")  # fmt: skip
    assert message.startswith(f"cmrseg: error: {patient / 'patient001_frame12_gt.nii.gz'} holds only 4 distinct")


# ------------------------------------------------------------------------------------------ files and options


def test_overwrite_never_replaces_a_file_the_user_made(oblique_phantom, tmp_path, capsys):
    """Refused before any work, and the user's file is as it was, read-only or not."""
    path = write_study(oblique_phantom.study, tmp_path / "cine.nii.gz")
    out = tmp_path / "out"
    out.mkdir()
    (out / "measures.csv").write_text("my own measurements\n")
    code = main(["segment", str(path), "--out", str(out), "--overwrite"])
    err = capsys.readouterr().err
    assert code == 2 and "holds measures.csv, which no CMRSeg run wrote there" in err.splitlines()[-1]
    assert "Segmenting" not in err  # refused before the network ran
    assert sorted(p.name for p in out.iterdir()) == ["measures.csv"]
    assert (out / "measures.csv").read_text() == "my own measurements\n"


def test_a_malformed_info_cfg_is_refused(acdc_root, tmp_path, capsys):
    patient = tmp_path / "patient001"
    shutil.copytree(acdc_root / "patient001", patient)
    (patient / "Info.cfg").write_text("ED: one\nES: 12\n")
    assert "1-based frame number" in segment_refused(capsys, tmp_path, patient)
    (patient / "Info.cfg").write_text("ED: 1\nES: 12\nHeight: tall\n")
    assert "Height" in segment_refused(capsys, tmp_path, patient)
    (patient / "Info.cfg").write_text("ED: 1\nES: 1\n")  # was found only after the work, at the files' names
    assert "names frame 1 as both ED and ES" in segment_refused(capsys, tmp_path, patient)


def test_two_folders_are_refused_as_such(acdc_root, tmp_path, capsys):
    message = segment_refused(capsys, tmp_path, acdc_root / "patient001", acdc_root / "patient002")
    assert "give one DICOM or ACDC folder at a time" in message


def test_frames_as_files_of_one_name_are_refused_before_any_work(acdc_root, tmp_path, capsys):
    for folder, frame in (("a", "01"), ("b", "12")):
        (tmp_path / folder).mkdir()
        shutil.copy(acdc_root / f"patient001/patient001_frame{frame}.nii.gz", tmp_path / folder / "frame.nii.gz")
    message = segment_refused(capsys, tmp_path, tmp_path / "a" / "frame.nii.gz", tmp_path / "b" / "frame.nii.gz")
    assert "would write the same frame_seg.nii.gz" in message


def test_dicom_seg_and_sr_of_one_frame_are_refused_before_any_work(tmp_path, capsys):
    message = segment_refused(capsys, tmp_path, tmp_path, extra=("--ed", "0", "--es", "0", "--dicom-sr"))
    assert "hold an ED and an ES frame: give two different frames" in message


@pytest.mark.parametrize("argv", [["segment", "x"], ["segment", "x", "--out", "y", "--basal-rule", "75"], ["bogus"],
                                  ["review", "x", "--port", "99999"], ["benchmark", "--repeats", "0"],
                                  ["phantom", "--out", "y", "--seed", "-1"]])
def test_a_command_line_mistake_is_one_error_line(capsys, argv):
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and err.startswith("cmrseg: error: ") and err.count("\n") == 1, err


def test_acdc_frames_or_masks_off_each_others_grid_are_refused(acdc_root, tmp_path, capsys):
    sitk = pytest.importorskip("SimpleITK")
    patient = tmp_path / "patient002"
    shutil.copytree(acdc_root / "patient002", patient)

    def moved(name: str, **change) -> None:  # the same voxels, placed elsewhere
        image = sitk.ReadImage(str(patient / name))
        if "origin" in change:
            image.SetOrigin(tuple(o + d for o, d in zip(image.GetOrigin(), change["origin"], strict=True)))
        if "spacing" in change:
            image.SetSpacing(change["spacing"])
        sitk.WriteImage(image, str(patient / name))

    for name in ("patient002_frame12.nii.gz", "patient002_frame12_gt.nii.gz"):
        moved(name, origin=(0.0, 0.0, 10.0))  # ES, with its mask, one slice off ED
    assert "are not on one grid" in segment_refused(capsys, tmp_path, patient)
    moved("patient002_frame12_gt.nii.gz", origin=(0.0, 0.0, -10.0))  # the mask back, its image still off
    with pytest.raises(CMRSegError, match="patient002_frame12_gt.nii.gz does not match its image's grid"):
        load_frame(patient, "ES")  # where the expert's mask is read (evaluation); segmenting reads none
    moved("patient002_frame01_gt.nii.gz", spacing=(1.0, 1.0, 10.0))
    with pytest.raises(CMRSegError, match="does not match its image's grid"):
        load_frame(patient, "ED")


def test_the_same_file_twice_is_refused(acdc_root, tmp_path, capsys):
    image = acdc_root / ACDC_ED
    message = segment_refused(capsys, tmp_path, image, image)
    assert "given twice" in message and ".cmrseg" not in message


@pytest.mark.parametrize("option, value, expected", [
    ("--height", "1.75", "looks like metres: give 175"), ("--height", "nan", "plausible height"),
    ("--height", "0", "plausible height"), ("--weight", "80000", "looks like grams"), ("--weight", "-3", "weight"),
])
def test_implausible_height_or_weight_is_refused(acdc_root, tmp_path, capsys, option, value, expected):
    assert expected in segment_refused(capsys, tmp_path, acdc_root / "patient001", extra=(option, value))


def test_output_locations_that_cannot_work_are_refused_before_any_work(acdc_root, tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("mine")
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    cases = [(a_file, "existing file"), (dangling, "does not exist"), (tmp_path / "no" / "parent", "parent folder"),
             ("/proc/cmrseg-out", "cannot write")]
    for out, expected in cases:
        message = refused(capsys, "segment", acdc_root / "patient001", "--out", out)
        assert expected in message
    assert a_file.read_text() == "mine"


def test_a_checkpoint_declaring_a_huge_network_is_refused_without_allocating(tmp_path, capsys):
    import torch

    metadata = {"format": "cmrseg-checkpoint", "version": 1,
                "architecture": {"name": "dense_unet", "args": {"base_filters": 4096, "depth": 5}}}
    import json

    torch.save({"format": "cmrseg-checkpoint", "version": 1, "metadata": json.dumps(metadata),
                "state_dict": {"w": torch.zeros(1)}}, tmp_path / "huge.pt")
    started = time.perf_counter()
    message = refused(capsys, "benchmark", "--models", tmp_path / "huge.pt")
    assert "parameters" in message or "do not fit" in message
    assert time.perf_counter() - started < 30


def test_benchmark_with_a_bad_model_file_is_one_error_line(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    assert "not a CMRSeg model checkpoint" in refused(capsys, "benchmark", "--models", bad)


def test_warnings_are_one_line_without_source(oblique_phantom, tmp_path):
    import subprocess
    import sys

    study = _cine(oblique_phantom)
    study.image[1, 4, 50, 60] = np.inf
    path = write_study(study, tmp_path / "cine.nrrd")
    done = subprocess.run([sys.executable, "-m", "cmrseg", "info", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    err = [line for line in done.stderr.splitlines() if not line.startswith("PROGRESS")]
    assert len(err) == 1 and err[0].startswith("cmrseg: warning: ") and "non-finite voxel" in err[0], err


@pytest.mark.slow
def test_a_single_nan_voxel_gives_the_clean_result(oblique_phantom, model_path, tmp_path):
    import json

    study = _cine(oblique_phantom)
    clean = write_study(study, tmp_path / "clean.nrrd")
    study.image[1, 4, 50, 60] = np.nan
    damaged = write_study(study, tmp_path / "damaged.nrrd")
    results = []
    for path in (clean, damaged):
        assert main(["segment", str(path), "--out", str(tmp_path / path.stem), "--model", str(model_path)]) == 0
        results.append(json.loads((tmp_path / path.stem / "measures.json").read_text())["study"])
    for key in ("lv_edv_ml", "lv_esv_ml", "lv_ef_pct", "rv_ef_pct"):
        assert results[1][key] == pytest.approx(results[0][key], abs=0.5)


def test_ed_equal_to_es_says_that_sv_and_ef_are_not_computed(acdc_root, model_path, tmp_path, capsys):
    assert main(["segment", str(acdc_root / "patient001"), "--ed", "0", "--es", "0", "--out",
                 str(tmp_path / "out"), "--model", str(model_path)]) == 0
    assert "stroke volume and EF are not" in capsys.readouterr().err
