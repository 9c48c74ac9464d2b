"""A real DICOM storage SCP (pynetdicom) on a free local port, standing in for a PACS in the tests."""

from __future__ import annotations

import socket

import pydicom
import pynetdicom
from pynetdicom import AE, evt
from pynetdicom.sop_class import Comprehensive3DSRStorage, SegmentationStorage


class Pacs:
    """A storage SCP on a free local port that keeps what it receives; ``status`` is what it answers."""

    def __init__(self, ae_title: str = "TESTPACS", status: int = 0x0000, sop_classes=None) -> None:
        self.received: list[pydicom.Dataset] = []
        self.calling: list[str] = []
        self.status = status
        self.ae = AE(ae_title=ae_title)
        self.ae.require_called_aet = True
        for sop_class in sop_classes or (SegmentationStorage, Comprehensive3DSRStorage):
            self.ae.add_supported_context(sop_class, pynetdicom.ALL_TRANSFER_SYNTAXES)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.server = self.ae.start_server(("127.0.0.1", self.port), block=False,
                                           evt_handlers=[(evt.EVT_C_STORE, self._store)])  # fmt: skip

    def _store(self, event) -> int:
        self.calling.append(event.assoc.requestor.ae_title)
        if self.status == 0x0000:
            dataset = event.dataset
            dataset.file_meta = event.file_meta
            self.received.append(dataset)
        return self.status

    def close(self) -> None:
        self.server.shutdown()
