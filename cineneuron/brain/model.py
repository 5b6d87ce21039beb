"""The Brain Model: a backbone (MLP or transformer) plus the stage-1 heads; and its checkpoints.

    voxels (B, n_tr, V), subject -> backbone -> g (B, D), F (B, L, D_f)
                                 -> heads(g) -> img, txt, act, cls_logits

Checkpoints are safetensors + JSON, never pickle:
    model.safetensors   the weights
    config.json         {"format", "model_config" (rebuilds the model), "extra"}
Training state (optimizer, scheduler, RNG, counters) is written beside them by
`save_state`/`load_state`, which split any nested state dict into tensors (safetensors) and
everything else (JSON).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from cineneuron.brain.heads import Heads
from cineneuron.brain.mlp import MLPBackbone, MLPConfig, subject_key
from cineneuron.brain.transformer import TransformerBackbone, TransformerConfig
from cineneuron.atomic import atomic_write
from cineneuron.errors import CNError

CHECKPOINT_FORMAT = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


class SubjectSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n_tr: int = Field(gt=0, description="TRs per sample")
    n_voxels: int = Field(gt=0, description="voxels per TR after masking")


class TargetDims(BaseModel):
    model_config = ConfigDict(extra="forbid")

    img: int = Field(gt=0, description="image embedding dim")
    txt: int = Field(gt=0, description="text embedding dim")
    act: int = Field(gt=0, description="action embedding dim")
    n_frames: int = Field(gt=0, description="frames per clip in the image target")

    @classmethod
    def from_preset(cls, preset) -> TargetDims:
        """Dims of a `cineneuron.schemas.presets.Preset`."""
        d = preset.dims()
        return cls(img=d["image"], txt=d["text"], act=d["action"], n_frames=preset.frames.n)


class BrainModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backbone: Literal["mlp", "transformer"] = "mlp"
    subjects: dict[str, SubjectSpec]
    targets: TargetDims
    mlp: MLPConfig = Field(default_factory=MLPConfig)
    transformer: TransformerConfig = Field(default_factory=TransformerConfig)
    head_hidden: int | None = Field(None, description="inner width of the projection heads; None: the width of g")
    dropout: float = Field(0.1, ge=0.0, lt=1.0)

    @property
    def d_f(self) -> int:
        """Width of the fMRI embedding F (B, L, d_f), whichever backbone makes it."""
        return (self.mlp if self.backbone == "mlp" else self.transformer).token_dim


class BrainModel(nn.Module):
    def __init__(self, cfg: BrainModelConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.backbone == "mlp":
            self.backbone = MLPBackbone(cfg.mlp, cfg.subjects, cfg.dropout)
        else:
            self.backbone = TransformerBackbone(cfg.transformer, cfg.subjects, cfg.dropout)
        t = cfg.targets
        self.heads = Heads(self.backbone.g_dim, t.img, t.txt, t.act, t.n_frames, cfg.head_hidden)

    def check_input(self, voxels: torch.Tensor, subject: str) -> None:
        spec = self.cfg.subjects.get(subject)
        if spec is None:
            raise CNError(f"the model was not trained for subject {subject!r}; it knows {', '.join(self.cfg.subjects)}")
        want = (spec.n_tr, spec.n_voxels)
        if voxels.ndim != 3 or tuple(voxels.shape[1:]) != want:
            raise CNError(f"subject {subject!r} needs voxels shaped (batch, {want[0]}, {want[1]}), got {tuple(voxels.shape)}")

    def forward(self, voxels: torch.Tensor, subject: str) -> dict[str, torch.Tensor]:
        self.check_input(voxels, subject)
        g, F = self.backbone(voxels, subject)  # (B, D), (B, L, D_f)
        return {"g": g, "F": F, **self.heads(g)}  # + img, txt, act, cls_logits

    def pool_image_targets(self, img_frames: torch.Tensor) -> torch.Tensor:
        """The image target of stage 1: (B, T, d_img) frames -> (B, d_img), see heads.FramePool."""
        return self.heads.pool_image_targets(img_frames)

    def subject_parameters(self, subject: str) -> list[nn.Parameter]:
        return list(self.backbone.subject_in[subject_key(subject)].parameters())


def create_brain_model(cfg: BrainModelConfig | dict, seed: int | None = None) -> BrainModel:
    """Build a Brain Model from its config; with `seed`, the initial weights depend on it alone."""
    if isinstance(cfg, dict):
        cfg = BrainModelConfig.model_validate(cfg)
    if seed is None:
        return BrainModel(cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return BrainModel(cfg)


# ---------------------------------------------------------------- checkpoints


def save_checkpoint(directory: str | Path, model: BrainModel, cfg: BrainModelConfig, extra: dict | None = None) -> Path:
    """Write model.safetensors and config.json into `directory`.

    extra: JSON-able facts the run wants kept (preset name/hash, mask hash, store version, step).
    """
    from safetensors.torch import save_file

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"format": CHECKPOINT_FORMAT, "model_config": cfg.model_dump(mode="json"), "extra": extra or {}}
    text = json.dumps(meta, indent=2, sort_keys=True)  # before any write: fails on non-JSON extra
    atomic_write(d / WEIGHTS_FILE, lambda p: save_file(tensors, str(p)))
    atomic_write(d / CONFIG_FILE, lambda p: p.write_text(text))
    return d


def load_checkpoint(directory: str | Path, device: str | torch.device = "cpu") -> tuple[BrainModel, BrainModelConfig, dict]:
    """Rebuild the model of `save_checkpoint`; returns (model in eval mode, config, extra)."""
    from safetensors.torch import load_file

    d = Path(directory)
    if not (d / WEIGHTS_FILE).is_file() or not (d / CONFIG_FILE).is_file():
        raise CNError(f"no Brain Model checkpoint in {d} (expected {WEIGHTS_FILE} and {CONFIG_FILE}); train one with `cn train --stage 1`")
    meta = json.loads((d / CONFIG_FILE).read_text())
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise CNError(f"checkpoint {d} has format {meta.get('format')}, this version reads {CHECKPOINT_FORMAT}; retrain or use a matching version")
    cfg = BrainModelConfig.model_validate(meta["model_config"])
    model = BrainModel(cfg)
    model.load_state_dict(load_file(str(d / WEIGHTS_FILE), device="cpu"))
    return model.to(device).eval(), cfg, meta.get("extra", {})


# ------------------------------------------- nested state <-> safetensors + JSON


def flatten_state(obj: Any) -> tuple[Any, dict[str, torch.Tensor]]:
    """Split a nested state (dicts, lists, tuples, tensors, scalars) into JSON and tensors.

    Each tensor becomes {"__tensor__": "tN"} in the JSON and tensors["tN"]; dicts with non-string
    keys (optimizer state is keyed by int) and tuples are tagged so they come back as they were.
    """
    tensors: dict[str, torch.Tensor] = {}

    def enc(x):
        if isinstance(x, torch.Tensor):
            key = f"t{len(tensors)}"
            tensors[key] = x.detach().cpu().contiguous()
            return {"__tensor__": key}
        if isinstance(x, dict):
            if all(isinstance(k, str) and not k.startswith("__") for k in x):
                return {k: enc(v) for k, v in x.items()}
            return {"__items__": [[enc(k), enc(v)] for k, v in x.items()]}
        if isinstance(x, tuple):
            return {"__tuple__": [enc(v) for v in x]}
        if isinstance(x, list):
            return [enc(v) for v in x]
        if x is None or isinstance(x, (bool, int, float, str)):
            return x
        raise TypeError(f"cannot store a {type(x).__name__} as JSON or a tensor")

    return enc(obj), tensors


def unflatten_state(meta: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of `flatten_state`."""
    if isinstance(meta, list):
        return [unflatten_state(v, tensors) for v in meta]
    if isinstance(meta, dict):
        if set(meta) == {"__tensor__"}:
            return tensors[meta["__tensor__"]]
        if set(meta) == {"__tuple__"}:
            return tuple(unflatten_state(v, tensors) for v in meta["__tuple__"])
        if set(meta) == {"__items__"}:
            return {unflatten_state(k, tensors): unflatten_state(v, tensors) for k, v in meta["__items__"]}
        return {k: unflatten_state(v, tensors) for k, v in meta.items()}
    return meta


def save_state(directory: str | Path, name: str, state: dict) -> None:
    """Write a nested state dict as NAME.safetensors + NAME.json."""
    from safetensors.torch import save_file

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    meta, tensors = flatten_state(state)
    text = json.dumps(meta, sort_keys=True)
    atomic_write(d / f"{name}.safetensors", lambda p: save_file(tensors, str(p)))
    atomic_write(d / f"{name}.json", lambda p: p.write_text(text))


def load_state(directory: str | Path, name: str) -> dict:
    from safetensors.torch import load_file

    d = Path(directory)
    if not (d / f"{name}.json").is_file():
        raise CNError(f"no saved training state {name!r} in {d}; start without --resume")
    tensors = load_file(str(d / f"{name}.safetensors"), device="cpu")
    return unflatten_state(json.loads((d / f"{name}.json").read_text()), tensors)

