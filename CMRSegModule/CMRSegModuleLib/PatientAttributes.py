"""The patient facts (height, weight, sex, age) kept as MRML node attributes, so that they travel with the
sequence and the results table and are saved with the scene. Numbers are stored as ``repr(float)``, the sex
as DICOM's ``M``/``F``/``O``."""

from __future__ import annotations

from cmrseg.io.study import PatientInfo

FIELDS = ("height_cm", "weight_kg", "sex", "age_years")


def writePatient(node, patient: PatientInfo | None, attributes: dict[str, str]) -> None:
    """Set ``attributes[field]`` on ``node`` for each known field of ``patient``."""
    for field, attribute in attributes.items():
        value = getattr(patient, field, None) if patient is not None else None
        if value:
            node.SetAttribute(attribute, str(value) if field == "sex" else repr(float(value)))


def readPatient(node, attributes: dict[str, str]) -> PatientInfo:
    """The :class:`PatientInfo` stored on ``node`` (``None`` where an attribute is missing)."""
    values = {}
    for field, attribute in attributes.items():
        text = node.GetAttribute(attribute)
        if text:
            values[field] = text if field == "sex" else float(text)
    return PatientInfo(**values)
