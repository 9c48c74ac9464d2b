"""Loading core studies into MRML volume nodes (slicer-core, headless): data and IJK-to-RAS geometry."""

from __future__ import annotations

import numpy as np
import pytest
import vtk

slicer = pytest.importorskip("slicer")

from cmrseg.io.acdc import load_frame  # noqa: E402
from cmrseg.io.study import Study  # noqa: E402
from CMRSegModuleLib.VolumeNodes import (  # noqa: E402
    createVolumeNodeFromFrame,
    ijkToRasArray,
    volumeNodeGeometry,
)


def oblique_study() -> Study:
    rng = np.random.default_rng(3)
    angle = np.deg2rad(30)
    rotation = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    return Study(
        image=rng.normal(size=(2, 5, 7, 9)).astype(np.float32),
        spacing=(1.4, 1.6, 8.0),
        origin=(-120.0, 35.5, 60.25),
        direction=rotation,
    )


def test_ijk_to_ras_places_a_known_voxel_at_the_flipped_lps_point():
    study = oblique_study()
    matrix = ijkToRasArray(study.spacing, study.origin, study.direction)
    xyz = np.array([4.0, 2.0, 3.0])
    ras = (matrix @ np.append(xyz, 1.0))[:3]
    lps = study.index_to_lps(xyz)
    np.testing.assert_allclose(ras, [-lps[0], -lps[1], lps[2]], atol=1e-9)


def test_study_frame_loads_into_a_volume_node_with_exact_array_and_geometry(headless_slicer):
    study = oblique_study()
    node = createVolumeNodeFromFrame(headless_slicer.scene, study, 1, name="ES")
    assert headless_slicer.scene.GetFirstNodeByName("ES") is node
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), study.image[1])
    spacing, origin, direction = volumeNodeGeometry(node)
    np.testing.assert_allclose(spacing, study.spacing, atol=1e-9)
    np.testing.assert_allclose(origin, study.origin, atol=1e-9)
    np.testing.assert_allclose(direction, study.direction, atol=1e-9)
    # The node's own RAS coordinate of voxel (i, j, k) = (x, y, z) agrees with the core.
    ijk_to_ras = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(ijk_to_ras)
    ras = ijk_to_ras.MultiplyPoint((8, 6, 4, 1))[:3]
    lps = study.index_to_lps([8, 6, 4])
    np.testing.assert_allclose(ras, [-lps[0], -lps[1], lps[2]], atol=1e-6)


@pytest.mark.shared_data
def test_real_acdc_frame_loads_with_header_spacing(headless_slicer, acdc_root):
    frame = load_frame(acdc_root / "patient001", "ED")
    node = createVolumeNodeFromFrame(headless_slicer.scene, frame.study, 0)
    assert node.GetSpacing() == pytest.approx((1.5625, 1.5625, 10.0))
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), frame.image)
