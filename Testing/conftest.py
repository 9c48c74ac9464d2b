"""Shared pytest fixtures. Real data lives in ../shared/data beside the repository (never copied in)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
ACDC_ROOT = SHARED_DATA / "acdc" / "training"
SUNNYBROOK_ROOT = SHARED_DATA / "sunnybrook"


def require_shared_data(path: Path = SHARED_DATA) -> Path:
    """Skip the calling test with a clear reason when the real data is not next to the repository."""
    if not path.exists():
        pytest.skip(f"real cardiac MRI data not found at {path} (place ../shared/data beside the repository)")
    return path


@pytest.fixture(scope="session")
def acdc_root() -> Path:
    return require_shared_data(ACDC_ROOT)


@pytest.fixture(scope="session")
def small_pack(acdc_root, tmp_path_factory) -> Path:
    """A folder with ``split.json`` (two training patients, one validation patient) and ``acdc.pack``, its slice
    pack at 64 x 64 pixels with an 8-pixel jitter margin (:mod:`cmrseg.training.pack`)."""
    from cmrseg.training.pack import main as pack_main
    from cmrseg.training.split import write_split

    folder = tmp_path_factory.mktemp("pack")
    write_split({"train": ["patient001", "patient042"], "val": ["patient077"], "test": []}, folder / "split.json")
    argv = [str(acdc_root), "--split", str(folder / "split.json"), "--out", str(folder / "acdc.pack"),
            "--size", "64", "--jitter-px", "8"]
    assert pack_main(argv) == 0
    return folder


@pytest.fixture(scope="session")
def sunnybrook_root() -> Path:
    return require_shared_data(SUNNYBROOK_ROOT)


@pytest.fixture
def headless_slicer():
    """A headless MRML scene with the application, volumes, segmentations and sequences logics."""
    from headless_slicer import close_headless_slicer, create_headless_slicer

    headless = create_headless_slicer()
    yield headless
    close_headless_slicer(headless)


@pytest.fixture(scope="session")
def phantom():
    """The default synthetic cine phantom (seed 0, 20 frames x 10 slices, 160 x 160): read only, shared."""
    from cmrseg.phantom import make_phantom

    return make_phantom(seed=0)


@pytest.fixture(scope="session")
def oblique_phantom():
    """A small oblique phantom (seed 1, 4 frames, 8 slices, 112 x 128 at 1.8 mm): read only, shared."""
    from cmrseg.phantom import make_phantom

    return make_phantom(seed=1, frames=4, slices=8, matrix=(112, 128), pixel_spacing_mm=1.8, oblique=True)


@pytest.fixture(scope="session")
def model_path() -> Path:
    """The shipped model (``CMRSEG_TEST_MODEL`` may name another checkpoint while one is being trained)."""
    import os

    from cmrseg.inference import default_model_path

    path = Path(os.environ.get("CMRSEG_TEST_MODEL", default_model_path()))
    if not path.is_file():
        pytest.fail(f"model checkpoint {path} is missing; the shipped weights belong in the repository")
    return path


@pytest.fixture(scope="session")
def segmenter(model_path):
    from cmrseg.inference import Segmenter

    return Segmenter.load(model_path, device="cpu")
