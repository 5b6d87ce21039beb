"""UMT5 cond encoder: Wan2.1's text encoder, from a local Wan2.1 diffusers folder.

`model_dir` is the diffusers layout (`text_encoder/` with a `UMT5EncoderModel`, `tokenizer/`);
only those two subfolders are read and hashed. Prompts are encoded as `WanPipeline` encodes
them: diffusers' own `prompt_clean` (ftfy, HTML unescape, whitespace), padding to
`max_length` (512, as Wan's pipeline does), truncation, special tokens (the closing `</s>`),
and the attention mask. Wan zero-pads after the real tokens; this encoder returns only the real
tokens, `(L_i, d_model)` float16, so the store keeps no padding. `encode_empty()` is the empty
prompt, which Wan uses as the negative prompt by default.

Precision: T5 overflows in fp16; use fp32 (CPU) or bf16 (GPU).
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from cineneuron.encoders.paper import _common as C
from cineneuron.encoders.paper import _weights as W
from cineneuron.encoders.registry import Encoder, register
from cineneuron.errors import CNError


class UMT5CondConfig(C.RuntimeConfig):
    model_dir: str = Field(description="local Wan2.1 diffusers folder holding text_encoder/ and tokenizer/")
    max_length: int = Field(512, gt=0, description="tokenizer max length (Wan pads and truncates to it)")


@register("umt5")
class UMT5Cond(Encoder):
    """list[str] -> list of (L_i, dim) float16 token embeddings, real tokens only."""

    modality = "cond"
    Config = UMT5CondConfig
    _model = None
    _tokenizer = None
    _clean = None

    def _dir(self):
        expected = "a Wan2.1 diffusers folder (text_encoder/, tokenizer/)"
        return W.require(C.resolve_path(self.config.model_dir, self.config.weights_dir), expected, kind="dir")

    def _weight_files(self):
        root = self._dir()
        enc = W.require(root / "text_encoder", "Wan2.1's text_encoder/ folder (UMT5)", kind="dir")
        tok = W.require(root / "tokenizer", "Wan2.1's tokenizer/ folder", kind="dir")
        files = [W.require(enc / "config.json", "the UMT5 text_encoder/config.json")]
        files += W.hf_weight_files(enc, "the UMT5 weights (model.safetensors or its shards)")
        W.require_any(tok, ("tokenizer.json", "spiece.model"), "the UMT5 tokenizer (tokenizer.json or spiece.model)")
        files += [p for p in W.dir_files(tok) if p.parent == tok]
        return files

    def check_weights(self) -> None:
        self._weight_files()

    def build(self) -> "UMT5Cond":
        from diffusers.pipelines.wan.pipeline_wan import prompt_clean
        from transformers import AutoTokenizer, UMT5EncoderModel

        self.check_weights()
        root, c = self._dir(), self.config
        model = UMT5EncoderModel.from_pretrained(
            str(root / "text_encoder"), local_files_only=True, **C.hf_dtype_kwargs(c.precision)
        )
        C.check_dim(self, int(model.config.d_model))
        self._model = model.to(C.torch_device(c.device)).eval()
        self._tokenizer = AutoTokenizer.from_pretrained(str(root / "tokenizer"), local_files_only=True)
        self._clean = prompt_clean
        return self

    def identity(self) -> dict:
        files, root = self._weight_files(), self._dir()
        config = C.hf_config(root / "text_encoder" / "config.json")
        return C.identity_dict(
            self,
            architecture={"family": "umt5-encoder", "config": config},
            weights_files=[str(f.relative_to(root)) for f in files],
            sha256=W.sha256_files(files, root),
            preprocessing={
                "prompt_clean": "diffusers.pipelines.wan.pipeline_wan.prompt_clean",
                "tokenizer": {
                    "padding": "max_length",
                    "max_length": self.config.max_length,
                    "truncation": True,
                    "add_special_tokens": True,
                },
                "output": "last_hidden_state, real tokens only (attention mask), float16",
            },
            path_fields=("model_dir",),
        )

    def encode_cond(self, texts: list[str]) -> list[np.ndarray]:
        import torch

        model = self._ensure_built()
        c = self.config
        if isinstance(texts, str):
            raise CNError("umt5 encode_cond takes a list of prompts, not one string")
        dev = C.torch_device(c.device)
        out: list[np.ndarray] = []
        with torch.inference_mode():
            for sl in C.batches(len(texts), c.batch_size):
                prompts = [self._clean(t) for t in texts[sl]]
                tok = self._tokenizer(
                    prompts, padding="max_length", max_length=c.max_length, truncation=True,
                    add_special_tokens=True, return_attention_mask=True, return_tensors="pt",
                )
                mask = tok["attention_mask"]  # (n, max_length)
                hidden = model(tok["input_ids"].to(dev), mask.to(dev)).last_hidden_state  # (n, max_length, dim)
                for h, n in zip(hidden, mask.gt(0).sum(dim=1).tolist()):
                    out.append(h[:n].to(torch.float16).cpu().numpy())  # (L_i, dim)
        return out

    def encode_empty(self) -> np.ndarray:
        """The empty prompt, (L0, dim) float16: Wan's default negative prompt."""
        return self.encode_cond([""])[0]
