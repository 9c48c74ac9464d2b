"""The Python packages CMRSeg needs in Slicer's Python, checked and installed on the first Apply.

Nothing is installed at import time or without the user's consent: :func:`ensureDependencies` asks through
the ``confirm`` callable it is given (the widget passes a dialog), then installs one package at a time and
reports each step to ``progress(done, total, text)`` (the widget shows a progress dialog). The DICOM
decoders for compressed cine series (JPEG Lossless, JPEG-LS, JPEG 2000) are offered the same way when a
folder needs them (:func:`ensureDicomDecoders`). torch is installed through the PyTorch
extension's ``PyTorchUtils`` logic when that extension is there (it picks the build matching the GPU);
the rest through ``slicer.packaging.pip_ensure`` (Slicer 5.12 and later), else ``slicer.util.pip_install``
(Slicer 5.10).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from collections.abc import Callable

from cmrseg.errors import CMRSegError

Progress = Callable[[int, int, str], None]

# Import name -> pip requirement (as in pyproject.toml; matplotlib draws the figures of the run's report).
REQUIREMENTS = {
    "torch": "torch>=2.1",
    "SimpleITK": "SimpleITK>=2.3",
    "pydicom": "pydicom>=2.4",
    "scipy": "scipy>=1.11",
    "matplotlib": "matplotlib>=3.8",
    "highdicom": "highdicom>=0.22",  # the corrected segmentations as DICOM SEG, back to PACS
    "pynetdicom": "pynetdicom>=2.1",  # sending them to the PACS (C-STORE)
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


def ensureDependencies(
    confirm: Callable[[str], bool], requirements: dict[str, str] | None = None, progress: Progress | None = None
) -> bool:
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
    installPackages(missing, requirements, progress)
    stillMissing = missingPackages(requirements)
    if stillMissing:
        raise RuntimeError(f"Installing {', '.join(stillMissing)} failed; see the Python console for pip's output.")
    return True


def installPackages(
    missing: list[str],
    requirements: dict[str, str] | None = None,
    progress: Progress | None = None,
    install: Callable[[str, str], None] | None = None,
) -> None:
    """Install the given packages into Slicer's Python, one at a time (call only after the user agreed).

    ``progress(done, total, text)`` is called before each package and once at the end; ``install(name,
    requirement)`` does the work (default: torch through the PyTorch extension, the rest with pip).
    """
    requirements = REQUIREMENTS if requirements is None else requirements
    install = install or _install
    order = sorted(missing, key=lambda name: name != "torch")  # the longest first, so the estimate is honest
    for done, name in enumerate(order):
        if progress is not None:
            progress(done, len(order), f"Installing {requirements[name]} ({done + 1} of {len(order)})...")
        install(name, requirements[name])
    if progress is not None:
        progress(len(order), len(order), "Installed.")


def missingDicomDecoders(folder: str) -> dict[str, list[str]]:
    """Compression name -> pip requirements still needed to read the DICOM files under ``folder``."""
    import warnings

    from cmrseg.io.dicom_codecs import missing_decoders
    from cmrseg.io.dicom_scan import scan_dicom_folder

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skipped files are reported when the folder is read
        try:
            series = scan_dicom_folder(folder)
        except CMRSegError:
            return {}  # not a readable folder: loading it says why
    return missing_decoders(h.transfer_syntax for s in series for h in s.instances)


def decoderInstallMessage(missing: dict[str, list[str]]) -> str:
    requirements = sorted({r for reqs in missing.values() for r in reqs})
    return (
        f"This DICOM series is compressed ({', '.join(missing)}); reading it needs {', '.join(requirements)}, "
        "which are not installed in Slicer yet.\n\nDownload and install them now?\n\n(Alternatively, load "
        "the series with Slicer's DICOM module, which decodes it with its own libraries, and select the "
        "volume sequence as CMRSeg's input.)"
    )


def ensureDicomDecoders(folder: str, confirm: Callable[[str], bool], progress: Progress | None = None) -> bool:
    """True when the folder's compressed images can be decoded, installing the decoders if ``confirm`` agrees.

    Raises:
        RuntimeError: the installation ran but a decoder is still missing.
    """
    missing = missingDicomDecoders(folder)
    if not missing:
        return True
    if not confirm(decoderInstallMessage(missing)):
        return False
    requirements = {r.split(">")[0].split("=")[0]: r for reqs in missing.values() for r in reqs}
    installPackages(list(requirements), requirements, progress)
    stillMissing = missingDicomDecoders(folder)
    if stillMissing:
        raise RuntimeError(f"Installing the {', '.join(stillMissing)} decoder failed; see the Python console.")
    return True


def _install(name: str, requirement: str) -> None:
    if name == "torch":
        _installTorch(requirement)
    else:
        _pipEnsure([requirement])


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

    try:
        from slicer.packaging import pip_ensure  # Slicer 5.12 and later
    except ImportError:
        slicer.util.pip_install(" ".join(requirements))  # Slicer 5.10
        return
    # The user agreed already; installing Python packages needs no restart.
    pip_ensure(requirements, prompt_install=False, prompt_restart=False, requester="CMRSeg")
