"""Hostile and careless DICOM inputs: each is refused with one ``cmrseg: error:`` line, exit 2, nothing written,
or read as the README says. Inputs are the synthetic phantom written as DICOM and edited."""

from __future__ import annotations

import pydicom
import pytest
from dicom_edit import edit
from refusals import segment_refused

from cmrseg.io.dicom_scan import DicomReadWarning
from cmrseg.io.dicom_write import write_dicom_cine
from cmrseg.io.load import load_study
from cmrseg.validate import InputWarning


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
