"""The DICOM cine reader on the two Sunnybrook studies and on broken copies of a few of their files."""

from __future__ import annotations

import logging
import re
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_edit import edit
from pydicom import config as dicom_config

from cmrseg.errors import CMRSegError
from cmrseg.io.dicom_cine import (
    DicomReadWarning,
    InstanceRef,
    read_dicom_cine,
    read_dicom_cine_with_index,
    scan_dicom_folder,
)
from cmrseg.io.dicom_series import cine_stacks
from cmrseg.io.study import Study

pytestmark = pytest.mark.shared_data

CASES = ("SCD0000101", "SCD0000201")


def dcmread(path: Path, **kwargs) -> pydicom.Dataset:
    with dicom_config.disable_value_validation():
        return pydicom.dcmread(path, **kwargs)


@dataclass
class Cine:
    folder: Path
    study: Study
    refs: list[InstanceRef]
    headers: dict[Path, pydicom.Dataset]  # read independently of the reader

    def normal(self) -> np.ndarray:
        iop = np.array(next(iter(self.headers.values())).ImageOrientationPatient, dtype=float)
        return np.cross(iop[:3], iop[3:])

    def projection(self, path: Path) -> float:
        return float(np.dot(self.normal(), np.array(self.headers[path].ImagePositionPatient, dtype=float)))

    def positions(self) -> np.ndarray:
        """Distinct slice positions along the normal, ascending, computed here from the headers."""
        return np.unique(np.round([self.projection(p) for p in self.headers], 2))

    def frame_and_slice(self, path: Path) -> tuple[int, int]:
        """(t, z) of a file, from its position rank and its TriggerTime rank at that position."""
        z = int(np.argmin(np.abs(self.positions() - self.projection(path))))
        same = [p for p in self.headers if abs(self.projection(p) - self.projection(path)) < 0.05]
        times = sorted(float(self.headers[p].TriggerTime) for p in same)
        return times.index(float(self.headers[path].TriggerTime)), z


@pytest.fixture(scope="module", params=CASES)
def cine(request, sunnybrook_root: Path) -> Cine:
    folder = sunnybrook_root / "dicoms" / request.param
    study, refs = read_dicom_cine_with_index(folder)
    headers = {p: dcmread(p, stop_before_pixels=True) for p in sorted(folder.glob("*.dcm"))}
    return Cine(folder, study, refs, headers)


# --------------------------------------------------------------------------------------- real studies


def test_shape_and_type(cine: Cine) -> None:
    first = next(iter(cine.headers.values()))
    t, z, y, x = cine.study.image.shape
    assert t == 20 and z in (12, 13) and t * z == len(cine.headers)
    assert (y, x) == (first.Rows, first.Columns)
    assert cine.study.image.dtype == np.float32
    assert cine.study.source == str(cine.folder)


def test_spacing_from_pixel_spacing_and_positions(cine: Cine) -> None:
    row_spacing, col_spacing = (float(v) for v in next(iter(cine.headers.values())).PixelSpacing)
    positions = cine.positions()
    assert len(positions) == cine.study.num_slices
    assert cine.study.spacing[0] == pytest.approx(col_spacing)
    assert cine.study.spacing[1] == pytest.approx(row_spacing)
    assert cine.study.spacing[2] == pytest.approx(np.mean(np.diff(positions)), abs=1e-3)
    assert cine.study.spacing[2] == pytest.approx(10.0, abs=0.01)  # SpacingBetweenSlices says 10 too
    print(f"{cine.folder.name}: spacing {cine.study.spacing}")


def test_origin_and_direction(cine: Cine) -> None:
    lowest = min(cine.headers, key=cine.projection)
    assert np.allclose(cine.study.origin, np.array(cine.headers[lowest].ImagePositionPatient, dtype=float))
    iop = np.array(cine.headers[lowest].ImageOrientationPatient, dtype=float)
    assert np.allclose(cine.study.direction[:, 0], iop[:3])
    assert np.allclose(cine.study.direction[:, 1], iop[3:])
    assert np.allclose(cine.study.direction[:, 2], cine.normal(), atol=1e-6)
    # The last slice's first pixel lies at that slice's ImagePositionPatient.
    highest = max(cine.headers, key=cine.projection)
    last_corner = cine.study.index_to_lps(np.array([0.0, 0.0, cine.study.num_slices - 1]))
    assert np.allclose(last_corner, np.array(cine.headers[highest].ImagePositionPatient, dtype=float), atol=0.01)
    print(f"{cine.folder.name}: origin {cine.study.origin}, normal {np.round(cine.normal(), 4)}")


def test_frame_times(cine: Cine) -> None:
    times = cine.study.frame_times_ms
    assert times.shape == (20,)
    assert np.all(np.diff(times) > 0)
    assert 0 < times[0] < 50 and times[-1] < 1000


def test_pixels_match_instance_files(cine: Cine) -> None:
    for path in (cine.folder / "25.dcm", max(cine.headers, key=cine.projection)):
        ds = dcmread(path)
        expected = ds.pixel_array * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
        t, z = cine.frame_and_slice(path)
        np.testing.assert_array_equal(cine.study.image[t, z], expected.astype(np.float32))


def test_index_maps_every_file_once(cine: Cine) -> None:
    assert len(cine.refs) == len(cine.headers)
    assert len({(r.frame, r.slice) for r in cine.refs}) == len(cine.refs)
    for ref in cine.refs[::7]:
        assert (ref.frame, ref.slice) == cine.frame_and_slice(ref.path)
    # In the shared copy the file NNNN.dcm is InstanceNumber NNNN (what the contour files refer to).
    assert all(int(r.path.stem) == r.instance_number == int(cine.headers[r.path].InstanceNumber) for r in cine.refs)


def test_patient(cine: Cine) -> None:
    assert cine.study.patient.patient_id == cine.folder.name
    assert cine.study.patient.height_cm is None and cine.study.patient.weight_kg is None  # absent here


# ------------------------------------------------------------------------------------- broken copies

BLOCKS, PHASES = 5, 3  # instance b * 20 + p (p = 1..3) of SCD0000101: 5 adjacent slices x 3 phases


@pytest.fixture
def small(tmp_path: Path, sunnybrook_root: Path) -> Path:
    """A 5-slice x 3-phase copy of part of SCD0000101 in a temporary folder."""
    source = sunnybrook_root / "dicoms" / "SCD0000101"
    folder = tmp_path / "cine"
    folder.mkdir()
    for block in range(BLOCKS):
        for phase in range(1, PHASES + 1):
            name = f"{block * 20 + phase}.dcm"
            shutil.copy(source / name, folder / name)
    return folder


def test_small_copy_reads(small: Path) -> None:
    study = read_dicom_cine(small)
    assert study.image.shape == (PHASES, BLOCKS, 256, 256)


def test_not_a_folder_and_no_dicom(tmp_path: Path) -> None:
    with pytest.raises(CMRSegError, match="not a folder"):
        read_dicom_cine(tmp_path / "nowhere")
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.warns(DicomReadWarning, match="notes.txt"), pytest.raises(CMRSegError, match="No DICOM images"):
        read_dicom_cine(tmp_path)


def test_non_dicom_file_is_named_and_skipped(small: Path) -> None:
    (small / "notes.txt").write_text("not an image")
    with pytest.warns(DicomReadWarning, match="notes.txt"):
        study = read_dicom_cine(small)
    assert study.image.shape == (PHASES, BLOCKS, 256, 256)


def test_truncated_header_is_named(small: Path) -> None:
    path = small / "22.dcm"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.warns(DicomReadWarning, match="22.dcm"), pytest.raises(CMRSegError, match="22.dcm"):
        read_dicom_cine(small)


def test_truncated_pixel_data_is_named(small: Path) -> None:
    path = small / "23.dcm"
    path.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(CMRSegError, match="23.dcm"):
        read_dicom_cine(small)


def test_missing_phase_names_the_position(small: Path) -> None:
    ds = dcmread(small / "1.dcm", stop_before_pixels=True)
    iop = np.array(ds.ImageOrientationPatient, dtype=float)
    position = float(np.dot(np.cross(iop[:3], iop[3:]), np.array(ds.ImagePositionPatient, dtype=float)))
    missing_time = float(dcmread(small / "2.dcm", stop_before_pixels=True).TriggerTime)  # 56.25 ms
    (small / "2.dcm").unlink()
    with pytest.raises(
        CMRSegError, match=rf"position {position:.2f} mm.*missing trigger time\(s\) near (\S+) ms"
    ) as error:
        read_dicom_cine(small)
    near = float(error.value.args[0].split("near ")[1].split(" ms")[0])
    assert near == pytest.approx(missing_time, abs=2.0)  # the median time of that phase at the other slices


def test_duplicate_names_both_files(small: Path) -> None:
    shutil.copy(small / "2.dcm", small / "2_copy.dcm")
    with pytest.raises(CMRSegError, match=r"2\.dcm and 2_copy\.dcm are duplicates"):
        read_dicom_cine(small)


@pytest.mark.parametrize(
    ("attribute", "value", "what"), [("Rows", 224, "Rows"), ("PixelSpacing", [1.5, 1.5], "PixelSpacing")]
)
def test_mixed_geometry(small: Path, attribute: str, value: object, what: str) -> None:
    edit(small / "42.dcm", **{attribute: value})
    with pytest.raises(CMRSegError, match=rf"{what}.*42\.dcm"):
        read_dicom_cine(small)


def test_missing_middle_slice(small: Path) -> None:
    for phase in range(1, PHASES + 1):
        (small / f"{40 + phase}.dcm").unlink()
    with pytest.raises(CMRSegError, match=r"not evenly spaced.*20\.00 mm.*1 slice\(s\) seem missing"):
        read_dicom_cine(small)


def test_two_series_picks_the_cine_and_uid_selects(small: Path, caplog: pytest.LogCaptureFixture) -> None:
    localizer = small / "localizer"
    localizer.mkdir()
    for block in range(3):
        path = localizer / f"loc{block}.dcm"
        shutil.copy(small / f"{block * 20 + 1}.dcm", path)
        edit(path, SeriesInstanceUID="1.2.3.4", SeriesDescription="localizer", SeriesNumber=1)
    calls = []
    series = scan_dicom_folder(small, progress=lambda done, total, what: calls.append((done, total, what)))
    assert [(s.series_number, s.num_instances, s.num_positions, s.num_phases) for s in series] == [
        (1, 3, 3, 1),
        (300, BLOCKS * PHASES, BLOCKS, PHASES),
    ]
    assert calls[-1] == (BLOCKS * PHASES + 3, BLOCKS * PHASES + 3, "Reading DICOM headers")

    with caplog.at_level(logging.INFO, logger="cmrseg.io.dicom_cine"):
        study = read_dicom_cine(small)
    assert study.image.shape == (PHASES, BLOCKS, 256, 256)
    assert "Chose series 300" in caplog.text and series[1].series_uid in caplog.text
    assert study.series_uids == (series[1].series_uid,)  # recorded with the result: which series was measured

    with pytest.warns(DicomReadWarning, match="single phase"):
        single = read_dicom_cine(small, series_uid="1.2.3.4")
    assert single.image.shape == (1, 3, 256, 256) and single.description == "localizer"

    with pytest.raises(CMRSegError, match=r"(?s)No series with SeriesInstanceUID 9\.9.*localizer.*series 300"):
        read_dicom_cine(small, series_uid="9.9")


def test_two_stacks_of_the_same_size_are_not_chosen_between(small: Path) -> None:
    """A repeated acquisition, or an export's stale files beside the new ones: either could be the heart meant."""
    repeat = small / "repeat"
    repeat.mkdir()
    for path in sorted(small.glob("*.dcm")):
        edit(shutil.copy(path, repeat / path.name), SeriesInstanceUID="1.2.3.9", SeriesNumber=400)
    with pytest.raises(CMRSegError, match=r"holds 2 stacks of the same size .*name one with --series"):
        read_dicom_cine(small)
    assert read_dicom_cine(small, series_uid="1.2.3.9").series_uids == ("1.2.3.9",)


def test_a_stack_split_over_several_series_is_read_as_one(small: Path) -> None:
    reference = read_dicom_cine(small)
    # Slices 3-4 exported as a second series (a second breath-hold): joined, every slice where it was.
    for block in (3, 4):
        for phase in range(1, PHASES + 1):
            edit(small / f"{block * 20 + phase}.dcm", SeriesInstanceUID="1.2.3.5", SeriesNumber=301)
    study = read_dicom_cine(small)
    np.testing.assert_array_equal(study.image, reference.image)
    assert study.slice_files == reference.slice_files and study.spacing == reference.spacing
    assert study.series_uids == (*reference.series_uids, "1.2.3.5")
    with pytest.warns(DicomReadWarning) as warned:
        named = read_dicom_cine(small, series_uid="1.2.3.5")  # a series named is read alone: the user's choice
    assert named.image.shape == (PHASES, 2, 256, 256)
    # said once, as what it is: the stack's other part would complete it, not space it unevenly
    (message,) = [str(w.message) for w in warned]
    assert re.search("is one of 2 series joined here as one stack .* it has 2", message)
    # One series per slice, as many scanners store a cine taken one breath-hold per slice.
    for block in range(BLOCKS):
        for phase in range(1, PHASES + 1):
            edit(small / f"{block * 20 + phase}.dcm", SeriesInstanceUID=f"1.2.3.{10 + block}", SeriesNumber=block)
    (stack,) = [s for s in cine_stacks(scan_dicom_folder(small)) if s.num_positions > 1]
    assert [p.series_number for p in stack.parts] == list(range(BLOCKS)) and "5 series (0, 1, 2, 3, 4)" in (
        stack.describe())
    np.testing.assert_array_equal(read_dicom_cine(small).image, reference.image)
    for phase in range(1, PHASES + 1):  # a slice missing: no even stack to join into, and the refusal says why
        (small / f"{2 * 20 + phase}.dcm").unlink()
    with pytest.raises(CMRSegError, match="joined into a stack only when its slices are evenly spaced: is a slice"):
        read_dicom_cine(small)


def test_a_parallel_cine_left_out_of_the_stack_is_refused_or_named(small: Path) -> None:
    # Slices 3-4 in a series with a phase fewer (another breath-hold, another heart rate): not joined, as its
    # phases do not match. The stack found lacks the heart's slices beyond its end: refused, naming both (the
    # volumes of 3 of 5 slices read as the heart's: the LV EDV 30 % low in the review's phantom).
    for block in (3, 4):
        (small / f"{block * 20 + PHASES}.dcm").unlink()
        for phase in range(1, PHASES):
            edit(small / f"{block * 20 + phase}.dcm", SeriesInstanceUID="1.2.3.5", SeriesNumber=301)
    stack_uid = dcmread(small / "1.dcm").SeriesInstanceUID
    with pytest.raises(CMRSegError, match=r"lacks the slices beyond its ends that series 301 .* with 2 phases "
                                          r"against the stack's 3: .* too small.*--series " + re.escape(stack_uid)):
        read_dicom_cine(small)
    # A series that also repeats a slice the stack has is refused all the same, and said to do both.
    for phase in range(1, PHASES):
        copy = small / f"repeat{phase}.dcm"
        edit(shutil.copy(small / f"{2 * 20 + phase}.dcm", copy), SeriesInstanceUID="1.2.3.5", SeriesNumber=301,
             SOPInstanceUID=f"1.2.3.5.9{phase}")
    with pytest.raises(CMRSegError, match=r"series 301 .* repeating some of the stack's slice positions and "
                                          r"holding others beyond its ends"):
        read_dicom_cine(small)
    for phase in range(1, PHASES):
        (small / f"repeat{phase}.dcm").unlink()
    # Named, the stack is measured alone, as asked, with the series it leaves out named.
    with pytest.warns(DicomReadWarning, match=r"series 301 .* other slice positions, with 2 phases against the "
                                              r"stack's 3; it was not read.*volumes are too small"):
        study = read_dicom_cine(small, series_uid=stack_uid)
    assert study.image.shape == (PHASES, 3, 256, 256)
    # Another study's series is not the same heart: neither joined nor named.
    for block in (3, 4):
        for phase in range(1, PHASES):
            edit(small / f"{block * 20 + phase}.dcm", StudyInstanceUID="1.2.3.99")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DicomReadWarning)
        assert read_dicom_cine(small).image.shape == (PHASES, 3, 256, 256)


def test_a_stray_slice_in_a_series_of_its_own_leaves_the_complete_series_readable(small: Path) -> None:
    reference = read_dicom_cine(small)
    normal = np.cross(*np.reshape(dcmread(small / "1.dcm").ImageOrientationPatient, (2, 3)).astype(float))
    for phase in range(1, PHASES + 1):  # slice 2 again, 3 mm off: a repeat, not part of the even stack
        stray = small / f"stray{phase}.dcm"
        shutil.copy(small / f"{20 + phase}.dcm", stray)
        ds = dcmread(stray)
        edit(stray, SeriesInstanceUID="1.2.3.6", SeriesNumber=302, SOPInstanceUID=f"1.2.3.6.{phase}",
             ImagePositionPatient=[float(v) for v in np.array(ds.ImagePositionPatient, float) + 3.0 * normal])
    with pytest.warns(DicomReadWarning, match=r"series 302 .* would make the stack's slices unevenly spaced"):
        study = read_dicom_cine(small)
    np.testing.assert_array_equal(study.image, reference.image)


@pytest.mark.parametrize(("shift_mm", "refused"), [(1.0, False), (10.0, True)])
def test_a_repeat_of_the_end_slice_is_named_and_a_slice_beyond_it_refused(small: Path, shift_mm, refused) -> None:
    """The last slice again, 1 mm outward (re-planned): a repeat, named; a slice spacing outward: a slice the
    stack lacks."""
    reference = read_dicom_cine(small)
    normal = np.cross(*np.reshape(dcmread(small / "1.dcm").ImageOrientationPatient, (2, 3)).astype(float))
    first, last = (float(np.dot(normal, dcmread(small / f"{n}.dcm").ImagePositionPatient)) for n in (1, 81))
    outward = np.sign(last - first) * normal
    for phase in range(1, PHASES):  # a phase fewer: it cannot be joined
        repeat = small / f"repeat{phase}.dcm"
        shutil.copy(small / f"{80 + phase}.dcm", repeat)
        ds = dcmread(repeat)
        edit(repeat, SeriesInstanceUID="1.2.3.7", SeriesNumber=303, SOPInstanceUID=f"1.2.3.7.{phase}",
             ImagePositionPatient=[float(v) for v in np.array(ds.ImagePositionPatient, float) + shift_mm * outward])
    if refused:
        with pytest.raises(CMRSegError, match="lacks the slices beyond its ends that series 303"):
            read_dicom_cine(small)
        return
    with pytest.warns(DicomReadWarning, match=r"series 303 .* other slice positions"):
        study = read_dicom_cine(small)
    np.testing.assert_array_equal(study.image, reference.image)


def test_slices_shifted_in_plane_are_all_named_in_one_warning(small: Path) -> None:
    reference = read_dicom_cine(small)
    for block, shift_mm in ((1, 3.0), (3, 4.0)):  # along the rows: in the slice plane
        for phase in range(1, PHASES + 1):
            path = small / f"{block * 20 + phase}.dcm"
            ds = dcmread(path)
            row = np.array(ds.ImageOrientationPatient[:3], float)
            moved = np.array(ds.ImagePositionPatient, float) + shift_mm * row
            edit(path, ImagePositionPatient=[float(v) for v in moved])
    with pytest.warns(DicomReadWarning, match=r"2 slice\(s\) are shifted in-plane .* up to 4\.00 mm") as caught:
        study = read_dicom_cine(small)
    assert len([w for w in caught if "in-plane" in str(w.message)]) == 1
    np.testing.assert_array_equal(study.image, reference.image)  # the same voxels, on the first slice's grid


def test_missing_trigger_time_orders_by_instance_number(small: Path) -> None:
    reference = read_dicom_cine(small)
    for path in small.glob("*.dcm"):
        edit(path, TriggerTime=None)
    with pytest.warns(DicomReadWarning, match="TriggerTime"):
        study = read_dicom_cine(small)
    np.testing.assert_array_equal(study.image, reference.image)
    assert study.frame_times_ms.tolist() == [0.0, 1.0, 2.0]


def test_trigger_times_all_zero_order_by_instance_number(small: Path) -> None:
    reference = read_dicom_cine(small)
    for path in small.glob("*.dcm"):  # zeroed, as some exports and anonymisers leave them
        edit(path, TriggerTime=0)
    with pytest.warns(DicomReadWarning, match="gives every phase of a slice TriggerTime 0"):
        study = read_dicom_cine(small)
    np.testing.assert_array_equal(study.image, reference.image)
    assert study.frame_times_ms.tolist() == [0.0, 1.0, 2.0]
    for path in small.glob("*.dcm"):  # one time, not zero: images of one moment (magnitude and phase, echoes)
        edit(path, TriggerTime=450)
    with pytest.raises(CMRSegError, match="are duplicates: .* trigger time 450 ms"):
        read_dicom_cine(small)


def test_rescale_is_applied(small: Path) -> None:
    reference = read_dicom_cine_with_index(small)
    edit(small / "43.dcm", RescaleSlope=2, RescaleIntercept=-10)
    study, refs = read_dicom_cine_with_index(small)
    (ref,) = [r for r in refs if r.path.name == "43.dcm"]
    expected = reference[0].image[ref.frame, ref.slice] * 2 - 10
    np.testing.assert_array_equal(study.image[ref.frame, ref.slice], expected)


def test_monochrome1_images_are_inverted_so_that_blood_is_bright(small: Path) -> None:
    reference = read_dicom_cine(small)
    first = dcmread(next(small.glob("*.dcm")))
    assert first.PixelRepresentation == 1 and "RescaleSlope" not in first  # signed, stored values as they are
    low, high = -(2 ** (first.BitsStored - 1)), 2 ** (first.BitsStored - 1) - 1
    for path in small.glob("*.dcm"):  # the same pixels, declared to show their lowest value white
        edit(path, PhotometricInterpretation="MONOCHROME1")
    np.testing.assert_array_equal(read_dicom_cine(small).image, (low + high) - reference.image)
