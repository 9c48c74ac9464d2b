"""Where a segmentation's errors lie along the heart's long axis: base, mid-ventricle, apex, or slices beyond
the expert's heart.

The expert's heart slices (any structure) are cut into thirds from the basal end (:func:`basal_end`) to the
apical one (a count not divisible by three gives the extra slices to the base, then the middle); slices
above or below them are "outside". For each structure, the misclassified volume (in the prediction and not
the expert's mask, or the reverse) is summed per region over all cases of a phase: the table gives each
region's share of the structure's error and that error relative to the expert's volume of the structure
there. Both label maps get the basal-slice rule of the headline Dice first (LV blood pool >= 50 % enclosed).
"""

from __future__ import annotations

import numpy as np

from cmrseg.basal import apply_basal_rule, basal_end, basal_end_as
from cmrseg.labels import BACKGROUND, STRUCTURES

REGIONS = ("base", "mid", "apex", "outside")
CRITERION = "50"


def slice_regions(reference: np.ndarray, base: int | None = None) -> np.ndarray:
    """The region of every slice of a ``[z, y, x]`` expert label map (an array of names); ``base`` names its
    basal slice when it is known (default :func:`basal_end` of ``reference``)."""
    regions = np.full(reference.shape[0], "outside", dtype=object)
    heart = np.flatnonzero((reference != BACKGROUND).any(axis=(1, 2)))
    if heart.size == 0:
        return regions
    ordered = np.arange(heart[0], heart[-1] + 1)
    base = basal_end(reference) if base is None else base
    if abs(base - heart[-1]) < abs(base - heart[0]):
        ordered = ordered[::-1]  # base first
    for name, part in zip(REGIONS[:3], np.array_split(ordered, 3), strict=True):
        regions[part] = name
    return regions


def case_error_regions(case) -> list[dict]:
    """Rows of misclassified and expert volume (ml) per method, structure and region of one
    :class:`cmrseg.evaluate.Case`."""
    base = basal_end(case.reference)  # the expert's base, as the headline Dice finds it (before the rule)
    reference, _ = apply_basal_rule(case.reference, CRITERION, base)
    regions = slice_regions(reference, base)
    voxel_ml = float(np.prod(case.spacing)) / 1000.0
    rows = []
    for method, labels in case.methods.items():
        predicted, _ = apply_basal_rule(labels, CRITERION, basal_end_as(labels, case.reference))
        for structure in STRUCTURES:
            expert = reference == structure.label
            wrong = (expert != (predicted == structure.label)).sum(axis=(1, 2))
            expert_voxels = expert.sum(axis=(1, 2))
            for region in REGIONS:
                chosen = regions == region
                rows.append({"patient": case.patient, "phase": case.phase, "method": method,
                             "structure": structure.key, "region": region,
                             "error_ml": float(wrong[chosen].sum()) * voxel_ml,
                             "expert_ml": float(expert_voxels[chosen].sum()) * voxel_ml})  # fmt: skip
    return rows


def error_region_table(rows: list[dict]) -> list[dict]:
    """Per method, phase and structure: each region's share of the error and the error relative to the expert
    volume there (None where there is no error at all, or where the expert has none of the structure)."""
    table = []
    for method, phase, structure in dict.fromkeys((r["method"], r["phase"], r["structure"]) for r in rows):
        mine = [r for r in rows if (r["method"], r["phase"], r["structure"]) == (method, phase, structure)]
        total = sum(r["error_ml"] for r in mine)
        entry = {"method": method, "phase": phase, "structure": structure, "error_ml": total}
        for region in REGIONS:
            error = sum(r["error_ml"] for r in mine if r["region"] == region)
            expert = sum(r["expert_ml"] for r in mine if r["region"] == region)
            entry[f"{region}_share"] = error / total if total > 0 else None
            entry[f"{region}_relative"] = error / expert if expert > 0 else None
        table.append(entry)
    return table


def error_region_markdown(table: list[dict]) -> str:
    """The table as Markdown: each region's share of the error, and in brackets the error relative to the
    expert's volume of the structure there."""
    lines = ["Where the errors lie: share of each structure's misclassified volume by region (error relative to "
             "the expert's volume there), and that volume summed over the cases", "",
             "| method | phase | structure | " + " | ".join(REGIONS) + " | error (ml) |",
             "|---|---|---|" + "---|" * (len(REGIONS) + 1)]  # fmt: skip
    for entry in table:
        cells = []
        for region in REGIONS:
            share, relative = entry[f"{region}_share"], entry[f"{region}_relative"]
            if share is None:  # no error at all
                cells.append("-")
            else:
                cells.append(f"{share:.0%}" + (f" ({relative:.2f})" if relative is not None else ""))
        lines.append(f"| {entry['method']} | {entry['phase']} | {entry['structure']} | " + " | ".join(cells)
                     + f" | {entry['error_ml']:.1f} |")
    return "\n".join(lines) + "\n"
