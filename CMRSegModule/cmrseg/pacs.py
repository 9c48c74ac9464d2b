"""Sending CMRSeg's DICOM objects (SEG, SR) to a PACS with C-STORE (pynetdicom).

Everything to send is read and checked before the association is opened, so a wrong path or a non-DICOM
file sends nothing. One association carries all the files; each file's C-STORE status is reported, and any
file the PACS did not store is an error that names it (the others stay stored: a PACS has no "undo").
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from dataclasses import dataclass
from pathlib import Path

import pydicom

from cmrseg.errors import CMRSegError
from cmrseg.progress import ProgressCallback

log = logging.getLogger(__name__)

# What a run folder holds for PACS: cmrseg segment --dicom-seg/--dicom-sr and the module's export.
RUN_FOLDER_PATTERNS = ("*.seg.dcm", "*.sr.dcm")
# DICOM AE titles: at most 16 characters of the default character repertoire, no backslash or control codes.
AE_TITLE = re.compile(r"^[ -\[\]-~]{1,16}$")
TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Outgoing:
    """A file to send, with what the association needs to know of it."""

    path: Path
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str
    modality: str


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (a name or an IPv4 address; ``[v6]:PORT`` for IPv6) as ``(host, port)``."""
    match = re.fullmatch(r"\[(?P<v6>[0-9A-Fa-f:.]+)\]:(?P<port>\d+)|(?P<host>[A-Za-z0-9.-]+):(?P<port2>\d+)", text)
    if not match:
        raise CMRSegError(f"The PACS address {text!r} is not HOST:PORT (e.g. pacs.hospital.org:104 or 10.0.0.5:11112).")
    host = match["v6"] or match["host"]
    if match["v6"]:
        try:
            ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise CMRSegError(f"The PACS address {text!r}: {host} is not an IPv6 address.") from exc
    port = int(match["port"] or match["port2"])
    if not 1 <= port <= 65535:
        raise CMRSegError(f"The PACS port {port} is outside 1-65535.")
    return host, port


def check_ae_title(title: str, what: str) -> str:
    if not AE_TITLE.match(title) or not title.strip():
        raise CMRSegError(f"{what} {title!r} is not a DICOM AE title (1-16 plain characters, no backslash).")
    return title


def files_to_send(paths: list[str | Path]) -> list[Outgoing]:
    """The DICOM files named, or CMRSeg's SEG and SR files in a named folder; each read and checked.

    Raises:
        CMRSegError: a path that does not exist, a folder without SEG/SR files, or a file that is not DICOM
            with a SOP class and instance.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            matches = sorted({p for pattern in RUN_FOLDER_PATTERNS for p in path.glob(pattern)})
            if not matches:
                raise CMRSegError(f"{path} holds no DICOM SEG or SR file; run cmrseg segment with --dicom-seg "
                                  "or --dicom-sr, or export from the Slicer module.")
            found += matches
        elif path.is_file():
            found.append(path)
        else:
            raise CMRSegError(f"{path} does not exist.")
    return [_outgoing(path) for path in dict.fromkeys(found)]


def _outgoing(path: Path) -> Outgoing:
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        return Outgoing(path, str(ds.SOPClassUID), str(ds.SOPInstanceUID), str(ds.file_meta.TransferSyntaxUID),
                        str(ds.get("Modality", "")))
    except (pydicom.errors.InvalidDicomError, AttributeError, OSError, ValueError) as exc:
        raise CMRSegError(f"{path} is not a DICOM file with a SOP class and instance ({exc}).") from exc


def send_files(files: list[Outgoing], host: str, port: int, called_aet: str = "ANY-SCP",
               calling_aet: str = "CMRSEG", progress: ProgressCallback | None = None) -> list[dict]:
    """C-STORE each file on one association; returns ``{"file", "sop_instance_uid", "status"}`` per file.

    Raises:
        CMRSegError: the PACS cannot be reached or refuses the association or a file's SOP class, or a
            C-STORE ends with a failure status (the message names every file not stored).
    """
    try:
        from pynetdicom import AE
    except ImportError as exc:
        raise CMRSegError("Sending to a PACS needs pynetdicom: pip install 'cmrseg[pacs]' (or pynetdicom).") from exc
    check_ae_title(called_aet, "The PACS AE title")
    check_ae_title(calling_aet, "The calling AE title")
    if not log.isEnabledFor(logging.DEBUG):  # its association log is for -v; the user gets one line per file
        logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
    ae = AE(ae_title=calling_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = TIMEOUT_S
    for sop_class, syntax in dict.fromkeys((f.sop_class_uid, f.transfer_syntax_uid) for f in files):
        ae.add_requested_context(sop_class, syntax)
    try:
        socket.getaddrinfo(host, port)
    except OSError as exc:
        raise CMRSegError(f"The PACS host {host} cannot be found ({exc.strerror or exc}); check its name.") from exc
    association = ae.associate(host, port, ae_title=called_aet)
    if not association.is_established:
        why = "rejected the association" if association.is_rejected else "did not answer"
        raise CMRSegError(f"The PACS {called_aet} at {host}:{port} {why} (calling AE title {calling_aet}); "
                          "check the address, the port and that the PACS knows this AE title.")
    results = []
    try:
        for number, outgoing in enumerate(files):
            if progress:
                progress(number, len(files), f"sending {outgoing.path.name}")
            results.append(_store(association, outgoing))
    finally:
        association.release()
    if progress:
        progress(len(files), len(files), "sent")
    failed = [r for r in results if r["status"] != "stored"]
    if failed:
        stored = len(results) - len(failed)
        raise CMRSegError(f"The PACS stored {stored} of {len(results)} files; not stored: "
                          + "; ".join(f"{Path(r['file']).name} ({r['status']})" for r in failed) + ".")
    return results


def _store(association, outgoing: Outgoing) -> dict:
    accepted = [c for c in association.accepted_contexts if c.abstract_syntax == outgoing.sop_class_uid]
    result = {"file": str(outgoing.path), "sop_instance_uid": outgoing.sop_instance_uid}
    if not accepted:
        return result | {"status": f"the PACS does not accept SOP class {outgoing.sop_class_uid}"}
    status = association.send_c_store(pydicom.dcmread(outgoing.path))
    if "Status" not in status:
        return result | {"status": "no answer (connection lost or timed out)"}
    code = int(status.Status)
    if code == 0x0000:
        return result | {"status": "stored"}
    if code in (0x0001, 0x0107, 0x0116) or 0xB000 <= code <= 0xBFFF:  # warnings: stored, with a remark
        log.warning("%s stored with warning status 0x%04X", outgoing.path.name, code)
        return result | {"status": "stored", "warning": f"0x{code:04X}"}
    return result | {"status": f"failure status 0x{code:04X}"}
