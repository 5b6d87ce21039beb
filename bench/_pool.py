"""Shared bench helpers: a store of random unit-vector memories written through the store API.

The encoders here are placeholders that only give the preset an identity: benches write
precomputed random vectors, so the numbers measure the store, not an encoder.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

# Lance's k-means warns for every empty IVF partition of a large random pool; the benches print
# tables, so keep Lance's own log to errors unless the caller asks for more.
os.environ.setdefault("LANCEDB_LOG", "error")

from cineneuron.encoders.registry import Encoder, register
from cineneuron.schemas.records import clip_id
from cineneuron.store import EncodedClip, Store

DIMS = {"image": 256, "text": 256, "action": 256, "cond": 16}  # mix = 768, as in the LanceDB notes


for _m in ("image", "text", "action", "cond"):
    register(f"bench-{_m}")(type(f"Bench{_m.title()}", (Encoder,), {"modality": _m}))


def bench_store(root: Path, name: str = "bench") -> Store:
    preset = {"name": name, "frames": {"n": 1, "size": 8},
              "encoders": {m: {"name": f"bench-{m}", "dim": d} for m, d in DIMS.items()}}
    p = root / f"{name}.json"
    p.write_text(json.dumps(preset))
    return Store.create(str(root / "store"), str(p))


def random_rows(n: int, start: int, rng: np.random.Generator, n_concepts: int = 1000) -> list[EncodedClip]:
    """Memories around `n_concepts` shared concepts: a clip's text, image and action vectors come
    from the same concept (as real modalities agree), plus independent noise per modality.

    Independent clusters per modality would make the 768-d `mix` structureless noise, the worst
    case for any index and unlike real embeddings.
    """
    concept = rng.integers(0, n_concepts, n)  # (n,)

    def vecs(d, seed):
        centres = np.random.default_rng(seed).normal(size=(n_concepts, d)).astype(np.float32)
        return centres[concept] + 0.5 * rng.normal(size=(n, d)).astype(np.float32)

    img, txt, act = vecs(DIMS["image"], 1), vecs(DIMS["text"], 2), vecs(DIMS["action"], 3)
    cond = np.zeros((1, DIMS["cond"]), np.float16)
    return [EncodedClip(clip_id=clip_id("bench", f"v{i}", 0.0, 2.0), source="bench", video=f"v{i}", video_uri="",
                        start_s=0.0, end_s=2.0, split="pool", caption="", labels=[],
                        img_frames=img[j:j + 1], txt=txt[j], act=act[j], cond=cond)
            for j, i in enumerate(range(start, start + n))]


def fill(store: Store, n: int, batch: int = 10_000, seed: int = 0) -> float:
    """Write n rows in batches; returns rows/s of the upserts alone."""
    rng = np.random.default_rng(seed)
    have = store.count()
    spent = 0.0
    for s in range(have, n, batch):
        rows = random_rows(min(batch, n - s), s, rng)
        t = time.perf_counter()
        store.upsert_clips(rows)
        spent += time.perf_counter() - t
    return (n - have) / spent if spent else float("nan")


def timeit(fn, repeat: int) -> np.ndarray:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return np.array(out)


def numpy_topk(matrix: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    """The bare compute: one matmul and a partial sort, no store around it."""
    s = q @ matrix.T
    part = np.argpartition(-s, k - 1, axis=1)[:, :k]
    return np.take_along_axis(part, np.argsort(-np.take_along_axis(s, part, 1), axis=1), 1)


def recall_at_k(approx: list[list[str]], exact: list[list[str]]) -> float:
    return float(np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(approx, exact)]))


def tmpdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))
