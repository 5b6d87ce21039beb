"""The training loop both stages share: AdamW + OneCycleLR over batches from a data source.

The data source is a callable `train_batches(epoch) -> Iterable[dict]`; each batch holds

    voxels     (B, n_tr, V) float     one subject's fMRI
    subject    str                    the subject all B samples belong to
    img_frames (B, T, d_img)          per-frame image embeddings of the clips
    txt        (B, d_txt)             caption embeddings
    act        (B, d_act)             action embeddings       (only needed with use_action)
    label_vec  (B, 15)                superclass multi-hot    (only needed with use_cls)

`train_batches(epoch)` must give the same batches for the same epoch (seed its shuffling with the
epoch), so that a run resumed mid-epoch sees what an uninterrupted run would have seen: on
resume the trainer re-opens the current epoch and skips the batches it already trained on.

Determinism: the trainer keeps its own RNG state (dropout draws from it), swapped in around each
step and saved with the training state, so neither the data source nor `val_fn` can change the
training run, and resume from a step equals the uninterrupted run (to fp tolerance).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from cineneuron.brain.losses import LossWeights
from cineneuron.brain.model import BrainModel, load_state, save_state
from cineneuron.config import TrainConfig
from cineneuron.errors import CNError
from cineneuron.runtime import torch_dtype, train_runtime

STATE_NAME = "trainer_state"


@dataclass(frozen=True)
class Schedule:
    """How long a run is and when it validates and checkpoints, in optimizer steps (0: only at the end)."""

    total_steps: int
    val_every: int = 0
    checkpoint_every: int = 0

    @classmethod
    def from_epochs(cls, train: TrainConfig, steps_per_epoch: int, epochs: int | None = None) -> Schedule:
        """`epochs` (default `train.epochs`) passes of `steps_per_epoch`; validation and checkpoints
        every `train.val_every` / `train.checkpoint_every` epochs."""
        if steps_per_epoch < 1:
            raise CNError("the training data gives no full batch; lower train.batch_size or ingest more samples")
        return cls((epochs or train.epochs) * steps_per_epoch, steps_per_epoch * train.val_every,
                   steps_per_epoch * train.checkpoint_every)


def loss_weights(train: TrainConfig) -> LossWeights:
    """The stage-1 loss weights of the root config's train section."""
    return LossWeights(temperature=train.temperature, lambda_act=train.lambda_act, lambda_cls=train.lambda_cls,
                       use_action=train.use_action, use_cls=train.use_cls,
                       focal_gamma=train.focal_gamma, focal_alpha=train.focal_alpha)


def stage2_optimizer(model: torch.nn.Module, router: torch.nn.Module, train: TrainConfig, total_steps: int,
                     others: list | None = None):
    """AdamW + OneCycle for both stage 2s: the Brain Model (and `others`: fusion, LoRA) at
    `train.stage2_lr`, the router at `router_lr_mult` times it without decay. The router starts
    at uniform weights and is tiny, so it needs the larger step (NOTES: stage 2)."""
    lr = train.stage2_lr
    groups = [{"params": [p for p in model.parameters() if p.requires_grad] + list(others or [])},
              {"params": list(router.parameters()), "lr": lr * train.router_lr_mult, "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=lr, weight_decay=train.weight_decay)
    return opt, one_cycle(opt, [lr, lr * train.router_lr_mult], total_steps, train.pct_start)


def one_cycle(optimizer, lr: float | list[float], total_steps: int, pct_start: float):
    """OneCycleLR that also works for very short runs (torch divides by zero below 2 warm-up steps).

    lr: one peak for all parameter groups, or one per group.
    """
    total = max(total_steps, 3)
    pct = min(max(pct_start, 2.0 / total), 0.5)
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total, pct_start=pct)


def optimizer_step(loss: torch.Tensor, optimizer, scheduler, params, max_norm: float | None = 1.0) -> None:
    """Backward, clip, step and schedule: the loop body the stage-2 trainers share."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if max_norm is not None:
        torch.nn.utils.clip_grad_norm_(params, max_norm)
    optimizer.step()
    scheduler.step()


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices only; biases, norms and the frame-pool logits are not decayed (as nanoGPT)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]


class Stage1Trainer:
    """The stage-1 loop. `cfg` is the root config's train section (`cineneuron.config.TrainConfig`);
    `schedule` says how many steps and when to validate and checkpoint."""

    def __init__(self, model: BrainModel, cfg: TrainConfig, schedule: Schedule):
        self.cfg, self.schedule = cfg, schedule
        rt = train_runtime(cfg)  # device and precision: auto = cuda and bf16 when a GPU is visible
        self.device = torch.device(rt["device"])
        self.model = model.to(self.device)
        # The whole loss in one forward; under torchrun distributed.wrap_trainer puts DDP around it.
        self.objective = None
        self.weights = loss_weights(cfg)
        # Mixed precision (autocast) only on cuda; the weights and the optimiser stay fp32.
        self.use_amp = rt["precision"] != "fp32" and self.device.type == "cuda"
        self.amp_dtype = torch_dtype(rt["precision"]) if self.use_amp else torch.float32
        self.optimizer = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, foreach=True)
        self.scheduler = one_cycle(self.optimizer, cfg.lr, schedule.total_steps, cfg.pct_start)
        # A loss scaler only for float16; bfloat16 has float32's range.
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp and self.amp_dtype == torch.float16)
        self.step = 0  # optimizer steps done
        self.epoch = 0  # current epoch
        self.batch_in_epoch = 0  # batches of the current epoch already trained on
        self.val_metrics: dict = {}
        self._rng_cpu, self._rng_cuda = self._seeded_rng(cfg.seed)
        from cineneuron.train.objective import Stage1Objective

        self.objective = Stage1Objective(self.model, self.weights, self._autocast)

    # ------------------------------------------------------------ RNG
    def _cuda_devices(self) -> list:
        return [self.device] if self.device.type == "cuda" else []

    def _seeded_rng(self, seed: int):
        with torch.random.fork_rng(devices=self._cuda_devices()):
            torch.manual_seed(seed)
            return self._get_rng()

    def _get_rng(self):
        cuda = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        return torch.get_rng_state(), cuda

    @contextlib.contextmanager
    def _own_rng(self):
        """Run with the trainer's RNG state and keep what it advanced to; the global RNG is untouched."""
        with torch.random.fork_rng(devices=self._cuda_devices()):
            torch.set_rng_state(self._rng_cpu)
            if self._rng_cuda is not None:
                torch.cuda.set_rng_state(self._rng_cuda, self.device)
            yield
            self._rng_cpu, self._rng_cuda = self._get_rng()

    # ------------------------------------------------------------ one step
    def _autocast(self):
        if not self.use_amp:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype)

    def _targets(self, batch: dict) -> dict[str, torch.Tensor]:
        need = ["voxels", "subject", "img_frames", "txt"]
        need += ["act"] if self.weights.use_action else []
        need += ["label_vec"] if self.weights.use_cls else []
        missing = [k for k in need if k not in batch]
        if missing:
            raise CNError(f"training batch lacks {', '.join(missing)}; the data source must give {', '.join(need)}")
        to = lambda k: torch.as_tensor(batch[k]).to(self.device, torch.float32)
        out = {"img_frames": to("img_frames"), "txt": to("txt")}  # pooled inside the objective
        if self.weights.use_action:
            out["act"] = to("act")
        if self.weights.use_cls:
            out["label_vec"] = to("label_vec")
        return out

    def train_step(self, batch: dict) -> dict[str, float]:
        """One optimizer step on one batch; returns the losses and the learning rate used."""
        self.model.train()
        targets = self._targets(batch)
        voxels = torch.as_tensor(batch["voxels"]).to(self.device, torch.float32)  # (B, n_tr, V)
        with self._own_rng():
            losses = self.objective(voxels, batch["subject"], targets)  # DDP averages gradients in backward
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(losses["loss"]).backward()
        if self.cfg.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        lr = self.optimizer.param_groups[0]["lr"]
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.step += 1
        return {"step": self.step, "epoch": self.epoch, "lr": lr, **{k: float(v.detach()) for k, v in losses.items()}}

    # ------------------------------------------------------------ loop
    def _validate(self, val_fn) -> dict:
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            self.val_metrics = dict(val_fn(self.model) or {})
        self.model.train(was_training)
        return self.val_metrics

    def fit(
        self,
        train_batches: Callable[[int], Iterable[dict]],
        val_fn: Callable[[BrainModel], dict] | None = None,
        progress: Callable[[dict], None] | None = None,
        max_steps: int | None = None,
        checkpoint: Callable[[Stage1Trainer], None] | None = None,
    ) -> dict:
        """Train until `cfg.total_steps` (or until step `max_steps`, to stop early and resume later).

        progress(metrics) after every step; val_fn(model) -> metrics every `val_every` steps and at
        the end (in eval mode, no grad); checkpoint(trainer) every `checkpoint_every` steps and at
        the end. Returns {"step", "epoch", "train": last step's metrics, "val": last val metrics}.
        """
        stop = self.schedule.total_steps if max_steps is None else min(max_steps, self.schedule.total_steps)
        metrics: dict = {}
        while self.step < stop:
            yielded = 0
            for i, batch in enumerate(train_batches(self.epoch)):
                yielded += 1
                if i < self.batch_in_epoch:
                    continue  # trained on before the run was interrupted
                metrics = self.train_step(batch)
                self.batch_in_epoch = i + 1
                if progress:
                    progress(metrics)
                if val_fn and self.schedule.val_every and self.step % self.schedule.val_every == 0 and self.step < stop:
                    self._validate(val_fn)
                if checkpoint and self.schedule.checkpoint_every and self.step % self.schedule.checkpoint_every == 0 and self.step < stop:
                    checkpoint(self)
                if self.step >= stop:
                    break
            else:
                if yielded == 0:
                    raise CNError(f"the training data gave no batches for epoch {self.epoch}; check the subject and split have samples")
                self.epoch += 1
                self.batch_in_epoch = 0
        if val_fn:
            self._validate(val_fn)
        if checkpoint:
            checkpoint(self)
        return {"step": self.step, "epoch": self.epoch, "train": metrics, "val": self.val_metrics}

    # ------------------------------------------------------------ resume
    def state_dict(self) -> dict:
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng_cpu": self._rng_cpu,
            "rng_cuda": self._rng_cuda,
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "total_steps": self.schedule.total_steps,
            "config": self.cfg.model_dump(mode="json"),
            "schedule": {"total_steps": self.schedule.total_steps, "val_every": self.schedule.val_every,
                         "checkpoint_every": self.schedule.checkpoint_every},
        }

    def load_state(self, state: dict | str | Path) -> None:
        """Restore a `state_dict()` (or one saved with `save_state(dir)`). Load the model weights first."""
        if not isinstance(state, dict):
            state = load_state(state, STATE_NAME)
        if state["total_steps"] != self.schedule.total_steps:
            raise CNError(f"the saved run has {state['total_steps']} steps in all, this config {self.schedule.total_steps}; resume with the same steps/epochs")
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        self._rng_cpu = state["rng_cpu"]
        if self.device.type == "cuda" and state["rng_cuda"] is not None:
            self._rng_cuda = state["rng_cuda"]
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]

    load_state_dict = load_state

    def save_state(self, directory: str | Path) -> None:
        """Write trainer_state.safetensors (optimizer moments, RNG) + trainer_state.json (the rest)."""
        save_state(directory, STATE_NAME, self.state_dict())


def embed(model: BrainModel, voxels, subject: str, batch_size: int = 256) -> dict[str, torch.Tensor]:
    """Predictions for retrieval: img, txt, act and g as unit vectors, cls_probs in [0, 1].

    voxels: (N, n_tr, V) array or tensor. Runs in eval mode without grad, in batches; returns CPU
    float32 tensors and leaves the model's train/eval mode as it was.
    """
    device = next(model.parameters()).device
    x = torch.as_tensor(voxels, dtype=torch.float32)  # (N, n_tr, V)
    was_training = model.training
    model.eval()
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in ("img", "txt", "act", "g", "cls_probs")}
    with torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            out = model(x[start : start + batch_size].to(device), subject)
            for k in ("img", "txt", "act", "g"):
                parts[k].append(torch.nn.functional.normalize(out[k].float(), dim=-1).cpu())  # (b, d)
            parts["cls_probs"].append(torch.sigmoid(out["cls_logits"].float()).cpu())  # (b, 15)
    model.train(was_training)
    return {k: torch.cat(v) if v else torch.empty(0) for k, v in parts.items()}


def forever(batches):
    epoch = 0
    while True:
        yield from batches(epoch)
        epoch += 1


def fold_router_loss(model, router, batch: dict, subject: str, pool: torch.Tensor, temperature: float) -> torch.Tensor:
    """Router InfoNCE on held-out clips: the backbone predicts as at test time (eval mode, no
    gradient), so only the router learns from these samples."""
    model.eval()
    with torch.no_grad():
        out = model(batch["voxels"].to(pool.device), subject)
    model.train()
    from cineneuron.decode.router import query_vector, router_infonce

    w = router(out["F"])  # (B, 3)
    q = query_vector(out["txt"], out["img"], out["act"], w)  # (B, d_mix)
    return router_infonce(q, pool, batch["clip_row"].to(pool.device), temperature)
