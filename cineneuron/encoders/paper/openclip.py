"""OpenCLIP image and text towers from local weights.

`model` is an open_clip architecture name (`ViT-H-14`) with `weights` a local checkpoint file
(.safetensors, .bin or .pt), or `local-dir:/folder` holding `open_clip_config.json` and the
weights. open_clip falls back to OpenAI's mean/std whatever the weights were trained with when
loading from a file, and skips its QuickGELU check, so both are explicit here: `mean`, `std`,
`size` and `interpolation` are required/declared config fields, and OpenAI-trained weights need
`force_quick_gelu: true`.

Outputs: `openclip-image` gives one embedding per frame, (B, T, dim) float32; `openclip-text`
gives (B, dim) float32. Both are L2-normalised when `normalize` is true (the default), as CLIP's
cosine similarity expects; with `normalize: false` they are the raw projections.

Image and text encoders with the same model and weights share one loaded model.
"""

from __future__ import annotations

import json
import weakref
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from cineneuron.encoders.paper import _common as C
from cineneuron.encoders.paper import _weights as W
from cineneuron.encoders.registry import Encoder, register
from cineneuron.errors import CNError, MissingWeightsError

LOCAL_DIR = "local-dir:"
_LOADED: "weakref.WeakValueDictionary" = weakref.WeakValueDictionary()  # load key -> model


class OpenClipConfig(C.RuntimeConfig):
    model: str = Field(description="open_clip architecture name (e.g. 'ViT-H-14') or 'local-dir:/folder'")
    weights: str | None = Field(None, description="local checkpoint file when `model` is an architecture name")
    force_quick_gelu: bool = Field(False, description="QuickGELU activations (true for OpenAI-trained weights)")
    normalize: bool = Field(True, description="L2-normalise the output embeddings")

    @model_validator(mode="after")
    def _weights_xor_dir(self):
        if self.model.startswith(LOCAL_DIR) and self.weights:
            raise ValueError("give either model 'local-dir:/folder' or an architecture name with weights, not both")
        if not self.model.startswith(LOCAL_DIR) and not self.weights:
            raise ValueError("weights: a local checkpoint file is required when model is an architecture name")
        return self


class OpenClipImageConfig(OpenClipConfig):
    mean: C.Triple = Field(description="per-channel mean the weights were trained with")
    std: C.Triple = Field(description="per-channel std the weights were trained with")
    size: int = Field(gt=0, description="input side in pixels (the model's image_size)")
    interpolation: Literal["bicubic", "bilinear"] = Field("bicubic", description="resize filter, if frames need it")


class _OpenClip(Encoder):
    """Shared loading, weight checks and identity of the two towers."""

    Config: ClassVar[type] = OpenClipConfig
    _model = None

    # --- weights ---------------------------------------------------------------------------
    def _local_dir(self) -> Path | None:
        m = self.config.model
        return C.resolve_path(m[len(LOCAL_DIR) :], self.config.weights_dir) if m.startswith(LOCAL_DIR) else None

    def _weight_files(self) -> list[Path]:
        """The files that define the model; each must exist."""
        folder = self._local_dir()
        if folder is None:
            expected = f"the {self.config.model} open_clip checkpoint (.safetensors, .bin or .pt)"
            return [W.require(C.resolve_path(self.config.weights, self.config.weights_dir), expected)]
        expected = "an open_clip model folder (open_clip_config.json and its weights)"
        W.require(folder, expected, kind="dir")
        cfg = W.require(folder / "open_clip_config.json", f"the open_clip_config.json of {folder.name}")
        ckpts = [p for p in sorted(folder.iterdir()) if p.suffix in (".safetensors", ".bin", ".pth")]
        if not ckpts:
            raise MissingWeightsError(
                f"missing weights: no .safetensors/.bin/.pth file in {folder}; the config expects "
                "open_clip_model.safetensors (or open_clip_pytorch_model.bin) there"
            )
        return [cfg, *ckpts]

    def check_weights(self) -> None:
        self._weight_files()

    def _load_key(self) -> tuple:
        files = self._weight_files()
        stats = tuple((str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
        c = self.config
        return (c.model, stats, c.force_quick_gelu, c.precision, c.device)

    # --- model -----------------------------------------------------------------------------
    def build(self) -> "_OpenClip":
        self.check_weights()
        key = self._load_key()
        model = _LOADED.get(key)
        if model is None:
            model = self._load()
            _LOADED[key] = model
        self._model = model
        C.check_dim(self, self._embed_dim())
        return self

    def _load(self):
        import open_clip

        c = self.config
        kwargs = dict(precision=c.precision, device=C.torch_device(c.device), force_quick_gelu=c.force_quick_gelu)
        if hasattr(c, "mean"):  # recorded on the model's preprocess_cfg too, for anyone who reads it
            kwargs.update(image_mean=c.mean, image_std=c.std, image_interpolation=c.interpolation)
        if self._local_dir() is not None:
            name, pretrained = LOCAL_DIR + str(self._local_dir()), None
        else:
            name, pretrained = c.model, str(C.resolve_path(c.weights, c.weights_dir))
        model, _, _ = open_clip.create_model_and_transforms(name, pretrained=pretrained, **kwargs)
        return model.eval()

    def _embed_dim(self) -> int:
        """CLIP's shared embedding width (the image tower's output_dim, = the text projection's)."""
        dim = getattr(self._model.visual, "output_dim", None)
        return int(dim) if dim is not None else int(self._model.text_projection.shape[-1])

    # --- identity --------------------------------------------------------------------------
    def _architecture(self) -> dict:
        arch = {"family": "open_clip", "quick_gelu": self.config.force_quick_gelu}
        folder = self._local_dir()
        if folder is None:
            return {**arch, "model": self.config.model}
        cfg = json.loads((folder / "open_clip_config.json").read_text())
        return {**arch, "model_cfg": cfg.get("model_cfg", cfg)}  # the folder's path is not identity

    def identity(self) -> dict:
        files = self._weight_files()
        root = self._local_dir()
        return C.identity_dict(
            self,
            architecture=self._architecture(),
            weights_files=[str(f.relative_to(root)) if root else f.name for f in files],
            sha256=W.sha256_files(files, root),
            preprocessing=self._preprocessing(),
            path_fields=("weights",) + (("model",) if root else ()),
        )

    def _preprocessing(self) -> dict:
        raise NotImplementedError


@register("openclip-image")
class OpenClipImage(_OpenClip):
    """Per-frame CLIP image embeddings: (B, T, H, W, 3) uint8 -> (B, T, dim) float32."""

    modality = "image"
    Config = OpenClipImageConfig

    def build(self) -> "OpenClipImage":
        super().build()
        side = self._model.visual.image_size
        side = side[0] if isinstance(side, (tuple, list)) else side
        if int(side) != self.config.size:
            c = self.config
            raise CNError(f"openclip-image config size {c.size} but {c.model} takes {side} px; set size to {side}")
        return self

    def _preprocessing(self) -> dict:
        c = self.config
        return {
            "scale": "1/255",
            "resize": C.resize_note(c.size, c.interpolation),
            "mean": list(c.mean),
            "std": list(c.std),
            "normalized_output": c.normalize,
        }

    def encode_frames(self, frames: np.ndarray) -> np.ndarray:
        import torch

        model = self._ensure_built()
        frames = C.check_frames(frames, "openclip-image")
        b, t = frames.shape[:2]
        flat = frames.reshape(b * t, *frames.shape[2:])  # (B*T, H, W, 3)
        c = self.config
        dev, dt = C.torch_device(c.device), C.torch_dtype(c.precision)
        out = np.zeros((b * t, self.dim), np.float32)
        with torch.inference_mode():
            for sl in C.batches(b * t, c.batch_size):
                x = C.preprocess(flat[sl], c.size, c.mean, c.std, c.interpolation, dev, dt)  # (n, 3, S, S)
                out[sl] = model.encode_image(x, normalize=c.normalize).float().cpu().numpy()  # (n, dim)
        return out.reshape(b, t, self.dim)


@register("openclip-text")
class OpenClipText(_OpenClip):
    """CLIP text embeddings of the same model: list[str] -> (B, dim) float32."""

    modality = "text"
    Config = OpenClipConfig
    _tokenizer = None

    def build(self) -> "OpenClipText":
        import open_clip

        super().build()
        name = LOCAL_DIR + str(self._local_dir()) if self._local_dir() is not None else self.config.model
        self._tokenizer = open_clip.get_tokenizer(name)
        return self

    def _preprocessing(self) -> dict:
        return {"tokenizer": "open_clip.get_tokenizer(model)", "normalized_output": self.config.normalize}

    def encode_text(self, texts: list[str]) -> np.ndarray:
        import torch

        model = self._ensure_built()
        c = self.config
        dev = C.torch_device(c.device)
        out = np.zeros((len(texts), self.dim), np.float32)
        with torch.inference_mode():
            for sl in C.batches(len(texts), c.batch_size):
                tokens = self._tokenizer(list(texts[sl])).to(dev)  # (n, context_length)
                out[sl] = model.encode_text(tokens, normalize=c.normalize).float().cpu().numpy()  # (n, dim)
        return out
