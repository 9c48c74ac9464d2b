"""Editing DICOM headers in place, as broken exports and anonymisers leave them (for the reader tests)."""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom import config as dicom_config


def edit(path: Path, **attributes) -> None:
    """Set (or, with value None, delete) header attributes of one file in place."""
    with dicom_config.disable_value_validation():
        ds = pydicom.dcmread(path)
        for name, value in attributes.items():
            if value is None:
                delattr(ds, name)
            else:
                setattr(ds, name, value)
        ds.save_as(path)
