"""Liver lesions of the five RefHL-Seg types, with appearances that show their attributes.

Each lesion is an ellipsoid-like solid: in the axial plane a star-shaped outline ``R(theta)``
(round, oval or lobulated/irregular), along z an ellipsoidal profile over the slices it spans. The
appearance (portal venous phase, liver about 100-115 HU) follows the type:

==============  ====================================================================
cyst            water density (0-10 HU), homogeneous, round/oval, clear boundary
hemangioma      "vascular tumor": hypodense centre with bright peripheral nodules (~200 HU)
hcc             heterogeneous mosaic (~80 +- 45 HU); a bright capsule ring when ring-enhancing
metastasis      hypodense (~50 HU) with darker necrotic centre; a "target" ring when ring-enhancing
fnh             hyperdense (liver + 55 HU) with a dark central stellate scar
==============  ====================================================================

A ``blurry`` boundary blends into the liver over several millimetres, a ``clear`` one over about
one voxel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

LESION_TYPES = ("hemangioma", "cyst", "hcc", "fnh", "metastasis")
SHAPES = ("round", "oval", "irregular")
BOUNDARIES = ("clear", "blurry")
# Per type: allowed shapes with weights, P(blurry boundary), P(ring enhancement).
_TYPE_RULES: dict[str, tuple[dict[str, float], float, float]] = {
    "cyst": ({"round": 0.6, "oval": 0.4}, 0.0, 0.0),
    "hemangioma": ({"round": 0.3, "oval": 0.3, "irregular": 0.4}, 0.2, 0.0),
    "hcc": ({"round": 0.3, "oval": 0.3, "irregular": 0.4}, 0.5, 0.7),
    "fnh": ({"round": 0.4, "oval": 0.3, "irregular": 0.3}, 0.15, 0.0),
    "metastasis": ({"round": 0.5, "oval": 0.1, "irregular": 0.4}, 0.6, 0.8),
}
_ANGLES = np.linspace(0.0, 2.0 * np.pi, 360, endpoint=False)


@dataclass
class Lesion:
    """One lesion of a case. Lengths in mm, positions in the phantom's mm frame (see phantom.py).

    ``z_first``..``z_last`` are the slice indices it is visible on; ``segment`` is its Couinaud
    segment (Roman numeral), set when it is placed.
    """

    lesion_id: int
    kind: str
    shape: str
    boundary: str
    ring: bool
    r_eq: float  # radius of the disc with the outline's area, at the widest slice
    z_first: int
    z_last: int
    aspect: float
    rotation: float
    harmonics: np.ndarray  # (K, 3): order, amplitude, phase of the outline's perturbation
    details: np.ndarray  # type-specific (N, 3) points in unit-lesion coordinates: x, y, value
    cx: float = 0.0
    cy: float = 0.0
    segment: str = ""
    _norm: float = field(default=1.0, repr=False)

    def __post_init__(self) -> None:
        # Normalise the outline so that its area is pi * r_eq^2.
        radius = self._unit_radius(_ANGLES)
        self._norm = self.r_eq / np.sqrt(np.mean(radius**2))

    def _unit_radius(self, theta: np.ndarray) -> np.ndarray:
        t = theta - np.radians(self.rotation)
        a, b = np.sqrt(self.aspect), 1.0 / np.sqrt(self.aspect)
        radius = 1.0 / np.sqrt((np.cos(t) / a) ** 2 + (np.sin(t) / b) ** 2)
        for order, amplitude, phase in self.harmonics:
            radius = radius * (1.0 + amplitude * np.cos(order * theta + phase))
        return radius

    def radius(self, theta: np.ndarray) -> np.ndarray:
        """Outline radius (mm, same shape as ``theta``) at the widest slice."""
        return self._unit_radius(theta) * self._norm

    @property
    def max_radius(self) -> float:
        """Largest outline radius in mm (bounding circle at the widest slice)."""
        return float(self.radius(_ANGLES).max())

    def z_scale(self, z: int) -> float:
        """In-plane scale of the cross-section on slice ``z`` (0 when not visible): an ellipsoid whose
        half-length is half the span plus 0.75 slices, so the end slices keep >= 0.72 of the size."""
        if not self.z_first <= z <= self.z_last:
            return 0.0
        centre, half = (self.z_first + self.z_last) / 2.0, (self.z_last - self.z_first) / 2.0 + 0.75
        return float(np.sqrt(1.0 - ((z - centre) / half) ** 2))

    def diameter(self, z: int) -> float:
        """Longest in-plane diameter (mm) of the cross-section on slice ``z``."""
        radius = self.radius(_ANGLES)
        return float((radius + np.roll(radius, len(_ANGLES) // 2)).max() * self.z_scale(z))

    def render(self, hu: np.ndarray, x: np.ndarray, y: np.ndarray, z: int, liver_hu: float) -> np.ndarray:
        """Blend the lesion into ``hu`` (modified in place) on slice ``z``; returns its boolean mask.

        ``hu``, ``x``, ``y``: (H, W) arrays (HU, mm, mm) of the same region; returns (H, W) bool.
        """
        scale = self.z_scale(z)
        dx, dy = x - self.cx, y - self.cy
        r = np.hypot(dx, dy)
        outline = self.radius(np.arctan2(dy, dx)) * scale
        size = self.r_eq * scale
        soft = max(3.0, 0.3 * size) if self.boundary == "blurry" else 0.6
        weight = np.clip(0.5 + (outline - r) / (2.0 * soft), 0.0, 1.0)
        if self.boundary == "blurry":
            weight = weight * (0.55 + 0.45 * np.clip((outline - r) / size, 0.0, 1.0))
        value = self._appearance(dx / size, dy / size, r / np.maximum(outline, 1e-6), liver_hu)
        hu += weight * (value - hu)
        return r < outline

    def _appearance(self, u: np.ndarray, v: np.ndarray, rho: np.ndarray, liver_hu: float) -> np.ndarray:
        """HU inside the lesion; (u, v) are coordinates in units of the lesion radius, rho = r / R."""
        if self.kind == "cyst":
            return np.full(u.shape, 5.0, dtype=np.float32)
        if self.kind == "hemangioma":  # discontinuous peripheral nodular enhancement
            value = np.full(u.shape, 50.0, dtype=np.float32)
            for px, py, _ in self.details:
                value = np.maximum(value, 50.0 + 160.0 * np.exp(-((u - px) ** 2 + (v - py) ** 2) / 0.05))
            return value
        if self.kind == "hcc":  # mosaic
            value = np.full(u.shape, 80.0, dtype=np.float32)
            for px, py, amplitude in self.details:
                value = value + amplitude * np.exp(-((u - px) ** 2 + (v - py) ** 2) / 0.1)
        elif self.kind == "metastasis":  # hypodense with a necrotic centre
            value = 50.0 - 28.0 * np.exp(-(u * u + v * v) / 0.18)
        else:  # fnh: hyperdense with a central stellate scar
            value = np.full(u.shape, liver_hu + 55.0, dtype=np.float32)
            for angle, _, _ in self.details:
                across = np.abs(-u * np.sin(angle) + v * np.cos(angle))
                value = np.where((across < 0.1) & (u * u + v * v < 0.36), 50.0, value)
        if self.ring:  # enhancing capsule / target rim
            value = np.where(rho > 0.65, 165.0, value)
        return value


def sample_lesion(
    rng: np.random.Generator, lesion_id: int, z_first: int, z_last: int, r_range: tuple[float, float]
) -> Lesion:
    """Draw a lesion of a uniformly chosen type spanning slices ``z_first..z_last``.

    ``r_range``: (min, max) equivalent radius in mm at scale 1; the minimum is divided by the lesion's
    smallest z-scale so that every cross-section keeps the required area.
    """
    kind = LESION_TYPES[int(rng.integers(len(LESION_TYPES)))]
    shapes, p_blurry, p_ring = _TYPE_RULES[kind]
    shape = str(rng.choice(list(shapes), p=list(shapes.values())))
    boundary = "blurry" if rng.random() < p_blurry else "clear"
    ring = bool(rng.random() < p_ring)
    half = (z_last - z_first) / 2.0
    min_scale = float(np.sqrt(1.0 - (half / (half + 0.75)) ** 2))
    low = r_range[0] / min_scale
    r_eq = float(np.exp(rng.uniform(np.log(low), np.log(max(r_range[1], low * 1.05)))))
    if shape == "round":
        aspect, harmonics = float(rng.uniform(1.0, 1.12)), np.zeros((0, 3))
    elif shape == "oval":
        aspect, harmonics = float(rng.uniform(1.55, 1.9)), np.zeros((0, 3))
    else:  # lobulated: a few low-order bumps strong enough to see at 128 px
        orders = rng.choice(np.arange(2, 6), size=3, replace=False)
        amplitudes = rng.uniform(0.1, 0.18, size=3)
        harmonics = np.stack([orders, amplitudes, rng.uniform(0, 2 * np.pi, size=3)], axis=1)
        aspect = float(rng.uniform(1.0, 1.3))
    if kind == "hemangioma":
        angles = np.sort(rng.uniform(0, 2 * np.pi, size=int(rng.integers(4, 7))))
        details = np.stack([0.78 * np.cos(angles), 0.78 * np.sin(angles), np.zeros_like(angles)], axis=1)
    elif kind == "hcc":
        details = np.concatenate(
            [rng.uniform(-0.6, 0.6, size=(5, 2)), rng.uniform(-45, 45, size=(5, 1))], axis=1
        )
    elif kind == "fnh":
        angles = rng.uniform(0, np.pi) + np.arange(3) * np.pi / 3
        details = np.stack([angles, np.zeros(3), np.zeros(3)], axis=1)
    else:
        details = np.zeros((0, 3))
    return Lesion(
        lesion_id=lesion_id,
        kind=kind,
        shape=shape,
        boundary=boundary,
        ring=ring,
        r_eq=r_eq,
        z_first=z_first,
        z_last=z_last,
        aspect=aspect,
        rotation=float(rng.uniform(0, 180)),
        harmonics=harmonics,
        details=details,
    )
