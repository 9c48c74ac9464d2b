"""The clinical parameters as a DICOM Structured Report (TID 1500 measurement report, Comprehensive 3D SR),
referencing the ED and ES images they were measured on, so that a PACS keeps the numbers with the study.

Measurements with a concept of their own in the DICOM content mapping resource (PS3.16, as pydicom's code
dictionary carries it) use it: LOINC for the LV/RV end-diastolic and end-systolic volumes, the ejection
fractions by MR and the LV mass, SNOMED CT for the RV stroke volume. The others (LV stroke volume, the mass
at end-systole, the indexed values and the body surface area they were indexed by, which may come from a
height and weight other than the images' header states) use a private coding scheme (``99CMRSEG``) with plain
meanings: a wrong standard code would be worse than an honest private one. Units are UCUM.
"""

from __future__ import annotations

import math
import warnings
from datetime import UTC, datetime
from pathlib import Path

from pydicom import config as dicom_config

from cmrseg import __version__
from cmrseg.errors import CMRSegError
from cmrseg.io.dicom_seg import SAME_FOR_SR, _as_source, check_seg_sources
from cmrseg.qc import unusable_parameters

SCHEME = "99CMRSEG"
# measures.json key -> (standard concept in pydicom's DICOM code dictionary or None, private code value,
# meaning, UCUM unit, unit meaning)
MEASUREMENTS = {
    "lv_edv_ml": ("LN.LeftVentricularEDVolume", "LVEDV", "LV end-diastolic volume", "ml", "milliliter"),
    "lv_esv_ml": ("LN.LeftVentricularESVolume", "LVESV", "LV end-systolic volume", "ml", "milliliter"),
    "lv_sv_ml": (None, "LVSV", "LV stroke volume", "ml", "milliliter"),
    "lv_ef_pct": ("LN.LeftVentricularEjectionFractionByMR", "LVEF", "LV ejection fraction", "%", "percent"),
    "lv_mass_ed_g": ("LN.LeftVentricleMass", "LVMED", "LV myocardial mass at end-diastole", "g", "gram"),
    "lv_mass_es_g": (None, "LVMES", "LV myocardial mass at end-systole", "g", "gram"),
    "rv_edv_ml": ("LN.RightVentricularEDVolume", "RVEDV", "RV end-diastolic volume", "ml", "milliliter"),
    "rv_esv_ml": ("LN.RightVentricularESVolume", "RVESV", "RV end-systolic volume", "ml", "milliliter"),
    "rv_sv_ml": ("SCT.RightVentricularStrokeVolume", "RVSV", "RV stroke volume", "ml", "milliliter"),
    "rv_ef_pct": ("LN.RightVentricularEjectionFractionByMR", "RVEF", "RV ejection fraction", "%", "percent"),
    "lv_edv_index": (None, "LVEDVI", "LV end-diastolic volume indexed to BSA", "ml/m2", "milliliter per square meter"),
    "lv_esv_index": (None, "LVESVI", "LV end-systolic volume indexed to BSA", "ml/m2", "milliliter per square meter"),
    "lv_sv_index": (None, "LVSVI", "LV stroke volume indexed to BSA", "ml/m2", "milliliter per square meter"),
    "rv_edv_index": (None, "RVEDVI", "RV end-diastolic volume indexed to BSA", "ml/m2", "milliliter per square meter"),
    "rv_esv_index": (None, "RVESVI", "RV end-systolic volume indexed to BSA", "ml/m2", "milliliter per square meter"),
    "rv_sv_index": (None, "RVSVI", "RV stroke volume indexed to BSA", "ml/m2", "milliliter per square meter"),
    "lv_mass_ed_index": (None, "LVMEDI", "LV mass at end-diastole indexed to BSA", "g/m2", "gram per square meter"),
    # the BSA the indexed values were divided by: the header's height and weight may not be the ones used
    "bsa_m2": (None, "BSA", "Body surface area used for the indexed values", "m2", "square meter"),
}


def concept_name(key: str):
    """The coded name of a measurement: its standard concept where one exists, else the private one."""
    from pydicom.sr.codedict import codes
    from pydicom.sr.coding import Code

    standard, private, meaning, _, _ = MEASUREMENTS[key]
    if standard is None:
        return Code(private, SCHEME, meaning)
    scheme, name = standard.split(".")
    return getattr(getattr(codes, scheme), name)

def write_dicom_sr(measures: dict, folder: str | Path, ed_files: list[str], es_files: list[str], path: str | Path,
                   algorithm: str, qc: dict, corrected: bool = False, approval: dict | None = None) -> Path:
    """Write the study parameters of ``measures`` (measures.json's ``study``) as a TID 1500 SR referencing the
    ED and ES images, with the status of the quality check ``qc`` (measures.json's ``qc``). Parameters without
    a value (null) are left out; so are those the quality check makes unusable, each named instead by a
    qualitative evaluation "not usable (quality check: CODE)". The SR is PRELIMINARY and UNVERIFIED
    unless ``approval`` (the review's, ``{"status": "approved", "by", "at"}``) approves it: then FINAL and
    VERIFIED, with the reviewer as the verifying observer at the time of the approval.

    Raises:
        CMRSegError: the images cannot be sources of one DICOM object (see :func:`check_seg_sources`).
    """
    import highdicom as hd
    import pydicom
    from pydicom.sr.codedict import codes
    from pydicom.sr.coding import Code

    check_seg_sources(folder, ed_files + es_files, SAME_FOR_SR)
    with dicom_config.disable_value_validation(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        # each file once: an enhanced (multi-frame) file holds every slice of both phases
        sources = [_as_source(pydicom.dcmread(Path(folder) / n, stop_before_pixels=True))
                   for n in dict.fromkeys(ed_files + es_files)]  # fmt: skip
        device = hd.sr.DeviceObserverIdentifyingAttributes(uid=hd.UID(), name="CMRSeg", manufacturer_name="CMRSeg",
                                                          model_name=algorithm[:64])  # fmt: skip
        context = hd.sr.ObservationContext(observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device, observer_identifying_attributes=device))  # fmt: skip
        given = [key for key in MEASUREMENTS if measures.get(key) is not None and math.isfinite(measures[key])]
        if not given:
            raise CMRSegError("No clinical parameter to report (ED and ES are needed).")
        unusable = unusable_parameters(qc, measures)
        items = [hd.sr.Measurement(name=concept_name(key), value=float(measures[key]),
                                   unit=Code(MEASUREMENTS[key][3], "UCUM", MEASUREMENTS[key][4]))
                 for key in given if key not in unusable]  # fmt: skip
        evaluations = [hd.sr.QualitativeEvaluation(
            name=Code("QC", SCHEME, "CMRSeg quality check"),
            value=Code(qc["status"].upper(), SCHEME, f"quality check {qc['status']}"))]
        evaluations += [hd.sr.QualitativeEvaluation(
            name=concept_name(key), value=Code("NOTUSABLE", SCHEME, f"not usable (quality check: {unusable[key]})"))
            for key in given if key in unusable]  # fmt: skip
        group = hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier="CMRSeg ventricular function"),
            measurements=items or None, qualitative_evaluations=evaluations,
        )  # fmt: skip
        report = hd.sr.MeasurementReport(observation_context=context,
                                         procedure_reported=codes.SCT.MagneticResonanceImagingOfHeart,
                                         imaging_measurements=[group])  # fmt: skip
        approved = (approval or {}).get("status") == "approved"
        sr = hd.sr.Comprehensive3DSR(
            evidence=sources, content=report, series_instance_uid=hd.UID(), series_number=901,
            sop_instance_uid=hd.UID(), instance_number=1, manufacturer="CMRSeg", is_complete=True,
            is_final=approved, is_verified=approved,
            verifying_observer_name=approval["by"] if approved else None,
            verifying_organization=(sources[0].get("InstitutionName") or "unknown") if approved else None,
        )  # fmt: skip
        if approved:  # when the reviewer approved, not when the file was written
            when = datetime.fromisoformat(approval["at"]).astimezone(UTC)
            sr.VerifyingObserverSequence[0].VerificationDateTime = when.strftime("%Y%m%d%H%M%S+0000")
        sr.SeriesDescription = f"CMRSeg {'corrected' if corrected else 'automatic'} measurements {__version__}"
        scheme = pydicom.Dataset()  # a private coding scheme is declared in the object that uses it
        scheme.CodingSchemeDesignator = SCHEME
        scheme.CodingSchemeName = "CMRSeg measurements"
        scheme.CodingSchemeResponsibleOrganization = "CMRSeg"
        sr.CodingSchemeIdentificationSequence = [*sr.get("CodingSchemeIdentificationSequence", []), scheme]
    path = Path(path)
    sr.save_as(path)
    return path
