"""Test helpers: one Enhanced MR Image Storage file (multi-frame, functional groups) made from a folder of
one-image MR files, frames in a given order, as newer scanners store a cine; and the check of a DICOM SEG
against such a file's own functional groups."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from cmrseg import labels
from cmrseg.io.dicom_cine import read_dicom_cine
from cmrseg.io.dicom_write import write_dicom_cine
from cmrseg.phantom import make_phantom

ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"
FILE_LEVEL = ("SpecificCharacterSet", "StudyDate", "StudyTime", "Modality", "Manufacturer", "PatientName", "PatientID",
              "PatientBirthDate", "PatientSex", "PatientAge", "PatientSize", "PatientWeight", "StudyInstanceUID",
              "SeriesInstanceUID", "FrameOfReferenceUID", "StudyID", "SeriesNumber", "SeriesDescription",
              "SamplesPerPixel", "PhotometricInterpretation", "Rows", "Columns", "BitsAllocated", "BitsStored",
              "HighBit", "PixelRepresentation")


def _item(**values) -> Dataset:
    item = Dataset()
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def enhanced_from_classic(classic_folder: Path, target: Path, order: list[int] | None = None,
                          shared_geometry: bool = True) -> Path:  # fmt: skip
    """Write the one-image files of ``classic_folder`` as frames of one enhanced file (in ``order`` of the
    files sorted by name, default as sorted), with their pixels, geometry, trigger times and rescale; the
    orientation and pixel measures in the shared functional group, or (``shared_geometry=False``, as Philips
    writes them) repeated in every frame's."""
    files = sorted(p for p in classic_folder.iterdir() if p.suffix == ".dcm")
    frames = [pydicom.dcmread(files[i]) for i in (order if order is not None else range(len(files)))]
    first = frames[0]
    ds = Dataset()
    for keyword in FILE_LEVEL:
        if keyword in first:
            setattr(ds, keyword, first.data_element(keyword).value)
    ds.SOPClassUID, ds.SOPInstanceUID, ds.InstanceNumber = ENHANCED_MR, generate_uid(), 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.NumberOfFrames = len(frames)
    geometry = {"PixelMeasuresSequence": [_item(PixelSpacing=first.PixelSpacing, SliceThickness=first.SliceThickness)],
                "PlaneOrientationSequence": [_item(ImageOrientationPatient=first.ImageOrientationPatient)]}
    ds.SharedFunctionalGroupsSequence = [_item(**(geometry if shared_geometry else {}))]
    ds.PerFrameFunctionalGroupsSequence = [_item(
        **({} if shared_geometry else geometry),
        PlanePositionSequence=[_item(ImagePositionPatient=frame.ImagePositionPatient)],
        CardiacSynchronizationSequence=[_item(NominalCardiacTriggerDelayTime=frame.TriggerTime)],
        PixelValueTransformationSequence=[_item(RescaleSlope=frame.RescaleSlope,
                                                RescaleIntercept=frame.RescaleIntercept, RescaleType="US")],
        FrameContentSequence=[_item(StackID="1", InStackPositionNumber=1, TemporalPositionIndex=1)],
    ) for frame in frames]  # fmt: skip
    ds.PixelData = b"".join(frame.PixelData for frame in frames)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ENHANCED_MR, ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    target.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(target, enforce_file_format=True)
    return target


def enhanced_cine(tmp_path, seed: int, frames: int = 4, slices: int = 6, shared_geometry: bool = True):
    """A phantom cine as one enhanced file, its frames shuffled; returns (phantom, study, the file's path)."""
    phantom = make_phantom(seed=seed, frames=frames, slices=slices, matrix=(120, 128), oblique=True)
    write_dicom_cine(phantom.study, tmp_path / "classic")
    order = list(range(frames * slices))
    random.Random(seed).shuffle(order)
    path = enhanced_from_classic(tmp_path / "classic", tmp_path / "enhanced" / "cine.dcm", order, shared_geometry)
    return phantom, read_dicom_cine(tmp_path / "enhanced"), path


def frame_geometry(path) -> list[tuple[tuple[float, ...], float]]:
    """(ImagePositionPatient, NominalCardiacTriggerDelayTime) of every frame of an enhanced file, from its
    per-frame functional groups: the file's own word on where and when each frame lies."""
    header = pydicom.dcmread(path, stop_before_pixels=True)
    return [(tuple(float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient),
             float(item.CardiacSynchronizationSequence[0].NominalCardiacTriggerDelayTime))
            for item in header.PerFrameFunctionalGroupsSequence]  # fmt: skip


def assert_seg_on_its_frames(seg_path, source_path, labelmap: np.ndarray, frames: list[int], time_ms: float):
    """Every segment reads back voxel for voxel through the source frames, and every frame of the SEG
    references one source frame of the right phase at its own position."""
    import highdicom as hd

    seg = hd.seg.segread(seg_path)
    uid = pydicom.dcmread(source_path, stop_before_pixels=True).SOPInstanceUID
    for segment in (labels.RV, labels.MYO, labels.LV):
        masks = seg.get_pixels_by_source_frame(uid, source_frame_numbers=frames, segment_numbers=[segment],
                                               assert_missing_frames_are_empty=True)  # fmt: skip
        np.testing.assert_array_equal(masks[..., 0].astype(bool), labelmap == segment)
    geometry = frame_geometry(source_path)
    for item in seg.PerFrameFunctionalGroupsSequence:
        (reference,) = item.DerivationImageSequence[0].SourceImageSequence
        position, trigger = geometry[int(reference.ReferencedFrameNumber) - 1]
        np.testing.assert_allclose(position, [float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient])
        assert trigger == pytest.approx(time_ms)
