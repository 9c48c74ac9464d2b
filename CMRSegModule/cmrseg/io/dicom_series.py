"""Which series of a scanned DICOM folder is the cine short-axis stack (the one named, or the one with the most
slices x phases), and the refusal of a stack split over several series. The choice is logged at INFO level on
the reader's logger, ``cmrseg.io.dicom_cine``."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from cmrseg.errors import CMRSegError
from cmrseg.io.dicom_scan import (
    GEOMETRY_TOLERANCE,
    POSITION_TOLERANCE_MM,
    SeriesSummary,
    _group_series,
    _position_clusters,
    _Scan,
    _slice_normal,
)

logger = logging.getLogger("cmrseg.io.dicom_cine")


def _listing(series: list[SeriesSummary]) -> str:
    return "\n".join(f"  - {s.describe()}" for s in series)


def choose_series(folder: Path, scan: _Scan, series_uid: str | None) -> SeriesSummary:
    series = _group_series(scan.headers)
    if not series:
        raise CMRSegError(
            f"No DICOM images in {folder} ({len(scan.non_dicom)} non-DICOM and {len(scan.unreadable)} "
            "unreadable files). Choose the folder that holds the cine short-axis DICOM series." + scan.skipped_note()
        )
    if series_uid is not None:
        for summary in series:
            if summary.series_uid == series_uid:
                return summary
        raise CMRSegError(
            f"No series with SeriesInstanceUID {series_uid} in {folder}. Name one of the series found:\n"
            + _listing(series)
        )
    candidates = [s for s in series if s.num_positions >= 2]
    if not candidates:
        raise CMRSegError(
            f"No cine short-axis series in {folder}: no series has images at several slice positions. "
            f"Series found:\n{_listing(series)}\nChoose a folder with a short-axis stack."
        )
    best = max(candidates, key=lambda s: (s.num_phases > 1, s.num_positions * s.num_phases, s.num_instances))
    continuing = [s for s in candidates if s is not best and _continues_stack(best, s)]
    if continuing:
        raise CMRSegError(
            f"The short-axis stack in {folder} is split over several series: "
            + ", ".join(s.describe() for s in [best, *continuing])
            + " are parallel, with the same phases, at other slice positions. One series would cover only part of "
            "the heart, and its volumes would look right but be too small. Put the stack into one folder or "
            "series, or name the series to read with --series (its SeriesInstanceUID) if it alone covers the heart."
        )
    if len(series) > 1:
        kind = "multi-phase" if best.num_phases > 1 else "single-phase"
        logger.info(
            "Chose %s among %d series in %s: %s, with the most slices x phases of the %d stacked series. "
            "Name another with series_uid.\n%s",
            best.describe(),
            len(series),
            folder,
            kind,
            len(candidates),
            _listing(series),
        )
    return best


def _continues_stack(stack: SeriesSummary, other: SeriesSummary) -> bool:
    """Whether ``other`` looks like more slices of ``stack``: the same phases, slices parallel to its slices,
    and none at a position that ``stack`` has."""
    own, more = _position_clusters(stack.instances), _position_clusters(other.instances)
    if other.num_phases != stack.num_phases or not own or not more:
        return False
    normal = _slice_normal(own[0][0].orientation)
    if abs(float(np.dot(normal, _slice_normal(more[0][0].orientation)))) < 1 - GEOMETRY_TOLERANCE:
        return False
    positions = [float(np.dot(normal, cluster[0].position)) for cluster in own]
    return all(min(abs(float(np.dot(normal, cluster[0].position)) - p) for p in positions) > POSITION_TOLERANCE_MM
               for cluster in more)
