"""Enhanced (multi-frame) MR DICOM: a cine in one file reads as the same cine in one-image files."""

from __future__ import annotations

import random

import numpy as np
import pydicom
import pytest
from enhanced_dicom import enhanced_from_classic

from cmrseg.errors import CMRSegError
from cmrseg.io.dicom_cine import DicomReadWarning, read_dicom_cine
from cmrseg.io.dicom_write import write_dicom_cine
from cmrseg.phantom import make_phantom


def test_an_enhanced_multiframe_cine_reads_as_its_one_image_files_do(tmp_path):
    """Newer scanners store the cine as one Enhanced MR file: every frame's position, trigger delay and rescale
    in its functional groups. Frames in any order in the file give the study of the one-image files, voxel for
    voxel, each slice knowing its frame in the file (for the DICOM SEG, test_dicom_seg_enhanced.py)."""
    phantom = make_phantom(seed=4, frames=5, slices=6, matrix=(96, 112), oblique=True)
    write_dicom_cine(phantom.study, tmp_path / "classic")
    order = list(range(5 * 6))
    random.Random(0).shuffle(order)
    enhanced_from_classic(tmp_path / "classic", tmp_path / "enhanced" / "cine.dcm", order)
    classic, enhanced = read_dicom_cine(tmp_path / "classic"), read_dicom_cine(tmp_path / "enhanced")
    np.testing.assert_array_equal(enhanced.image, classic.image)
    assert enhanced.spacing == classic.spacing and enhanced.origin == classic.origin
    np.testing.assert_array_equal(enhanced.direction, classic.direction)
    np.testing.assert_array_equal(enhanced.frame_times_ms, classic.frame_times_ms)
    assert enhanced.patient == classic.patient
    assert classic.slice_frames is None and {name for phase in enhanced.slice_files for name in phase} == {"cine.dcm"}
    names = sorted(path.name for path in (tmp_path / "classic").iterdir() if path.suffix == ".dcm")
    frame_of = {names[index]: place + 1 for place, index in enumerate(order)}  # where each image went in the file
    assert enhanced.slice_frames == [[frame_of[name] for name in phase] for phase in classic.slice_files]


def test_enhanced_files_of_one_frame_each_read_as_the_one_image_files_do(tmp_path):
    """Some scanners export an Enhanced MR cine one frame per file, the geometry still in the functional groups."""
    import shutil

    phantom = make_phantom(seed=6, frames=3, slices=5, matrix=(96, 112), oblique=True)
    paths = write_dicom_cine(phantom.study, tmp_path / "classic")
    for i, path in enumerate(paths):
        alone = tmp_path / "alone" / str(i)
        alone.mkdir(parents=True)
        shutil.copy(path, alone / path.name)
        enhanced_from_classic(alone, tmp_path / "enhanced" / f"frame{i}.dcm")
    classic, enhanced = read_dicom_cine(tmp_path / "classic"), read_dicom_cine(tmp_path / "enhanced")
    np.testing.assert_array_equal(enhanced.image, classic.image)
    assert enhanced.spacing == classic.spacing and enhanced.origin == classic.origin
    np.testing.assert_array_equal(enhanced.frame_times_ms, classic.frame_times_ms)
    assert {frame for phase in enhanced.slice_frames for frame in phase} == {1}
    # Without trigger delays (zeroed), the files' own InstanceNumbers order the phases.
    for i, path in enumerate(paths):
        target = tmp_path / "enhanced" / f"frame{i}.dcm"
        ds = pydicom.dcmread(target)
        ds.InstanceNumber = pydicom.dcmread(path, stop_before_pixels=True).InstanceNumber
        ds.PerFrameFunctionalGroupsSequence[0].CardiacSynchronizationSequence[0].NominalCardiacTriggerDelayTime = 0
        ds.save_as(target)
    with pytest.warns(DicomReadWarning, match="TriggerTime 0"):
        np.testing.assert_array_equal(read_dicom_cine(tmp_path / "enhanced").image, classic.image)


def test_a_multiframe_file_without_frame_geometry_is_refused(tmp_path):
    import pydicom

    phantom = make_phantom(seed=5, frames=3, slices=6, matrix=(96, 112))
    write_dicom_cine(phantom.study, tmp_path / "classic")
    path = enhanced_from_classic(tmp_path / "classic", tmp_path / "multi" / "cine.dcm")
    ds = pydicom.dcmread(path)
    del ds.PerFrameFunctionalGroupsSequence  # frames without their positions: not a readable cine
    ds.save_as(path)
    with pytest.raises(CMRSegError, match=r"(?s)No cine short-axis series.*\(1 instances, 0 slice positions"):
        read_dicom_cine(tmp_path / "multi")
