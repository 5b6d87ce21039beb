"""The Wan stage-2 loss as one nn.Module, so DistributedDataParallel can wrap it.

`WanStage2Objective` holds the Brain Model, router, fusion and the DiT (whose base weights are
frozen; only its LoRA learns). Called with a batch it runs everything but the DiT (the stage-1
losses, the router InfoNCE over the full training pool, retrieval, fusion: `WanStage2._forward`);
called with `x0=`, `c=` it runs one micro-batch through the DiT for the flow-matching loss.

`accumulate` is the backward both paths share (one process calls the module unwrapped, so the
numbers are today's): the DiT runs `micro_batch` samples at a time and each micro-batch's
backward frees its activations. Under DDP every call but the last runs inside `no_sync()`, so the
gradients accumulate locally and DDP all-reduces them once, in the last backward, which reaches
every trained parameter through the retained graph (`l_fm + rest`). `find_unused_parameters` is
not needed: what stage 2 cannot reach is frozen (`objective.stage2_unused`), and the frozen base
DiT is in DDP's ignore list (never broadcast, never reduced; every rank loads the same weights).
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from cineneuron.train import wan_lora as wt


class WanStage2Objective(nn.Module):
    """forward(batch, fold_batch) -> (rest, logs, C, x0, has); forward(x0=, c=, generator=) -> flow loss."""

    def __init__(self, parts, weights):
        super().__init__()
        self.model, self.router, self.fusion = parts.model, parts.router, parts.fusion
        self.transformer = parts.transformer
        self.parts, self.weights = parts, weights  # WanStage2 is a plain dataclass: not a submodule

    def forward(self, batch: dict | None = None, fold_batch: dict | None = None, *, x0=None, c=None, generator=None):
        if x0 is None:
            return self.parts._forward(batch, self.weights, fold_batch)
        return wt.flow_matching_loss(self.transformer, self.parts.scheduler, x0, c, generator)


def accumulate(objective, parts, batch: dict, generator=None, fold_batch: dict | None = None,
               micro_batch: int | None = None) -> dict:
    """Gradients of the stage-2 objective on one batch (the rank's slice under DDP); float logs."""
    in_ddp = hasattr(objective, "no_sync")
    local = objective.no_sync if in_ddp else contextlib.nullcontext
    truth = bool(parts.cache.get(batch["clip_id"]))  # will the DiT run? (memoised: the forward reads it again)
    with local() if truth else contextlib.nullcontext():
        rest, logs, c, x0, has = objective(batch, fold_batch)
    if not has:
        if in_ddp:  # no ground truth on this rank: LoRA and fusion join the reduction with zero gradients
            rest = rest + 0.0 * sum(p.sum() for p in _dit_side(parts))
        rest.backward()
        return {"loss": rest.detach().item(), "flow": 0.0, **logs}
    mb = micro_batch or len(has)
    chunks = [slice(i, i + mb) for i in range(0, len(has), mb)]
    flow = 0.0
    for j, sl in enumerate(chunks):
        last = j == len(chunks) - 1
        share = x0[sl].shape[0] / len(has)
        with contextlib.nullcontext() if last else local():  # DDP reduces once, in the last backward
            l_fm = objective(x0=x0[sl], c=c[sl], generator=generator) * share
        (l_fm + rest if last else l_fm).backward(retain_graph=not last)  # the fusion's graph serves every chunk
        flow += l_fm.detach().item()
    return {"loss": flow + rest.detach().item(), "flow": flow, **logs}


def _dit_side(parts) -> list[nn.Parameter]:
    return wt.lora_parameters(parts.transformer) + list(parts.fusion.parameters())


def wrap(objective: WanStage2Objective, rank, device: torch.device):
    """(the loss module, undo): under torchrun in DDP, with what stage 2 cannot reach frozen and the
    frozen base DiT ignored; one process gets the module itself."""
    if not rank.active:
        return objective, lambda: None
    from torch.nn.parallel import DistributedDataParallel

    from cineneuron.train.objective import ddp, freeze, stage2_unused

    undo = freeze(stage2_unused(objective.model, objective.parts.subject, objective.weights))
    dit = objective.transformer
    base = [f"transformer.{n}" for n, p in dit.named_parameters() if not p.requires_grad]
    base += [f"transformer.{n}" for n, _ in dit.named_buffers()]
    DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(objective, base)
    return ddp(objective, device), undo
