"""The Python packages CMRSeg needs in Slicer's Python, checked and installed on the first Apply.

Nothing is installed at import time or without the user's consent: :func:`ensureDependencies` asks through
the ``confirm`` callable it is given (the widget passes a dialog). torch is installed through the PyTorch
extension's ``PyTorchUtils`` logic when that extension is there (it picks the build matching the GPU);
the rest through ``slicer.packaging.pip_ensure`` (``slicer.pydeps`` in Slicer 5.11-5.12), else
``slicer.util.pip_install``.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from collections.abc import Callable

from cmrseg.errors import CMRSegError

# Import name -> pip requirement (as in pyproject.toml; matplotlib draws the figures of the run's report).
REQUIREMENTS = {
    "torch": "torch>=2.1",
    "SimpleITK": "SimpleITK>=2.3",
    "pydicom": "pydicom>=2.4",
    "scipy": "scipy>=1.11",
    "matplotlib": "matplotlib>=3.8",
}
TORCH_VERSION = ">=2.1"
MINIMUM_PYTHON = (3, 11)  # the cmrseg core's requirement (pyproject.toml)


def checkPythonVersion(version: tuple = tuple(sys.version_info[:2])) -> None:
    """Raise a clear error when Slicer's Python is older than the core needs (Slicer before 5.10 has 3.9)."""
    if tuple(version[:2]) < MINIMUM_PYTHON:
        raise CMRSegError(
            f"CMRSeg needs Python {MINIMUM_PYTHON[0]}.{MINIMUM_PYTHON[1]} or newer; this Slicer has Python "
            f"{version[0]}.{version[1]}. Use 3D Slicer 5.10 or newer."
        )


def missingPackages(requirements: dict[str, str] | None = None) -> list[str]:
    """The import names of the required packages that cannot be found (without importing them)."""
    requirements = REQUIREMENTS if requirements is None else requirements
    importlib.invalidate_caches()
    return [name for name in requirements if importlib.util.find_spec(name) is None]


def installMessage(missing: list[str], requirements: dict[str, str] | None = None) -> str:
    requirements = REQUIREMENTS if requirements is None else requirements
    listed = ", ".join(requirements[name] for name in missing)
    return (f"CMRSeg needs these Python packages, which are not installed in Slicer yet: {listed}.\n\n"
            "Download and install them now? This can take several minutes (PyTorch is large).")


def ensureDependencies(confirm: Callable[[str], bool], requirements: dict[str, str] | None = None) -> bool:
    """True when every required package is importable, installing the missing ones if ``confirm`` agrees.

    Returns False (and installs nothing) when the user declines.

    Raises:
        CMRSegError: Slicer's Python is too old for the core.
        RuntimeError: the installation ran but packages are still missing.
    """
    checkPythonVersion()
    requirements = REQUIREMENTS if requirements is None else requirements
    missing = missingPackages(requirements)
    if not missing:
        return True
    if not confirm(installMessage(missing, requirements)):
        logging.info("CMRSeg: installation of %s declined.", ", ".join(missing))
        return False
    installPackages(missing, requirements)
    stillMissing = missingPackages(requirements)
    if stillMissing:
        raise RuntimeError(f"Installing {', '.join(stillMissing)} failed; see the Python console for pip's output.")
    return True


def installPackages(missing: list[str], requirements: dict[str, str] | None = None) -> None:
    """Install the given packages into Slicer's Python (call only after the user agreed)."""
    requirements = REQUIREMENTS if requirements is None else requirements
    others = [requirements[name] for name in missing if name != "torch"]
    if "torch" in missing:
        _installTorch(requirements["torch"])
    if others:
        _pipEnsure(others)


def _installTorch(requirement: str) -> None:
    try:
        import PyTorchUtils  # the PyTorch extension (a dependency of this extension)
    except ImportError:
        _pipEnsure([requirement])
        return
    torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False, torchVersionRequirement=TORCH_VERSION)
    if torch is None:
        raise RuntimeError("PyTorch was not installed (see the PyTorch Utils module).")


def _pipEnsure(requirements: list[str]) -> None:
    import slicer

    for moduleName in ("slicer.packaging", "slicer.pydeps"):
        try:
            module = importlib.import_module(moduleName)
        except ImportError:
            continue
        ensure = getattr(module, "pip_ensure", None)
        if ensure is not None:
            from packaging.requirements import Requirement  # what both versions of pip_ensure accept

            ensure([Requirement(r) for r in requirements], prompt_install=False, requester="CMRSeg")
            return
    slicer.util.pip_install(" ".join(requirements))
