"""4D NRRD cines as other tools write them: the frames on a domain axis (``kinds: ... time``) in three-dimensional
space, which ITK does not read as it is. Each is read as the same cine as the NIfTI the phantom writes."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from cmrseg.cli import main
from cmrseg.io.load import load_study
from cmrseg.validate import InputWarning


def write_time_nrrd(study, path, kinds=("domain", "domain", "domain", "time"), frames_first=False,
                    extra=(), detached=False):
    """The study as a 4D NRRD written by hand (gzip): x, y, z and the frame axis (last unless ``frames_first``)."""
    vectors = [f"({','.join(f'{v:.17g}' for v in np.asarray(study.direction)[:, axis] * study.spacing[axis])})"
               for axis in range(3)]  # fmt: skip
    frames, slices, rows, columns = study.image.shape
    sizes = [columns, rows, slices, frames]
    data = study.image.astype("<f4")  # [t, z, y, x]: x varies fastest, the frame axis slowest
    if frames_first:
        kinds, vectors, sizes = (kinds[3], *kinds[:3]), ["none", *vectors], [frames, *sizes[:3]]
        data = np.moveaxis(data, 0, -1)
    else:
        vectors = [*vectors, "none"]
    payload = gzip.compress(np.ascontiguousarray(data).tobytes())
    header = [
        "NRRD0004", "type: float", "dimension: 4", "space: left-posterior-superior",
        f"sizes: {' '.join(map(str, sizes))}", f"space directions: {' '.join(vectors)}",
        f"kinds: {' '.join(kinds)}", "endian: little", "encoding: gzip",
        f"space origin: ({','.join(f'{v:.17g}' for v in study.origin)})", *extra,
    ]  # fmt: skip
    if detached:
        (path.parent / "voxels.raw.gz").write_bytes(payload)
        path.write_text("\n".join([*header, "data file: voxels.raw.gz"]) + "\n")
    else:
        path.write_bytes(("\n".join(header) + "\n\n").encode() + payload)
    return path


def assert_same_cine(read, study):
    np.testing.assert_array_equal(read.image, study.image)
    np.testing.assert_allclose(read.spacing, study.spacing, rtol=1e-12)
    np.testing.assert_allclose(read.origin, study.origin, atol=1e-9)
    np.testing.assert_allclose(read.direction, study.direction, atol=1e-9)


@pytest.mark.parametrize("kinds,frames_first", [
    (("domain", "domain", "domain", "time"), False),
    (("space", "space", "space", "time"), False),
    (("domain", "domain", "domain", "domain"), False),
    (("domain", "domain", "domain", "time"), True),
])  # fmt: skip
def test_a_cine_with_its_frames_on_a_domain_axis_is_read_whole(oblique_phantom, tmp_path, kinds, frames_first):
    study = oblique_phantom.study
    path = write_time_nrrd(study, tmp_path / "cine.nrrd", kinds=kinds, frames_first=frames_first)
    read = load_study(path)
    assert_same_cine(read, study)
    assert not read.frame_times_known  # no unit: the frames are numbered, not timed


@pytest.mark.parametrize("spacing,unit,step_ms", [("40", "ms", 40.0), ("0.04", "s", 40.0)])
def test_the_frame_times_come_from_the_time_axis_spacing_in_its_unit(oblique_phantom, tmp_path, spacing, unit,
                                                                     step_ms):
    study = oblique_phantom.study
    path = write_time_nrrd(study, tmp_path / "cine.nrrd", extra=[f"spacings: nan nan nan {spacing}",
                                                                  f'units: "" "" "" "{unit}"'])
    read = load_study(path)
    np.testing.assert_allclose(read.frame_times_ms, np.arange(study.num_frames) * step_ms, rtol=1e-9)


def test_a_time_step_no_cine_has_leaves_the_times_unknown(oblique_phantom, tmp_path):
    path = write_time_nrrd(oblique_phantom.study, tmp_path / "cine.nrrd",
                           extra=["spacings: nan nan nan 1", 'units: "" "" "" "s"'])  # the 1 s default
    with pytest.warns(InputWarning, match="1000 ms apart .* taken as unknown"):
        read = load_study(path)
    assert not read.frame_times_known


def test_a_detached_header_reads_its_data_file_beside_it(oblique_phantom, tmp_path):
    study = oblique_phantom.study
    folder = tmp_path / "study"
    folder.mkdir()
    path = write_time_nrrd(study, folder / "cine.nhdr", detached=True)
    assert_same_cine(load_study(path), study)
    assert sorted(p.name for p in folder.iterdir()) == ["cine.nhdr", "voxels.raw.gz"]  # nothing written there


def test_a_truncated_time_axis_cine_is_refused(oblique_phantom, tmp_path, capsys):
    path = write_time_nrrd(oblique_phantom.study, tmp_path / "cine.nrrd")
    path.write_bytes(path.read_bytes()[:-2000])
    code = main(["info", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"cmrseg: error: {path}: the compressed voxel data are truncated"), err


def test_a_nrrd_of_vectors_is_refused_for_its_components_not_its_voxel_size(tmp_path, capsys):
    """The axis without a space direction holds components here, not frames: its voxel size is no question."""
    data = np.zeros((4, 32, 32, 3), np.int16)  # z, y, x, components
    header = ("NRRD0004\ntype: short\ndimension: 4\nspace: left-posterior-superior\nsizes: 3 32 32 4\n"
              "space directions: none (1.5,0,0) (0,1.5,0) (0,0,8)\nkinds: vector domain domain domain\n"
              "endian: little\nencoding: raw\nspace origin: (0,0,0)\n\n")
    (tmp_path / "rgb.nrrd").write_bytes(header.encode() + data.tobytes())
    assert main(["info", str(tmp_path / "rgb.nrrd")]) == 2
    assert "has 3 components per voxel; expected 1" in capsys.readouterr().err
