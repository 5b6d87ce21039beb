"""Stage-1 losses: pure functions of tensors.

- `info_nce`: symmetric InfoNCE (CLIP loss) over L2-normalised vectors; row i of `pred` and row i
  of `target` are the positive pair, every other row in the batch a negative.
- `bce_loss`, `focal_loss`, `category_loss` (= BCE + focal): multi-label loss over the 15
  superclasses.
- `stage1_loss`: the weighted sum of the four tasks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as fn


def info_nce(pred: torch.Tensor, target: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """Symmetric InfoNCE: mean of the pred->target and target->pred cross-entropies.

    pred, target: (B, d). Both are L2-normalised here; logits are cosines / temperature.
    """
    p = fn.normalize(pred.float(), dim=-1)  # (B, d)
    t = fn.normalize(target.float(), dim=-1)  # (B, d)
    logits = p @ t.T / temperature  # (B, B): row i = pred i against every target
    labels = torch.arange(logits.shape[0], device=logits.device)  # (B,)
    return 0.5 * (fn.cross_entropy(logits, labels) + fn.cross_entropy(logits.T, labels))


def bce_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy with logits over every (sample, class). logits, targets: (B, C)."""
    return fn.binary_cross_entropy_with_logits(logits.float(), targets.float())


def focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, gamma: float = 2.0, alpha: float | None = None
) -> torch.Tensor:
    """Sigmoid focal loss (Lin et al. 2017), mean over every (sample, class).

        FL = alpha_t * (1 - p_t)^gamma * BCE,   p_t = p*y + (1-p)*(1-y)
        alpha_t = alpha*y + (1-alpha)*(1-y), or 1 when alpha is None

    With gamma=0 and alpha=None it is exactly `bce_loss`.
    """
    x, y = logits.float(), targets.float()  # (B, C)
    ce = fn.binary_cross_entropy_with_logits(x, y, reduction="none")  # (B, C)
    if gamma != 0:
        p = torch.sigmoid(x)  # (B, C)
        p_t = p * y + (1 - p) * (1 - y)  # (B, C)
        ce = ce * (1 - p_t) ** gamma  # (B, C)
    if alpha is not None:
        ce = ce * (alpha * y + (1 - alpha) * (1 - y))  # (B, C)
    return ce.mean()


def category_loss(
    logits: torch.Tensor, targets: torch.Tensor, gamma: float = 2.0, alpha: float | None = None
) -> torch.Tensor:
    """The category-learning loss of the method: BCE + focal loss over the 15 superclasses."""
    return bce_loss(logits, targets) + focal_loss(logits, targets, gamma, alpha)


@dataclass
class LossWeights:
    """How `stage1_loss` combines the tasks.

    lambda_act: weight of the action-alignment InfoNCE (paper 0.1).
    lambda_cls: weight of the category loss, BCE + focal (paper 10).
    The paper gives the two weights as "0.1 and 10" in the order action, category; reading 0.1 as
    the action weight and 10 as the category weight is our interpretation (it is also the one that
    puts the terms on a similar scale: InfoNCE ~ log B, the per-class BCE much smaller).
    Image and text alignment have weight 1.
    """

    temperature: float = 0.07
    lambda_act: float = 0.1
    lambda_cls: float = 10.0
    use_action: bool = True  # False: ablation without the action task
    use_cls: bool = True  # False: ablation without category learning
    focal_gamma: float = 2.0
    focal_alpha: float | None = None


def stage1_loss(
    outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor], weights: LossWeights | None = None
) -> dict[str, torch.Tensor]:
    """Stage-1 objective.

        loss = InfoNCE(img) + InfoNCE(txt) + lambda_act * InfoNCE(act) + lambda_cls * (BCE + focal)

    outputs: the model's dict: img (B, d_img), txt (B, d_txt), act (B, d_act), cls_logits (B, 15).
    targets: img (B, d_img) the *pooled* frame target (BrainModel.pool_image_targets), txt
    (B, d_txt), act (B, d_act), label_vec (B, 15) multi-hot.
    Returns {"loss": total, "img", "txt", and "act" / "cls" when enabled}: unweighted task losses.
    """
    w = weights or LossWeights()
    parts = {
        "img": info_nce(outputs["img"], targets["img"], w.temperature),
        "txt": info_nce(outputs["txt"], targets["txt"], w.temperature),
    }
    total = parts["img"] + parts["txt"]
    if w.use_action:
        parts["act"] = info_nce(outputs["act"], targets["act"], w.temperature)
        total = total + w.lambda_act * parts["act"]
    if w.use_cls:
        parts["cls"] = category_loss(outputs["cls_logits"], targets["label_vec"], w.focal_gamma, w.focal_alpha)
        total = total + w.lambda_cls * parts["cls"]
    return {"loss": total, **parts}
