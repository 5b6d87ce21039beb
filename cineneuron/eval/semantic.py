"""Semantic accuracy: n-way top-k over classifier probabilities, and label-based accuracy.

n-way top-k follows MinD-Video's `n_way_top_k_acc`, which NeuroClips and later peers reuse:
a classifier (VideoMAE Kinetics-400 for video, an ImageNet ViT for frames) is run on the
reconstruction and on the ground truth. The ground truth's top classes are the "correct"
classes; each trial draws n−1 other classes at random (never a correct class) and counts a hit
when a correct class is within the top-k of {correct class} ∪ {n−1 others} on the
reconstruction's probabilities. A tie with a drawn class is a miss, as in MinD-Video (its
`argsort(...)[-top_k:]` puts the correct class, listed first, below an equal one) and as in our
retrieval: an all-equal prediction scores 0, not 1. Two variants:

- ``peer``: the ground truth's top-3 classes; one draw of n−1 others per trial, shared by the
  three; a hit if any of the three wins (MinD-Video/NeuroClips). Chance for 2-way is 0.75.
- ``strict``: the ground truth's top-1 class only. Chance for 2-way is 0.5.

Inputs are class-probability arrays, so this is classifier-agnostic.
"""

from __future__ import annotations

from math import comb

import numpy as np

from cineneuron.eval import as_numpy

VARIANT_GT_TOP = {"peer": 3, "strict": 1}


def _flatten_probs(x) -> np.ndarray:
    """(N, C) or (N, T, C) → (M, C): a frame-based metric counts every frame as one item."""
    a = as_numpy(x)
    return a.reshape(-1, a.shape[-1])


def n_way_chance(n_way: int, *, gt_top: int = 3, top_k: int = 1) -> float:
    """Exact chance of one trial when the classifier's scores are exchangeable (random).

    Hit iff fewer than `top_k` of the n−1 others beat the best of the `gt_top` correct classes.
    P(exactly j others come before the first correct class, in a random order of g + n − 1) =
    C(n−1, j) / C(g+n−1, j) · g / (g+n−1−j). For top_k = 1 this is g / (g + n − 1).
    """
    g, o = gt_top, n_way - 1
    return float(sum(comb(o, j) / comb(g + o, j) * g / (g + o - j) for j in range(min(top_k, o + 1))))


def _binomial_std(p: float, n: int) -> float:
    return float(np.sqrt(p * (1 - p) / n)) if n else float("nan")


def n_way_top_k(
    pred_probs,
    gt_probs,
    n_way: int,
    *,
    variant: str = "peer",
    top_k: int = 1,
    n_trials: int = 100,
    seed: int = 0,
) -> dict:
    """n-way top-k accuracy of reconstructions against ground truth, as in MinD-Video/NeuroClips.

    pred_probs, gt_probs: (N, C) class probabilities (video-based) or (N, T, C) (frame-based:
    each frame is one item). variant "peer" (gt top-3, hit if any wins) or "strict" (gt top-1).
    Returns value (mean hit rate over items and trials) and two error bars, each named:
    std_peer (= std), the peers' convention: MinD-Video returns √(p_i(1−p_i)/trials) per item and
    the papers report its mean over items; sem, the standard error of `value`: the spread of the
    per-item hit rates over √M (trials of one item are correlated, so pooling M·trials draws would
    understate it). Also std_items (that spread), chance (exact, `n_way_chance`), n and the variant.
    """
    if variant not in VARIANT_GT_TOP:
        raise ValueError(f"variant must be one of {sorted(VARIANT_GT_TOP)}")
    pred, gt = _flatten_probs(pred_probs), _flatten_probs(gt_probs)  # (M, C), (M, C)
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt probabilities differ in shape: {pred.shape} vs {gt.shape}")
    g = VARIANT_GT_TOP[variant]
    n_classes = pred.shape[1]
    if n_way - 1 > n_classes - g:
        raise ValueError(f"{n_way}-way needs at least {n_way - 1 + g} classes; the classifier has {n_classes}")
    rng = np.random.default_rng(seed)
    per_item = np.array([_item_accuracy(p, q, g, n_way, top_k, n_trials, rng) for p, q in zip(pred, gt)])
    acc = float(per_item.mean())
    std_peer = float(np.mean(np.sqrt(per_item * (1 - per_item) / n_trials)))
    sem = float(per_item.std(ddof=1) / np.sqrt(per_item.size)) if per_item.size > 1 else float("nan")
    return {
        "value": acc,
        "std": std_peer,
        "std_peer": std_peer,
        "sem": sem,
        "std_convention": "std = std_peer: mean over items of sqrt(p_i(1-p_i)/trials) (MinD-Video, NeuroClips); "
                          "sem: std of per-item hit rates / sqrt(items)",
        "std_items": float(per_item.std()),
        "sem_items": sem,
        "chance": n_way_chance(n_way, gt_top=g, top_k=top_k),
        "n": int(per_item.size),
        "n_trials": n_trials,
        "variant": f"{variant}: gt top-{g} vs {n_way - 1} random others, top-{top_k}, {n_trials} trials, ties miss",
    }


def _item_accuracy(pred, gt, g, n_way, top_k, n_trials, rng) -> float:
    """Hit rate of one item over `n_trials` draws of n−1 other classes (one draw per trial)."""
    correct = np.argsort(gt)[-g:]  # (g,) the ground truth's top-g classes
    others = np.setdiff1d(np.arange(gt.size), correct)  # classes a trial may draw
    hits = 0
    for _ in range(n_trials):
        picked = pred[others[rng.choice(others.size, n_way - 1, replace=False)]]  # (n−1,)
        # a correct class is within top-k iff fewer than k drawn classes score at least as high
        # (a tie is a miss, as in MinD-Video)
        hits += bool(((picked[None, :] >= pred[correct][:, None]).sum(1) < top_k).any())
    return hits / n_trials


def n_way_suite(pred_probs, gt_probs, *, ways=(2, 50), variants=("peer", "strict"), **kw) -> dict:
    """{"2way": {"peer": {...}, "strict": {...}}, "50way": {...}} for one classifier's outputs."""
    return {f"{n}way": {v: n_way_top_k(pred_probs, gt_probs, n, variant=v, **kw) for v in variants} for n in ways}


def monte_carlo_chance(
    n_way: int, *, variant: str = "peer", n_classes: int = 400, n_items: int = 2000,
    n_trials: int = 10, top_k: int = 1, seed: int = 0,
) -> float:
    """Chance by simulation: the same `n_way_top_k` on random (Dirichlet) probabilities.

    Trials of one item share its probabilities, so the estimate's noise is set mostly by the
    number of items (≈ 0.29/√n_items for strict 2-way), hence many items and few trials.
    """
    rng = np.random.default_rng(seed)
    pred = rng.dirichlet(np.ones(n_classes), size=n_items)  # (n_items, C)
    gt = rng.dirichlet(np.ones(n_classes), size=n_items)
    return n_way_top_k(pred, gt, n_way, variant=variant, n_trials=n_trials, top_k=top_k, seed=seed + 1)["value"]


# ---------------------------------------------------------------- label-based accuracy


def vote_weights(scores) -> np.ndarray:
    """Per-query weights of the retrieved memories from their scores: clip at 0, normalise.

    A query whose scores are all ≤ 0 gives its memories equal weight. scores: (Q, K) → (Q, K).
    """
    s = np.clip(as_numpy(scores), 0.0, None)  # (Q, K)
    total = s.sum(1, keepdims=True)
    uniform = np.full_like(s, 1.0 / s.shape[1])
    return np.where(total > 0, s / np.where(total > 0, total, 1.0), uniform)


def weighted_vote(memory_labels, scores) -> np.ndarray:
    """The reconstruction's label vector: Σ_j w_j · y_j over its K memories.

    memory_labels: (Q, K, L) multi-hot or one-hot; scores: (Q, K) → (Q, L), each entry the
    weighted share of memories carrying that label (in [0, 1]).
    """
    y = as_numpy(memory_labels)  # (Q, K, L)
    return np.einsum("qk,qkl->ql", vote_weights(scores), y)


def _permutation_chance(metric, vote, truth, n_perm: int, seed: int) -> float:
    """Mean of `metric(vote, truth[perm])` over random pairings of queries with truths."""
    rng = np.random.default_rng(seed)
    return float(np.mean([metric(vote, truth[rng.permutation(len(truth))]).mean() for _ in range(n_perm)]))


def _top1_hits(vote, truth):  # (Q, L), (Q, L) → (Q,)
    return truth[np.arange(len(vote)), vote.argmax(1)] > 0


def _jaccard(vote, truth, threshold=0.5):  # (Q, L), (Q, L) → (Q,)
    pred, true = vote >= threshold, truth > 0
    union = (pred | true).sum(1)
    return np.where(union > 0, (pred & true).sum(1) / np.maximum(union, 1), 1.0)


def label_accuracy_multihot(memory_labels, scores, truth, *, n_perm: int = 200, seed: int = 0) -> dict:
    """Label-based accuracy for multi-hot labels (e.g. the 15 superclasses).

    memory_labels: (Q, K, L) labels of each query's K retrieved memories; scores: (Q, K) their
    mixture scores; truth: (Q, L) the seen clip's labels. The reconstruction's labels are the
    score-weighted vote (`weighted_vote`). Two numbers:
    - top1: the vote's highest label is one of the truth's labels (queries with no true label
      are left out);
    - jaccard: |pred ∩ true| / |pred ∪ true| with pred = labels holding ≥ half the vote weight.
    Chance: the same metric with truths randomly re-paired to queries (`n_perm` permutations),
    which keeps both label distributions. No peer defines this metric; it is ours.
    """
    vote, true = weighted_vote(memory_labels, scores), as_numpy(truth)  # (Q, L), (Q, L)
    keep = true.sum(1) > 0
    out = {}
    for name, fn, v, t in (("top1", _top1_hits, vote[keep], true[keep]), ("jaccard", _jaccard, vote, true)):
        per = fn(v, t).astype(float)  # (Q',)
        val = float(per.mean()) if per.size else float("nan")
        out[name] = {
            "value": val,
            "std": float(per.std() / np.sqrt(per.size)) if per.size else float("nan"),
            "chance": _permutation_chance(fn, v, t, n_perm, seed) if per.size else float("nan"),
            "n": int(per.size),
            "variant": f"score-weighted vote of K={np.shape(memory_labels)[1]} memories, {name}",
        }
    return out


def label_accuracy_categorical(memory_labels, scores, truth, n_classes: int | None = None,
                               *, n_perm: int = 200, seed: int = 0) -> dict:
    """Label-based accuracy for one categorical factor (e.g. the action of the clip).

    memory_labels: (Q, K) integer class of each retrieved memory; scores: (Q, K); truth: (Q,)
    integer class. The reconstruction's class is the argmax of the score-weighted vote.
    Returns value (accuracy), std (binomial), chance (random re-pairing, `n_perm` permutations;
    close to Σ_c p_pred(c)·p_true(c)), n and the variant.
    """
    mem = np.asarray(as_numpy(memory_labels, None), dtype=int)  # (Q, K)
    true = np.asarray(as_numpy(truth, None), dtype=int)  # (Q,)
    c = int(n_classes or max(mem.max(), true.max()) + 1)
    vote = weighted_vote(np.eye(c)[mem], scores)  # (Q, C)
    pred = vote.argmax(1)  # (Q,)
    acc = float((pred == true).mean())
    rng = np.random.default_rng(seed)
    chance = float(np.mean([(pred == true[rng.permutation(true.size)]).mean() for _ in range(n_perm)]))
    return {
        "value": acc,
        "std": _binomial_std(acc, true.size),
        "chance": chance,
        "n": int(true.size),
        "variant": f"score-weighted vote of K={mem.shape[1]} memories, argmax class",
    }


def paired_bootstrap_diff(a, b, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """mean(a) - mean(b) for paired per-sample scores ("value"), with a percentile bootstrap CI
    ("low", "high") that resamples samples, so both methods' scores stay paired."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)  # (n,), (n,)
    if a.shape != b.shape:
        raise ValueError(f"paired scores need the same samples: {a.shape} vs {b.shape}")
    n = len(a)
    if n == 0:
        return {"value": float("nan"), "low": float("nan"), "high": float("nan"), "n": 0, "level": level}
    d = a - b
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))  # (n_boot, n)
    boots = d[idx].mean(axis=1)
    lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return {"value": float(d.mean()), "low": float(lo), "high": float(hi), "n": n, "level": level}
