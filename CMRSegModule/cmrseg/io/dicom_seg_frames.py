"""The source of a DICOM SEG of a cine stored as one enhanced (multi-frame) file: the file seen as holding
only one phase's frames, in slice order, for highdicom to build the SEG on; then the file's own frame numbers
put back into the SEG's references.

highdicom matches the planes of a SEG to source frames by position, which in a cine finds every phase at
that position; the view gives it exactly one frame per slice. It also takes the orientation and pixel
measures from the shared functional group, which some scanners (Philips) repeat per frame instead: the view
holds them shared when the phase's frames agree.
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from cmrseg.errors import CMRSegError

SHARED_GROUPS = {  # functional group -> the values its frames must share
    "PixelMeasuresSequence": ("PixelSpacing", "SliceThickness"),
    "PlaneOrientationSequence": ("ImageOrientationPatient",),
}


def check_phase_sources(files: list[str], frames: list[int] | None) -> None:
    """Refuse the sources of one phase's SEG that no SEG can reference: slices in several files of which
    some are enhanced, one-image files mixed in (``frames`` 0), or a multi-frame file without the frame of
    each slice (a scene saved by an earlier version, before the frames were kept)."""
    if frames is None:
        if len(set(files)) < len(files):
            raise CMRSegError(
                "The slices of this phase lie in one multi-frame DICOM file whose frame numbers were not kept "
                "(a scene saved by an earlier CMRSeg); load the study again from its DICOM folder to write a "
                "DICOM SEG (the label maps and reports are written)."
            )
        return
    if len(set(files)) > 1 or 0 in frames:
        raise CMRSegError(
            f"The slices of one phase lie in {len(set(files))} DICOM files, enhanced (multi-frame) ones among "
            "them; a DICOM SEG references frames of one enhanced file or one-image files, so none can be written "
            "(the label maps and reports are)."
        )


def check_enhanced_header(enhanced: Dataset, frames: list[int]) -> dict:
    """The orientation and pixel measures ``frames`` (1-based) of ``enhanced`` share, by functional group.

    Raises:
        CMRSegError: a frame not in the file, one without a position of its own, or frames that differ in
            orientation or pixel measures (or state none).
    """
    per_frame = enhanced.get("PerFrameFunctionalGroupsSequence") or []
    if max(frames) > len(per_frame):
        raise CMRSegError(f"Frame {max(frames)} is not in the enhanced DICOM file ({len(per_frame)} frames).")
    chosen = [per_frame[number - 1] for number in frames]
    if not all(item.get("PlanePositionSequence") for item in chosen):
        raise CMRSegError("Frames of the enhanced DICOM file have no position of their own (PlanePositionSequence); "
                          "no DICOM SEG can be written.")  # fmt: skip
    shared = _shared_group(enhanced)
    return {group: shared.get(group) or _one_for_all(chosen, group, keywords)
            for group, keywords in SHARED_GROUPS.items()}  # fmt: skip


def phase_view(enhanced: Dataset, frames: list[int]) -> Dataset:
    """``enhanced`` (a header read without pixels, changed in place) holding only ``frames`` (1-based), in
    slice order, its orientation and pixel measures shared (see :func:`check_enhanced_header`)."""
    groups = check_enhanced_header(enhanced, frames)
    chosen = [enhanced.PerFrameFunctionalGroupsSequence[number - 1] for number in frames]
    shared = _shared_group(enhanced)
    for group, sequence in groups.items():
        setattr(shared, group, sequence)
        for item in chosen:  # a group is either shared or per frame
            if group in item:
                delattr(item, group)
    enhanced.SharedFunctionalGroupsSequence = [shared]
    enhanced.PerFrameFunctionalGroupsSequence = chosen
    enhanced.NumberOfFrames = len(frames)
    return enhanced


def _shared_group(enhanced: Dataset) -> Dataset:
    return (enhanced.get("SharedFunctionalGroupsSequence") or [Dataset()])[0]


def _one_for_all(items: list[Dataset], group: str, keywords: tuple[str, ...]):
    """The functional group every frame of ``items`` carries, when they agree on ``keywords``."""
    sequences = [item.get(group) for item in items]
    if any(not sequence for sequence in sequences):
        raise CMRSegError(f"Frames of the enhanced DICOM file have no {group}; no DICOM SEG can be written.")
    values = {tuple(_numbers(sequence[0].get(keyword)) for keyword in keywords) for sequence in sequences}
    if len(values) > 1:
        raise CMRSegError(f"The frames of one phase differ in their {group}; no DICOM SEG can be written.")
    return sequences[0]


def _numbers(value) -> tuple[float, ...]:
    """A DICOM number or list of numbers as a tuple, rounded past rounding noise (missing: empty)."""
    if value is None or value == "":
        return ()
    values = value if isinstance(value, MultiValue | list | tuple) else [value]
    return tuple(round(float(v), 4) for v in values)


def refer_to_file_frames(seg: Dataset, frames: list[int]) -> None:
    """highdicom numbered the phase view's frames 1..n in the SEG's references; the file's own numbers replace
    them, so a viewer finds each slice's source frame in the enhanced file."""
    references = {}  # highdicom shares one reference among the segments of a slice: renumber each once
    for item in seg.PerFrameFunctionalGroupsSequence:
        for derivation in item.get("DerivationImageSequence", []):
            references.update((id(source), source) for source in derivation.SourceImageSequence)
    for source in references.values():
        source.ReferencedFrameNumber = frames[int(source.ReferencedFrameNumber) - 1]
