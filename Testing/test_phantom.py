"""The synthetic cine phantom: determinism, analytic truth, label maps, contrast, NIfTI/NRRD round trip."""

from __future__ import annotations

import numpy as np
import pytest

from cmrseg import labels
from cmrseg.errors import CMRSegError
from cmrseg.io.volume_files import read_volume_file, write_frame, write_study
from cmrseg.measures import MYOCARDIAL_DENSITY_G_PER_ML, frame_measures, study_measures
from cmrseg.phantom import Phantom, make_phantom

# Voxel-centre label maps are a midpoint rule of the analytic volumes: at 1.5 x 1.5 x 8 mm the
# difference stays below 1.6 % (LV), 1.2 % (Myo) and 1.6 % (RV) for seeds 0-5; allow 2.5 %.
VOLUME_TOLERANCE = 0.025


def small(seed: int, **kwargs) -> Phantom:
    return make_phantom(seed=seed, frames=3, slices=5, matrix=(112, 112), **kwargs)


def test_same_seed_gives_the_same_phantom_and_another_seed_a_different_one():
    first, again, other = small(3), small(3), small(4)
    np.testing.assert_array_equal(first.study.image, again.study.image)
    np.testing.assert_array_equal(first.labels, again.labels)
    assert first.truth.summary() == again.truth.summary()
    assert first.study.patient == again.study.patient
    assert not np.array_equal(first.study.image, other.study.image)
    assert not np.array_equal(first.labels, other.labels)
    assert first.truth.summary() != other.truth.summary()


@pytest.mark.parametrize("fixture", ["phantom", "oblique_phantom"])
def test_voxel_count_volumes_agree_with_the_analytic_volumes(fixture, request):
    phantom = request.getfixturevalue(fixture)
    counted = phantom.label_volumes_ml()
    for key, analytic in phantom.truth.volumes_ml.items():
        np.testing.assert_allclose(counted[key], analytic, rtol=VOLUME_TOLERANCE, err_msg=key)


def test_analytic_volumes_equal_a_brute_force_integration_of_the_shapes(phantom):
    """Closed forms (LV, epicardium) and quadrature (RV) against sums over fine z and angle grids."""
    shape = phantom.shape
    z = np.linspace(0.0, 120.0, 240_001)  # from the base plane, 0.5 um steps
    dz = z[1] - z[0]
    theta = np.linspace(-1.0, 1.0, 200_001) * shape.rv_half_angle_rad
    crescent = np.cos(0.5 * np.pi * theta / shape.rv_half_angle_rad) ** shape.rv_profile_power

    def profile(cap: float) -> np.ndarray:
        h = z - shape.cylinder_mm
        return np.where(h <= 0, 1.0, np.sqrt(np.clip(1 - (h / cap) ** 2, 0, None)))

    for t in (phantom.truth.ed_frame, phantom.truth.es_frame):
        frame = phantom.frames[t]
        lv = np.pi * (frame.lv_radius * profile(frame.lv_cap)) ** 2
        epi_radius = frame.epi_radius * profile(frame.epi_cap)
        epi = np.pi * epi_radius**2
        width = frame.rv_width * profile(shape.rv_cap_mm)
        # ((R + w c)^2 - R^2) / 2 integrated over the crescent's angle, the angular sums done numerically.
        rv = epi_radius * width * np.trapezoid(crescent, theta) + width**2 / 2 * np.trapezoid(crescent**2, theta)
        truth = phantom.truth.volumes_ml
        assert np.trapezoid(lv, dx=dz) / 1000 == pytest.approx(truth["LV"][t], rel=1e-6)
        assert np.trapezoid(epi - lv, dx=dz) / 1000 == pytest.approx(truth["Myo"][t], rel=1e-6)
        assert np.trapezoid(rv, dx=dz) / 1000 == pytest.approx(truth["RV"][t], rel=1e-5)


def test_truth_has_realistic_function_with_ed_largest_and_es_smallest(phantom):
    truth = phantom.truth
    assert (truth.ed_frame, truth.es_frame) == (0, 7)
    for key in ("LV", "RV"):
        volumes = truth.volumes_ml[key]
        assert np.argmax(volumes) == truth.ed_frame and np.argmin(volumes) == truth.es_frame
        assert truth.sv(key) == pytest.approx(truth.edv(key) - truth.esv(key))
    assert 55 <= truth.ef_percent("LV") <= 65
    assert truth.ef_percent("LV") == pytest.approx(100 * phantom.shape.lv_ef)  # the shapes hit their targets
    assert 45 <= truth.ef_percent("RV") <= 60
    assert truth.ef_percent("RV") == pytest.approx(100 * phantom.shape.rv_ef)
    assert 90 <= truth.edv("LV") <= 150 and 90 <= truth.edv("RV") <= 150
    myo = truth.volumes_ml["Myo"]
    np.testing.assert_allclose(myo, myo[0], rtol=1e-12)  # myocardial volume conserved
    assert truth.myo_mass_g(0) == pytest.approx(myo[0] * MYOCARDIAL_DENSITY_G_PER_ML)
    summary = truth.summary()
    assert summary["lv_ef_pct"] == pytest.approx(truth.ef_percent("LV"))
    assert 70 <= summary["lv_mass_ed_g"] <= 150


def test_clinical_measures_of_the_label_maps_match_the_truth(phantom):
    """cmrseg.measures on the phantom's label maps gives the analytic parameters (EF within 1 point)."""
    truth = phantom.truth
    ed, es = (frame_measures(phantom.labels[t], phantom.study.spacing) for t in (truth.ed_frame, truth.es_frame))
    measured = study_measures(ed, es).as_dict()
    for key, value in truth.summary().items():
        if key.endswith("_pct"):
            assert measured[key] == pytest.approx(value, abs=1.0), key
        else:
            assert measured[key] == pytest.approx(value, rel=VOLUME_TOLERANCE), key


def test_the_wall_thickens_in_systole(phantom):
    ed, es = phantom.frames[phantom.truth.ed_frame], phantom.frames[phantom.truth.es_frame]
    assert es.epi_radius - es.lv_radius > 1.2 * (ed.epi_radius - ed.lv_radius)


def test_study_carries_geometry_times_phases_and_patient(phantom):
    study = phantom.study
    assert study.image.shape == (20, 10, 160, 160) and study.image.dtype == np.float32
    assert phantom.labels.shape == study.image.shape and phantom.labels.dtype == np.uint8
    assert set(np.unique(phantom.labels)) == {0, labels.RV, labels.MYO, labels.LV}
    assert study.spacing == (1.5, 1.5, 8.0)
    np.testing.assert_array_equal(study.direction, np.eye(3))
    assert study.frame_times_ms[0] == 0 and 850 <= study.frame_times_ms[-1] <= 950
    assert np.all(np.diff(study.frame_times_ms) > 0)
    assert (study.ed_frame, study.es_frame) == (0, 7)
    patient = study.patient
    assert patient.sex in ("M", "F") and 150 <= patient.height_cm <= 200 and 50 <= patient.weight_kg <= 100
    assert 18 <= patient.age_years <= 90 and patient.patient_id
    # The slice above the base holds no ventricle; every other slice holds LV.
    assert not phantom.labels[:, 0].any()
    assert all((phantom.labels[0, z] == labels.LV).any() for z in range(1, 9))


def test_oblique_phantom_has_a_rotation_and_the_same_truth_as_the_straight_one(oblique_phantom):
    direction = oblique_phantom.study.direction
    np.testing.assert_allclose(direction.T @ direction, np.eye(3), atol=1e-12)
    assert np.linalg.det(direction) == pytest.approx(1.0)
    assert np.max(np.abs(direction - np.eye(3))) > 0.2
    straight = make_phantom(seed=1, frames=4, slices=8, matrix=(112, 128), pixel_spacing_mm=1.8)
    np.testing.assert_array_equal(straight.labels, oblique_phantom.labels)
    assert straight.truth.summary() == oblique_phantom.truth.summary()


def test_ssfp_contrast_bright_blood_dark_myocardium(phantom):
    image, label_maps = phantom.study.image, phantom.labels
    mean = {s.key: float(image[label_maps == s.label].mean()) for s in labels.STRUCTURES}
    background = image[0][label_maps[0] == labels.BACKGROUND]
    assert mean["LV"] > 0.8 and mean["RV"] > 0.8
    assert mean["Myo"] < 0.45
    assert min(mean["LV"], mean["RV"]) - mean["Myo"] > 0.45
    # The surroundings vary: air and lung darker than myocardium, fat nearly as bright as blood.
    assert np.percentile(background, 20) < 0.1 and np.percentile(background, 99) > 0.7
    assert image.min() >= 0  # Rician magnitude


def test_noise_free_phantom_has_partial_volume_at_edges(phantom):
    clean = make_phantom(seed=0, frames=2, noise=0.0)
    edge = clean.study.image[0][clean.labels[0] == labels.MYO]
    assert np.unique(np.round(edge, 3)).size > 20  # mixed values, not just the two tissue levels


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd"])
def test_study_and_labels_round_trip_through_volume_files(oblique_phantom, tmp_path, suffix):
    study = oblique_phantom.study
    read = read_volume_file(write_study(study, tmp_path / f"cine{suffix}"))
    np.testing.assert_array_equal(read.image, study.image)
    atol = 1e-5 if suffix == ".nii.gz" else 1e-9  # NIfTI keeps geometry in float32
    np.testing.assert_allclose(read.spacing, study.spacing, atol=atol)
    np.testing.assert_allclose(read.origin, study.origin, atol=atol * 100)
    np.testing.assert_allclose(read.direction, study.direction, atol=atol)
    if suffix == ".nii.gz":  # NIfTI names its time unit
        np.testing.assert_allclose(read.frame_times_ms, study.frame_times_ms, atol=1e-3)
    else:  # NRRD written by ITK gives the time axis no unit: the times are unknown, never guessed
        assert not read.frame_times_known and read.summary()["frame_times_ms"] is None
    es = oblique_phantom.truth.es_frame
    frame = read_volume_file(write_frame(oblique_phantom.labels[es], study, tmp_path / f"es_gt{suffix}"))
    np.testing.assert_array_equal(frame.image[0], oblique_phantom.labels[es])


def test_impossible_requests_raise_a_project_error():
    with pytest.raises(CMRSegError, match="at least 2 frames"):
        make_phantom(frames=1)
    with pytest.raises(CMRSegError, match="does not fit"):
        make_phantom(frames=2, matrix=(60, 60))


def test_the_phantom_command_replaces_an_earlier_phantom_whole_and_keeps_other_files(tmp_path, capsys):
    """--overwrite left a longer earlier cine's extra phases beside the new ones: a folder of two series."""
    from cmrseg.cli import main

    out = tmp_path / "out" / "phantom"  # a parent not there yet: scripts/example on a fresh clone
    assert main(["phantom", "--out", str(out), "--frames", "4"]) == 0
    (out / "notes.txt").write_text("the user's")
    assert main(["phantom", "--out", str(out), "--frames", "3", "--overwrite"]) == 0
    assert len(list((out / "dicom").iterdir())) == 3 * 10  # 3 phases of 10 slices, none of the earlier 4
    assert (out / "notes.txt").read_text() == "the user's"
    assert not list(out.glob(".cmrseg-phantom-*"))
    assert main(["phantom", "--out", str(out), "--frames", "3"]) == 2  # not empty, no --overwrite
    assert "is not empty" in capsys.readouterr().err
    (out / "dicom" / "scan.dcm").write_text("a user's file")  # never removed with an earlier phantom
    assert main(["phantom", "--out", str(out), "--frames", "3", "--overwrite"]) == 2
    assert "holds files that are not a phantom's" in capsys.readouterr().err
    assert (out / "dicom" / "scan.dcm").read_text() == "a user's file"
    # A user's own cine.nii.gz and truth.json of the phantom's names (no phantom truth): never replaced.
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "cine.nii.gz").write_bytes(b"the user's cine")
    (mine / "truth.json").write_text('{"notes": "the user\'s"}')
    assert main(["phantom", "--out", str(mine), "--overwrite"]) == 2
    assert "holds cine.nii.gz, truth.json, not a phantom's" in capsys.readouterr().err
    assert (mine / "cine.nii.gz").read_bytes() == b"the user's cine" and len(list(mine.iterdir())) == 2
