"""Every Slicer, MRML and VTK API the module calls is listed in CMRSegModule/SlicerAPIs.md, and the ones
slicer-core provides exist there (the rest are checked against Slicer's sources by scripts/check-slicer-apis)."""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET

import pytest

slicer = pytest.importorskip("slicer")
import vtk  # noqa: E402

from conftest import REPO_ROOT  # noqa: E402

MODULE_DIR = REPO_ROOT / "CMRSegModule"
SOURCES = [MODULE_DIR / "CMRSegModule.py", *(MODULE_DIR / "CMRSegModuleLib").glob("*.py"),
           *(MODULE_DIR / "CMRSegModuleWidgets").glob("*.py")]  # fmt: skip
NOT_SLICER_ROOTS = {"qt", "tempfile"}  # Qt classes and the standard library


def listed() -> dict[str, str]:
    """API -> its 'headless' column."""
    text = (MODULE_DIR / "SlicerAPIs.md").read_text()
    return {api: headless.strip() for api, headless in
            re.findall(r"^\| `([^`]+)` \|[^|]*\|[^|]*\|([^|]*)\|$", text, flags=re.M)}  # fmt: skip


def _chain(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return ".".join([node.id, *reversed(parts)]) if isinstance(node, ast.Name) else None


def used() -> tuple[set[str], set[str]]:
    """(``slicer.*`` names used, MRML/VTK method names called): CamelCase methods, as VTK and MRML name them."""
    ours = {n.name for path in (MODULE_DIR / "cmrseg").rglob("*.py") for n in ast.walk(ast.parse(path.read_text()))
            if isinstance(n, ast.ClassDef | ast.FunctionDef)}  # fmt: skip
    names, methods = set(), set()
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        ours |= {n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef | ast.FunctionDef)}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("slicer."):
                names |= {f"{node.module}.{alias.name}" for alias in node.names}
            if isinstance(node, ast.Attribute) and (_chain(node) or "").startswith("slicer."):
                names.add(_chain(node))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr[:1].isupper():
                root = (_chain(node.func) or "").split(".")[0]
                if root not in NOT_SLICER_ROOTS:
                    methods.add(node.func.attr)
    prefixes = {"slicer.app", "slicer.util", "slicer.modules", "slicer.mrmlScene"}
    names = {n for n in names if n not in prefixes and not n.startswith("slicer.mrmlScene.")}
    return names, methods - ours


def test_every_api_the_module_uses_is_listed():
    apis = listed()
    names, methods = used()
    assert names - set(apis) == set(), "add these to CMRSegModule/SlicerAPIs.md"
    listed_methods = {api.rsplit(".", 1)[-1] for api in apis}
    assert methods - listed_methods == set(), "add these to CMRSegModule/SlicerAPIs.md"


def test_the_mrml_widget_calls_are_listed():
    ui = ET.parse(MODULE_DIR / "Resources" / "UI" / "CMRSegModule.ui").getroot()
    classes = {w.get("name"): w.get("class") for w in ui.iter("widget")}
    source = "".join(path.read_text() for path in SOURCES)
    calls = {(classes[w], m) for w, m in re.findall(r"self\.ui\.(\w+)\.(\w+)\(", source)}
    mrml_calls = {f"{cls}.{method}" for cls, method in calls if cls.startswith(("qMRML", "ctk"))}
    assert mrml_calls and mrml_calls <= set(listed())


def test_the_headless_apis_exist_in_slicer_core():
    checked = 0
    for api, headless in listed().items():
        if headless != "yes":
            continue
        parts = api.split(".")
        if parts[0] == "slicer":
            obj, rest = slicer, parts[1:]
        else:
            obj, rest = getattr(slicer, parts[0], None) or getattr(vtk, parts[0]), parts[1:]
        for part in rest:
            assert hasattr(obj, part), f"{api}: slicer-core has no {part}"
            obj = getattr(obj, part)
        checked += 1
    assert checked > 100
