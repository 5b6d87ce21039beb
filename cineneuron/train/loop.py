"""Stage-1 trainer core: AdamW + OneCycleLR over batches from an abstract data source.

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
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from cineneuron.brain.losses import LossWeights
from cineneuron.brain.model import BrainModel, load_state, save_state
from cineneuron.errors import CNError

STATE_NAME = "trainer_state"


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lr: float = Field(3e-4, gt=0, description="peak learning rate of the OneCycle schedule")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay (matrices only)")
    steps: int = Field(8000, gt=0, description="optimizer steps (used when epochs is not set)")
    epochs: int | None = Field(None, gt=0, description="train this many epochs instead of `steps`")
    steps_per_epoch: int | None = Field(None, gt=0, description="batches per epoch; needed with `epochs`")
    batch_size: int = Field(144, gt=0, description="samples per batch (read by the data source)")
    pct_start: float = Field(0.3, gt=0, lt=1, description="share of the steps spent warming up")
    temperature: float = Field(0.07, gt=0)
    lambda_act: float = Field(0.1, ge=0, description="weight of the action InfoNCE (paper 0.1)")
    lambda_cls: float = Field(10.0, ge=0, description="weight of the category loss, BCE + focal (paper 10)")
    use_action: bool = True
    use_cls: bool = True
    focal_gamma: float = Field(2.0, ge=0)
    focal_alpha: float | None = Field(None, ge=0, le=1)
    grad_clip: float | None = Field(1.0, gt=0, description="max gradient norm; None: no clipping")
    seed: int = 0
    device: str = Field("auto", description="'auto' (cuda when present), 'cpu', 'cuda', 'cuda:1'")
    amp: bool = Field(True, description="mixed precision; only ever used on CUDA")
    val_every: int = Field(0, ge=0, description="call val_fn every N steps (0: only at the end)")
    checkpoint_every: int = Field(0, ge=0, description="call the checkpoint hook every N steps (0: only at the end)")

    @model_validator(mode="after")
    def _epochs_need_length(self):
        if self.epochs is not None and self.steps_per_epoch is None:
            raise ValueError("`epochs` needs `steps_per_epoch` (batches per epoch); or give `steps` instead")
        return self

    @property
    def total_steps(self) -> int:
        return self.steps if self.epochs is None else self.epochs * self.steps_per_epoch

    def loss_weights(self) -> LossWeights:
        return LossWeights(
            temperature=self.temperature, lambda_act=self.lambda_act, lambda_cls=self.lambda_cls,
            use_action=self.use_action, use_cls=self.use_cls,
            focal_gamma=self.focal_gamma, focal_alpha=self.focal_alpha,
        )


def one_cycle(optimizer, lr: float | list[float], total_steps: int, pct_start: float):
    """OneCycleLR that also works for very short runs (torch divides by zero below 2 warm-up steps).

    lr: one peak for all parameter groups, or one per group.
    """
    total = max(total_steps, 3)
    pct = min(max(pct_start, 2.0 / total), 0.5)
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total, pct_start=pct)


def optimizer_step(loss: torch.Tensor, optimizer, scheduler, params, max_norm: float = 1.0) -> None:
    """Backward, clip, step and schedule: the loop body the stage-2 trainers share."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, max_norm)
    optimizer.step()
    scheduler.step()


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise CNError(f"device {name!r} asked for but no CUDA GPU is available; use --device cpu")
    return dev


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices only; biases, norms and the frame-pool logits are not decayed (as nanoGPT)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]


class Stage1Trainer:
    def __init__(self, model: BrainModel, cfg: TrainConfig):
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.model = model.to(self.device)
        # The whole loss in one forward; under torchrun distributed.wrap_trainer puts DDP around it.
        self.objective = None
        self.weights = cfg.loss_weights()
        self.use_amp = cfg.amp and self.device.type == "cuda"
        self.amp_dtype = torch.bfloat16 if self.use_amp and torch.cuda.is_bf16_supported() else torch.float16
        self.optimizer = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, foreach=True)
        self.scheduler = one_cycle(self.optimizer, cfg.lr, cfg.total_steps, cfg.pct_start)
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
        stop = self.cfg.total_steps if max_steps is None else min(max_steps, self.cfg.total_steps)
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
                if val_fn and self.cfg.val_every and self.step % self.cfg.val_every == 0 and self.step < stop:
                    self._validate(val_fn)
                if checkpoint and self.cfg.checkpoint_every and self.step % self.cfg.checkpoint_every == 0 and self.step < stop:
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
            "total_steps": self.cfg.total_steps,
            "config": self.cfg.model_dump(mode="json"),
        }

    def load_state(self, state: dict | str | Path) -> None:
        """Restore a `state_dict()` (or one saved with `save_state(dir)`). Load the model weights first."""
        if not isinstance(state, dict):
            state = load_state(state, STATE_NAME)
        if state["total_steps"] != self.cfg.total_steps:
            raise CNError(f"the saved run has {state['total_steps']} steps in all, this config {self.cfg.total_steps}; resume with the same steps/epochs")
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
