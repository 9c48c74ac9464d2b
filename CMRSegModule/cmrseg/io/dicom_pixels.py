"""The pixels of one image of a cine series: decoded, rescaled (RescaleSlope, RescaleIntercept), MONOCHROME1
turned so that blood is bright; every failure a :class:`CMRSegError` naming the file."""

from __future__ import annotations

import numpy as np
import pydicom
from pydicom import config as dicom_config

from cmrseg.errors import CMRSegError
from cmrseg.io.dicom_scan import InstanceHeader, _number


def read_pixels(header: InstanceHeader, last: dict) -> tuple[np.ndarray, pydicom.Dataset]:
    """One image, rescaled; ``last`` keeps the last file decoded (an enhanced file holds every frame)."""
    try:
        with dicom_config.disable_value_validation():
            if last.get("path") != header.path:
                last.clear()
                last["ds"] = pydicom.dcmread(header.path, force=False)
                last["pixels"], last["path"] = last["ds"].pixel_array, header.path
            ds, pixels = last["ds"], last["pixels"]
            if header.frame_index is not None and pixels.ndim == 3:  # a one-frame file decodes to one image
                pixels = pixels[header.frame_index]
            slope, intercept = header.rescale or (_number(ds.get("RescaleSlope")), _number(ds.get("RescaleIntercept")))
    except Exception as exc:  # noqa: BLE001 - any decoding failure is reported with the file's name
        raise CMRSegError(
            f"Cannot read the pixel data of {header.path} ({type(exc).__name__}: {_first_sentence(exc)}). The "
            "file may be truncated or compressed with a codec that is not installed; replace it or export the "
            f"series uncompressed. (Transfer syntax {header.transfer_syntax or 'not given'}.)"
        ) from exc
    if pixels.shape != (header.rows, header.columns):
        raise CMRSegError(
            f"{header.path} holds pixels of shape {pixels.shape}, not Rows x Columns = "
            f"{header.rows} x {header.columns}; it is not a single 2D image."
        )
    for name, value in (("RescaleSlope", slope), ("RescaleIntercept", intercept)):
        if value is not None and not np.isfinite(value):
            raise CMRSegError(f"{header.path} has {name} {value}; its intensities cannot be used. Replace the file.")
    if slope == 0:
        raise CMRSegError(f"{header.path} has RescaleSlope 0, which makes the image blank. Replace the file.")
    image = pixels.astype(np.float32)
    if slope is not None and slope != 1.0:
        image *= np.float32(slope)
    if intercept:
        image += np.float32(intercept)
    if str(ds.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1":
        image = _inverted(image, ds, slope, intercept)
    return image, ds


def _inverted(image: np.ndarray, ds: pydicom.Dataset, slope: float | None, intercept: float | None) -> np.ndarray:
    """A MONOCHROME1 image (its lowest value shows white) turned so that blood is bright, as the network saw
    every cine: reflected within the range its stored bits can hold, the same for every file of the series."""
    bits = int(ds.get("BitsStored") or ds.get("BitsAllocated") or 16)
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if ds.get("PixelRepresentation") == 1 else (0, 2**bits - 1)
    low, high = (v * (1.0 if slope is None else slope) + (intercept or 0.0) for v in (low, high))
    return np.float32(low + high) - image


def _first_sentence(exc: Exception) -> str:
    """The first line of an exception message, whole (never cut mid-word)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 300 else text[: text.rfind(" ", 0, 300)] + " ..."
