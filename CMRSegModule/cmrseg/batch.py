"""``cmrseg batch``: segment a cohort in one process (the model loaded once), or on a Dask cluster.

Each study's outputs go to ``OUT/<name>/``, exactly what ``cmrseg segment`` writes there (the same functions
write them), and ``OUT/cohort.csv`` gets one row per study (rewritten after every study, so an interrupted
batch keeps what it finished). A study that fails is recorded with its reason and the batch goes on; the
command exits with status 1 when any did. A rerun skips the studies whose outputs are complete and were made
with the same model and settings; a folder holding anything else is left as it is and its study fails with
the reason (a batch never replaces files). One batch at a time writes to an output folder, and its table
covers one cohort: an output folder whose table lists studies the batch does not name is refused.

In one process, reading the next study and writing the last one run in two helper threads while the network
segments the current one (torch, NumPy, SimpleITK and file I/O release the GIL), so the CPU is not idle during
I/O. With ``--scheduler`` the studies are tasks on a Dask cluster (:mod:`cmrseg.cluster`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from cmrseg.cohort import (
    COHORT_FILE,
    StudyJob,
    done_row,
    earlier_names,
    failed_row,
    find_studies,
    finished_row,
    read_list_file,
    studies_of_other_batches,
    write_cohort_csv,
)
from cmrseg.errors import CMRSegError

# studies segmented and waiting to be written, each holding its images and labels in memory: where writing is
# slower than the network (reports, --all-frames label maps), the network waits rather than memory filling up
MAX_PENDING_WRITES = 2


@dataclass(frozen=True)
class BatchOptions:
    """The ``cmrseg segment`` options a batch applies to every study."""

    all_frames: bool = False
    basal_rule: str = "none"
    bsa_method: str = "mosteller"
    report: str = "html"

    def as_dict(self) -> dict:
        return asdict(self)

    def settings(self, model_sha256: str) -> dict:
        """What a reused result must have been made with, as measures.json records it."""
        return {"model_sha256": model_sha256, "basal_rule": self.basal_rule, "bsa_method": self.bsa_method,
                "all_frames": self.all_frames}


def add_batch_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("input", nargs="*", help="studies: DICOM folders or roots, ACDC patient folders or roots, "
                                                 "4D NIfTI/NRRD cines")  # fmt: skip
    parser.add_argument("--list", help="a text file naming one study path per line (# starts a comment)")
    parser.add_argument("--out", required=True, help="output folder: one folder per study, and cohort.csv")
    parser.add_argument("--model", help="checkpoint file (default: the shipped model)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="default: auto")
    parser.add_argument("--all-frames", action="store_true", help="segment every frame (volume curves)")
    parser.add_argument("--basal-rule", default="none", choices=("none", "50", "100"),
                        help="keep basal LV slices with >= 50 %% or 100 %% of the border in myocardium")
    parser.add_argument("--bsa", default="mosteller", choices=("mosteller", "dubois"), help="BSA formula")
    parser.add_argument("--report", default="html", choices=("html", "pdf", "none"),
                        help="each study's report.html (default), pdf: also report.pdf, or none (fastest)")
    parser.add_argument("--scheduler", help="address of a Dask scheduler (tcp://host:8786) to run the studies on")
    parser.set_defaults(run=run_batch_command)
    return parser


def run_batch_command(args: argparse.Namespace) -> int:
    from cmrseg.outputs import check_output_folder

    paths = list(args.input) + (read_list_file(args.list) if args.list else [])
    if not paths:
        raise CMRSegError("Name the studies to segment, or a --list file of them.")
    out = check_output_folder(args.out)
    jobs = find_studies(paths, earlier_names(out))
    out.mkdir(exist_ok=True)  # only once there are studies: a refused batch leaves no folder
    options = BatchOptions(args.all_frames, args.basal_rule, args.bsa, args.report)
    with batch_lock(out):
        others = studies_of_other_batches(out, jobs)
        if others:
            raise CMRSegError(
                f"{out / COHORT_FILE} lists {len(others)} studies this batch does not name ({', '.join(others[:3])}"
                f"{', ...' if len(others) > 3 else ''}); one table covers one cohort: name them too (finished ones "
                "are kept), or choose another --out."
            )
        rows = _run(jobs, out, options, args)
    if rows is None:
        print(f"cmrseg: interrupted; the studies finished so far are kept (see {out / COHORT_FILE}); run the same "
              "command again to go on", file=sys.stderr)  # fmt: skip
        return 130
    failed = [row for row in rows if row["status"] == "failed"]
    print(f"{len(rows) - len(failed)} of {len(rows)} studies done; table in {out / COHORT_FILE}")
    for row in failed:
        print(f"  failed: {row['name']}: {row['reason']}")
    return 1 if failed else 0


def _run(jobs: list[StudyJob], out: Path, options: BatchOptions, args: argparse.Namespace) -> list[dict] | None:
    """The rows of the batch, or None when it was interrupted."""
    try:
        if args.scheduler:
            from cmrseg.cluster import run_on_cluster

            return run_on_cluster(args.scheduler, jobs, out, options, args.model, args.device)
        from cmrseg.inference import Segmenter

        return run_in_process(jobs, out, Segmenter.load(args.model, device=args.device), options)
    except KeyboardInterrupt:
        return None


@contextmanager
def batch_lock(out: Path) -> Iterator[None]:
    """Hold ``out`` for this batch (two batches writing one cohort.csv would each drop the other's rows)."""
    from cmrseg.outputs import lock_folder

    handle = lock_folder(out)
    try:
        yield
    finally:
        os.close(handle)  # closing releases the lock


class CohortProgress:
    """Keeps the rows in input order, rewrites cohort.csv after each study and prints progress with an ETA."""

    def __init__(self, jobs: list[StudyJob], out: Path, settings: dict) -> None:
        self.jobs, self.out, self.settings = jobs, out, settings
        self.rows: dict[str, dict] = {}
        self.started = time.perf_counter()
        self.resumed = 0

    def skip_finished(self) -> list[StudyJob]:
        """Record the studies an earlier run finished; return the ones still to do."""
        todo = []
        for job in self.jobs:
            row = finished_row(job, self.out / job.name, self.settings)
            if row is None:
                todo.append(job)
            else:
                self.rows[job.name] = row
        self.resumed = len(self.rows)
        done = sum(row["status"] == "done" for row in self.rows.values())
        if done:
            print(f"{done} of {len(self.jobs)} studies already done in {self.out}; skipping them.", flush=True)
        for row in self.rows.values():
            if row["status"] == "failed":
                print(f"{row['name']}: failed: {row['reason']}", flush=True)
        self._write()
        return todo

    def record(self, row: dict) -> None:
        self.rows[row["name"]] = row
        self._write()
        done, total = len(self.rows), len(self.jobs)
        new = done - self.resumed
        elapsed = time.perf_counter() - self.started
        eta = elapsed / new * (total - done) if new else 0.0
        what = row["status"] + (f" (QC {row['qc_status']})" if row["status"] == "done" else f": {row['reason']}")
        print(f"[{done}/{total}] {row['name']}: {what}  (ETA {_duration(eta)})", flush=True)

    def ordered(self) -> list[dict]:
        return [self.rows[job.name] for job in self.jobs if job.name in self.rows]

    def _write(self) -> None:
        write_cohort_csv(self.ordered(), self.out / COHORT_FILE)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _reason(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, CMRSegError) else f"{type(exc).__name__}: {exc}"


def segment_one(job: StudyJob, out: Path, segmenter, options: BatchOptions) -> dict:
    """Segment one study into ``out/<name>`` as ``cmrseg segment`` does; its cohort row (failed on any error)."""
    from cmrseg.segment import run_segment

    started = time.perf_counter()
    try:
        result = run_segment(list(job.inputs), out / job.name, segmenter, all_frames=options.all_frames,
                             basal_rule=options.basal_rule, bsa_method=options.bsa_method,
                             series_uid=job.series_uid, report=options.report, input_state=job.input_state)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - one bad study is recorded and the batch goes on
        return failed_row(job, _reason(exc))
    return done_row(job, result.measures, time.perf_counter() - started)


@dataclass
class _Loaded:
    job: StudyJob
    stack: ExitStack  # holds the study's output folder lock until its outputs are written
    folder: object
    loaded: object
    started: float


def run_in_process(jobs: list[StudyJob], out: Path, segmenter, options: BatchOptions) -> list[dict]:
    """Segment the studies one after another with reading and writing overlapped (see the module docstring)."""
    from cmrseg.segment import load_for_output, measures_document, segment_study, write_outputs

    progress = CohortProgress(jobs, out, options.settings(segmenter.model_sha256))
    todo = progress.skip_finished()

    def load(job: StudyJob) -> _Loaded:
        started = time.perf_counter()
        stack = ExitStack()
        try:
            from cmrseg.outputs import locked_output

            folder = stack.enter_context(locked_output(out / job.name))
            loaded = load_for_output(folder, list(job.inputs), series_uid=job.series_uid)
        except BaseException:
            stack.close()
            raise
        return _Loaded(job, stack, folder, loaded, started)

    def write(item: _Loaded, result) -> dict:
        with item.stack:
            measures = measures_document(item.loaded, result, segmenter, options.basal_rule, options.bsa_method,
                                         options.all_frames, item.job.input_state)  # fmt: skip
            write_outputs(item.folder, item.loaded, result, measures, segmenter, report=options.report)
        return done_row(item.job, measures, time.perf_counter() - item.started)

    with ThreadPoolExecutor(1, "cmrseg-read") as reader, ThreadPoolExecutor(1, "cmrseg-write") as writer:
        writes: list[tuple[StudyJob, Future]] = []
        next_load = reader.submit(load, todo[0]) if todo else None
        try:
            for index, job in enumerate(todo):
                current, next_load = next_load, (reader.submit(load, todo[index + 1]) if index + 1 < len(todo)
                                                 else None)  # fmt: skip
                try:
                    item = current.result()
                except (KeyboardInterrupt, SystemExit):
                    raise
                except BaseException as exc:  # noqa: BLE001 - recorded, the batch goes on
                    progress.record(failed_row(job, _reason(exc)))
                    continue
                try:
                    result = segment_study(item.loaded.study, segmenter, all_frames=options.all_frames,
                                           basal_rule=options.basal_rule, bsa_method=options.bsa_method)
                except (KeyboardInterrupt, SystemExit):
                    item.stack.close()
                    raise
                except BaseException as exc:  # noqa: BLE001
                    item.stack.close()
                    progress.record(failed_row(job, _reason(exc)))
                    continue
                writes.append((job, writer.submit(write, item, result)))
                _record_finished_writes(writes, progress, MAX_PENDING_WRITES)
            _record_finished_writes(writes, progress)
        except BaseException:
            if next_load is not None:
                next_load.cancel()
                if not next_load.cancelled():  # already loading: release its lock once read
                    next_load.add_done_callback(lambda f: f.exception() is None and f.result().stack.close())
            _record_finished_writes(writes, progress)  # writes in flight finish: nothing half-done
            raise
    return progress.ordered()


def _record_finished_writes(writes: list[tuple[StudyJob, Future]], progress: CohortProgress,
                            pending: int = 0) -> None:  # fmt: skip
    """Record the finished writes, waiting for the oldest while more than ``pending`` are not finished."""
    while writes and (len(writes) > pending or writes[0][1].done()):
        job, future = writes.pop(0)
        try:
            progress.record(future.result())
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001
            progress.record(failed_row(job, _reason(exc)))

