"""The review page: a trame application around one :class:`ReviewSession`.

The page opens at once; while the study is read (and segmented when needed) it shows the progress, then
the short-axis slice view with its controls, the editing tools, the review list, the results table,
Approve and Export. Every action calls the session; the page only mirrors its state.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from collections.abc import Callable
from pathlib import Path

from trame.app import TrameApp
from trame.ui.vuetify3 import SinglePageWithDrawerLayout
from trame.widgets import html
from trame.widgets import vuetify3 as v3
from trame_slicer import module as trameSlicerModule
from trame_slicer.core import LayoutManager
from trame_slicer.rca_view import register_rca_factories
from trame_slicer.views import Layout, LayoutDirection, ViewLayoutDefinition

from cmrseg.errors import CMRSegError
from cmrseg.qc import NOT_USABLE
from CMRSegModuleLib import Corrections, ResultsTable, ReviewList, ReviewNodes
from CMRSegWeb.ReviewSession import ReviewSession, createSlicerApp

log = logging.getLogger("cmrseg")
STRUCTURES = [{"title": "LV", "value": "LV", "color": "#d00000"},
              {"title": "Myocardium", "value": "Myo", "color": "#00a000"},
              {"title": "RV", "value": "RV", "color": "#b0a000"}]


class ReviewApp(TrameApp):
    """``prepare(progress)`` runs in a worker thread and returns ``(study, RunResult, name, exportFolder)``."""

    def __init__(self, prepare: Callable, server=None) -> None:
        super().__init__(server)
        self.server.enable_module(trameSlicerModule)
        self.slicerApp = createSlicerApp()
        register_rca_factories(self.slicerApp.view_manager, self.server, slice_view_ui_f=lambda *_: None)
        self.layoutManager = LayoutManager(self.slicerApp.scene, self.slicerApp.view_manager, self.server)
        self.layoutManager.register_layout(
            "sax", Layout(LayoutDirection.Vertical, [ViewLayoutDefinition.slice_view("Axial", label="SAX")]))
        self.layoutManager.set_layout("sax")
        self.session: ReviewSession | None = None
        self._replaying = False  # inside an undo or redo: the page is brought up to date once, after it
        self._refreshPending = False  # a recompute is due in this turn of the event loop
        self._prepare = prepare
        self._initState()
        self._buildPage()
        self.server.controller.on_server_ready.add(self._startPreparing)

    # -- start-up -----------------------------------------------------------------------------------------------
    def _initState(self) -> None:
        state = self.state
        state.trame__title = "CMRSeg review"
        state.update(dict(
            ready=False, progress_text="Starting", progress_percent=0, failure="", study_name="",
            phase="ED", phases=["ED", "ES"], slice=0, max_slice=0, window=400.0, level=200.0, window_max=2000.0,
            tool="none", structure="LV", brush_mm=5.0, can_undo=False, can_redo=False,
            rows=[], qc="", entries=[], corrections="", approval="", reviewer="", export_overwrite=False,
            message="", message_error=False,
        ))

    def _startPreparing(self, **_) -> None:
        loop = asyncio.get_event_loop()

        def progress(done: int, total: int, what: str) -> None:
            loop.call_soon_threadsafe(self._showProgress, done, total, what)

        def work() -> None:
            try:
                prepared = self._prepare(progress)
            except CMRSegError as exc:
                loop.call_soon_threadsafe(self._fail, str(exc))
                return
            except Exception as exc:  # noqa: BLE001 - shown in the page and logged; the server keeps running
                log.exception("preparing the review failed")
                loop.call_soon_threadsafe(self._fail, f"internal error: {type(exc).__name__}: {exc}")
                return
            loop.call_soon_threadsafe(self._open, *prepared)

        threading.Thread(target=work, name="cmrseg-review-prepare", daemon=True).start()

    def _showProgress(self, done: int, total: int, what: str) -> None:
        with self.state:
            self.state.progress_text = what
            self.state.progress_percent = round(100 * done / total) if total else 0

    def _fail(self, message: str) -> None:
        log.error(message)
        with self.state:
            self.state.failure = message

    def _open(self, study, result, name: str, exportFolder: Path) -> None:
        """Build the review nodes in the scene (this thread: the server's) and show the first phase."""
        review = ReviewNodes.createReviewNodes(self.slicerApp.scene, study, result, name=name)
        view = self.slicerApp.view_manager.get_slice_views()[0]
        try:
            self.session = ReviewSession(self.slicerApp, review, view, exportFolder)
        except CMRSegError as exc:  # an earlier export that cannot be gone on from
            self._fail(str(exc))
            return
        self.session.editor.segmentation_modified.connect(self._onEdited)
        volumeRange = review.edVolume.GetImageData().GetScalarRange()
        with self.state:
            self.state.study_name = name
            self.state.phases = self.session.phases
            self.state.window_max = float(max(volumeRange[1] - volumeRange[0], 1.0))
            self._syncView(self.session.viewState())
            self._syncResults()
            self.state.message, self.state.message_error = self.session.restored or "", False
            self.state.ready = True

    # -- state from the session ---------------------------------------------------------------------------------
    def _syncView(self, view) -> None:
        self.state.update(dict(phase=view.phase, slice=view.slice, max_slice=view.slices - 1,
                               window=round(view.window, 1), level=round(view.level, 1)))

    def _syncResults(self) -> None:
        session = self.session
        self.state.rows = [_displayRow(row) for row in session.tableRows()]
        self.state.qc = session.qcSummary()
        rows, approval = session.corrections()  # one export of the label maps for the list marks and the record
        edited, visited = Corrections.editedSliceKeys(rows), ReviewList.visitedEntries(session.review.table)
        self.state.entries = [{"text": ReviewList.describeEntry(entry, visited, edited), "phase": entry["phase"],
                               "slice": int(entry["slice"])} for entry in session.reviewEntries()]
        self.state.corrections = Corrections.describeCorrections(rows)
        self.state.approval = Corrections.describeApproval(approval)
        self._syncUndo()

    def _syncUndo(self) -> None:
        self.state.can_undo, self.state.can_redo = self.session.canUndo(), self.session.canRedo()

    def _onEdited(self, *_) -> None:
        """After an edit: the results recomputed once, however many signals the edit sent (the editor's wrappers
        of a segmentation shown before each send one more)."""
        if self.session is None or self._replaying:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on the server's event loop: at once
            self._refreshResults()
            return
        if not self._refreshPending:
            self._refreshPending = True
            loop.call_soon(self._refreshResults)

    def _refreshResults(self) -> None:
        self._refreshPending = False
        if self.session is None:
            return
        self.session.updateCorrected()
        with self.state:
            self._syncResults()
            self._saveDraft()

    def _saveDraft(self) -> None:
        """Keep the corrections on disk after a change (the page's message stays unless that fails)."""
        try:
            self.session.saveDraft()
        except OSError as exc:
            self.state.update(dict(message=f"Could not save the corrections to {exc.filename or 'the disk'} "
                                           f"({exc.strerror or exc}): they are kept here only until the export; "
                                           "free space or fix the folder.", message_error=True))  # fmt: skip

    def _act(self, action: Callable, success: str = "") -> None:
        """Run a page action; its message (returned text or ``success``) or the user's mistake is shown."""
        if self.session is None:
            return
        try:
            outcome = action()
        except CMRSegError as exc:
            self.state.update(dict(message=str(exc), message_error=True))
            return
        except OSError as exc:  # a full disk, a folder made read-only: the corrections stay in the session
            self.state.update(dict(message=f"Could not write {exc.filename or ''}: {exc.strerror or exc}. The "
                                           "corrections are kept here; free space or fix the folder and retry.",
                                   message_error=True))  # fmt: skip
            return
        except Exception as exc:  # noqa: BLE001 - shown on the page, not only in the server log
            log.exception("page action failed")
            self.state.update(dict(message=f"Internal error: {type(exc).__name__}: {exc} (see the server log; "
                                           "the corrections are kept here).", message_error=True))  # fmt: skip
            return
        self.state.update(dict(message=outcome if isinstance(outcome, str) else success, message_error=False))

    # -- page actions -------------------------------------------------------------------------------------------
    def showPhase(self, phase: str) -> None:
        self._act(lambda: self._syncView(self.session.showPhase(phase)))
        self._act(self._syncUndo)  # each phase has its own undo history; the results do not change

    def showSlice(self, sliceIndex) -> None:
        self._act(lambda: self._syncView(self.session.showSlice(int(sliceIndex))))

    def stepSlice(self, step: int) -> None:
        if self.session is not None:
            target = min(max(self.session.slice + step, 0), self.session.viewState().slices - 1)
            self.showSlice(target)

    def setWindowLevel(self, window, level) -> None:
        self._act(lambda: self._syncView(self.session.setWindowLevel(float(window), float(level))))

    def setTool(self, tool: str, structure: str, brushMm) -> None:
        self._act(lambda: self.session.setTool(tool, structure, float(brushMm)))

    def undo(self) -> None:
        self._replay(self.session.undo)

    def redo(self) -> None:
        self._replay(self.session.redo)

    def _replay(self, action: Callable) -> None:
        """Undo or redo, then one update of the results and the undo buttons together: the segmentation's own
        modified signal fires midway, before the undo history has moved, and would show the restored results
        with a disabled Redo."""
        self._replaying = True
        try:
            self._act(action)
        finally:
            self._replaying = False
        self._onEdited()

    def jumpTo(self, phase: str, sliceIndex: int) -> None:
        entry = {"phase": phase, "slice": int(sliceIndex)}
        self._act(lambda: self._syncView(self.session.jumpToEntry(entry)))
        self._act(self._syncResults)

    def approve(self) -> None:
        def run() -> str:
            self.session.approve(self.state.reviewer)
            self._syncResults()
            self.session.saveDraft()  # inside the action: a failure is its message
            return "Approved."

        self._act(run)

    def export(self) -> None:
        def run() -> str:
            written = self.session.export(overwrite=bool(self.state.export_overwrite))
            log.info("exported %d files to %s", len(written), self.session.exportFolder)
            return f"Exported {len(written)} files to {self.session.exportFolder}."

        self._act(run)

    # -- the page -----------------------------------------------------------------------------------------------
    def _buildPage(self) -> None:
        state = self.state

        @state.change("tool", "structure", "brush_mm")
        def _toolChanged(tool, structure, brush_mm, **_):
            self.setTool(tool, structure, brush_mm)

        with SinglePageWithDrawerLayout(self.server, full_height=True) as page:
            page.title.set_text("CMRSeg review")
            with page.toolbar:
                html.Span("{{ study_name }}", classes="text-subtitle-1 mx-4", v_show="ready")
                v3.VSpacer()
                v3.VChip("{{ qc }}", v_show="ready && qc", classes="mr-4", size="small", id="qc")
            with page.drawer as drawer:
                drawer.width = 480
                self._buildSidePanel()
            with page.content:
                self._buildViewArea(page)

    def _buildViewArea(self, page) -> None:
        with v3.VContainer(fluid=True, classes="pa-0 fill-height d-flex flex-column"):
            with html.Div(v_if="!ready", classes="pa-8", style="width: 100%"):
                html.Div("{{ failure ? 'The review could not start: ' + failure : progress_text }}",
                         id="progress-text", classes="text-h6 mb-4")
                v3.VProgressLinear(model_value=("progress_percent",), v_show="!failure", height=8)
            with html.Div(v_if="ready", classes="d-flex align-center flex-wrap px-2", style="width: 100%"):
                with v3.VBtnToggle(v_model=("phase",), mandatory=True, density="compact", classes="mr-4",
                                   update_modelValue=(self.showPhase, "[$event]")):
                    v3.VBtn("{{ p }}", v_for="p in phases", key="p", value=("p",), id=("'phase-' + p",))
                v3.VBtn(icon="mdi-chevron-left", size="small", variant="text", id="slice-down",
                        click=(self.stepSlice, "[-1]"))
                # numbered from 0, as the review list, the corrections, the report and the printout number them
                html.Span("Slice {{ slice }} (0-{{ max_slice }})", id="slice-label", classes="mx-2")
                v3.VBtn(icon="mdi-chevron-right", size="small", variant="text", id="slice-up",
                        click=(self.stepSlice, "[1]"))
                v3.VSlider(v_model=("slice",), min=0, max=("max_slice",), step=1, hide_details=True,
                           style="max-width: 220px", classes="mx-2", end=(self.showSlice, "[slice]"))
                v3.VSlider(v_model=("window",), min=1, max=("window_max",), label="W", hide_details=True,
                           style="max-width: 180px", classes="mx-2", end=(self.setWindowLevel, "[window, level]"))
                v3.VSlider(v_model=("level",), min=0, max=("window_max",), label="L", hide_details=True,
                           style="max-width: 180px", classes="mx-2", end=(self.setWindowLevel, "[window, level]"))
            with html.Div(v_show="ready", id="slice-view", style="flex: 1 1 auto; width: 100%; min-height: 480px"):
                self.layoutManager.initialize_layout_grid(page)

    def _buildSidePanel(self) -> None:
        with html.Div(v_show="ready", classes="pa-3"):
            html.Div("Correct", classes="text-subtitle-2")
            with v3.VBtnToggle(v_model=("structure",), mandatory=True, density="compact", classes="my-2"):
                for item in STRUCTURES:
                    v3.VBtn(item["title"], value=item["value"], id=f"structure-{item['value']}",
                            style=f"color: {item['color']}")
            with v3.VBtnToggle(v_model=("tool",), mandatory=True, density="compact"):
                v3.VBtn("View", value="none", id="tool-none")
                v3.VBtn("Paint", value="paint", id="tool-paint")
                v3.VBtn("Erase", value="erase", id="tool-erase")
            v3.VSlider(v_model=("brush_mm",), min=1, max=30, step=0.5, label="Brush (mm)", thumb_label=True,
                       hide_details=True, classes="my-2")
            v3.VBtn("Undo", disabled=("!can_undo",), click=self.undo, size="small", id="undo", classes="mr-2")
            v3.VBtn("Redo", disabled=("!can_redo",), click=self.redo, size="small", id="redo")
            v3.VDivider(classes="my-3")
            html.Div("Results (automatic / corrected / difference)", classes="text-subtitle-2")
            with v3.VTable(density="compact", id="results"):
                with html.Thead():
                    with html.Tr():
                        for title in ("Parameter", "Unit", "Automatic", "Corrected", "Difference", "Reference"):
                            html.Th(title)
                with html.Tbody():
                    with html.Tr(v_for="row in rows", key="row.key", id=("'row-' + row.key",)):
                        html.Td("{{ row.parameter }}")
                        html.Td("{{ row.unit }}")
                        html.Td("{{ row.automatic }}", classes="automatic")
                        html.Td("{{ row.corrected }}", classes="corrected")
                        html.Td("{{ row.difference }}", classes="difference")
                        html.Td("{{ row.reference }}", classes=("row.flagged ? 'reference text-error' : 'reference'",))
            v3.VDivider(classes="my-3")
            html.Div("Worth checking first", classes="text-subtitle-2")
            with v3.VList(density="compact", id="review-list"):
                v3.VListItem(v_for="(e, i) in entries", key="i", title=("e.text",),
                             click=(self.jumpTo, "[e.phase, e.slice]"))
            html.Div("{{ corrections }}", classes="text-body-2 my-2", id="corrections", style="white-space: pre-line")
            v3.VDivider(classes="my-3")
            v3.VTextField(v_model=("reviewer",), label="Reviewer", density="compact", hide_details=True,
                          id="reviewer")
            v3.VBtn("Approve", click=self.approve, classes="my-2 mr-2", color="primary", id="approve")
            html.Div("{{ approval }}", classes="text-body-2", id="approval")
            v3.VCheckbox(v_model=("export_overwrite",), label="Replace an earlier export", density="compact",
                         hide_details=True)
            v3.VBtn("Export", click=self.export, color="primary", id="export")
            html.Div("{{ message }}", id="message", classes=("message_error ? 'text-error mt-2' : 'mt-2'",))


def _displayRow(row: dict) -> dict:
    """A results-table row for the page: the values with the table's decimals, blank where not defined (NaN),
    and the reference range with the corrected value's flag (and the automatic value's, when the quality check
    makes only that one unusable)."""
    decimals = ResultsTable.decimalsOf(row["key"])
    values = {column: "" if math.isnan(row[column]) else f"{row[column]:.{decimals}f}"
              for column in ("automatic", "corrected", "difference")}
    flag = row["corrected_flag"]
    automatic = row["automatic_flag"]
    unusable = automatic if automatic.startswith(NOT_USABLE) and not flag.startswith(NOT_USABLE) else ""
    reference = "; ".join(text for text in (row["reference"], flag, unusable and f"automatic: {unusable}") if text)
    return {"key": row["key"], "parameter": row["parameter"], "unit": row["unit"], **values, "reference": reference,
            "flagged": flag.startswith(("low", "high", NOT_USABLE)) or bool(unusable)}
