"""Writing videos and side-by-side panels (imageio-ffmpeg; PIL for captions)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_mp4(frames: np.ndarray, path: str | Path, fps: int = 8) -> Path:
    import imageio.v2 as imageio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # macro_block_size=1: keep the exact size (imageio pads to multiples of 16 otherwise).
    # yuv420p (imageio's default) needs even sides; odd sizes fall back to yuv444p.
    pix = None if _even(frames) else "yuv444p"
    with imageio.get_writer(str(path), fps=fps, codec="libx264", macro_block_size=1, quality=8,
                            pixelformat=pix) as w:
        for f in frames:
            w.append_data(np.ascontiguousarray(f))
    return path


def _even(frames: np.ndarray) -> bool:
    return frames.shape[1] % 2 == 0 and frames.shape[2] % 2 == 0


def _resize(video: np.ndarray, h: int, w: int, n: int) -> np.ndarray:
    from PIL import Image

    idx = np.linspace(0, len(video) - 1, n).round().astype(int)
    return np.stack([np.asarray(Image.fromarray(video[i]).resize((w, h), Image.BILINEAR)) for i in idx])


def _label(width: int, text: str, height: int = 14) -> np.ndarray:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), (0, 0, 0))
    ImageDraw.Draw(img).text((2, 1), text[: max(4, width // 6)], fill=(255, 255, 255))
    return np.asarray(img)


def side_by_side(panels: list[np.ndarray], titles: list[str], size: int = 96, n_frames: int | None = None) -> np.ndarray:
    """Panels (each (F_i, H_i, W_i, 3)) resized to size x size, one title strip under each."""
    n = n_frames or max(len(p) for p in panels)
    cols = []
    for p, t in zip(panels, titles):
        v = _resize(p, size, size, n)
        strip = np.broadcast_to(_label(size, t), (n, 14, size, 3))
        cols.append(np.concatenate([v, strip], axis=1))
    return np.concatenate(cols, axis=2)  # (n, size + 14, size * len(panels), 3)
