"""Test helper: one Enhanced MR Image Storage file (multi-frame, functional groups) made from a folder of
one-image MR files, frames in a given order, as newer scanners store a cine."""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

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


def enhanced_from_classic(classic_folder: Path, target: Path, order: list[int] | None = None) -> Path:
    """Write the one-image files of ``classic_folder`` as frames of one enhanced file (in ``order`` of the
    files sorted by name, default as sorted), with their pixels, geometry, trigger times and rescale."""
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
    ds.SharedFunctionalGroupsSequence = [_item(
        PixelMeasuresSequence=[_item(PixelSpacing=first.PixelSpacing, SliceThickness=first.SliceThickness)],
        PlaneOrientationSequence=[_item(ImageOrientationPatient=first.ImageOrientationPatient)])]  # fmt: skip
    ds.PerFrameFunctionalGroupsSequence = [_item(
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
