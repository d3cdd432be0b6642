"""Measure a lesion's attributes on one slice, in physical units from the CT's affine.

Every array is (Z, H, W) or one (H, W) slice of it, as ``lsms.data.io.load_volume`` returns it; the
affine maps (z, h, w, 1) to RAS+ mm. Patient coordinates used here: ``cx`` grows towards the
patient's left (-R), ``cy`` towards posterior (-A), ``cz`` towards superior (S), in mm, so the
relations of ``lsms.data.synth.expressions`` ("more right-sided", "more anterior") apply unchanged.
Left and right come from the affine only, never from the array's column order.

Attributes (thresholds in ``Thresholds``; a value that falls in the band between two classes is
``None``: not said, and never used to tell lesions apart):

- side / depth / level: where the lesion's centre lies along the organ's extent (organ voxels and
  the lesions in it) in cx / cy / cz, as a fraction t in [0, 1]: right/anterior/lower when
  t < 0.5 - band, left/posterior/upper when t > 0.5 + band. Side and depth use the centre of the
  slice's cross-section, level the centre of the whole 3D lesion.
- diameter: largest in-plane diameter (Feret) of the cross-section in mm: the largest distance between
  two pixel centres plus half a pixel.
- shape: irregular when solidity (pixels / pixels inside the convex hull of their centres) is below
  ``solidity_irregular``; otherwise round or oval by the aspect ratio of the cross-section's second
  moments in mm.
- density: mean HU of the lesion's core (the cross-section eroded by one pixel, when anything is left)
  minus the mean HU of the organ tissue (organ minus all lesions) 2-10 mm around it.
- margin: edge sharpness = (outer ring - inner ring) / (organ - core), rings one pixel wide on each
  side of the boundary; 1 for a step edge, small when the edge is blurred over several pixels. Not
  judged when the lesion-organ contrast is below ``contrast_hu``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, Delaunay, QhullError

from lsms.data.synth.phantom import SEGMENTS


@dataclass(frozen=True)
class Thresholds:
    """Cut-offs of the measured attributes (docs/data.md, "Attributes")."""

    position_band: float = 0.1  # |t - 0.5| <= band: no side/depth/level word
    iso_hu: float = 10.0  # |lesion - organ| < iso_hu: isodense
    contrast_hu: float = 20.0  # |lesion - organ| >= contrast_hu: hypo-/hyperdense
    ring_mm: tuple[float, float] = (2.0, 10.0)  # organ tissue this far around the lesion: the reference
    aspect_round: float = 1.2  # aspect <= this: round
    aspect_oval: float = 1.4  # aspect >= this: oval
    solidity_irregular: float = 0.9  # solidity < this: irregular
    solidity_regular: float = 0.95  # solidity >= this: round or oval
    shape_min_px: int = 12  # smaller cross-sections get no shape
    sharp_well: float = 0.6  # sharpness >= this: well-defined
    sharp_ill: float = 0.4  # sharpness <= this: ill-defined
    organ_shell: float = 0.3  # a lesion is in the organ when this share of its 1-voxel shell is organ


@dataclass(frozen=True)
class Facts:
    """What an expression can say about one lesion on one slice, and the measurements behind it.

    Words are None when the input does not give them or the measurement is in a band between two
    classes. ``cx``/``cy``: centre of the cross-section, ``cz``: centre of the 3D lesion (mm, see the
    module docstring)."""

    lesion: int
    organ: str
    kind: str | None
    side: str | None
    depth: str | None
    level: str | None
    segment: str | None
    diameter: float
    shape: str | None
    density: str | None
    margin: str | None
    cx: float
    cy: float
    cz: float
    area_px: int
    aspect: float
    solidity: float
    delta_hu: float | None
    sharpness: float | None
    in_organ: bool


def patient_coordinates(affine: np.ndarray, zhw: np.ndarray) -> np.ndarray:
    """(N, 3) voxel indices (z, h, w) -> (N, 3) patient mm (cx to the left, cy posterior, cz superior)."""
    ras = zhw @ affine[:3, :3].T + affine[:3, 3]
    return ras * np.array([-1.0, -1.0, 1.0]) + 0.0  # + 0.0: no negative zeros in the tables


def plane_metric(affine: np.ndarray) -> np.ndarray:
    """(2, 2) upper-triangular R with |R @ (dh, dw)| = the in-plane distance in mm (QR of the affine's
    h and w columns), so in-plane geometry is exact for any pixel spacing, flip or rotation."""
    _, r = np.linalg.qr(affine[:3, 1:3])
    return r


def feret_diameter(mask: np.ndarray, metric: np.ndarray) -> float:
    """Largest in-plane diameter in mm of an (H, W) bool mask: the largest distance between two pixel
    centres plus half a pixel along that direction (unbiased for outlines digitised by pixel centre:
    within +-0.7 pixel on random ellipses, where centres alone read 0.5 pixel short on average)."""
    points = np.stack(np.nonzero(mask), axis=1).astype(np.float64) @ metric.T
    if len(points) == 1:
        return float(np.linalg.norm(metric, axis=0).mean())
    try:
        points = points[ConvexHull(points).vertices]
    except QhullError:  # collinear pixels: every point is a candidate
        pass
    gaps = points[:, None, :] - points[None, :, :]
    lengths = np.sqrt((gaps**2).sum(-1))
    i, j = np.unravel_index(int(lengths.argmax()), lengths.shape)
    direction = gaps[i, j] / lengths[i, j]
    pixel = 1.0 / float(np.linalg.norm(np.linalg.solve(metric, direction)))  # one pixel step along it
    return float(lengths[i, j] + 0.5 * pixel)


def aspect_ratio(mask: np.ndarray, metric: np.ndarray) -> float:
    """sqrt(largest / smallest eigenvalue) of the cross-section's second moments in mm (each pixel a
    uniform square, so a single row of pixels still has a finite aspect)."""
    points = np.stack(np.nonzero(mask), axis=1).astype(np.float64) @ metric.T
    covariance = np.atleast_2d(np.cov(points.T, bias=True)) if len(points) > 1 else np.zeros((2, 2))
    covariance = covariance + metric @ metric.T / 12.0
    low, high = np.linalg.eigvalsh(covariance)
    return float(np.sqrt(high / low))


def solidity(mask: np.ndarray) -> float:
    """Pixels / pixels whose centre lies in the convex hull of the pixel centres (1 for a digital
    convex shape, lower with concavities; ratios of areas are the same in pixels and mm)."""
    points = np.stack(np.nonzero(mask), axis=1).astype(np.float64)
    try:
        hull = Delaunay(points[ConvexHull(points).vertices])
    except (QhullError, ValueError):  # a line of pixels (or fewer than 3): convex
        return 1.0
    (h0, w0), (h1, w1) = points.min(0).astype(int), points.max(0).astype(int)
    grid = np.stack(np.mgrid[h0 : h1 + 1, w0 : w1 + 1], axis=-1).reshape(-1, 2).astype(np.float64)
    inside = int((hull.find_simplex(grid, tol=1e-9) >= 0).sum())
    return float(len(points) / max(inside, len(points)))


def classify_shape(aspect: float, solid: float, area_px: int, t: Thresholds) -> str | None:
    if area_px < t.shape_min_px:
        return None
    if solid < t.solidity_irregular:
        return "irregular"
    if solid < t.solidity_regular:
        return None
    if aspect <= t.aspect_round:
        return "round"
    return "oval" if aspect >= t.aspect_oval else None


def classify_density(delta_hu: float | None, t: Thresholds) -> str | None:
    if delta_hu is None:
        return None
    if delta_hu <= -t.contrast_hu:
        return "hypodense"
    if delta_hu >= t.contrast_hu:
        return "hyperdense"
    return "isodense" if abs(delta_hu) < t.iso_hu else None


def classify_margin(sharpness: float | None, t: Thresholds) -> str | None:
    if sharpness is None:
        return None
    if sharpness >= t.sharp_well:
        return "well-defined"
    return "ill-defined" if sharpness <= t.sharp_ill else None


def _fraction_word(value: float, low: float, high: float, words: tuple[str, str], band: float) -> str | None:
    """``words[0]`` below the middle band of [low, high], ``words[1]`` above it, None inside it."""
    if high <= low:
        return None
    t = (value - low) / (high - low)
    if t < 0.5 - band:
        return words[0]
    return words[1] if t > 0.5 + band else None


@dataclass
class OrganFrame:
    """The organ's extent in patient mm: (min, max) of cx, cy, cz over its voxel centres."""

    low: np.ndarray
    high: np.ndarray

    @classmethod
    def of(cls, region: np.ndarray, affine: np.ndarray) -> OrganFrame:
        """``region``: bool (Z, H, W), the organ with the lesions in it."""
        coordinates = patient_coordinates(affine, np.stack(np.nonzero(region), axis=1).astype(np.float64))
        return cls(coordinates.min(0), coordinates.max(0))

    def words(self, cx: float, cy: float, cz: float, band: float) -> tuple[str | None, ...]:
        """(side, depth, level) words of a point."""
        return (
            _fraction_word(cx, self.low[0], self.high[0], ("right", "left"), band),
            _fraction_word(cy, self.low[1], self.high[1], ("anterior", "posterior"), band),
            _fraction_word(cz, self.low[2], self.high[2], ("lower", "upper"), band),
        )


def in_organ(lesion: np.ndarray, others: np.ndarray, organ: np.ndarray, t: Thresholds) -> bool:
    """Whether at least ``t.organ_shell`` of the lesion's one-voxel shell (26-neighbours, other lesions
    left out) is organ: true inside the organ whether or not the organ mask includes the lesion (LiTS
    labels it tumour instead of liver), and for lesions at its surface. All bool, same shape."""
    shell = ndimage.binary_dilation(lesion, structure=np.ones((3, 3, 3), bool)) & ~lesion & ~others
    return bool(shell.any() and organ[shell].mean() >= t.organ_shell)


def measure_slice(
    hu: np.ndarray,
    lesion: np.ndarray,
    tissue: np.ndarray,
    affine: np.ndarray,
    z: int,
    t: Thresholds,
) -> dict[str, float | str | None]:
    """In-plane measurements of one cross-section: ``hu`` float (H, W) of slice ``z``, ``lesion`` bool
    (H, W), ``tissue`` bool (H, W) the organ minus every lesion on the slice."""
    metric = plane_metric(affine)
    area = int(lesion.sum())
    h, w = np.nonzero(lesion)
    cx, cy, _ = patient_coordinates(affine, np.array([[z, h.mean(), w.mean()]]))[0]
    aspect, solid = aspect_ratio(lesion, metric), solidity(lesion)
    spacing = np.linalg.norm(affine[:3, 1:3], axis=0)
    outside = ndimage.distance_transform_edt(~lesion, sampling=spacing)
    reference = tissue & (outside >= t.ring_mm[0]) & (outside <= t.ring_mm[1])
    if reference.sum() < 5:  # a lesion at the organ's edge: compare with the organ on the slice
        reference = tissue
    core = ndimage.binary_erosion(lesion)
    core = core if core.any() else lesion
    delta = sharpness = None
    if reference.any():
        organ_hu = float(hu[reference].mean())
        delta = float(hu[core].mean()) - organ_hu
        outer = ndimage.binary_dilation(lesion) & ~lesion & tissue
        inner = lesion & ~ndimage.binary_erosion(lesion)
        if abs(delta) >= t.contrast_hu and outer.any():
            sharpness = (float(hu[outer].mean()) - float(hu[inner].mean())) / -delta
    return {
        "area_px": area,
        "cx": float(cx),
        "cy": float(cy),
        "diameter": feret_diameter(lesion, metric),
        "aspect": aspect,
        "solidity": solid,
        "shape": classify_shape(aspect, solid, area, t),
        "delta_hu": delta,
        "density": classify_density(delta, t),
        "sharpness": sharpness,
        "margin": classify_margin(sharpness, t),
    }


def segment_of(segments: np.ndarray | None, lesion: np.ndarray) -> str | None:
    """The Couinaud segment (Roman numeral) most of the lesion's pixels lie in; ``segments`` int (H, W)."""
    if segments is None:
        return None
    labels = segments[lesion]
    labels = labels[labels > 0]
    if not labels.size:
        return None
    return SEGMENTS[int(np.bincount(labels).argmax()) - 1]
