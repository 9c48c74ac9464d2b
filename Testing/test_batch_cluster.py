"""``cmrseg batch --scheduler``: the same outputs on a real Dask cluster (a LocalCluster of worker processes,
and `dask scheduler` + `dask worker` processes on 127.0.0.1), and a clear refusal when workers cannot see
the files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

from cmrseg.batch import BatchOptions, run_in_process  # noqa: E402
from cmrseg.cluster import check_paths, run_on_cluster  # noqa: E402
from cmrseg.cohort import find_studies  # noqa: E402
from cmrseg.errors import CMRSegError  # noqa: E402
from cmrseg.io.volume_files import read_volume_file, write_study  # noqa: E402
from cmrseg.phantom import make_phantom  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    root = tmp_path_factory.mktemp("cluster-cohort")
    for seed in (21, 22, 23):
        write_study(make_phantom(seed=seed, frames=3, slices=6, matrix=(120, 128)).study, root / f"s{seed}.nii.gz")
    return find_studies(sorted(root.iterdir()))


@pytest.fixture(scope="module")
def reference(studies, segmenter, tmp_path_factory):
    """The single-process batch the cluster runs must equal."""
    out = tmp_path_factory.mktemp("single")
    rows = run_in_process(studies, out, segmenter, BatchOptions(report="none"))
    return out, rows


def assert_same_outputs(out: Path, rows: list[dict], reference) -> None:
    ref_out, ref_rows = reference
    assert [(r["name"], r["status"]) for r in rows] == [(r["name"], r["status"]) for r in ref_rows]
    for row in ref_rows:
        ref_files = sorted(p.name for p in (ref_out / row["name"]).iterdir())
        assert sorted(p.name for p in (out / row["name"]).iterdir()) == ref_files
        for name in (n for n in ref_files if n.endswith("_seg.nii.gz")):
            np.testing.assert_array_equal(read_volume_file(out / row["name"] / name).image,
                                          read_volume_file(ref_out / row["name"] / name).image)  # fmt: skip
        for key in ("lv_edv_ml", "lv_ef_pct", "rv_ef_pct", "lv_mass_ed_g", "qc_status"):
            assert str(next(r for r in rows if r["name"] == row["name"])[key]) == str(row[key])  # CSV or row


def test_a_local_cluster_of_two_worker_processes_gives_the_same_outputs(studies, reference, model_path, tmp_path):
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:  # fmt: skip
        rows = run_on_cluster(cluster.scheduler_address, studies, tmp_path, BatchOptions(report="none"),
                              str(model_path), "cpu")  # fmt: skip
        assert_same_outputs(tmp_path, rows, reference)
        # Another client holds tasks named after the same studies (another user's batch): this batch still
        # runs its own (a scheduler hands the result of a key it holds to any client that submits that key).
        from distributed import Client

        with Client(cluster.scheduler_address) as other:
            held = [other.submit(dict, name=job.name, status="failed", key=f"cmrseg-{job.name}") for job in studies]
            other.gather(held)
            again = tmp_path / "again"
            again.mkdir()
            rows = run_on_cluster(cluster.scheduler_address, studies, again, BatchOptions(report="none"),
                                  str(model_path), "cpu")  # fmt: skip
            assert_same_outputs(again, rows, reference)


def test_dask_scheduler_and_worker_processes_on_localhost(studies, reference, model_path, tmp_path):
    scheduler_file = tmp_path / "scheduler.json"
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    processes = [subprocess.Popen([*dask, "--host", "127.0.0.1", "--port", "0", "--dashboard-address", ":0",
                                   "--scheduler-file", str(scheduler_file)], env=environment,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]  # fmt: skip
    try:
        deadline = time.time() + 60
        while not scheduler_file.exists() and time.time() < deadline:
            time.sleep(0.2)
        worker = [sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file", str(scheduler_file),
                  "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard"]  # fmt: skip
        processes += [subprocess.Popen(worker, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                      for _ in range(2)]  # fmt: skip
        from distributed import Client

        with Client(scheduler_file=str(scheduler_file), timeout="60s") as client:
            client.wait_for_workers(2, timeout=120)
            address = client.scheduler.address
        out = tmp_path / "out"
        out.mkdir()
        command = [sys.executable, "-m", "cmrseg", "batch", *[p for job in studies for p in job.inputs],
                   "--out", str(out), "--report", "none", "--model", str(model_path), "--device", "cpu",
                   "--scheduler", address]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        assert "3 of 3 studies done" in done.stdout
        import csv

        with open(out / "cohort.csv", newline="") as stream:
            rows = list(csv.DictReader(stream))
        assert_same_outputs(out, rows, reference)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


def test_workers_that_cannot_see_the_files_are_named_and_nothing_runs(studies, model_path, tmp_path):
    from distributed import LocalCluster

    gone = tmp_path / "moved.nii.gz"
    shutil.copy(studies[0].inputs[0], gone)
    jobs = find_studies([gone])
    gone.unlink()  # the client found it; the workers cannot see it
    out = tmp_path / "out"
    out.mkdir()
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:  # fmt: skip
        with pytest.raises(CMRSegError, match=r"Dask worker tcp://127\.0\.0\.1:\d+ cannot see .*shared filesystem"):
            run_on_cluster(cluster.scheduler_address, jobs, out, BatchOptions(), str(model_path), "cpu")
    assert list(out.iterdir()) == []
    assert "cannot write" in check_paths([], "/proc")
