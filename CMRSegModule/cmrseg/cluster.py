"""``cmrseg batch --scheduler ADDRESS``: the studies of a batch as tasks on a Dask distributed cluster.

Every worker loads the model once (a worker plugin; each worker process keeps its own copy) and segments one
study per task with the same code as a single process (:func:`cmrseg.batch.segment_one`), writing into
``OUT/<name>/``; the client collects the rows into ``OUT/cohort.csv``. Workers therefore need the inputs and
the output folder at the same paths (a shared filesystem): before any work, every worker is asked to find
the inputs and to write into the output folder, and the batch is refused with the worker's address when one
cannot. Workers need cmrseg installed in the same version; run them with ``--nthreads 1`` (torch uses the
worker's cores for one study at a time).
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

from cmrseg.cohort import StudyJob, failed_row
from cmrseg.errors import CMRSegError
from cmrseg.shipped import default_model_path
from cmrseg.training.split import file_sha256

_SEGMENTERS: dict[tuple[str | None, str], object] = {}  # per worker process: (model, device) -> Segmenter


def _segmenter(model: str | None, device: str, model_sha256: str | None = None):
    """The worker's network for ``model``, loaded again when it is not the file of ``model_sha256`` (the file
    was replaced since this worker loaded it)."""
    key = (model, device)
    if key not in _SEGMENTERS or model_sha256 not in (None, _SEGMENTERS[key].model_sha256):
        from cmrseg.inference import Segmenter

        _SEGMENTERS[key] = Segmenter.load(model, device=device)
    return _SEGMENTERS[key]


def segmenter_plugin(model: str | None, device: str):
    """A worker plugin that loads the model when a worker joins (and on workers already there)."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class LoadModel(WorkerPlugin):
        name = "cmrseg-model"

        def setup(self, worker) -> None:  # noqa: ARG002 - the plugin interface
            _segmenter(model, device)

    return LoadModel()


def check_paths(inputs: list[str], out: str) -> str | None:
    """Run on a worker: None when it sees every input and can write into ``out``, else what is wrong."""
    missing = [path for path in inputs if not os.path.exists(path)]
    if missing:
        return f"cannot see {missing[0]}" + (f" (and {len(missing) - 1} more inputs)" if len(missing) > 1 else "")
    try:
        with tempfile.NamedTemporaryFile(dir=out, prefix=".cmrseg-worker-check-"):
            pass
    except OSError as exc:
        return f"cannot write into {out} ({exc.strerror or exc})"
    return None


def segment_task(job: dict, out: str, options: dict, model: str | None, device: str, model_sha256: str) -> dict:
    """Run on a worker: one study, as in a single process, with the model file the batch started with."""
    from cmrseg.batch import BatchOptions, segment_one

    segmenter = _segmenter(model, device, model_sha256)
    if segmenter.model_sha256 != model_sha256:
        return failed_row(StudyJob(**job), f"the model file {model or 'shipped'} was replaced after the batch "
                                           "started; run the batch again")  # fmt: skip
    return segment_one(StudyJob(**job), Path(out), segmenter, BatchOptions(**options))


def run_on_cluster(address: str, jobs: list[StudyJob], out: Path, options, model: str | None,
                   device: str) -> list[dict]:  # fmt: skip
    """Run the batch's studies on the Dask scheduler at ``address``; the rows in input order."""
    try:
        from distributed import Client, as_completed
    except ImportError as exc:
        raise CMRSegError("--scheduler needs Dask: pip install 'cmrseg[cluster]' (dask and distributed).") from exc
    from cmrseg.batch import CohortProgress

    out = out.resolve()
    model = str(Path(model).resolve()) if model else None
    try:
        client = Client(address, timeout="20s")
    except (OSError, TimeoutError, ValueError) as exc:  # ValueError: not an address (a dashboard URL, no port)
        raise CMRSegError(f"Cannot reach the Dask scheduler at {address} ({exc}); give its address as "
                          "tcp://host:8786.") from exc
    with client:
        workers = client.scheduler_info(n_workers=-1)["workers"]
        if not workers:
            raise CMRSegError(f"The Dask scheduler at {address} has no workers; start some with `dask worker`.")
        inputs = [p for job in jobs for p in job.inputs] + ([model] if model else [])
        problems = {w: p for w, p in client.run(check_paths, inputs, str(out)).items() if p}
        if problems:
            worker, problem = next(iter(problems.items()))
            raise CMRSegError(
                f"Dask worker {worker} {problem}. Workers need the inputs and the output folder at the same paths "
                "(a shared filesystem)."
            )
        client.register_plugin(segmenter_plugin(model, device))
        model_sha256 = file_sha256(model or default_model_path())
        progress = CohortProgress(jobs, out, options.settings(model_sha256))
        todo = progress.skip_finished()
        run = uuid.uuid4().hex  # task keys of their own: a scheduler hands a known key's result to any client
        futures = {
            client.submit(segment_task, job.as_dict(), str(out), options.as_dict(), model, device, model_sha256,
                          pure=False, key=f"cmrseg-{run}-{job.name}"): job
            for job in todo
        }  # fmt: skip
        for future in as_completed(futures):
            job = futures[future]
            try:
                row = future.result()
            except Exception as exc:  # noqa: BLE001 - a worker died or the task could not run: recorded
                row = failed_row(job, f"{type(exc).__name__}: {exc}")
            progress.record(row)
    return progress.ordered()
