"""The PDF report: it renders (PDFium), holds the identifiers, the parameters as printed, the quality check,
the bull's-eyes and the zoomed ED/ES slices."""

from __future__ import annotations

import json

import numpy as np
import pytest

pdfium = pytest.importorskip("pypdfium2")

from cmrseg.cli import main  # noqa: E402
from cmrseg.io.dicom_write import write_dicom_cine  # noqa: E402
from cmrseg.phantom import make_phantom  # noqa: E402


def page_text(document, index: int) -> str:
    return document[index].get_textpage().get_text_range()


def test_segment_writes_a_pdf_that_renders_with_the_reported_numbers(model_path, tmp_path):
    phantom = make_phantom(seed=8, frames=6, slices=8, matrix=(120, 128))
    write_dicom_cine(phantom.study, tmp_path / "dicom")
    out = tmp_path / "out"
    assert main(["segment", str(tmp_path / "dicom"), "--out", str(out), "--model", str(model_path),
                 "--report", "pdf", "--height", "175", "--weight", "70"]) == 0  # fmt: skip
    assert (out / "report.html").is_file()  # pdf means both
    measures = json.loads((out / "measures.json").read_text())
    # Both name the patient and the body size behind the indexed values (the height and weight given).
    patient = f"ID {phantom.study.patient.patient_id}, {phantom.study.patient.sex}"
    assert patient in (out / "report.html").read_text() and "175 cm, 70 kg" in (out / "report.html").read_text()
    document = pdfium.PdfDocument(str(out / "report.pdf"))
    assert len(document) == 2  # the summary page, then the ED and ES slices
    first = page_text(document, 0)
    for text in ("CMRSeg report", "Quality check: " + measures["qc"]["status"].upper(), "LV EDV", "RV EF",
                 f"{measures['study']['lv_edv_ml']:.1f}", f"{measures['study']['rv_ef_pct']:.1f}",
                 f"{measures['study']['lv_edv_index']:.1f}", "not a diagnosis", patient, "175 cm, 70 kg"):  # fmt: skip
        assert text in first, text
    assert "End-diastole" in page_text(document, 1) and "End-systole" in page_text(document, 1)
    picture = np.asarray(document[0].render(scale=1).to_pil().convert("RGB")).astype(int)
    assert picture.std() > 10  # not blank
    blue = (picture[..., 2] - picture[..., 0] > 60).sum()  # the bull's-eyes' blue scale
    assert blue > 500, blue
    slices = np.asarray(document[1].render(scale=1).to_pil().convert("RGB")).astype(int)
    red = ((slices[..., 0] > 200) & (slices[..., 1] < 60) & (slices[..., 2] < 60)).sum()  # LV outlines
    document.close()
    assert red > 50, red
