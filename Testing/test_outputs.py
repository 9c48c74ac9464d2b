"""Outputs appear as a complete set or not at all: failures injected at every write and rename, SIGKILL in
the middle of the commit, SIGTERM during a real run, concurrent runs, and ``--overwrite``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cmrseg import outputs
from cmrseg.errors import CMRSegError
from cmrseg.outputs import JOURNAL_NAME, MANIFEST_NAME, SCRATCH_PREFIX, is_complete, locked_output


def write_set(out: Path, files: dict[str, str]) -> None:
    """One run writing ``files`` (name -> text) through the output folder."""
    with locked_output(out) as folder:
        for name, text in files.items():
            (folder.scratch() / name).write_text(text)
        folder.commit(list(files))


def snapshot(out: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(out.iterdir())}


OLD = {"a_frame00_seg.nii.gz": "old 0", "a_frame01_seg.nii.gz": "old 1", "measures.json": "old measures"}
NEW = {"a_frame00_seg.nii.gz": "new 0", "measures.json": "new measures", "report.html": "new report"}


@pytest.fixture
def previous(tmp_path) -> Path:
    out = tmp_path / "out"
    write_set(out, OLD)
    (out / "notes.txt").write_text("the user's own file")
    return out


def count_steps(monkeypatch, out: Path) -> tuple[int, dict[str, str]]:
    calls = []
    real = outputs._replace
    monkeypatch.setattr(outputs, "_replace", lambda a, b: (calls.append(1), real(a, b)))
    before = snapshot(out)
    write_set(out, NEW)
    monkeypatch.setattr(outputs, "_replace", real)
    return len(calls), before


def test_a_failure_at_any_rename_leaves_the_previous_set_untouched(previous, monkeypatch):
    steps, before = count_steps(monkeypatch, previous)
    assert steps >= len(OLD) + len(NEW) + 2  # journal, old set out, new set and manifest in
    for failing in range(steps):
        write_set(previous, OLD)  # back to the old set (an --overwrite run)
        before = snapshot(previous)
        calls = []

        def flaky(source, target, failing=failing, calls=calls):
            calls.append(1)
            if len(calls) == failing + 1:
                raise OSError(28, "No space left on device")
            os.replace(source, target)

        monkeypatch.setattr(outputs, "_replace", flaky)
        with pytest.raises(CMRSegError, match="nothing was changed"):
            write_set(previous, NEW)
        monkeypatch.undo()
        assert snapshot(previous) == before, f"failure at rename {failing}"
        assert not list(previous.glob(SCRATCH_PREFIX + "*")) and not (previous / JOURNAL_NAME).exists()


def test_overwrite_replaces_the_previous_set_as_a_whole_and_keeps_other_files(previous):
    write_set(previous, NEW)
    after = snapshot(previous)
    assert "a_frame01_seg.nii.gz" not in after  # the earlier run's extra frame went with its set
    assert after["notes.txt"] == "the user's own file"
    assert {k: after[k] for k in NEW} == NEW
    assert json.loads(after[MANIFEST_NAME])["files"] == list(NEW)
    assert is_complete(previous)


def test_a_file_changed_since_it_was_written_is_never_replaced(previous):
    """A label map corrected by hand in the output folder: a rerun with --overwrite replaced it silently."""
    (previous / "a_frame01_seg.nii.gz").write_text("corrected by hand")
    before = snapshot(previous)
    with pytest.raises(CMRSegError, match=r"holds a_frame01_seg\.nii\.gz, changed since CMRSeg wrote them"):
        write_set(previous, NEW)
    assert snapshot(previous) == before and not list(previous.glob(f"{SCRATCH_PREFIX}*"))
    (previous / "a_frame01_seg.nii.gz").rename(previous / "kept.nii.gz")  # moved away: the run goes on
    write_set(previous, NEW)
    assert snapshot(previous)["kept.nii.gz"] == "corrected by hand"


def test_a_users_file_of_an_output_name_is_never_replaced(previous):
    """A file of the name this run writes that no CMRSeg run wrote (the user's own measures, a label map of
    theirs): it went with the old set, and was deleted."""
    (previous / "report.html").write_text("the user's own report")
    before = snapshot(previous)
    with pytest.raises(CMRSegError, match=r"holds report\.html, which no CMRSeg run wrote there"):
        write_set(previous, NEW)
    assert snapshot(previous) == before and not list(previous.glob(f"{SCRATCH_PREFIX}*"))


KILLER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from cmrseg import outputs
    out, kill_at = Path(sys.argv[1]), int(sys.argv[2])
    calls = []
    real = outputs._replace
    def replace(a, b):
        calls.append(1)
        if len(calls) == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        real(a, b)
    outputs._replace = replace
    with outputs.locked_output(out) as folder:
        for name in ("a_frame00_seg.nii.gz", "measures.json", "report.html"):
            (folder.scratch() / name).write_text("new")
        folder.commit(["a_frame00_seg.nii.gz", "measures.json", "report.html"])
""")


@pytest.mark.parametrize("kill_at", [2, 4, 6, 7])
def test_sigkill_during_the_commit_is_rolled_back_by_the_next_run(previous, kill_at):
    before = snapshot(previous)
    done = subprocess.run([sys.executable, "-c", KILLER, str(previous), str(kill_at)])
    assert done.returncode == -signal.SIGKILL
    assert (previous / JOURNAL_NAME).exists() and not is_complete(previous)
    with locked_output(previous):  # the next run recovers first
        pass
    assert snapshot(previous) == before


def test_a_second_concurrent_run_is_refused(tmp_path):
    out = tmp_path / "out"
    with locked_output(out):
        with pytest.raises(CMRSegError, match="Another cmrseg run is writing"):
            with locked_output(out):
                pass
    with locked_output(out):  # free again afterwards
        pass


def test_scratch_folders_of_killed_runs_are_removed(previous):
    (previous / f"{SCRATCH_PREFIX}killed").mkdir()
    (previous / f"{SCRATCH_PREFIX}killed" / "half.nii.gz").write_text("x")
    with locked_output(previous):
        pass
    assert not list(previous.glob(SCRATCH_PREFIX + "*"))


@pytest.mark.slow
def test_sigterm_during_a_real_run_writes_nothing(acdc_root, tmp_path):
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "cmrseg", "segment", str(acdc_root / "patient090"),
                                "--all-frames", "--out", str(out)], stderr=subprocess.PIPE, text=True)
    for line in process.stderr:  # wait until it is segmenting
        if line.startswith("PROGRESS") and "Segmenting" in line:
            break
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert not out.exists()
