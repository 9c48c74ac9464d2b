"""The browser review's session on the Slicer core, without a browser: the short-axis view, slices, phases, tools."""

from __future__ import annotations

import numpy as np
import pytest
import vtk
from trame_slicer.views import ViewLayoutDefinition
from trame_slicer.views.direct_view_factory import DirectViewFactory

from cmrseg.errors import CMRSegError
from cmrseg.phantom import make_phantom
from CMRSegModuleLib import ReviewList, ReviewNodes, Runner
from CMRSegWeb.ReviewSession import ReviewSession, createSlicerApp


def _appWithSliceView():
    """A trame-slicer application with the page's one short-axis slice view, rendered off screen."""
    app = createSlicerApp()
    app.view_manager.register_factory(DirectViewFactory(do_render_offscreen=True))
    return app, app.view_manager.create_view(ViewLayoutDefinition.slice_view("Axial", label="SAX"))


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """The oblique phantom's truth as the result: its acquired slices are not axial, sagittal or coronal."""
    phantom = make_phantom(seed=1, frames=8, oblique=True)
    ed, es = phantom.study.ed_frame, phantom.study.es_frame
    app, view = _appWithSliceView()
    result = Runner.RunResult({ed: phantom.labels[ed], es: phantom.labels[es]}, ed, es, "truth", "none")
    review = ReviewNodes.createReviewNodes(app.scene, phantom.study, result, name="oblique phantom")
    return ReviewSession(app, review, view, tmp_path_factory.mktemp("export"))


def _sliceToRas(session) -> np.ndarray:
    matrix = session.view.get_view_node().GetSliceToRAS()
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def _sliceAxis(volume) -> np.ndarray:
    directions = vtk.vtkMatrix4x4()
    volume.GetIJKToRASDirectionMatrix(directions)
    return np.array([directions.GetElement(r, 2) for r in range(3)])


def test_the_view_shows_the_acquired_short_axis_slices(session):
    normal = _sliceToRas(session)[:3, 2]
    axis = _sliceAxis(session.volume)
    assert max(abs(axis)) < 0.95, "the phantom is meant to be oblique"
    assert abs(float(normal @ axis)) == pytest.approx(1.0, abs=1e-6)


def test_each_slice_step_puts_the_plane_through_that_slice(session):
    for index in (0, 3, session.viewState().slices - 1):
        state = session.showSlice(index)
        assert state.slice == index
        matrix = _sliceToRas(session)
        centre = np.array(ReviewList.sliceCenterRas(session.volume, index))
        assert float((centre - matrix[:3, 3]) @ matrix[:3, 2]) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(CMRSegError, match="outside"):
        session.showSlice(session.viewState().slices)


def test_switching_phase_shows_only_that_phases_segmentations_and_edits_its_copy(session):
    session.showPhase("ES")
    review = session.review
    assert review.esCorrected.GetDisplayNode().GetVisibility()
    assert not review.edCorrected.GetDisplayNode().GetVisibility()
    assert session.editor.active_segmentation_node is review.esCorrected
    session.showPhase("ED")
    assert session.editor.active_segmentation_node is review.edCorrected
    assert abs(float(_sliceToRas(session)[:3, 2] @ _sliceAxis(review.edVolume))) == pytest.approx(1.0, abs=1e-6)


def test_tools_structures_and_window_level(session):
    session.setTool("paint", "Myo", 4.0)
    assert session.editor.get_active_segment_id() == "Myo"
    assert session.editor.active_effect.get_brush_diameter() == pytest.approx(4.0)
    session.setTool("none")
    with pytest.raises(CMRSegError, match="Unknown tool"):
        session.setTool("scalpel")
    with pytest.raises(CMRSegError, match="Unknown structure"):
        session.setTool("paint", "LA")
    state = session.setWindowLevel(300, 120)
    assert (state.window, state.level) == (300, 120)
    assert not session.canUndo()


def test_approve_needs_a_name_and_export_never_overwrites_silently(session):
    with pytest.raises(CMRSegError, match="reviewer's name"):
        session.approve("  ")
    assert session.approve("Dr Web")["status"] == "approved"
    written = session.export()
    assert any(path.name.endswith("_ED_corrected.seg.nrrd") for path in written)
    with pytest.raises(CMRSegError):
        session.export()
    assert session.export(overwrite=True) == written


def test_the_page_rounds_the_exact_values_once(session):
    """The page shows each value as the report and the printout do: the exact value rounded once to one
    decimal, never a rounded cell rounded again (86.5534 held as 86.55 once showed 86.5)."""
    from CMRSegModuleLib import ResultsTable
    from CMRSegWeb.ReviewApp import _displayRow

    automatic = ResultsTable.automaticMeasures(session.review.table)
    cells = {row["key"]: row for row in ResultsTable.readTable(session.review.table)}
    for row in session.tableRows():
        assert row["automatic"] == automatic[row["key"]]  # exact, not the cell's rounded value
        assert cells[row["key"]]["automatic"] == round(automatic[row["key"]], ResultsTable.decimalsOf(row["key"]))
        assert _displayRow(row)["automatic"] == f"{automatic[row['key']]:.{ResultsTable.decimalsOf(row['key'])}f}"


def test_the_page_row_shows_the_range_and_the_corrected_flag():
    from CMRSegWeb.ReviewApp import _displayRow

    row = {"key": "lv_ef_pct", "parameter": "LV EF", "unit": "%", "automatic": 55.04, "corrected": 40.0,
           "difference": -15.04, "reference": "51.2-70.8", "automatic_flag": "normal (z -1.2)",
           "corrected_flag": "low (z -4.2)"}
    shown = _displayRow(row)
    assert shown["automatic"] == "55.0" and shown["reference"] == "51.2-70.8; low (z -4.2)" and shown["flagged"]
    unflagged = _displayRow(row | {"corrected_flag": "normal (z -1.2)"})
    assert not unflagged["flagged"]
    without = _displayRow(row | {"reference": "", "automatic_flag": "", "corrected_flag": ""})
    assert without["reference"] == "" and not without["flagged"]
    # A value the quality check makes unusable is flagged, the automatic one too when the correction mended it.
    unusable = {"automatic_flag": "NOT USABLE (quality check: rv_coverage); normal (z -1.2)"}
    mended = _displayRow(row | unusable | {"corrected_flag": "normal (z +0.3)"})
    assert mended["flagged"] and mended["reference"] == (
        "51.2-70.8; normal (z +0.3); automatic: NOT USABLE (quality check: rv_coverage); normal (z -1.2)")
    both = _displayRow(row | unusable | {"corrected_flag": unusable["automatic_flag"]})
    assert both["flagged"] and both["reference"].count("NOT USABLE") == 1
    # The BSA with the table's two decimals, as the Slicer table shows it.
    bsa = _displayRow({**row, "key": "bsa_m2", "automatic": 1.8449, "corrected": 1.8449, "difference": 0.0})
    assert bsa["automatic"] == "1.84" and bsa["difference"] == "0.00"


def test_a_page_action_that_fails_says_why_on_the_page():
    """An export into a full disk or a folder made read-only, or a fault of ours, is shown on the page (it went
    only to the server log: the Export button did nothing visible)."""
    from CMRSegWeb.ReviewApp import ReviewApp

    app = ReviewApp(lambda progress: None)
    app.session = object()  # a review is open

    def fails(exc: BaseException):
        def action():
            raise exc

        app._act(action)
        return app.state.message, app.state.message_error

    mistake = "Enter the reviewer's name to approve."
    assert fails(CMRSegError(mistake)) == (mistake, True)
    message, error = fails(PermissionError(13, "Permission denied", "/runs/p1/review"))
    assert error and message.startswith("Could not write /runs/p1/review: Permission denied.")
    assert "corrections are kept" in message
    message, error = fails(ValueError("bad SOP class"))
    assert error and message.startswith("Internal error: ValueError: bad SOP class")


def test_a_reopened_review_goes_on_from_its_export(tmp_path):
    """Reopening a run started again from the automatic result, and the next export replaced the earlier
    corrections with the automatic result plus the new edit."""
    exports = tmp_path / "review"  # a run folder's export folder
    from CMRSegModuleLib.Corrections import approvalOf, approve, correctedFingerprint, phaseLabelmaps
    from CMRSegModuleLib.SegmentationNodes import labelmapFromSegmentation, setLabelmapToSegmentation

    phantom = make_phantom(seed=2, frames=6, slices=8, matrix=(112, 128))
    ed, es = phantom.study.ed_frame, phantom.study.es_frame
    app, view = _appWithSliceView()
    result = Runner.RunResult({ed: phantom.labels[ed], es: phantom.labels[es]}, ed, es, "truth", "none")
    first = ReviewSession(app, ReviewNodes.createReviewNodes(app.scene, phantom.study, result, name="p2"), view,
                          exports)  # fmt: skip
    assert first.restored is None  # nothing exported yet
    edited = np.where(phantom.labels[es] == 3, 2, phantom.labels[es]).astype(np.uint8)  # ES cavity to myocardium
    setLabelmapToSegmentation(first.review.esCorrected, edited, first.review.esVolume)
    approve(first.review, "Dr Before")
    first.export()
    exported = correctedFingerprint(first.review)

    again = ReviewSession(app, ReviewNodes.createReviewNodes(app.scene, phantom.study, result, name="p2"), view,
                          exports)  # fmt: skip
    assert again.restored.startswith("Went on from the corrections exported")
    assert "approved by Dr Before" in again.restored
    np.testing.assert_array_equal(labelmapFromSegmentation(again.review.esCorrected, again.review.esVolume), edited)
    assert correctedFingerprint(again.review) == exported and approvalOf(again.review)["by"] == "Dr Before"
    assert again.tableRows() == first.tableRows()
    automatic = [[m[1].tobytes() for m in phaseLabelmaps(r.review)] for r in (first, again)]
    assert automatic[0] == automatic[1]
    # Reopened with another weight (and so other indexed values and flags): the corrections come back, the
    # approval of other numbers does not, and the export's SEG and SR are not sent as this result's.
    from cmrseg.io.study import PatientInfo
    from CMRSegModuleLib.Export import sendToPacs

    heavier = PatientInfo(height_cm=170, weight_kg=110, sex="M", age_years=50)
    reweighed = ReviewSession(app, ReviewNodes.createReviewNodes(app.scene, phantom.study, result, name="p2",
                                                                 patient=heavier), view, exports)  # fmt: skip
    assert reweighed.restored.startswith("Went on from the corrections exported") and "(not approved)" in (
        reweighed.restored)
    assert approvalOf(reweighed.review)["status"] == "not approved"
    with pytest.raises(CMRSegError, match="changed since the export"):
        sendToPacs(reweighed.review, exports, "127.0.0.1:11112", "PACS", "CMRSEG")
    # Another result's export under the same names (the run made again) is not taken for this one's, nor in its
    # way: the page cannot choose a folder, and exporting there was refused (the corrections had nowhere to go).
    other = Runner.RunResult({ed: phantom.labels[es], es: phantom.labels[ed]}, ed, es, "other", "none")
    fresh = ReviewSession(app, ReviewNodes.createReviewNodes(app.scene, phantom.study, other, name="p2"), view,
                          exports)  # fmt: skip
    beside = exports.with_name(f"{exports.name}-2")
    assert fresh.exportFolder == beside and approvalOf(fresh.review)["status"] == "not approved"
    assert fresh.restored == (f"{exports} holds the export of an earlier result (the run was made again since); "
                              f"this review exports to {beside}.")
    earlier = {path.name: path.read_bytes() for path in exports.iterdir() if path.is_file()}
    assert fresh.export() and all(path.parent == beside for path in fresh.export(overwrite=True))
    assert {path.name: path.read_bytes() for path in exports.iterdir() if path.is_file()} == earlier
    reopened = ReviewSession(app, ReviewNodes.createReviewNodes(app.scene, phantom.study, other, name="p2"), view,
                             exports)  # fmt: skip
    assert reopened.exportFolder == beside and "Went on from the corrections exported" in reopened.restored


def test_corrections_not_yet_exported_are_not_lost_when_the_review_stops(tmp_path):
    """Every change is kept in the export folder's draft: a review stopped before its export (Ctrl-C, a
    restart) goes on from its corrections and approval; the export takes them over and the draft goes."""
    from CMRSegModuleLib.Corrections import approvalOf, approve
    from CMRSegModuleLib.SegmentationNodes import labelmapFromSegmentation, setLabelmapToSegmentation
    from CMRSegWeb import Draft

    exports = tmp_path / "review"
    phantom = make_phantom(seed=4, frames=6, slices=8, matrix=(112, 128))
    ed, es = phantom.study.ed_frame, phantom.study.es_frame
    app, view = _appWithSliceView()
    result = Runner.RunResult({ed: phantom.labels[ed], es: phantom.labels[es]}, ed, es, "truth", "none")

    def reopen(run=result, patient=None) -> ReviewSession:
        nodes = ReviewNodes.createReviewNodes(app.scene, phantom.study, run, name="p4", patient=patient)
        return ReviewSession(app, nodes, view, exports)

    first = reopen()
    assert first.restored is None and not Draft.draftPath(exports).exists()
    edited = np.where(phantom.labels[ed] == 3, 2, phantom.labels[ed]).astype(np.uint8)  # ED cavity to myocardium
    setLabelmapToSegmentation(first.review.edCorrected, edited, first.review.edVolume)
    first.updateCorrected()
    first.saveDraft()
    approve(first.review, "Dr Draft")
    first.saveDraft()

    again = reopen()  # the server stopped before the export
    assert again.restored.startswith("Went on from the corrections saved ")
    assert again.restored.endswith("not yet exported (approved by Dr Draft).")
    np.testing.assert_array_equal(labelmapFromSegmentation(again.review.edCorrected, again.review.edVolume), edited)
    np.testing.assert_array_equal(labelmapFromSegmentation(again.review.esCorrected, again.review.esVolume),
                                  phantom.labels[es])
    assert again.tableRows() == first.tableRows() and approvalOf(again.review)["by"] == "Dr Draft"

    # The export holds them now: the draft goes, and a review reopened goes on from the export.
    again.export()
    assert not Draft.draftPath(exports).exists()
    assert reopen().restored.startswith("Went on from the corrections exported")
    # A change after the export is kept too, and wins over the export when reopened: the ED edit undone.
    later = reopen()
    setLabelmapToSegmentation(later.review.edCorrected, phantom.labels[ed], later.review.edVolume)
    later.updateCorrected()
    later.saveDraft()
    latest = reopen()
    assert latest.restored.endswith("not yet exported (not approved).")
    np.testing.assert_array_equal(labelmapFromSegmentation(latest.review.edCorrected, latest.review.edVolume),
                                  phantom.labels[ed])

    # Another result's draft (the run made again) is not put onto this one.
    other = Runner.RunResult({ed: phantom.labels[es], es: phantom.labels[ed]}, ed, es, "other", "none")
    fresh = reopen(other)
    assert fresh.exportFolder != exports and fresh.restored.startswith(f"{exports} holds the export of an earlier")
    np.testing.assert_array_equal(labelmapFromSegmentation(fresh.review.edCorrected, fresh.review.edVolume),
                                  phantom.labels[es])
    # A damaged draft is refused with what to do, not taken for corrections.
    whole = Draft.draftPath(exports).read_bytes()
    for damaged in (b"not a draft", b"", whole[: len(whole) // 2]):
        Draft.draftPath(exports).write_bytes(damaged)  # not a draft, empty, cut short
        with pytest.raises(CMRSegError, match="draft .* cannot be read .* move it away"):
            reopen()
