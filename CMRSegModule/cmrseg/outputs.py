"""An output folder that receives a run's files as a complete set or not at all.

Guarantee: after a run ends, however it ends (success, error, full disk, SIGINT, SIGTERM), the folder holds
either the complete new set of outputs or exactly what it held before. The files are written into a hidden
scratch folder inside the output folder, then moved in by renames under a journal:

1. the journal (which files leave, which arrive) is written atomically;
2. the previous CMRSeg set (the files its manifest lists, and any file the new set replaces) moves into
   the scratch folder's backup;
3. the new files move in; the new manifest (``cmrseg-manifest.json``) moves in last;
4. removing the journal is the commit point; the scratch folder (with the old set) is deleted.

Any failure before the commit point rolls back at once. SIGINT and SIGTERM are held during steps 1-4
(renames, milliseconds) and act after them. If the process is killed outright (SIGKILL, power loss) during
those milliseconds, the journal stays and the next run on the folder rolls it back before it does anything
else; scratch folders of killed runs are removed then too. A lock (``flock`` on the output folder itself,
released by the kernel even on SIGKILL) refuses a second concurrent run on the same folder.
Files that no CMRSeg run wrote are never moved, replaced or deleted.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import math
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from cmrseg import __version__
from cmrseg.errors import CMRSegError
from cmrseg.training.split import file_sha256

log = logging.getLogger(__name__)

JOURNAL_NAME = ".cmrseg-journal.json"
MANIFEST_NAME = "cmrseg-manifest.json"
SCRATCH_PREFIX = ".cmrseg-run-"
BACKUP = "previous"
MIN_FREE_BYTES = 64 * 1024 * 1024  # a study's outputs are a few MB; refuse a nearly full disk up front


def _replace(source: Path, target: Path) -> None:
    """Every move of the commit goes through here (one place to inject failures in tests)."""
    os.replace(source, target)


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file, fsync and rename."""
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp, 0o644)
        _replace(Path(temp), path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _fsync(path: Path) -> None:
    """Flush a file's data, or a folder's entries, to the disk."""
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def json_safe(value):
    """``value`` with every non-finite float replaced by ``None`` (JSON has no NaN or Infinity)."""
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def check_output_folder(out_dir: str | Path, what: str | None = None) -> Path:
    """Refuse, before any work, an output location that cannot receive the outputs (``what`` names it in the
    message; default: ``--out OUT_DIR``)."""
    out_dir = Path(out_dir)
    what = what or f"--out {out_dir}"
    if out_dir.is_symlink() and not out_dir.exists():
        raise CMRSegError(f"{what} is a link to {os.readlink(out_dir)}, which does not exist.")
    if out_dir.exists() and not out_dir.is_dir():
        raise CMRSegError(f"{what} is an existing file, not a folder; choose a folder.")
    folder = out_dir if out_dir.exists() else out_dir.parent
    if not folder.is_dir():
        raise CMRSegError(f"{what}: its parent folder {folder} does not exist; create it first.")
    try:
        handle, probe = tempfile.mkstemp(prefix=".cmrseg-probe-", dir=folder)
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise CMRSegError(f"{what}: cannot write into {folder} ({exc.strerror or exc}).") from exc
    free = shutil.disk_usage(folder).free
    if free < MIN_FREE_BYTES:
        raise CMRSegError(
            f"{what}: only {free / 2**20:.0f} MB free on its disk (at least {MIN_FREE_BYTES / 2**20:.0f} MB "
            "needed); free some space or choose another folder."
        )
    return out_dir


def read_manifest(out_dir: Path) -> list[str]:
    """The files the last committed CMRSeg run wrote into ``out_dir`` (empty when none)."""
    path = out_dir / MANIFEST_NAME
    if not path.is_file():
        return []
    try:
        files = json.loads(path.read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CMRSegError(f"{path} is damaged ({exc}); remove it to let CMRSeg write into {out_dir}.") from exc
    return [name for name in files if isinstance(name, str) and "/" not in name and name not in ("", ".", "..")]


def changed_since_written(out_dir: Path) -> list[str]:
    """The files of the last committed set that are no longer as CMRSeg wrote them (edited by hand, say): a
    run replacing that set would lose the edits. Sets written before their files' sha256 were kept: none."""
    try:
        written = json.loads((out_dir / MANIFEST_NAME).read_text()).get("sha256") or {}
    except (OSError, ValueError, AttributeError):
        return []
    return sorted(name for name, sha in written.items() if isinstance(name, str) and "/" not in name
                  and (out_dir / name).is_file() and file_sha256(out_dir / name) != sha)  # fmt: skip


def refuse_changed_outputs(out_dir: Path) -> None:
    """Refuse to replace a set whose files were changed since CMRSeg wrote them (``--overwrite`` replaces what
    CMRSeg wrote, never a user's edits)."""
    changed = changed_since_written(out_dir)
    if changed:
        raise CMRSegError(f"{out_dir} holds {', '.join(changed)}, changed since CMRSeg wrote them (edited?); move "
                          "the changed files away, or choose another --out.")


def is_complete(out_dir: str | Path) -> bool:
    """Whether ``out_dir`` holds a committed output set: a manifest, no pending journal, every listed file."""
    out_dir = Path(out_dir)
    if (out_dir / JOURNAL_NAME).exists() or not (out_dir / MANIFEST_NAME).is_file():
        return False
    return all((out_dir / name).is_file() for name in read_manifest(out_dir))


def lock_folder(path: Path, busy: str | None = None) -> int:
    """Lock ``path`` (a folder) for this process alone; closing the returned handle releases it. ``busy``: the
    error when another process holds it."""
    handle = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(handle)
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            raise CMRSegError(
                busy or f"Another cmrseg run is writing into {path}; wait for it to finish or choose another --out."
            ) from exc
        raise CMRSegError(f"Cannot lock {path} ({exc.strerror or exc}): its filesystem does not support file locks "
                          "(a network filesystem mounted without them); choose a folder on one that does.") from exc
    return handle


class OutputFolder:
    """The locked output folder of one run; see the module docstring for the guarantee."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir
        self._lock: int | None = None
        self._scratch: Path | None = None
        self._created = False

    # -- lock and recovery

    def acquire(self) -> None:
        self._created = not self.path.exists()
        self.path.mkdir(exist_ok=True)
        self._lock = lock_folder(self.path)
        self.recover()

    def release(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None
        if self._lock is not None:
            if self._created and not any(self.path.iterdir()):
                self.path.rmdir()  # a failed run leaves no trace
            os.close(self._lock)  # closing releases the flock
            self._lock = None

    def recover(self) -> None:
        """Roll back a commit that a killed run left half done; remove scratch folders of killed runs."""
        journal_path = self.path / JOURNAL_NAME
        if journal_path.exists():
            try:
                journal = json.loads(journal_path.read_text())
                scratch = self.path / journal["scratch"]
                self._rollback(scratch, journal["old"], journal["new"])
            except (ValueError, KeyError, TypeError, OSError) as exc:
                raise CMRSegError(
                    f"{journal_path} records an interrupted run that cannot be undone automatically ({exc}); "
                    f"check {self.path} by hand and remove the journal."
                ) from exc
            journal_path.unlink()
            log.warning("Rolled back the outputs of an interrupted run in %s.", self.path)
        for stale in self.path.glob(SCRATCH_PREFIX + "*"):
            shutil.rmtree(stale, ignore_errors=True)
            log.warning("Removed %s, left by an interrupted run.", stale.name)

    # -- writing

    def scratch(self) -> Path:
        """A fresh hidden folder inside the output folder for the new files."""
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=self.path))
        return self._scratch

    def existing(self, names: list[str]) -> list[str]:
        """Of ``names``, those already present in the folder."""
        return [name for name in names if (self.path / name).exists()]

    def refuse_foreign(self, names: list[str]) -> None:
        """Refuse to write ``names`` where a file of such a name is there that no CMRSeg run wrote (not in the
        folder's manifest): ``--overwrite`` replaces CMRSeg's own set, never a user's file."""
        listed = set(read_manifest(self.path))
        foreign = [name for name in names if (self.path / name).exists() and name not in listed]
        if foreign:
            raise CMRSegError(f"{self.path} holds {', '.join(foreign)}, which no CMRSeg run wrote there, and this "
                              "run would write files of those names; move them away, or choose another --out.")

    def commit(self, names: list[str]) -> list[Path]:
        """Replace the previous CMRSeg set by the files ``names`` of the scratch folder, all or nothing."""
        self.refuse_foreign(names)
        scratch = self.scratch()
        old = sorted(set(read_manifest(self.path) + [n for n in names if (self.path / n).exists()]))
        old = [n for n in old if (self.path / n).exists()]
        if (self.path / MANIFEST_NAME).exists():
            old.append(MANIFEST_NAME)
        refuse_changed_outputs(self.path)  # checked again at the commit: an edit made while the run worked
        manifest = {"cmrseg_version": __version__, "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "files": names,
                    "sha256": {name: file_sha256(scratch / name) for name in names}}
        (scratch / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2))
        (scratch / BACKUP).mkdir()
        new = [*names, MANIFEST_NAME]
        for name in new:  # on disk before the renames: a power loss after the commit leaves no empty file
            _fsync(scratch / name)
        journal = {"scratch": scratch.name, "old": old, "new": new}
        with _signals_held():
            try:
                _write_atomic(self.path / JOURNAL_NAME, json.dumps(journal))
                for name in old:
                    _replace(self.path / name, scratch / BACKUP / name)
                for name in new:
                    _replace(scratch / name, self.path / name)
                _fsync(self.path)
            except BaseException as exc:
                self._rollback(scratch, old, new)
                (self.path / JOURNAL_NAME).unlink(missing_ok=True)
                if isinstance(exc, OSError):
                    raise CMRSegError(
                        f"Could not move the outputs into {self.path} ({exc.strerror or exc}); nothing was changed."
                    ) from exc
                raise
            (self.path / JOURNAL_NAME).unlink()  # the commit point
        shutil.rmtree(scratch, ignore_errors=True)
        self._scratch = None
        return [self.path / name for name in names]

    def _rollback(self, scratch: Path, old: list[str], new: list[str]) -> None:
        backup = scratch / BACKUP
        for name in new:  # remove what arrived (a name still in scratch, or an old file not moved out, stays)
            target = self.path / name
            arrived = not (scratch / name).exists() and (name not in old or (backup / name).exists())
            if arrived and target.exists():
                target.unlink()
        for name in old:
            if (backup / name).exists():
                _replace(backup / name, self.path / name)
        shutil.rmtree(scratch, ignore_errors=True)


@contextmanager
def locked_output(out_dir: str | Path) -> Iterator[OutputFolder]:
    """The output folder, created (parent must exist), locked and recovered, for the length of a run."""
    folder = OutputFolder(check_output_folder(out_dir))
    folder.acquire()
    try:
        yield folder
    finally:
        folder.release()


@contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM while the outputs move (they act right after)."""
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def terminate_as_interrupt() -> Callable[[], None]:
    """Make SIGTERM unwind like Ctrl-C (so scratch folders are cleaned); returns a function that restores it."""
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum, frame):  # noqa: ARG001 - signal handler signature
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    return lambda: signal.signal(signal.SIGTERM, previous)
