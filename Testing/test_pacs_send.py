"""`cmrseg send`: C-STORE of a run's DICOM SEG and SR to a real storage SCP (pynetdicom, on this machine's
network), byte for byte; the AE titles, refusals and failures a PACS gives, each one clear error line."""

from __future__ import annotations

import socket

import pydicom
import pytest

pynetdicom = pytest.importorskip("pynetdicom")

from pynetdicom.sop_class import SegmentationStorage  # noqa: E402

from cmrseg.cli import main  # noqa: E402
from cmrseg.io.dicom_write import write_dicom_cine  # noqa: E402
from cmrseg.pacs import parse_address  # noqa: E402
from cmrseg.phantom import make_phantom  # noqa: E402
from storage_scp import Pacs  # noqa: E402


@pytest.fixture(scope="module")
def run(tmp_path_factory, model_path):
    """A `cmrseg segment --dicom-seg --dicom-sr` run on a phantom DICOM cine."""
    root = tmp_path_factory.mktemp("pacs")
    write_dicom_cine(make_phantom(seed=7, frames=4, slices=8, matrix=(120, 128)).study, root / "dicom")
    assert main(["segment", str(root / "dicom"), "--out", str(root / "run"), "--model", str(model_path),
                 "--dicom-seg", "--dicom-sr", "--report", "none"]) == 0  # fmt: skip
    return root / "run"


@pytest.fixture
def pacs():
    server = Pacs()
    yield server
    server.close()


def send(*args) -> int:
    return main(["send", *(str(a) for a in args)])


def test_a_run_folder_is_stored_on_the_pacs_byte_for_byte(run, pacs, capsys):
    files = sorted(run.glob("*.seg.dcm")) + sorted(run.glob("*.sr.dcm"))
    assert len(files) == 3  # ED and ES SEG, the SR
    assert send(run, "--pacs", f"127.0.0.1:{pacs.port}", "--called-aet", "TESTPACS", "--calling-aet", "CARDIO1") == 0
    printed = capsys.readouterr().out
    assert "3 of 3 files stored on TESTPACS" in printed
    assert pacs.calling == ["CARDIO1"] * 3
    received = {str(ds.SOPInstanceUID): ds for ds in pacs.received}
    for path in files:
        original = pydicom.dcmread(path)
        assert f"stored {path.name}" in printed
        arrived = received[str(original.SOPInstanceUID)]
        assert arrived.SOPClassUID == original.SOPClassUID
        for element in original:  # every element arrives unchanged, pixel data included
            assert arrived[element.tag].value == element.value, element.keyword


def test_single_files_can_be_sent(run, pacs, capsys):
    sr = next(run.glob("*.sr.dcm"))
    assert send(sr, "--pacs", f"localhost:{pacs.port}", "--called-aet", "TESTPACS") == 0
    assert [ds.Modality for ds in pacs.received] == ["SR"] and pacs.calling == ["CMRSEG"]
    assert "1 of 1 files stored" in capsys.readouterr().out


def one_error(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in lines if not line.startswith("PROGRESS")]
    assert len(errors) == 1 and errors[0].startswith("cmrseg: error: "), lines
    return errors[0]


def test_a_wrong_called_ae_title_is_refused_and_nothing_is_stored(run, pacs, capsys):
    assert send(run, "--pacs", f"127.0.0.1:{pacs.port}", "--called-aet", "OTHERPACS") == 2
    assert "rejected the association" in one_error(capsys) and pacs.received == []


def test_no_pacs_listening_is_a_clear_error(run, capsys):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nobody listens here once the socket closes
    assert send(run, "--pacs", f"127.0.0.1:{port}") == 2
    assert "did not answer" in one_error(capsys)


def test_a_pacs_host_that_cannot_be_found_is_named(run, capsys):
    assert send(run, "--pacs", "no-such-pacs.invalid:104") == 2  # .invalid never resolves (RFC 2606)
    assert "The PACS host no-such-pacs.invalid cannot be found" in one_error(capsys)


def test_a_pacs_failure_status_names_the_files_not_stored(run, capsys):
    full = Pacs(status=0xA700)  # out of resources
    try:
        assert send(run, "--pacs", f"127.0.0.1:{full.port}", "--called-aet", "TESTPACS") == 2
    finally:
        full.close()
    error = one_error(capsys)
    assert "stored 0 of 3 files" in error and "0xA700" in error and "_ED.seg.dcm" in error


def test_a_pacs_that_takes_no_sr_stores_the_segs_and_says_so(run, capsys):
    segs_only = Pacs(sop_classes=(SegmentationStorage,))
    try:
        assert send(run, "--pacs", f"127.0.0.1:{segs_only.port}", "--called-aet", "TESTPACS") == 2
        assert len(segs_only.received) == 2
    finally:
        segs_only.close()
    error = one_error(capsys)
    assert "stored 2 of 3 files" in error and "does not accept SOP class" in error and ".sr.dcm" in error


def test_bad_inputs_are_refused_before_anything_is_sent(run, pacs, tmp_path, capsys):
    (tmp_path / "notes.dcm").write_text("not DICOM")
    cases = [
        ([run, "--pacs", "no-port"], "is not HOST:PORT"),
        ([run, "--pacs", "host:70000"], "outside 1-65535"),
        ([run, "--pacs", f"127.0.0.1:{pacs.port}", "--called-aet", "A" * 17], "not a DICOM AE title"),
        ([tmp_path / "missing", "--pacs", f"127.0.0.1:{pacs.port}"], "does not exist"),
        ([tmp_path, "--pacs", f"127.0.0.1:{pacs.port}"], "holds no DICOM SEG or SR file"),
        ([run / "dicom_measures.sr.dcm", tmp_path / "notes.dcm", "--pacs", f"127.0.0.1:{pacs.port}",
          "--called-aet", "TESTPACS"], "is not a DICOM file"),
    ]  # fmt: skip
    for args, message in cases:
        assert send(*args) == 2, args
        assert message in one_error(capsys), args
    assert pacs.received == []  # the SR before the broken file was not sent either


def test_addresses():
    assert parse_address("pacs.hospital.org:104") == ("pacs.hospital.org", 104)
    assert parse_address("[::1]:11112") == ("::1", 11112)
