"""DICOM SEG and SR of a cine stored as one Enhanced MR (multi-frame) file: each SEG frame references the one
frame of the file its slice and phase came from, checked against the file's own functional groups."""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest

hd = pytest.importorskip("highdicom")

from enhanced_dicom import assert_seg_on_its_frames, enhanced_cine, enhanced_from_classic  # noqa: E402

from cmrseg.errors import CMRSegError  # noqa: E402
from cmrseg.io.dicom_cine import read_dicom_cine  # noqa: E402
from cmrseg.io.dicom_seg import check_study_for_seg, write_dicom_seg  # noqa: E402
from cmrseg.io.dicom_sr import write_dicom_sr  # noqa: E402
from cmrseg.io.dicom_write import write_dicom_cine  # noqa: E402
from cmrseg.phantom import make_phantom  # noqa: E402

PASSED = {"status": "pass", "flags": []}  # a quality check without findings


@pytest.mark.parametrize("shared_geometry", [True, False])
def test_a_seg_of_an_enhanced_cine_references_the_frames_of_its_phase(shared_geometry, tmp_path):
    """Orientation and pixel measures shared by all frames, or repeated in each frame's functional groups."""
    phantom, study, path = enhanced_cine(tmp_path, seed=11, shared_geometry=shared_geometry)
    check_study_for_seg(study)
    for frame in (0, 2):
        seg = write_dicom_seg(phantom.labels[frame], study.source, study.slice_files[frame],
                              tmp_path / f"f{frame}.seg.dcm", "test", frames=study.slice_frames[frame])  # fmt: skip
        assert_seg_on_its_frames(seg, path, phantom.labels[frame], study.slice_frames[frame],
                                 study.frame_times_ms[frame])  # fmt: skip
    with pytest.raises(CMRSegError, match="does not fit"):
        write_dicom_seg(phantom.labels[0][1:], study.source, study.slice_files[0], tmp_path / "x.seg.dcm", "t",
                        frames=study.slice_frames[0])  # fmt: skip
    assert not (tmp_path / "x.seg.dcm").exists()


def test_an_sr_of_an_enhanced_cine_references_its_file_once(tmp_path):
    _, study, path = enhanced_cine(tmp_path, seed=12)
    sr = write_dicom_sr({"lv_edv_ml": 151.25, "lv_ef_pct": 60.0}, study.source, study.slice_files[0],
                        study.slice_files[1], tmp_path / "m.sr.dcm", "test", PASSED)  # fmt: skip
    evidence = pydicom.dcmread(sr).CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert [ref.ReferencedSOPInstanceUID for ref in evidence.ReferencedSOPSequence] == [
        pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID]


def test_segment_writes_segs_and_an_sr_of_an_enhanced_cine(model_path, tmp_path):
    from cmrseg.cli import main
    from cmrseg.io.volume_files import read_volume_file

    _, study, path = enhanced_cine(tmp_path, seed=13, frames=4, slices=8)
    out = tmp_path / "out"
    assert main(["segment", str(tmp_path / "enhanced"), "--out", str(out), "--model", str(model_path),
                 "--dicom-seg", "--dicom-sr", "--report", "none"]) == 0  # fmt: skip
    measures = json.loads((out / "measures.json").read_text())
    for phase in ("ED", "ES"):
        frame = measures[f"{phase.lower()}_frame"]
        written = read_volume_file(out / measures["frames"][str(frame)]["file"]).image[0].astype(np.uint8)
        assert_seg_on_its_frames(out / f"enhanced_{phase}.seg.dcm", path, written, study.slice_frames[frame],
                                 study.frame_times_ms[frame])  # fmt: skip
    assert hd.sr.srread(out / "enhanced_measures.sr.dcm").Modality == "SR"


def test_phases_spread_over_several_enhanced_files_get_no_seg(model_path, tmp_path, capsys):
    """One enhanced file per slice position (every phase of it): a SEG of one phase would reference frames of
    several multi-frame files, which DICOM SEG cannot; refused before any work, nothing written."""
    from cmrseg.cli import main

    phantom = make_phantom(seed=14, frames=3, slices=6, matrix=(96, 112))
    write_dicom_cine(phantom.study, tmp_path / "classic")
    names = sorted(p.name for p in (tmp_path / "classic").iterdir() if p.suffix == ".dcm")
    classic = read_dicom_cine(tmp_path / "classic")
    for z in range(6):
        order = [names.index(classic.slice_files[t][z]) for t in range(3)]
        enhanced_from_classic(tmp_path / "classic", tmp_path / "per_slice" / f"slice{z}.dcm", order)
    study = read_dicom_cine(tmp_path / "per_slice")
    np.testing.assert_array_equal(study.image, classic.image)  # the cine itself reads
    with pytest.raises(CMRSegError, match="one phase lie in 6 DICOM files, enhanced"):
        check_study_for_seg(study)
    out = tmp_path / "out"
    assert main(["segment", str(tmp_path / "per_slice"), "--out", str(out), "--model", str(model_path),
                 "--dicom-seg"]) == 2  # fmt: skip
    assert capsys.readouterr().err.count("cmrseg: error:") == 1 and not out.exists()


def test_a_multiframe_study_without_its_frame_numbers_gets_no_seg(tmp_path):
    """A study whose slices share one multi-frame file but whose frame numbers were not kept (a scene saved by
    an earlier version) is refused clearly, before and at writing."""
    from dataclasses import replace

    phantom, study, _ = enhanced_cine(tmp_path, seed=16)
    old = replace(study, slice_frames=None)
    with pytest.raises(CMRSegError, match="frame numbers were not kept"):
        check_study_for_seg(old)
    with pytest.raises(CMRSegError, match="frame numbers were not kept"):
        write_dicom_seg(phantom.labels[0], old.source, old.slice_files[0], tmp_path / "o.seg.dcm", "test")
    assert not (tmp_path / "o.seg.dcm").exists()


def test_enhanced_frames_without_a_common_geometry_or_a_position_are_refused(tmp_path):
    from cmrseg.io.dicom_seg_frames import check_enhanced_header

    phantom, study, path = enhanced_cine(tmp_path, seed=17, shared_geometry=False)
    header = pydicom.dcmread(path)
    measures = header.PerFrameFunctionalGroupsSequence[study.slice_frames[2][3] - 1].PixelMeasuresSequence[0]
    measures.PixelSpacing = [float(v) * 1.1 for v in measures.PixelSpacing]  # one frame of phase 2 differs
    header.save_as(path)
    with pytest.raises(CMRSegError, match="differ in their PixelMeasuresSequence"):
        check_study_for_seg(study)
    write_dicom_seg(phantom.labels[0], study.source, study.slice_files[0], tmp_path / "a.seg.dcm", "test",
                    frames=study.slice_frames[0])  # phase 0 agrees: its SEG is written  # fmt: skip
    with pytest.raises(CMRSegError, match="differ in their PixelMeasuresSequence"):
        write_dicom_seg(phantom.labels[2], study.source, study.slice_files[2], tmp_path / "b.seg.dcm", "test",
                        frames=study.slice_frames[2])  # fmt: skip
    assert not (tmp_path / "b.seg.dcm").exists()
    del header.PerFrameFunctionalGroupsSequence[0].PlanePositionSequence
    with pytest.raises(CMRSegError, match="no position of their own"):
        check_enhanced_header(header, [1, 2])
    with pytest.raises(CMRSegError, match="Frame 99 is not in the enhanced DICOM file \\(24 frames\\)"):
        check_enhanced_header(header, [1, 99])
