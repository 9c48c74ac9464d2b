"""``cmrseg benchmark --cohort STUDY...``: one ``cmrseg segment`` process per study against one ``cmrseg batch``
process, on the same studies; a measurement, not a test. Both runs must give the same label maps."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cmrseg.cohort import find_studies
from cmrseg.errors import CMRSegError


def _run(command: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["no message"]
        raise CMRSegError(f"{' '.join(command[2:4])} failed: {lines[-1]}")
    return time.perf_counter() - started


def _same_label_maps(first: Path, second: Path) -> bool:
    from cmrseg.io.volume_files import read_volume_file

    names = sorted(p.name for p in first.glob("*_seg.nii.gz"))
    return bool(names) and names == sorted(p.name for p in second.glob("*_seg.nii.gz")) and all(
        np.array_equal(read_volume_file(first / n).image, read_volume_file(second / n).image) for n in names
    )


def measure_cohort(paths: list[str], repeats: int, report: str) -> dict:
    """Seconds for the studies as separate processes and as one batch (medians of ``repeats``)."""
    jobs = find_studies(paths)
    cmrseg = [sys.executable, "-m", "cmrseg"]
    singles, batches = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="cmrseg-benchmark-") as scratch:
            scratch = Path(scratch)
            (scratch / "single").mkdir()
            singles.append(sum(
                _run([*cmrseg, "segment", *job.inputs, "--out", str(scratch / "single" / job.name), "--report", report]
                     + (["--series", job.series_uid] if job.series_uid else []))
                for job in jobs
            ))  # fmt: skip
            (scratch / "batch").mkdir()
            batches.append(_run([*cmrseg, "batch", *paths, "--out", str(scratch / "batch"), "--report", report]))
            different = [j.name for j in jobs if not _same_label_maps(scratch / "single" / j.name,
                                                                       scratch / "batch" / j.name)]  # fmt: skip
            if different:
                raise CMRSegError(f"batch and segment disagree on {', '.join(different)}")
    single, batch = float(np.median(singles)), float(np.median(batches))
    return {"studies": len(jobs), "report": report, "runs": repeats, "single_seconds": single,
            "batch_seconds": batch, "single_per_minute": 60 * len(jobs) / single,
            "batch_per_minute": 60 * len(jobs) / batch, "speed_up": single / batch}


def main(paths: list[str], repeats: int, report: str) -> int:
    row = measure_cohort(paths, repeats, report)
    print(f"{row['studies']} studies, report {report}, medians of {repeats} runs; label maps identical")
    print("| run | seconds | studies per minute |")
    print("|---|---|---|")
    print(f"| one `cmrseg segment` process per study | {row['single_seconds']:.1f} | {row['single_per_minute']:.1f} |")
    print(f"| one `cmrseg batch` process | {row['batch_seconds']:.1f} | {row['batch_per_minute']:.1f} |")
    print(f"Speed-up: {row['speed_up']:.2f}x")
    return 0
