"""Frames and videos, the one module for it: layout and dtype conversion, temporal resampling,
mp4 writing and side-by-side panels. numpy only at import (imageio and PIL load when used).

Frames are (T, H, W, 3) uint8 or floats in [0, 1] throughout the project.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cineneuron.atomic import atomic_path
from cineneuron.errors import CNError


def to_thwc(frames) -> np.ndarray:
    """(T, H, W, C) from (T, H, W, C) or (T, C, H, W) input (C in 1, 3), any dtype."""
    a = np.asarray(frames.detach().cpu().numpy() if hasattr(frames, "detach") else frames)
    if a.ndim != 4:
        raise ValueError(f"frames must be 4-D (T, H, W, 3); got shape {a.shape}")
    if a.shape[-1] not in (1, 3) and a.shape[1] in (1, 3):
        a = np.moveaxis(a, 1, -1)
    return a


def to_uint8(frames) -> np.ndarray:
    """Uint8 (T, H, W, C) from uint8 or [0, 1] floats (clipped, rounded)."""
    a = to_thwc(frames)
    return a if a.dtype == np.uint8 else np.round(np.clip(a.astype(np.float64), 0, 1) * 255).astype(np.uint8)


def resample_indices(n_src: int, n: int) -> np.ndarray:
    """n indices into n_src frames at uniform nearest positions, first and last kept: (n,) int."""
    return np.linspace(0, n_src - 1, n).round().astype(int)


def resample(frames: np.ndarray, n: int) -> np.ndarray:
    """`n` frames picked at uniform nearest positions (the identity when the count already matches)."""
    return frames if len(frames) == n else frames[resample_indices(len(frames), n)]


def resize(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Each (H, W, 3) uint8 frame resized to (height, width), bilinear."""
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(f).resize((width, height), Image.BILINEAR)) for f in frames])


def _even(frames: np.ndarray) -> np.ndarray:
    """H.264 in yuv420p (what browsers play) needs even sides: replicate the last row/column once."""
    ph, pw = frames.shape[1] % 2, frames.shape[2] % 2
    return np.pad(frames, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge") if ph or pw else frames


def write_mp4(frames, path: str | Path, fps: float = 8) -> Path:
    """(T, H, W, 3) uint8 or [0, 1] floats -> H.264 yuv420p mp4, written atomically.

    The size is kept exactly (macro_block_size=1), except that an odd side gains one replicated
    row or column, since yuv420p needs even sides and every browser plays yuv420p.
    """
    import imageio.v2 as imageio

    u8 = to_uint8(frames)
    if u8.shape[-1] != 3 or len(u8) == 0:
        raise CNError(f"frames must be (T, H, W, 3) with T > 0, got {u8.shape}")
    if Path(path).suffix.lower() != ".mp4":
        raise CNError(f"videos are written as .mp4; got {path}")
    u8 = _even(u8)
    with atomic_path(path) as tmp:
        with imageio.get_writer(str(tmp), format="FFMPEG", fps=fps, codec="libx264", macro_block_size=1,
                                quality=8, pixelformat="yuv420p") as w:
            for f in u8:
                w.append_data(np.ascontiguousarray(f))
    return Path(path)


def _label(width: int, text: str, height: int = 14) -> np.ndarray:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), (0, 0, 0))
    ImageDraw.Draw(img).text((2, 1), text[: max(4, width // 6)], fill=(255, 255, 255))
    return np.asarray(img)


def side_by_side(panels: list[np.ndarray], titles: list[str], size: int = 96, n_frames: int | None = None) -> np.ndarray:
    """Panels (each (F_i, H_i, W_i, 3)) resized to size x size, one title strip under each:
    (n, size + 14, size * len(panels), 3)."""
    n = n_frames or max(len(p) for p in panels)
    cols = []
    for p, t in zip(panels, titles):
        v = resize(resample(to_uint8(p), n), size, size)
        strip = np.broadcast_to(_label(size, t), (n, 14, size, 3))
        cols.append(np.concatenate([v, strip], axis=1))
    return np.concatenate(cols, axis=2)
