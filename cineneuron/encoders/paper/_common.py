"""Pieces every `paper` encoder shares: config fields, device choice, frame preprocessing.

Nothing here imports torch at module level: the registry imports the encoder modules just to
list them, and `cn init` must stay light. Torch comes in with the first call that needs it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from cineneuron.encoders.registry import EncoderConfig
from cineneuron.errors import CNError

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Config fields that change how fast an encoder runs, not what it computes: kept out of identity().
RUNTIME_FIELDS = {"device", "batch_size", "precision", "weights_dir"}

Triple = tuple[float, float, float]


class RuntimeConfig(EncoderConfig):
    """Fields every paper encoder has. `precision` is the compute dtype of the model."""

    device: str = Field("cpu", pattern=r"^(cpu|cuda(:\d+)?)$", description="where the model runs (set from encoders.device)")
    batch_size: int = Field(16, gt=0, description="images, clips or prompts per forward pass")
    precision: Literal["fp32", "fp16", "bf16"] = Field("fp32", description="model compute dtype")
    weights_dir: str | None = Field(None, description="base of relative weight paths (encoders.weights_dir); else $CN_WEIGHTS_DIR")


def resolve_path(path: str, weights_dir: str | None = None) -> Path:
    """A config path: `~` expanded; a relative path is taken under `weights_dir`, else $CN_WEIGHTS_DIR when set."""
    p = Path(path).expanduser()
    root = weights_dir or os.environ.get("CN_WEIGHTS_DIR")
    if root and not p.is_absolute():
        p = Path(root).expanduser() / p
    return p


def torch_device(device: str):
    import torch

    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise CNError("encoder config says device 'cuda' but no CUDA GPU is visible; set device to 'cpu'")
    return torch.device(device)


def torch_dtype(precision: str):
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


def check_frames(frames: np.ndarray, who: str) -> np.ndarray:
    """Frames must be (B, T, H, W, 3) uint8."""
    frames = np.asarray(frames)
    if frames.ndim != 5 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise CNError(f"{who} takes frames (B, T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    return frames


def pick_frames(n_have: int, n_want: int, who: str) -> np.ndarray:
    """Indices of `n_want` frames out of `n_have`, by the rule ViCLIP's demo uses (every step-th)."""
    if n_have < n_want:
        raise CNError(f"{who} needs {n_want} frames per clip, got {n_have}; set the preset's frames.n to {n_want}")
    step = n_have // n_want
    return np.arange(0, n_have, step)[:n_want]


def squash_resize(frames: np.ndarray, size: int) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, size, size, 3) uint8 with OpenCV's bilinear resize, aspect not
    kept and no antialias: what the official ViCLIP demo does (`cv2.resize` to 224x224)."""
    import cv2

    if frames.shape[1:3] == (size, size):
        return frames
    return np.stack([cv2.resize(np.ascontiguousarray(f), (size, size), interpolation=cv2.INTER_LINEAR) for f in frames])


def preprocess(frames: np.ndarray, size: int, mean: Triple, std: Triple, interpolation: str, device, dtype,
               resize: str = "short_side_crop"):
    """(N, H, W, 3) uint8 -> (N, 3, size, size) normalised tensor.

    Square frames of the right size (what the preset's reader gives) are only scaled and
    normalised, which is exactly what the models' own processors do to them. Other sizes, with
    resize "short_side_crop", are resized on the shortest edge and centre-cropped, in float with
    antialiasing (close to, not bit-equal with, the PIL resize the processors use); with
    "squash" they are resized to size x size by `squash_resize` (ViCLIP's upstream).
    """
    import torch
    import torch.nn.functional as F

    if resize == "squash":
        frames = squash_resize(frames, size)
    x = torch.from_numpy(np.ascontiguousarray(frames)).to(device)  # (N, H, W, 3) uint8
    x = x.permute(0, 3, 1, 2).float().div(255.0)  # (N, 3, H, W) in [0, 1]
    h, w = x.shape[-2:]
    if (h, w) != (size, size):
        scale = size / min(h, w)
        nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
        x = F.interpolate(x, size=(nh, nw), mode=interpolation, align_corners=False, antialias=True)
        top, left = (nh - size) // 2, (nw - size) // 2
        x = x[..., top : top + size, left : left + size].clamp(0.0, 1.0)  # (N, 3, size, size)
    m = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=device).view(1, 3, 1, 1)
    return ((x - m) / s).to(dtype)  # (N, 3, size, size)


def resize_note(size: int, interpolation: str) -> str:
    return f"shortest edge to {size} ({interpolation}) + centre crop, only if frames are not {size}x{size}"


def batches(n: int, size: int):
    """Slices covering range(n) in chunks of `size`."""
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def encode_clips(enc, frames: np.ndarray, n: int, forward) -> np.ndarray:
    """The video encoders' shared loop: pick n frames, preprocess per batch, run `forward`.

    frames (B, T, H, W, 3) uint8 -> (B, dim) float32; forward maps (b, n, 3, S, S) to (b, dim);
    outputs are L2-normalised when the encoder's config asks for it.
    """
    import torch
    import torch.nn.functional as F

    c, who = enc.config, enc.name
    frames = check_frames(frames, who)
    frames = frames[:, pick_frames(frames.shape[1], n, who)]  # (B, n, H, W, 3)
    b = frames.shape[0]
    dev, dt = torch_device(c.device), torch_dtype(c.precision)
    out = np.zeros((b, enc.dim), np.float32)
    with torch.inference_mode():
        for sl in batches(b, c.batch_size):
            clips = frames[sl]
            x = preprocess(clips.reshape(-1, *clips.shape[2:]), c.size, c.mean, c.std, c.interpolation, dev, dt,
                           resize=getattr(c, "resize", "short_side_crop"))
            e = forward(x.view(clips.shape[0], n, 3, c.size, c.size)).float()  # (b, dim)
            out[sl] = (F.normalize(e, dim=-1) if c.normalize else e).cpu().numpy()
    return out


def identity_dict(
    enc, *, architecture: dict, weights_files: list[str], sha256: str, preprocessing: dict, path_fields=()
) -> dict:
    """What the store records for an encoder: everything that changes what its vectors mean.

    Runtime fields (device, batch size, precision) and where the weights lie (`path_fields`) are
    left out, so the same weights moved to another folder or run on a GPU keep the identity; the
    weights themselves are pinned by their sha256.
    """
    drop = RUNTIME_FIELDS | set(path_fields)
    config = {k: v for k, v in enc.config.model_dump().items() if k not in drop}
    return {
        "name": enc.name,
        "modality": enc.modality,
        "dim": enc.dim,
        "architecture": architecture,
        "weights": {"files": weights_files, "sha256": sha256},
        "preprocessing": preprocessing,
        "config": config,
    }


def check_dim(enc, produced: int) -> None:
    if produced != enc.dim:
        raise CNError(
            f"encoder {enc.name!r} produces {produced}-d vectors but the preset says dim {enc.dim}; fix the preset's dim"
        )


def hf_config(path: Path) -> dict:
    """A transformers config.json without its bookkeeping keys (_name_or_path, versions)."""
    cfg = json.loads(Path(path).read_text())
    return {k: v for k, v in cfg.items() if not k.startswith("_") and k != "transformers_version"}


def hf_dtype_kwargs(precision: str) -> dict:
    """`dtype=` for from_pretrained in transformers 5, `torch_dtype=` before."""
    import transformers

    key = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    return {key: torch_dtype(precision)}
