"""The clinical report of one segmented study: a self-contained HTML page (figures embedded as PNG)."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np

from cmrseg.labels import STRUCTURES

# (key, label, unit) in the order a cardiologist reads them.
PARAMETERS = (
    ("lv_edv_ml", "LV EDV", "ml"),
    ("lv_esv_ml", "LV ESV", "ml"),
    ("lv_sv_ml", "LV SV", "ml"),
    ("lv_ef_pct", "LV EF", "%"),
    ("lv_mass_ed_g", "LV mass (ED)", "g"),
    ("lv_mass_es_g", "LV mass (ES)", "g"),
    ("rv_edv_ml", "RV EDV", "ml"),
    ("rv_esv_ml", "RV ESV", "ml"),
    ("rv_sv_ml", "RV SV", "ml"),
    ("rv_ef_pct", "RV EF", "%"),
)
INDEXED = {
    "lv_edv_ml": "lv_edv_index",
    "lv_esv_ml": "lv_esv_index",
    "lv_sv_ml": "lv_sv_index",
    "lv_mass_ed_g": "lv_mass_ed_index",
    "rv_edv_ml": "rv_edv_index",
    "rv_esv_ml": "rv_esv_index",
    "rv_sv_ml": "rv_sv_index",
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    _pyplot().close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def overlay_grid(image: np.ndarray, labels: np.ndarray, title: str) -> str:
    """Every slice of a ``[z, y, x]`` frame, zoomed to the heart, with the structure outlines: HTML (one small
    PNG per slice, drawn from the arrays without a plotting library: a report costs milliseconds)."""
    box = heart_box(labels)
    low, high = np.percentile(image, [1, 99.5])  # one grey scale for the whole frame
    cells = "".join(
        f'<div class="slice"><img alt="slice {z}" src="data:image/png;base64,'
        f'{slice_thumbnail(image[z], labels[z], box, value_range=(low, high))}"><br>slice {z}</div>'
        for z in range(image.shape[0])
    )
    return f'<figure><figcaption><b>{html.escape(title)}</b></figcaption><div class="grid">{cells}</div></figure>'


def volume_curve_figure(times_ms, lv_ml, rv_ml, ed: int, es: int, time_label: str = "time (ms)") -> str:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 3))
    axis.plot(times_ms, lv_ml, "o-", color="red", label="LV blood pool")
    axis.plot(times_ms, rv_ml, "o-", color="goldenrod", label="RV blood pool")
    for index, name in ((ed, "ED"), (es, "ES")):
        axis.axvline(times_ms[index], color="k", linestyle=":", linewidth=0.8)
        axis.annotate(name, (times_ms[index], max(lv_ml)), fontsize=8)
    axis.set(xlabel=time_label, ylabel="volume (ml)", title="Volume curve")
    axis.legend(fontsize=8)
    figure.tight_layout()
    return _png(figure)


def _value(value) -> str:
    return "-" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f"{value:.1f}"


QC_COLOURS = {"pass": "#e6f4e6", "review": "#fff4d6", "fail": "#fde2e2"}


def qc_box(qc: dict) -> str:
    """The quality check as a coloured box with one line per flag."""
    items = "".join(
        f"<li><b>{html.escape(flag['severity'])}</b>"
        + (f" ({html.escape(flag['phase'])}" + (f", slice {flag['slice']}" if flag["slice"] is not None else "") + ")"
           if flag["phase"] else "")
        + f": {html.escape(flag['message'])}</li>"
        for flag in qc["flags"]
    )
    headline = {"pass": "no implausible finding", "review": "review the flagged findings before use",
                "fail": "some numbers are not usable as they are"}[qc["status"]]
    return (f'<div class="qc" style="background:{QC_COLOURS[qc["status"]]};padding:0.5em 1em;border:1px solid #bbb">'
            f'<b>Quality check: {qc["status"].upper()}</b> ({headline})<ul>{items}</ul></div>')


REVIEW_ROWS = 10


def heart_box(labels: np.ndarray, margin: int = 12) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)`` around every heart label of a ``[z, y, x]`` frame (the whole slice when empty)."""
    points = np.argwhere(labels.any(axis=0))
    if points.size == 0:
        return 0, labels.shape[1], 0, labels.shape[2]
    (y0, x0), (y1, x1) = points.min(axis=0) - margin, points.max(axis=0) + margin + 1
    return max(y0, 0), min(y1, labels.shape[1]), max(x0, 0), min(x1, labels.shape[2])


def slice_thumbnail(image: np.ndarray, labels: np.ndarray, box: tuple[int, int, int, int], size: int = 160,
                    value_range: tuple[float, float] | None = None) -> str:
    """One slice zoomed to ``box`` with the structure outlines, as base64 PNG (drawn without a figure: fast).

    ``value_range`` is the grey scale (default: the crop's 1st and 99.5th percentiles).
    """
    from PIL import Image
    from scipy import ndimage

    y0, y1, x0, x1 = box
    crop, crop_labels = image[y0:y1, x0:x1].astype(float), labels[y0:y1, x0:x1]
    low, high = value_range if value_range is not None else np.percentile(crop, [1, 99.5])
    gray = np.clip((crop - low) / max(high - low, 1e-6), 0, 1)
    rgb = np.repeat(gray[..., None], 3, axis=2)
    for structure in STRUCTURES:
        mask = crop_labels == structure.label
        rgb[mask & ~ndimage.binary_erosion(mask)] = structure.color
    zoom = max(1, size // max(crop.shape))
    rgb = np.repeat(np.repeat(rgb, zoom, axis=0), zoom, axis=1)
    stream = io.BytesIO()
    Image.fromarray(np.round(rgb * 255).astype(np.uint8), "RGB").save(stream, format="png")
    return base64.b64encode(stream.getvalue()).decode("ascii")


def review_table(review: dict, frames: dict[int, tuple[np.ndarray, np.ndarray]] | None = None) -> str:
    """The slices most worth checking, in review-score order, with a zoomed view of each when ``frames``
    (frame index -> (image, labels), both ``[z, y, x]``) are given."""
    boxes = {index: heart_box(labels) for index, (_, labels) in (frames or {}).items()}
    rows = []
    for e in review["slices"][:REVIEW_ROWS]:
        picture = ""
        if e["frame"] in boxes:
            image, labels = frames[e["frame"]]
            data = slice_thumbnail(image[e["slice"]], labels[e["slice"]], boxes[e["frame"]])
            picture = f'<img style="margin:0" alt="{e["phase"]} slice {e["slice"]}" src="data:image/png;base64,{data}">'
        rows.append(f"<tr><td>{picture}</td><td>{html.escape(e['phase'])}</td><td>{e['slice']}</td>"
                    f"<td>{e['score']:.2f}</td><td>{e['expected_error_ml']:.1f}</td>"
                    f"<td>{html.escape(', '.join(e['structures'] + e['signals']))}</td></tr>")
    return ("<h2>Slices most worth checking</h2><table><tr><th></th><th>Phase</th><th>Slice</th><th>Review score"
            f"</th><th>Expected error (ml)</th><th>Why</th></tr>{''.join(rows)}</table>")


def regional_section(rows: list[dict]) -> str:
    """Bull's-eyes of ED wall thickness and systolic thickening (AHA segments 1-16)."""
    from cmrseg.bullseye import regional_bullseyes

    return ("<h2>Regional wall (AHA segments)</h2><div class=\"grid\">" + "".join(regional_bullseyes(rows))
            + "</div><p class=\"note\">Thickness along rays from the LV blood-pool centroid; segments from the "
            "anterior RV insertion point; basal, mid and apical thirds of the slices. Values per segment in "
            "measures.json.</p>")


def rates_line(rates: dict, basal_rule: str = "none") -> str:
    names = {"lv_per_ml_s": "LV peak ejection rate", "lv_pfr_ml_s": "LV peak filling rate",
             "rv_per_ml_s": "RV peak ejection rate", "rv_pfr_ml_s": "RV peak filling rate"}
    items = "".join(f"<li>{names[key]}: {_value(value)} ml/s</li>" for key, value in rates.items())
    note = ("" if basal_rule == "none" else '<p class="note">The LV rates come from the volume curve before the '
            "basal-slice rule (decided in each frame, the rule puts steps into the curve shown).</p>")
    return f"<ul>{items}</ul>{note}"


def reference_cell(reference: dict | None, key: str, unusable: dict[str, str]) -> str:
    """The value's and its indexed value's place against the reference range (HTML), empty without ranges;
    first, when the quality check makes the value unusable (``unusable``: :func:`cmrseg.qc.unusable_parameters`),
    that."""
    from cmrseg.qc import unusable_text
    from cmrseg.reference import value_checks

    marks = [f"<b style=\"color:#b00\">{html.escape(unusable_text(unusable[key]))}</b>"] if key in unusable else []
    return "<br>".join(marks + [f"<b style=\"color:#b00\">{html.escape(text)}</b>" if entry["flag"] in ("low", "high")
                               else html.escape(text)
                               for text, entry in value_checks(reference, key, INDEXED.get(key))])


def reference_note(reference: dict | None) -> str:
    """Which ranges were applied, for whom, from which sources (HTML)."""
    from cmrseg.reference import applied_text, sources

    if not reference:
        return ""
    items = "".join(f"<li>{html.escape(source)}</li>" for source in sources(reference))
    return (f"<p class=\"note\">Reference ranges ({html.escape(reference['limits'])}): "
            f"{html.escape(applied_text(reference))}" + (f"</p><ul class=\"note\">{items}</ul>" if items else "</p>"))


def measures_table(measures: dict, reference: dict | None = None, qc: dict | None = None) -> str:
    from cmrseg.qc import unusable_parameters

    unusable = unusable_parameters(qc, measures)
    rows = []
    for key, name, unit in PARAMETERS:
        indexed = measures.get(INDEXED.get(key, ""))
        index_unit = f"{unit}/m²" if indexed is not None else ""
        rows.append(
            f"<tr><td>{name}</td><td>{_value(measures.get(key))} {unit}</td>"
            f"<td>{_value(indexed) if indexed is not None else ''} {index_unit}</td>"
            f"<td>{reference_cell(reference, key, unusable)}</td></tr>"
        )
    return ("<table><tr><th>Parameter</th><th>Value</th><th>Indexed (BSA)</th><th>Reference range (flag, z)</th></tr>"
            + "".join(rows) + "</table>" + reference_note(reference))


def write_report(
    path: str | Path,
    title: str,
    measures: dict,
    context: dict,
    overlays: list[tuple[str, np.ndarray, np.ndarray]],
    curve: tuple | None = None,
    qc: dict | None = None,
    review: dict | None = None,
    review_frames: dict[int, tuple[np.ndarray, np.ndarray]] | None = None,
    regional: list[dict] | None = None,
    rates: dict | None = None,
    reference: dict | None = None,
    basal_rule: str = "none",
) -> Path:
    """Write the HTML report. ``context`` holds facts shown as a list (model, basal rule, frames, BSA...)."""
    facts = "".join(f"<li><b>{html.escape(str(k))}</b>: {html.escape(str(v))}</li>" for k, v in context.items())
    figures = [overlay_grid(i, lab, t) for t, i, lab in overlays]
    if curve is not None:
        figures.insert(0, f'<img alt="volume curve" src="data:image/png;base64,{volume_curve_figure(*curve)}">')
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1400px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 10px;text-align:left}}img{{max-width:100%;display:block;margin:1em 0}}
.note{{color:#555;font-size:90%}}.grid{{display:flex;flex-wrap:wrap;gap:6px}}
.slice{{text-align:center;font-size:80%}}.slice img{{margin:0}}</style></head><body>
<h1>{html.escape(title)}</h1>
{qc_box(qc) if qc is not None else ""}
{measures_table(measures, reference, qc)}
{review_table(review, review_frames) if review else ""}
{regional_section(regional) if regional else ""}
{rates_line(rates, basal_rule) if rates else ""}
<ul>{facts}</ul>
<p class="note">Automatic segmentation for review by a physician; not a diagnosis.
Outlines: LV blood pool red, LV myocardium green, RV blood pool yellow.</p>
{''.join(figures)}
</body></html>
"""
    path = Path(path)
    path.write_text(page, encoding="utf-8")
    return path
