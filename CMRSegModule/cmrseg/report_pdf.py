"""The clinical report as a PDF a cardiologist can file (fpdf2: pure Python, maintained, embeds PNG and SVG,
no system libraries, so it installs wherever CMRSeg does, Slicer's Python included).

Page 1: identifiers, quality check, the parameters with units and indexed values, the regional bull's-eyes,
the volume curve and the slices worth checking first (when a review score exists). Page 2: the ED and ES
slices zoomed to the heart with the outlines (a third page only for very many slices).
"""

from __future__ import annotations

import base64
import io
import math
import re
from pathlib import Path

from cmrseg.errors import CMRSegError

QC_FILL = {"pass": (230, 244, 230), "review": (255, 244, 214), "fail": (253, 226, 226)}
FOOTER = "Automatic segmentation for review by a physician; not a diagnosis. Research use only."


def _text(value: object) -> str:
    """Latin-1 text for the PDF core fonts (other characters become '?')."""
    return str(value).replace("\u2265", ">=").replace("\u2264", "<=").encode("latin-1", "replace").decode("latin-1")


def _number(value) -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.1f}"


def write_pdf_report(
    path: str | Path,
    title: str,
    measures: dict,
    context: dict,
    qc: dict | None,
    bullseyes: list[str],
    curve_png: bytes | None,
    slice_images: list[tuple[str, list[tuple[str, str]]]],
    review: dict | None = None,
    reference: dict | None = None,
) -> Path:
    """Write the PDF report.

    ``measures`` are the study parameters, ``context`` the facts listed under the title, ``bullseyes`` SVG
    strings, ``curve_png`` the volume curve, ``slice_images`` ``(heading, [(caption, base64 PNG), ...])`` per
    phase.
    """
    try:
        from fpdf import FPDF
    except ImportError as exc:
        raise CMRSegError("A PDF report needs fpdf2: pip install 'cmrseg[report]' (or fpdf2).") from exc
    from cmrseg.qc import unusable_parameters
    from cmrseg.reference import applied_text, sources, value_notes
    from cmrseg.report import INDEXED, PARAMETERS

    unusable = unusable_parameters(qc, measures)

    class Report(FPDF):
        def footer(self) -> None:
            self.set_y(-12)
            self.set_font("Helvetica", size=7)
            self.cell(0, 5, _text(f"{FOOTER}   Page {self.page_no()}"), align="C")

    pdf = Report(format="A4")
    pdf.set_auto_page_break(True, margin=15)
    pdf.set_margins(12, 12, 12)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 14)
    pdf.multi_cell(0, 7, _text(title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=8)
    for key, value in context.items():
        pdf.multi_cell(0, 4, _text(f"{key}: {value}"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    if qc is not None:
        pdf.set_fill_color(*QC_FILL[qc["status"]])
        lines = [f"Quality check: {qc['status'].upper()}"] + [
            f"[{flag['severity']}] {flag['message']}" for flag in qc["flags"]
        ]
        pdf.set_font("Helvetica", "B", 9)
        pdf.multi_cell(0, 5, _text(lines[0]), fill=True, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=8)
        for line in lines[1:]:
            pdf.multi_cell(0, 4, _text(line), fill=True, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
    pdf.set_font("Helvetica", size=9)
    pdf.set_fill_color(240, 240, 240)  # heading row; the QC colour must not carry over
    with pdf.table(col_widths=(32, 20, 12, 22, 100), text_align=("LEFT", "RIGHT", "LEFT", "RIGHT", "LEFT"),
                   first_row_as_headings=True, line_height=5) as table:  # fmt: skip
        table.row(["Parameter", "Value", "Unit", "Indexed (/m2)", "Reference range (flag, z)"])
        for key, name, unit in PARAMETERS:
            indexed = measures.get(INDEXED.get(key, ""))
            checks = "; ".join(value_notes(reference, key, INDEXED.get(key), unusable))
            table.row([name, _number(measures.get(key)), unit, _number(indexed) if indexed is not None else "",
                       _text(checks)])
    pdf.set_font("Helvetica", size=7)
    if reference:
        lines = [f"Reference ranges ({reference['limits']}): {applied_text(reference)}"] + sources(reference)
    else:
        lines = ["Reference ranges: not applied (no study parameters)."]
    for line in lines:
        pdf.multi_cell(0, 3.5, _text(line), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    top = pdf.get_y()
    for index, svg in enumerate(bullseyes[:2]):
        svg = re.sub(r"<title>.*?</title>", "", svg)  # tooltips are for the HTML page; fpdf2 does not read them
        pdf.image(io.BytesIO(svg.encode("utf-8")), x=12 + index * 62, y=top, w=58)
    if curve_png is not None:
        pdf.image(io.BytesIO(curve_png), x=12 + 2 * 62 if bullseyes else 12, y=top, w=62 if bullseyes else 120)
    if bullseyes or curve_png is not None:
        pdf.set_y(top + 66)
    if review and review.get("slices"):
        pdf.set_font("Helvetica", "B", 9)
        pdf.cell(0, 5, "Slices worth checking first (review score)", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=8)
        for entry in review["slices"][:5]:
            what = ", ".join(entry["structures"] + entry["signals"]) or "-"
            line = (f"{entry['phase']} slice {entry['slice']}: score {entry['score']:.2f}, "
                    f"~{entry['expected_error_ml']:.1f} ml ({what})")
            pdf.cell(0, 4, _text(line), new_x="LMARGIN", new_y="NEXT")
    size, columns = 30.0, 6
    for index, (heading, images) in enumerate(slice_images):
        height = 8 + math.ceil(len(images) / columns) * (size + 5)
        if index == 0 or pdf.get_y() + height > pdf.h - 15:  # the slices start a page; phases share it if they fit
            pdf.add_page()
        pdf.set_font("Helvetica", "B", 11)
        pdf.cell(0, 6, _text(heading), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=7)
        top = pdf.get_y() + 1
        for number, (caption, png) in enumerate(images):
            row, column = divmod(number, columns)
            x, y = 12 + column * (size + 1.5), top + row * (size + 5)
            pdf.image(io.BytesIO(base64.b64decode(png)), x=x, y=y, w=size, h=size)
            pdf.set_xy(x, y + size)
            pdf.cell(size, 4, _text(caption), align="C")
        pdf.set_xy(12, top + math.ceil(len(images) / columns) * (size + 5) + 3)
    path = Path(path)
    pdf.output(str(path))
    return path
