"""`cmrseg review` without a browser: what it refuses, the access token, a finished run read back."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from cmrseg.errors import CMRSegError
from CMRSegWeb import Access
from CMRSegWeb.RunFolder import readRunFolder

CMRSEG = [sys.executable, "-m", "cmrseg"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A finished `cmrseg segment` run on the phantom (the study it names is beside it)."""
    root = tmp_path_factory.mktemp("reviewrun")
    subprocess.run([*CMRSEG, "phantom", "--out", str(root / "phantom"), "--frames", "12"], check=True,
                   capture_output=True)
    subprocess.run([*CMRSEG, "segment", str(root / "phantom" / "cine.nii.gz"), "--out", str(root / "run"),
                    "--report", "none", "--sex", "M", "--age", "60"], check=True, capture_output=True)
    return root / "run"


def _cmrseg(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CMRSEG, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, message", [
    (["/no/such/study"], "does not exist"),
    (["STUDY"], "Give --out DIR"),
    (["RUN", "--out", "elsewhere"], "is a finished run"),
    (["RUN", "--host", "my-laptop"], "is not an IP address"),
    (["RUN", "--height", "-3"], "height"),
    (["RUN", "--sex", "unknown"], "is not a sex"),
    (["STUDY", "--out", "RUN"], "already holds a result; review it with: cmrseg review"),
    (["RUN", "--bsa", "dubois"], "is reviewed with the BSA formula it was made with"),
])
def test_mistakes_are_refused_in_one_line_before_anything_starts(run, args, message, tmp_path):
    study = run.parent / "phantom" / "cine.nii.gz"
    args = [str(study) if a == "STUDY" else str(run) if a == "RUN" else a for a in args]
    result = _cmrseg("review", *args, "--port", "1")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cmrseg: error: ") and message in lines[0], result.stderr
    assert not (tmp_path / "elsewhere").exists()


def test_a_run_whose_exports_cannot_be_written_is_refused_before_the_review(run, tmp_path):
    """Not after an hour of corrections: the review folder is checked when the command starts."""
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "review").write_text("a file where the exports would go")
    result = _cmrseg("review", str(copy), "--port", "1")
    assert result.returncode == 2 and result.stderr.startswith("cmrseg: error: The review's export folder")
    assert "is an existing file" in result.stderr and (copy / "review").read_text().startswith("a file")


def test_a_finished_run_reads_back_with_its_label_maps(run):
    study, result = readRunFolder(run)
    measures = json.loads((run / "measures.json").read_text())
    assert (result.edFrame, result.esFrame) == (measures["ed_frame"], measures["es_frame"])
    assert study.image.shape[0] == 12
    ed = result.labels[result.edFrame]
    assert ed.shape == study.image.shape[1:]
    voxelMl = float(np.prod(study.spacing)) / 1000.0
    assert (ed == 3).sum() * voxelMl == pytest.approx(measures["frames"][str(result.edFrame)]["lv_ml"], rel=1e-9)
    # The NIfTI holds no patient data: the sex and age the run's ranges used come back from measures.json.
    assert (study.patient.sex, study.patient.age_years) == ("M", 60.0)
    assert readRunFolder(run, sex="F")[0].patient.sex == "F"


def test_a_run_whose_images_are_gone_is_refused(run, tmp_path):
    moved = tmp_path / "run"
    shutil.copytree(run, moved)
    measures = json.loads((moved / "measures.json").read_text())
    measures["input"] = [str(tmp_path / "gone.nii.gz")]
    (moved / "measures.json").write_text(json.dumps(measures))
    with pytest.raises(CMRSegError, match="is gone"):
        readRunFolder(moved)


def test_a_run_that_cannot_be_reviewed_is_refused_before_the_address_is_given(run, tmp_path):
    """It printed an address and served a page that then said what was wrong."""
    moved = tmp_path / "run"
    shutil.copytree(run, moved)
    measures = json.loads((moved / "measures.json").read_text())
    (moved / "measures.json").write_text(json.dumps({**measures, "input": [str(tmp_path / "gone.nii.gz")]}))
    result = _cmrseg("review", str(moved), "--port", "1")
    assert result.returncode == 2 and "is gone" in result.stderr and "CMRSeg review at" not in result.stdout
    for single in ({"es_frame": None}, {"es_frame": measures["ed_frame"]}):  # one frame, or ED and ES one frame
        (moved / "measures.json").write_text(json.dumps({**measures, **single}))
        result = _cmrseg("review", str(moved), "--port", "1")
        assert result.returncode == 2 and "holds a single-frame result" in result.stderr


def test_a_run_under_review_is_not_served_twice(run):
    """A second review's export (even of no edits) replaced the first one's corrections."""
    from cmrseg.outputs import lock_folder

    (run / "review").mkdir(exist_ok=True)
    held = lock_folder(run / "review")  # as a review serving it holds it
    try:
        result = _cmrseg("review", str(run), "--port", "1")
    finally:
        os.close(held)
    assert result.returncode == 2 and "is under review already" in result.stderr
    assert "CMRSeg review at" not in result.stdout


def test_a_review_stopped_before_anything_was_made_leaves_no_folder(run, tmp_path):
    """Its export folder is made (and locked) when the review starts; stopped before any export, it goes."""
    out = tmp_path / "new"
    command = [*CMRSEG, "review", str(run.parent / "phantom" / "cine.nii.gz"), "--out", str(out), "--port",
               str(_freePort())]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        while (line := process.stdout.readline()) and not line.startswith("CMRSeg review at"):
            pass
        assert line.startswith("CMRSeg review at") and (out / "review").is_dir()  # held while it serves
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert not (out / "review").exists()


def test_a_run_whose_images_were_replaced_is_refused(run, tmp_path):
    """The same file name and matrix, other pixels (another patient's study in its place): the review would
    draw corrections over images the run did not segment."""
    from cmrseg.io.volume_files import read_volume_file, write_study

    study = read_volume_file(run.parent / "phantom" / "cine.nii.gz")
    study.image[0, 0, 0, 0] += 1
    write_study(study, tmp_path / "cine.nii.gz")
    moved = tmp_path / "run"
    shutil.copytree(run, moved)
    measures = json.loads((moved / "measures.json").read_text())
    assert measures["input"] == [str((run.parent / "phantom" / "cine.nii.gz").resolve())]  # where it was read
    measures["input"] = [str(tmp_path / "cine.nii.gz")]
    (moved / "measures.json").write_text(json.dumps(measures))
    with pytest.raises(CMRSegError, match="are not the ones the run .* segmented"):
        readRunFolder(moved)


def test_loopback_addresses_are_told_apart():
    assert Access.isLoopback("127.0.0.1") and Access.isLoopback("localhost") and Access.isLoopback("::1")
    assert not Access.isLoopback("0.0.0.0") and not Access.isLoopback("192.168.1.20")


def _freePort() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, cookie: str | None = None, origin: str | None = None) -> tuple[int, dict, str]:
    headers = {**({"Cookie": cookie} if cookie else {}), **({"Origin": origin} if origin else {})}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode(errors="replace")


@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.1"])
def test_every_request_needs_the_printed_token(run, host):
    """Other computers, and on this one other users and other web pages open in the same browser (any site's
    page may open a WebSocket to 127.0.0.1), are kept out by the token."""
    port = _freePort()
    process = subprocess.Popen([*CMRSEG, "review", str(run), "--host", host, "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        while not (lines and lines[-1].startswith("CMRSeg review at")) and (line := process.stdout.readline()):
            lines.append(line)
        banner = lines[-1].strip()
        assert banner.startswith(f"CMRSeg review at http://{host}:{port}/?token="), "".join(lines)
        token = banner.split("token=")[1].split()[0]
        assert len(token) >= 32
        if host == "0.0.0.0":
            assert "the address works only with this token" in process.stdout.readline()
        else:
            assert banner.endswith("(this computer only; --host to serve others)")
        base = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 60
        while True:
            try:
                status, _, body = _get(base + "index.html")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        assert status == 403 and "access token" in body
        wrong = token[:-1] + ("x" if token[-1] != "x" else "y")  # one character off
        assert _get(base + f"index.html?token={wrong}")[0] == 403
        status, headers, body = _get(base + f"index.html?token={token}")
        assert status == 200 and "<html" in body.lower()
        cookie = headers["Set-Cookie"].split(";")[0]
        assert cookie == f"{Access.cookieName(port)}={token}" and "HttpOnly" in headers["Set-Cookie"]
        assert _get(base + "index.html", cookie=cookie)[0] == 200  # the page's own requests carry the cookie
        assert _get(base + "ws", cookie=f"{Access.cookieName(port)}=wrong")[0] == 403
        assert _get(base + "index.html", cookie=f"{Access.cookieName(port + 1)}={token}")[0] == 403  # another's
        # A page of another local port (a notebook, another server) gets this port's cookie from the browser too:
        # refused by its origin, WebSocket included; the review's own page is let in.
        assert _get(base + "index.html", cookie=cookie, origin=f"http://127.0.0.1:{port}")[0] == 200
        assert _get(base + "index.html", cookie=cookie, origin=f"http://127.0.0.1:{port + 1}")[0] == 403
        assert _get(base + "ws", cookie=cookie, origin="http://localhost:8888")[0] == 403
    finally:
        process.terminate()
        process.wait(timeout=20)
