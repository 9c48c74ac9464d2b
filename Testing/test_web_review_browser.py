"""`cmrseg review` end to end in a real Chromium: the page, the slice view, a paint stroke, Approve and Export.

The command runs as a user starts it (a study and --out: segmented first, progress in the page); Playwright
drives Debian's chromium. The screenshots are kept in ``test-artifacts/review`` (the README's and the
extension's screenshots come from there). Without chromium the tests fail: scripts/test installs it.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cmrseg.io.segmentation_file import read_seg_nrrd
from cmrseg.io.volume_files import read_volume_file

pytestmark = pytest.mark.slow
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "review"
REVIEWER = "Dr Test Reviewer"


@pytest.fixture(scope="session")
def browser_type_launch_args():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("chromium is not installed (scripts/test installs it with apt-get install chromium)")
    return {"executable_path": chromium, "args": ["--no-sandbox"]}


def _freePort() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """``cmrseg review PHANTOM --out RUN`` running; yields (url, run folder, seconds from start to listening)."""
    root = tmp_path_factory.mktemp("review")
    cmrseg = [sys.executable, "-m", "cmrseg"]
    subprocess.run([*cmrseg, "phantom", "--out", str(root / "phantom"), "--frames", "12"], check=True,
                   capture_output=True)
    port = _freePort()
    started = time.monotonic()
    process = subprocess.Popen([*cmrseg, "review", str(root / "phantom" / "cine.nii.gz"), "--out", str(root / "run"),
                                "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []  # VTK's warnings may come first
    while not (lines and lines[-1].startswith("CMRSeg review at")) and (line := process.stdout.readline()):
        lines.append(line)
    assert lines[-1].startswith(f"CMRSeg review at http://127.0.0.1:{port}/?token="), "".join(lines)
    url = lines[-1].split()[3]
    yield url, root / "run", started, process
    process.terminate()
    process.wait(timeout=20)


@pytest.fixture(scope="module")
def page(served, browser):
    url, _, started, _ = served
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector("#slice-view img", state="visible", timeout=180_000)
    _waitForImage(page, timeout_s=60, condition=lambda image: _lvPixels(image).sum() > 200)  # the segmentation too
    (ARTIFACTS).mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "timing.json").write_text(json.dumps({"command_to_first_view_s": time.monotonic() - started}))
    yield page
    context.close()


def _viewImage(page) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(page.locator("#slice-view").screenshot())).convert("RGB")).astype(int)


def _waitForImage(page, previous: np.ndarray | None = None, timeout_s: float = 30.0, condition=None) -> np.ndarray:
    """The view once it shows a settled image (unchanged over 300 ms: the remote view may arrive in steps),
    different from ``previous`` when given and meeting ``condition`` when given."""
    deadline = time.monotonic() + timeout_s
    image = _viewImage(page)
    while True:
        page.wait_for_timeout(300)
        later = _viewImage(page)
        settled = later.shape == image.shape and np.abs(later - image).mean() < 0.5
        changed = previous is None or later.shape != previous.shape or np.abs(later - previous).mean() > 0.5
        if settled and later.std() > 10 and changed and (condition is None or condition(later)):
            return later
        if time.monotonic() > deadline:
            raise AssertionError("the slice view did not show the expected image in time")
        image = later


def _lvPixels(image: np.ndarray) -> np.ndarray:
    """Pixels of the LV's red fill (the corrected LV blood pool over the grey image)."""
    red, green, blue = image[..., 0], image[..., 1], image[..., 2]
    return (red - np.maximum(green, blue)) > 60


def _cell(page, key: str, column: str) -> str:
    return page.locator(f"#row-{key} .{column}").inner_text().strip()


def test_the_page_shows_the_short_axis_slice_with_the_segmentation(page):
    image = _viewImage(page)
    page.screenshot(path=str(ARTIFACTS / "review-page.png"))
    assert image.std() > 20, "the slice view is blank"
    assert _lvPixels(image).sum() > 200, "the LV's red fill is not visible"
    greenish = (image[..., 1] - np.maximum(image[..., 0], image[..., 2])) > 60
    assert greenish.sum() > 100, "the myocardium's green is not visible"
    assert float(_cell(page, "lv_edv_ml", "automatic")) > 0
    assert _cell(page, "lv_edv_ml", "automatic") == _cell(page, "lv_edv_ml", "corrected")


def test_stepping_slices_and_switching_phase_change_the_view(page):
    before, label = _viewImage(page), page.locator("#slice-label").inner_text()
    # numbered from 0 like the review list ("ED slice 5"), the corrections and the report
    assert re.fullmatch(r"Slice \d+ \(0-\d+\)", label), label
    page.click("#slice-up")
    page.wait_for_function(f"document.querySelector('#slice-label').innerText !== {json.dumps(label)}")
    after = _waitForImage(page, before)
    page.click("#slice-down")
    page.wait_for_function(f"document.querySelector('#slice-label').innerText === {json.dumps(label)}")
    back = _waitForImage(page, after)
    page.click("#phase-ES")
    systole = _waitForImage(page, back)
    assert _lvPixels(systole).sum() < _lvPixels(back).sum(), "the ES cavity is not smaller than the ED one"
    page.click("#phase-ED")
    _waitForImage(page, systole)


def test_a_paint_stroke_in_the_lv_changes_the_corrected_volume_by_the_painted_voxels(page, served):
    _, run, _, _ = served
    automatic = float(_cell(page, "lv_edv_ml", "automatic"))
    page.click("#structure-Myo")
    page.click("#tool-paint")
    image = _viewImage(page)
    rows, columns = np.nonzero(_lvPixels(image))
    box = page.locator("#slice-view").bounding_box()
    x, y = box["x"] + columns.mean(), box["y"] + rows.mean()
    page.mouse.move(x - 6, y)
    page.mouse.down()
    for step in range(1, 7):
        page.mouse.move(x - 6 + 2 * step, y, steps=2)
    page.mouse.up()
    released = time.monotonic()
    deadline = released + 30
    while _cell(page, "lv_edv_ml", "corrected") == f"{automatic:.1f}" and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    timing = json.loads((ARTIFACTS / "timing.json").read_text())
    (ARTIFACTS / "timing.json").write_text(json.dumps({**timing, "edit_to_table_s": time.monotonic() - released}))
    corrected = float(_cell(page, "lv_edv_ml", "corrected"))
    assert corrected < automatic, "the paint stroke did not change the corrected LV EDV"
    assert page.locator("#undo").is_enabled()
    page.screenshot(path=str(ARTIFACTS / "review-after-paint.png"))
    # The stroke is on disk before any export: a review stopped now goes on from it.
    from CMRSegWeb.Draft import draftPath

    measures = json.loads((run / "measures.json").read_text())
    automaticEd = read_volume_file(run / measures["frames"][str(measures["ed_frame"])]["file"]).image[0]
    with np.load(draftPath(run / "review")) as draft:
        assert 0 < int((automaticEd == 3).sum()) - int((draft["ED"] == 3).sum())

    page.fill("#reviewer", REVIEWER)
    page.click("#approve")
    page.wait_for_function("document.querySelector('#approval').innerText.includes('Dr Test Reviewer')")
    page.click("#export")
    page.wait_for_function("document.querySelector('#message').innerText.startsWith('Exported')", timeout=60_000)

    exported = run / "review"
    assert not draftPath(exported).exists()  # the export holds the corrections now
    results = json.loads(next(exported.glob("*_results.json")).read_text())
    assert results["approval"]["by"] == REVIEWER and results["approval"]["status"] == "approved"
    measures = json.loads((run / "measures.json").read_text())
    edFile = measures["frames"][str(measures["ed_frame"])]["file"]
    automaticLabels = read_volume_file(run / edFile).image[0]
    correctedSeg = read_seg_nrrd(next(exported.glob("*_ED_corrected.seg.nrrd")))
    spacing = np.prod(read_volume_file(run / edFile).spacing) / 1000.0
    lvLost = int((automaticLabels == 3).sum()) - int((correctedSeg.labelmap == 3).sum())
    myoGained = int((correctedSeg.labelmap == 2).sum()) - int((automaticLabels == 2).sum())
    assert lvLost > 0 and myoGained == lvLost, "paint moved voxels from the LV to the myocardium one for one"
    assert results["automatic"]["lv_edv_ml"] - results["corrected"]["lv_edv_ml"] == pytest.approx(
        lvLost * spacing, rel=1e-6)
    assert automatic - corrected == pytest.approx(lvLost * spacing, abs=0.1)  # the page's rounded values
    relabelled = read_volume_file(next(exported.glob("*_ED_corrected.nii.gz"))).image[0]
    assert np.array_equal(relabelled, correctedSeg.labelmap)


def test_undo_restores_the_automatic_volume(page, served):
    page.click("#undo")
    page.wait_for_function(
        "document.querySelector('#row-lv_edv_ml .corrected').innerText"
        " === document.querySelector('#row-lv_edv_ml .automatic').innerText", timeout=30_000)
    assert page.locator("#redo").is_enabled()
    assert "not approved" in page.locator("#approval").inner_text().lower()
    from CMRSegWeb.Draft import draftPath

    _, run, _, _ = served
    assert draftPath(run / "review").is_file()  # the undo is a change after the export: kept


def test_a_review_list_entry_goes_to_the_slice_it_names(page):
    """Last: it leaves the page on the entry's phase and slice."""
    entries = page.locator("#review-list .v-list-item")
    assert entries.count() > 0, "the shipped model's review score lists no slice"
    number = re.search(r"(?:ED|ES) slice (\d+)", entries.last.inner_text()).group(1)
    entries.last.click()
    page.wait_for_function(f"document.querySelector('#slice-label').innerText.startsWith('Slice {number} (')")
