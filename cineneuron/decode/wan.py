"""Wan2.1 text-to-video decoder through diffusers, driven by a given conditioning (no text encoder).

`WanDecoderConfig` is torch-free so the CLI can validate settings; torch, diffusers and imageio
are imported inside the functions that need them. `check_inputs` runs before any model is
built: diffusers would silently round a frame count, and we refuse instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from cineneuron.errors import CNError, MissingWeightsError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

# (frames, height, width) per dataset, as in the paper.
DATASET_SIZES: dict[str, tuple[int, int, int]] = {"cc2017": (57, 624, 624), "cinebrain": (33, 480, 720)}

# The toy and full-size configurations are data: schemas/presets/models/wan-toy.json, wan2.1-t2v-1.3b.json.
_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


class WanDecoderConfig(BaseModel):
    """Where the generator comes from and what it renders. Unset sizes come from `dataset`."""

    model_config = ConfigDict(extra="forbid")

    model_dir: Path | None = None  # local diffusers-format Wan2.1 folder (transformer/, vae/, scheduler/)
    toy: bool = False  # random toy-size components instead of model_dir
    random_init: str | None = None  # a model config name (schemas/presets/models): random weights at that size
    toy_text_dim: int = 32  # toy only: match the store's cond width
    lora_dir: Path | None = None  # stage-2 LoRA saved by cineneuron.train.wan_lora.save_lora
    dataset: Literal["cc2017", "cinebrain"] = "cc2017"
    num_frames: int | None = None
    height: int | None = None
    width: int | None = None
    num_inference_steps: int = 50
    guidance_scale: float = 5.0
    text_len: int = 512  # cond is zero-padded to this, as the UMT5 path does
    device: str | None = None  # default: cuda if available, else cpu
    dtype: Literal["bf16", "fp16", "fp32"] | None = None  # default: bf16 on cuda, fp32 on cpu
    seed: int = 0

    @model_validator(mode="after")
    def _fill_defaults(self) -> "WanDecoderConfig":
        frames, height, width = DATASET_SIZES[self.dataset]
        self.num_frames = frames if self.num_frames is None else self.num_frames
        self.height = height if self.height is None else self.height
        self.width = width if self.width is None else self.width
        if self.device is None:
            self.device = _default_device()
        if self.dtype is None:
            self.dtype = "bf16" if self.device.startswith("cuda") else "fp32"
        return self


def _default_device() -> str:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def check_inputs(cfg: WanDecoderConfig) -> None:
    """Refuse settings the generator cannot honour exactly. Cheap; loads nothing."""
    if sum((cfg.model_dir is not None, cfg.toy, cfg.random_init is not None)) != 1:
        raise CNError("give the decoder one of model_dir (a local diffusers-format Wan2.1 folder), toy=True or random_init")
    f, h, w = cfg.num_frames, cfg.height, cfg.width
    if f < 1 or (f - 1) % 4:
        near = max(1, f - (f - 1) % 4)
        raise CNError(f"num_frames must be 4k+1 (e.g. 33, 57, 81), got {f}; use {near} or {near + 4}")
    for name, v in (("height", h), ("width", w)):
        if v < 16 or v % 16:
            raise CNError(f"{name} must be a positive multiple of 16, got {v}")
    if cfg.num_inference_steps < 1:
        raise CNError(f"num_inference_steps must be at least 1, got {cfg.num_inference_steps}")
    if cfg.text_len < 1:
        raise CNError(f"text_len must be at least 1, got {cfg.text_len}")


def wan_architecture(name: str, text_dim: int | None = None) -> dict:
    """{"transformer", "vae", "scheduler"} kwargs of a Wan model config kept as data (wan-toy, wan2.1-t2v-1.3b)."""
    from cineneuron.schemas.models import load_model_config

    cfg = load_model_config(name, "wan")
    t = {k: tuple(v) if k == "patch_size" else v for k, v in cfg["transformer"].items()}
    if text_dim is not None:
        t["text_dim"] = int(text_dim)
    return {"transformer": t, "vae": cfg["vae"], "scheduler": cfg["scheduler"]}


def random_components(name: str, text_dim: int | None = None, seed: int = 0, device=None) -> dict[str, Any]:
    """VAE, transformer and scheduler of a Wan model config with seeded random weights (global RNG untouched).

    device: where the weights are made (torch.device("meta") for sizes only, "cuda" to skip a host copy).
    """
    import diffusers
    import torch
    from diffusers import AutoencoderKLWan, WanTransformer3DModel

    arch = wan_architecture(name, text_dim)
    with torch.random.fork_rng(devices=[]), torch.device(device or "cpu"):
        torch.manual_seed(seed)
        vae = AutoencoderKLWan(**arch["vae"])
        torch.manual_seed(seed)
        transformer = WanTransformer3DModel(**arch["transformer"])
    sched = dict(arch["scheduler"])
    scheduler = getattr(diffusers, sched.pop("_class_name"))(**sched)
    return {"tokenizer": None, "text_encoder": None, "vae": vae, "scheduler": scheduler, "transformer": transformer}


def get_dummy_components(text_dim: int = 32, seed: int = 0) -> dict[str, Any]:
    """Toy VAE, transformer and scheduler with seeded random weights (the `wan-toy` model config)."""
    return random_components("wan-toy", text_dim, seed)


def _require(path: Path) -> Path:
    if not path.exists():
        raise MissingWeightsError(
            f"missing {path}: model_dir must be a diffusers-format Wan2.1 folder with transformer/, vae/ and scheduler/"
        )
    return path


def _check_weights(sub: Path) -> None:
    """config.json plus either one safetensors file or an index whose shards all exist."""
    _require(sub / "config.json")
    index = sorted(sub.glob("*.safetensors.index.json"))
    if index:
        for shard in sorted(set(json.loads(index[0].read_text())["weight_map"].values())):
            _require(sub / shard)
    elif not any(sub.glob("*.safetensors")):
        _require(sub / "diffusion_pytorch_model.safetensors")


def load_components(model_dir: Path, dtype: str = "fp32") -> dict[str, Any]:
    """Components from a local folder; weights in safetensors only, never a download."""
    root = _require(Path(model_dir))  # every file is checked before the heavy imports
    for sub in ("transformer", "vae"):
        _check_weights(root / sub)
    sched_cfg = _require(root / "scheduler" / "scheduler_config.json")
    import diffusers
    import torch
    from diffusers import AutoencoderKLWan, WanTransformer3DModel

    sched_cls = getattr(diffusers, json.loads(sched_cfg.read_text())["_class_name"])
    kw = dict(use_safetensors=True, local_files_only=True)
    dt = getattr(torch, _DTYPES[dtype])
    transformer = WanTransformer3DModel.from_pretrained(root / "transformer", torch_dtype=dt, **kw)
    vae = AutoencoderKLWan.from_pretrained(root / "vae", torch_dtype=torch.float32, **kw)  # fp32: bf16 VAE degrades
    scheduler = sched_cls.from_pretrained(root / "scheduler")
    return {"tokenizer": None, "text_encoder": None, "vae": vae, "scheduler": scheduler, "transformer": transformer}


def cast_transformer(transformer, dtype) -> None:
    """Cast as from_pretrained(torch_dtype=...) does: the modules Wan keeps in fp32 stay fp32."""
    import torch

    if dtype == torch.float32:
        return
    keep = set(transformer._keep_in_fp32_modules or ())
    for name, t in [*transformer.named_parameters(), *transformer.named_buffers()]:
        if t.is_floating_point():
            t.data = t.data.to(torch.float32 if keep & set(name.split(".")) else dtype)


def build_pipeline(cfg: WanDecoderConfig):
    """WanPipeline without a text encoder, on cfg.device, LoRA loaded when cfg.lora_dir is set."""
    check_inputs(cfg)
    import torch
    from diffusers import WanPipeline

    if cfg.toy or cfg.random_init:
        dev = cfg.device if cfg.random_init else None  # a full-size random DiT is made where it runs
        comps = random_components(cfg.random_init or "wan-toy", cfg.toy_text_dim, seed=0, device=dev)
        cast_transformer(comps["transformer"], getattr(torch, _DTYPES[cfg.dtype]))
    else:
        comps = load_components(cfg.model_dir, cfg.dtype)
    pipe = WanPipeline(**comps).to(cfg.device)
    pipe.set_progress_bar_config(disable=True)
    if cfg.lora_dir is not None:
        from cineneuron.decode.lora import load_lora

        load_lora(pipe, cfg.lora_dir)
    return pipe


def pad_text(x: "torch.Tensor", length: int) -> "torch.Tensor":
    """(B, L, D) -> (B, length, D) with zeros after the given tokens (the UMT5 path's padding)."""
    import torch.nn.functional as F

    if x.shape[1] > length:
        raise CNError(f"conditioning has {x.shape[1]} tokens, more than text_len={length}")
    return F.pad(x, (0, 0, 0, length - x.shape[1]))


class WanDecoder:
    """fused conditioning C (B, L, D) -> B clips of (F, H, W, 3) uint8."""

    def __init__(self, cfg: WanDecoderConfig, pipeline=None):
        check_inputs(cfg)  # before any weight is touched
        self.cfg = cfg
        self.pipe = pipeline if pipeline is not None else build_pipeline(cfg)

    @property
    def text_dim(self) -> int:
        return int(self.pipe.transformer.config.text_dim)

    def _prepare(self, x, name: str, batch: int | None = None) -> "torch.Tensor":
        import torch

        x = torch.as_tensor(x)
        if x.ndim != 3 or x.shape[-1] != self.text_dim:
            raise CNError(f"{name} must be (B, L, {self.text_dim}) for this generator, got {tuple(x.shape)}")
        if batch is not None and x.shape[0] not in (1, batch):
            raise CNError(f"{name} has batch {x.shape[0]}; give 1 or {batch}")
        x = pad_text(x, self.cfg.text_len)  # (B, text_len, D)
        if batch is not None:
            x = x.expand(batch, -1, -1)  # one negative for the whole batch
        return x.to(self.cfg.device)

    def run(self, cond, negative=None, output_type: str = "np"):
        """The raw pipeline output (.frames): np (B, F, H, W, 3) in [0, 1], or latents."""
        import torch

        check_inputs(self.cfg)
        cfg = self.cfg
        cond = self._prepare(cond, "cond")
        if negative is None and cfg.guidance_scale > 1:
            raise CNError("guidance_scale > 1 needs negative (the encoded empty prompt, shape (1, L0, D))")
        neg = None if negative is None else self._prepare(negative, "negative", batch=cond.shape[0])
        gen = torch.Generator(device=cfg.device).manual_seed(cfg.seed)
        return self.pipe(
            prompt_embeds=cond, negative_prompt_embeds=neg, num_frames=cfg.num_frames, height=cfg.height,
            width=cfg.width, num_inference_steps=cfg.num_inference_steps, guidance_scale=cfg.guidance_scale,
            generator=gen, output_type=output_type,
        ).frames  # fmt: skip

    def generate(self, cond, negative=None) -> list["np.ndarray"]:
        """cond (B, L, D), negative (1, L0, D) -> list of B arrays (F, H, W, 3) uint8."""
        import numpy as np

        video = np.asarray(self.run(cond, negative, output_type="np"))  # (B, F, H, W, 3) in [0, 1]
        from cineneuron.frames import to_uint8

        return [to_uint8(v) for v in video]
