"""Reference ranges: the shipped table's rows, flags and z-scores against hand-computed answers, the cases
where ranges must not be applied, the patient's age from DICOM dates, and the ranges in the command's
outputs (measures.json, the printed table, the HTML and PDF reports)."""

from __future__ import annotations

import csv
import dataclasses
import json

import pydicom
import pytest

from cmrseg.cli import main
from cmrseg.errors import CMRSegError
from cmrseg.io.dicom_cine import _age_from_dates, read_dicom_cine
from cmrseg.io.dicom_write import write_dicom_cine
from cmrseg.io.volume_files import read_volume_file
from cmrseg.labels import LV
from cmrseg.measures import StudyMeasures
from cmrseg.phantom import make_phantom
from cmrseg.printout import basal_removed_text
from cmrseg.reference import RANGES_FILE, compare_with_ranges, flag_text, load_ranges

MEASURE_FIELDS = {f.name for f in dataclasses.fields(StudyMeasures)}


def test_every_shipped_row_is_a_measured_parameter_with_a_cited_source():
    ranges = load_ranges()
    assert len(ranges) >= 16
    for row in ranges:
        assert row.parameter in MEASURE_FIELDS, row.parameter
        assert "doi:10." in row.source and row.where, row  # each number can be looked up where it came from
        assert row.papillary_muscles in ("blood pool", "myocardium", "not stated")
        expected_unit = {"_ml": "ml", "_pct": "%", "_index": ("ml/m²", "g/m²")}
        for suffix, unit in expected_unit.items():
            if row.parameter.endswith(suffix):
                assert row.unit in ((unit,) if isinstance(unit, str) else unit), row
    keys = {(r.parameter, r.sex, r.age_min) for r in ranges}
    assert len(keys) == len(ranges)  # one row per parameter, sex and age band: one way to pick a range
    for parameter in {r.parameter for r in ranges}:  # both sexes for every parameter
        assert {r.sex for r in ranges if r.parameter == parameter} == {"F", "M"}, parameter


def test_flags_and_z_scores_by_hand():
    # Petersen 2017: LV EF women 61 +/- 5 %, limits 61 -/+ 1.96 x 5 = 51.2 and 70.8.
    measures = {"lv_ef_pct": 45.0, "lv_edv_ml": 160.0, "rv_ef_pct": 50.0, "bsa_m2": 1.8}
    result = compare_with_ranges(measures, "F", 50)
    ef = result["parameters"]["lv_ef_pct"]
    assert (ef["lower"], ef["upper"]) == pytest.approx((51.2, 70.8))
    assert ef["z"] == pytest.approx(-3.2) and ef["flag"] == "low"
    assert ef["papillary_muscles"] == "blood pool" and "Petersen" in ef["source"]
    # Hudsmith 2005: LV EDV women 135 +/- 26 ml; papillary muscles in the myocardium there, said so.
    edv = result["parameters"]["lv_edv_ml"]
    assert edv["z"] == pytest.approx(25 / 26) and edv["flag"] == "normal"
    assert "papillary muscles in the myocardium" in edv["convention"]
    assert result["without_range"] == ["rv_ef_pct"]  # no RV EF range is shipped: no flag rather than a guess
    assert "bsa_m2" not in result["parameters"] and result["applied"]
    assert flag_text(ef) == "low (51.2-70.8 %, z -3.2)"
    # where the flag is read, the range's other convention is said too (it was only in measures.json)
    assert flag_text(edv) == "normal (84.0-186.0 ml, z +1.0; its source counts papillary muscles as myocardium)"
    male = compare_with_ranges({"lv_ef_pct": 45.0}, "male", 50)["parameters"]["lv_ef_pct"]
    assert male["mean"] == 58 and male["z"] == pytest.approx(-2.6)  # the male row, not the female one
    high = compare_with_ranges({"lv_ef_pct": 71.0}, "F", 50)["parameters"]["lv_ef_pct"]
    assert high["flag"] == "high"
    edge = compare_with_ranges({"lv_ef_pct": 51.2}, "F", 50)["parameters"]["lv_ef_pct"]
    assert edge["flag"] == "normal"  # the limits belong to the range
    # Judged as printed: 51.18 shows as 51.2, the lower limit itself, so it is not called low ...
    shown_at_limit = compare_with_ranges({"lv_ef_pct": 51.18}, "F", 50)["parameters"]["lv_ef_pct"]
    assert shown_at_limit["flag"] == "normal" and shown_at_limit["value"] == 51.18  # the value is kept as measured
    # ... while 51.14 shows as 51.1, below it.
    assert compare_with_ranges({"lv_ef_pct": 51.14}, "F", 50)["parameters"]["lv_ef_pct"]["flag"] == "low"


def test_no_sex_or_another_sex_applies_no_range():
    unknown = compare_with_ranges({"lv_ef_pct": 30.0}, None, 50)
    assert not unknown["applied"] and unknown["parameters"] == {} and "Sex unknown" in unknown["note"]
    other = compare_with_ranges({"lv_ef_pct": 30.0}, "O", 50)
    assert not other["applied"] and other["parameters"] == {} and "women and men only" in other["note"]


def test_ages_outside_the_source_get_no_flag_and_unknown_age_is_said():
    young = compare_with_ranges({"lv_ef_pct": 30.0, "lv_edv_ml": 150.0}, "M", 30)
    assert young["parameters"]["lv_ef_pct"]["flag"] is None  # UK Biobank ranges are for 45-74 years
    assert young["parameters"]["lv_ef_pct"]["reason"] == "age 30 outside the source's 45-74 years"
    assert young["parameters"]["lv_edv_ml"]["flag"] == "normal"  # Hudsmith covers 21-68
    assert flag_text(young["parameters"]["lv_ef_pct"]).startswith("age 30 outside")
    unknown_age = compare_with_ranges({"lv_ef_pct": 30.0}, "M", None)
    assert unknown_age["parameters"]["lv_ef_pct"]["flag"] == "low" and "Age unknown" in unknown_age["note"]


def test_indexed_ranges_need_height_and_weight():
    result = compare_with_ranges({"lv_edv_ml": 150.0, "lv_edv_index": None}, "F", 40)
    assert "lv_edv_index" not in result["parameters"] and "Height or weight unknown" in result["note"]


def test_a_broken_ranges_file_is_refused(tmp_path):
    with open(RANGES_FILE, newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    rows[0]["sd"] = "0"
    broken = tmp_path / "ranges.csv"
    with open(broken, "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(CMRSegError, match="line 2"):
        load_ranges(broken)


def test_age_from_birth_and_study_dates():
    assert _age_from_dates("19700615", "20200614") == 49.0
    assert _age_from_dates("19700615", "20200615") == 50.0
    assert _age_from_dates("00000000", "20200615") is None  # anonymised
    assert _age_from_dates("", "20200615") is None


def test_dicom_age_from_dates_when_patient_age_is_missing(tmp_path):
    phantom = make_phantom(seed=3, frames=2, slices=6, matrix=(120, 128))
    write_dicom_cine(phantom.study, tmp_path / "dicom")
    for path in (tmp_path / "dicom").rglob("*.dcm"):
        ds = pydicom.dcmread(path)
        del ds.PatientAge
        ds.PatientBirthDate, ds.StudyDate = "19600301", "20240229"
        ds.save_as(path)
    assert read_dicom_cine(tmp_path / "dicom").patient.age_years == 63.0


def test_segment_reports_the_ranges_everywhere(model_path, tmp_path, capsys):
    pdfium = pytest.importorskip("pypdfium2")
    phantom = make_phantom(seed=8, frames=6, slices=8, matrix=(120, 128))
    write_dicom_cine(phantom.study, tmp_path / "dicom")
    out = tmp_path / "out"
    assert main(["segment", str(tmp_path / "dicom"), "--out", str(out), "--model", str(model_path), "--report", "pdf",
                 "--height", "175", "--weight", "70", "--sex", "F", "--age", "52",
                 "--basal-rule", "100"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    measures = json.loads((out / "measures.json").read_text())
    # The basal rule's work is on record for every segmented frame and named for ED and ES.
    removed = measures["basal_rule_removed_slices"]
    assert set(removed) == set(measures["frames"])
    for frame in (str(measures["ed_frame"]), str(measures["es_frame"])):
        labels = read_volume_file(out / measures["frames"][frame]["file"]).image[0]
        assert all(not (labels[z] == LV).any() for z in removed[frame])
    assert f"Basal-slice rule: 100 ({basal_removed_text(measures)})" in printed
    assert basal_removed_text(measures).startswith("LV blood pool removed: ED ")
    assert "(from slice positions)" in (out / "report.html").read_text()  # DICOM: spacing from the positions
    reference = measures["reference"]
    assert reference["applied"] and reference["sex"] == "F" and reference["age_years"] == 52
    expected = compare_with_ranges(measures["study"], "F", 52)
    assert reference["parameters"].keys() == expected["parameters"].keys()
    for key, entry in expected["parameters"].items():
        assert reference["parameters"][key]["flag"] == entry["flag"]
        assert reference["parameters"][key]["z"] == pytest.approx(entry["z"])
    ef = reference["parameters"]["lv_ef_pct"]
    assert ef["z"] == pytest.approx((measures["study"]["lv_ef_pct"] - 61) / 5)
    assert flag_text(ef) in printed and "applied for F, 52 years" in printed
    assert flag_text(ef) in (out / "report.html").read_text()
    with open(out / "measures.csv", newline="") as stream:
        assert ["lv_ef_pct_reference", flag_text(ef)] in list(csv.reader(stream))
    document = pdfium.PdfDocument(str(out / "report.pdf"))
    text = document[0].get_textpage().get_text_range()
    document.close()
    assert "applied for F, 52 years" in text and "Petersen SE" in text


@pytest.mark.parametrize(("options", "message"), [
    (["--sex", "X"], "--sex 'X' is not a sex"),
    (["--age", "200"], "--age 200 is not a plausible age"),
])  # fmt: skip
def test_bad_sex_or_age_is_one_clear_error(options, message, model_path, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["segment", str(tmp_path), "--out", str(out), "--model", str(model_path), *options]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("cmrseg: error: ") and message in error[0]
    assert not out.exists()
