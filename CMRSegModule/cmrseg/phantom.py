"""A synthetic cine short-axis phantom with analytic ground truth, deterministic by seed.

The heart is built in the image grid's own millimetre frame (``x`` along the columns, ``y`` along the
rows, ``z`` along the slices, all from voxel 0), with the long axis along ``z``; the study geometry
(spacing, origin, possibly oblique direction) only places that grid in LPS space, so the truth does not
depend on it.

Shapes (``h`` = distance below the "equator" plane ``z_base + cylinder``, toward the apex):

* LV blood pool: a circular cylinder from the base plane to the equator, closed by a half-ellipsoid
  cap; cross-section radius ``R`` above the equator and ``R * sqrt(1 - (h / H)^2)`` in the cap.
  Volume ``pi R^2 (L + 2 H / 3)``.
* LV epicardium: the same shape with ``R_epi``, ``H_epi``; myocardium = epicardium minus blood pool.
  The myocardial volume is held constant over the cycle, so the wall thickens in systole.
* RV blood pool: a crescent on the epicardium, ``R_epi(z) <= rho <= R_epi(z) + W(z) cos(pi u / 2)^p``
  for ``u = (theta - theta_rv) / half_angle`` in ``[-1, 1]``, whose cross-section area has a closed form
  (see :func:`_rv_integrals`); ``W(z) = W`` above the equator and ``W sqrt(1 - (h / H_rv)^2)`` below.
  Its volume is integrated along ``z`` by Gauss-Legendre quadrature of a smooth (substituted) integrand,
  exact to machine precision.
* The base plane lies on a slice boundary, so no slice is cut by it. ED is frame 0, ES frame
  ``round(0.35 * frames)``; the volumes follow a raised-cosine contraction and relaxation.

The truth (:class:`PhantomTruth`) comes from these formulas, never from voxel counts. The image is
rendered (:mod:`cmrseg.phantom_render`) with partial volume: ``supersample x supersample`` sub-pixels
in-plane and ``z_samples`` sub-slabs through the slice thickness (where the slab cuts the tapering apex).
The label maps take the structure that contains the voxel centre, so voxel-count volumes are a midpoint
rule of the analytic ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from cmrseg import labels
from cmrseg.errors import CMRSegError
from cmrseg.io.study import PatientInfo, Study
from cmrseg.measures import MYOCARDIAL_DENSITY_G_PER_ML
from cmrseg.phantom_render import add_bias_and_noise, heart_reach_mm, render
from cmrseg.validate import MAX_FRAMES


@dataclass(frozen=True)
class PhantomShape:
    """Shape parameters of the heart at end-diastole and how they change (mm, radians, fractions)."""

    centre_xy_mm: tuple[float, float]  # LV long axis in the grid's (x, y) millimetres
    z_base_mm: float  # base (valve) plane
    cylinder_mm: float  # base to equator
    lv_radius_ed_mm: float
    lv_cap_ed_mm: float  # equator to LV blood-pool apex
    long_axis_shortening: float  # fraction of the cap lost at ES
    wall_ed_mm: float  # mid-ventricular wall thickness at ED
    apex_wall_ed_mm: float
    apex_wall_thickening: float  # fraction gained at ES
    lv_ef: float  # target LV ejection fraction (0..1)
    rv_width_ed_mm: float  # largest crescent thickness at ED
    rv_angle_rad: float  # direction of the crescent's middle, atan2(y, x) in the grid frame
    rv_half_angle_rad: float
    rv_cap_mm: float  # equator to RV apex
    rv_ef: float
    rv_profile_power: float = 0.6  # crescent thickness W cos(pi/2 u)^power: < 1 flattens it
    rv_wall_mm: float = 3.5  # free wall (rendered, unlabelled)
    fat_mm: float = 3.0  # epicardial fat around the heart (rendered, unlabelled)
    papillary_angles_rad: tuple[float, ...] = (0.75, 2.0)  # relative to +x in the grid frame
    papillary_radius_mm: float = 3.0


@dataclass(frozen=True)
class FrameShape:
    """The heart's time-varying parameters in one frame (mm)."""

    lv_radius: float
    lv_cap: float
    epi_radius: float
    epi_cap: float
    rv_width: float


@dataclass(frozen=True)
class PhantomTruth:
    """Analytic volumes per frame in ml, by structure key of :mod:`cmrseg.labels` (``RV``, ``Myo``, ``LV``)."""

    volumes_ml: dict[str, np.ndarray]
    ed_frame: int
    es_frame: int

    def edv(self, key: str) -> float:
        return float(self.volumes_ml[key][self.ed_frame])

    def esv(self, key: str) -> float:
        return float(self.volumes_ml[key][self.es_frame])

    def sv(self, key: str) -> float:
        return self.edv(key) - self.esv(key)

    def ef_percent(self, key: str) -> float:
        return 100.0 * self.sv(key) / self.edv(key)

    def myo_mass_g(self, frame: int) -> float:
        return float(self.volumes_ml["Myo"][frame]) * MYOCARDIAL_DENSITY_G_PER_ML

    def summary(self) -> dict[str, float]:
        """LV/RV EDV, ESV, SV (ml), EF (%) and LV mass at ED and ES (g), named as the fields of
        :class:`cmrseg.measures.StudyMeasures`."""
        out: dict[str, float] = {}
        for key in ("LV", "RV"):
            prefix = key.lower()
            out |= {
                f"{prefix}_edv_ml": self.edv(key),
                f"{prefix}_esv_ml": self.esv(key),
                f"{prefix}_sv_ml": self.sv(key),
                f"{prefix}_ef_pct": self.ef_percent(key),
            }
        out["lv_mass_ed_g"] = self.myo_mass_g(self.ed_frame)
        out["lv_mass_es_g"] = self.myo_mass_g(self.es_frame)
        return out


@dataclass
class Phantom:
    """A synthetic cine: the :class:`Study`, its label maps ``[t, z, y, x]`` (ACDC values) and the truth."""

    study: Study
    labels: np.ndarray
    truth: PhantomTruth
    shape: PhantomShape
    frames: list[FrameShape] = field(repr=False)

    def label_volumes_ml(self) -> dict[str, np.ndarray]:
        """Voxel-count volumes per frame (count x voxel volume), by structure key."""
        axes = (1, 2, 3)
        return {s.key: (self.labels == s.label).sum(axis=axes) * self.study.voxel_volume_ml for s in labels.STRUCTURES}


def make_phantom(
    seed: int = 0,
    frames: int = 20,
    slices: int = 10,
    matrix: tuple[int, int] = (160, 160),
    pixel_spacing_mm: float = 1.5,
    slice_spacing_mm: float = 8.0,
    slice_thickness_mm: float | None = None,
    oblique: bool = False,
    rr_interval_ms: float = 950.0,
    noise: float = 0.03,
    supersample: int = 4,
    z_samples: int = 4,
) -> Phantom:
    """A beating-heart cine phantom; everything random is drawn from ``numpy.random.default_rng(seed)``.

    Args:
        seed: shape jitter (radii, wall, EF, RV), patient data and noise.
        frames: cardiac phases over one RR interval (at least 2); ED is frame 0.
        slices: short-axis slices; the base plane is the boundary between slices 0 and 1 and the heart
            fills the rest of the stack.
        matrix: (rows, columns) = (y, x).
        pixel_spacing_mm, slice_spacing_mm: grid spacing; ``slice_thickness_mm`` (default: the spacing)
            only sets the through-plane partial volume.
        oblique: a double-oblique direction (as a real short-axis stack) instead of the identity.
        noise: Rician noise sigma relative to the blood-pool signal (1.0).
        supersample, z_samples: partial-volume sampling in-plane (per axis) and through the slice.

    Returns:
        The :class:`Phantom`: study (float32, blood ~1, myocardium ~0.3, Rician noise), label maps
        (the structure containing each voxel centre) and the analytic truth.

    Raises:
        CMRSegError: not 2 to MAX_FRAMES frames, fewer than 3 slices, or a grid too small for the heart.
    """
    if not 2 <= frames <= MAX_FRAMES:
        raise CMRSegError(f"A cine phantom needs at least 2 frames and at most {MAX_FRAMES} (what CMRSeg reads); "
                          f"got {frames}.")
    if slices < 3:
        raise CMRSegError(f"A phantom needs at least 3 slices; got {slices}.")
    rng = np.random.default_rng(seed)
    rows, cols = matrix
    spacing = (float(pixel_spacing_mm), float(pixel_spacing_mm), float(slice_spacing_mm))
    thickness = float(slice_thickness_mm or slice_spacing_mm)
    shape = _draw_shape(rng, rows, cols, spacing, slices)
    es_frame = max(1, round(0.35 * frames))
    beat = _beat(frames, es_frame)
    frame_shapes = [_frame_shape(shape, s) for s in beat]
    truth = PhantomTruth(_analytic_volumes(shape, frame_shapes), 0, es_frame)
    patient = _draw_patient(rng, seed)
    _check_fits(shape, frame_shapes, rows, cols, spacing, slices)
    image, label_maps = render(shape, frame_shapes, rows, cols, spacing, slices, thickness, supersample, z_samples)
    image = add_bias_and_noise(image, rng, noise)
    direction = _oblique_direction() if oblique else np.eye(3)
    centre = np.array([(cols - 1) / 2, (rows - 1) / 2, (slices - 1) / 2]) * np.array(spacing)
    origin = np.array([3.0, -12.0, 25.0]) - direction @ centre  # grid centre near the isocentre
    study = Study(
        image=image,
        spacing=spacing,
        origin=tuple(origin),
        direction=direction,
        frame_times_ms=np.arange(frames) * (rr_interval_ms / frames),
        patient=patient,
        ed_frame=0,
        es_frame=es_frame,
        source=f"phantom(seed={seed})",
        description="CMRSeg synthetic cine SAX phantom",
    )
    return Phantom(study, label_maps, truth, shape, frame_shapes)


# ------------------------------------------------------------------------------------------ shape


def _draw_shape(rng: np.random.Generator, rows: int, cols: int, spacing: tuple, slices: int) -> PhantomShape:
    """Nominal adult heart with seeded jitter; lengths scale with the stack, radii are absolute (mm)."""
    sz = spacing[2]
    z_base = 0.5 * sz
    length = (slices - 1) * sz  # base plane to the far edge of the last slice
    jitter = [float(v) for v in rng.uniform(-1.0, 1.0, size=8)]
    width_mm, height_mm = cols * spacing[0], rows * spacing[1]
    return PhantomShape(
        centre_xy_mm=(0.56 * width_mm + 3.0 * jitter[0], 0.50 * height_mm + 3.0 * jitter[1]),
        z_base_mm=z_base,
        cylinder_mm=0.37 * length,
        lv_radius_ed_mm=27.5 + 1.5 * jitter[2],
        lv_cap_ed_mm=0.50 * length,
        long_axis_shortening=0.15,
        wall_ed_mm=8.0 + 1.0 * jitter[3],
        apex_wall_ed_mm=0.06 * length,
        apex_wall_thickening=0.5,
        lv_ef=0.60 + 0.025 * jitter[4],
        rv_width_ed_mm=23.0 + 2.0 * jitter[5],
        rv_angle_rad=np.pi + 0.55 + 0.1 * jitter[6],
        rv_half_angle_rad=1.6,
        rv_cap_mm=0.80 * 0.50 * length,
        rv_ef=0.52 + 0.03 * jitter[7],
    )


def _beat(frames: int, es_frame: int) -> np.ndarray:
    """Contraction state per frame: 0 at ED (frame 0), 1 at ES, raised-cosine in between."""
    phase = np.arange(frames) / frames
    phase_es = es_frame / frames
    contracting = 0.5 * (1 - np.cos(np.pi * phase / phase_es))
    relaxing = 0.5 * (1 + np.cos(np.pi * (phase - phase_es) / (1 - phase_es)))
    return np.where(phase <= phase_es, contracting, relaxing)


def _lv_factor(shape: PhantomShape, cap: float) -> float:
    """Volume of the cylinder + half-ellipsoid per unit ``pi R^2``: ``L + 2 H / 3``."""
    return shape.cylinder_mm + 2.0 * cap / 3.0


def _lv_frame(shape: PhantomShape, s: float) -> FrameShape:
    """LV and epicardium at contraction state ``s`` (no RV yet): LV volume ``EDV (1 - EF s)`` with
    longitudinal shortening of the cap, myocardial volume held at its ED value."""
    lv_cap = shape.lv_cap_ed_mm * (1 - shape.long_axis_shortening * s)
    epi_cap = lv_cap + shape.apex_wall_ed_mm * (1 + shape.apex_wall_thickening * s)
    edv = np.pi * shape.lv_radius_ed_mm**2 * _lv_factor(shape, shape.lv_cap_ed_mm)
    epi_edv = (
        np.pi
        * (shape.lv_radius_ed_mm + shape.wall_ed_mm) ** 2
        * _lv_factor(shape, shape.lv_cap_ed_mm + shape.apex_wall_ed_mm)
    )
    lv_volume = edv * (1 - shape.lv_ef * s)
    lv_radius = np.sqrt(lv_volume / (np.pi * _lv_factor(shape, lv_cap)))
    epi_radius = np.sqrt((lv_volume + epi_edv - edv) / (np.pi * _lv_factor(shape, epi_cap)))
    return FrameShape(float(lv_radius), float(lv_cap), float(epi_radius), float(epi_cap), 0.0)


def _frame_shape(shape: PhantomShape, s: float) -> FrameShape:
    """The whole heart at contraction state ``s``; the RV crescent width gives RV volume ``RVEDV (1 - EF s)``."""
    a, b = _rv_integrals(shape, _lv_frame(shape, 0.0))
    rv_edv = a * shape.rv_width_ed_mm + b * shape.rv_width_ed_mm**2
    frame = _lv_frame(shape, s)
    a, b = _rv_integrals(shape, frame)
    volume = rv_edv * (1 - shape.rv_ef * s)
    return replace(frame, rv_width=float((-a + np.sqrt(a * a + 4 * b * volume)) / (2 * b)))


_GAUSS_X, _GAUSS_W = np.polynomial.legendre.leggauss(64)


def _rv_integrals(shape: PhantomShape, frame: FrameShape) -> tuple[float, float]:
    """``(a, b)`` such that the RV volume is ``a W + b W^2`` (mm^3) for crescent width ``W``.

    The crescent at depth ``z`` spans ``R_epi <= rho <= R_epi + W w(z) c(u)`` with
    ``c(u) = cos(pi u / 2)^p``, ``u = (theta - theta_rv) / half_angle``; its area is
    ``half_angle (R_epi W w I(p) + W^2 w^2 I(2p) / 2)`` with ``I(q) = int_{-1}^{1} cos(pi u / 2)^q du
    = 2 Gamma((q + 1) / 2) / (sqrt(pi) Gamma(q / 2 + 1))``. The RV profile ``w`` is 1 above the equator
    and ``sqrt(1 - (h / H_rv)^2)`` below; in the cap the substitution ``h = H_rv sin(phi)`` makes the
    integrand of ``int R_epi w dz`` smooth, so 64-point Gauss-Legendre is exact to machine precision.
    """
    phi = (_GAUSS_X + 1) * np.pi / 4  # nodes on [0, pi/2]
    ratio = shape.rv_cap_mm / frame.epi_cap
    cap = np.sum(_GAUSS_W * np.pi / 4 * np.sqrt(1 - (ratio * np.sin(phi)) ** 2) * np.cos(phi) ** 2)
    p = shape.rv_profile_power
    radius_integral = frame.epi_radius * (shape.cylinder_mm + shape.rv_cap_mm * cap)
    a = shape.rv_half_angle_rad * _cos_power_integral(p) * radius_integral
    b = shape.rv_half_angle_rad / 2 * _cos_power_integral(2 * p) * (shape.cylinder_mm + 2 * shape.rv_cap_mm / 3)
    return float(a), float(b)


def _cos_power_integral(q: float) -> float:
    """``int_{-1}^{1} cos(pi u / 2)^q du``."""
    return 2 * math.gamma((q + 1) / 2) / (math.sqrt(math.pi) * math.gamma(q / 2 + 1))


def _analytic_volumes(shape: PhantomShape, frames: list[FrameShape]) -> dict[str, np.ndarray]:
    """LV, myocardial and RV volumes (ml) of each frame from the closed-form shapes."""
    lv, myo, rv = [], [], []
    for f in frames:
        lv_mm3 = np.pi * f.lv_radius**2 * _lv_factor(shape, f.lv_cap)
        epi_mm3 = np.pi * f.epi_radius**2 * _lv_factor(shape, f.epi_cap)
        a, b = _rv_integrals(shape, f)
        lv.append(lv_mm3 / 1000)
        myo.append((epi_mm3 - lv_mm3) / 1000)
        rv.append((a * f.rv_width + b * f.rv_width**2) / 1000)
    return {"RV": np.array(rv), "Myo": np.array(myo), "LV": np.array(lv)}


def _draw_patient(rng: np.random.Generator, seed: int) -> PatientInfo:
    """Adult patient data in the units and precision DICOM keeps (whole cm and years, 0.1 kg)."""
    return PatientInfo(
        height_cm=float(rng.integers(158, 192)),
        weight_kg=round(float(rng.uniform(55.0, 95.0)), 1),
        sex=str(rng.choice(["M", "F"])),
        age_years=float(rng.integers(25, 76)),
        patient_id=f"PHANTOM-{seed:04d}",
    )


def _oblique_direction() -> np.ndarray:
    """A double-oblique short-axis orientation (rotation, determinant +1)."""
    a, b, c = np.deg2rad([25.0, -35.0, 10.0])
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _check_fits(
    shape: PhantomShape, frames: list[FrameShape], rows: int, cols: int, spacing: tuple, slices: int
) -> None:
    apex = shape.z_base_mm + shape.cylinder_mm + max(f.epi_cap for f in frames)
    reach = heart_reach_mm(shape, frames) + 2 * max(spacing[:2])
    cx, cy = shape.centre_xy_mm
    inside = cx - reach >= 0 and cy - reach >= 0 and cx + reach <= (cols - 1) * spacing[0]
    if not inside or cy + reach > (rows - 1) * spacing[1] or apex > (slices - 0.5) * spacing[2]:
        raise CMRSegError(
            f"The phantom heart does not fit a {rows} x {cols} x {slices} grid of spacing {spacing} mm; "
            "use a larger matrix or pixel spacing."
        )
