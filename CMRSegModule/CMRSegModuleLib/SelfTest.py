"""The module's self test: the whole workflow on a synthetic phantom (no downloads), on a given scene and logic.

Run by ``CMRSegModuleTest`` in Slicer (and its ctest) and headless by the pytest suite. Without torch (the
extension build machines) the phantom's labels stand in for the network's result.
"""

from __future__ import annotations

import importlib.util
import json
import tempfile
from pathlib import Path

import numpy as np
import slicer

from cmrseg.errors import CMRSegError
from cmrseg.io.segmentation_file import read_seg_nrrd
from cmrseg.phantom import make_phantom
from cmrseg.shipped import default_model_path
from CMRSegModuleLib import Corrections, ResultsTable, ReviewNodes, Runner
from CMRSegModuleLib.SequenceNodes import createSequenceFromStudy, studyFromInputNode


def workflowOnPhantom(test, scene, logic) -> None:
    """Segment (or stand in), check the automatic values, correct, check the corrected values, export."""
    phantom = make_phantom(seed=0, frames=12)  # built into the scene with slicer.util.updateVolumeFromArray
    ed, es = phantom.study.ed_frame, phantom.study.es_frame
    sequence, _, _ = createSequenceFromStudy(scene, phantom.study, name="CMRSeg phantom")
    settings = Runner.RunSettings(edFrame=ed, esFrame=es, device="cpu", heightCm=170.0, weightKg=70.0)
    # The extension build machines have no torch: without it the truth-based branch still tests the workflow.
    withModel = importlib.util.find_spec("torch") is not None and default_model_path().is_file()
    if withModel:
        review = logic.runInProcess(sequence, settings)
    else:  # everything but the network: the phantom's labels stand in for the automatic result
        result = Runner.RunResult({ed: phantom.labels[ed], es: phantom.labels[es]}, ed, es, "phantom", "none")
        review = logic.createReview(studyFromInputNode(sequence), result, settings, sequence)
    automatic = ResultsTable.automaticMeasures(review.table)
    truth, voxelMl = phantom.truth.summary(), ReviewNodes.voxelVolumeMl(review.edVolume)
    if withModel:
        # The analytic LV blood-pool truth. The network's accuracy on myocardium and RV is checked on real
        # data (ACDC, Sunnybrook); on this synthetic heart it under-reads the thin myocardial ring and the RV.
        for key in ("lv_edv_ml", "lv_esv_ml"):
            test.assertAlmostEqual(automatic[key], truth[key], delta=0.2 * truth[key], msg=key)
        test.assertAlmostEqual(automatic["lv_ef_pct"], truth["lv_ef_pct"], delta=10.0)
    else:
        test.assertAlmostEqual(automatic["lv_edv_ml"], phantom.label_volumes_ml()["LV"][ed], places=6)
        test.assertAlmostEqual(automatic["lv_edv_ml"], truth["lv_edv_ml"], delta=0.03 * truth["lv_edv_ml"])
    test.assertIsNotNone(automatic["lv_edv_index"])
    segmentation = review.edCorrected.GetSegmentation()
    test.assertEqual([segmentation.GetNthSegment(i).GetName() for i in range(3)],
                     ["RV blood pool", "LV myocardium", "LV blood pool"])
    test.assertEqual(segmentation.GetSegment("LV").GetColor(), (1.0, 0.0, 0.0))

    # A correction: 40 LV blood-pool voxels removed at ED, every segment rewritten (as the editor does).
    arrays = {k: slicer.util.arrayFromSegmentBinaryLabelmap(review.edCorrected, k, review.edVolume)
              for k in ("RV", "Myo", "LV")}
    arrays["LV"][tuple(np.argwhere(arrays["LV"])[:40].T)] = 0
    for key, array in arrays.items():
        slicer.util.updateSegmentBinaryLabelmapFromArray(array, review.edCorrected, key, review.edVolume)
    corrected = logic.updateCorrected(review.table)
    test.assertAlmostEqual(corrected["lv_edv_ml"], automatic["lv_edv_ml"] - 40 * voxelMl, places=9)
    test.assertEqual(corrected["rv_edv_ml"], automatic["rv_edv_ml"])
    test.assertEqual(ResultsTable.automaticMeasures(review.table), automatic)
    row = next(r for r in ResultsTable.readTable(review.table) if r["key"] == "lv_edv_ml")
    test.assertAlmostEqual(row["difference"], -40 * voxelMl, delta=0.051)  # the cell shows one decimal

    totals = Corrections.correctionTotals(Corrections.correctionRecord(review))
    test.assertAlmostEqual(totals["ED LV"]["removed_ml"], 40 * voxelMl, places=9)
    test.assertEqual(logic.approve(review.table, "Self Test")["status"], "approved")

    with tempfile.TemporaryDirectory(prefix="CMRSegTest-") as scratch:
        folder = Path(scratch)
        written = logic.export(review.table, folder)
        test.assertEqual(len(written), 7)
        back = read_seg_nrrd(next(p for p in written if p.name.endswith("_ED_corrected.seg.nrrd")))
        test.assertEqual(int((back.labelmap == 3).sum()), int(arrays["LV"].sum()))
        document = json.loads(next(p for p in written if p.name.endswith("_results.json")).read_text())
        test.assertEqual(document["approval"]["by"], "Self Test")
        with test.assertRaises(CMRSegError):
            logic.export(review.table, folder)  # never overwrites silently
