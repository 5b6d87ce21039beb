"""`cn train --stage 2` with the replay decoder: the router, trained on top of stage 1.

Loss = the stage-1 losses + lambda_router * InfoNCE over mixture scores, whose positive is the
sample's own clip in the pool of training memories. The backbone and heads keep learning; the
router learns, per query, which space (text, image, action) to trust. By default it learns from
the training samples' own (fitted) predictions. With `train.router_holdout` > 0 it learns only
from the router fold: training clips that neither stage fits, whose predictions are as
imperfect as at test time (fitted clips retrieve themselves in every space). NOTES.md compares
the two; the fold is not the default. The fusion module and the
generator's LoRA plug in here for `--decoder wan` (see `cineneuron.train.wan_lora`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cineneuron.train.loop import forever
from cineneuron.brain.data import StoreBatches, load_targets, router_fold, sample_clip_ids
from cineneuron.config import RootConfig, save_config
from cineneuron.decode.router import load_mom, save_router
from cineneuron.errors import CNError
from cineneuron.store.runs import check_compatible, checkpoint_extra, resolve_dataset, run_dir



@dataclass
class Stage2Result:
    run_dir: str
    seconds: float
    steps: int
    last: dict


def train_stage2(store, cfg: RootConfig, subject: str, *, dataset: str | None = None, progress=None) -> Stage2Result:
    from cineneuron.brain.model import save_checkpoint
    from cineneuron.train import distributed
    from cineneuron.train.objective import Stage2Objective
    from cineneuron.train.loop import Schedule, loss_weights, optimizer_step, stage2_optimizer

    rank = distributed.init("cpu")  # a single process unless launched by torchrun; this stage trains on CPU
    t0 = time.perf_counter()
    subject = str(subject)
    dataset = resolve_dataset(store, subject, dataset)
    src = run_dir(store, dataset, subject, 1, cfg.train.runs_dir)
    if not (src / "model.safetensors").exists():
        raise CNError(f"stage 2 starts from stage 1; run: cn train --stage 1 --subject {subject}")
    model, router, mcfg, extra = load_mom(src)
    check_compatible(store, extra, dataset, subject)
    _check_same_fold(src, cfg)
    train_ids = sample_clip_ids(store, dataset, subject, "train")
    targets = load_targets(store, train_ids)
    pool = torch.from_numpy(np.array(targets.mix))  # (N, d_mix): the training memories (a writable copy)
    fold = router_fold(store, train_ids, cfg.train.router_holdout, cfg.train.seed)  # stage 1 never fitted these
    batches, fold_batches, steps_per_epoch = _batches(store, dataset, subject, targets, fold, cfg, rank)
    sched_ = Schedule.from_epochs(cfg.train, steps_per_epoch, epochs=cfg.train.stage2_epochs)
    torch.manual_seed(cfg.train.seed + rank.rank)  # dropout masks differ per rank; rank 0 = one process
    model.train()
    router.train()
    params = list(model.parameters()) + list(router.parameters())
    opt, sched = stage2_optimizer(model, router, cfg.train, sched_.total_steps)
    objective, unfreeze = _objective(Stage2Objective(model, router, loss_weights(cfg.train), pool, subject,
                                                     cfg.train.temperature, cfg.train.lambda_router), rank)
    step, last = 0, {}
    if progress and rank.is_main:
        progress(0, sched_.total_steps)
    for epoch in range(cfg.train.stage2_epochs):
        for batch in batches(epoch):
            r = objective(batch, next(fold_batches) if fold_batches is not None else None)
            optimizer_step(r["loss"], opt, sched, params, cfg.train.grad_clip)  # DDP averaged the gradients in backward
            step += 1
            last = {"loss": r["loss"].item(), "router": r["router"].item(),
                    "w_spread": r["w"].detach().std(0).mean().item(), "router_fold_clips": len(fold)}
            if progress and rank.is_main:
                progress(1, sched_.total_steps, f"loss {last['loss']:.3f} router {last['router']:.3f}")
    unfreeze()
    out_dir = run_dir(store, dataset, subject, 2, cfg.train.runs_dir)
    if not rank.is_main:  # one writer: ranks hold identical weights
        return Stage2Result(str(out_dir), time.perf_counter() - t0, step, last)
    model.eval()
    save_checkpoint(out_dir, model, mcfg, checkpoint_extra(store, dataset, subject, stage=2, step=step))
    save_router(out_dir, router)
    save_config(cfg, out_dir)
    store.catalog.add_run(stage=2, subject=subject, dataset=dataset, config=cfg.model_dump(), metrics=last,
                          checkpoint=str(out_dir), store_version=store.version)
    return Stage2Result(str(out_dir), time.perf_counter() - t0, step, last)


def _batches(store, dataset: str, subject: str, targets, fold: list, cfg: RootConfig, rank):
    """(training batches, router-fold batches or None, steps per epoch); under torchrun each rank
    gets its equal slice of the same full global batches, and its slice of each fold batch."""
    from cineneuron.train import distributed

    bs = cfg.train.batch_size
    batches = StoreBatches(store, dataset, subject, targets, batch_size=bs, seed=cfg.train.seed + 1, exclude=fold)
    fold_batches = forever(StoreBatches(store, dataset, subject, targets, batch_size=bs,
                                         seed=cfg.train.seed + 2, only=fold)) if fold else None
    if not rank.active:
        return batches, fold_batches, batches.n_batches(0)
    if fold and len(fold) < 2 * rank.world:
        raise CNError(f"the router fold has {len(fold)} clips, fewer than 2 per rank of {rank.world}; raise train.router_holdout")
    ranked = distributed.RankBatches(batches, rank, bs)
    steps = ranked.n_batches(batches.n_samples(0))
    if steps == 0:
        raise CNError(f"fewer training samples than one global batch of {bs}; lower train.batch_size")
    if fold_batches is not None:
        fold_batches = (distributed.shard_batch(b, rank) for b in fold_batches)
    return ranked, fold_batches, steps


def _objective(objective, rank):
    """(the loss module, undo): under torchrun wrapped in DDP, with what stage 2 cannot reach frozen."""
    if not rank.active:
        return objective, lambda: None
    from cineneuron.train.objective import ddp, freeze, stage2_unused

    undo = freeze(stage2_unused(objective.model, objective.subject, objective.weights))
    return ddp(objective, torch.device("cpu")), undo


def _check_same_fold(stage1_dir: Path, cfg: RootConfig) -> None:
    """The router's fold is only out-of-sample if stage 1 held out the same clips."""
    import json

    saved = Path(stage1_dir) / "run_config.json"
    if not saved.exists():
        return
    t = json.loads(saved.read_text()).get("train", {})
    was = (t.get("router_holdout", 0.0), t.get("seed", 0))
    if (was[0] or cfg.train.router_holdout) and was != (cfg.train.router_holdout, cfg.train.seed):
        raise CNError(f"stage 1 ran with train.router_holdout={was[0]} and train.seed={was[1]}; stage 2 needs the same "
                      f"(got {cfg.train.router_holdout} and {cfg.train.seed}), or rerun stage 1")
