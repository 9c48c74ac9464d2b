"""The DICOM CMRSeg writes, checked by an independent validator: dicom3tools' dciodvfy (Debian's dicom3tools,
which scripts/test installs). The cine the phantom command writes, the ED/ES SEGs and the SR of a segment run,
and a SEG on the frames of an enhanced (multi-frame) cine."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from cmrseg.cli import main
from cmrseg.io.dicom_write import write_dicom_cine
from cmrseg.phantom import make_phantom


def validate(path) -> list[str]:
    """dciodvfy's findings (errors and warnings) for one file."""
    dciodvfy = shutil.which("dciodvfy")
    if dciodvfy is None:
        pytest.fail("dciodvfy is not installed (scripts/test installs Debian's dicom3tools)")
    done = subprocess.run([dciodvfy, str(path)], capture_output=True, text=True, timeout=60)
    return [line.strip() for line in (done.stdout + done.stderr).splitlines() if line.startswith(("Error", "Warning"))]


def test_the_cine_seg_and_sr_pass_the_validator(model_path, tmp_path):
    phantom = make_phantom(seed=6, frames=4, slices=8, matrix=(120, 128), oblique=True)
    files = write_dicom_cine(phantom.study, tmp_path / "dicom")
    assert main(["segment", str(tmp_path / "dicom"), "--out", str(tmp_path / "run"), "--model", str(model_path),
                 "--dicom-seg", "--dicom-sr", "--report", "none", "--ed", "0", "--es", "1"]) == 0  # fmt: skip
    # The cine: no error. Its warnings are the rescale slope that stores the phantom's floating-point values
    # (a Standard Extended SOP Class, as many scanners write) and the image type's "M" (magnitude).
    findings = validate(files[0])
    assert not [f for f in findings if f.startswith("Error")], findings
    assert all("Rescale" in f or "Standard Extended" in f or "<Image Type>" in f for f in findings), findings
    for phase in ("ED", "ES"):
        assert validate(tmp_path / "run" / f"dicom_{phase}.seg.dcm") == []  # neither error nor warning
    # The SR: no error; the only warnings name the private coding scheme of the measurements that have no
    # standard code (declared in its Coding Scheme Identification Sequence).
    findings = validate(tmp_path / "run" / "dicom_measures.sr.dcm")
    assert findings and all(f == "Warning - Unrecognized defined term <99CMRSEG> for value 1 of attribute "
                                 "<Coding Scheme Designator>" for f in findings), findings


@pytest.mark.parametrize("shared_geometry", [True, False])
def test_a_seg_on_the_frames_of_an_enhanced_cine_passes_the_validator(shared_geometry, tmp_path):
    """The SEG of one phase of an Enhanced MR cine (orientation and pixel measures shared, or per frame as
    Philips writes them), referencing the file's frames: neither error nor warning."""
    from enhanced_dicom import enhanced_cine

    from cmrseg.io.dicom_seg import write_dicom_seg

    phantom, study, _ = enhanced_cine(tmp_path, seed=18, shared_geometry=shared_geometry)
    path = write_dicom_seg(phantom.labels[1], study.source, study.slice_files[1], tmp_path / "p.seg.dcm", "test",
                           frames=study.slice_frames[1])  # fmt: skip
    assert validate(path) == []
