"""Stage-1 validation: retrieval among 300 per target space, and superclass accuracy.

Used every few epochs during training, for the ridge baseline beside it, and by `cn eval`, so
the learned model and the baseline are always measured the same way.
"""

from __future__ import annotations

import numpy as np

from cineneuron.eval.retrieval import DEFAULT_PROTOCOL, DIRECTIONS, retrieval_top1
from cineneuron.schemas.superclasses import SUPERCLASSES

SPACES = ("img", "txt", "act")


def retrieval_metrics(preds: dict[str, np.ndarray], targets: dict[str, np.ndarray], seed: int = 0,
                      protocol: str = DEFAULT_PROTOCOL) -> dict:
    """fMRI→clip and clip→fMRI top-1 (of 300, or of all items when fewer) for each space:
    keys like img_fmri_to_clip, plus pool_size, chance and the subset protocol."""
    out = {}
    for s in SPACES:
        if s not in preds:
            continue
        for d in DIRECTIONS:
            r = retrieval_top1(preds[s], targets[s], direction=d, seed=seed, protocol=protocol)
            out[f"{s}_{d}"] = r["value"]
            out["pool_size"] = r["pool_size"]
            out["chance"] = r["chance"]
            out["protocol"] = protocol
    return out


def superclass_metrics(cls_probs: np.ndarray, label_vec: np.ndarray) -> dict:
    """Per-class balanced accuracy at 0.5 for the classes present in the split, and the mean."""
    pred = cls_probs >= 0.5
    truth = label_vec >= 0.5
    per = {}
    for i, name in enumerate(SUPERCLASSES):
        pos, neg = truth[:, i], ~truth[:, i]
        if pos.sum() == 0 or neg.sum() == 0:
            continue
        per[name] = float(0.5 * (pred[pos, i].mean() + (~pred[neg, i]).mean()))
    return {"superclass_balanced_acc": float(np.mean(list(per.values()))) if per else float("nan"),
            "superclass_per_class": per}


def evaluate(preds: dict[str, np.ndarray], targets: dict[str, np.ndarray], seed: int = 0,
             protocol: str = DEFAULT_PROTOCOL) -> dict:
    out = retrieval_metrics(preds, targets, seed, protocol)
    if "cls_probs" in preds and "label_vec" in targets:
        out.update(superclass_metrics(preds["cls_probs"], targets["label_vec"]))
    return out
