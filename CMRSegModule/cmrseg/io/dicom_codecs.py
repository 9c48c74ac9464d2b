"""Which compressed DICOM transfer syntaxes need extra decoder packages for pydicom, and which are missing.

pydicom decodes uncompressed, deflated and RLE pixel data itself and baseline JPEG with Pillow; JPEG
Lossless, JPEG-LS and JPEG 2000 need the pylibjpeg plugins. Scanners and PACS often send cine series
JPEG-Lossless compressed, so a missing decoder is named before the pixel data is read, with the packages that
fix it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Codec:
    name: str
    modules: tuple[str, ...]  # import names pydicom's decoder needs
    requirements: tuple[str, ...]  # the pip requirements that provide them


# (modules, requirements) of the two pylibjpeg plugins
_LIBJPEG = (("pylibjpeg", "libjpeg"), ("pylibjpeg>=2.0", "pylibjpeg-libjpeg>=2.1"))
_OPENJPEG = (("pylibjpeg", "openjpeg"), ("pylibjpeg>=2.0", "pylibjpeg-openjpeg>=2.3"))

# Transfer syntax UID -> the codec that decodes it (syntaxes pydicom and Pillow handle are absent).
CODECS: dict[str, Codec] = {
    "1.2.840.10008.1.2.4.57": Codec("JPEG Lossless", *_LIBJPEG),
    "1.2.840.10008.1.2.4.70": Codec("JPEG Lossless (first-order prediction)", *_LIBJPEG),
    "1.2.840.10008.1.2.4.80": Codec("JPEG-LS lossless", *_LIBJPEG),
    "1.2.840.10008.1.2.4.81": Codec("JPEG-LS near-lossless", *_LIBJPEG),
    "1.2.840.10008.1.2.4.90": Codec("JPEG 2000 lossless", *_OPENJPEG),
    "1.2.840.10008.1.2.4.91": Codec("JPEG 2000", *_OPENJPEG),
}


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def missing_decoders(transfer_syntaxes: Iterable[str], installed=None) -> dict[str, list[str]]:
    """Codec name -> the pip requirements still to install, for the given syntaxes that cannot be decoded.

    ``installed(module name) -> bool`` defaults to looking the module up.
    """
    installed = installed or _installed
    missing: dict[str, list[str]] = {}
    for uid in sorted(set(transfer_syntaxes)):
        codec = CODECS.get(uid)
        if codec is None:
            continue
        needed = [req for module, req in zip(codec.modules, codec.requirements, strict=True) if not installed(module)]
        if needed:
            missing[codec.name] = needed
    return missing


def decoder_advice(transfer_syntaxes: Iterable[str], installed=None) -> str:
    """A sentence naming the compression and the packages to install, or "" when every decoder is there."""
    missing = missing_decoders(transfer_syntaxes, installed)
    if not missing:
        return ""
    requirements = sorted({req for reqs in missing.values() for req in reqs})
    return (
        f"The series is compressed ({', '.join(missing)}) and the decoder is not installed: install "
        f"{' and '.join(requirements)} (pip install {' '.join(repr(r) for r in requirements)}), or export the "
        "series uncompressed."
    )
