"""Evaluation models loaded from local paths, each behind a small uniform interface.

- `load_videomae(dir)`: `VideoMAEForVideoClassification.from_pretrained(dir)` (Kinetics-400)
  → `VideoClassifier.predict_proba(videos) -> (N, C)`;
- `load_vit(dir)`: `ViTForImageClassification.from_pretrained(dir)` (ImageNet)
  → `FrameClassifier.predict_proba(frames) -> (M, C)`;
- `load_clip(spec, model_name)`: OpenCLIP from a weights file or `local-dir:/dir`
  → `ImageEmbedder.embed(frames) -> (M, D)`;
- `load_dinov2(dir)`: `Dinov2Model.from_pretrained(dir)`, its `pooler_output`
  → `ImageEmbedder.embed(frames) -> (M, D)`;
- `load_raft(file)`: torchvision `raft_small`/`raft_large(weights=None)` + a local state dict
  → `RaftFlow.flow(frames) -> (T−1, H, W, 2)`.

Every loader returns `(model, None)`, or `(None, notice)` when the path is not given or does
not exist: the caller skips the metrics that need the model and prints the notice. A path that
exists but does not load raises `CNError` (that is a broken file, not a missing one).

Preprocessing runs on torch tensors: when the model folder has `preprocessor_config.json`
(as the published checkpoints do), its resize, centre crop, resample, mean and std are used;
otherwise the frames are resized to the model config's `image_size` and normalised with the
family's usual statistics (ImageNet for VideoMAE and DINOv2, 0.5/0.5 for ViT). Frames are
(T, H, W, 3) uint8 or [0, 1] floats, or channel-first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cineneuron.errors import CNError
from cineneuron.eval.frames import to_float01
from cineneuron.frames import resample

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
HALF_MEAN, HALF_STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
RESAMPLE = {2: "bilinear", 3: "bicubic", "bilinear": "bilinear", "bicubic": "bicubic"}


def _skip(what: str, path, needed_for: str) -> tuple[None, str]:
    where = "no path configured" if not path else f"nothing at {str(path)!r}"
    return None, f"skipped {needed_for}: {what} weights not found ({where})"


# ------------------------------------------------------------------ preprocessing


@dataclass
class ImageSpec:
    """How frames become model input: resize (short side or exact), optional crop, normalisation."""

    resize: int | tuple[int, int]  # int = shortest edge, tuple = exact (H, W)
    crop: tuple[int, int] | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resample: str = "bilinear"


def _hw(d: dict | int | None) -> int | tuple[int, int] | None:
    """HF "size"/"crop_size" entry → shortest edge (int) or exact (H, W)."""
    if d is None or isinstance(d, int):
        return d
    if "shortest_edge" in d:
        return int(d["shortest_edge"])
    return int(d["height"]), int(d["width"])


def image_spec(folder: Path, image_size: int, mean, std) -> ImageSpec:
    """The folder's `preprocessor_config.json` when present, else resize to `image_size`."""
    cfg_path = Path(folder) / "preprocessor_config.json"
    if not cfg_path.is_file():
        return ImageSpec((image_size, image_size), None, tuple(mean), tuple(std))
    cfg = json.loads(cfg_path.read_text())
    resize = _hw(cfg.get("size")) or (image_size, image_size)
    crop = _hw(cfg.get("crop_size")) if cfg.get("do_center_crop", "crop_size" in cfg) else None
    crop = (crop, crop) if isinstance(crop, int) else crop
    return ImageSpec(resize, crop, tuple(cfg.get("image_mean", mean)), tuple(cfg.get("image_std", std)),
                     RESAMPLE.get(cfg.get("resample", 2), "bilinear"))


def preprocess(frames, spec: ImageSpec):
    """(M, H, W, 3) frames → normalised torch tensor (M, 3, h, w)."""
    import torch
    from torchvision.transforms.v2 import functional as TF
    from torchvision.transforms import InterpolationMode

    x = torch.from_numpy(to_float01(frames)).float().permute(0, 3, 1, 2)  # (M, 3, H, W)
    interp = InterpolationMode.BICUBIC if spec.resample == "bicubic" else InterpolationMode.BILINEAR
    size = [spec.resize] if isinstance(spec.resize, int) else list(spec.resize)
    x = TF.resize(x, size, interpolation=interp, antialias=True)
    if spec.crop is not None:
        x = TF.center_crop(x, list(spec.crop))
    return TF.normalize(x.clamp(0, 1), list(spec.mean), list(spec.std))


def _batched(fn, x, batch_size: int):
    """Concatenated numpy outputs of fn over batches of the first axis, without autograd."""
    import torch

    with torch.inference_mode():
        return np.concatenate([fn(x[i:i + batch_size]).float().cpu().numpy() for i in range(0, len(x), batch_size)])


def _from_pretrained(cls, folder, what: str, device: str):
    try:
        return cls.from_pretrained(str(folder)).to(device).eval()
    except Exception as err:  # a folder that exists but does not load is a user error
        raise CNError(f"could not load {what} from {folder}: {type(err).__name__}: {err}") from err


# ------------------------------------------------------------------ classifiers


class VideoClassifier:
    """VideoMAE video classifier: clips → class probabilities (softmax of logits)."""

    def __init__(self, model, spec: ImageSpec, device: str = "cpu"):
        self.model, self.spec, self.device = model, spec, device
        self.num_frames = int(model.config.num_frames)
        self.labels = [model.config.id2label[i] for i in range(model.config.num_labels)]

    def predict_proba(self, videos, batch_size: int = 4) -> np.ndarray:
        """videos: list of (T, H, W, 3) → (N, C). Each clip is sampled to `num_frames` frames
        at uniform nearest indices (VideoMAE-K400 takes 16)."""
        import torch

        clips = [preprocess(resample(to_float01(v), self.num_frames), self.spec) for v in videos]
        x = torch.stack(clips)  # (N, num_frames, 3, h, w)
        fn = lambda b: self.model(pixel_values=b.to(self.device)).logits.softmax(-1)  # noqa: E731
        return _batched(fn, x, batch_size)


class FrameClassifier:
    """ImageNet ViT frame classifier: frames → class probabilities."""

    def __init__(self, model, spec: ImageSpec, device: str = "cpu"):
        self.model, self.spec, self.device = model, spec, device
        self.labels = [model.config.id2label[i] for i in range(model.config.num_labels)]

    def predict_proba(self, frames, batch_size: int = 32) -> np.ndarray:
        """frames: (M, H, W, 3) → (M, C)."""
        x = preprocess(frames, self.spec)  # (M, 3, h, w)
        fn = lambda b: self.model(pixel_values=b.to(self.device)).logits.softmax(-1)  # noqa: E731
        return _batched(fn, x, batch_size)

    def predict_proba_videos(self, videos, batch_size: int = 32) -> np.ndarray:
        """videos with equal frame counts: list of (T, H, W, 3) → (N, T, C), for frame-based n-way."""
        return np.stack([self.predict_proba(v, batch_size) for v in videos])


def load_videomae(path, *, device: str = "cpu"):
    """VideoMAE from a local folder → (VideoClassifier, None) or (None, notice)."""
    if not path or not Path(path).is_dir():
        return _skip("VideoMAE", path, "video n-way accuracy")
    from transformers import VideoMAEForVideoClassification

    model = _from_pretrained(VideoMAEForVideoClassification, path, "VideoMAE", device)
    return VideoClassifier(model, image_spec(path, model.config.image_size, IMAGENET_MEAN, IMAGENET_STD), device), None


def load_vit(path, *, device: str = "cpu"):
    """ImageNet ViT from a local folder → (FrameClassifier, None) or (None, notice)."""
    if not path or not Path(path).is_dir():
        return _skip("ImageNet ViT", path, "frame n-way accuracy")
    from transformers import ViTForImageClassification

    model = _from_pretrained(ViTForImageClassification, path, "ViT", device)
    return FrameClassifier(model, image_spec(path, model.config.image_size, HALF_MEAN, HALF_STD), device), None


# ------------------------------------------------------------------ embedders


class ImageEmbedder:
    """Per-frame image embeddings (CLIP image tower or DINOv2 pooler output)."""

    def __init__(self, encode, spec: ImageSpec, name: str, device: str = "cpu"):
        self.encode, self.spec, self.name, self.device = encode, spec, name, device

    def embed(self, frames, batch_size: int = 32) -> np.ndarray:
        """frames: (M, H, W, 3) → (M, D) float32 embeddings (not normalised)."""
        x = preprocess(frames, self.spec)  # (M, 3, h, w)
        return _batched(lambda b: self.encode(b.to(self.device)), x, batch_size)


def load_dinov2(path, *, device: str = "cpu"):
    """DINOv2 from a local folder → (ImageEmbedder using pooler_output, None) or (None, notice)."""
    if not path or not Path(path).is_dir():
        return _skip("DINOv2", path, "DTC")
    from transformers import Dinov2Model

    model = _from_pretrained(Dinov2Model, path, "DINOv2", device)
    spec = image_spec(path, model.config.image_size, IMAGENET_MEAN, IMAGENET_STD)
    return ImageEmbedder(lambda b: model(pixel_values=b).pooler_output, spec, "dinov2", device), None


def _clip_spec(preprocess_cfg: dict) -> ImageSpec:
    """OpenCLIP's preprocess_cfg → ImageSpec ('shortest': resize short side + centre crop; else squash)."""
    size = preprocess_cfg.get("size", 224)
    hw = (size, size) if isinstance(size, int) else tuple(size)
    shortest = preprocess_cfg.get("resize_mode", "shortest") == "shortest"
    return ImageSpec(min(hw) if shortest else hw, hw if shortest else None, tuple(preprocess_cfg["mean"]),
                     tuple(preprocess_cfg["std"]), preprocess_cfg.get("interpolation", "bicubic"))


def load_clip(spec, model_name: str | None = None, *, device: str = "cpu", **create_kw):
    """OpenCLIP from a local weights file (with `model_name`, e.g. "ViT-H-14") or "local-dir:/dir".

    A folder given as `local-dir:` must hold `open_clip_config.json` and the weights. Extra
    keyword arguments go to `open_clip.create_model_and_transforms` (e.g. force_quick_gelu=True
    for OpenAI weights). → (ImageEmbedder, None) or (None, notice).
    """
    spec = str(spec) if spec else ""
    local_dir = spec.startswith("local-dir:")
    path = Path(spec[len("local-dir:"):]) if local_dir else Path(spec)
    if not spec or not (path / "open_clip_config.json" if local_dir else path).is_file():
        return _skip("CLIP", spec, "CLIP-pcc")
    if not local_dir and not model_name:
        raise CNError("a CLIP weights file needs its OpenCLIP model name (e.g. ViT-H-14); give model_name")
    import open_clip

    try:
        if local_dir:
            model, _, _ = open_clip.create_model_and_transforms(spec, device=device, **create_kw)
        else:
            model, _, _ = open_clip.create_model_and_transforms(model_name, pretrained=str(path), device=device,
                                                                **create_kw)
    except Exception as err:
        raise CNError(f"could not load CLIP from {spec}: {type(err).__name__}: {err}") from err
    model.eval()
    return ImageEmbedder(model.encode_image, _clip_spec(model.visual.preprocess_cfg), "clip", device), None


# ------------------------------------------------------------------ optical flow


def _load_state_dict(path: Path) -> dict:
    """safetensors or a torch pickle (weights_only), with any DataParallel "module." prefix removed."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        sd = load_file(str(path))
    else:
        import torch

        sd = torch.load(str(path), map_location="cpu", weights_only=True)
    return {k.removeprefix("module."): v for k, v in sd.items()}


class RaftFlow:
    """torchvision RAFT: frames → (T−1, H, W, 2) flow in pixels of the input frames.

    RAFT needs sides divisible by 8 and feature maps ≥ 16, so frames are resized (bilinear) to at
    least 128 px on the short side and a multiple of 8; the flow is resized back and its vectors
    rescaled to the input frame's pixels. Inputs are normalised to [−1, 1] as torchvision's
    Raft_*_Weights transforms do.
    """

    def __init__(self, model, *, num_flow_updates: int = 12, device: str = "cpu", batch_size: int = 8):
        self.model, self.updates, self.device, self.batch_size = model, num_flow_updates, device, batch_size
        self.name = f"raft ({num_flow_updates} updates)"

    @staticmethod
    def work_size(h: int, w: int) -> tuple[int, int]:
        s = max(1.0, 128.0 / min(h, w))
        return int(np.ceil(h * s / 8) * 8), int(np.ceil(w * s / 8) * 8)

    def flow(self, frames) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        x = torch.from_numpy(to_float01(frames)).float().permute(0, 3, 1, 2) * 2 - 1  # (T, 3, H, W)
        if len(x) < 2:
            raise ValueError("optical flow needs at least 2 frames")
        h, w = x.shape[-2:]
        wh, ww = self.work_size(h, w)
        x = F.interpolate(x, size=(wh, ww), mode="bilinear", align_corners=False)
        out = []
        with torch.inference_mode():
            for i in range(0, len(x) - 1, self.batch_size):
                a = x[i:i + self.batch_size][: len(x) - 1 - i].to(self.device)  # frames t
                b = x[i + 1:i + 1 + len(a)].to(self.device)  # frames t+1
                f = self.model(a, b, num_flow_updates=self.updates)[-1]  # (B, 2, wh, ww)
                f = F.interpolate(f, size=(h, w), mode="bilinear", align_corners=False)
                f = f * torch.tensor([w / ww, h / wh], device=f.device).view(1, 2, 1, 1)
                out.append(f.permute(0, 2, 3, 1).cpu().numpy())
        return np.concatenate(out).astype(np.float64)  # (T-1, H, W, 2)


def load_raft(path, *, arch: str = "small", num_flow_updates: int = 12, device: str = "cpu"):
    """RAFT (torchvision format state dict, .safetensors or .pth) → (RaftFlow, None) or (None, notice).

    The weights must be torchvision's layout (e.g. Raft_Small_Weights.C_T_V2 saved to disk); the
    original princeton-vl checkpoints use other key names and are rejected with a clear error.
    """
    if not path or not Path(path).is_file():
        return _skip("RAFT", path, "EPE/Dynamic Degree with RAFT (Farnebäck still runs)")
    from torchvision.models.optical_flow import raft_large, raft_small

    model = {"small": raft_small, "large": raft_large}[arch](weights=None)
    try:
        model.load_state_dict(_load_state_dict(Path(path)))
    except Exception as err:
        raise CNError(f"could not load RAFT-{arch} weights from {path} (torchvision layout expected): "
                      f"{type(err).__name__}: {str(err)[:200]}") from err
    return RaftFlow(model.to(device).eval(), num_flow_updates=num_flow_updates, device=device), None


# ------------------------------------------------------------------ all at once


def load_all(paths: dict, *, device: str = "cpu") -> tuple[dict, list[str]]:
    """Load every evaluation model named in `paths`; missing ones are None with a notice.

    paths keys: videomae, vit, dinov2 (folders), raft (file), clip (a spec string, or a dict
    {"spec": ..., "model_name": ...}). Returns ({name: model or None}, [notices]).
    """
    clip = paths.get("clip") or {}
    clip = clip if isinstance(clip, dict) else {"spec": clip}
    loaded = {
        "videomae": load_videomae(paths.get("videomae"), device=device),
        "vit": load_vit(paths.get("vit"), device=device),
        "clip": load_clip(clip.get("spec"), clip.get("model_name"), device=device),
        "dinov2": load_dinov2(paths.get("dinov2"), device=device),
        "raft": load_raft(paths.get("raft"), device=device),
    }
    return {k: m for k, (m, _) in loaded.items()}, [n for _, n in loaded.values() if n]
