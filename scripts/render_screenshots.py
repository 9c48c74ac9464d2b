"""Draw the extension screenshots from a headless MRML scene (see scripts/render-screenshots)."""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import slicer  # noqa: E402

from cmrseg.inference import Segmenter  # noqa: E402
from cmrseg.labels import LV, STRUCTURES  # noqa: E402
from cmrseg.phantom import make_phantom  # noqa: E402
from CMRSegModuleLib import ResultsTable, ReviewNodes, Runner  # noqa: E402
from headless_slicer import close_headless_slicer, create_headless_slicer  # noqa: E402
from slicer_helpers import edit_segments, segment_arrays  # noqa: E402


def draw_slice(axis, volume, automatic, corrected, z: int, title: str) -> None:
    image = slicer.util.arrayFromVolume(volume)[z]
    axis.imshow(image, cmap="gray")
    fill = np.zeros((*image.shape, 4))
    for structure in STRUCTURES:
        fill[corrected[z] == structure.label] = (*structure.color, 0.35)
        axis.contour(automatic[z] == structure.label, levels=[0.5], colors=[structure.color], linewidths=1.2)
    axis.imshow(fill)
    axis.set_title(title, fontsize=10)
    axis.axis("off")


def draw_table(axis, table) -> None:
    rows = ResultsTable.readTable(table)
    cells = [[r["parameter"], r["unit"], f"{r['automatic']:.1f}", f"{r['corrected']:.1f}", f"{r['difference']:+.1f}",
              r["reference"], r["corrected_flag"]] for r in rows]
    shown = axis.table(cellText=cells, colLabels=["Parameter", "Unit", "Automatic", "Corrected", "Difference",
                                                  "Reference", "Corrected: check, range"],
                       loc="center", cellLoc="left", colWidths=[0.3, 0.08, 0.11, 0.11, 0.11, 0.13, 0.18])
    shown.auto_set_font_size(False)
    shown.set_fontsize(8)
    axis.axis("off")


def main(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    headless = create_headless_slicer()
    phantom = make_phantom(seed=0, frames=12, oblique=True)
    study = phantom.study
    ed, es = study.ed_frame, study.es_frame
    settings = Runner.RunSettings(edFrame=ed, esFrame=es, device="cpu", heightCm=172.0, weightKg=74.0, sex="F",
                                  ageYears=52.0)
    result = Runner.runInProcess(study, settings, Segmenter.load(device="cpu"))
    review = ReviewNodes.createReviewNodes(headless.scene, study, result, "Phantom cine",
                                           patient=Runner.patientWithSettings(study.patient, settings))
    automatic = segment_arrays(review.edAutomatic, review.edVolume)
    z = int(np.argmax((automatic == LV).sum(axis=(1, 2))))

    figure, axes = plt.subplots(1, 2, figsize=(12, 5.5), gridspec_kw={"width_ratios": [1, 1.3]})
    draw_slice(axes[0], review.edVolume, automatic, automatic, z, f"ED, short-axis slice {z}: automatic outlines "
               "over the corrected fill")
    draw_table(axes[1], review.table)
    figure.tight_layout()
    figure.savefig(folder / "review.png", dpi=110)
    plt.close(figure)

    corrected = automatic.copy()
    ring = (automatic[z] == LV)
    corrected[z][ring & (np.cumsum(ring, axis=1) <= 3)] = 2  # a physician thickens the septal wall
    edit_segments(review.edCorrected, review.edVolume, corrected)
    ReviewNodes.updateCorrected(review)
    figure, axes = plt.subplots(1, 2, figsize=(12, 5.5), gridspec_kw={"width_ratios": [1, 1.3]})
    draw_slice(axes[0], review.edVolume, automatic, segment_arrays(review.edCorrected, review.edVolume), z,
               f"ED slice {z} after a correction (fill) against the automatic outlines")
    draw_table(axes[1], review.table)
    figure.tight_layout()
    figure.savefig(folder / "editing.png", dpi=110)
    plt.close(figure)
    close_headless_slicer(headless)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
