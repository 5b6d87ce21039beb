"""`cn train --stage 2 --decoder wan`: Brain Model, router, fusion and the DiT's LoRA, trained together.

Per batch:

    voxels -> Brain Model -> heads, F -> router w -> q = [w_t q̂_t, w_i q̂_i, w_a q̂_a]
    q · pool (own clip and clips overlapping it in its source video masked out) -> top-1 cond T*,
    top-k img / act sets -> MoMFusion -> C -> Wan DiT (+ LoRA) -> flow-matching loss on the clip's
    cached VAE latents
    loss = flow matching + stage-1 losses + lambda_router * router InfoNCE
    (the router's own gradient comes from its held-out fold, `train.router_holdout`; see train/stage2.py)

The base DiT and the VAE are frozen; the Brain Model (backbone and heads), router, fusion and LoRA
learn. Ground-truth latents are computed once per (clip, frames, size, VAE config) and kept in the
store's `wan_latents` table, so epochs (and later runs) never re-encode video. The run lands in
`runs/<dataset>-sub<subject>/stage2-wan/`: the Brain Model checkpoint, router, fusion
(safetensors + JSON), LoRA (safetensors with its adapter config + JSON) and the run config.

Data-parallel (`cn train --nproc N`, torchrun): rank 0 fills the latent cache while the other
ranks wait, every rank trains its slice of the same global batches (and of the router-fold
batches) through DDP over Brain Model + router + fusion + LoRA (train/wan_objective.py), and
rank 0 alone writes the run and the catalog.

Ground-truth frames come from the clip's source video (`video_uri`, start_s, end_s). A square
Wan size reads a centre square crop, like ingest. A non-square size reads the whole frame and
centre-crops it to the target aspect (using the video's true aspect) before resizing, so nothing
is stretched. An unreadable video falls back to the stored JPEG previews, resampled in time and
resized (blurry at real sizes; the row records `source = "preview"`).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cineneuron.atomic import atomic_write_text
from cineneuron.config import RootConfig, save_config
from cineneuron.train import wan_lora as wt
from cineneuron.decode.wan_decoder import LORA_DIR, TOY_NOTICE, WAN_META, fresh_fusion, fuse, save_fusion, wan_config, wan_run_dir
from cineneuron.errors import CNError
from cineneuron.store.latents import LatentCache, latent_key

WRITE_EVERY = 16  # clips per Lance commit while caching latents (a crash loses at most this many)


# ---------------------------------------------------------------- ground-truth frames


def fit_frames(video: np.ndarray, n: int, height: int, width: int, src_aspect: float | None = None) -> np.ndarray:
    """(T, h, w, 3) uint8 -> (n, height, width, 3): resampled in time, centre-cropped to the target aspect, resized.

    src_aspect: the content's true width/height when the frames were squashed (read with crop=False).
    """
    from PIL import Image

    from cineneuron.frames import resample_indices

    idx = resample_indices(len(video), n)  # (n,)
    h, w = video.shape[1:3]
    r = src_aspect if src_aspect else w / h
    a = width / height
    cw, ch = (w * a / r, h) if r > a else (w, h * r / a)  # kept region, in the frames' pixels
    x0, y0 = (w - cw) / 2, (h - ch) / 2
    box = (x0, y0, x0 + cw, y0 + ch)
    return np.stack([np.asarray(Image.fromarray(video[i]).resize((width, height), Image.BILINEAR, box=box)) for i in idx])


def clip_frames(row: dict, n: int, height: int, width: int, backend: str = "decord",
                timeout_s: float = 120.0) -> tuple[np.ndarray | None, str]:
    """The clip's ground truth (n, height, width, 3) uint8 and where it came from ("video", "preview" or a reason)."""
    from cineneuron.sources.video import probe, read_clip_frames

    uri, span = row.get("video_uri") or "", (float(row["start_s"]), float(row["end_s"]))
    reason = "no video_uri"
    # decord fails on some output sizes (e.g. 48 px from a 96 px video) where PyAV works: try both
    backends = [backend] + (["pyav"] if backend != "pyav" else [])
    for be in backends if uri and os.path.exists(uri) else []:  # a missing file skips the reader process
        try:
            if height == width:
                return read_clip_frames(uri, [span], n, height, be, timeout_s)[0], "video"
            side = max(height, width)
            frames = read_clip_frames(uri, [span], n, side, be, timeout_s, crop=False)[0]  # (n, side, side, 3)
            info = probe(uri)
            return fit_frames(frames, n, height, width, src_aspect=info.width / info.height), "video"
        except (CNError, ValueError) as e:
            reason = str(e)
    if uri and not os.path.exists(uri):
        reason = f"{uri} not found"
    if row.get("frames"):
        from cineneuron.decode.replay import decode_jpegs

        return fit_frames(decode_jpegs(row["frames"]), n, height, width), "preview"
    return None, f"{reason}, and no preview frames"


def to_video_tensor(frames: np.ndarray) -> torch.Tensor:
    """(F, H, W, 3) uint8 -> (1, 3, F, H, W) in [-1, 1], the VAE's input."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).float().div(127.5).sub(1.0)  # (F, H, W, 3)
    return x.permute(3, 0, 1, 2)[None]


# ---------------------------------------------------------------- the latent cache


def cache_latents(store, cache: LatentCache, vae, clip_ids: list[str], wcfg, *, backend: str = "decord",
                  timeout_s: float = 120.0, progress=None) -> dict:
    """Encode the clips the cache lacks, once each. Returns {"encoded", "cached", "failed": {clip_id: reason}}."""
    ids = list(dict.fromkeys(clip_ids))
    have = cache.cached(ids)
    todo = [c for c in ids if c not in have]
    failed: dict[str, str] = {}
    pending: list[tuple[str, np.ndarray, str]] = []
    for i in range(0, len(todo), WRITE_EVERY):
        chunk = todo[i:i + WRITE_EVERY]
        rows = store.get_clips(chunk, ["video_uri", "start_s", "end_s", "frames"]).to_pylist()
        for r in rows:
            frames, src = clip_frames(r, wcfg.num_frames, wcfg.height, wcfg.width, backend, timeout_s)
            if frames is None:
                failed[r["clip_id"]] = src
                continue
            lat = wt.encode_latents(vae, to_video_tensor(frames), sample=False)[0]  # (z, F', h, w); the mode: one value per key
            pending.append((r["clip_id"], lat, src))
        cache.put(pending)
        pending = []
        if progress:
            progress(0, None, f"VAE latents {min(i + WRITE_EVERY, len(todo))}/{len(todo)}")
    return {"encoded": len(todo) - len(failed), "cached": len(have), "failed": failed}


def fill_cache(store, cache: LatentCache, vae, clip_ids: list[str], wcfg, cfg: RootConfig, *, progress=None,
               rank=None) -> dict:
    """`cache_latents` once per job, refusing when no training clip has ground truth.

    Under torchrun rank 0 alone encodes and writes the missing latents while the other ranks wait
    (`distributed.agree`, a barrier that also carries rank 0's success); then every rank reads
    the same table. Only rank 0's report counts what it encoded and what failed.
    """
    from cineneuron.train import distributed

    if rank is not None and not rank.is_main:
        if not distributed.agree(rank, True):
            raise CNError("rank 0 could not fill the VAE latent cache; its error says why")
        return {"encoded": 0, "cached": len(cache.cached(clip_ids)), "failed": {}}
    ok = False
    try:
        report = cache_latents(store, cache, vae, clip_ids, wcfg, backend=cfg.encoders.video_backend,
                               timeout_s=cfg.encoders.video_timeout_s, progress=progress)
        if report["encoded"] + report["cached"] == 0:
            first = next(iter(report["failed"].items()))
            raise CNError(f"no training clip has ground-truth frames (e.g. {first[0]}: {first[1]}); check the videos' paths")
        ok = True
    finally:
        if rank is not None and rank.active:
            distributed.agree(rank, ok)  # releases the waiting ranks, with the outcome
    return report


# ---------------------------------------------------------------- the training pool


@dataclass
class TrainPool:
    """The training memories, row-aligned with ClipTargets: mix, img and act vectors, and exclusions."""

    ids: list[str]
    mix: torch.Tensor  # (N, d_mix)
    img: torch.Tensor  # (N, d_img)
    act: torch.Tensor  # (N, d_act)
    exclude: list[np.ndarray]  # per row: rows never retrieved for it (itself + overlapping clips)
    cond_dim: int
    conds: dict[str, np.ndarray] = field(default_factory=dict)  # clip_id -> (L, D_c) float16, filled lazily

    def t_star(self, store, rows: list[int]) -> list[np.ndarray]:
        from cineneuron.store.rows import decode_cond

        need = [self.ids[r] for r in rows if self.ids[r] not in self.conds]
        if need:
            t = store.get_clips(list(dict.fromkeys(need)), ["cond"])
            for c, blob in zip(t.column("clip_id").to_pylist(), t.column("cond").to_pylist()):
                self.conds[c] = decode_cond(blob, self.cond_dim)
        return [self.conds[self.ids[r]] for r in rows]


def build_pool(store, targets, device: str = "cpu") -> TrainPool:
    from cineneuron.decode.mom import overlapping_ids, split_mix

    mix = targets.mix.astype(np.float32)  # (N, d_mix) = [txt, img, act], unit parts
    _, img, act = split_mix(mix, store.preset.space_dims())
    excl = [np.array(sorted(targets.row[c] for c in group if c in targets.row), dtype=np.int64)
            for group in overlapping_ids(store, targets.ids)]
    t = lambda x: torch.from_numpy(np.ascontiguousarray(x)).to(device)  # noqa: E731
    return TrainPool(list(targets.ids), t(mix), t(img), t(act), excl, store.dims["cond"])


def retrieve_fused(q: torch.Tensor, pool: TrainPool, rows: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k memory rows (B, k) and their validity (B, k) for queries q (B, d_mix) of samples at pool rows `rows`.

    The sample's own clip and the clips overlapping it in time in the same video are never
    retrieved, so the model learns from neighbours, as it must at test time.
    """
    with torch.no_grad():
        scores = q.detach() @ pool.mix.T  # (B, N) mixture scores
        for b, r in enumerate(rows.tolist()):
            scores[b, torch.from_numpy(pool.exclude[r]).to(scores.device)] = float("-inf")
        vals, idx = scores.topk(min(k, scores.shape[1]), dim=1)  # (B, k)
        valid = torch.isfinite(vals)
    if not bool(valid[:, 0].all()):
        raise CNError("the training pool is too small: some sample has no memory left once its own and overlapping clips are excluded")
    return idx, valid


# ---------------------------------------------------------------- setup and step


@dataclass
class WanStage2:
    """Everything a training step needs (built by `prepare`)."""

    store: object
    cfg: RootConfig
    dataset: str
    subject: str
    source_checkpoint: Path
    wcfg: object  # WanDecoderConfig
    model: torch.nn.Module
    mcfg: object
    router: torch.nn.Module
    fusion: torch.nn.Module
    pipe: object  # WanPipeline: transformer (LoRA) and vae (frozen)
    scheduler: object  # the 1000-step training table
    targets: object  # ClipTargets of the training clips
    pool: TrainPool
    cache: LatentCache
    latents: dict  # cache_latents() report
    device: str = "cpu"
    fold: frozenset = frozenset()  # the router's held-out training clips (see train/stage2.py)
    precision: str = "fp32"
    estimate: object = None  # train.memory.Stage2Estimate

    @property
    def transformer(self):
        return self.pipe.transformer

    def parameters(self) -> list[torch.nn.Parameter]:
        """LoRA + Brain Model (backbone and heads) + router + fusion; refuses a DiT whose base weights learn."""
        return wt.stage2_parameters(self.transformer, self.model, self.router, self.fusion)

    def train(self) -> None:
        self.model.train()
        self.router.train()
        self.fusion.train()

    def _autocast(self):
        """bf16/fp16 autocast for the Brain Model, router and fusion on cuda (train.precision); off on cpu."""
        import contextlib

        if not self.device.startswith("cuda") or self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=torch.bfloat16 if self.precision == "bf16" else torch.float16)

    def _forward(self, batch: dict, weights, fold_batch: dict | None):
        """Everything but the DiT, on the whole batch (the InfoNCE batch stays whole).

        Returns (stage-1 + router loss, logs, C (b, text_len, D_c) of the samples with ground truth, x0, has).
        """
        from cineneuron.train.loop import fold_router_loss
        from cineneuron.brain.losses import stage1_loss
        from cineneuron.decode.router import query_vector, router_infonce
        from cineneuron.decode.wan import pad_text

        dev, cfg = self.device, self.cfg
        with self._autocast():
            out = self.model(batch["voxels"].to(dev), self.subject)
            out = {k: v.float() for k, v in out.items()}  # losses in fp32
            tgt = {"img": self.model.pool_image_targets(batch["img_frames"].to(dev)).float(), "txt": batch["txt"].to(dev),
                   "act": batch["act"].to(dev), "label_vec": batch["label_vec"].to(dev)}
            losses = stage1_loss(out, tgt, weights)
            rows = batch["clip_row"].to(dev)  # (B,) pool rows of the samples' own clips
            w = self.router(out["F"]).float()  # (B, 3)
            q = query_vector(out["txt"], out["img"], out["act"], w if fold_batch is None else w.detach())  # (B, d_mix)
            l_router = router_infonce(q, self.pool.mix, rows, cfg.train.temperature)
            if fold_batch is not None:
                l_router = l_router + fold_router_loss(self.model, self.router, fold_batch, self.subject,
                                                        self.pool.mix, cfg.train.temperature)
            idx, valid = retrieve_fused(q, self.pool, rows, cfg.decode.top_k)  # (B, k), (B, k)
            lat = self.cache.get(batch["clip_id"])
            has = [i for i, c in enumerate(batch["clip_id"]) if c in lat]  # samples whose clip has ground truth
            c = x0 = None
            if has:
                sel = torch.tensor(has, device=dev)
                t_star = self.pool.t_star(self.store, idx[sel, 0].tolist())
                c, _, _ = fuse(self.fusion, out["F"][sel], t_star, self.pool.img[idx[sel]], self.pool.act[idx[sel]], valid[sel])
                c = pad_text(c, self.wcfg.text_len)  # (b, text_len, D_c): zeros after the real tokens, as at generation
                x0 = torch.from_numpy(np.stack([lat[batch["clip_id"][i]] for i in has])).float().to(dev)  # (b, z, F', h, w)
        rest = losses["loss"] + cfg.train.lambda_router * l_router
        logs = {"stage1": losses["loss"].detach().item(), "router": l_router.detach().item(),
                "w_spread": w.std(0).mean().detach().item()}
        return rest, logs, c, x0, has

    def loss(self, batch: dict, weights, generator: torch.Generator | None = None,
             fold_batch: dict | None = None) -> tuple[torch.Tensor, dict]:
        """The stage-2 objective on one StoreBatches batch, the whole batch through the DiT at once: (loss, float logs).

        fold_batch: a batch of the router's held-out clips; when given, the router learns only
        from it and the training batch uses the router's weights without a gradient to them.
        """
        rest, logs, c, x0, has = self._forward(batch, weights, fold_batch)
        l_fm = torch.zeros((), device=self.device)
        if has:
            l_fm = wt.flow_matching_loss(self.transformer, self.scheduler, x0, c, generator)
        loss = l_fm + rest
        return loss, {"loss": loss.detach().item(), "flow": l_fm.detach().item(), **logs}

    def backward(self, batch: dict, weights, generator: torch.Generator | None = None,
                 fold_batch: dict | None = None, micro_batch: int | None = None, objective=None) -> dict:
        """Gradients of the stage-2 objective, the DiT run `micro_batch` samples at a time (accumulated).

        The Brain Model, router and fusion see the whole batch once (InfoNCE over the whole batch);
        each micro-batch's flow-matching loss is weighted by its share of the batch and its
        backward frees that micro-batch's DiT activations before the next one runs.
        objective: the loss module (train/wan_objective.py), DDP-wrapped under torchrun; by
        default this process's own, unwrapped.
        """
        from cineneuron.train.wan_objective import WanStage2Objective, accumulate

        obj = objective if objective is not None else WanStage2Objective(self, weights)
        return accumulate(obj, self, batch, generator, fold_batch, micro_batch)


def _lora_dtype(transformer, fp32: bool) -> None:
    """LoRA weights in the DiT's dtype, or fp32 with train.lora_fp32 (peft then casts every LoRA input to
    fp32 too, which costs about 41 % more activation memory at the paper's size)."""
    dtype = torch.float32 if fp32 else transformer.dtype
    for p in wt.lora_parameters(transformer):
        p.data = p.data.to(dtype)


def _per_rank(cfg: RootConfig, rank) -> RootConfig:
    """The config one rank's memory sees: its slice of the global batch."""
    if rank is None or not rank.active:
        return cfg
    per = max(1, cfg.train.batch_size // rank.world)
    return cfg.model_copy(update={"train": cfg.train.model_copy(update={"batch_size": per})})


def prepare(store, cfg: RootConfig, subject: str, *, dataset: str | None = None, progress=None, rank=None) -> WanStage2:
    """Everything a step needs; under torchrun (`rank`) rank 0 alone fills the latent cache."""
    from cineneuron.brain.data import load_targets, router_fold, sample_clip_ids
    from cineneuron.decode.router import load_mom
    from cineneuron.decode.wan import build_pipeline
    from cineneuron.store.runs import check_compatible, latest_checkpoint, resolve_dataset

    from cineneuron.runtime import train_runtime
    from cineneuron.train.memory import check_fits

    rt = train_runtime(cfg.train)
    device = rt["device"]
    wcfg = wan_config(cfg.decode, store.dims["cond"], device=device, precision=rt["precision"])  # bad settings stop here
    subject = str(subject)
    dataset = resolve_dataset(store, subject, dataset)
    src = latest_checkpoint(store, dataset, subject, base=cfg.train.runs_dir)  # replay stage 2, else stage 1
    quiet = rank is not None and not rank.is_main  # rank 0 alone prints the estimate
    # printed; refused here when it cannot fit, before any model loads
    estimate = check_fits(_per_rank(cfg, rank), wcfg, src, device, echo=(lambda m: None) if quiet else None)
    model, router, mcfg, extra = load_mom(src)
    check_compatible(store, extra, dataset, subject)
    train_ids = sample_clip_ids(store, dataset, subject, "train")
    if not train_ids:
        raise CNError(f"subject {subject} of {dataset} has no training samples; ingest them first")
    targets = load_targets(store, train_ids)
    pool = build_pool(store, targets, device)

    pipe = build_pipeline(wcfg)
    if pipe.transformer.config.text_dim != store.dims["cond"]:
        raise CNError(f"the Wan transformer takes text_dim={pipe.transformer.config.text_dim} but the store's cond dim is {store.dims['cond']}")
    wt.add_lora(pipe.transformer, r=cfg.decode.wan_lora_rank, alpha=cfg.decode.wan_lora_alpha)
    wt.freeze(pipe.vae)
    _lora_dtype(pipe.transformer, cfg.train.lora_fp32)
    if cfg.train.grad_ckpt:
        pipe.transformer.enable_gradient_checkpointing()  # each block recomputed in backward: ~1/14 of the memory
    cache = LatentCache(store, latent_key(wcfg.num_frames, wcfg.height, wcfg.width, pipe.vae))
    report = fill_cache(store, cache, pipe.vae, targets.ids, wcfg, cfg, progress=progress, rank=rank)
    fusion = fresh_fusion(mcfg.d_f, store.dims, seed=cfg.train.seed)
    model, router, fusion = model.to(device), router.to(device), fusion.to(device)
    fold = frozenset(router_fold(store, train_ids, cfg.train.router_holdout, cfg.train.seed))
    return WanStage2(store, cfg, dataset, subject, Path(src), wcfg, model, mcfg, router, fusion, pipe,
                     wt.train_scheduler(source=pipe.scheduler), targets, pool, cache, report, device, fold,
                     rt["precision"], estimate)


# ---------------------------------------------------------------- the command


def save_run(parts: WanStage2, out_dir: Path, step: int, last: dict) -> None:
    from cineneuron.brain.model import save_checkpoint
    from cineneuron.decode.router import save_router
    from cineneuron.store.runs import checkpoint_extra

    store, cfg, w = parts.store, parts.cfg, parts.wcfg
    extra = checkpoint_extra(store, parts.dataset, parts.subject, stage=2, step=step, decoder="wan",
                             source_checkpoint=str(parts.source_checkpoint))
    save_checkpoint(out_dir, parts.model.cpu().eval(), parts.mcfg, extra)
    save_router(out_dir, parts.router.cpu().eval())
    save_fusion(out_dir, parts.fusion.cpu().eval())
    wt.save_lora(out_dir / LORA_DIR, parts.transformer)
    save_config(cfg, out_dir)
    meta = {"toy": w.toy, "model_dir": str(w.model_dir) if w.model_dir else None, "text_dim": store.dims["cond"],
            "num_frames": w.num_frames, "height": w.height, "width": w.width, "text_len": w.text_len,
            "top_k": cfg.decode.top_k,  # the fusion learned from exactly this many memories
            "latent_key": parts.cache.key, "lora": {"r": cfg.decode.wan_lora_rank, "alpha": cfg.decode.wan_lora_alpha},
            "source_checkpoint": str(parts.source_checkpoint), "latents": {k: v for k, v in parts.latents.items() if k != "failed"},
            "failed_clips": parts.latents["failed"], "last": last, "random_init": w.random_init,
            "runtime": {"device": parts.device, "precision": parts.precision, "grad_ckpt": cfg.train.grad_ckpt,
                        "micro_batch": cfg.train.micro_batch, "lora_fp32": cfg.train.lora_fp32}}
    atomic_write_text(out_dir / WAN_META, json.dumps(meta, indent=1))


def train_stage2_wan(store, cfg: RootConfig, subject: str, dataset: str | None = None, progress=None) -> dict:
    """Stage 2 with the Wan generator; returns {"run_dir", "seconds", "steps", "last", "latents"[, "notice"]}.

    Under torchrun (`cn train --nproc N`) each rank trains its slice of the same global batches,
    DDP averages the gradients, and rank 0 alone writes the run and the catalog. Seeds: the
    flow-matching noise and timesteps draw from `train.seed + rank` (rank 0 = one process), the
    global RNG (dropout) too; init and shuffling use `train.seed` on every rank.
    """
    from cineneuron.train import distributed
    from cineneuron.train.loop import Schedule, loss_weights, stage2_optimizer
    from cineneuron.train.stage2 import _batches
    from cineneuron.train.wan_objective import WanStage2Objective, wrap

    rank = distributed.init(cfg.train.device)  # a single process unless launched by torchrun
    if rank.active:  # one GPU per rank
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"device": distributed.device_for(rank, cfg.train.device)})})
    progress = progress if rank.is_main else None
    t0 = time.perf_counter()
    parts = prepare(store, cfg, subject, dataset=dataset, progress=progress, rank=rank)
    batches, fold_batches, steps_per_epoch = _batches(store, parts.dataset, parts.subject, parts.targets,
                                                      parts.fold, cfg, rank)
    sched_ = Schedule.from_epochs(cfg.train, steps_per_epoch, epochs=cfg.train.stage2_epochs)
    weights = loss_weights(cfg.train)
    torch.manual_seed(cfg.train.seed + rank.rank)
    gen = torch.Generator().manual_seed(cfg.train.seed + rank.rank)  # timesteps and noise of the flow-matching loss
    params = parts.parameters()  # refuses a DiT whose base weights learn
    # The same optimiser as the replay stage 2 (router at router_lr_mult), with LoRA and fusion
    # learning at the Brain Model's rate.
    others = wt.lora_parameters(parts.transformer) + list(parts.fusion.parameters())
    opt, sched = stage2_optimizer(parts.model, parts.router, cfg.train, sched_.total_steps, others)
    objective, unfreeze = wrap(WanStage2Objective(parts, weights), rank, torch.device(parts.device))
    parts.train()
    step, last = _fit(parts, objective, batches, fold_batches, (opt, sched, params), gen, sched_.total_steps, progress)
    unfreeze()
    out_dir = wan_run_dir(store, parts.dataset, parts.subject, cfg.train.runs_dir)
    if rank.is_main:  # one writer: the ranks hold identical weights
        save_run(parts, out_dir, step, last)
        store.catalog.add_run(stage=2, subject=parts.subject, dataset=parts.dataset, config=cfg.model_dump(),
                              metrics={**last, "decoder": "wan"}, checkpoint=str(out_dir), store_version=store.version)
    return _summary(parts, out_dir, step, last, time.perf_counter() - t0)


def _fit(parts: WanStage2, objective, batches, fold_batches, optim, gen, total_steps: int, progress) -> tuple[int, dict]:
    """The stage-2 epochs: one optimiser step per batch (the rank's slice under DDP); (steps, last logs)."""
    from cineneuron.train.wan_objective import accumulate

    opt, sched, params = optim
    cfg = parts.cfg
    step, last = 0, {}
    if progress:
        progress(0, total_steps)
    for epoch in range(cfg.train.stage2_epochs):
        for batch in batches(epoch):
            if step >= total_steps:  # OneCycle cannot step past its total
                break
            opt.zero_grad(set_to_none=True)
            last = accumulate(objective, parts, batch, gen, next(fold_batches) if fold_batches else None,
                              micro_batch=cfg.train.micro_batch)
            if cfg.train.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, cfg.train.grad_clip)  # on the all-reduced gradients
            opt.step()
            sched.step()
            step += 1
            if progress:
                progress(1, total_steps, f"loss {last['loss']:.3f} flow {last['flow']:.3f}")
    return step, last


def _summary(parts: WanStage2, out_dir: Path, step: int, last: dict, seconds: float) -> dict:
    cfg = parts.cfg
    summary = {"run_dir": str(out_dir), "seconds": round(seconds, 1), "steps": step, "last": last,
               "latents": {"encoded": parts.latents["encoded"], "cached": parts.latents["cached"],
                           "failed": len(parts.latents["failed"])}}
    summary.update(device=parts.device, precision=parts.precision, grad_ckpt=cfg.train.grad_ckpt,
                   micro_batch=cfg.train.micro_batch, lora_fp32=cfg.train.lora_fp32)
    if parts.estimate is not None:
        summary["memory_estimate_gib"] = round(parts.estimate.total_gib, 2)
    if parts.wcfg.toy or parts.wcfg.random_init:
        summary["notice"] = TOY_NOTICE
    return summary
