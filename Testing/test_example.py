"""The README's first command (scripts/example): the shipped model on the built-in oblique phantom DICOM cine
segments every structure at ED and ES within the stated Dice tolerances."""

from __future__ import annotations

import json

import pytest

from cmrseg.cli import main
from cmrseg.phantom_check import EF_TOLERANCE_POINTS, TOLERANCE_DICE, compare, passed
from cmrseg.phantom_check import main as check_main


@pytest.mark.slow
def test_the_example_is_segmented_within_the_stated_tolerances(model_path, tmp_path, capsys):
    out = tmp_path / "example"
    assert main(["phantom", "--out", str(out), "--oblique"]) == 0  # what scripts/example runs
    assert main(["segment", str(out / "dicom"), "--out", str(out / "result"), "--model", str(model_path)]) == 0
    comparison = compare(out, out / "result")
    (true_ed, true_es), found = comparison["ed_es"]
    assert found == (true_ed, true_es)  # ED/ES found from the volume curve are the phantom's own
    assert {(row["phase"], row["structure"]) for row in comparison["dice"]} == set(TOLERANCE_DICE)
    for row in comparison["dice"]:
        assert row["dice"] >= row["tolerance"], row
    measures = json.loads((out / "result" / "measures.json").read_text())
    truth = json.loads((out / "truth.json").read_text())
    for row in comparison["parameters"]:
        assert (row["cmrseg"], row["truth"]) == (measures["study"][row["parameter"]], truth[row["parameter"]])
    # The ejection fractions, the clinical bottom line, within 5 points of the analytic ones.
    assert EF_TOLERANCE_POINTS == 5
    assert abs(measures["study"]["lv_ef_pct"] - truth["lv_ef_pct"]) < 5
    assert abs(measures["study"]["rv_ef_pct"] - truth["rv_ef_pct"]) < 5
    assert passed(comparison)
    capsys.readouterr()
    assert check_main([str(out), str(out / "result")]) == 0
    printed = capsys.readouterr().out
    assert "BELOW TOLERANCE" not in printed and "POINTS OR MORE OFF" not in printed
    assert printed.count(" ok") == 8  # six Dice values and two ejection fractions


def test_the_tolerances_are_the_shipped_models_worst_test_patient_rounded_down():
    """The rule the README states, held to the checkpoint's own per-case values."""
    import math

    from cmrseg.inference import default_model_path
    from cmrseg.model import read_checkpoint

    metrics = read_checkpoint(default_model_path())[0]["metrics"]
    cases = metrics.get("test_cases") or metrics["cross_validation_cases"]
    for (phase, structure), tolerance in TOLERANCE_DICE.items():
        worst = min(c["dice"] for c in cases if c["phase"] == phase and c["structure"] == structure)
        assert tolerance == math.floor(worst * 20) / 20, (phase, structure, worst)
