"""Static checks of the Slicer module that need no Slicer application: the .ui file, the module file, CMake."""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ElementTree

import pytest

from conftest import REPO_ROOT

MODULE_DIR = REPO_ROOT / "CMRSegModule"
UI_FILE = MODULE_DIR / "Resources" / "UI" / "CMRSegModule.ui"
MODULE_FILE = MODULE_DIR / "CMRSegModule.py"
QT_CLASSES = {"QWidget", "QLabel", "QPushButton", "QCheckBox", "QSpinBox", "QDoubleSpinBox", "QComboBox",
              "QProgressBar", "QTableView", "QLineEdit", "QListWidget"}


@pytest.fixture(scope="module")
def ui():
    return ElementTree.parse(UI_FILE).getroot()


@pytest.fixture(scope="module")
def module_source():
    return MODULE_FILE.read_text()


def widgets(ui) -> dict[str, str]:
    return {w.get("name"): w.get("class") for w in ui.iter("widget")}


def test_ui_is_qt_designer_xml_with_a_mrml_widget_root(ui):
    assert ui.tag == "ui" and ui.get("version") == "4.0"
    assert ui.findtext("class") == "CMRSegModule"
    top = ui.find("widget")
    assert top.get("class") == "qMRMLWidget" and top.get("name") == "CMRSegModule"
    names = [w.get("name") for w in ui.iter("widget")]
    assert len(names) == len(set(names)), "widget names must be unique"


def test_sections_are_in_workflow_order(ui):
    sections = [w.findtext("property[@name='text']/string") for w in ui.iter("widget")
                if w.get("class") == "ctkCollapsibleButton"]
    assert sections == ["Input", "Frames", "Options", "Results", "Export"]
    order = [w.get("name") for w in ui.iter("widget")]
    assert order.index("optionsCollapsibleButton") < order.index("applyButton") < order.index("progressBar")
    assert order.index("progressBar") < order.index("resultsCollapsibleButton")


def test_every_ui_name_the_module_uses_exists(ui, module_source):
    widget_parts = (MODULE_DIR / "CMRSegModuleWidgets").glob("*.py")
    source = module_source + "".join(path.read_text() for path in widget_parts)
    used = set(re.findall(r"self\.ui\.(\w+)", source))
    assert used, "the module uses its widgets through self.ui"
    assert used - set(widgets(ui)) == set()


def test_the_selectors_offer_only_what_the_module_can_use(ui, module_source):
    from CMRSegModuleLib import ResultsTable

    selector = next(w for w in ui.iter("widget") if w.get("name") == "inputSelector")
    hidden = [s.text for s in selector.findall("property[@name='hideChildNodeTypes']/stringlist/string")]
    assert hidden == ["vtkMRMLLabelMapVolumeNode"]
    assert 'resultsTableSelector.addAttribute("vtkMRMLTableNode", ResultsTable.RESULTS_TABLE_ATTRIBUTE)' in (
        module_source
    )
    assert ResultsTable.RESULTS_TABLE_ATTRIBUTE == ResultsTable.ROW_KEYS_ATTRIBUTE  # set on every results table


def test_every_custom_widget_is_declared(ui):
    declared = {c.findtext("class") for c in ui.iter("customwidget")}
    used = set(widgets(ui).values()) - QT_CLASSES
    assert used <= declared


def test_parameter_names_match_the_parameter_node(ui, module_source):
    tree = ast.parse(module_source)
    node_class = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "CMRSegModuleParameterNode")
    fields = {s.target.id for s in node_class.body if isinstance(s, ast.AnnAssign)}
    bound = {w.get("name"): w.findtext("property[@name='SlicerParameterName']/string") for w in ui.iter("widget")
             if w.find("property[@name='SlicerParameterName']") is not None}
    bookkeeping = {"patientFieldsFrom"}  # which input filled the patient fields: the module's, not the user's
    assert bookkeeping <= fields
    assert set(bound.values()) == fields - bookkeeping  # every parameter has its widget, every binding its parameter
    assert bound["inputSelector"] == "inputNode" and bound["resultsTableSelector"] == "resultsTable"


def test_mrml_widgets_get_the_scene(ui):
    slot = "setMRMLScene(vtkMRMLScene*)"
    receivers = {c.findtext("receiver") for c in ui.iter("connection") if c.findtext("slot") == slot}
    mrml = {name for name, cls in widgets(ui).items() if cls.startswith("qMRML") and cls != "qMRMLWidget"}
    assert mrml <= receivers


def test_module_is_a_thin_scripted_module_with_a_registered_self_test(module_source):
    assert len(module_source.splitlines()) < 500
    tree = ast.parse(module_source)
    classes = {n.name: [b.id if isinstance(b, ast.Name) else "" for b in n.bases]
               for n in tree.body if isinstance(n, ast.ClassDef)}
    assert "ScriptedLoadableModule" in classes["CMRSegModule"]
    assert "ScriptedLoadableModuleWidget" in classes["CMRSegModuleWidget"]
    assert "ScriptedLoadableModuleLogic" in classes["CMRSegModuleLogic"]
    assert "ScriptedLoadableModuleTest" in classes["CMRSegModuleTest"]
    assert 'self.parent.categories = ["Cardiac"]' in module_source
    for disabled in ("testLogic = False", "unittest.skip", "@skip", "SkipTest"):
        assert disabled not in module_source
    cmake = (MODULE_DIR / "Testing" / "Python" / "CMakeLists.txt").read_text()
    assert re.search(r"^slicer_add_python_unittest\(SCRIPT \S*\$\{MODULE_NAME\}\.py\)", cmake, re.MULTILINE)
    assert "add_subdirectory(Python)" in (MODULE_DIR / "Testing" / "CMakeLists.txt").read_text()


def test_the_lib_needs_no_qt():
    for path in (MODULE_DIR / "CMRSegModuleLib").glob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not imported & {"qt", "ctk", "PythonQt"}, path.name
