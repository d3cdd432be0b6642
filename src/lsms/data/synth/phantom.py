"""Procedural abdominal CT anatomy at the level of the liver, in Hounsfield units.

Coordinates are millimetres in the axial plane with the origin at the image centre, ``x`` growing
towards the image's right and ``y`` towards the image's bottom. The images follow the
**radiological convention**: the viewer looks from the patient's feet, so the patient's right is on
the image's left (negative ``x``) and anterior is at the top (negative ``y``). Every "left"/"right" in
this package (lobes, relations) means the patient's side. The liver therefore sits on the image's
left, the spleen, stomach and aorta on the image's right of the midline.

A case is one of two axial levels, which the image shows through its anatomy:

- ``cranial`` (above the portal vein): hepatic veins converge on the IVC, stomach with air, no
  kidneys; liver segments I, II, IV, VII, VIII.
- ``caudal`` (below the portal vein): both kidneys, gallbladder, bowel; segments I, III, IV, V, VI.

In the plane, the Couinaud segments are sectors around the IVC bounded by the right hepatic vein
(posterior VI/VII vs anterior V/VIII), the middle hepatic vein (right vs left lobe) and the
umbilical fissure (IV vs II/III); the caudate lobe (I) is a disc beside the IVC. The hepatic veins
and the fissure are drawn along those boundaries so that the segment of a lesion is visible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

FOV_MM = 307.2  # 384 pixels of 0.8 mm at the default volume size
SLICE_THICKNESS_MM = 5.0
SEGMENTS = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII")  # label value = index + 1
LEVEL_SEGMENTS = {"cranial": ("I", "II", "IV", "VII", "VIII"), "caudal": ("I", "III", "IV", "V", "VI")}
# Boundary rays from the IVC, as angles from anterior (degrees, positive towards the image's right).
_RAY_RHV, _RAY_MHV, _RAY_FISSURE = -61.0, -19.0, 29.0


def lobe_of(segment: str) -> str:
    """The lobe a Couinaud segment belongs to: ``caudate``, ``left`` or ``right``."""
    if segment == "I":
        return "caudate"
    return "left" if segment in ("II", "III", "IV") else "right"


@dataclass(frozen=True)
class Ellipse:
    """An ellipse in mm: centre, semi-axes and rotation (degrees)."""

    cx: float
    cy: float
    ax: float
    ay: float
    angle: float = 0.0

    def inside(self, x: np.ndarray, y: np.ndarray, grow: float = 0.0) -> np.ndarray:
        """Boolean mask of points (any shape) inside the ellipse grown by ``grow`` mm."""
        # Python floats keep float32 grids in float32 (numpy scalars would promote to float64).
        c, s = float(np.cos(np.radians(self.angle))), float(np.sin(np.radians(self.angle)))
        dx, dy = x - self.cx, y - self.cy
        u, v = (c * dx + s * dy) * (1.0 / (self.ax + grow)), (c * dy - s * dx) * (1.0 / (self.ay + grow))
        return u * u + v * v <= 1.0


@dataclass(frozen=True)
class Anatomy:
    """One patient's organs at one axial level (all in mm / HU)."""

    level: str
    body: Ellipse
    abdomen: Ellipse  # inside the muscle wall
    liver_parts: tuple[Ellipse, ...]
    ivc: Ellipse
    aorta: Ellipse
    spine: Ellipse
    spleen: Ellipse
    extras: tuple[tuple[str, Ellipse], ...]  # kidneys, gallbladder, stomach, bowel
    rays: tuple[float, float, float]  # RHV, MHV, fissure angles (degrees)
    caudate: Ellipse
    liver_hu: float
    texture_seed: int

    def liver_mask(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Liver parenchyma (lesions included), without the IVC, gallbladder and kidneys."""
        mask = np.zeros(np.broadcast(x, y).shape, dtype=bool)
        for part in self.liver_parts:
            mask |= part.inside(x, y)
        mask &= self.abdomen.inside(x, y, grow=-4.0)
        mask &= ~self.ivc.inside(x, y, grow=2.0) & ~self.spine.inside(x, y, grow=6.0)
        for _, organ in self.extras:
            mask &= ~organ.inside(x, y, grow=3.0)
        return mask

    def segment_map(self, x: np.ndarray, y: np.ndarray, liver: np.ndarray | None = None) -> np.ndarray:
        """Couinaud label (1-8, see ``SEGMENTS``) of every point, 0 outside the liver. Shape of x/y;
        ``liver``: this anatomy's ``liver_mask(x, y)`` when already computed."""
        angle = np.degrees(np.arctan2(x - self.ivc.cx, -(y - self.ivc.cy)))
        rhv, mhv, fissure = self.rays
        upper = self.level == "cranial"
        labels = np.where(angle < rhv, 7 if upper else 6, 0)
        labels = np.where((angle >= rhv) & (angle < mhv), 8 if upper else 5, labels)
        labels = np.where((angle >= mhv) & (angle < fissure), 4, labels)
        labels = np.where(angle >= fissure, 2 if upper else 3, labels)
        labels = np.where(self.caudate.inside(x, y), 1, labels)
        liver = self.liver_mask(x, y) if liver is None else liver
        return np.where(liver, labels, 0).astype(np.uint8)

    def render(self, x: np.ndarray, y: np.ndarray, liver: np.ndarray | None = None) -> np.ndarray:
        """HU image (float32, shape of x/y) of the anatomy without lesions or noise; ``liver`` as in
        ``segment_map``."""
        hu = np.full(x.shape, -1000.0, dtype=np.float32)
        hu[self.body.inside(x, y)] = -100.0  # subcutaneous fat
        hu[self.abdomen.inside(x, y, grow=8.0)] = 50.0  # muscle wall
        hu[self.abdomen.inside(x, y)] = -85.0  # intra-abdominal fat
        colours = {"kidney": 170.0, "gallbladder": 12.0, "stomach": 30.0, "bowel": 35.0}
        for name, organ in self.extras:
            hu[organ.inside(x, y)] = colours[name]
            if name == "kidney":  # renal sinus fat
                hu[organ.inside(x, y, grow=-0.6 * min(organ.ax, organ.ay))] = -40.0
            if name in ("stomach", "bowel"):  # gas in the anterior half
                gas = organ.inside(x, y, grow=-3.0) & (y < organ.cy - 0.2 * organ.ay)
                hu[gas] = -850.0
        hu[self.spleen.inside(x, y)] = self.liver_hu + 10.0
        hu[self.spine.inside(x, y, grow=2.0)] = 700.0  # cortical bone
        hu[self.spine.inside(x, y)] = 280.0  # trabecular bone
        hu[self.aorta.inside(x, y)] = 175.0
        hu[self.ivc.inside(x, y)] = 140.0
        liver = self.liver_mask(x, y) if liver is None else liver
        texture = self._texture(x.shape)
        hu[liver] = self.liver_hu + texture[liver]
        # Hepatic veins (cranial) or thinner portal branches (caudal) along the segment boundaries,
        # and the fat of the umbilical fissure: they make the segments visible.
        width = 2.4 if self.level == "cranial" else 1.4
        for angle, value in zip(self.rays, (165.0, 165.0, -60.0), strict=True):
            vessel = _ray_mask(x, y, self.ivc.cx, self.ivc.cy, angle, width, start=self.ivc.ax + 4.0)
            hu[liver & vessel] = value
        return hu

    def _texture(self, shape: tuple[int, ...]) -> np.ndarray:
        """Smooth low-contrast parenchymal texture (HU offsets), the same for every slice of a case."""
        rng = np.random.default_rng(self.texture_seed)
        field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma=shape[0] / 64)
        return field * (6.0 / max(float(field.std()), 1e-6))


def _ray_mask(
    x: np.ndarray, y: np.ndarray, cx: float, cy: float, angle: float, half_width: float, start: float
) -> np.ndarray:
    """Points within ``half_width`` mm of the ray from (cx, cy) at ``angle``, beyond ``start`` mm."""
    dx, dy = np.sin(np.radians(angle)), -np.cos(np.radians(angle))
    along = (x - cx) * dx + (y - cy) * dy
    across = np.abs(-(x - cx) * dy + (y - cy) * dx)
    return (along > start) & (across < half_width * (1.0 + 0.5 * np.exp(-along / 40.0)))


def sample_anatomy(rng: np.random.Generator, level: str) -> Anatomy:
    """Draw one patient's anatomy at ``level`` (``cranial`` or ``caudal``) with natural variation."""

    def jitter(value: float, spread: float) -> float:
        return float(value + rng.uniform(-spread, spread))

    body = Ellipse(0.0, jitter(6.0, 3.0), jitter(142.0, 8.0), jitter(104.0, 6.0))
    abdomen = Ellipse(body.cx, body.cy - 2.0, body.ax - jitter(22.0, 4.0), body.ay - jitter(18.0, 3.0))
    spine = Ellipse(0.0, body.cy + body.ay - 38.0, 19.0, 17.0)
    aorta = Ellipse(jitter(14.0, 3.0), spine.cy - 31.0, 10.0, 10.0)
    ivc = Ellipse(jitter(-22.0, 3.0), spine.cy - jitter(36.0, 3.0), 11.0, 9.0)
    caudal = level == "caudal"
    # The right lobe fills the patient's right (image left); the left lobe reaches across anteriorly.
    scale = 0.86 if caudal else 1.0
    right_lobe = Ellipse(
        jitter(-58.0, 5.0),
        jitter(-2.0, 5.0),
        jitter(82.0, 6.0) * scale,
        jitter(88.0, 6.0) * scale,
        jitter(-10.0, 8.0),
    )
    left_lobe = Ellipse(
        jitter(22.0, 6.0),
        jitter(-48.0, 5.0),
        jitter(66.0, 6.0) * (0.75 if caudal else 1.0),
        jitter(36.0, 4.0) * scale,
        jitter(-18.0, 6.0),
    )
    spleen = Ellipse(
        jitter(95.0, 5.0), jitter(35.0, 6.0), jitter(28.0, 4.0), jitter(48.0, 5.0), jitter(30.0, 8.0)
    )
    extras: list[tuple[str, Ellipse]] = []
    if caudal:
        extras.append(
            ("kidney", Ellipse(jitter(-68.0, 4.0), spine.cy - 12.0, 25.0, 34.0, jitter(-25.0, 5.0)))
        )
        extras.append(("kidney", Ellipse(jitter(66.0, 4.0), spine.cy - 14.0, 25.0, 34.0, jitter(25.0, 5.0))))
        extras.append(("gallbladder", Ellipse(jitter(-14.0, 5.0), jitter(-40.0, 5.0), 13.0, 22.0, 40.0)))
        for _ in range(int(rng.integers(2, 4))):
            extras.append(
                ("bowel", Ellipse(jitter(62.0, 22.0), jitter(-40.0, 15.0), jitter(16.0, 4.0), 13.0))
            )
    else:
        extras.append(
            ("stomach", Ellipse(jitter(72.0, 6.0), jitter(-20.0, 6.0), 32.0, jitter(42.0, 5.0), 35.0))
        )
    rays = (jitter(_RAY_RHV, 6.0), jitter(_RAY_MHV, 5.0), jitter(_RAY_FISSURE, 5.0))
    caudate = Ellipse(ivc.cx + 14.0, ivc.cy - 20.0, jitter(17.0, 2.0), jitter(15.0, 2.0))
    return Anatomy(
        level=level,
        body=body,
        abdomen=abdomen,
        liver_parts=(right_lobe, left_lobe),
        ivc=ivc,
        aorta=aorta,
        spine=spine,
        spleen=spleen,
        extras=tuple(extras),
        rays=rays,
        caudate=caudate,
        liver_hu=jitter(108.0, 8.0),
        texture_seed=int(rng.integers(2**31)),
    )


def pixel_grid(n: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Pixel-centre coordinates (x, y), each (n, n) float32 mm, and the spacing in mm of an n x n slice."""
    spacing = FOV_MM / n
    axis = ((np.arange(n, dtype=np.float32) + 0.5) * spacing - FOV_MM / 2).astype(np.float32)
    y, x = np.meshgrid(axis, axis, indexing="ij")
    return x, y, spacing
