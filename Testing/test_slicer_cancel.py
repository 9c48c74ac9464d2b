"""Cancel stops the whole background run within 2 s, also behind a launcher that forwards no signals
(Slicer's ``PythonSlicer`` starts the real interpreter as a child and forwards none)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

from CMRSegModuleLib.Runner import RunSettings, buildCommand, killProcessTree, prepareJob, processEnvironment

# A stand-in for the launcher: starts the command as a child with the same stdin, prints the child's pid,
# ignores SIGTERM and forwards nothing, and waits. It also ignores SIGINT, which its child inherits (as any
# process started from a background shell job or under nohup does): the run must stop all the same.
LAUNCHER = textwrap.dedent("""
    import signal, subprocess, sys
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    child = subprocess.Popen(sys.argv[1:])
    print(f"CHILD {child.pid}", flush=True)
    child.wait()
""")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = open(f"/proc/{pid}/stat").read().split()[2] if os.path.exists(f"/proc/{pid}/stat") else "R"
    return status != "Z"  # a zombie has stopped; only its parent has not collected it


def start_behind_launcher(job):
    command = buildCommand(job, sys.executable)
    assert "--stop-when-stdin-closes" in command
    process = subprocess.Popen([sys.executable, "-c", LAUNCHER, *command], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=processEnvironment())
    child = int(process.stdout.readline().split()[1])
    for line in process.stderr:  # wait until the network is running
        if line.startswith("PROGRESS") and "Segmenting" in line:
            break
    return process, child


@pytest.fixture
def job(oblique_phantom, model_path, tmp_path):
    settings = RunSettings(modelPath=str(model_path), device="cpu")
    return prepareJob(oblique_phantom.study, settings, workDir=str(tmp_path))


@pytest.mark.slow
def test_closing_stdin_stops_the_run_behind_a_launcher_within_2_s(job):
    process, child = start_behind_launcher(job)
    process.terminate()  # what killing the launcher does to the child: nothing
    time.sleep(0.3)
    assert alive(child), "the stand-in launcher must not pass the signal on"
    started = time.monotonic()
    process.stdin.close()  # Cancel
    while alive(child) and time.monotonic() - started < 5:
        time.sleep(0.05)
    assert time.monotonic() - started < 2.0
    assert not job.outDir.exists() or not any(job.outDir.iterdir())  # nothing written
    killProcessTree(process.pid)
    process.wait(timeout=5)


@pytest.mark.slow
def test_killing_the_process_tree_stops_the_child(job):
    process, child = start_behind_launcher(job)
    killProcessTree(process.pid)
    started = time.monotonic()
    while alive(child) and time.monotonic() - started < 5:
        time.sleep(0.05)
    assert not alive(child) and time.monotonic() - started < 2.0
    process.wait(timeout=5)
