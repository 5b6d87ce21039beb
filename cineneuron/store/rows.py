"""Turn encoded clips into validated Arrow rows for the `clips` table.

The store, not the caller, derives `img` (the pooled unit vector of the per-frame embeddings)
and `mix = [txt, img, act]`, so the concatenation can never disagree with its parts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa

from cineneuron.errors import CNError
from cineneuron.schemas.superclasses import label_vec


@dataclass
class EncodedClip:
    clip_id: str
    source: str
    video: str
    video_uri: str
    start_s: float
    end_s: float
    split: str
    caption: str
    labels: list[str]
    img_frames: np.ndarray  # (T, d_img)
    txt: np.ndarray  # (d_txt,)
    act: np.ndarray  # (d_act,)
    cond: np.ndarray  # (L, d_cond) float16, real tokens only
    frames: list[bytes] = field(default_factory=list)  # JPEG previews
    factors: dict = field(default_factory=dict)


def unit(x: np.ndarray, axis: int = -1) -> np.ndarray:
    n = np.linalg.norm(x, axis=axis, keepdims=True)
    return (x / np.maximum(n, 1e-12)).astype(np.float32)


def pooled_image(img_frames: np.ndarray) -> np.ndarray:
    """The clip's image vector: the unit mean of unit per-frame embeddings (B, T, d) -> (B, d).

    Frames are normalised first so one bright frame cannot dominate, and so this matches the
    Brain Model's frame pooling at initialisation.
    """
    return unit(unit(img_frames).mean(axis=-2))


def mix_vector(txt: np.ndarray, img: np.ndarray, act: np.ndarray) -> np.ndarray:
    return np.concatenate([unit(txt), unit(img), unit(act)], axis=-1)


def _check(c: EncodedClip, dims: dict[str, int], n_frames: int) -> None:
    want = {"img_frames": (n_frames, dims["image"]), "txt": (dims["text"],), "act": (dims["action"],)}
    for name, shape in want.items():
        arr = getattr(c, name)
        if arr.shape != shape:
            raise CNError(f"clip {c.clip_id}: {name} has shape {arr.shape}, the store's preset expects {shape}")
        if not np.isfinite(arr).all():
            raise CNError(f"clip {c.clip_id}: {name} contains NaN or inf; nothing was written")
    if c.cond.ndim != 2 or c.cond.shape[1] != dims["cond"]:
        raise CNError(f"clip {c.clip_id}: cond has shape {c.cond.shape}, expected (L, {dims['cond']})")


def clips_to_arrow(clips: list[EncodedClip], schema: pa.Schema, dims: dict[str, int], n_frames: int) -> pa.Table:
    """Validate every clip first, so a batch is written whole or not at all."""
    for c in clips:
        _check(c, dims, n_frames)
    img_frames = np.stack([c.img_frames for c in clips]).astype(np.float32)  # (B, T, d_img)
    img = pooled_image(img_frames)  # (B, d_img)
    txt = unit(np.stack([c.txt for c in clips]))  # (B, d_txt)
    act = unit(np.stack([c.act for c in clips]))  # (B, d_act)
    mix = np.concatenate([txt, img, act], axis=1)  # (B, d_mix)
    now = datetime.now(timezone.utc)
    tensor_type = schema.field("img_frames").type
    cols = {
        "clip_id": [c.clip_id for c in clips],
        "source": [c.source for c in clips],
        "video": [c.video for c in clips],
        "video_uri": [c.video_uri for c in clips],
        "start_s": [float(c.start_s) for c in clips],
        "end_s": [float(c.end_s) for c in clips],
        "split": [c.split for c in clips],
        "caption": [c.caption or "" for c in clips],
        "labels": [sorted(set(c.labels)) for c in clips],
        "label_vec": [label_vec(c.labels) for c in clips],
        "factors": [json.dumps(c.factors, sort_keys=True) for c in clips],
        "frames": [list(c.frames) for c in clips],
        "img_frames": pa.FixedShapeTensorArray.from_numpy_ndarray(img_frames).cast(tensor_type),
        "img": _fixed(img), "txt": _fixed(txt), "act": _fixed(act), "mix": _fixed(mix),
        "cond": [np.ascontiguousarray(c.cond, dtype=np.float16).tobytes() for c in clips],
        "cond_len": [int(c.cond.shape[0]) for c in clips],
        "ingested_at": [now] * len(clips),
    }
    arrays = [cols[f.name] if isinstance(cols[f.name], pa.Array) else pa.array(cols[f.name], type=f.type)
              for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def _fixed(m: np.ndarray) -> pa.FixedSizeListArray:
    m = np.ascontiguousarray(m, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(m.reshape(-1)), m.shape[1])


def fixed_to_numpy(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A fixed-size-list column as a (N, d) float32 matrix, without a Python loop."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    d = col.type.list_size
    return col.flatten().to_numpy(zero_copy_only=False).reshape(-1, d).astype(np.float32, copy=False)


def tensor_to_numpy(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    return col.to_numpy_ndarray()


def decode_cond(blob: bytes, dim: int) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float16).reshape(-1, dim)
