"""The review score: known answers for its signals, truth and metrics, a fit that recovers a known relation,
and the per-slice list a real run writes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ring_hearts import ring_heart

from cmrseg.errors import CMRSegError
from cmrseg.labels import LV, MYO, RV
from cmrseg.review import (
    FEATURES,
    FrameEvidence,
    auc,
    fit_review_model,
    slice_errors,
    slice_features,
    top_share,
)


def heart(slices: int = 6) -> np.ndarray:
    stack = ring_heart(slices, 48, (24, 20), (24, 38), (7, 11, 7))
    stack[0] = 0  # no heart on the first slice
    return stack


def test_auc_and_top_share_known_answers():
    positive = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0], bool)
    assert auc(np.arange(10)[::-1], positive) == 1.0
    assert auc(np.arange(10), positive) == 0.0
    assert auc(np.zeros(10), positive) == 0.5
    assert top_share(np.arange(10)[::-1], positive) == 1.0  # both positives in the top 2 of 10
    assert top_share(np.arange(10)[::-1], None, np.arange(10)) == pytest.approx((0 + 1) / 45)  # weights of the top 2


def test_slice_errors_follow_the_definition():
    truth = heart()
    labels = truth.copy()
    labels[3][labels[3] == LV] = MYO  # LV lost on slice 3: Dice 0 for LV and worse myocardium
    labels[4][truth[4] == RV][:3] = 0
    needs, error = slice_errors(labels, truth, voxel_ml=0.01)
    assert needs.tolist() == [False, False, False, True, False, False]
    lv_voxels = int((truth[3] == LV).sum())
    assert error[3] == pytest.approx(2 * lv_voxels * 0.01)  # LV missing and the same voxels extra in Myo
    tiny = truth.copy()
    tiny[2][(tiny[2] == LV)] = MYO
    needs, _ = slice_errors(tiny, truth, voxel_ml=1e-5)  # the structures are below 0.5 ml: never flagged
    assert not needs.any()


def test_slice_signals_measure_what_they_name():
    labels = heart()
    members = np.repeat(labels[None], 3, axis=0).copy()
    members[2, 3, 20:24, 20:23] = 0  # one member disagrees on 12 voxels of slice 3
    raw = labels.copy()
    raw[5, 0:2, 0:5] = RV  # a stray piece the clean-up removed on slice 5
    evidence = FrameEvidence(members, np.arange(6, dtype=float), raw)
    features = slice_features(evidence, labels, voxel_ml=0.02)
    column = {name: features[:, i] for i, name in enumerate(FEATURES)}
    heart_ml = column["heart"]
    assert heart_ml[0] == 0 and heart_ml[3] == pytest.approx((labels[3] > 0).sum() * 0.02)
    assert column["disagreement"].tolist() == pytest.approx([0, 0, 0, 12 * 0.02, 0, 0])
    assert column["disagreement_share"][3] == pytest.approx(12 * 0.02 / (heart_ml[3] + 0.5))
    assert column["removed"].tolist() == pytest.approx([0, 0, 0, 0, 0, 10 * 0.02])
    assert column["entropy_share"].tolist() == pytest.approx(np.arange(6) * 0.02 / (heart_ml + 0.5))
    assert column["edge"].tolist() == [0, 1, 0, 0, 0, 1]  # first and last slice that hold heart
    assert column["neighbour_change_share"][0] > 0 and column["neighbour_change_share"][3] == 0
    assert column["unenclosed"][3] == 0.0


def test_the_fit_recovers_a_known_relation_and_generalises():
    rng = np.random.default_rng(0)
    features = np.abs(rng.normal(1.0, 1.0, (600, len(FEATURES))))
    features[:, 5] = rng.random(600) < 0.2
    features[:, 6] = rng.random(600)
    risk = 2.5 * np.log1p(features[:, 0]) + 1.5 * features[:, 5] - 2.5
    needs = rng.random(600) < 1 / (1 + np.exp(-3 * risk))
    error = 2.0 * np.log1p(features[:, 0]) + 0.1 * rng.random(600)
    model = fit_review_model(features[:400], needs[:400], error[:400])
    assert np.argmax(np.abs(model.coefficients)) == 0  # disagreement carries the relation
    assert model.coefficients[5] > 0.3  # and the edge flag its smaller part
    assert auc(model.score(features[400:]), needs[400:]) > 0.85
    assert np.corrcoef(model.expected_error_ml(features[400:]), error[400:])[0, 1] > 0.95
    again = type(model).from_dict(json.loads(json.dumps(model.as_dict())))
    np.testing.assert_allclose(again.score(features), model.score(features))
    older = {key: value for key, value in model.as_dict().items() if key != "transform"}  # shares untransformed
    with pytest.raises(CMRSegError, match="differently transformed signals.*refit it"):
        type(model).from_dict(older)


def test_a_review_fit_is_used_only_with_the_weights_it_was_fitted_for(tmp_path):
    from cmrseg.review import load_review_model, review_model_path
    from cmrseg.training.split import file_sha256

    rng = np.random.default_rng(2)
    features = np.abs(rng.normal(1.0, 1.0, (200, len(FEATURES))))
    model = fit_review_model(features, features[:, 2] > 1.2, features[:, 2], signals=["entropy_share"])
    weights = tmp_path / "model.pt"
    weights.write_bytes(b"the weights the score was fitted for")
    review_model_path(weights).write_text(json.dumps(dict(model.as_dict(), model_sha256=file_sha256(weights))))
    assert load_review_model(weights).signals == ["entropy_share"]
    weights.write_bytes(b"other weights, shipped later under the same name")
    with pytest.raises(CMRSegError, match="fitted for other weights than model.pt; refit it"):
        load_review_model(weights)
    review_model_path(weights).write_text(json.dumps(model.as_dict()))  # a fit that does not say for which
    with pytest.raises(CMRSegError, match="fitted for other weights"):
        load_review_model(weights)
    review_model_path(weights).unlink()
    assert load_review_model(weights) is None  # no fit: segmenting goes on without a review score


def test_the_shipped_model_has_a_review_fit_of_its_own_weights():
    from cmrseg.inference import default_model_path
    from cmrseg.review import load_review_model

    review = load_review_model(default_model_path())  # refused if fitted for other weights
    assert review is not None, "after shipping a model, fit its review score: scripts/fit-review"
    assert review.record["fitted_patients"] == sorted(
        json.loads(default_model_path().with_suffix(".split.json").read_text())["val"])


@pytest.mark.shared_data
@pytest.mark.slow
def test_a_run_lists_every_ed_and_es_slice_by_score(acdc_root, model_path, tmp_path):
    from cmrseg.cli import main
    from cmrseg.review import review_model_path

    if not review_model_path(model_path).is_file():
        pytest.skip(f"{model_path} has no fitted review score (scripts/fit-review)")
    out = tmp_path / "out"
    assert main(["segment", str(acdc_root / "patient001"), "--out", str(out), "--model", str(model_path)]) == 0
    measures = json.loads((out / "measures.json").read_text())
    slices = measures["review"]["slices"]
    depth = 10  # patient001 has 10 slices
    assert sorted((e["phase"], e["slice"]) for e in slices) == sorted(
        (phase, z) for phase in ("ED", "ES") for z in range(depth))
    scores = [e["score"] for e in slices]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    report = (out / "report.html").read_text()
    assert "Slices most worth checking" in report
    top = slices[0]
    assert f'alt="{top["phase"]} slice {top["slice"]}" src="data:image/png;base64,' in report  # zoomed view
    intervals = measures["review"]["intervals"]
    assert set(intervals) == {"lv_edv_ml", "lv_ef_pct", "rv_ef_pct", "lv_mass_ed_g"}
    for name, interval in intervals.items():
        assert interval["low"] <= interval["value"] <= interval["high"] and interval["level"] == 0.9
        assert interval["value"] == pytest.approx(measures["study"][name], abs=0.01)


def test_a_score_on_chosen_signals_uses_only_them():
    rng = np.random.default_rng(1)
    features = np.abs(rng.normal(1.0, 1.0, (300, len(FEATURES))))
    needs = features[:, 2] > 1.2
    model = fit_review_model(features, needs, features[:, 2], signals=["entropy_share"])
    shuffled = features.copy()
    shuffled[:, [0, 1, 3]] = rng.permutation(shuffled[:, [0, 1, 3]])  # other signals changed: same score
    np.testing.assert_allclose(model.score(shuffled), model.score(features))
    assert auc(model.score(features), needs) > 0.99


def test_intervals_are_the_calibrated_multiple_of_the_members_spread():
    from cmrseg.review import INTERVAL_FLOORS, calibrate_factors, parameter_intervals

    errors = {"lv_edv_ml": [0.1 * k for k in range(1, 11)]}  # |error| / spread of ten patients
    factors = calibrate_factors(errors)
    assert factors == {"lv_edv_ml": pytest.approx(1.0)}  # the 90 % point, rounded up to a patient
    members = [{"lv_edv_ml": v} for v in (100.0, 104.0, 96.0)]
    interval = parameter_intervals({"lv_edv_ml": 101.0}, members, factors)["lv_edv_ml"]
    half = np.std([100.0, 104.0, 96.0]) + INTERVAL_FLOORS["lv_edv_ml"]
    assert interval["low"] == pytest.approx(101.0 - half, abs=0.01)
    assert interval["high"] == pytest.approx(101.0 + half, abs=0.01)


def test_the_printed_intervals_mark_what_the_quality_check_makes_unusable():
    """An LV lost on an ES slice (a failing check) makes the LV EF unusable: its interval line says so, as the
    parameter table does, instead of an interval; the others are shown as measured, rounded once (59.847 is
    59.8, not 59.85 rounded again to 59.9)."""
    from cmrseg.printout import format_review
    from cmrseg.review import parameter_intervals

    members = [{"lv_ef_pct": v, "rv_ef_pct": w} for v, w in ((37.0, 58.0), (38.0, 60.0), (39.0, 61.0))]
    intervals = parameter_intervals({"lv_ef_pct": 38.1, "rv_ef_pct": 59.847}, members,
                                    {"lv_ef_pct": 2.0, "rv_ef_pct": 2.0})
    qc = {"status": "fail", "flags": [{"code": "lv_gap", "severity": "fail", "phase": "ES", "slice": 6,
                                       "message": "LV missing on slice 6"}]}
    lines = format_review({"slices": [], "intervals": intervals}, qc).splitlines()
    assert lines[-2].split() == ["lv_ef_pct", "38.1", "NOT", "USABLE", "(quality", "check:", "lv_gap)"]
    assert lines[-1].split()[:2] == ["rv_ef_pct", "59.8"] and "NOT USABLE" not in lines[-1]
    assert "NOT USABLE" not in format_review({"slices": [], "intervals": intervals}, {"status": "pass", "flags": []})


def test_a_review_thumbnail_is_the_zoomed_heart_with_outlines():
    import base64
    import io

    from matplotlib.image import imread

    from cmrseg.report import heart_box, slice_thumbnail

    labels = heart()
    image = np.random.default_rng(0).random(labels.shape)
    box = heart_box(labels, margin=2)
    rows = np.flatnonzero(labels.any(axis=(0, 2)))
    assert box[:2] == (rows[0] - 2, rows[-1] + 3)
    picture = imread(io.BytesIO(base64.b64decode(slice_thumbnail(image[3], labels[3], box, size=120))))
    height, width = box[1] - box[0], box[3] - box[2]
    zoom = 120 // max(height, width)
    assert picture.shape[:2] == (height * zoom, width * zoom)
    red = (picture[..., 0] > 0.99) & (picture[..., 1] < 0.01) & (picture[..., 2] < 0.01)
    assert red.any()  # the LV outline in the LV colour


def test_an_ejection_fraction_interval_stays_within_0_and_100_percent():
    from cmrseg.review import parameter_intervals

    members = [{"rv_ef_pct": v} for v in (20.0, 60.0, 95.0)]
    interval = parameter_intervals({"rv_ef_pct": 80.0}, members, {"rv_ef_pct": 3.0})["rv_ef_pct"]
    assert (interval["low"], interval["high"]) == (0.0, 100.0)  # 80 +- 98 % clipped to what an EF can be
    # An impossible value (ESV > EDV gives a negative EF) gets no interval that would exclude it.
    assert parameter_intervals({"rv_ef_pct": -64.8}, members, {"rv_ef_pct": 3.0}) == {}


def synthetic_frames(patients: int, seed: int = 0) -> list:
    """ED and ES frames of ring hearts where the network lost the LV on some slices, and exactly there one of
    three members disagrees: the disagreement signal alone tells the slices that need correction."""
    from cmrseg.review_eval import SegmentedFrame

    rng = np.random.default_rng(seed)
    frames = []
    for p in range(patients):
        for phase, cavity in (("ED", 9), ("ES", 6)):
            truth = ring_heart(8, 48, (24, 20), (24, 38), (cavity, cavity + 4, 7))
            labels = truth.copy()
            members = np.repeat(truth[None], 3, axis=0).copy()
            for z in rng.choice(8, size=2, replace=False):
                labels[z][truth[z] == LV] = MYO
                members[2, z][truth[z] == LV] = MYO
            evidence = FrameEvidence(members, np.zeros(8), labels.copy())
            frames.append(SegmentedFrame(f"p{p}", phase, labels, evidence, truth, 0.02))
    return frames


def test_leaving_each_patient_out_measures_a_score_it_never_fitted_on():
    from cmrseg.review import INTERVAL_PARAMETERS
    from cmrseg.review_eval import held_out_scores, leave_one_patient_out, slice_set

    frames = synthetic_frames(patients=6)
    metrics = leave_one_patient_out(frames)
    slices = slice_set(frames)
    score = metrics["review score"]
    assert score["all"]["slices"] == len(slices.needs) == 6 * 2 * 8
    assert score["all"]["needing_correction"] == int(slices.needs.sum()) == 6 * 2 * 2
    assert score["all"]["auc"] == score["ED"]["auc"] == score["ES"]["auc"] == 1.0  # disagreement tells them all
    assert score["all"]["top20_recall"] == round(19 / 24, 4)  # the top 20 % of 96 slices: 19 of the 24 needing it
    assert set(metrics["interval_coverage"]) == set(INTERVAL_PARAMETERS)
    assert all(0.0 <= share <= 1.0 for share in metrics["interval_coverage"].values())
    # A patient's own truth never reaches its scores: flipping it leaves them as they were, and moves the others'.
    scores, expected = held_out_scores(slices)
    flipped = slices.subset(np.ones(len(slices.needs), bool))
    own = flipped.patient == "p0"
    flipped.needs[own] = ~flipped.needs[own]
    flipped.error_ml[own] = 10 * flipped.error_ml[own] + 1.0
    again, again_expected = held_out_scores(flipped)
    np.testing.assert_array_equal(again[own], scores[own])
    np.testing.assert_array_equal(again_expected[own], expected[own])
    assert not np.allclose(again[~own], scores[~own])
