"""Packaging checks: every Python file of the module and of cmrseg is listed in the Slicer CMake files."""

from __future__ import annotations

import re

from conftest import REPO_ROOT

MODULE_DIR = REPO_ROOT / "CMRSegModule"


def listed_files(cmake_file) -> set[str]:
    """The list entries (one indented path per line) that name Python files."""
    return set(re.findall(r"^\s+(\S+\.py)\s*$", cmake_file.read_text(), re.MULTILINE))


def test_module_cmakelists_lists_every_python_file_on_disk():
    on_disk = {
        p.relative_to(MODULE_DIR).as_posix()
        for p in MODULE_DIR.rglob("*.py")
        if "Testing" not in p.relative_to(MODULE_DIR).parts and "__pycache__" not in p.parts
    }
    listed = {name.replace("${MODULE_NAME}", "CMRSegModule") for name in listed_files(MODULE_DIR / "CMakeLists.txt")}
    assert on_disk - listed == set(), "add these files to CMRSegModule/CMakeLists.txt"
    assert listed - on_disk == set(), "CMRSegModule/CMakeLists.txt lists files that do not exist"


def test_extension_cmakelists_has_the_required_fields():
    text = (REPO_ROOT / "CMakeLists.txt").read_text()
    for field in (
        "EXTENSION_HOMEPAGE",
        "EXTENSION_CATEGORY",
        "EXTENSION_CONTRIBUTORS",
        "EXTENSION_DESCRIPTION",
        "EXTENSION_ICONURL",
        "EXTENSION_SCREENSHOTURLS",
        "EXTENSION_DEPENDS",
    ):
        assert re.search(rf"set\({field}\s", text), field
    assert re.search(r'set\(EXTENSION_CATEGORY\s+"Cardiac"\)', text)
    assert re.search(r"set\(EXTENSION_DEPENDS\s+\"?PyTorch\"?\)", text)
    assert "project(CMRSegExtension)" in text
    assert "add_subdirectory(CMRSegModule)" in text


def test_readme_test_command_is_what_ci_runs():
    readme = (REPO_ROOT / "README.md").read_text()
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert "scripts/test" in readme and "scripts/test" in ci


def test_extensions_index_finds_the_licence_and_every_screenshot():
    text = (REPO_ROOT / "CMakeLists.txt").read_text()
    assert (REPO_ROOT / "LICENSE").read_text().startswith("BSD 3-Clause License")
    urls = re.search(r'EXTENSION_SCREENSHOTURLS "([^"]+)"', text).group(1).split()
    prefix = "https://raw.githubusercontent.com/cmrseg/CMRSeg/main/"
    assert urls and all(url.startswith(prefix) for url in urls)
    for url in urls:
        path = REPO_ROOT / url[len(prefix):]
        assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", url
