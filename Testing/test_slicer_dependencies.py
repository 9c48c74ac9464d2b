"""Dependencies of the module in Slicer's Python: found without importing, installed only with consent."""

from __future__ import annotations

import re
import tomllib

import pytest

from cmrseg.errors import CMRSegError
from CMRSegModuleLib import Dependencies
from conftest import REPO_ROOT


def test_every_core_dependency_is_checked_with_the_same_minimum_version():
    declared = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    core = {re.split(r"[<>=]", r)[0].lower(): r for r in declared["dependencies"] if not r.startswith("numpy")}
    checked = {r.split(">=")[0].lower(): r for r in Dependencies.REQUIREMENTS.values()}
    for name, requirement in core.items():
        assert checked[name].replace(" ", "") == requirement.replace(" ", ""), name
    assert "matplotlib" in checked  # `cmrseg segment` draws the report figures
    assert declared["requires-python"] == ">={}.{}".format(*Dependencies.MINIMUM_PYTHON)


def test_installed_packages_are_found_and_missing_ones_reported():
    assert Dependencies.missingPackages() == []
    fake = {"json": "json", "cmrseg_no_such_package": "cmrseg-no-such-package>=1"}
    assert Dependencies.missingPackages(fake) == ["cmrseg_no_such_package"]


def test_nothing_is_installed_when_the_user_declines():
    asked = []
    fake = {"cmrseg_no_such_package": "cmrseg-no-such-package>=1"}
    assert Dependencies.ensureDependencies(lambda message: asked.append(message) or False, fake) is False
    assert len(asked) == 1 and "cmrseg-no-such-package>=1" in asked[0]
    assert Dependencies.ensureDependencies(lambda message: pytest.fail("asked although nothing is missing"), {})


def test_a_too_old_python_is_a_clear_error():
    Dependencies.checkPythonVersion((3, 12))
    with pytest.raises(CMRSegError, match="Slicer 5.10 or newer"):
        Dependencies.checkPythonVersion((3, 9))


def test_consent_comes_first_then_one_package_at_a_time_with_progress():
    events = []
    fake = {"cmrseg_no_such_a": "cmrseg-no-such-a>=1", "torch": "torch>=2.1", "cmrseg_no_such_b": "b>=2"}
    Dependencies.installPackages(
        ["cmrseg_no_such_a", "torch", "cmrseg_no_such_b"], fake,
        progress=lambda done, total, text: events.append(("progress", done, total, text)),
        install=lambda name, requirement: events.append(("install", requirement)),
    )  # fmt: skip
    assert events == [
        ("progress", 0, 3, "Installing torch>=2.1 (1 of 3)..."),
        ("install", "torch>=2.1"),  # the longest first
        ("progress", 1, 3, "Installing cmrseg-no-such-a>=1 (2 of 3)..."),
        ("install", "cmrseg-no-such-a>=1"),
        ("progress", 2, 3, "Installing b>=2 (3 of 3)..."),
        ("install", "b>=2"),
        ("progress", 3, 3, "Installed."),
    ]
