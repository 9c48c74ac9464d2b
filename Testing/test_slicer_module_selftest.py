"""The module file's Logic and its in-Slicer self test, run headless on slicer-core.

Only the Qt side is stood in for (``qt``, the Qt-based ``slicer.ScriptedLoadableModule`` base classes, the
Qt-bound ``slicer.parameterNodeWrapper`` and ``slicer.app``), since Qt cannot run here; the Logic and the
self test then run for real on the MRML scene: the same workflow Slicer's ctest runs.
"""

from __future__ import annotations

import importlib.util
import sys
import types
import unittest

import pytest

slicer = pytest.importorskip("slicer")

from conftest import REPO_ROOT  # noqa: E402


def _stand_ins() -> dict[str, types.ModuleType]:
    qt = types.ModuleType("qt")
    loadable = types.ModuleType("slicer.ScriptedLoadableModule")

    class ScriptedLoadableModuleLogic:
        def getParameterNode(self):  # the widget's parameter node needs the application
            raise NotImplementedError

    class ScriptedLoadableModuleTest(unittest.TestCase):
        def delayDisplay(self, message, msec=0):
            print(message)

    loadable.ScriptedLoadableModule = type("ScriptedLoadableModule", (), {})
    loadable.ScriptedLoadableModuleWidget = type("ScriptedLoadableModuleWidget", (), {})
    loadable.ScriptedLoadableModuleLogic = ScriptedLoadableModuleLogic
    loadable.ScriptedLoadableModuleTest = ScriptedLoadableModuleTest
    wrapper = types.ModuleType("slicer.parameterNodeWrapper")
    wrapper.parameterNodeWrapper = lambda cls: cls
    wrapper.WithinRange = lambda low, high: ("WithinRange", low, high)
    return {"qt": qt, "slicer.ScriptedLoadableModule": loadable, "slicer.parameterNodeWrapper": wrapper}


@pytest.fixture
def module(headless_slicer, tmp_path, monkeypatch):
    for name, stand_in in _stand_ins().items():
        monkeypatch.setitem(sys.modules, name, stand_in)
    app = types.SimpleNamespace(temporaryPath=str(tmp_path), layoutManager=lambda: None)
    monkeypatch.setattr(slicer, "app", app, raising=False)
    spec = importlib.util.spec_from_file_location("CMRSegModule", REPO_ROOT / "CMRSegModule" / "CMRSegModule.py")
    loaded = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "CMRSegModule", loaded)
    spec.loader.exec_module(loaded)
    return loaded


def test_the_self_test_passes_headless(module):
    result = unittest.TestResult()
    module.CMRSegModuleTest("runTest").run(result)
    assert result.testsRun == 1
    assert not result.errors and not result.failures, (result.errors + result.failures)[0][1]


def test_logic_maps_the_parameters_to_run_settings(module):
    choices = types.SimpleNamespace(
        autoFrames=False, edFrame=3, esFrame=9, device=module.Device.CUDA, useShippedModel=False,
        modelFile="/models/x.pt", basalRule=module.BasalRule.HALF, heightCm=0.0, weightKg=81.5,
        patientSex=module.PatientSex.FEMALE, ageYears=0.0,
    )
    settings = module.CMRSegModuleLogic().runSettings(choices)
    assert (settings.edFrame, settings.esFrame, settings.device, settings.basalRule) == (3, 9, "cuda", "50")
    assert settings.modelPath == "/models/x.pt" and settings.heightCm is None and settings.weightKg == 81.5
    assert settings.sex == "F" and settings.ageYears is None  # 0 years means unknown, as 0 cm does
    choices.patientSex, choices.ageYears = module.PatientSex.UNKNOWN, 63.0
    settings = module.CMRSegModuleLogic().runSettings(choices)
    assert settings.sex is None and settings.ageYears == 63.0
    assert [s.label() for s in module.PatientSex][0] == "Unknown (no reference ranges)"
    choices.autoFrames, choices.useShippedModel = True, True
    settings = module.CMRSegModuleLogic().runSettings(choices)
    assert settings.edFrame is None and settings.esFrame is None and settings.modelPath is None
    assert [m.label() for m in module.BasalRule][0] == "Keep all slices"
    # The model field shows the shipped model (greyed out) until the user picks another, never ".".
    default = module.CMRSegModuleParameterNode.modelFile
    assert default.name == "cmrseg_dense_unet.pt" and default.is_file()


def test_logic_prepares_a_background_run_from_a_sequence(module, oblique_phantom, headless_slicer):
    from CMRSegModuleLib.Runner import RunSettings
    from CMRSegModuleLib.SequenceNodes import createSequenceFromStudy

    sequence, _, _ = createSequenceFromStudy(headless_slicer.scene, oblique_phantom.study, "Cine")
    logic = module.CMRSegModuleLogic()
    job, study, command, environment = logic.prepareBackgroundRun(sequence, RunSettings(edFrame=0, esFrame=2))
    assert job.inputPath.is_file() and study.num_frames == oblique_phantom.study.num_frames
    assert command[1:4] == ["-m", "cmrseg", "segment"] and "--ed" in command
    assert environment["PYTHONPATH"].startswith(str(REPO_ROOT / "CMRSegModule"))
    job.cleanup()


def test_the_self_test_passes_without_torch(module, monkeypatch):
    """The extension build machines have no torch: the self test must take its truth-based branch."""
    import importlib.util as util

    real_find_spec = util.find_spec
    monkeypatch.setattr(util, "find_spec", lambda name, *a: None if name == "torch" else real_find_spec(name, *a))
    for name in [n for n in sys.modules if n == "torch" or n.startswith("torch.") or n == "cmrseg.inference"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "torch", None)  # any import of torch now fails
    result = unittest.TestResult()
    module.CMRSegModuleTest("runTest").run(result)
    assert not result.errors and not result.failures, (result.errors + result.failures)[0][1]


def test_every_slice_view_change_rotates_to_the_volume_plane():
    import inspect
    import re

    source = (REPO_ROOT / "CMRSegModule" / "CMRSegModule.py").read_text()
    calls = re.findall(r"setSliceViewerLayers\(([^)]*)\)", source)
    assert calls and all("rotateToVolumePlane=True" in call for call in calls)
    assert "rotateToVolumePlane" in inspect.signature(slicer.util.setSliceViewerLayers).parameters
