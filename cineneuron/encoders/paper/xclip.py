"""X-CLIP action encoder (microsoft/xclip-*) through transformers, from a local folder.

`model_dir` is a `save_pretrained` folder (config.json + weights, preprocessor_config.json and
tokenizer files when present). The processor's settings are explicit here (`mean`, `std`,
`size`, `interpolation`) and are checked against the folder's preprocessor_config.json (or
transformers 5's processor_config.json) at build,
so a preset cannot silently normalise differently from how the weights were trained.

Video features: `get_video_features(pixel_values)` — per-frame CLS projections fused by the
multi-frame integration transformer; in transformers 5 the embedding is `.pooler_output`
(in 4.x the call returns the tensor itself; both are handled). Output (B, projection_dim)
float32, L2-normalised when `normalize` is true.

Note on text: `encode_text` gives `get_text_features`, X-CLIP's plain text embedding. X-CLIP's
own video-text score does not use it as is: inside `XCLIPModel.forward` the text embedding is
first conditioned on the video by the prompt generator (video-specific prompting). So the
cosine between `encode_video` and `encode_text` is not X-CLIP's `logits_per_video`.
"""

from __future__ import annotations

import json
from typing import Literal

import numpy as np
from pydantic import Field

from cineneuron.encoders.paper import _common as C
from cineneuron.encoders.paper import _weights as W
from cineneuron.encoders.registry import Encoder, register
from cineneuron.errors import CNError, MissingWeightsError

_RESAMPLE = {2: "bilinear", 3: "bicubic"}  # PIL filter ids used in preprocessor_config.json
# Hub checkpoints carry preprocessor_config.json; transformers 5 saves processor_config.json.
_PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json")


class XCLIPConfig(C.RuntimeConfig):
    model_dir: str = Field(description="local X-CLIP folder (save_pretrained layout)")
    mean: C.Triple = Field(description="per-channel mean of the X-CLIP processor")
    std: C.Triple = Field(description="per-channel std of the X-CLIP processor")
    size: int = Field(gt=0, description="frame side after resize + centre crop (224)")
    interpolation: Literal["bilinear", "bicubic"] = Field("bilinear", description="resize filter, if frames need it")
    normalize: bool = Field(True, description="L2-normalise the output embeddings")


def _side(value) -> int | None:
    """A square side from a processor size entry (int, {shortest_edge}, {height, width})."""
    if isinstance(value, int):
        return value
    if isinstance(value, dict):
        if "shortest_edge" in value:
            return int(value["shortest_edge"])
        if value.get("height") == value.get("width"):
            return int(value["height"])
    return None


@register("xclip")
class XCLIPEncoder(Encoder):
    """(B, T, H, W, 3) uint8 frames -> (B, projection_dim) float32 video embeddings."""

    modality = "action"
    Config = XCLIPConfig
    _model = None
    _tokenizer = None

    def _dir(self):
        expected = "an X-CLIP model folder (config.json + weights)"
        return W.require(C.resolve_path(self.config.model_dir, self.config.weights_dir), expected, kind="dir")

    def _weight_files(self):
        folder = self._dir()
        cfg = W.require(folder / "config.json", "the X-CLIP config.json")
        files = [cfg, *W.hf_weight_files(folder, "the X-CLIP weights (model.safetensors)")]
        extra = _PROCESSOR_FILES + _TOKENIZER_FILES  # optional; hashed when present
        return files + [f for f in (folder / n for n in extra) if f.is_file()]

    def _processor_settings(self) -> tuple[dict, str] | None:
        """The folder's image-processor settings and the file they came from, if there are any."""
        for name in _PROCESSOR_FILES:
            f = self._dir() / name
            if f.is_file():
                data = json.loads(f.read_text())
                return data.get("image_processor", data), str(f)  # transformers 5 nests them
        return None

    def check_weights(self) -> None:
        self._weight_files()

    def build(self) -> "XCLIPEncoder":
        from transformers import XCLIPModel

        self.check_weights()
        self._check_processor()
        c = self.config
        model = XCLIPModel.from_pretrained(str(self._dir()), local_files_only=True, **C.hf_dtype_kwargs(c.precision))
        self._model = model.to(C.torch_device(c.device)).eval()
        C.check_dim(self, int(model.config.projection_dim))
        side = _side(model.config.vision_config.image_size)
        if side != c.size:
            raise CNError(f"xclip config size {c.size} but the model takes {side} px; set size to {side}")
        return self

    def _check_processor(self) -> None:
        """The folder's processor must agree with the explicit settings."""
        found = self._processor_settings()
        if found is None:
            return
        p, where = found
        c = self.config
        got = {
            "mean": tuple(p.get("image_mean", c.mean)),
            "std": tuple(p.get("image_std", c.std)),
            "size": _side(p.get("crop_size") if p.get("do_center_crop", True) else p.get("size")),
            "interpolation": _RESAMPLE.get(p.get("resample"), c.interpolation),
            "scale": p.get("rescale_factor", 1 / 255) if p.get("do_rescale", True) else 1.0,
        }
        want = {"mean": c.mean, "std": c.std, "size": c.size, "interpolation": c.interpolation, "scale": 1 / 255}
        for k, v in got.items():
            same = np.allclose(v, want[k], atol=1e-6) if k in ("mean", "std", "scale") else v in (None, want[k])
            if not same:
                raise CNError(f"xclip config {k}={want[k]} but {where} says {v}; set {k} to match the processor")

    def identity(self) -> dict:
        files, root, c = self._weight_files(), self._dir(), self.config
        return C.identity_dict(
            self,
            architecture={"family": "x-clip", "config": C.hf_config(root / "config.json")},
            weights_files=[str(f.relative_to(root)) for f in files],
            sha256=W.sha256_files(files, root),
            preprocessing={
                "frames": "num_frames of the model, every (T // num_frames)-th",
                "scale": "1/255",
                "resize": C.resize_note(c.size, c.interpolation),
                "mean": list(c.mean),
                "std": list(c.std),
                "normalized_output": c.normalize,
            },
            path_fields=("model_dir",),
        )

    def encode_video(self, frames: np.ndarray) -> np.ndarray:
        model = self._ensure_built()
        n = int(model.config.vision_config.num_frames)
        return C.encode_clips(self, frames, n, lambda x: _pooled(model.get_video_features(pixel_values=x)))

    def encode_text(self, texts: list[str]) -> np.ndarray:
        """Plain X-CLIP text features (not video-conditioned; see the module docstring)."""
        import torch
        import torch.nn.functional as F
        from transformers import AutoTokenizer

        model = self._ensure_built()
        c = self.config
        if self._tokenizer is None:
            try:
                self._tokenizer = AutoTokenizer.from_pretrained(str(self._dir()), local_files_only=True)
            except (OSError, ValueError, TypeError):
                raise MissingWeightsError(
                    f"missing weights: no tokenizer files in {self._dir()}; the config expects the X-CLIP "
                    "tokenizer (vocab.json + merges.txt or tokenizer.json) there"
                ) from None
        dev = C.torch_device(c.device)
        max_len = int(model.config.text_config.max_position_embeddings)
        out = np.zeros((len(texts), self.dim), np.float32)
        with torch.inference_mode():
            for sl in C.batches(len(texts), c.batch_size):
                tok = self._tokenizer(
                    list(texts[sl]), padding=True, truncation=True, max_length=max_len, return_tensors="pt"
                )
                ids, mask = tok["input_ids"].to(dev), tok["attention_mask"].to(dev)  # (n, L)
                e = _pooled(model.get_text_features(input_ids=ids, attention_mask=mask)).float()  # (n, dim)
                out[sl] = (F.normalize(e, dim=-1) if c.normalize else e).cpu().numpy()
        return out


def _pooled(out):
    """transformers 5 returns an output with `.pooler_output`; 4.x returns the tensor."""
    return out if hasattr(out, "dim") else out.pooler_output
