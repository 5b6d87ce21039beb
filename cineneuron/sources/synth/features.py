"""Stimulus features per frame, computed from the rendered frames and the renderer's truth maps.

These are what simulated voxels respond to (not the project's encoders, which are never used
here). Each channel is pooled over a coarse G x G grid of the frame:

- contrast: luminance gradient energy (local edge/contrast energy, V1-like);
- transient: absolute luminance change from the previous frame (onsets, scene cuts);
- motion_0..7: edge energy times speed, tuned to 8 directions (0 = right, 90 = up, ...) with a
  rectified cos^2 profile, from the exact per-pixel velocity of the renderer;
- face_body, animal, vehicle: how much of the cell the category's objects cover;
- object, attr_*: how much of the cell any object covers, and that coverage times each object's
  ventral attribute (animacy, size, ...; see ventral.py), for the object-tuned voxels.
"""

from __future__ import annotations

import numpy as np

from cineneuron.sources.synth.data import category_names
from cineneuron.sources.synth.render import ClipRender

GRID = 12
N_DIRECTIONS = 8
DIRECTIONS = np.arange(N_DIRECTIONS) * (2 * np.pi / N_DIRECTIONS)  # radians
CH_CONTRAST, CH_TRANSIENT, CH_MOTION = 0, 1, 2
CH_CATEGORY = CH_MOTION + N_DIRECTIONS
CH_OBJECT = CH_CATEGORY + len(category_names())  # object coverage; CH_OBJECT + 1 + d: attribute d


def channel_names() -> list[str]:
    from cineneuron.sources.synth.ventral import attribute_names

    return (["contrast", "transient"] + [f"motion_{int(np.rad2deg(d))}" for d in DIRECTIONS]
            + category_names() + ["object"] + [f"attr_{a}" for a in attribute_names()])


def luminance(frames: np.ndarray) -> np.ndarray:
    """(T, S, S, 3) uint8 -> (T, S, S) float32 in 0..1."""
    return frames.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32) / 255.0


def pool_matrix(size: int, grid: int = GRID) -> np.ndarray:
    """(grid, size) averaging matrix: row g averages the pixels of the g-th band of the frame."""
    edges = np.round(np.linspace(0, size, grid + 1)).astype(int)
    m = np.zeros((grid, size), np.float32)
    for g in range(grid):
        m[g, edges[g]:edges[g + 1]] = 1.0 / (edges[g + 1] - edges[g])
    return m


def pool(maps: np.ndarray, grid: int = GRID) -> np.ndarray:
    """Mean over a grid x grid tiling of the last two axes: (..., S, S) -> (..., grid, grid)."""
    m = pool_matrix(maps.shape[-1], grid)
    return m @ maps @ m.T


def _motion(edge: np.ndarray, velocity: np.ndarray, grid: int = GRID) -> np.ndarray:
    """Directional motion energy pooled per cell: (T, N_DIRECTIONS, grid, grid).

    edge * speed * max(0, cos(phi - theta))^2 == edge * max(0, v . u_theta)^2 / speed, evaluated
    only where something moves (object pixels), then summed into cells with bincount."""
    t, size = edge.shape[0], edge.shape[-1]
    speed = np.hypot(velocity[..., 0], velocity[..., 1])  # (T, S, S)
    ti, yi, xi = np.nonzero(speed > 0)
    out = np.zeros((t, N_DIRECTIONS, grid, grid), np.float32)
    if len(ti) == 0:
        return out
    v = velocity[ti, yi, xi]  # (N, 2)
    e = edge[ti, yi, xi] / speed[ti, yi, xi]  # (N,)
    units = np.stack([np.cos(DIRECTIONS), np.sin(DIRECTIONS)])  # (2, D)
    contrib = e[:, None] * np.maximum(0.0, v @ units) ** 2  # (N, D)
    edges = np.round(np.linspace(0, size, grid + 1)).astype(int)
    cell = (ti * grid + np.searchsorted(edges, yi, side="right") - 1) * grid + np.searchsorted(edges, xi, side="right") - 1
    area = np.diff(edges)[:, None] * np.diff(edges)[None, :]  # (grid, grid) pixels per cell
    for d in range(N_DIRECTIONS):
        out[:, d] = np.bincount(cell, contrib[:, d], minlength=t * grid * grid).reshape(t, grid, grid) / area
    return out


def clip_features(clip: ClipRender, prev_lum: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Features of one clip: (T, n_channels, GRID, GRID) float32, and its last luminance frame
    (the next clip's transient is measured against it: that is the scene cut)."""
    lum = luminance(clip.frames)  # (T, S, S)
    size = lum.shape[-1]
    gy, gx = np.gradient(lum, axis=(1, 2))
    edge = np.hypot(gx, gy) * (size / 96.0)  # per-frame-width units: same scale at any size
    before = np.concatenate([(prev_lum if prev_lum is not None else np.full_like(lum[0], 0.5))[None], lum[:-1]])
    transient = np.abs(lum - before)
    maps = np.concatenate([edge[:, None], transient[:, None], clip.category, clip.objects], axis=1)  # (T, 2 + n_cat + 1 + D, S, S)
    pooled = pool(maps.astype(np.float32))  # (T, 2 + n_cat + 1 + D, G, G)
    motion = _motion(edge, clip.velocity)  # (T, 8, G, G)
    out = np.concatenate([pooled[:, :2], motion, pooled[:, 2:]], axis=1)  # channel order of channel_names()
    return out.astype(np.float32), lum[-1]
