"""DICOM SEG of a frame's label map: read back with highdicom and pydicom, it holds the same voxels on the
same source images, with the segments' names and codes."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

hd = pytest.importorskip("highdicom")

from cmrseg import labels  # noqa: E402
from cmrseg.errors import CMRSegError  # noqa: E402
from cmrseg.io.dicom_cine import read_dicom_cine  # noqa: E402
from cmrseg.io.dicom_seg import check_study_for_seg, write_dicom_seg  # noqa: E402
from cmrseg.io.dicom_write import write_dicom_cine  # noqa: E402
from cmrseg.phantom import make_phantom  # noqa: E402

PASSED = {"status": "pass", "flags": []}  # a quality check without findings


@pytest.mark.parametrize("oblique", [False, True])
def test_a_seg_round_trips_onto_its_source_images(oblique, tmp_path):
    phantom = make_phantom(seed=5, frames=3, slices=6, matrix=(120, 128), oblique=oblique)
    write_dicom_cine(phantom.study, tmp_path / "dicom")
    study = read_dicom_cine(tmp_path / "dicom")
    frame = 1
    labelmap = phantom.labels[frame]
    path = write_dicom_seg(labelmap, study.source, study.slice_files[frame], tmp_path / "ed.seg.dcm", "test",
                           phase="ED")
    seg = hd.seg.segread(path)
    assert seg.Modality == "SEG" and seg.SegmentationType == "BINARY"
    # the phase named where a PACS lists the series, so that the ED and ES SEGs are told apart
    assert seg.SeriesDescription == "CMRSeg automatic segmentation at ED"
    assert seg.ContentDescription == "CMRSeg LV, RV and myocardium at ED"
    assert [s.SegmentLabel for s in seg.SegmentSequence] == [s.name for s in labels.STRUCTURES]
    codes = [s.SegmentedPropertyTypeCodeSequence[0].CodeValue for s in seg.SegmentSequence]
    assert codes == [s.type[0] for s in labels.STRUCTURES]
    assert seg.SegmentSequence[0].SegmentAlgorithmType == "AUTOMATIC"
    # Every voxel back on its source image, in the study's slice order.
    sources = [pydicom.dcmread(tmp_path / "dicom" / name) for name in study.slice_files[frame]]
    uids = [ds.SOPInstanceUID for ds in sources]
    for segment in (1, 2, 3):
        masks = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, segment_numbers=[segment])
        np.testing.assert_array_equal(masks[..., 0].astype(bool), labelmap == segment)


def test_a_seg_beside_its_cine_is_no_series_to_read(tmp_path):
    """A DICOM root holding CMRSeg's SEGs (an export from a PACS after cmrseg send): they were read as cine
    series (their segments as phases) and a batch failed on them."""
    from cmrseg.io.dicom_scan import DicomReadWarning, scan_dicom_folder

    phantom = make_phantom(seed=5, frames=3, slices=6, matrix=(120, 128))
    write_dicom_cine(phantom.study, tmp_path / "dicom")
    study = read_dicom_cine(tmp_path / "dicom")
    (tmp_path / "dicom" / "result").mkdir()
    write_dicom_seg(phantom.labels[0], study.source, study.slice_files[0],
                    tmp_path / "dicom" / "result" / "ed.seg.dcm", "test", phase="ED")
    with pytest.warns(DicomReadWarning, match=r"hold no image series \(a segmentation, say\): .*ed\.seg\.dcm"):
        series = scan_dicom_folder(tmp_path / "dicom")
    assert [s.series_uid for s in series] == list(study.series_uids)
    np.testing.assert_array_equal(read_dicom_cine(tmp_path / "dicom").image, study.image)


def test_a_corrected_seg_is_semi_automatic_and_non_dicom_studies_are_refused(tmp_path):
    phantom = make_phantom(seed=6, frames=2, slices=6, matrix=(120, 128))
    write_dicom_cine(phantom.study, tmp_path / "dicom")
    study = read_dicom_cine(tmp_path / "dicom")
    path = write_dicom_seg(phantom.labels[0], study.source, study.slice_files[0], tmp_path / "c.seg.dcm", "test",
                           corrected=True)
    assert hd.seg.segread(path).SegmentSequence[2].SegmentAlgorithmType == "SEMIAUTOMATIC"
    with pytest.raises(CMRSegError, match="read from DICOM"):
        check_study_for_seg(phantom.study)
    with pytest.raises(CMRSegError, match="does not fit"):
        write_dicom_seg(phantom.labels[0][1:], study.source, study.slice_files[0], tmp_path / "x.seg.dcm", "t")


def test_segment_writes_ed_and_es_segs_on_request(model_path, tmp_path, capsys):
    from cmrseg.cli import main
    from cmrseg.io.volume_files import read_volume_file, write_study

    phantom = make_phantom(seed=7, frames=4, slices=8, matrix=(120, 128))
    write_dicom_cine(phantom.study, tmp_path / "dicom")
    out = tmp_path / "out"
    assert main(["segment", str(tmp_path / "dicom"), "--out", str(out), "--model", str(model_path), "--dicom-seg",
                 "--dicom-sr", "--report", "none"]) == 0  # fmt: skip
    assert "copy attributes" not in capsys.readouterr().err  # highdicom's notes on every attribute stay quiet
    study = read_dicom_cine(tmp_path / "dicom")
    import json

    measures = json.loads((out / "measures.json").read_text())
    for phase in ("ED", "ES"):
        frame = measures[f"{phase.lower()}_frame"]
        seg = hd.seg.segread(out / f"dicom_{phase}.seg.dcm")
        uids = [pydicom.dcmread(tmp_path / "dicom" / n).SOPInstanceUID for n in study.slice_files[frame]]
        written = read_volume_file(out / measures["frames"][str(frame)]["file"]).image[0]
        lv = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, segment_numbers=[labels.LV])
        np.testing.assert_array_equal(lv[..., 0].astype(bool), written == labels.LV)
    assert hd.sr.srread(out / "dicom_measures.sr.dcm").Modality == "SR"
    write_study(phantom.study, tmp_path / "cine.nii.gz")
    assert main(["segment", str(tmp_path / "cine.nii.gz"), "--out", str(tmp_path / "n"), "--model",
                 str(model_path), "--dicom-seg"]) == 2  # fmt: skip
    assert not (tmp_path / "n").exists()


def test_anonymised_dates_that_do_not_parse_are_blanked_not_fatal(tmp_path):
    phantom = make_phantom(seed=9, frames=2, slices=6, matrix=(120, 128))
    write_dicom_cine(phantom.study, tmp_path / "dicom")
    for path in (tmp_path / "dicom").iterdir():  # as in the Sunnybrook data
        ds = pydicom.dcmread(path)
        ds.PatientBirthDate = "00000000"
        ds.save_as(path)
    study = read_dicom_cine(tmp_path / "dicom")
    path = write_dicom_seg(phantom.labels[0], study.source, study.slice_files[0], tmp_path / "a.seg.dcm", "x" * 100)
    seg = hd.seg.segread(path)
    assert seg.PatientBirthDate == "" and seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence


def test_sources_without_patient_and_study_attributes_get_a_seg_and_an_sr_without_thickness_a_clear_refusal(
        tmp_path):
    from cmrseg.io.dicom_sr import write_dicom_sr

    phantom = make_phantom(seed=9, frames=2, slices=6, matrix=(120, 128))
    write_dicom_cine(phantom.study, tmp_path / "dicom")
    stripped = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime", "StudyID",
                "AccessionNumber")
    for path in (tmp_path / "dicom").iterdir():  # a converter that left out the type 2 attributes
        ds = pydicom.dcmread(path)
        for keyword in stripped:
            if keyword in ds:
                delattr(ds, keyword)
        ds.save_as(path)
    study = read_dicom_cine(tmp_path / "dicom")
    seg = hd.seg.segread(write_dicom_seg(phantom.labels[0], study.source, study.slice_files[0],
                                         tmp_path / "a.seg.dcm", "test"))
    assert seg.PatientID == "" and seg.StudyDate == ""  # unknown, as the sources say by leaving them out
    assert write_dicom_sr({"lv_edv_ml": 100.0}, study.source, study.slice_files[0], study.slice_files[1],
                          tmp_path / "m.sr.dcm", "test", PASSED).is_file()
    for path in (tmp_path / "dicom").iterdir():
        ds = pydicom.dcmread(path)
        del ds.SliceThickness
        ds.save_as(path)
    for write in (lambda: check_study_for_seg(study), lambda: write_dicom_seg(
            phantom.labels[0], study.source, study.slice_files[0], tmp_path / "b.seg.dcm", "test")):
        with pytest.raises(CMRSegError, match="no SliceThickness, which a DICOM SEG must state"):
            write()
    assert not (tmp_path / "b.seg.dcm").exists()


def test_sources_without_thickness_still_get_an_sr_when_only_an_sr_is_asked_for(model_path, tmp_path, capsys):
    """The slice thickness is a SEG's requirement, not an SR's: --dicom-sr alone writes the SR; --dicom-seg is
    refused before any work, nothing written."""
    from cmrseg.cli import main

    phantom = make_phantom(seed=19, frames=3, slices=8, matrix=(120, 128))
    for path in write_dicom_cine(phantom.study, tmp_path / "dicom"):
        ds = pydicom.dcmread(path)
        del ds.SliceThickness
        ds.save_as(path)
    assert main(["segment", str(tmp_path / "dicom"), "--out", str(tmp_path / "sr"), "--model", str(model_path),
                 "--dicom-sr", "--report", "none"]) == 0  # fmt: skip
    assert hd.sr.srread(tmp_path / "sr" / "dicom_measures.sr.dcm").Modality == "SR"
    capsys.readouterr()
    assert main(["segment", str(tmp_path / "dicom"), "--out", str(tmp_path / "seg"), "--model", str(model_path),
                 "--dicom-seg", "--report", "none"]) == 2  # fmt: skip
    error = capsys.readouterr().err
    assert error.count("cmrseg: error:") == 1 and "no SliceThickness" in error and not (tmp_path / "seg").exists()


@pytest.mark.shared_data
def test_a_study_split_by_its_anonymisation_gets_no_seg(sunnybrook_root, tmp_path):
    """SCD0000201's 260 images each carry their own FrameOfReferenceUID: no SEG can share it."""
    study = read_dicom_cine(sunnybrook_root / "dicoms" / "SCD0000201")
    labelmap = np.zeros(study.image.shape[1:], dtype=np.uint8)
    with pytest.raises(CMRSegError, match="13 FrameOfReferenceUID values"):  # the 13 slices of one frame
        write_dicom_seg(labelmap, study.source, study.slice_files[0], tmp_path / "s.seg.dcm", "test")
    with pytest.raises(CMRSegError, match="260 FrameOfReferenceUID values"):  # all 20 frames
        check_study_for_seg(study)
    assert not (tmp_path / "s.seg.dcm").exists()


def test_the_parameters_as_a_dicom_sr_read_back(tmp_path):
    from cmrseg.io.dicom_sr import MEASUREMENTS, SCHEME, concept_name, write_dicom_sr

    phantom = make_phantom(seed=10, frames=3, slices=6, matrix=(120, 128))
    write_dicom_cine(phantom.study, tmp_path / "dicom")
    study = read_dicom_cine(tmp_path / "dicom")
    measures = {"lv_edv_ml": 151.25, "lv_esv_ml": 60.5, "lv_sv_ml": 90.75, "lv_ef_pct": 60.0, "rv_ef_pct": None,
                "lv_edv_index": 91.114, "bsa_m2": 1.66}
    path = write_dicom_sr(measures, study.source, study.slice_files[0], study.slice_files[1], tmp_path / "m.sr.dcm",
                          "test model", PASSED)  # fmt: skip
    document = pydicom.dcmread(path)
    assert document.Modality == "SR"
    found = {}
    for item in document.ContentSequence:  # TID 1500: imaging measurements -> measurement group -> numbers
        for sub in getattr(item, "ContentSequence", []):
            for leaf in getattr(sub, "ContentSequence", []):
                if leaf.ValueType == "NUM":
                    code = leaf.ConceptNameCodeSequence[0]
                    value = leaf.MeasuredValueSequence[0]
                    found[code.CodeValue] = (code.CodingSchemeDesignator, float(value.NumericValue),
                                             value.MeasurementUnitsCodeSequence[0].CodeValue)  # fmt: skip
    assert found == {  # standard LOINC concepts where DICOM has them (PS3.16), the private scheme otherwise
        "8821-1": ("LN", 151.25, "ml"), "8823-7": ("LN", 60.5, "ml"), "8811-2": ("LN", 60.0, "%"),
        MEASUREMENTS["lv_sv_ml"][1]: (SCHEME, 90.75, "ml"), "LVEDVI": (SCHEME, 91.114, "ml/m2"),
        "BSA": (SCHEME, 1.66, "m2"),  # the BSA behind the indexed values, whatever the header's height and weight
    }  # rv_ef_pct (null) is left out
    expected = {"lv_mass_ed_g": ("18087-7", "LN"), "rv_edv_ml": ("8822-9", "LN"), "rv_esv_ml": ("8824-5", "LN"),
                "rv_ef_pct": ("8818-7", "LN"), "rv_sv_ml": ("429483009", "SCT")}
    for key, (value, scheme) in expected.items():
        code = concept_name(key)
        assert (code.value, code.scheme_designator) == (value, scheme), key
    evidence = document.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    uids = {ref.ReferencedSOPInstanceUID for ref in evidence.ReferencedSOPSequence}
    files = study.slice_files[0] + study.slice_files[1]
    assert uids == {pydicom.dcmread(tmp_path / "dicom" / name).SOPInstanceUID for name in files}
    assert hd.sr.srread(path).SeriesDescription.startswith("CMRSeg automatic measurements")


def test_the_sr_leaves_out_what_the_quality_check_makes_unusable_and_names_it(tmp_path):
    """A PACS shows an SR's numbers without the report around them: a number the quality check calls not
    usable is not among them, and the SR says which were left out and why."""
    from cmrseg.io.dicom_sr import concept_name, write_dicom_sr

    phantom = make_phantom(seed=10, frames=3, slices=6, matrix=(120, 128))
    write_dicom_cine(phantom.study, tmp_path / "dicom")
    study = read_dicom_cine(tmp_path / "dicom")
    measures = {"lv_edv_ml": 151.25, "lv_ef_pct": 60.0, "rv_edv_ml": 41.0, "rv_esv_ml": 30.0, "rv_sv_ml": 11.0,
                "rv_ef_pct": 26.8}
    qc = {"status": "fail", "flags": [{"code": "rv_coverage", "severity": "fail", "phase": "ED", "slice": None,
                                       "message": "RV blood pool on 3 of the 10 slices that hold LV at ED"}]}
    document = pydicom.dcmread(write_dicom_sr(measures, study.source, study.slice_files[0], study.slice_files[1],
                                              tmp_path / "m.sr.dcm", "test", qc))  # fmt: skip
    numbers, evaluations = {}, {}
    for item in document.ContentSequence:
        for sub in getattr(item, "ContentSequence", []):
            for leaf in getattr(sub, "ContentSequence", []):
                name = leaf.ConceptNameCodeSequence[0].CodeValue
                if leaf.ValueType == "NUM":
                    numbers[name] = float(leaf.MeasuredValueSequence[0].NumericValue)
                elif leaf.ValueType == "CODE":
                    evaluations[name] = leaf.ConceptCodeSequence[0].CodeMeaning
    code = {key: concept_name(key).value for key in measures}
    # the RV's EDV, SV and EF were measured on an ED frame that lacks most of the RV; its ESV stands
    assert numbers == {code["lv_edv_ml"]: 151.25, code["lv_ef_pct"]: 60.0, code["rv_esv_ml"]: 30.0}
    assert evaluations == {"QC": "quality check fail", **{code[key]: "not usable (quality check: rv_coverage)"
                                                           for key in ("rv_edv_ml", "rv_sv_ml", "rv_ef_pct")}}


def test_a_stack_joined_from_one_series_per_slice_gets_an_sr_but_no_seg(tmp_path):
    """A SEG references the images of one series; an SR may reference several."""
    from cmrseg.io.dicom_seg import check_study_for_sr
    from cmrseg.io.dicom_sr import write_dicom_sr

    phantom = make_phantom(seed=7, frames=2, slices=5, matrix=(120, 128))
    write_dicom_cine(phantom.study, tmp_path / "dicom")
    whole = read_dicom_cine(tmp_path / "dicom")
    for z in range(5):  # one series per slice position
        for frame in whole.slice_files:
            path = tmp_path / "dicom" / frame[z]
            ds = pydicom.dcmread(path)
            ds.SeriesInstanceUID, ds.SeriesNumber = f"1.2.826.0.1.3680043.8.498.{z + 1}", 10 + z
            ds.save_as(path)
    study = read_dicom_cine(tmp_path / "dicom")
    np.testing.assert_array_equal(study.image, whole.image)
    check_study_for_sr(study)
    with pytest.raises(CMRSegError, match="joined from several series.*No SEG can be written \\(the SR can\\)"):
        check_study_for_seg(study)
    with pytest.raises(CMRSegError, match="joined from several series"):
        write_dicom_seg(phantom.labels[0], study.source, study.slice_files[0], tmp_path / "a.seg.dcm", "test")
    assert not (tmp_path / "a.seg.dcm").exists()
    sr = hd.sr.srread(write_dicom_sr({"lv_edv_ml": 100.0}, study.source, study.slice_files[0], study.slice_files[1],
                                     tmp_path / "m.sr.dcm", "test", PASSED))
    (evidence,) = sr.CurrentRequestedProcedureEvidenceSequence
    referenced = {s.SeriesInstanceUID: len(s.ReferencedSOPSequence) for s in evidence.ReferencedSeriesSequence}
    assert referenced == {f"1.2.826.0.1.3680043.8.498.{z + 1}": 2 for z in range(5)}  # ED and ES of each slice
