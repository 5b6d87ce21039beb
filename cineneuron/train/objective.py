"""Each stage's whole loss as one nn.Module forward, so DistributedDataParallel can wrap it.

DDP hooks the parameters that the wrapped module's forward uses. Stage 1's loss reaches the
frame-pool logits from the target side (`pool_image_targets`), and stage 2's reaches the router
outside the Brain Model's forward; computing the loss inside one forward puts every trained
parameter on DDP's graph. Parameters a stage's loss can never reach (`stage1_unused`,
`stage2_unused`) are frozen while DDP is built, so its reducer does not wait for them; one
process never needs that (AdamW skips a parameter without a gradient).

The single-process trainers call the same modules unwrapped: one code path, the same numbers.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from cineneuron.brain.losses import LossWeights, stage1_loss
from cineneuron.brain.mlp import subject_key


class Stage1Objective(nn.Module):
    """forward(voxels, subject, targets) -> stage1_loss's dict; targets hold raw `img_frames`."""

    def __init__(self, model: nn.Module, weights: LossWeights, autocast=contextlib.nullcontext):
        super().__init__()
        self.model, self.weights, self.autocast = model, weights, autocast

    def forward(self, voxels: torch.Tensor, subject: str, targets: dict) -> dict[str, torch.Tensor]:
        t = dict(targets)
        t["img"] = self.model.pool_image_targets(t.pop("img_frames"))  # (B, d_img): the frame pool learns here
        with self.autocast():
            out = self.model(voxels, subject)
        out = {k: v.float() for k, v in out.items()}
        return stage1_loss(out, t, self.weights)


class Stage2Objective(nn.Module):
    """The replay stage 2 loss: stage 1's + lambda_router * the router's InfoNCE (see stage2.py).

    forward(batch, fold_batch) -> {"loss", "router", "w"}; fold_batch is None unless the router
    learns from the held-out fold (train.router_holdout > 0).
    """

    def __init__(self, model: nn.Module, router: nn.Module, weights: LossWeights, pool: torch.Tensor,
                 subject: str, temperature: float, lambda_router: float):
        super().__init__()
        self.model, self.router, self.weights = model, router, weights
        self.pool, self.subject, self.temperature, self.lambda_router = pool, subject, temperature, lambda_router

    def forward(self, batch: dict, fold_batch: dict | None = None) -> dict[str, torch.Tensor]:
        from cineneuron.decode.router import query_vector, router_infonce
        from cineneuron.train.loop import fold_router_loss

        model = self.model
        out = model(batch["voxels"], self.subject)
        tgt = {"img": model.pool_image_targets(batch["img_frames"]), "txt": batch["txt"],
               "act": batch["act"], "label_vec": batch["label_vec"]}
        losses = stage1_loss(out, tgt, self.weights)
        w = self.router(out["F"])  # (B, 3)
        if fold_batch is None:  # the router learns from the fitted predictions
            l_router = router_infonce(query_vector(out["txt"], out["img"], out["act"], w), self.pool,
                                      batch["clip_row"], self.temperature)
            loss = losses["loss"] + self.lambda_router * l_router
        else:
            # The backbone learns to retrieve under the router's weights; the router learns only
            # from the held-out fold, whose predictions are out-of-sample.
            q = query_vector(out["txt"], out["img"], out["act"], w.detach())
            l_fit = router_infonce(q, self.pool, batch["clip_row"], self.temperature)
            l_router = fold_router_loss(model, self.router, fold_batch, self.subject, self.pool, self.temperature)
            loss = losses["loss"] + self.lambda_router * (l_fit + l_router)
        return {"loss": loss, "router": l_router, "w": w}


def _other_subjects(model, subject: str) -> list[nn.Parameter]:
    keep = subject_key(subject)
    return [p for k, m in model.backbone.subject_in.items() if k != keep for p in m.parameters()]


def _off_heads(model, weights: LossWeights, act_used: bool) -> list[nn.Parameter]:
    heads = model.heads
    off = [] if weights.use_cls else list(heads.cls.parameters())
    return off + ([] if act_used else list(heads.act.parameters()))


def stage1_unused(model, subject: str, weights: LossWeights) -> list[nn.Parameter]:
    """What stage 1's loss never reaches: F's projection (stage 2's router reads F), the heads of
    switched-off tasks, other subjects' input layers."""
    return (list(model.backbone.to_tokens.parameters()) + _off_heads(model, weights, weights.use_action)
            + _other_subjects(model, subject))


def stage2_unused(model, subject: str, weights: LossWeights) -> list[nn.Parameter]:
    """Stage 2 uses F (the router) and the act head (the query vector) always."""
    return _off_heads(model, weights, True) + _other_subjects(model, subject)


def freeze(params: list[nn.Parameter]):
    """requires_grad off for `params` (DDP registers only trainable ones); returns the undo."""
    was = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)

    def restore() -> None:
        for p, w in zip(params, was):
            p.requires_grad_(w)

    return restore


def ddp(module: nn.Module, device: torch.device):
    """DistributedDataParallel over the process group torchrun set up (gloo on CPU, NCCL on GPU)."""
    from torch.nn.parallel import DistributedDataParallel

    ids = [device] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)
