"""Retrieval top-1 among a pool of 300, as in MindEye2 and NeuroClips.

Definition: L2-normalise both embedding sets; sim = pred @ target.T (cosine; rows = fMRI
predictions, columns = clips). Directions are named by what they rank:

- ``fmri_to_clip``: for each fMRI prediction, is its own clip the most similar of the pool's clips;
- ``clip_to_fmri``: for each clip, is its own fMRI prediction the most similar of the predictions.

MindEye2 and NeuroClips call `batchwise_cosine_similarity(brain, clip)`, which returns the
*transposed* matrix (rows = clips), and rank along its rows: their "forward" is clip→fMRI and
their "backward" is fMRI→clip (`PEER_NAME`). The place-against-the-paper table maps them.

Subsets of the test set (`protocol`):
- ``neuroclips`` (default, as the paper and NeuroClips): contiguous blocks of 300 test items in
  time order (their loader's batch_size=300, shuffle=False; cc2017's 1200 test clips give 4);
  a last block shorter than 300 is left out (its chance would differ), and the result says so;
- ``mindeye2``: `n_subsets` (30) random subsets of 300 without replacement.
On temporally correlated clips the two differ: a contiguous block holds each clip's
neighbours, which are hard distractors. With fewer than 300 items, the pool is all items (one
subset) and the result says which pool size was used; chance is 1/pool. Ties count as misses.
"""

from __future__ import annotations

import numpy as np

from cineneuron.eval import as_numpy

PAPER_POOL = 300
PAPER_SUBSETS = 30
DIRECTIONS = ("fmri_to_clip", "clip_to_fmri")
PEER_NAME = {"clip_to_fmri": "forward", "fmri_to_clip": "backward"}  # MindEye2 / NeuroClips naming
PROTOCOLS = ("neuroclips", "mindeye2")
DEFAULT_PROTOCOL = "neuroclips"


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def cosine_matrix(pred, target) -> np.ndarray:
    """(N, N) cosine similarities, rows = predictions, columns = targets."""
    p, t = _unit(as_numpy(pred)), _unit(as_numpy(target))  # (N, D), (N, D)
    return p @ t.T  # (N, N)


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)} (got {direction!r})")


def _oriented(sim: np.ndarray, direction: str) -> np.ndarray:
    """Rows = queries: fMRI predictions for fmri_to_clip, clips for clip_to_fmri."""
    return sim if direction == "fmri_to_clip" else sim.T


def _top1_fraction(sim: np.ndarray) -> float:
    """Fraction of rows whose diagonal entry is the row maximum (ties count as misses).

    A tie is a miss unless the diagonal is the unique maximum, so identical embeddings for two
    different items cannot score above chance by the order they happen to be stored in.
    """
    diag = np.diag(sim)[:, None]  # (n, 1)
    beaten = (sim > diag).sum(1) + ((sim == diag).sum(1) - 1)  # others at least as similar
    return float((beaten == 0).mean())


def retrieval_ranks(pred, target, direction: str = "fmri_to_clip") -> np.ndarray:
    """0-based rank of the correct item among all N items (0 = retrieved first), per query.

    Ties are counted against the query (pessimistic rank), as in `_top1_fraction`.
    """
    _check_direction(direction)
    sim = _oriented(cosine_matrix(pred, target), direction)  # (N, N)
    diag = np.diag(sim)[:, None]
    return ((sim > diag).sum(1) + (sim == diag).sum(1) - 1).astype(int)  # (N,)


def subset_indices(n: int, protocol: str = DEFAULT_PROTOCOL, *, pool: int = PAPER_POOL,
                   n_subsets: int = PAPER_SUBSETS, seed: int = 0) -> list[np.ndarray]:
    """The test-item subsets each protocol scores (items in time order). See the module docstring."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"retrieval protocol must be one of {', '.join(PROTOCOLS)} (got {protocol!r})")
    if n <= pool:
        return [np.arange(n)]  # every subset would be the same: all items
    if protocol == "neuroclips":
        return [np.arange(b * pool, (b + 1) * pool) for b in range(n // pool)]
    rng = np.random.default_rng(seed)
    return [rng.choice(n, size=pool, replace=False) for _ in range(n_subsets)]


def _variant(size: int, direction: str, protocol: str, k: int, left_out: int) -> str:
    how = (f"{k} contiguous blocks in time order" if protocol == "neuroclips" else f"{k} random subsets")
    if k == 1:
        how = "all items"
    tail = f", last {left_out} items left out" if left_out else ""
    return (f"top1-of-{size}, {direction} (peers' {PEER_NAME[direction]}), cosine, "
            f"{protocol}: mean of {how}{tail}")


def retrieval_top1(
    pred,
    target,
    *,
    direction: str = "fmri_to_clip",
    protocol: str = DEFAULT_PROTOCOL,
    pool: int = PAPER_POOL,
    n_subsets: int = PAPER_SUBSETS,
    seed: int = 0,
    return_ranks: bool = False,
) -> dict:
    """Top-1 retrieval accuracy among `pool` items, averaged over the protocol's subsets.

    pred: (N, D) embeddings predicted from fMRI; target: (N, D) embeddings of the seen clips,
    row i of both belonging to test item i, items in time order. direction: fmri_to_clip or
    clip_to_fmri; protocol: neuroclips (contiguous blocks) or mindeye2 (random subsets).
    Returns value, std over subsets, pool_size, n_subsets, chance (1/pool_size), direction,
    peer_name (what MindEye2/NeuroClips call this direction), protocol and the variant.
    """
    _check_direction(direction)
    p, t = as_numpy(pred), as_numpy(target)
    if p.ndim != 2 or p.shape != t.shape:
        raise ValueError(f"pred and target must both be (N, D); got {p.shape} and {t.shape}")
    n = p.shape[0]
    subsets = subset_indices(n, protocol, pool=pool, n_subsets=n_subsets, seed=seed)
    size = len(subsets[0])
    scores = [_top1_fraction(_oriented(cosine_matrix(p[idx], t[idx]), direction)) for idx in subsets]
    left_out = n - size * len(subsets) if protocol == "neuroclips" else 0
    out = {
        "value": float(np.mean(scores)),
        "std": float(np.std(scores)),
        "pool_size": int(size),
        "n_subsets": len(subsets),
        "n": int(n),
        "chance": 1.0 / size,
        "variant": _variant(size, direction, protocol, len(subsets), left_out),
        "direction": direction,
        "peer_name": PEER_NAME[direction],
        "protocol": protocol,
    }
    if return_ranks:
        out["ranks"] = retrieval_ranks(p, t, direction).tolist()
    return out


def retrieval_both(pred, target, **kw) -> dict:
    """Both directions (same subsets): {"fmri_to_clip": {...}, "clip_to_fmri": {...}}."""
    return {d: retrieval_top1(pred, target, direction=d, **kw) for d in DIRECTIONS}
