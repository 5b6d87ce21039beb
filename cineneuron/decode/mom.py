"""Mixture-of-Memories retrieval (DESIGN section 1, stage 2): numpy only.

The router maps the fMRI embedding F to weights w = (w_t, w_i, w_a). Because every term of the
mixture score is a cosine,

    s_j = w_t cos(q_t, T_j) + w_i cos(q_i, I_j) + w_a cos(q_a, A_j) = < [w_t q̂_t, w_i q̂_i, w_a q̂_a], mix_j >

so retrieval is one maximum-inner-product search over the store's `mix` column. The router itself
(torch) is in `cineneuron.decode.router`; retrieval needs only its weights.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from cineneuron.store.scan import scan

from cineneuron.schemas.presets import SPACES as MODS  # ("txt", "img", "act"): the order of `mix`


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def mix_query(preds: dict[str, np.ndarray]) -> np.ndarray:
    """[w_t q̂_t, w_i q̂_i, w_a q̂_a] (B, d_mix) from head outputs (B, d) and router weights `w` (B, 3)."""
    w = np.asarray(preds["w"], dtype=np.float32)
    return np.concatenate([unit(preds[m]) * w[:, i:i + 1] for i, m in enumerate(MODS)], axis=-1)


@dataclass
class Memory:
    clip_id: str
    source: str
    caption: str
    score: float  # mixture score
    cos_txt: float
    cos_img: float
    cos_act: float
    labels: list[str]
    video: str
    start_s: float
    end_s: float


@dataclass
class QueryResult:
    sample: str
    weights: dict[str, float]  # router weights
    memories: list[Memory]  # best first

    def to_dict(self) -> dict:
        return {"sample": self.sample, "weights": self.weights, "memories": [asdict(m) for m in self.memories]}


def split_mix(mix: np.ndarray, space_dims: dict[str, int]) -> list[np.ndarray]:
    """[txt, img, act] parts of `mix` (..., d_mix); space_dims: `store.preset.space_dims()`."""
    a, b = space_dims["txt"], space_dims["txt"] + space_dims["img"]
    return [mix[..., :a], mix[..., a:b], mix[..., b:]]


def retrieve(store, preds: dict[str, np.ndarray], k: int, *, where: str | None = None,
             exclude: list[list[str]] | None = None, exact: bool | None = None,
             sample_names: list[str] | None = None, guard: str | None = None) -> list[QueryResult]:
    """preds: numpy `txt`, `img`, `act` head outputs (B, d) and router `w` (B, 3).

    guard: the test-clip filter, applied by the store on its own besides `where`."""
    q = mix_query(preds)
    res = store.search_mix(q, k, where=where, exclude=exclude, exact=exact, guard=guard)
    ids = sorted({c for row in res.clip_ids for c in row if c})
    rows = store.get_clips(ids, ["source", "caption", "mix", "labels", "video", "start_s", "end_s"]).to_pylist() if ids else []
    by_id = {r["clip_id"]: r for r in rows}
    qs = [unit(preds[m]) for m in MODS]
    spaces = store.preset.space_dims()
    out = []
    for b, row in enumerate(res.clip_ids):
        mems = []
        for j, cid in enumerate(row):
            if not cid:
                continue
            r = by_id[cid]
            parts = split_mix(np.asarray(r["mix"], dtype=np.float32), spaces)
            cos = [float(qs[m][b] @ parts[m]) for m in range(3)]
            mems.append(Memory(cid, r["source"], r["caption"], float(res.scores[b, j]), *cos, r["labels"],
                               r["video"], r["start_s"], r["end_s"]))
        w = preds["w"][b]
        out.append(QueryResult(sample_names[b] if sample_names else str(b),
                               {"txt": float(w[0]), "img": float(w[1]), "act": float(w[2])}, mems))
    return out


def overlapping_ids(store, clip_ids: list[str]) -> list[list[str]]:
    """For each clip, itself plus the clips overlapping it in time in the same source video.

    Used while training stage 2, so the model learns from neighbours, as it must at test time.
    """
    meta = scan(store.clips, ["clip_id", "source", "video", "start_s", "end_s"]).to_pylist()
    by_video: dict[tuple[str, str], list[dict]] = {}
    for r in meta:
        by_video.setdefault((r["source"], r["video"]), []).append(r)
    me = {r["clip_id"]: r for r in meta}
    out = []
    for cid in clip_ids:
        r = me[cid]
        out.append([o["clip_id"] for o in by_video[(r["source"], r["video"])]
                    if o["start_s"] < r["end_s"] and o["end_s"] > r["start_s"]])
    return out
