"""`cn train --stage 1`: the Brain Model trained straight from the store.

It streams fMRI from the store, pairs each sample with its clip's targets, validates on the
test split (averaged repeats) beside a closed-form ridge baseline, and writes a checkpoint
(safetensors + JSON), the resolved config and a catalog run.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np

from cineneuron.brain.data import StoreBatches, load_split, load_targets, router_fold, sample_clip_ids
from cineneuron.eval.brain import evaluate
from cineneuron.atomic import atomic_write_text
from cineneuron.config import RootConfig, save_config
from cineneuron.errors import CNError
from cineneuron.store.runs import check_compatible, checkpoint_extra, resolve_dataset, run_dir


@dataclass
class Stage1Result:
    run_dir: str
    metrics: dict
    ridge: dict
    seconds: float
    steps: int
    samples_per_s: float


def brain_config(store, cfg: RootConfig, subject: str, n_tr: int, n_voxels: int):
    from cineneuron.brain.mlp import MLPConfig
    from cineneuron.brain.model import BrainModelConfig, SubjectSpec, TargetDims
    from cineneuron.brain.transformer import TransformerConfig

    b = cfg.brain
    tcfg = (TransformerConfig.preset(b.preset) if b.preset else
            TransformerConfig(hidden=b.hidden, n_layers=b.n_blocks, n_heads=b.n_heads, n_patches=b.n_tokens, token_dim=b.d_f))
    return BrainModelConfig(
        backbone=b.backbone, subjects={str(subject): SubjectSpec(n_tr=n_tr, n_voxels=n_voxels)},
        targets=TargetDims.from_preset(store.preset),
        mlp=MLPConfig(hidden=b.hidden, n_blocks=b.n_blocks, n_tokens=b.n_tokens, token_dim=b.d_f),
        transformer=tcfg, dropout=b.dropout)


def test_targets(targets, clip_ids: list[str]) -> dict[str, np.ndarray]:
    from cineneuron.store.rows import pooled_image

    t = targets.take(clip_ids)
    return {"img": pooled_image(t["img_frames"]), "txt": t["txt"], "act": t["act"], "label_vec": t["label_vec"], "mix": t["mix"]}


def predict(model, voxels: np.ndarray, subject: str) -> dict[str, np.ndarray]:
    from cineneuron.train.loop import embed

    return {k: v.numpy() for k, v in embed(model, voxels, subject).items()}


def ridge_baseline(train: dict, targets, test: dict, seed: int = 0, protocol: str = "neuroclips") -> tuple[dict, object]:
    from cineneuron.brain.ridge import RidgeBaseline

    tt = targets.take(train["clip_id"])
    ridge = RidgeBaseline().fit(train["voxels"], {"img_frames": tt["img_frames"], "txt": tt["txt"], "act": tt["act"]})
    preds = ridge.predict(test["voxels"])
    return evaluate(preds, test_targets(targets, test["clip_id"]), seed, protocol), ridge


def train_stage1(store, cfg: RootConfig, subject: str, *, dataset: str | None = None, resume: bool = False,
                 progress=None, with_ridge: bool = True) -> Stage1Result:
    import torch

    from cineneuron.brain.model import save_checkpoint
    from cineneuron.train import distributed
    from cineneuron.train.loop import Schedule, Stage1Trainer

    rank = distributed.init(cfg.train.device)  # a single process unless launched by torchrun
    if rank.active:
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"device": distributed.device_for(rank, cfg.train.device)})})

    t0 = time.perf_counter()
    subject = str(subject)
    dataset = resolve_dataset(store, subject, dataset)
    out = run_dir(store, dataset, subject, 1, cfg.train.runs_dir)
    train_ids = sample_clip_ids(store, dataset, subject, "train")
    if not train_ids:
        raise CNError(f"subject {subject} of {dataset} has no training samples; ingest them first")
    test = load_split(store, dataset, subject, "test", where="repeat = -1")
    targets = load_targets(store, train_ids + test["clip_id"])
    # The router's fold is never fitted here, so stage 2 can fit the router on out-of-sample predictions.
    fold = router_fold(store, train_ids, cfg.train.router_holdout, cfg.train.seed)
    batches, steps_per_epoch = _batches(store, dataset, subject, targets, fold, cfg, rank)
    model, mcfg = _model(store, cfg, out, dataset, subject, resume)
    trainer = Stage1Trainer(model, cfg.train, Schedule.from_epochs(cfg.train, steps_per_epoch))
    distributed.wrap_trainer(trainer, rank, subject)
    if resume and (out / "trainer_state.json").exists():
        trainer.load_state(out)

    tt = test_targets(targets, test["clip_id"]) if test["clip_id"] else None

    history: list[dict] = []

    def val_fn(m):
        if tt is None or not rank.is_main:
            return {}
        metrics = evaluate(predict(m, test["voxels"], subject), tt, cfg.train.seed)
        history.append({"step": trainer.step, "epoch": trainer.epoch, **metrics})
        return metrics

    def save(tr):
        if not rank.is_main:  # one writer: ranks hold identical weights
            return
        extra = checkpoint_extra(store, dataset, subject, stage=1, step=tr.step, epoch=tr.epoch)
        save_checkpoint(out, tr.model, mcfg, extra)
        tr.save_state(out)
        save_config(cfg, out)

    torch.manual_seed(cfg.train.seed)
    n_seen = 0

    def on_step(m):
        nonlocal n_seen
        n_seen += cfg.train.batch_size
        if progress and rank.is_main:
            val = trainer.val_metrics or {}
            info = f"loss {m['loss']:.3f}" + (f" | val img fmri->clip {val['img_fmri_to_clip']:.3f}" if "img_fmri_to_clip" in val else "")
            progress(1, trainer.schedule.total_steps, info)

    if progress and rank.is_main:
        progress(trainer.step, trainer.schedule.total_steps)
    t_train = time.perf_counter()
    res = trainer.fit(batches, val_fn=val_fn, progress=on_step, checkpoint=save)
    distributed.unwrap_trainer(trainer)
    train_s = time.perf_counter() - t_train
    if not rank.is_main:
        return Stage1Result(str(out), {}, {}, time.perf_counter() - t0, res["step"], n_seen / train_s if train_s else 0.0)
    atomic_write_text(out / "val_history.json", json.dumps(history, indent=1))
    metrics = dict(res["val"])
    metrics.update({f"train_{k}": v for k, v in res["train"].items() if isinstance(v, float)})
    ridge = {}
    if with_ridge and tt is not None:
        train_all = load_split(store, dataset, subject, "train", exclude=fold)  # the data the model saw
        ridge, _ = ridge_baseline(train_all, targets, test, cfg.train.seed)
    store.catalog.add_run(stage=1, subject=subject, dataset=dataset, config=cfg.model_dump(),
                          metrics={"model": metrics, "ridge": ridge}, checkpoint=str(out), store_version=store.version)
    return Stage1Result(str(out), metrics, ridge, time.perf_counter() - t0, res["step"],
                        n_seen / train_s if train_s else 0.0)


def _batches(store, dataset: str, subject: str, targets, fold, cfg: RootConfig, rank):
    """(the training batches, steps per epoch); under torchrun each rank trains its slice of the
    same full global batches."""
    from cineneuron.train import distributed

    batches = StoreBatches(store, dataset, subject, targets, batch_size=cfg.train.batch_size, seed=cfg.train.seed,
                           exclude=fold)
    if not rank.active:
        return batches, batches.n_batches(0)
    ranked = distributed.RankBatches(batches, rank, cfg.train.batch_size)
    steps = ranked.n_batches(batches.n_samples(0))
    if steps == 0:
        raise CNError(f"fewer training samples than one global batch of {cfg.train.batch_size}; lower train.batch_size")
    return ranked, steps


def _model(store, cfg: RootConfig, out, dataset: str, subject: str, resume: bool):
    """(model, its config): the run's own checkpoint with --resume, else a fresh model of the config."""
    from cineneuron.brain.model import create_brain_model, load_checkpoint

    if resume and (out / "model.safetensors").exists():
        model, mcfg, extra = load_checkpoint(out)
        check_compatible(store, extra, dataset, subject)
        return model, mcfg
    sub = store.catalog.subject(dataset, subject)
    mcfg = brain_config(store, cfg, subject, sub.n_tr, sub.n_voxels)
    return create_brain_model(mcfg, seed=cfg.train.seed), mcfg
