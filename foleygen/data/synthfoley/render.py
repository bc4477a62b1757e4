"""Vectorised numpy rendering of SynthFoley frames: random backgrounds and textured class shapes.

Each shape is star-shaped around its centre, so one description covers all of them: the boundary
radius as a function of the angle, ``R(theta)``. A pixel at polar coordinates ``(rho, theta)`` is
inside when ``rho < R(theta)``; coverage ``clip(R(theta) - rho + 0.5, 0, 1)`` antialiases the edge for
free. Only each object's bounding box is computed, and an object whose position and angle did not
change since the previous frame reuses its last patch (resting objects cost nothing).

Backgrounds are drawn from their own random stream and never depend on the objects or the sounds, so
a model cannot learn sound from background colour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Base RGB colours in [0, 1]; each object jitters them a little.
CLASS_COLOUR = {
    "wood": (0.55, 0.34, 0.16),
    "metal": (0.62, 0.63, 0.66),
    "glass": (0.45, 0.9, 0.95),
    "drum": (0.82, 0.1, 0.1),
    "rubber": (0.16, 0.72, 0.2),
    "paper": (0.95, 0.95, 0.92),
}
CLASS_SIDES = {"wood": 4, "metal": 0, "glass": 3, "drum": 6, "rubber": 0, "paper": -1}  # 0 disc, -1 crumpled


@dataclass
class Appearance:
    """How one object looks: class, colour, radii of the drawn outline, texture phases."""

    cls: str
    colour: np.ndarray  # [3] in [0, 1]
    radius_px: float  # collision radius in pixels
    crumple: np.ndarray  # [V] relative vertex radii (paper only)
    phase: np.ndarray  # [4] texture phases


def make_appearance(cls: str, radius_px: float, rng: np.random.Generator) -> Appearance:
    """A random appearance of class ``cls`` (colour jitter, crumpled outline, texture phases)."""
    colour = np.clip(np.array(CLASS_COLOUR[cls]) * rng.uniform(0.9, 1.1, 3), 0, 1)
    crumple = rng.uniform(0.72, 1.12, size=int(rng.integers(8, 12)))
    return Appearance(cls, colour, radius_px, crumple, rng.uniform(0, 2 * np.pi, 4))


def _boundary(app: Appearance, theta: np.ndarray) -> np.ndarray:
    """Outline radius ``R(theta)`` in pixels for object-local angles ``theta``."""
    sides = CLASS_SIDES[app.cls]
    r = app.radius_px
    if sides == 0:
        return np.full_like(theta, r)
    if sides > 0:
        # regular polygon whose apothem and circumradius average to the collision radius
        c = math.cos(math.pi / sides)
        circum = 2 * r / (1 + c)
        sector = 2 * math.pi / sides
        local = np.mod(theta, sector) - sector / 2
        return circum * c / np.cos(local)
    # crumpled paper: piecewise-linear radius between random vertices
    v = app.crumple
    pos = np.mod(theta, 2 * math.pi) / (2 * math.pi) * len(v)
    i0 = np.floor(pos).astype(int) % len(v)
    frac = pos - np.floor(pos)
    return r * 1.05 * ((1 - frac) * v[i0] + frac * v[(i0 + 1) % len(v)])


def _patch(
    app: Appearance, cx: float, cy: float, angle: float, size: int
) -> tuple[int, int, np.ndarray, np.ndarray] | None:
    """Colour ``[h, w, 3]`` and coverage ``[h, w, 1]`` of one object, with the patch's top-left corner."""
    reach = app.radius_px * 1.45 + 1.5
    x0, x1 = max(0, int(cx - reach)), min(size, int(cx + reach) + 2)
    y0, y1 = max(0, int(cy - reach)), min(size, int(cy + reach) + 2)
    if x0 >= x1 or y0 >= y1:
        return None
    dx = (np.arange(x0, x1) + 0.5 - cx)[None, :]
    dy = (np.arange(y0, y1) + 0.5 - cy)[:, None]
    rho = np.sqrt(dx * dx + dy * dy)
    ca, sa = math.cos(angle), math.sin(angle)
    u = (ca * dx + sa * dy) / app.radius_px  # object-local coordinates (rotate with the object)
    v = (-sa * dx + ca * dy) / app.radius_px
    theta = np.arctan2(v, u)
    edge = _boundary(app, theta) - rho
    alpha = np.clip(edge + 0.5, 0.0, 1.0)
    if not alpha.any():
        return None
    base = app.colour
    ph = app.phase
    cls = app.cls
    if cls == "wood":  # grain: wavy stripes along the plank
        shade = 0.82 + 0.18 * np.sin(9.0 * u + 1.2 * np.sin(3.0 * v + ph[0]) + ph[1])
        col = base * shade[..., None]
    elif cls == "metal":  # a fixed specular highlight (light from the upper left) + a rotating notch
        hx, hy = dx / app.radius_px + 0.35, dy / app.radius_px + 0.35
        high = 0.55 * np.exp(-(hx * hx + hy * hy) / 0.08)
        notch = ((np.abs(v) < 0.1) & (u > 0.35)) * 0.35
        col = base * (1.0 - notch)[..., None] + high[..., None]
    elif cls == "glass":  # translucent, bright rim
        rim = np.clip(1.0 - edge / 2.0, 0.0, 1.0)
        col = base + 0.45 * rim[..., None]
        alpha = alpha * 0.72
    elif cls == "drum":  # red shell with a pale drum head
        head = np.clip(0.62 * app.radius_px - rho + 0.5, 0.0, 1.0)
        col = base * (1 - head)[..., None] + np.array([0.95, 0.88, 0.76]) * head[..., None]
    elif cls == "rubber":  # shaded ball with a rotating stripe
        light = 1.0 - 0.35 * (dy / app.radius_px + 0.3)
        stripe = np.where(np.abs(v) < 0.14, 0.55, 1.0)
        col = base * (light * stripe)[..., None]
    else:  # paper: crease lines
        crease = np.abs(np.sin(4.0 * u + 2.5 * v + ph[0])) < 0.16
        crease |= np.abs(np.sin(-3.0 * u + 4.0 * v + ph[1])) < 0.12
        col = base * np.where(crease, 0.8, 1.0)[..., None]
    return y0, x0, np.clip(col, 0, 1).astype(np.float32), alpha[..., None].astype(np.float32)


def make_background(rng: np.random.Generator, size: int, floor_y: float) -> np.ndarray:
    """A random background ``float32 [H, W, 3]`` in [0, 1]: gradient + texture + a floor band."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    c0, c1 = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
    ang = rng.uniform(0, 2 * np.pi)
    ramp = np.clip((np.cos(ang) * (xx - 0.5) + np.sin(ang) * (yy - 0.5)) + 0.5, 0, 1)
    bg = c0 * (1 - ramp[..., None]) + c1 * ramp[..., None]
    texture = int(rng.integers(0, 4))
    if texture == 1:  # stripes
        freq, ph, a = rng.uniform(4, 16), rng.uniform(0, 2 * np.pi), rng.uniform(0, np.pi)
        bg *= (0.88 + 0.12 * np.sin(2 * np.pi * freq * (np.cos(a) * xx + np.sin(a) * yy) + ph))[..., None]
    elif texture == 2:  # checkerboard
        n = int(rng.integers(3, 10))
        check = ((np.floor(xx * n) + np.floor(yy * n)) % 2).astype(np.float32)
        bg *= (0.9 + 0.1 * check)[..., None]
    elif texture == 3:  # smooth blobs: upsampled low-resolution noise
        low = rng.uniform(-1, 1, (6, 6, 3))
        idx = np.minimum((np.arange(size) * 6 // size), 5)
        blobs = low[idx][:, idx]
        bg += 0.12 * blobs
    floor_px = int(round(floor_y * size))
    floor_colour = rng.uniform(0, 1, 3)
    bg[floor_px:] = floor_colour * (0.9 + 0.1 * rng.uniform(0, 1, (size - floor_px, 1, 1)))
    return np.clip(bg, 0, 1).astype(np.float32)


def render_frames(
    background: np.ndarray,
    appearances: list[Appearance | None],
    pos: np.ndarray,
    angle: np.ndarray,
    present: np.ndarray,
) -> np.ndarray:
    """Frames ``uint8 [F, H, W, 3]``.

    Args:
        background: ``float32 [H, W, 3]`` in [0, 1].
        appearances: one per body; ``None`` for bodies that are never drawn (off-screen ones).
        pos: ``[F, N, 2]`` centres in world units (frame = unit square).
        angle: ``[F, N]`` angles in radians.
        present: ``[F, N]`` bool.
    """
    size = background.shape[0]
    num_frames = pos.shape[0]
    bg8 = np.round(background * 255).astype(np.uint8)
    frames = np.broadcast_to(bg8, (num_frames, *bg8.shape)).copy()
    cache: dict[int, tuple[tuple[float, float, float], object]] = {}
    # Draw order: by body index (later bodies in front), fixed for the clip. Only each object's patch
    # is converted to float and blended: converting whole frames cost more than drawing.
    for f in range(num_frames):
        for i, app in enumerate(appearances):
            if app is None or not present[f, i]:
                continue
            key = (
                round(float(pos[f, i, 0]) * size, 2),
                round(float(pos[f, i, 1]) * size, 2),
                round(float(angle[f, i]), 3),
            )
            hit = cache.get(i)
            if hit is not None and hit[0] == key:
                patch = hit[1]
            else:
                patch = _patch(app, key[0], key[1], key[2], size)
                cache[i] = (key, patch)
            if patch is None:
                continue
            y0, x0, col, alpha = patch
            h, w = alpha.shape[:2]
            region = frames[f, y0 : y0 + h, x0 : x0 + w]
            blended = region * (1.0 - alpha) + alpha * (col * 255.0)
            region[...] = (blended + 0.5).astype(np.uint8)
    return frames
