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

from cineneuron.train.loop import fold_router_loss, forever
from cineneuron.brain.data import StoreBatches, load_targets, router_fold, sample_clip_ids
from cineneuron.config import RootConfig, save_config
from cineneuron.decode.router import load_mom, query_vector, router_infonce, save_router
from cineneuron.errors import CNError
from cineneuron.store.runs import check_compatible, checkpoint_extra, resolve_dataset, run_dir



@dataclass
class Stage2Result:
    run_dir: str
    seconds: float
    steps: int
    last: dict


def train_stage2(store, cfg: RootConfig, subject: str, *, dataset: str | None = None, progress=None) -> Stage2Result:
    from cineneuron.brain.losses import stage1_loss
    from cineneuron.brain.model import save_checkpoint
    from cineneuron.train.loop import Schedule, loss_weights, optimizer_step, stage2_optimizer

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
    batches = StoreBatches(store, dataset, subject, targets, batch_size=cfg.train.batch_size, seed=cfg.train.seed + 1,
                           exclude=fold)
    fold_batches = forever(StoreBatches(store, dataset, subject, targets, batch_size=cfg.train.batch_size,
                                         seed=cfg.train.seed + 2, only=fold)) if fold else None
    sched_ = Schedule.from_epochs(cfg.train, batches.n_batches(0), epochs=cfg.train.stage2_epochs)
    weights = loss_weights(cfg.train)
    torch.manual_seed(cfg.train.seed)
    model.train()
    router.train()
    params = list(model.parameters()) + list(router.parameters())
    opt, sched = stage2_optimizer(model, router, cfg.train, sched_.total_steps)
    step, last = 0, {}
    if progress:
        progress(0, sched_.total_steps)
    for epoch in range(cfg.train.stage2_epochs):
        for batch in batches(epoch):
            out = model(batch["voxels"], subject)
            tgt = {"img": model.pool_image_targets(batch["img_frames"]), "txt": batch["txt"],
                   "act": batch["act"], "label_vec": batch["label_vec"]}
            losses = stage1_loss(out, tgt, weights)
            w = router(out["F"])  # (B, 3)
            if fold_batches is None:  # router_holdout = 0: the router learns from the fitted predictions
                l_router = router_infonce(query_vector(out["txt"], out["img"], out["act"], w), pool,
                                          batch["clip_row"], cfg.train.temperature)
                loss = losses["loss"] + cfg.train.lambda_router * l_router
            else:
                # The backbone learns to retrieve under the router's weights; the router learns
                # only from the held-out fold, whose predictions are out-of-sample.
                q = query_vector(out["txt"], out["img"], out["act"], w.detach())
                l_fit = router_infonce(q, pool, batch["clip_row"], cfg.train.temperature)
                l_router = fold_router_loss(model, router, next(fold_batches), subject, pool, cfg.train.temperature)
                loss = losses["loss"] + cfg.train.lambda_router * (l_fit + l_router)
            optimizer_step(loss, opt, sched, params, cfg.train.grad_clip)
            step += 1
            last = {"loss": loss.item(), "router": l_router.item(), "w_spread": w.detach().std(0).mean().item(),
                    "router_fold_clips": len(fold)}
            if progress:
                progress(1, sched_.total_steps, f"loss {last['loss']:.3f} router {last['router']:.3f}")
    out_dir = run_dir(store, dataset, subject, 2, cfg.train.runs_dir)
    model.eval()
    save_checkpoint(out_dir, model, mcfg, checkpoint_extra(store, dataset, subject, stage=2, step=step))
    save_router(out_dir, router)
    save_config(cfg, out_dir)
    store.catalog.add_run(stage=2, subject=subject, dataset=dataset, config=cfg.model_dump(), metrics=last,
                          checkpoint=str(out_dir), store_version=store.version)
    return Stage2Result(str(out_dir), time.perf_counter() - t0, step, last)


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
