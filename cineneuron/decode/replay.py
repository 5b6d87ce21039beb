"""The replay decoder: a reconstruction blended from the retrieved clips' own frames.

This is the averaged-prior reconstruction of Nishimoto et al. (2011): the top-k memories'
preview frames, averaged with weights softmax(s_j / T) over their mixture scores.
"""

from __future__ import annotations

import io

import numpy as np


def decode_jpegs(blobs: list[bytes]) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in blobs])  # (P, H, W, 3)


def blend_weights(scores: np.ndarray, temperature: float) -> np.ndarray:
    z = (np.asarray(scores, dtype=np.float64) - np.max(scores)) / temperature
    w = np.exp(z)
    return w / w.sum()


def blend(videos: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    stack = np.stack([v.astype(np.float32) for v in videos])  # (k, P, H, W, 3)
    out = np.tensordot(weights.astype(np.float32), stack, axes=1)  # (P, H, W, 3)
    return np.clip(out.round(), 0, 255).astype(np.uint8)


class ReplayDecoder:
    name = "replay"

    def __init__(self, temperature: float = 0.05):
        self.temperature = temperature

    def memory_frames(self, store, clip_ids: list[str]) -> dict[str, np.ndarray]:
        rows = store.get_clips(list(dict.fromkeys(clip_ids)), ["frames"]).to_pylist()
        return {r["clip_id"]: decode_jpegs(r["frames"]) for r in rows}

    def decode(self, store, results: list, preds: dict | None = None) -> list[np.ndarray]:
        """preds (the queries' model outputs) are not needed: replay blends the memories alone."""
        ids = [m.clip_id for r in results for m in r.memories]
        frames = self.memory_frames(store, ids) if ids else {}
        out = []
        for r in results:
            if not r.memories:
                raise ValueError(f"query {r.sample} retrieved no memories; is the pool empty or the filter too strict?")
            w = blend_weights(np.array([m.score for m in r.memories]), self.temperature)
            out.append(blend([frames[m.clip_id] for m in r.memories], w))
        return out
