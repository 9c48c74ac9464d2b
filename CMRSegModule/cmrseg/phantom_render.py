"""Rendering the phantom of :mod:`cmrseg.phantom`: the image with partial volume, its label maps, the static
surroundings, coil bias and noise. The shapes and their analytic truth are in :mod:`cmrseg.phantom`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from cmrseg import labels

if TYPE_CHECKING:
    from cmrseg.phantom import FrameShape, PhantomShape

# Rendering classes (internal) and their SSFP-like intensities; the label map they give (ACDC values).
_BG, _LV_BLOOD, _LV_MYO, _RV_BLOOD, _RV_WALL, _PAPILLARY, _EPICARDIAL_FAT = range(7)
_INTENSITY = np.array([0.0, 1.0, 0.3, 0.95, 0.3, 0.33, 0.85], dtype=np.float32)
_LABEL_OF_CLASS = np.array(
    [labels.BACKGROUND, labels.LV, labels.MYO, labels.RV, labels.BACKGROUND, labels.LV, labels.BACKGROUND],
    dtype=np.uint8,
)

# Tissue intensities of the static surroundings.
AIR, FAT, SOFT_TISSUE, LUNG, BONE, CSF, AORTA, LIVER = 0.0, 0.85, 0.40, 0.05, 0.30, 0.85, 0.95, 0.45



def heart_reach_mm(shape: PhantomShape, frames: list[FrameShape]) -> float:
    """Largest in-plane distance of anything of the heart from the long axis."""
    return max(f.epi_radius + f.rv_width for f in frames) + shape.rv_wall_mm + shape.fat_mm



@dataclass(frozen=True)
class _Polar:
    """Sample points around the long axis: radius and the angular profiles of the RV and papillary muscles."""

    rho: np.ndarray
    rv: np.ndarray  # crescent profile cos(pi/2 u)^power inside the crescent, else 0
    rv_wall: np.ndarray  # bool: within the free wall's angular range
    papillary: np.ndarray  # radial half-width factor (0..1) of the papillary muscles

    @classmethod
    def around(cls, shape: PhantomShape, x_mm: np.ndarray, y_mm: np.ndarray) -> _Polar:
        dx, dy = x_mm - shape.centre_xy_mm[0], y_mm - shape.centre_xy_mm[1]
        theta = np.arctan2(dy, dx)
        u = _wrap(theta - shape.rv_angle_rad) / shape.rv_half_angle_rad
        rv = np.where(np.abs(u) < 1, np.cos(0.5 * np.pi * np.clip(u, -1, 1)) ** shape.rv_profile_power, 0.0)
        wall = np.abs(u) * shape.rv_half_angle_rad < shape.rv_half_angle_rad + 0.12
        half = shape.papillary_radius_mm / (shape.lv_radius_ed_mm - 1.5 - shape.papillary_radius_mm)
        pap = np.zeros_like(theta)
        for angle in shape.papillary_angles_rad:
            pap = np.maximum(pap, np.sqrt(np.clip(1 - (_wrap(theta - angle) / half) ** 2, 0, None)))
        f32 = np.float32
        return cls(np.hypot(dx, dy).astype(f32).ravel(), rv.astype(f32).ravel(), wall.ravel(), pap.astype(f32).ravel())


def _wrap(angle: np.ndarray) -> np.ndarray:
    return (angle + np.pi) % (2 * np.pi) - np.pi


def _profile(h: float, cap: float) -> float:
    """Cross-section scale at depth ``h`` below the equator for a half-ellipsoid cap of length ``cap``."""
    return 1.0 if h <= 0 else float(np.sqrt(max(0.0, 1 - (h / cap) ** 2)))


def _classes(shape: PhantomShape, frame: FrameShape, z: float, points: _Polar) -> np.ndarray:
    """Rendering class of each point in the plane at ``z`` (grid mm)."""
    code = np.zeros(points.rho.shape, dtype=np.uint8)
    if z < shape.z_base_mm:
        return code
    h = z - shape.z_base_mm - shape.cylinder_mm
    lv = frame.lv_radius * _profile(h, frame.lv_cap)
    epi = frame.epi_radius * _profile(h, frame.epi_cap)
    width = frame.rv_width * _profile(h, shape.rv_cap_mm)
    rho = points.rho
    code[rho < epi + shape.fat_mm] = _EPICARDIAL_FAT
    if width > 0:
        outer = epi + width * points.rv
        code[(rho < outer + shape.rv_wall_mm + shape.fat_mm) & points.rv_wall] = _EPICARDIAL_FAT
        code[(rho < outer + shape.rv_wall_mm) & points.rv_wall] = _RV_WALL
        code[rho < outer] = _RV_BLOOD
    code[rho < epi] = _LV_MYO
    code[rho < lv] = _LV_BLOOD
    if h < 0.5 * frame.lv_cap and lv > 12.0:
        r = shape.papillary_radius_mm
        code[np.abs(rho - (lv - 1.5 - r)) < r * points.papillary] = _PAPILLARY
    return code


def _slab_depths(shape: PhantomShape, frames: list[FrameShape], centre: float, thickness: float, n: int) -> np.ndarray:
    """Depths sampled through one slice: the centre alone where nothing changes along ``z`` in the slab."""
    low, high = centre - thickness / 2, centre + thickness / 2
    equator = shape.z_base_mm + shape.cylinder_mm
    apex = equator + max(f.epi_cap for f in frames)
    if high <= shape.z_base_mm or low >= apex or (low >= shape.z_base_mm and high <= equator):
        return np.array([centre])
    return low + (np.arange(n) + 0.5) * thickness / n


def _block_mean(array: np.ndarray, n: int) -> np.ndarray:
    rows, cols = array.shape[0] // n, array.shape[1] // n
    return array.reshape(rows, n, cols, n).mean(axis=(1, 3))


def render(
    shape: PhantomShape,
    frames: list[FrameShape],
    rows: int,
    cols: int,
    spacing: tuple,
    slices: int,
    thickness: float,
    n: int,
    z_samples: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free image with partial volume, and the label maps (class at each voxel centre)."""
    sx, sy, sz = spacing
    sub_x = ((np.arange(cols * n) + 0.5) / n - 0.5) * sx  # sub-pixel centres, grid mm
    sub_y = ((np.arange(rows * n) + 0.5) / n - 0.5) * sy
    static, liver = _surroundings(shape, sub_x, sub_y, cols * sx, rows * sy)
    liver_top = shape.z_base_mm + shape.cylinder_mm + 0.4 * shape.lv_cap_ed_mm

    reach = heart_reach_mm(shape, frames) + max(sx, sy)
    cx, cy = shape.centre_xy_mm
    i0, i1 = max(0, int((cx - reach) / sx)), min(cols, int(np.ceil((cx + reach) / sx)) + 1)
    j0, j1 = max(0, int((cy - reach) / sy)), min(rows, int(np.ceil((cy + reach) / sy)) + 1)
    sub = np.s_[j0 * n : j1 * n, i0 * n : i1 * n]
    fine = _Polar.around(shape, *np.meshgrid(sub_x[i0 * n : i1 * n], sub_y[j0 * n : j1 * n]))
    centres = _Polar.around(shape, *np.meshgrid(np.arange(i0, i1) * sx, np.arange(j0, j1) * sy))

    image = np.empty((len(frames), slices, rows, cols), dtype=np.float32)
    label_maps = np.zeros(image.shape, dtype=np.uint8)
    for k in range(slices):
        centre = k * sz
        covered = np.clip((centre + thickness / 2 - liver_top) / thickness, 0.0, 1.0)
        background = static + covered * liver * (LIVER - static)
        image[:, k] = _block_mean(background, n)
        background_roi = background[sub].ravel()
        depths = _slab_depths(shape, frames, centre, thickness, z_samples)
        for t, frame in enumerate(frames):
            total = np.zeros(background_roi.shape, dtype=np.float32)
            for z in depths:
                code = _classes(shape, frame, z, fine)
                total += np.where(code == _BG, background_roi, _INTENSITY[code])
            total /= len(depths)
            image[t, k, j0:j1, i0:i1] = _block_mean(total.reshape((j1 - j0) * n, (i1 - i0) * n), n)
            code = _classes(shape, frame, centre, centres)
            label_maps[t, k, j0:j1, i0:i1] = _LABEL_OF_CLASS[code].reshape(j1 - j0, i1 - i0)
    return image, label_maps


def _ellipse(x: np.ndarray, y: np.ndarray, cx: float, cy: float, ax: float, ay: float) -> np.ndarray:
    return ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 < 1


def _surroundings(
    shape: PhantomShape, sub_x: np.ndarray, sub_y: np.ndarray, width: float, height: float
) -> tuple[np.ndarray, np.ndarray]:
    """Static chest around the heart (sub-pixel intensities) and the liver's mask (its z-extent varies)."""
    x, y = np.meshgrid(sub_x, sub_y)
    mx, my = width / 2, height / 2
    ax, ay = 0.46 * width, 0.36 * height
    image = np.full(x.shape, AIR, dtype=np.float32)
    image[_ellipse(x, y, mx, my + 4, ax, ay)] = FAT
    image[_ellipse(x, y, mx, my + 4, ax - 10, ay - 10)] = SOFT_TISSUE
    image[_ellipse(x, y, mx - 0.25 * width, my + 2, 0.17 * width, 0.25 * height)] = LUNG
    image[_ellipse(x, y, mx + 0.27 * width, my + 2, 0.14 * width, 0.24 * height)] = LUNG
    spine_y = my + ay - 24
    image[_ellipse(x, y, mx, spine_y, 14, 13)] = BONE
    image[_ellipse(x, y, mx, spine_y, 5, 5)] = CSF
    image[_ellipse(x, y, mx + 27, spine_y - 6, 11, 11)] = AORTA
    # Epicardial fat in the anterior interventricular groove (the heart is drawn over it).
    cx, cy = shape.centre_xy_mm
    groove = shape.lv_radius_ed_mm + shape.wall_ed_mm + 4
    image[_ellipse(x, y, cx - 0.35 * groove, cy - 0.95 * groove, 9, 5)] = FAT
    liver = _ellipse(x, y, mx - 0.12 * width, my + 0.14 * height, 0.25 * width, 0.17 * height)
    return image, liver.astype(np.float32)


def add_bias_and_noise(image: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """A smooth coil-sensitivity ramp in-plane, then Rician noise (magnitude of complex Gaussian noise)."""
    rows, cols = image.shape[-2:]
    y, x = np.meshgrid(np.linspace(-0.5, 0.5, rows), np.linspace(-0.5, 0.5, cols), indexing="ij")
    image = image * (1 + 0.12 * x - 0.08 * y).astype(np.float32)
    if sigma <= 0:
        return image.astype(np.float32)
    real = image + np.float32(sigma) * rng.standard_normal(image.shape, dtype=np.float32)
    imaginary = np.float32(sigma) * rng.standard_normal(image.shape, dtype=np.float32)
    return np.hypot(real, imaginary).astype(np.float32)
