"""The built-in example's check: a `cmrseg segment` run on the phantom against the phantom's truth.

Dice per structure at ED and ES must reach the tolerance below, and the LV and RV ejection fractions (the
clinical bottom line) must be within ``EF_TOLERANCE_POINTS`` of the analytic ones; the other clinical
parameters are shown beside their analytic values. Run as ``python -m cmrseg.phantom_check PHANTOM_DIR
RESULT_DIR`` (exit 1 when the result is outside a tolerance). :func:`check_model` runs the whole example for
one checkpoint (how ``scripts/ship-model`` vets a candidate).
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path

from cmrseg.cli import main as cmrseg_main
from cmrseg.errors import CMRSegError
from cmrseg.io.volume_files import read_volume_file
from cmrseg.labels import STRUCTURES
from cmrseg.metrics import dice

# The lowest per-patient Dice of the shipped model on its 15 ACDC test patients (basal rule >= 50 %,
# `cmrseg evaluate --fp32 --out DIR`, evaluation.json "cases"; the checkpoint's "test_cases"), rounded down to
# 0.05: the example must be segmented at least as well as the worst real test patient.
TOLERANCE_DICE = {
    ("ED", "LV"): 0.95, ("ED", "Myo"): 0.80, ("ED", "RV"): 0.85,
    ("ES", "LV"): 0.90, ("ES", "Myo"): 0.85, ("ES", "RV"): 0.70,
}  # fmt: skip
EF_TOLERANCE_POINTS = 5.0
EJECTION_FRACTIONS = ("lv_ef_pct", "rv_ef_pct")
PARAMETERS = ("lv_edv_ml", "lv_esv_ml", "lv_ef_pct", "lv_mass_ed_g", "rv_edv_ml", "rv_esv_ml", "rv_ef_pct")


def compare(phantom_dir: str | Path, result_dir: str | Path) -> dict:
    """``{"ed_es": ..., "dice": [{"phase", "structure", "dice", "tolerance", "ok"}], "parameters":
    [{"parameter", "cmrseg", "truth", "ok"}]}`` (``ok`` None for a parameter without a tolerance)."""
    phantom_dir, result_dir = Path(phantom_dir), Path(result_dir)
    truth = json.loads((phantom_dir / "truth.json").read_text())
    result = json.loads((result_dir / "measures.json").read_text())
    rows = []
    for phase in ("ED", "ES"):
        frame = result[f"{phase.lower()}_frame"]
        found = read_volume_file(result_dir / result["frames"][str(frame)]["file"]).image[0]
        true = read_volume_file(phantom_dir / f"truth_{phase}_seg.nii.gz").image[0]
        for structure in STRUCTURES:
            row = {"phase": phase, "structure": structure.key,
                   "dice": dice(found == structure.label, true == structure.label),
                   "tolerance": TOLERANCE_DICE[(phase, structure.key)]}
            rows.append(dict(row, ok=dice_ok(row)))
    parameters = []
    for key in PARAMETERS:
        row = {"parameter": key, "cmrseg": result["study"][key], "truth": truth[key]}
        parameters.append(dict(row, ok=parameter_ok(row)))
    return {"ed_es": ((truth["ed_frame"], truth["es_frame"]), (result["ed_frame"], result["es_frame"])),
            "dice": rows, "parameters": parameters}


def dice_ok(row: dict) -> bool:
    return row["dice"] >= TOLERANCE_DICE[(row["phase"], row["structure"])]


def parameter_ok(row: dict) -> bool | None:
    """Whether an ejection fraction is within its tolerance (None for a parameter that has none)."""
    if row["parameter"] not in EJECTION_FRACTIONS:
        return None
    return abs(row["cmrseg"] - row["truth"]) < EF_TOLERANCE_POINTS


def passed(comparison: dict) -> bool:
    """Every Dice and every ejection fraction within its tolerance."""
    return not failures(comparison)


def failures(comparison: dict) -> list[str]:
    """What is outside its tolerance, one phrase each (empty when the comparison passed): judged by the
    tolerances of this code, also for a comparison stored under earlier ones."""
    dice_rows = [r for r in comparison["dice"] if not dice_ok(r)]
    ef_rows = [r for r in comparison["parameters"] if parameter_ok(r) is False]
    return [f"{r['phase']} {r['structure']} Dice {r['dice']:.3f} below "
            f"{TOLERANCE_DICE[(r['phase'], r['structure'])]:.2f}" for r in dice_rows] + [
        f"{r['parameter']} {r['cmrseg']:.1f} against the analytic {r['truth']:.1f} "
        f"({EF_TOLERANCE_POINTS:.0f} points or more off)" for r in ef_rows]


def check_model(model: str | Path) -> dict:
    """The built-in example (oblique DICOM phantom, `cmrseg segment`) with this checkpoint, compared with the
    truth; written to a temporary folder that is removed. The commands' printout is dropped (their errors still
    reach stderr)."""
    with tempfile.TemporaryDirectory(prefix="cmrseg-example-") as folder:
        out = Path(folder)
        for command in (["phantom", "--out", str(out), "--oblique", "--overwrite"],
                        ["segment", str(out / "dicom"), "--out", str(out / "result"), "--model", str(model)]):
            with contextlib.redirect_stdout(io.StringIO()):
                status = cmrseg_main(command)
            if status != 0:
                raise CMRSegError(f"cmrseg {command[0]} failed on the built-in example with {model}.")
        return compare(out, out / "result")


def format_comparison(comparison: dict) -> str:
    (true_ed, true_es), (found_ed, found_es) = comparison["ed_es"]
    lines = [f"Against the phantom's truth (ED frame {true_ed}, ES frame {true_es}; found {found_ed} and {found_es}):",
             f"{'phase':5} {'structure':9} {'Dice':>6} {'tolerance':>9}"]
    for row in comparison["dice"]:
        verdict = "ok" if row["ok"] else "BELOW TOLERANCE"
        tolerance = f">= {row['tolerance']:.2f}"
        lines.append(f"{row['phase']:5} {row['structure']:9} {row['dice']:6.3f} {tolerance:>9}  {verdict}")
    lines += ["", f"{'parameter':14} {'CMRSeg':>8} {'truth':>8}"]
    for p in comparison["parameters"]:
        verdict = {None: "", True: "  ok", False: f"  {EF_TOLERANCE_POINTS:.0f} POINTS OR MORE OFF"}[p["ok"]]
        lines.append(f"{p['parameter']:14} {p['cmrseg']:8.1f} {p['truth']:8.1f}{verdict}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m cmrseg.phantom_check PHANTOM_DIR RESULT_DIR", file=sys.stderr)
        return 2
    comparison = compare(*argv)
    print(format_comparison(comparison))
    return 0 if passed(comparison) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
