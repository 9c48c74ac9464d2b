"""Several results in one scene (slicer-core, headless): only the current one shows, earlier ones can be
removed without touching the user's input, and slice views turn to the acquired short-axis plane."""

from __future__ import annotations

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")

from CMRSegModuleLib import ReviewNodes  # noqa: E402
from slicer_helpers import review_from_labels  # noqa: E402


def reviews(scene, phantom, count):
    study = phantom.study
    ed, es = study.ed_frame, study.es_frame
    maps = {ed: phantom.labels[ed], es: phantom.labels[es]}
    return [review_from_labels(scene, study, maps, ed, es, f"Run {i}") for i in range(count)]


def visible(review) -> list[bool]:
    return [bool(node.GetDisplayNode().GetVisibility()) for _, _, a, c in review.phases() for node in (a, c)]


def test_only_the_current_result_is_shown_and_earlier_ones_can_be_removed(headless_slicer, oblique_phantom):
    scene = headless_slicer.scene
    first, second, third = reviews(scene, oblique_phantom, 3)
    others = ReviewNodes.showOnlyResult(scene, third)
    assert {o.table.GetID() for o in others} == {first.table.GetID(), second.table.GetID()}
    assert not any(visible(first)) and not any(visible(second)) and any(visible(third))
    kept = [n.GetID() for n in (third.table, third.edVolume, third.edCorrected)]
    for review in others:
        ReviewNodes.removeResult(scene, review)
    assert [r.table.GetID() for r in ReviewNodes.resultsInScene(scene)] == [third.table.GetID()]
    assert all(scene.GetNodeByID(i) is not None for i in kept)
    assert scene.GetNodeByID(first.edVolume.GetID()) is None  # the volumes made for a result go with it


def test_removing_a_single_volume_result_keeps_the_input_volume(headless_slicer, oblique_phantom):
    scene = headless_slicer.scene
    study = oblique_phantom.study.single_frame(0)
    review = review_from_labels(scene, study, {0: oblique_phantom.labels[0]}, None, None, "One")
    volume = review.edVolume
    volume.RemoveAttribute(ReviewNodes.CREATED_ATTRIBUTE)  # as when the user's own volume is the reference
    ReviewNodes.removeResult(scene, review)
    assert scene.GetNodeByID(volume.GetID()) is not None and scene.GetNodeByID(review.table.GetID()) is None


def test_rotating_a_slice_view_to_an_oblique_volume_shows_the_acquired_slices(headless_slicer, oblique_phantom):
    """What ``rotateToVolumePlane=True`` relies on: the slice plane becomes the volume's own slice plane."""
    review = reviews(headless_slicer.scene, oblique_phantom, 1)[0]
    slice_node = slicer.vtkMRMLSliceNode()
    slice_node.SetOrientationToAxial()
    headless_slicer.scene.AddNode(slice_node)
    import vtk

    ijk_to_ras = vtk.vtkMatrix4x4()
    review.edVolume.GetIJKToRASDirectionMatrix(ijk_to_ras)
    slice_axis = np.array([ijk_to_ras.GetElement(r, 2) for r in range(3)])
    slice_node.RotateToVolumePlane(review.edVolume)
    matrix = slice_node.GetSliceToRAS()
    normal = np.array([matrix.GetElement(r, 2) for r in range(3)])
    assert abs(abs(float(normal @ slice_axis)) - 1) < 1e-6
