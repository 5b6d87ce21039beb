"""ViCLIP action encoder: the video tower of InternVid's ViCLIP, from the official checkpoint.

`weights` is the official `ViClip-InternVid-10M-FLT.pth` (loaded with `weights_only=True`,
key `"model"`) or a `.safetensors` made from it once with

    python -m cineneuron.encoders.paper.viclip SRC.pth DST.safetensors

Preprocessing follows upstream's demo: `num_frames` frames (every `T // num_frames`-th of the
frames given), scaled to [0, 1], ImageNet mean/std, at 224 px. Output: (B, embed_dim) float32,
L2-normalised when `normalize` is true (upstream's `get_vid_features` does this), else raw.
`encode_text` (context 32, CLIP BPE) is there too, for text-to-action queries.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from cineneuron.encoders.paper import _common as C
from cineneuron.encoders.paper import _weights as W
from cineneuron.encoders.registry import Encoder, register
from cineneuron.errors import CNError


class ViCLIPArch(BaseModel):
    """Sizes of a ViCLIP; the defaults are ViCLIP-L/14 (the released checkpoint)."""

    model_config = ConfigDict(extra="forbid")

    image_size: int = 224
    patch_size: int = 14
    vision_width: int = 1024
    vision_layers: int = 24
    vision_heads: int = 16
    embed_dim: int = 768
    num_frames: int = 8
    tubelet: int = 1
    text_width: int = 768
    text_layers: int = 12
    text_heads: int = 12
    context_length: int = 32
    vocab_size: int = 49408


ARCHS = {"ViT-L/14": ViCLIPArch()}


class ViCLIPConfig(C.RuntimeConfig):
    weights: str = Field(description="official ViCLIP .pth ({'model': state_dict}) or a converted .safetensors")
    arch: Literal["ViT-L/14"] | ViCLIPArch = Field("ViT-L/14", description="a named size or explicit sizes")
    mean: C.Triple = Field(description="per-channel mean (ImageNet for the released weights)")
    std: C.Triple = Field(description="per-channel std (ImageNet for the released weights)")
    size: int = Field(gt=0, description="input side in pixels (224)")
    interpolation: Literal["bilinear", "bicubic"] = Field("bilinear", description="resize filter, if frames need it")
    resize: Literal["squash", "short_side_crop"] = Field(
        "squash", description="frames not size x size: squash = cv2.resize to size x size, as the official ViCLIP "
                              "code (what the model saw in training); short_side_crop = shortest edge + centre crop, antialiased")
    normalize: bool = Field(True, description="L2-normalise the output embeddings")

    @model_validator(mode="after")
    def _size_matches_arch(self):
        if self.size != self.sizes.image_size:
            raise ValueError(f"size {self.size} differs from the architecture's image_size {self.sizes.image_size}")
        return self

    @property
    def sizes(self) -> ViCLIPArch:
        return ARCHS[self.arch] if isinstance(self.arch, str) else self.arch


@register("viclip")
class ViCLIPEncoder(Encoder):
    """(B, T, H, W, 3) uint8 frames -> (B, embed_dim) float32 video-text (action) embeddings."""

    modality = "action"
    Config = ViCLIPConfig
    _model = None
    _tokenizer = None

    def _weights_path(self):
        expected = "the ViCLIP checkpoint (ViClip-InternVid-10M-FLT.pth or its .safetensors)"
        return W.require(C.resolve_path(self.config.weights, self.config.weights_dir), expected)

    def check_weights(self) -> None:
        self._weights_path()

    def build(self) -> "ViCLIPEncoder":
        from cineneuron.encoders.paper.viclip_model import build_viclip, read_state_dict

        path = self._weights_path()
        arch = self.config.sizes
        C.check_dim(self, arch.embed_dim)
        try:
            sd = read_state_dict(path)
        except Exception as e:  # e.g. a pickle that weights_only=True refuses
            raise CNError(
                f"cannot read ViCLIP weights {path} with weights_only=True ({type(e).__name__}); CineNeuron never "
                "unpickles outside files: re-save the state dict as .safetensors where you trust the file and point weights at it"
            ) from None
        try:
            model = build_viclip(sd, dtype=C.torch_dtype(self.config.precision), **arch.model_dump())
        except RuntimeError as e:
            first = str(e).splitlines()[1].strip() if "\n" in str(e) else str(e)
            raise CNError(f"ViCLIP weights {path} do not match arch {self.config.arch!r}: {first}") from None
        self._model = model.to(C.torch_device(self.config.device))
        return self

    def identity(self) -> dict:
        path = self._weights_path()
        c = self.config
        return C.identity_dict(
            self,
            architecture={"family": "viclip", **c.sizes.model_dump()},
            weights_files=[path.name],
            sha256=W.sha256_files([path]),
            preprocessing={
                "frames": f"{c.sizes.num_frames} frames, every (T // {c.sizes.num_frames})-th",
                "scale": "1/255",
                "resize": (f"cv2.resize (bilinear, no antialias) to {c.size}x{c.size}, aspect not kept, as upstream"
                           if c.resize == "squash" else C.resize_note(c.size, c.interpolation))
                          + "; only if frames are not that size",
                "mean": list(c.mean),
                "std": list(c.std),
                "normalized_output": c.normalize,
            },
            path_fields=("weights",),
        )

    def encode_video(self, frames: np.ndarray) -> np.ndarray:
        model = self._ensure_built()
        return C.encode_clips(self, frames, self.config.sizes.num_frames, model.encode_video)

    def encode_text(self, texts: list[str]) -> np.ndarray:
        """ViCLIP's text tower: CLIP BPE, context 32 (truncated with EOT last, as upstream)."""
        import torch
        import torch.nn.functional as F
        from open_clip.tokenizer import SimpleTokenizer

        model = self._ensure_built()
        c = self.config
        if self._tokenizer is None:
            self._tokenizer = SimpleTokenizer(context_length=c.sizes.context_length)
        dev = C.torch_device(c.device)
        out = np.zeros((len(texts), self.dim), np.float32)
        with torch.inference_mode():
            for sl in C.batches(len(texts), c.batch_size):
                tokens = self._tokenizer(list(texts[sl])).to(dev)  # (n, context)
                e = model.encode_text(tokens).float()  # (n, dim)
                out[sl] = (F.normalize(e, dim=-1) if c.normalize else e).cpu().numpy()
        return out


def _main(argv: list[str] | None = None) -> None:
    import argparse

    from cineneuron.encoders.paper.viclip_model import convert_to_safetensors

    ap = argparse.ArgumentParser(description="Convert a ViCLIP .pth checkpoint to .safetensors, once.")
    ap.add_argument("src")
    ap.add_argument("dst")
    a = ap.parse_args(argv)
    print(convert_to_safetensors(a.src, a.dst))


if __name__ == "__main__":
    _main()
