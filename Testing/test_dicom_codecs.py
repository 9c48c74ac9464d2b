"""Compressed cine DICOM: read bit for bit when the decoder is installed, a clear refusal naming it when not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless, RLELossless

from cmrseg.errors import CMRSegError
from cmrseg.io.dicom_cine import read_dicom_cine
from cmrseg.io.dicom_codecs import CODECS, decoder_advice, missing_decoders
from cmrseg.io.dicom_write import write_dicom_cine
from cmrseg.phantom import make_phantom
from CMRSegModuleLib import Dependencies

JPEG_LOSSLESS = "1.2.840.10008.1.2.4.70"


def compressed_copy(source: Path, target: Path, syntax: str) -> Path:
    target.mkdir()
    for path in sorted(source.iterdir()):
        ds = pydicom.dcmread(path)
        ds.compress(syntax)
        ds.save_as(target / path.name)
    return target


@pytest.fixture(scope="module")
def cine(tmp_path_factory) -> Path:
    study = make_phantom(seed=4, frames=3, slices=6, matrix=(120, 128)).study
    folder = tmp_path_factory.mktemp("codecs") / "plain"
    write_dicom_cine(study, folder)
    return folder


@pytest.mark.parametrize("syntax", [JPEG2000Lossless, RLELossless], ids=["jpeg2000-lossless", "rle"])
def test_a_losslessly_compressed_cine_reads_exactly_as_the_uncompressed_one(cine, tmp_path, syntax):
    plain = read_dicom_cine(cine)
    packed = read_dicom_cine(compressed_copy(cine, tmp_path / "packed", syntax))
    assert pydicom.dcmread(next((tmp_path / "packed").iterdir())).file_meta.TransferSyntaxUID == syntax
    np.testing.assert_array_equal(packed.image, plain.image)
    np.testing.assert_array_equal(packed.frame_times_ms, plain.frame_times_ms)


def test_a_missing_decoder_is_named_with_the_packages_that_provide_it():
    nothing_installed = lambda module: False  # noqa: E731
    advice = decoder_advice([JPEG_LOSSLESS, "1.2.840.10008.1.2.1"], installed=nothing_installed)
    assert "JPEG Lossless" in advice and "pylibjpeg-libjpeg" in advice and "pylibjpeg>=" in advice
    assert decoder_advice(["1.2.840.10008.1.2.1", RLELossless], installed=nothing_installed) == ""  # built in
    assert missing_decoders([JPEG2000Lossless], installed=lambda m: m == "pylibjpeg") == {
        "JPEG 2000 lossless": ["pylibjpeg-openjpeg>=2.3"]
    }
    assert decoder_advice(CODECS) == ""  # this environment has every decoder (requirements.txt)


def test_the_reader_refuses_before_reading_pixels_when_a_decoder_is_missing(cine, tmp_path, monkeypatch):
    folder = compressed_copy(cine, tmp_path / "packed", JPEG2000Lossless)
    import cmrseg.io.dicom_codecs as codecs

    monkeypatch.setattr(codecs, "_installed", lambda module: module != "openjpeg")
    with pytest.raises(CMRSegError, match=r"compressed \(JPEG 2000 lossless\).*pylibjpeg-openjpeg"):
        read_dicom_cine(folder)


def test_the_module_offers_only_the_decoders_a_folder_needs(cine, tmp_path, monkeypatch):
    assert Dependencies.missingDicomDecoders(str(cine)) == {}
    folder = compressed_copy(cine, tmp_path / "packed", JPEG2000Lossless)
    import cmrseg.io.dicom_codecs as codecs

    monkeypatch.setattr(codecs, "_installed", lambda module: module != "openjpeg")
    assert Dependencies.missingDicomDecoders(str(folder)) == {"JPEG 2000 lossless": ["pylibjpeg-openjpeg>=2.3"]}
    asked = []
    assert Dependencies.ensureDicomDecoders(str(folder), lambda m: asked.append(m) or False) is False
    assert "pylibjpeg-openjpeg" in asked[0] and "Slicer's DICOM module" in asked[0]
