"""Shared fixtures: a toy encoder preset with unequal dims, random encoded clips."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = ROOT.parent / "shared" / "data" / "videos"
sys.path.insert(0, str(Path(__file__).parent))

# Unequal on purpose, so axis mix-ups fail.
TOY_DIMS = {"image": 24, "text": 20, "action": 28, "cond": 12}
TOY_FRAMES = 3


def _register_toy_encoders() -> None:
    from cineneuron.encoders.registry import Encoder, register

    class _Hash(Encoder):
        def _rng(self, key: str) -> np.random.Generator:
            # sha256, not hash(): Python salts str hashes per process, and a failure must reproduce.
            return np.random.default_rng(int.from_bytes(hashlib.sha256(f"{self.name}|{key}".encode()).digest()[:8], "little"))

    @register("toy-image")
    class ToyImage(_Hash):
        modality = "image"

        def encode_frames(self, frames):
            f = frames.astype(np.float32).mean(axis=(2, 3))  # (B, T, 3)
            w = np.random.default_rng(1).normal(size=(3, self.dim)).astype(np.float32)
            return f @ w + 1e-3

    @register("toy-text")
    class ToyText(_Hash):
        modality = "text"

        def encode_text(self, texts):
            return np.stack([self._rng(t).normal(size=self.dim) for t in texts]).astype(np.float32)

    @register("toy-action")
    class ToyAction(_Hash):
        modality = "action"

        def encode_video(self, frames):
            d = np.abs(np.diff(frames.astype(np.float32), axis=1)).mean(axis=(1, 2, 3))  # (B, 3)
            w = np.random.default_rng(2).normal(size=(3, self.dim)).astype(np.float32)
            return d @ w + 1e-3

    @register("toy-cond")
    class ToyCond(_Hash):
        modality = "cond"

        def encode_cond(self, texts):
            return [self._rng(t).normal(size=(1 + len(t.split()) % 4, self.dim)).astype(np.float16) for t in texts]

        def encode_empty(self):
            return np.zeros((1, self.dim), np.float16)


_register_toy_encoders()


def toy_preset_dict(name: str = "toy") -> dict:
    return {
        "name": name,
        "frames": {"n": TOY_FRAMES, "size": 32},
        "encoders": {
            "image": {"name": "toy-image", "dim": TOY_DIMS["image"]},
            "text": {"name": "toy-text", "dim": TOY_DIMS["text"]},
            "action": {"name": "toy-action", "dim": TOY_DIMS["action"]},
            "cond": {"name": "toy-cond", "dim": TOY_DIMS["cond"]},
        },
    }


@pytest.fixture
def toy_preset(tmp_path) -> str:
    p = tmp_path / "toy.json"
    p.write_text(json.dumps(toy_preset_dict()))
    return str(p)


def random_clips(n: int, *, seed: int = 0, source: str = "src", split: str = "train", start: int = 0):
    """n EncodedClips with random unit-ish vectors (no encoders involved)."""
    from cineneuron.schemas.records import clip_id
    from cineneuron.store import EncodedClip

    rng = np.random.default_rng(seed)
    d = TOY_DIMS
    out = []
    for i in range(start, start + n):
        out.append(EncodedClip(
            clip_id=clip_id(source, f"v{i // 10}.mp4", (i % 10) * 2.0, (i % 10) * 2.0 + 2.0),
            source=source, video=f"v{i // 10}.mp4", video_uri=f"/data/v{i // 10}.mp4",
            start_s=(i % 10) * 2.0, end_s=(i % 10) * 2.0 + 2.0, split=split,
            caption=f"clip {i}", labels=["animal"] if i % 3 == 0 else ["vehicle", "outdoor"],
            img_frames=rng.normal(size=(TOY_FRAMES, d["image"])).astype(np.float32),
            txt=rng.normal(size=d["text"]).astype(np.float32),
            act=rng.normal(size=d["action"]).astype(np.float32),
            cond=rng.normal(size=(2, d["cond"])).astype(np.float16),
        ))
    return out


@pytest.fixture(scope="module")
def one_torch_thread():
    """Toy models gain nothing from threads; on a shared 2-core machine they only oversubscribe it."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
