"""Writing a cine study as a multi-file DICOM MR series, and reading it back (our reader, pydicom, GDCM)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage

from cmrseg.errors import CMRSegError
from cmrseg.io.dicom_cine import read_dicom_cine
from cmrseg.io.dicom_write import rescale_for, write_dicom_cine
from cmrseg.io.study import PatientInfo, Study
from cmrseg.phantom import make_phantom


def rotation(degrees: float) -> np.ndarray:
    a = np.deg2rad(degrees)
    about_x = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    about_z = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    return about_z @ about_x


def small_study(direction: np.ndarray | None = None, image: np.ndarray | None = None) -> Study:
    """Non-square pixels and an odd matrix, so that row/column mix-ups show."""
    rng = np.random.default_rng(5)
    return Study(
        image=rng.uniform(0, 2.5, size=(3, 4, 7, 5)).astype(np.float32) if image is None else image,
        spacing=(1.4, 1.65, 9.5),
        origin=(-80.25, 40.5, 12.0),
        direction=np.eye(3) if direction is None else direction,
        frame_times_ms=np.array([0.0, 33.5, 67.25]),
        patient=PatientInfo(height_cm=172.0, weight_kg=68.5, sex="F", age_years=47.0, patient_id="P-17"),
    )


def assert_same_study(read: Study, study: Study, image_atol: float) -> None:
    assert read.image.shape == study.image.shape
    np.testing.assert_allclose(read.image, study.image, rtol=0, atol=image_atol)
    np.testing.assert_allclose(read.spacing, study.spacing, rtol=1e-9)
    np.testing.assert_allclose(read.origin, study.origin, atol=1e-6)
    np.testing.assert_allclose(read.direction, study.direction, atol=1e-9)
    np.testing.assert_allclose(read.frame_times_ms, study.frame_times_ms, atol=1e-9)
    for field in ("height_cm", "weight_kg", "sex", "age_years", "patient_id"):
        assert getattr(read.patient, field) == getattr(study.patient, field), field


@pytest.mark.parametrize("oblique", [False, True])
def test_phantom_round_trips_through_dicom_and_the_reader(oblique, tmp_path):
    study = make_phantom(seed=2, frames=4, slices=6, matrix=(120, 128), oblique=oblique).study
    paths = write_dicom_cine(study, tmp_path / "cine")
    assert len(paths) == 4 * 6 and all(p.is_file() for p in paths)
    slope, _ = rescale_for(study.image)
    assert slope / 2 < 1e-5 * float(study.image.max())  # within 1e-5 of the range, far below 1e-3
    read = read_dicom_cine(tmp_path / "cine")
    assert_same_study(read, study, image_atol=slope / 2 * 1.001 + 1e-6)


def test_non_square_pixels_and_rotation_round_trip(tmp_path):
    study = small_study(rotation(35.0))
    write_dicom_cine(study, tmp_path / "cine")
    slope, _ = rescale_for(study.image)
    assert_same_study(read_dicom_cine(tmp_path / "cine"), study, image_atol=slope / 2 * 1.001 + 1e-6)


def test_integer_images_are_stored_exactly(tmp_path):
    image = np.random.default_rng(1).integers(0, 4000, size=(3, 4, 7, 5)).astype(np.float32)
    study = small_study(image=image)
    assert rescale_for(image) == (1.0, 0.0)
    write_dicom_cine(study, tmp_path / "cine")
    np.testing.assert_array_equal(read_dicom_cine(tmp_path / "cine").image, image)


def test_negative_values_get_an_intercept_below_the_minimum(tmp_path):
    image = np.random.default_rng(2).normal(0, 100, size=(3, 4, 7, 5)).astype(np.float32)
    slope, intercept = rescale_for(image)
    assert intercept <= image.min() and intercept + slope * 65535 >= image.max()
    assert float(str(slope)) == slope and len(f"{slope:.10g}") <= 16  # exact as a DICOM DS
    write_dicom_cine(small_study(image=image), tmp_path / "cine")
    np.testing.assert_allclose(read_dicom_cine(tmp_path / "cine").image, image, atol=slope / 2 * 1.001 + 1e-4)


def test_files_are_valid_mr_image_storage_with_the_cine_attributes(tmp_path):
    study = small_study(rotation(20.0))
    paths = write_dicom_cine(
        study, tmp_path / "cine", series_description="SAX cine", patient_name="Doe^Jane", series_number=7
    )
    datasets = [pydicom.dcmread(p) for p in paths]
    assert all(Path(p).read_bytes()[128:132] == b"DICM" for p in paths)
    first = datasets[0]
    assert first.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert first.file_meta.MediaStorageSOPClassUID == MRImageStorage == first.SOPClassUID
    assert first.Modality == "MR" and first.SeriesDescription == "SAX cine" and first.PatientName == "Doe^Jane"
    assert first.SeriesNumber == 7 and first.PatientID == "P-17"
    assert (first.PatientSex, first.PatientAge) == ("F", "047Y")
    assert float(first.PatientSize) == pytest.approx(1.72) and float(first.PatientWeight) == pytest.approx(68.5)
    assert (first.Rows, first.Columns) == (7, 5)
    assert [float(v) for v in first.PixelSpacing] == [1.65, 1.4]  # [row spacing (y), column spacing (x)]
    assert float(first.SliceThickness) == float(first.SpacingBetweenSlices) == 9.5
    assert (first.BitsAllocated, first.PixelRepresentation, first.SamplesPerPixel) == (16, 0, 1)
    np.testing.assert_allclose([float(v) for v in first.ImageOrientationPatient], study.direction[:, :2].T.ravel())
    for uid in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
        assert len({ds[uid].value for ds in datasets}) == 1
    sop_uids = {ds.SOPInstanceUID for ds in datasets}
    assert len(sop_uids) == len(datasets) and {ds.file_meta.MediaStorageSOPInstanceUID for ds in datasets} == sop_uids
    assert sorted(ds.InstanceNumber for ds in datasets) == list(range(1, 13))
    for ds in datasets:
        z, t = (ds.InstanceNumber - 1) // 3, (ds.InstanceNumber - 1) % 3
        expected = np.asarray(study.origin) + study.direction[:, 2] * z * 9.5
        np.testing.assert_allclose([float(v) for v in ds.ImagePositionPatient], expected, atol=1e-6)
        assert float(ds.TriggerTime) == study.frame_times_ms[t] and ds.CardiacNumberOfImages == 3
        np.testing.assert_allclose(
            ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept), study.image[t, z], atol=1e-4
        )


def test_gdcm_reads_the_same_geometry(tmp_path):
    """An independent reader (GDCM through SimpleITK) agrees on the slice geometry."""
    study = small_study(rotation(-25.0))
    paths = write_dicom_cine(study, tmp_path / "cine")
    image = sitk.ReadImage(str(paths[2 * 3 + 1]))  # slice 2, phase 1
    np.testing.assert_allclose(image.GetSpacing()[:2], study.spacing[:2])
    np.testing.assert_allclose(image.GetOrigin(), study.index_to_lps([0, 0, 2]), atol=1e-6)
    np.testing.assert_allclose(np.reshape(image.GetDirection(), (3, 3))[:, :2], study.direction[:, :2], atol=1e-9)
    np.testing.assert_allclose(sitk.GetArrayFromImage(image)[0], study.image[1, 2], atol=1e-4)


def test_refuses_a_non_empty_folder_unless_overwrite(tmp_path):
    study = small_study()
    folder = tmp_path / "cine"
    first = write_dicom_cine(study, folder)
    with pytest.raises(CMRSegError, match="not empty"):
        write_dicom_cine(study, folder)
    assert write_dicom_cine(study, folder, overwrite=True) == first
    (tmp_path / "note.txt").write_text("mine")
    with pytest.raises(CMRSegError, match="is a file"):
        write_dicom_cine(study, tmp_path / "note.txt", overwrite=True)
    assert (tmp_path / "note.txt").read_text() == "mine"


def test_refuses_a_left_handed_direction(tmp_path):
    with pytest.raises(CMRSegError, match="left-handed"):
        write_dicom_cine(small_study(np.diag([1.0, 1.0, -1.0])), tmp_path / "cine")
    assert not (tmp_path / "cine").exists()


def test_reports_progress(tmp_path):
    calls = []
    write_dicom_cine(small_study(), tmp_path / "cine", progress=lambda done, total, what: calls.append((done, total)))
    assert calls[-1] == (12, 12) and len(calls) == 12


def test_refuses_an_image_with_nan(tmp_path):
    image = small_study().image.copy()
    image[1, 2, 3, 4] = np.nan
    with pytest.raises(CMRSegError, match="NaN"):
        write_dicom_cine(small_study(image=image), tmp_path / "cine")
