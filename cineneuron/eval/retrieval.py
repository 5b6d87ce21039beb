"""Retrieval top-1 among a pool of 300, as in MindEye2 and NeuroClips.

Definition (MindEye2 `final_evaluations`, NeuroClips eval): draw a subset of 300 test items
without replacement; L2-normalise both embedding sets; `sim = pred @ target.T` (cosine).
Forward (fMRI→clip): for each fMRI prediction, is its own clip the most similar of the 300 clips.
Backward (clip→fMRI): for each clip, is its own fMRI prediction the most similar of the 300
predictions. The score is the fraction correct in a subset, averaged over `n_subsets` subsets
(MindEye2 uses 30). With fewer than 300 items, the pool is all items (one subset, no sampling)
and the result says which pool size was used; chance is 1/pool.
"""

from __future__ import annotations

import numpy as np

from cineneuron.eval import as_numpy

PAPER_POOL = 300
PAPER_SUBSETS = 30


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def cosine_matrix(pred, target) -> np.ndarray:
    """(N, N) cosine similarities, rows = predictions, columns = targets."""
    p, t = _unit(as_numpy(pred)), _unit(as_numpy(target))  # (N, D), (N, D)
    return p @ t.T  # (N, N)


def _top1_fraction(sim: np.ndarray) -> float:
    """Fraction of rows whose diagonal entry is the row maximum (ties count as misses).

    A tie is a miss unless the diagonal is the unique maximum, so identical embeddings for two
    different items cannot score above chance by the order they happen to be stored in.
    """
    diag = np.diag(sim)[:, None]  # (n, 1)
    beaten = (sim > diag).sum(1) + ((sim == diag).sum(1) - 1)  # others at least as similar
    return float((beaten == 0).mean())


def retrieval_ranks(pred, target, direction: str = "forward") -> np.ndarray:
    """0-based rank of the correct item among all N items (0 = retrieved first), per query.

    Ties are counted against the query (pessimistic rank), as in `_top1_fraction`.
    """
    sim = cosine_matrix(pred, target)  # (N, N)
    sim = sim if direction == "forward" else sim.T
    diag = np.diag(sim)[:, None]
    return ((sim > diag).sum(1) + (sim == diag).sum(1) - 1).astype(int)  # (N,)


def retrieval_top1(
    pred,
    target,
    *,
    direction: str = "forward",
    pool: int = PAPER_POOL,
    n_subsets: int = PAPER_SUBSETS,
    seed: int = 0,
    return_ranks: bool = False,
) -> dict:
    """Top-1 retrieval accuracy among `pool` items, averaged over random subsets.

    pred: (N, D) embeddings predicted from fMRI; target: (N, D) embeddings of the seen clips,
    row i of both belonging to test item i. direction "forward" ranks targets for each
    prediction (fMRI→clip), "backward" ranks predictions for each target (clip→fMRI).
    Matches MindEye2/NeuroClips top-1 of 300 when N ≥ 300 (their 30 subsets by default).
    Returns value, std over subsets, pool_size, n_subsets, chance (1/pool_size) and the variant.
    """
    if direction not in ("forward", "backward"):
        raise ValueError("direction must be 'forward' or 'backward'")
    p, t = as_numpy(pred), as_numpy(target)
    if p.ndim != 2 or p.shape != t.shape:
        raise ValueError(f"pred and target must both be (N, D); got {p.shape} and {t.shape}")
    n = p.shape[0]
    size = min(pool, n)
    subsets = 1 if size == n else n_subsets  # all items: every subset would be the same
    rng = np.random.default_rng(seed)
    scores = []
    for _ in range(subsets):
        idx = np.arange(n) if size == n else rng.choice(n, size=size, replace=False)  # (size,)
        sim = cosine_matrix(p[idx], t[idx])  # (size, size)
        scores.append(_top1_fraction(sim if direction == "forward" else sim.T))
    out = {
        "value": float(np.mean(scores)),
        "std": float(np.std(scores)),
        "pool_size": int(size),
        "n_subsets": int(subsets),
        "n": int(n),
        "chance": 1.0 / size,
        "variant": f"top1-of-{size}, {direction}, cosine, mean of {subsets} random subsets",
        "direction": direction,
    }
    if return_ranks:
        out["ranks"] = retrieval_ranks(p, t, direction).tolist()
    return out


def retrieval_both(pred, target, **kw) -> dict:
    """Forward and backward top-1 (same subsets, same seed): {"forward": {...}, "backward": {...}}."""
    return {d: retrieval_top1(pred, target, direction=d, **kw) for d in ("forward", "backward")}
