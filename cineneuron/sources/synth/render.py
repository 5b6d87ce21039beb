"""Rendering of a scene into frames, with the ground-truth maps the simulated brain needs.

For every frame we know exactly where each object is and how each of its pixels moves, so the
renderer also returns a per-pixel velocity field (from the analytic pose at this frame and the
next) and per-pixel category coverage (face/body, animal, vehicle). Nothing is estimated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from cineneuron.sources.synth.data import category_names, category_of
from cineneuron.sources.synth.objects import background, sprite
from cineneuron.sources.synth.scenes import ClipScene, ObjectSpec, trajectory


@dataclass
class ClipRender:
    frames: np.ndarray  # (T, S, S, 3) uint8
    velocity: np.ndarray  # (T, S, S, 2) float32, frame widths per second; +x right, +y up
    category: np.ndarray  # (T, n_categories, S, S) float32 coverage in 0..1
    objects: np.ndarray | None = None  # (T, 1 + n_attributes, S, S): object coverage, then coverage x attribute


def _rot(angle_deg: float) -> np.ndarray:
    """Matrix of a counter-clockwise on-screen rotation, in image coordinates (y down)."""
    a = np.deg2rad(angle_deg)
    return np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])


def _pose(obj: ObjectSpec, u: float, size: int) -> tuple[float, float, int, float]:
    """Centre x, y and sprite side in pixels, angle in degrees, at clip-time fraction u."""
    x, y, s, a = trajectory(obj, u)
    return x * size, y * size, max(2, int(round(s * size))), a


def _place(obj: ObjectSpec, pose, size: int) -> tuple[Image.Image, int, int]:
    """The object's sprite for a pose and its top-left corner in pixels."""
    cx, cy, px, a = pose
    img = sprite(obj.kind, obj.colour, px, obj.flip)
    if a:
        img = img.rotate(a, resample=Image.BICUBIC, expand=True)
    return img, int(round(cx - img.width / 2)), int(round(cy - img.height / 2))


def _velocity(pose, pose_next, xs, ys, fps: int, size: int) -> np.ndarray:
    """Velocity of the object's pixels at (xs, ys): map each pixel to object coordinates at this
    frame's pose, then back to the image with the next frame's pose."""
    cx, cy, s, a = pose
    nx, ny, ns, na = pose_next
    p = np.stack([xs - cx, ys - cy])  # (2, N) relative to the centre
    q = _rot(-a) @ p / s  # object coordinates
    p2 = _rot(na) @ q * ns + np.array([[nx - cx], [ny - cy]])
    v = (p2 - p) * fps / size  # frame widths per second
    v[np.abs(v) < 1e-6] = 0.0  # round-off of the map and its inverse is not motion
    return np.stack([v[0], -v[1]], axis=-1)  # (N, 2), y flipped to point up


def render_clip(scene: ClipScene, size: int, fps: int, clip_s: float,
                attributes: dict[str, np.ndarray] | None = None) -> ClipRender:
    """attributes: each kind's ventral attribute vector (ventral.draw_attributes); default the
    world's prototypes."""
    from cineneuron.sources.synth.ventral import prototypes

    attributes = attributes or prototypes()
    n = int(round(clip_s * fps))
    bg = background(scene.background, size, scene.bg_seed)
    cats = category_names()
    frames = np.empty((n, size, size, 3), np.uint8)
    vel = np.zeros((n, size, size, 2), np.float32)
    cov = np.zeros((n, len(cats), size, size), np.float32)
    obj_maps = np.zeros((n, 1 + len(next(iter(attributes.values()))), size, size), np.float32)
    for f in range(n):
        u, u_next = (f + 0.5) / n, (f + 1.5) / n
        img = bg.copy()
        for obj in scene.objects:  # later objects are in front: they overwrite the maps
            pose, pose_next = _pose(obj, u, size), _pose(obj, u_next, size)
            spr, left, top = _place(obj, pose, size)
            img.paste(spr, (left, top), spr)
            alpha = np.asarray(spr)[..., 3].astype(np.float32) / 255.0  # (h, w)
            _stamp(vel[f], cov[f], alpha, left, top, obj, pose, pose_next, fps, size, cats)
            _stamp_attributes(obj_maps[f], alpha, left, top, attributes[obj.kind], size)
        frames[f] = np.asarray(img)
    return ClipRender(frames, vel, cov, obj_maps)


def _stamp_attributes(maps, alpha, left, top, vec: np.ndarray, size: int) -> None:
    """Object coverage and coverage x attribute vector; a nearer object hides the one behind."""
    h, w = alpha.shape
    y0, y1, x0, x1 = max(0, top), min(size, top + h), max(0, left), min(size, left + w)
    if y0 >= y1 or x0 >= x1:
        return
    a = alpha[y0 - top:y1 - top, x0 - left:x1 - left]
    region = maps[:, y0:y1, x0:x1]  # (1 + D, h', w')
    keep = 1.0 - a  # what shows through of the objects behind
    region *= keep[None]
    region[0] += a
    region[1:] += a[None] * vec[:, None, None]


def _stamp(vel, cov, alpha, left, top, obj, pose, pose_next, fps, size, cats) -> None:
    """Write one object's velocity and category coverage into the frame's maps (clipped to it)."""
    h, w = alpha.shape
    y0, y1, x0, x1 = max(0, top), min(size, top + h), max(0, left), min(size, left + w)
    if y0 >= y1 or x0 >= x1:
        return
    a = alpha[y0 - top:y1 - top, x0 - left:x1 - left]
    inside = a > 0.02  # the anti-aliased rim counts: that is where the edges move
    ys, xs = np.nonzero(inside)
    v = _velocity(pose, pose_next, xs + x0 + 0.5, ys + y0 + 0.5, fps, size)
    vel[ys + y0, xs + x0] = v
    cat = category_of(obj.kind)
    if cat is not None:
        region = cov[cats.index(cat), y0:y1, x0:x1]
        np.maximum(region, a, out=region)
