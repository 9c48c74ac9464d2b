"""The review list on the MRML side (slicer-core, headless): entries from a run, the jump to a slice, and the
looked-at and edited marks."""

from __future__ import annotations

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")

from cmrseg import labels  # noqa: E402
from CMRSegModuleLib import ReviewList  # noqa: E402
from CMRSegModuleLib.ReviewNodes import ReviewNodes, createReviewNodes  # noqa: E402
from CMRSegModuleLib.Runner import RunResult  # noqa: E402
from slicer_helpers import edit_segments, relabel_voxels  # noqa: E402

ENTRIES = [{"phase": "ES", "frame": 2, "slice": 5, "score": 0.9, "expected_error_ml": 1.5,
            "structures": ["RV"], "signals": ["entropy_share"]},
           {"phase": "ED", "frame": 0, "slice": 2, "score": 0.4, "expected_error_ml": 0.3,
            "structures": [], "signals": []}]


@pytest.fixture
def review(headless_slicer, oblique_phantom) -> ReviewNodes:
    study = oblique_phantom.study
    maps = {0: oblique_phantom.labels[0], 2: oblique_phantom.labels[2]}
    result = RunResult(maps, 0, 2, "test labels", "none", "input or user", review={"slices": ENTRIES[::-1]})
    return createReviewNodes(headless_slicer.scene, study, result, "Listed")


def test_the_list_holds_the_runs_entries_best_first(review):
    assert ReviewList.reviewEntries(review.table) == ENTRIES
    line = ReviewList.describeEntry(ENTRIES[0], set(), set())
    assert line.startswith("ES slice 5: score 0.90") and "RV" in line and "[" not in line


def test_jumping_shows_the_phase_centres_the_views_on_the_slice_and_marks_it(headless_slicer, review):
    scene = headless_slicer.scene
    slice_node = slicer.vtkMRMLSliceNode()
    slice_node.SetLayoutName("Red")
    scene.AddNode(slice_node)
    slice_node.RotateToVolumePlane(review.esVolume)
    volume, corrected = ReviewList.jumpToEntry(scene, review, ENTRIES[0])
    assert volume is review.esVolume and corrected is review.esCorrected
    assert review.esCorrected.GetDisplayNode().GetVisibility()
    assert not review.edCorrected.GetDisplayNode().GetVisibility()
    matrix = slice_node.GetSliceToRAS()
    centre = np.array([matrix.GetElement(r, 3) for r in range(3)])
    np.testing.assert_allclose(centre, ReviewList.sliceCenterRas(review.esVolume, 5), atol=1e-6)
    assert ReviewList.visitedEntries(review.table) == {"ES:5"}
    assert "[looked at]" in ReviewList.describeEntry(ENTRIES[0], ReviewList.visitedEntries(review.table), set())


def test_an_edit_marks_its_slice_as_edited(review, oblique_phantom):
    assert ReviewList.editedSlices(review) == set()
    edited, indices = relabel_voxels(oblique_phantom.labels[2], labels.LV, labels.MYO, 5)
    edit_segments(review.esCorrected, review.esVolume, edited)
    assert ReviewList.editedSlices(review) == {f"ES:{int(z)}" for z in np.unique(indices[:, 0])}
