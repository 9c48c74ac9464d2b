"""A DICOM study folder made of links: linked series folders are read, each real file once, and a link loop
ends (a study assembled from links, or an archive that links its series)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cmrseg.io.dicom_cine import read_dicom_cine

pytestmark = pytest.mark.shared_data

SLICES, PHASES = 4, 2  # instance s * 20 + p (p = 1..2) of SCD0000101


@pytest.fixture
def series(tmp_path: Path, sunnybrook_root: Path) -> Path:
    """Part of SCD0000101 (4 adjacent slices x 2 phases) in a folder of its own."""
    folder = tmp_path / "archive" / "series"
    folder.mkdir(parents=True)
    for position in range(SLICES):
        for phase in range(1, PHASES + 1):
            name = f"{position * 20 + phase}.dcm"
            shutil.copy(sunnybrook_root / "dicoms" / "SCD0000101" / name, folder / name)
    return folder


def test_a_linked_series_folder_is_read(series: Path, tmp_path: Path) -> None:
    study_folder = tmp_path / "study"
    study_folder.mkdir()
    (study_folder / "cine").symlink_to(series)
    assert read_dicom_cine(study_folder).image.shape == (PHASES, SLICES, 256, 256)


def test_a_folder_or_file_linked_twice_and_a_link_loop_add_nothing(series: Path, tmp_path: Path) -> None:
    direct = read_dicom_cine(series)
    study_folder = tmp_path / "study"
    study_folder.mkdir()
    (study_folder / "cine").symlink_to(series)
    (study_folder / "cine again").symlink_to(series)
    (series / "loop").symlink_to(study_folder)
    (series / "1 linked.dcm").symlink_to(series / "1.dcm")
    study = read_dicom_cine(study_folder)
    assert study.image.shape == direct.image.shape
    assert (study.image == direct.image).all()


def test_a_link_to_a_folder_above_is_not_followed(series: Path, tmp_path: Path) -> None:
    """``up -> ..`` inside a study folder would bring in the studies beside it (here a second copy of the same
    series, which would be refused as duplicates)."""
    archive = series.parent
    shutil.copytree(series, archive / "other patient")
    (series / "up").symlink_to("..")
    (series / "root").symlink_to("/")
    assert read_dicom_cine(series).image.shape == (PHASES, SLICES, 256, 256)
